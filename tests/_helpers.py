"""Helpers shared by the tests that are not fixtures."""

from __future__ import annotations

import os
import re
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import redis.asyncio

from _forkserver import arun_python

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence

    from redis.asyncio.cluster import RedisCluster

    from bitlens._writes import Command
    from harness import EmbeddedClusterNode

    AclUser = Callable[[str, str, str | list[str]], Awaitable[None]]
    """``acl_user(url, name, rules)``, as the ``acl_user`` fixture yields it."""

__all__ = [
    "Ran",
    "Wires",
    "as_script_calls",
    "run_cli",
    "set_acl_user",
    "close_cluster_client",
    "connect",
    "connect_cluster",
    "EXAMPLES_SCALE_ENV",
    "examples",
    "paused_node",
    "paused_server",
    "ping",
    "scan_keys",
]


EXAMPLES_SCALE_ENV = "BITLENS_HYPOTHESIS_SCALE"
"""A fraction in (0, 1] that scales every property test's example count (default 1)."""


def _examples_scale() -> float:
    raw = os.environ.get(EXAMPLES_SCALE_ENV, "").strip()
    if not raw:
        return 1.0
    try:
        scale = float(raw)
    except ValueError:
        scale = -1.0
    if not 0 < scale <= 1:
        raise ValueError(f"{EXAMPLES_SCALE_ENV}={raw!r}: expected a number in (0, 1]")
    return scale


def examples(n: int) -> int:
    """How many examples a property test runs: ``n`` times ``$BITLENS_HYPOTHESIS_SCALE``.

    The scale lets the runs that repeat the suite on another Python or server draw fewer
    examples than the one full run; never fewer than 10 (or ``n``, when smaller).

    :param n: the example count of a full run
    """
    return max(min(n, 10), round(n * _examples_scale()))


class Wires:
    """A round-trip observer (``Executor.observer``) that keeps the wire of every round trip."""

    def __init__(self) -> None:
        self.wires: list[tuple[Command, ...]] = []

    @contextmanager
    def round_trip(self, wire: Sequence[Command], connection: object) -> Iterator[None]:
        """Keep ``wire``."""
        self.wires.append(tuple(wire))
        yield


@dataclass(frozen=True)
class Ran:
    """What a finished ``bitlens`` process left: exit code, stdout and stderr."""

    code: int
    out: str
    err: str


async def run_cli(*args: str, stdin: str = "") -> Ran:
    """Run ``python -m bitlens ARGS`` to the end (no REDIS_URL, no BITLENS_DEBUG), forked.

    The process forks from a server that imported bitlens once (see ``_forkserver``).

    :param args: the command-line arguments
    :param stdin: what the process reads on its standard input
    """
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "BITLENS_DEBUG")}
    done = await arun_python(["-m", "bitlens", *args], env=env, stdin=stdin.encode(), timeout=60)
    return Ran(done.returncode, done.stdout.decode(), done.stderr.decode())


def connect(url: str) -> redis.asyncio.Redis:
    """Return a ``redis.asyncio`` client of ``url``, with redis-py's defaults.

    :param url: a ``redis://`` URL
    """
    return redis.asyncio.Redis.from_url(url)  # pyright: ignore[reportUnknownMemberType]


def connect_cluster(url: str) -> RedisCluster:
    """Return a ``RedisCluster`` client of the cluster ``url`` names, with redis-py's defaults.

    :param url: a ``redis://`` URL of any node
    """
    from redis.asyncio.cluster import RedisCluster

    return RedisCluster.from_url(url)


async def close_cluster_client(connection: RedisCluster) -> None:
    """Close every connection of a ``RedisCluster``, even after a connection error.

    redis-py 8.1's ``aclose()`` does nothing while the client is marked for
    re-initialization, which any ``ConnectionError`` leaves it, so its nodes are closed
    directly too (else their sockets leak and warn).

    :param connection: the client to close
    """
    await connection.aclose()
    await connection.nodes_manager.aclose()
    await connection.nodes_manager.aclose("startup_nodes")


@contextmanager
def paused_node(node: EmbeddedClusterNode, milliseconds: int, mode: str = "ALL") -> Iterator[None]:
    """Hold ``CLIENT PAUSE`` on a cluster node for the block, and ``CLIENT UNPAUSE`` on leaving.

    :param node: the node to pause (a master, usually)
    :param milliseconds: the longest the pause lasts, should the block outlive it
    :param mode: ``"ALL"`` or ``"WRITE"``
    """
    node.call("CLIENT", "PAUSE", milliseconds, mode)
    try:
        yield
    finally:
        node.call("CLIENT", "UNPAUSE")


@asynccontextmanager
async def paused_server(url: str, milliseconds: int, mode: str = "ALL") -> AsyncIterator[None]:
    """Hold ``CLIENT PAUSE`` on the server at ``url`` for the block (from a client of its
    own), and ``CLIENT UNPAUSE`` on leaving.

    Under ``"ALL"`` the unpausing client is paused too, so leaving waits until the pause
    runs out: give the shortest pause that safely outlasts what the block waits for.

    :param url: the server's URL
    :param milliseconds: the longest the pause lasts, should the block outlive it
    :param mode: ``"ALL"`` or ``"WRITE"``
    """
    admin = connect(url)
    try:
        await admin.execute_command("CLIENT", "PAUSE", milliseconds, mode)  # type: ignore[no-untyped-call]  # pyright: ignore[reportUnknownMemberType]
        try:
            yield
        finally:
            await admin.execute_command("CLIENT", "UNPAUSE")  # type: ignore[no-untyped-call]  # pyright: ignore[reportUnknownMemberType]
    finally:
        await admin.aclose()


async def ping(client: redis.asyncio.Redis) -> bool:
    """Send one ``PING`` and return whether the server answered.

    A typed wrapper: redis-py leaves ``ping``'s keyword arguments unannotated.

    :param client: the client to ping with
    """
    answer: bool = await client.ping()  # pyright: ignore[reportUnknownMemberType]
    return answer


async def set_acl_user(client: redis.asyncio.Redis, name: str, rules: str | list[str]) -> None:
    """Create ACL user ``name`` (or reset it) with exactly ``rules`` (``ACL SETUSER``).

    :param client: a client allowed to run ``ACL SETUSER``
    :param name: the user name
    :param rules: the ACL rules, as one space-separated string or as a list
    """
    words = rules.split() if isinstance(rules, str) else rules
    await client.execute_command("ACL", "SETUSER", name, "reset", *words)  # type: ignore[no-untyped-call]  # pyright: ignore[reportUnknownMemberType]


async def scan_keys(client: redis.asyncio.Redis | RedisCluster, prefix: str) -> set[bytes]:
    """Return every key under ``prefix:`` with ``SCAN`` (never ``KEYS``), for leak checks.

    On a cluster every master is scanned.

    :param client: a client of the server (or cluster) to search
    :param prefix: the test's key prefix, without the trailing colon
    """
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + ":*"
    keys: set[bytes] = set()
    found = cast(
        "AsyncIterator[bytes | str]",
        client.scan_iter(match=pattern, count=1000),  # pyright: ignore[reportUnknownMemberType]
    )
    async for key in found:
        keys.add(key.encode() if isinstance(key, str) else bytes(key))
    return keys


_LOWERED = frozenset(("BITOP", "PEXPIRE", "BITCOUNT", "DEL"))
"""The commands of a count-script call lowered to a transaction (``scripts="none"``)."""


def as_script_calls(names: list[str], script: str = "EVAL") -> list[str]:
    """Return ``names`` with each lowered count-script call (a MULTI..EXEC of only BITOP,
    PEXPIRE, BITCOUNT and DEL with a BITCOUNT or BITOP) shown as the script command it
    replaces.

    So a test asserts the same calls whichever way counts run.

    :param names: the command names a proxy saw, in order
    :param script: the name to show a lowered call as (``"EVAL"`` or ``"EVALSHA"``)
    """
    out: list[str] = []
    at = 0
    while at < len(names):
        if names[at] == "MULTI" and "EXEC" in names[at:]:
            end = names.index("EXEC", at)
            inside = names[at + 1 : end]
            if inside and set(inside) <= _LOWERED and {"BITOP", "BITCOUNT"} & set(inside):
                out.append(script)
                at = end + 1
                continue
        out.append(names[at])
        at += 1
    return out


_LIMIT_FIELDS = ("max_user_id", "mark_chunk_size", "members_chunk_bytes", "nowait_max_queue")


def tracker_with_option(
    client: object, option: str, value: object
) -> tuple[str, Callable[[], object]]:
    """How to build a Tracker with one option set, and the name its InvalidOption carries.

    Options that live in an option object (``Limits``, ``Coalesce``) are set there, e.g.
    ``"coalesce_delay"`` is ``Tracker(client, coalesce=Coalesce(delay=value))``.

    :param client: a URL or a client
    :param option: the option's flat name
    :param value: its value
    """
    import bitlens

    loose: dict[str, Any] = {}
    if option in _LIMIT_FIELDS:
        loose[option] = value
        return option, lambda: bitlens.Tracker(cast("Any", client), limits=bitlens.Limits(**loose))
    if option.startswith("coalesce_"):
        field = option.removeprefix("coalesce_")
        loose[field] = value
        return f"Coalesce.{field}", lambda: bitlens.Tracker(
            cast("Any", client), coalesce=bitlens.Coalesce(**loose)
        )
    loose[option] = value
    return option, lambda: bitlens.Tracker(cast("Any", client), **loose)
