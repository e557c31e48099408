"""The query side: resolve → plan → execute → a typed answer; the registry; members.

A count compiles its resolved trees into bounded script calls (:mod:`bitlens._plan`),
sends them with the registry check in one round trip per node, and turns the replies
into ints. ``contains`` and ``members`` read bits and evaluate the tree here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.exceptions import ResponseError

from ._client_counts import count_on_client
from ._exceptions import (
    ExtensionRefused,
    PermissionDenied,
    ScriptsUnavailable,
    UnsupportedOperation,
)
from ._execute import Executor, Group, GroupTemplate, merge_groups
from ._keys import KeySchema, TempKey, validate_user_id
from ._plan import (
    COUNT_SCRIPT,
    Capabilities,
    CountPlan,
    KeyRef,
    Node,
    ResolveContext,
    ScriptCall,
    clock_free,
    evaluate,
    iter_set_bits,
    leaves_of,
    plan_counts,
    resolve,
    script_error,
)
from ._replies import Replies, as_int, as_list
from ._transport import HOLE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Sequence

    from ._expr import Expr
    from ._options import Reads
    from ._plan import Command
    from ._state import Lifecycle, ShardRegistry
    from ._transport import Prepared

__all__ = ["CONTAINS_CHUNK_COMMANDS", "Reader", "eval_count"]

_log = logging.getLogger("bitlens")

CONTAINS_CHUNK_COMMANDS = 10_000
"""The most GETBITs one ``contains_many`` pipeline carries (ids times bitmaps of the tree)."""

MEMBERS_FAN_OUT = 16
"""How many shards' windows ``members()`` reads at once on a cluster (one per shard)."""

PLAN_CACHE_SIZE = 256
"""How many compiled batches of questions a tracker keeps (all are dropped when full)."""

RESOLVE_CACHE_SIZE = 1024
"""Resolved trees kept per tracker (emptied when full): keys are the expressions asked."""

LOOKUP_CACHE_SIZE = 4096
"""Trees and shards whose ``contains`` keys (and, on one server, packed request) a tracker
keeps (all are dropped when full)."""

REQUEST_CACHE_SIZE = 256
"""Packed count requests a tracker keeps (all are dropped when full; see ``Reader._request``)."""

REQUEST_CACHE_BYTES = 4 * 1024 * 1024
"""The most bytes of packed count requests a tracker keeps; a request above a sixteenth of
it is never kept."""

_ProgramKey = tuple[tuple[Node, ...], Capabilities | None]
_Programs = list[tuple[CountPlan, list[ScriptCall]]]
_RequestKey = tuple[tuple[Node, ...], Capabilities | None, tuple[int, ...], bool]
_Lookup = tuple[tuple[KeyRef, ...], list[str], "GroupTemplate | None"]


@dataclass(frozen=True, slots=True)
class _CountRequest:
    """One count round trip: its groups, and what the replies answer.

    :param groups: the command groups
    :param calls: ``(plan, call)`` of each script call, in send order
    :param kept: temp keys a call keeps for a later one (deleted if the count is cut off)
    :param probe: a fresh key to probe the server's capabilities on, while unknown
    :param caps: the capabilities its plans were compiled with
    :param prepared: the groups packed once (a kept request)
    """

    groups: list[Group]
    calls: list[tuple[CountPlan, ScriptCall]]
    kept: list[str]
    probe: str | None
    caps: Capabilities | None
    prepared: Prepared | None = None


class Reader:
    """Everything a tracker does to answer questions.

    :param executor: sends the queries
    :param schema: names the keys
    :param registry: the shards known to hold data
    :param state: the tracker's lifecycle
    :param context: how expressions resolve (zone, hourly tracking)
    :param reads: where counts are computed
    :param max_user_id: the largest id a question may name
    :param members_chunk: bytes of each bitmap read per round trip by ``members``
    """

    def __init__(
        self,
        executor: Executor,
        schema: KeySchema,
        registry: ShardRegistry,
        state: Lifecycle,
        *,
        context: ResolveContext,
        reads: Reads,
        max_user_id: int,
        members_chunk: int,
    ) -> None:
        self._executor = executor
        self._schema = schema
        self._registry = registry
        self._state = state
        self._context = context
        self._reads: Reads = reads
        self._max_user_id = max_user_id
        self._members_chunk = members_chunk
        # Temps of cut-off counts still to delete, and the one task deleting them.
        self._unkept: list[str] = []
        self._cleanup: asyncio.Task[None] | None = None
        self._programs: dict[_ProgramKey, _Programs] = {}
        self._resolved: dict[Expr, Node] = {}
        self._requests: dict[_RequestKey, _CountRequest] = {}
        self._lookups: dict[tuple[Node, int], _Lookup] = {}
        self._request_bytes = 0

    def resolve(self, expr: Expr) -> Node:
        """Resolve an expression against this tracker's zone and settings.

        The trees of expressions that read no clock (no ``Last``) are kept in a bounded
        cache (:data:`RESOLVE_CACHE_SIZE`): the same question asked again, as the same or
        an equal expression, skips resolving.

        :raises InvalidExpression: if ``expr`` is not an expression
        """
        try:
            found = self._resolved.get(expr)
        except TypeError:  # unhashable, so no expression: resolve() says what it is
            found = None
        if found is not None:
            return found
        node = resolve(expr, self._context)
        if clock_free(expr):
            if len(self._resolved) >= RESOLVE_CACHE_SIZE:
                self._resolved.clear()
            self._resolved[expr] = node
        return node

    async def refresh_shards(self) -> None:
        """Read the shard registry; re-register known shards it lost (e.g. after a flush).

        With ``reads="client"`` (a user that may only read) nothing is re-registered: the
        shards this tracker knows are still read, and its own next write re-asserts them.
        """
        if self._registry.fixed:
            return
        registry = self._schema.registry_key
        reply = await self._executor.send([("SMEMBERS", registry)])
        lost = self._registry.learn(reply.members_at(0))
        if lost and self._reads == "server":
            await self._executor.send([("SADD", registry, *lost)])

    async def wait_cleanup(self) -> None:
        """Wait for the task deleting temps that cut-off counts kept, if one runs."""
        if self._cleanup is not None:
            await asyncio.gather(self._cleanup, return_exceptions=True)

    async def count(self, nodes: Sequence[Node]) -> list[int]:
        """Count several resolved trees over every shard: normally one round trip.

        The round trip carries the ``EVAL`` calls of the count script over every known shard's
        keys and a check of the shard registry. Their number is a function of the width:
        for each plan of :func:`~bitlens._plan.plan_counts` and each of its
        :meth:`~bitlens._plan.CountPlan.calls`, ``ceil(shards / call.shards_per_call())``
        on one server (every shard on a cluster); all of them still ride in one round trip
        per node. The registry check is a ``SCARD`` once the tracker has read the
        registry (shards are only ever added and every shard this tracker knows is
        registered, so an equal cardinality proves every shard was covered), else the
        registry itself (``SMEMBERS``). Shards found that way are counted in one more round
        trip: a tracker's first count on data written elsewhere takes two.
        """
        if not nodes:
            return []
        if self._reads == "client":
            return await count_on_client(
                self._executor, self._schema, self._registry, nodes, self.refresh_shards
            )
        totals = [0] * len(nodes)
        questions = tuple(nodes)
        registry = self._schema.registry_key
        fixed = self._registry.fixed  # no registry to check: the shards are the layout's
        queried: set[int] = set()
        pending = self._registry.sorted()
        while True:
            loaded = self._registry.loaded
            request = self._request(questions, pending, loaded)  # plans before any I/O
            calls = request.calls
            try:
                results = await self._run_with_kept(
                    request.groups, request.kept, request.probe, request.prepared
                )
            except ResponseError as exc:
                typed = script_error(str(exc))
                if typed is not None:
                    raise typed from exc
                refused = _count_refused(exc, request.caps, stated=self._executor.stated)
                if refused is None:
                    raise
                if refused[1]:  # the probe's answer was wrong for some node: probe again
                    self._executor.forget_capabilities()
                raise refused[0] from exc
            except PermissionDenied as exc:
                if exc.command in ("SCARD", "SMEMBERS", "SADD"):
                    raise
                raise self._count_denied(exc) from exc
            replies = Replies.joined(results)
            for (plan, call), reply in zip(calls, replies[0 if fixed else 1 :], strict=True):
                for q, value in zip(call.questions, as_list(reply), strict=True):
                    totals[plan.indexes[q]] += as_int(value)
            if fixed:
                return totals
            queried.update(pending)
            if loaded and replies.int_at(0) == len(queried):
                return totals
            if loaded:
                await self.refresh_shards()
            else:
                lost = self._registry.learn(replies.members_at(0))
                if lost:
                    await self._executor.send([("SADD", registry, *lost)])
            pending = sorted(self._registry.known - queried)
            if not pending:
                return totals

    def _request(
        self, questions: tuple[Node, ...], pending: list[int], loaded: bool
    ) -> _CountRequest:
        """The round trip counting ``questions`` over the ``pending`` shards.

        On a single server whose capabilities are known, a request whose calls keep no
        temp key for a later call is built once and kept, packed once the server holds the
        count script (:meth:`Executor.prepare`), in a bounded cache
        (:data:`REQUEST_CACHE_SIZE` entries, :data:`REQUEST_CACHE_BYTES` bytes): asked
        again over the same shards, the question is sent as the same bytes.
        Its temp keys keep their names from call to call, which is safe: each script call
        (or lowered transaction) runs atomically and deletes every temp key it made before
        it returns. A request with temp keys kept between calls gets a fresh token per
        count, since other clients' commands may run between its calls.
        """
        caps = self._executor.capabilities
        cacheable = caps is not None and not self._executor.is_cluster
        key: _RequestKey = (questions, caps, tuple(pending), loaded)
        found = self._requests.get(key) if cacheable else None
        if found is not None:
            if found.prepared is None:  # kept before the server held its script
                prepared = self._executor.prepare(found.groups)
                if prepared is not None:
                    found = self._keep(key, dataclasses.replace(found, prepared=prepared))
            return found
        programs = self.compiled(questions)
        request = self._build_request(programs, pending, loaded, secrets.token_hex(8))
        if cacheable and not request.kept:
            prepared = self._executor.prepare(request.groups)
            if prepared is not None:
                request = dataclasses.replace(request, prepared=prepared)
            self._keep(key, request)
        return request

    def _keep(self, key: _RequestKey, request: _CountRequest) -> _CountRequest:
        """Keep ``request`` unless it is too large; start again when the cache is full."""
        if request.prepared is not None:
            size = len(request.prepared.packed)
        else:
            size = sum(
                len(arg) if isinstance(arg, (str, bytes)) else 8
                for group in request.groups
                for command in group.commands
                for arg in command
            )
        if size > REQUEST_CACHE_BYTES // 16:
            return request
        self._request_bytes += size
        if len(self._requests) >= REQUEST_CACHE_SIZE or self._request_bytes > REQUEST_CACHE_BYTES:
            self._requests.clear()
            self._request_bytes = size
        self._requests[key] = request
        return request

    def _build_request(
        self, programs: _Programs, pending: list[int], loaded: bool, token: str
    ) -> _CountRequest:
        """Build the groups of one count round trip (see :meth:`count`)."""
        schema = self._schema
        registry = schema.registry_key
        fixed = self._registry.fixed
        check: Command = ("SCARD" if loaded else "SMEMBERS", registry)
        # (plan, call) of each script call, in send order
        calls: list[tuple[CountPlan, ScriptCall]] = []
        if self._executor.is_cluster:  # scripts need one slot: calls per shard
            groups = [] if fixed else [Group(registry, [check])]
            for shard in pending:
                commands: list[Command] = []
                for plan, program in programs:
                    for call in program:
                        keys = call.keys(plan, schema, shard, token)
                        commands.append(eval_count(keys, call.argv))
                        calls.append((plan, call))
                groups.append(Group(schema.universe_key(shard), commands))
        else:  # every shard of the server, in bounded calls, in one pipeline
            commands = [] if fixed else [check]
            for plan, program in programs:
                for call in program:
                    step = call.shards_per_call()
                    for lo in range(0, len(pending), step):
                        keys = [
                            key
                            for shard in pending[lo : lo + step]
                            for key in call.keys(plan, schema, shard, token)
                        ]
                        commands.append(eval_count(keys, call.argv))
                        calls.append((plan, call))
            groups = [Group(registry, commands)]
        # While the server's BITOP extensions are unknown, probe them on a fresh key of
        # a shard of this call (no extra round trip; on a cluster, no extra node: with
        # no shard to count yet, the probe waits for the next round trip).
        probe = None
        if self._executor.capabilities is None and (pending or not self._executor.is_cluster):
            probe = schema.temp_key(pending[0] if pending else 0, token + "p", 0)
        kept = [
            schema.temp_key(shard, token, n)
            for _, program in programs
            for call in program
            for n in call.kept
            for shard in pending
        ]
        caps = programs[0][0].caps if programs else None
        return _CountRequest(groups, calls, kept, probe, caps)

    def compiled(self, nodes: tuple[Node, ...]) -> _Programs:
        """The plans of ``nodes`` and their script calls, compiled once per tree shape.

        A web handler asks the same few questions again and again: their plans (pure
        values that depend only on the trees, the server's capabilities and the shard
        size) are kept in a bounded cache, so a repeated count skips the planner.

        :raises QueryTooLarge: for a question too large for one call, before any I/O
        """
        key = (nodes, self._executor.capabilities)
        found = self._programs.get(key)
        if found is None:
            shard_bytes = self._schema.bitmap_bytes
            plans = plan_counts(nodes, self._executor.capabilities)
            found = [(plan, plan.calls(shard_bytes)) for plan in plans]
            if len(self._programs) >= PLAN_CACHE_SIZE:
                self._programs.clear()
            self._programs[key] = found
        return found

    async def _run_with_kept(
        self,
        groups: list[Group],
        kept: list[str],
        probe: str | None = None,
        prepared: Prepared | None = None,
    ) -> list[Replies]:
        """Run a count's groups; if they fail midway, delete the temps kept between calls.

        A temp key that one script call keeps for a later one exists between the two calls
        only (with a 60 s ``PEXPIRE``). When the pipeline is cut between them (a dropped
        connection, a cancelled caller), one task the tracker owns deletes every such key
        at once (one task for all cut-off counts, so cleanups never pile up connections),
        and the caller's cancellation cannot stop it; ``aclose()`` waits for it.
        """
        if not kept:
            return await self._executor.run_counts(groups, probe=probe, prepared=prepared)
        try:
            return await self._executor.run_counts(groups, probe=probe)
        except BaseException:
            self._unkept += kept
            if self._cleanup is None or self._cleanup.done():
                self._cleanup = asyncio.get_running_loop().create_task(self._delete_unkept())
            raise

    async def _delete_unkept(self) -> None:
        """Delete the temps cut-off counts kept, until none is left to delete."""
        while self._unkept:
            keys, self._unkept = self._unkept, []
            await self._delete_kept(keys)

    async def _delete_kept(self, keys: list[str]) -> None:
        """Delete temp keys a cut-off count kept between its calls (best effort, logged)."""
        by_slot: dict[int | str, list[str]] = {}  # a shard's temp keys share its slot
        for key in keys:
            temp = self._schema.parse(key)
            by_slot.setdefault(temp.shard if isinstance(temp, TempKey) else key, []).append(key)
        groups = [
            Group(names[0], [("DEL", *names[lo : lo + 1000])])
            for names in by_slot.values()
            for lo in range(0, len(names), 1000)
        ]
        try:
            await self._executor.run(groups if self._executor.is_cluster else merge_groups(groups))
        except Exception as exc:  # their PEXPIRE still removes them within 60 s
            _log.warning("could not delete %d kept temp keys: %r", len(keys), exc)

    def _count_denied(self, error: PermissionDenied) -> PermissionDenied:
        """The error for a user that may not write the count script's temp keys."""
        pattern = self._schema.acl_pattern
        needs = "+multi +exec" if self._executor.scripts == "none" else "+eval"
        return PermissionDenied(
            "BITOP, PEXPIRE and DEL on the count script's temp keys",
            f"{error.command}: {error.detail}",
            f"counting on the server needs {needs} +bitop +bitcount +pexpire +del and write "
            f"access to the prefix (~{pattern}, not the read-only %R~{pattern}); a user "
            f"that may only read can count with Tracker(..., reads='client'), which only "
            "reads (GETRANGE); see https://bitlens.readthedocs.io/en/latest/access-control.html",
        )

    async def contains(self, expr: Expr, user_id: int) -> bool:
        """Return whether ``user_id`` is in ``expr``: one round trip of ``GETBIT`` s.

        The id's bit in every bitmap of the tree, read in one group (they share the id's
        shard, so one slot on a cluster); a lone bitmap's bit is the answer itself, a tree
        is evaluated over the bits. The tree's keys in each shard are kept (bounded,
        :data:`LOOKUP_CACHE_SIZE`), on one server with the request packed once, the bit
        offset left open.

        :param expr: any bitlens expression
        :param user_id: the id to look up
        :raises InvalidUserId: for a bad id, before anything is sent
        :raises TrackerClosed: after ``aclose()``
        """
        self._state.check_open()
        node = self.resolve(expr)
        uid = validate_user_id(user_id, self._max_user_id)
        schema = self._schema
        shard, bit = schema.shard_of(uid), schema.bit_of(uid)
        found = self._lookups.get((node, shard))
        if found is None:  # the tree's keys in this shard, and on one server its request
            leaves = leaves_of(node)
            keys = [leaf.key(schema, shard) for leaf in leaves]
            group = Group(keys[0], [("GETBIT", key, HOLE) for key in keys])
            found = (leaves, keys, self._executor.prepare_template([group]))
            if len(self._lookups) >= LOOKUP_CACHE_SIZE:
                self._lookups.clear()
            self._lookups[node, shard] = found
        leaves, keys, shaped = found
        if shaped is not None:
            (replies,) = await self._executor.run_template(shaped, bit)
        else:  # a cluster or the public fallback
            group = Group(keys[0], [("GETBIT", key, bit) for key in keys])
            (replies,) = await self._executor.run([group])
        if isinstance(node, KeyRef):
            return bool(as_int(replies[0]))
        bits = {leaf: as_int(reply) for leaf, reply in zip(leaves, replies, strict=True)}
        return bool(evaluate(node, bits))

    async def contains_many(self, expr: Expr, user_ids: Iterable[int]) -> list[bool]:
        """Return, for each id, whether it is in ``expr``, in bounded pipelines.

        One round trip per :data:`CONTAINS_CHUNK_COMMANDS` GETBITs (ids times bitmaps of the
        tree; 10,000 ids of a one-bitmap tree), sent one after another so client memory
        stays bounded however many ids are asked.

        :param expr: any bitlens expression
        :param user_ids: the ids to look up
        :raises InvalidUserId: for a bad id, before anything is sent
        :raises TrackerClosed: after ``aclose()``
        """
        self._state.check_open()
        node = self.resolve(expr)
        uids = [validate_user_id(uid, self._max_user_id) for uid in user_ids]
        leaves = leaves_of(node)
        width = len(leaves)
        per_chunk = max(1, CONTAINS_CHUNK_COMMANDS // width)
        answers: list[bool] = []
        for lo in range(0, len(uids), per_chunk):  # one bounded pipeline at a time
            groups: list[Group] = []
            for uid in uids[lo : lo + per_chunk]:
                shard, bit = self._schema.shard_of(uid), self._schema.bit_of(uid)
                keys = [leaf.key(self._schema, shard) for leaf in leaves]
                groups.append(Group(keys[0], [("GETBIT", key, bit) for key in keys]))
            results = await self._executor.run(
                merge_groups(groups) if not self._executor.is_cluster else groups
            )
            replies = Replies.joined(results)
            answers += [
                bool(
                    evaluate(
                        node,
                        {
                            leaf: as_int(r)
                            for leaf, r in zip(leaves, replies[i : i + width], strict=True)
                        },
                    )
                )
                for i in range(0, len(replies), width)
            ]
        return answers

    async def members(self, expr: Expr) -> AsyncIterator[int]:
        """Yield the ids in ``expr`` in ascending order, streamed shard by shard.

        Each round trip reads ``limits.members_chunk_bytes`` of every bitmap in the tree for one
        shard (``GETRANGE``) and evaluates the tree client-side, so memory stays bounded
        and no temp key is made. On a cluster the windows of the next
        :data:`MEMBERS_FAN_OUT` shards are read at once (one pipeline per master holding
        any of them, all masters in parallel) and yielded in order: at most that many
        windows are held at a time.

        :param expr: any bitlens expression
        :raises TrackerClosed: after ``aclose()``
        """
        self._state.check_open()
        node = self.resolve(expr)
        leaves = leaves_of(node)
        await self.refresh_shards()
        chunk = self._members_chunk
        fan_out = MEMBERS_FAN_OUT if self._executor.is_cluster else 1
        pending = [(shard, 0) for shard in self._registry.sorted()]  # a heap, kept sorted
        ready: dict[tuple[int, int], tuple[int, int]] = {}  # window -> (bits, width)
        while pending:
            self._state.check_open()
            batch = [heapq.heappop(pending) for _ in range(min(fan_out, len(pending)))]
            groups: list[Group] = []
            for shard, start in batch:
                keys = [leaf.key(self._schema, shard) for leaf in leaves]
                end = start + chunk - 1
                groups.append(Group(keys[0], [("GETRANGE", key, start, end) for key in keys]))
            results = await self._executor.run(groups)
            for (shard, start), got in zip(batch, results, strict=True):
                replies = got.each_bytes()
                width = max(map(len, replies), default=0)
                result = 0
                if width:
                    values: dict[KeyRef, int] = {
                        leaf: int.from_bytes(reply.ljust(width, b"\0"), "big")
                        for leaf, reply in zip(leaves, replies, strict=False)
                    }
                    result = evaluate(node, values)
                ready[shard, start] = (result, width)
                if width == chunk:  # the shard goes on: read its next window
                    heapq.heappush(pending, (shard, start + chunk))
            # Yield every window read that no window still to read comes before.
            for window in sorted(ready):
                if pending and pending[0] < window:
                    break
                result, width = ready.pop(window)
                if result:
                    base = self._schema.user_id(window[0], window[1] * 8)
                    for bit in iter_set_bits(result.to_bytes(width, "big")):
                        yield base + bit


def _count_refused(
    error: ResponseError, caps: Capabilities | None, *, stated: bool
) -> tuple[UnsupportedOperation, bool] | None:
    """Return the typed error for a count the server cannot run, else ``None``.

    The flag says whether the probed capabilities must be forgotten.

    :param error: the count's error reply
    :param caps: the capabilities its plans were compiled with
    :param stated: whether the caller stated them (else they were probed)
    """
    text = str(error)
    if "scripting engine" in text or "unknown command 'eval'" in text.lower():
        return ScriptsUnavailable(text), False
    if caps is None or not (caps.diff or caps.andor) or "syntax error" not in text:
        return None
    if stated:
        return ExtensionRefused(caps, text, probed=False), False
    # Probed on one node, refused by another (a cluster mid-upgrade): the caller forgets
    # the probe's answer, so the next count probes again rather than every count failing.
    return ExtensionRefused(caps, text, probed=True), True


def eval_count(keys: list[str], argv: Sequence[str | int]) -> Command:
    """The ``EVAL`` of the count script over ``keys`` with its program ``argv``."""
    return ("EVAL", COUNT_SCRIPT, len(keys), *keys, *argv)
