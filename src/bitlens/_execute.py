"""The executor: routes command groups to nodes, fans out, retries, splits the replies.

It takes finished command lists from the planner and the marking code, groups them per
node (one round trip each), and hands each node's wire to the transport
(:mod:`bitlens._transport`, the only code below redis-py's public API), which sends it in
one write and returns every reply in order.

Faults:

* A dropped connection raises redis-py's ``ConnectionError`` or is retried according to the
  client's ``Retry`` policy. Retrying is safe: marks are idempotent (SETBIT), and a query
  creates and deletes its temp keys inside one atomic script or transaction.
* A timeout is never retried: the request may be running on the server, and sending it
  again would multiply the server's work. Authentication failures are never retried
  either (:class:`~bitlens.AuthenticationFailed`); ``OOM`` and ``NOPERM`` replies become
  :class:`~bitlens.ServerOutOfMemory` and :class:`~bitlens.PermissionDenied`.
* Cancellation at any await closes the connection (redis-py disconnects on any exception
  while reading or writing), so no half-read reply can ever reach the next caller.
* Error replies are read to the end of the batch before the first one is raised, so the
  connection stays in step.
"""

from __future__ import annotations

import contextlib
import re
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

import anyio
from redis.exceptions import (
    AskError,
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    ClusterDownError,
    MovedError,
    NoPermissionError,
    OutOfMemoryError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from ._exceptions import (
    AuthenticationFailed,
    BitlensError,
    PermissionDenied,
    ReplicationTimeout,
    ServerOutOfMemory,
)
from ._lower import SCRIPT_MODES, count_call, decode, lower, refuses_scripts
from ._plan import Capabilities, script_error
from ._replies import Replies
from ._transport import HOLE, Node, Prepared, RoundTripObserver, Template, Transport

if TYPE_CHECKING:
    from collections.abc import Sequence

    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    from ._lower import LoweredCall, ScriptMode
    from ._writes import Command

__all__ = ["Executor", "Group", "GroupTemplate", "RoundTripObserver", "merge_groups"]


_PROBED: weakref.WeakKeyDictionary[object, Capabilities] = weakref.WeakKeyDictionary()
"""Capabilities learnt by probing, per connection pool (a cluster client: per cluster)."""

_SCRIPTLESS: weakref.WeakKeyDictionary[object, bool] = weakref.WeakKeyDictionary()
"""Connection pools (a cluster client: clusters) found to refuse scripts, in ``auto`` mode."""


@dataclass(frozen=True, slots=True)
class Group:
    """Commands that must reach the node owning ``route`` (all their keys share its slot).

    :param route: a key whose hash slot picks the node (ignored on a single server)
    :param commands: the commands, in order
    :param transaction: wrap them in MULTI/EXEC (atomic; required with temp keys)
    :param wait: with ``replicas_ack``, follow a transaction with ``WAIT`` (a write that
        must survive a failover); ``False`` for a count's scratch work
    """

    route: str
    commands: Sequence[Command]
    transaction: bool = False
    wait: bool = True


@dataclass(frozen=True, slots=True)
class GroupTemplate:
    """Command groups packed once with :data:`~bitlens._transport.HOLE` arguments.

    Made by :meth:`Executor.prepare_template`, sent by :meth:`Executor.run_template`.

    :param groups: the groups, holes in place
    :param template: their wire, packed
    :param ack: the executor's ``replicas_ack`` and ``replicas_timeout`` it was packed with
    """

    groups: tuple[Group, ...]
    template: Template
    ack: tuple[int, float]


def merge_groups(groups: list[Group]) -> list[Group]:
    """One group of every command (a single server takes them in one pipeline anyway).

    :param groups: at least one group
    """
    return [Group(groups[0].route, [c for g in groups for c in g.commands])]


_RETRYABLE = (
    RedisConnectionError,
    MovedError,
    AskError,  # only when even the importing node redirects: retried after a re-read
    TryAgainError,
    ClusterDownError,
    SlotNotCoveredError,
)


NODE_PIPELINES = 16
"""How many pipelines the executor keeps in flight to one cluster node at once."""


_AUTH_MARKERS = ("NOAUTH", "WRONGPASS", "must be called with the client already authenticated")


def translate(error: BaseException) -> BaseException:
    """Return the typed bitlens error for a Redis error, or ``error`` itself.

    Authentication failures become :class:`AuthenticationFailed`, ``OOM`` replies
    :class:`ServerOutOfMemory` and ACL ``NOPERM`` replies :class:`PermissionDenied`.
    """
    if isinstance(error, BitlensError):
        return error
    text = str(error)
    scripted = script_error(text) if isinstance(error, ResponseError) else None
    if scripted is not None:  # the count script's own errors (a refused cleanup, bad argv)
        return scripted
    if isinstance(error, (AuthenticationError, AuthenticationWrongNumberOfArgsError)) or (
        isinstance(error, (ResponseError, RedisConnectionError))
        and any(marker in text for marker in _AUTH_MARKERS)
    ):
        return AuthenticationFailed(text)
    if isinstance(error, ResponseError):
        if isinstance(error, OutOfMemoryError) or "OOM command not allowed" in text:
            return ServerOutOfMemory(text)
        if (
            isinstance(error, NoPermissionError)
            or "NOPERM" in text
            or "can't run this command" in text
            or "no permissions" in text
        ):
            match = re.search(r"run the '([^']+)'", text)
            if match:
                command = match[1].upper()
            elif "key" in text.lower():
                command = "a command on a key outside the user's key patterns"
            else:
                command = "a command inside a script"
            return PermissionDenied(command, text)
    return error


def _filled(group: Group, number: int) -> Group:
    """``group`` with ``number`` in place of every :data:`~bitlens._transport.HOLE`."""
    commands = [tuple(number if arg is HOLE else arg for arg in c) for c in group.commands]
    return Group(group.route, commands, group.transaction, group.wait)


def _raise_typed(error: ResponseError | RedisConnectionError) -> NoReturn:
    """Raise the typed bitlens error for ``error`` (from it), or ``error`` itself."""
    typed = translate(error)
    if typed is error:
        raise error
    raise typed from error


def _is_auth(error: BaseException) -> bool:
    return isinstance(translate(error), AuthenticationFailed)


class Executor:
    """Sends command groups in one round trip per node on a ``redis.asyncio`` client.

    On a single server every group of a call travels in one pipeline on one pooled
    connection. On a Redis Cluster the groups are split by the node owning each group's
    slot, and the nodes' pipelines are sent concurrently (a bounded task group); a node
    that fails with a redirection (MOVED/ASK/TRYAGAIN), CLUSTERDOWN or a connection error
    makes the executor re-read the cluster's layout and send that node's groups again,
    with backoff, up to ``retries`` times. Every group bitlens sends is safe to repeat:
    marks are idempotent and queries leave nothing behind.

    :param client: a ``Redis`` or ``RedisCluster`` client; the executor never closes it
    :param replicas_ack: after writes, wait until this many replicas have them (``WAIT``)
    :param replicas_timeout: how long ``WAIT`` may take, in seconds
    :param retries: attempts after the first on a cluster
    :param capabilities: the server's BITOP extensions as the caller states them; ``None``
        (the default) learns them by probing once per connection pool (see :meth:`run`)
    :param scripts: how counts run (see :meth:`run_counts`): ``"auto"`` sends the count
        script until the server refuses scripts, then lowers its calls to transactions;
        ``"lua"`` always sends the script; ``"none"`` always lowers
    """

    __slots__ = (
        "_client",
        "_cluster",
        "_owner",
        "_per_node",
        "_scripts",
        "_slots",
        "_stated",
        "_transport",
        "observer",
        "replicas_ack",
        "replicas_timeout",
        "retries",
    )

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        replicas_ack: int = 0,
        replicas_timeout: float = 1.0,
        retries: int = 8,
        capabilities: Capabilities | None = None,
        scripts: ScriptMode = "auto",
    ) -> None:
        if scripts not in SCRIPT_MODES:
            raise ValueError(f"scripts must be one of {SCRIPT_MODES}, got {scripts!r}")
        self._scripts: ScriptMode = scripts
        self._transport = transport = Transport(client)
        self._cluster = transport.is_cluster
        self._stated = capabilities
        # Probed once per pool: trackers sharing a client share the answer. A cluster is
        # probed once as a whole: a plan is compiled once for every shard before it is sent,
        # and a cluster's nodes run one server version (state them during an upgrade).
        self._owner: object = transport.owner
        self.observer: RoundTripObserver | None = None
        self.replicas_ack = replicas_ack
        self.replicas_timeout = replicas_timeout
        self.retries = retries
        # redis-py's pool raises MaxConnectionsError past its limit (100 by default);
        # bitlens queues its own callers instead, so thousands of tasks can share a tracker.
        limit = transport.max_connections()
        self._slots = anyio.Semaphore(
            limit if limit is not None and 0 < limit < 2**31 else 100, fast_acquire=True
        )
        # At most 16 pipelines in flight per node, each node on its own: a master that is
        # paused, slow or waiting for a replica delays only the work that needs it.
        self._per_node: dict[str, anyio.CapacityLimiter] = {}

    @property
    def capabilities(self) -> Capabilities | None:
        """The server's BITOP extensions: as stated, as probed, or ``None`` while unknown."""
        if self._stated is not None:
            return self._stated
        return _PROBED.get(self._owner)

    @property
    def stated(self) -> bool:
        """Whether the capabilities were stated by the caller (never probed)."""
        return self._stated is not None

    def forget_capabilities(self) -> None:
        """Drop probed capabilities (a node refused one), so the next call probes again."""
        _PROBED.pop(self._owner, None)

    @property
    def scripts(self) -> ScriptMode:
        """How counts run now: ``"lua"``, ``"none"``, or ``"auto"`` while not yet refused."""
        if self._scripts == "auto" and _SCRIPTLESS.get(self._owner):
            return "none"
        return self._scripts

    def prepare(self, groups: Sequence[Group]) -> Prepared | None:
        """Pack ``groups`` once, to send them again and again (single server only).

        See :meth:`Transport.prepare`; ``None`` when they cannot be prepared (a cluster,
        the public fallback, a script the server is not known to hold yet).

        :param groups: the command groups of one call (no probe; no ``WAIT``)
        """
        if self._cluster or not self._transport.fast:
            return None
        return self._transport.prepare(self._wire(groups))

    def prepare_template(self, groups: Sequence[Group]) -> GroupTemplate | None:
        """Pack ``groups`` once, every :data:`~bitlens._transport.HOLE` left open.

        A lone mark sends the same commands each time but for the bit offset: packed once
        per key set, each mark only fills the offset in. ``None`` where that cannot be done
        (a cluster, the public fallback, a script).

        :param groups: the command groups, with holes (no script calls)
        """
        if self._cluster or not self._transport.fast:
            return None
        template = self._transport.template(self._wire(groups))
        if template is None:
            return None
        return GroupTemplate(tuple(groups), template, (self.replicas_ack, self.replicas_timeout))

    async def run_template(self, shaped: GroupTemplate, number: int) -> list[Replies]:
        """Send ``shaped`` with ``number`` in every hole; return each group's replies.

        The same round trip :meth:`run` sends for the groups so filled, with the same
        retries, errors and ``WAIT``. While an observer watches, or after ``replicas_ack``
        or ``replicas_timeout`` changed, the filled groups go through :meth:`run` instead.

        :param shaped: from :meth:`prepare_template`
        :param number: what fills the holes (a non-negative int)
        """
        if self.observer is not None or shaped.ack != (self.replicas_ack, self.replicas_timeout):
            return await self.run([_filled(group, number) for group in shaped.groups])
        prepared = shaped.template.fill(number)
        try:
            async with self._slots:
                replies = await self._transport.send_prepared(prepared, None, check=0)
                if replies is None:  # never: a template calls no script
                    raise RuntimeError("a template was refused")
                return self._split(shaped.groups, replies)
        except (ResponseError, RedisConnectionError) as error:
            _raise_typed(error)

    async def run_counts(
        self,
        groups: Sequence[Group],
        *,
        probe: str | None = None,
        prepared: Prepared | None = None,
    ) -> list[Replies]:
        """Like :meth:`run`, for groups carrying count-script calls, in the script mode.

        In ``"none"`` mode (stated, or learnt in ``"auto"`` mode) each count-script
        command (``EVAL``/``EVALSHA`` of the count script) becomes a transaction of its
        own, lowered by :func:`~bitlens._lower.lower`, riding in the same round trip per
        node, and its reply is decoded to exactly what the script would have answered.
        In ``"auto"`` mode a refusal of scripts (an unknown ``EVAL``, an ACL refusal, no
        Lua engine) switches this connection pool to ``"none"`` and sends the groups again,
        lowered: one more round trip, once per pool.

        With ``prepared`` (:meth:`prepare` of the same ``groups``) and no probe, its
        bytes are sent as they are; if the server lost the script, the groups are sent
        the ordinary way instead, in one more round trip.

        :param groups: the command groups (count-script calls outside any transaction)
        :param probe: as for :meth:`run`
        :param prepared: the groups, prepared
        """
        if self.scripts == "none":
            return await self._run_lowered(groups, probe)
        try:
            if prepared is not None and probe is None:
                results = await self._run_prepared(groups, prepared)
                if results is not None:
                    return results
            return await self.run(groups, probe=probe)
        except (ResponseError, BitlensError) as error:
            cause = error.__cause__ if isinstance(error, BitlensError) else error
            if (
                self._scripts != "auto"
                or not isinstance(cause, ResponseError)
                or not refuses_scripts(str(cause))
                or not any(count_call(c) for g in groups for c in g.commands)
            ):
                raise
            _SCRIPTLESS[self._owner] = True
        return await self._run_lowered(groups, probe)

    async def _run_prepared(
        self, groups: Sequence[Group], prepared: Prepared
    ) -> list[Replies] | None:
        """Send prepared groups; ``None`` when their scripts must be sent again."""
        try:
            async with self._slots:
                replies = await self._transport.send_prepared(prepared, self.observer, check=0)
        except (ResponseError, RedisConnectionError) as error:
            _raise_typed(error)
        return None if replies is None else self._split(groups, replies)

    async def _run_lowered(self, groups: Sequence[Group], probe: str | None) -> list[Replies]:
        """Send ``groups`` with their count-script calls lowered to transactions."""
        wire: list[Group] = []
        # Per original group, its parts: (number of plain replies, None) or (1, call).
        shapes: list[list[tuple[int, LoweredCall | None]]] = []
        for group in groups:
            shape: list[tuple[int, LoweredCall | None]] = []
            plain: list[Command] = []
            for command in group.commands:
                found = None if group.transaction else count_call(command)
                if found is None:
                    plain.append(command)
                    continue
                if plain:
                    wire.append(Group(group.route, plain, group.transaction, group.wait))
                    shape.append((len(plain), None))
                    plain = []
                lowered = lower(*found)
                wire.append(Group(group.route, lowered.commands, transaction=True, wait=False))
                shape.append((1, lowered))
            if plain or not shape:
                wire.append(Group(group.route, plain, group.transaction, group.wait))
                shape.append((len(plain), None))
            shapes.append(shape)
        results = iter(await self.run(wire, probe=probe))
        out: list[Replies] = []
        for shape in shapes:
            replies = Replies()
            for _, call in shape:
                result = next(results)
                if call is None:
                    replies += result
                    continue
                answer = decode(call, result)
                if isinstance(answer, Exception):
                    raise answer
                replies.append(answer)
            out.append(replies)
        return out

    @property
    def is_cluster(self) -> bool:
        """Whether the client is a ``RedisCluster``."""
        return self._cluster

    async def send(
        self, commands: Sequence[Command], *, transaction: bool = False, probe: str | None = None
    ) -> Replies:
        """Send one group on a single server (or to the node of its first key).

        :param commands: the commands, each a tuple of arguments
        :param transaction: wrap them in MULTI/EXEC (atomic per server)
        :param probe: a fresh key to probe the server's capabilities on, if still unknown
        :raises redis.exceptions.ResponseError: the first error reply, after all were read
        :raises redis.exceptions.ConnectionError: when the connection fails (after retries)
        """
        route = next((str(c[1]) for c in commands if len(c) > 1), "")
        return (await self.run([Group(route, commands, transaction)], probe=probe))[0]

    def node_of(self, key: str) -> str | None:
        """The name of the cluster node that owns ``key``'s slot now, if known.

        ``None`` on a single server, and on a cluster whose slots were not read yet.

        :param key: a key
        """
        if not self._cluster:
            return None
        if not self._transport.slots_known:
            return None
        try:
            return self._transport.node_for(key).name
        except SlotNotCoveredError:
            return None

    async def run(self, groups: Sequence[Group], *, probe: str | None = None) -> list[Replies]:
        """Send ``groups`` in one round trip per node; return each group's replies.

        While the server's BITOP capabilities are unknown and a ``probe`` key is given, the
        probe's commands (:meth:`Capabilities.probe_commands`: ``BITOP DIFF`` and ``ANDOR``
        over that missing key, which write nothing) ride along as a group of their own,
        outside any MULTI, routed by the key: on a single server in the same pipeline, on a
        cluster to the node owning the key's slot (give a key in the slot of a group of the
        call, and no node is added). Their error replies are answers, never raised: a
        syntax error or an ACL refusal means "unsupported". ``INFO`` is not needed (it is
        in ``@dangerous``, which a least-privilege user lacks).

        :param groups: the command groups
        :param probe: a key that holds nothing (e.g. a fresh temp key of the call), in the
            slot of one of the groups
        :raises redis.exceptions.ResponseError: the first error reply, after all were read
        :raises redis.exceptions.ConnectionError: when a node stays unreachable
        :raises ReplicationTimeout: when writes were not acknowledged by enough replicas
        """
        if not groups:
            return []
        probing = probe is not None and self.capabilities is None
        if probe is not None and probing:
            # Its own group, outside any MULTI: an error reply (the operation is unknown,
            # the user may not run BITOP) is read and kept, never an aborted transaction.
            groups = [Group(probe, Capabilities.probe_commands(probe)), *groups]
        try:
            if self._cluster:
                results = await self._run_cluster(groups, probing)
            else:
                async with self._slots:
                    results = await self._run_pool(groups, probing)
        except (ResponseError, RedisConnectionError) as error:
            _raise_typed(error)
        if probing:
            learnt = Capabilities.from_probe(results.pop(0))
            if learnt is not None:  # else (e.g. OOM, LOADING): probe again next time
                _PROBED[self._owner] = learnt
        return results

    async def _run_pool(self, groups: Sequence[Group], probing: bool = False) -> list[Replies]:
        wire = self._wire(groups)
        skip = _PROBE_WIDTH if probing else 0
        replies = await self._transport.exchange(None, wire, self.observer, check=skip)
        return self._split(groups, replies)

    def _wire(self, groups: Sequence[Group]) -> list[Command]:
        wire: list[Command] = []
        for group in groups:
            if group.transaction:
                wire.append(("MULTI",))
                wire.extend(group.commands)
                wire.append(("EXEC",))
            else:
                wire.extend(group.commands)
        if self.replicas_ack and any(g.transaction and g.wait for g in groups):
            wire.append(("WAIT", self.replicas_ack, int(self.replicas_timeout * 1000)))
        return wire

    def _split(self, groups: Sequence[Group], replies: list[object]) -> list[Replies]:
        results: list[Replies] = []
        at = 0
        for group in groups:
            if group.transaction:
                at += len(group.commands) + 2
                results.append(_exec_replies([replies[at - 1]]))
            else:
                results.append(Replies(replies[at : at + len(group.commands)]))
                at += len(group.commands)
        if at < len(replies):  # the WAIT
            acked = replies[at]
            if not isinstance(acked, int) or acked < self.replicas_ack:
                raise ReplicationTimeout(self.replicas_ack, acked if isinstance(acked, int) else 0)
        return results

    async def _run_cluster(self, groups: Sequence[Group], probing: bool = False) -> list[Replies]:
        transport = self._transport
        await transport.load_slots()
        results: list[Replies | None] = [None] * len(groups)
        pending = list(range(len(groups)))
        for attempt in range(self.retries + 1):
            by_node: dict[Node, list[int]] = {}
            for index in pending:
                node = transport.node_for(groups[index].route)
                by_node.setdefault(node, []).append(index)
            failed: list[int] = []
            errors: list[BaseException] = []
            fatal: list[Exception] = []
            async with anyio.create_task_group() as tg:
                for node, indexes in by_node.items():
                    tg.start_soon(
                        self._node_task,
                        node,
                        groups,
                        indexes,
                        results,
                        (failed, errors, fatal),
                        probing,
                    )
            if fatal:  # e.g. a WRONGTYPE reply: raised as itself, as on a single server
                raise fatal[0]
            if not failed:
                break
            if attempt == self.retries:
                raise errors[0]
            await anyio.sleep(min(0.05 * 2**attempt, 1.0))
            with anyio.CancelScope(shield=True), contextlib.suppress(*_RETRYABLE):
                await transport.refresh()  # the next attempt tries again
            pending = sorted(failed)
        return [r if r is not None else Replies() for r in results]

    async def _node_task(
        self,
        node: Node,
        groups: Sequence[Group],
        indexes: list[int],
        results: list[Replies | None],
        outcome: tuple[list[int], list[BaseException], list[Exception]],
        probing: bool,
    ) -> None:
        failed, errors, fatal = outcome
        limiter = self._per_node.get(node.name)
        if limiter is None:
            limiter = self._per_node[node.name] = anyio.CapacityLimiter(NODE_PIPELINES)
        async with limiter:
            try:
                replies = await self._run_node(
                    node, [groups[i] for i in indexes], probing and indexes[0] == 0
                )
            except _RETRYABLE as exc:
                if _is_auth(exc):
                    fatal.append(exc)
                    return
                failed.extend(indexes)
                errors.append(exc)
                return
            except Exception as exc:
                # Kept for _run_cluster to raise once every node's pipeline is read: raised
                # here, anyio's task group would wrap it in an ExceptionGroup, so callers
                # could not catch a ResponseError on a cluster as they do on one server.
                fatal.append(exc)
                return
        for index, reply in zip(indexes, replies, strict=True):
            results[index] = reply

    async def _run_node(
        self, node: Node, groups: Sequence[Group], probing: bool = False
    ) -> list[Replies]:
        """Send ``groups`` to ``node``; follow ``ASK`` redirects of a migrating slot.

        A group whose every command was answered ``ASK`` touches only keys that already
        left the node (or never existed): it is sent again to the importing node, each
        command (or the whole MULTI) behind ``ASKING``, without touching the slot map. A
        group only partly redirected (some of its keys still here, some moved) cannot run
        atomically anywhere until the migration ends: it fails with ``TRYAGAIN`` and the
        cluster loop retries it with backoff.

        With ``probing``, the first group is the capability probe, whose error replies
        (an unknown operation, a user without ``+bitop``) are returned, not raised.
        """
        skip = _PROBE_WIDTH if probing else 0
        replies = await self._exchange(node, self._wire(groups))
        asked = _asked_groups(groups, replies)
        if not asked:
            _raise_first_error(replies, skip=skip)
            return self._split(groups, replies)
        per_group = _group_slices(groups, replies)
        by_target: dict[tuple[str, int], list[int]] = {}
        for index, target in asked.items():
            by_target.setdefault(target, []).append(index)
        results: list[Replies | None] = [None] * len(groups)
        for (host, port), indexes in by_target.items():
            target_node = self._transport.node_at(host, port)
            if target_node is None:
                raise TryAgainError(f"ASK to unknown node {host}:{port}")
            redirected = [groups[i] for i in indexes]
            wire, drop = _asking_wire(redirected)
            if self.replicas_ack and any(g.transaction and g.wait for g in redirected):
                wire.append(("WAIT", self.replicas_ack, int(self.replicas_timeout * 1000)))
            again = await self._exchange(target_node, wire)
            again = [reply for at, reply in enumerate(again) if at not in drop]
            if _asked_groups(redirected, again):
                raise TryAgainError("slot still migrating")
            _raise_first_error(again, skip=skip if indexes[0] == 0 else 0)
            for index, result in zip(indexes, self._split(redirected, again), strict=True):
                results[index] = result
        rest = [i for i in range(len(groups)) if i not in asked]
        if rest:
            kept = [reply for i in rest for reply in per_group[i]]
            if self.replicas_ack and len(replies) > sum(map(len, per_group)):
                kept.append(replies[-1])  # the WAIT
            _raise_first_error(kept, skip=skip if rest[0] == 0 else 0)
            for index, result in zip(
                rest, self._split([groups[i] for i in rest], kept), strict=True
            ):
                results[index] = result
        return [r if r is not None else Replies() for r in results]

    async def _exchange(self, node: Node, wire: list[Command]) -> list[object]:
        """Send ``wire`` to ``node``; return every reply, errors too."""
        return await self._transport.exchange(node, wire, self.observer)


def _group_slices(groups: Sequence[Group], replies: list[object]) -> list[list[object]]:
    """Cut the replies of a pipeline into each group's own (MULTI and EXEC included)."""
    out: list[list[object]] = []
    at = 0
    for group in groups:
        width = len(group.commands) + (2 if group.transaction else 0)
        out.append(replies[at : at + width])
        at += width
    return out


def _asked_groups(groups: Sequence[Group], replies: list[object]) -> dict[int, tuple[str, int]]:
    """Return the groups whose every command was answered ``ASK``, with their target.

    A transaction counts as answered ``ASK`` when its ``EXEC`` was (Valkey 9 checks the
    keys of a queued transaction at ``EXEC``). A transaction partly redirected raises
    ``TRYAGAIN`` (its keys are split between the two nodes until the migration ends).
    """
    asked: dict[int, tuple[str, int]] = {}
    for index, (group, own) in enumerate(zip(groups, _group_slices(groups, replies), strict=True)):
        queued = own[1:-1] if group.transaction else own
        asks = [reply for reply in queued if isinstance(reply, AskError)]
        if not asks and group.transaction and isinstance(own[-1], AskError):
            # Valkey 9 queues the commands of a migrating slot and answers EXEC with ASK:
            # nothing ran, the whole transaction goes to the importing node.
            asked[index] = (own[-1].host, own[-1].port)
            continue
        if not asks:
            continue
        if len(asks) < len(queued):
            raise TryAgainError(f"slot {asks[0].slot_id} is migrating: keys on both nodes")
        asked[index] = (asks[0].host, asks[0].port)
    return asked


def _asking_wire(groups: Sequence[Group]) -> tuple[list[Command], set[int]]:
    """Return the wire for ``groups`` behind ``ASKING``, and the positions of its replies."""
    wire: list[Command] = []
    drop: set[int] = set()
    for group in groups:
        if group.transaction:  # the flag holds from MULTI until EXEC
            drop.add(len(wire))
            wire.extend([("ASKING",), ("MULTI",), *group.commands, ("EXEC",)])
        else:
            for command in group.commands:
                drop.add(len(wire))
                wire.extend([("ASKING",), command])
    return wire, drop


_PROBE_WIDTH = len(Capabilities.probe_commands("probe"))
"""How many commands the capability probe sends (its replies come first when probing)."""


def _raise_first_error(replies: list[object], *, skip: int = 0) -> None:
    """Raise the first error reply, if any (after every reply was read).

    :param skip: let error replies to the first ``skip`` commands pass (the probe's)
    """
    for reply in replies[skip:]:
        if isinstance(reply, ResponseError):
            raise reply


def _exec_replies(replies: list[object]) -> Replies:
    """Return the replies of the commands inside MULTI/EXEC (the EXEC array)."""
    result = replies[-1]
    if not isinstance(result, list):
        raise ResponseError(f"unexpected EXEC reply {result!r}")
    for item in result:  # pyright: ignore[reportUnknownVariableType]
        if isinstance(item, ResponseError):
            raise item
    return Replies(result)  # pyright: ignore[reportUnknownArgumentType]
