"""Server capabilities: probed with the commands themselves (never INFO), or stated.

A tracker learns whether the server has ``BITOP DIFF`` and ``ANDOR`` (Redis >= 8.2; not
Valkey, whatever ``redis_version`` it reports) by sending them over a key that does not
exist, riding along with its first count, once per connection pool. Stated capabilities
(``Tracker(..., capabilities=...)``) send no probe at all. The server tests of the DIFF and
ANDOR plans skip where the server lacks them; their pure planner tests live in
``test_expressions``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

import pytest
import redis
import redis.asyncio

from _helpers import scan_keys
from bitlens import (
    BitOpDiff,
    Capabilities,
    DayEvents,
    InvalidOption,
    MonthEvents,
    Tracker,
    UnsupportedOperation,
    WeekEvents,
    _execute,
)
from bitlens.embedded import EmbeddedRedis

if TYPE_CHECKING:
    from _proxy import RoundTripProxy
    from bitlens import Expr

pytestmark = pytest.mark.anyio

AT = datetime(2026, 11, 27, 13, 5, tzinfo=timezone.utc)
A = MonthEvents("a", 2026, 11)
B = WeekEvents("b", 2026, 48)
C = DayEvents("c", 2026, 11, 27)
MARKS = {"a": {1, 2, 3, 4, 2**20 + 5}, "b": {2, 2**20 + 5}, "c": {3, 9}}
"""Ids marked per event at ``AT``; the reference model of the queries below."""

QUESTIONS: list[tuple[Expr, set[int]]] = [
    (A - B, MARKS["a"] - MARKS["b"]),
    (A - B - C, MARKS["a"] - MARKS["b"] - MARKS["c"]),
    (A & (B | C), MARKS["a"] & (MARKS["b"] | MARKS["c"])),
    (BitOpDiff(A, B, C), MARKS["a"] - MARKS["b"] - MARKS["c"]),
]
"""Questions whose plans use DIFF or ANDOR when the server has them, with their answers."""


def _has_extensions(kind: str, version: tuple[int, int, int]) -> bool:
    """Whether a server has BITOP DIFF/ANDOR, from what the binary is (not from a probe)."""
    return kind == "redis" and version >= (8, 2, 0)


async def _marked(client: redis.asyncio.Redis, prefix: str, **options: object) -> Tracker:
    """Return a tracker on ``client`` that marked :data:`MARKS`."""
    tracker = Tracker(client, prefix=prefix, **options)  # type: ignore[arg-type]
    await tracker.mark_events([(e, uid, AT) for e, ids in MARKS.items() for uid in ids])
    return tracker


async def test_probe_finds_the_servers_extensions(
    client: redis.asyncio.Redis, prefix: str, server_kind: str, server_version: tuple[int, int, int]
) -> None:
    """After its first count a tracker knows DIFF/ANDOR exactly where the server has them."""
    tracker = await _marked(client, prefix)
    assert tracker.capabilities is None
    await tracker.count(A)
    present = _has_extensions(server_kind, server_version)
    assert tracker.capabilities == Capabilities(diff=present, andor=present)


async def test_probe_rides_on_the_first_count(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """The probe's two BITOPs travel in the first count's round trip: 1 round trip in all."""
    tracker = Tracker(counted_client, prefix=prefix)
    assert await tracker.count(A) == 0
    assert proxy.round_trips == 1
    assert proxy.command_names.count("BITOP") == 2
    assert "INFO" not in proxy.command_names


async def test_probe_is_sent_once_per_connection_pool(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """A second tracker on the same client reuses the first one's probe: no BITOP sent."""
    await Tracker(counted_client, prefix=prefix).count(A)
    second = Tracker(counted_client, prefix=prefix)
    proxy.reset()
    assert await second.count(A) == 0
    assert proxy.round_trips == 1
    assert "BITOP" not in proxy.command_names
    assert second.capabilities is not None


async def test_stated_capabilities_send_no_probe(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """With capabilities stated, the first count is its usual single round trip, no BITOP."""
    tracker = Tracker(counted_client, prefix=prefix, capabilities=Capabilities())
    assert await tracker.count(A) == 0
    assert proxy.round_trips == 1
    assert proxy.command_names == ["SMEMBERS"]
    assert tracker.capabilities == Capabilities()


async def test_stated_capabilities_count_correctly(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """A tracker told the server has no extensions answers every question exactly."""
    tracker = await _marked(client, prefix, capabilities=Capabilities())
    assert await tracker.count_many([q for q, _ in QUESTIONS]) == [len(r) for _, r in QUESTIONS]


async def test_probe_leaves_no_key(client: redis.asyncio.Redis, prefix: str) -> None:
    """The probe writes nothing: a prefix without data holds no key after a probing count."""
    tracker = Tracker(client, prefix=prefix)
    await tracker.count(A)
    assert tracker.capabilities is not None
    assert await scan_keys(client, prefix) == set()


async def test_extensions_count_exactly_where_the_server_has_them(
    client: redis.asyncio.Redis, prefix: str, server_kind: str, server_version: tuple[int, int, int]
) -> None:
    """With DIFF and ANDOR in use, every question matches the reference model."""
    if not _has_extensions(server_kind, server_version):
        version = ".".join(map(str, server_version))
        pytest.skip(f"BITOP DIFF/ANDOR need Redis >= 8.2; this server is {server_kind} {version}")
    caps = Capabilities(diff=True, andor=True)
    tracker = await _marked(client, prefix, capabilities=caps)
    assert await tracker.count_many([q for q, _ in QUESTIONS]) == [len(r) for _, r in QUESTIONS]


async def test_stating_extensions_the_server_lacks_raises(
    client: redis.asyncio.Redis, prefix: str, server_kind: str, server_version: tuple[int, int, int]
) -> None:
    """Told of DIFF/ANDOR on a server without them, a count raises UnsupportedOperation."""
    if _has_extensions(server_kind, server_version):
        pytest.skip("this server has BITOP DIFF/ANDOR")
    caps = Capabilities(diff=True, andor=True)
    tracker = await _marked(client, prefix, capabilities=caps)
    before = await scan_keys(client, prefix)
    with pytest.raises(UnsupportedOperation, match="capabilities=Capabilities"):
        await tracker.count(A - B - C)
    assert await scan_keys(client, prefix) == before  # no temp key left behind


@pytest.mark.parametrize("bad", [True, "diff", Capabilities(diff=1, andor=False)])  # type: ignore[arg-type]
def test_capabilities_option_is_checked(bad: object) -> None:
    """A ``capabilities`` that is not a Capabilities of bools raises InvalidOption."""
    with pytest.raises(InvalidOption, match="capabilities"):
        Tracker("redis://localhost:1/0", capabilities=bad)  # type: ignore[arg-type]


async def test_a_probed_extension_refused_later_is_probed_again(
    client: redis.asyncio.Redis, prefix: str, server_kind: str, server_version: tuple[int, int, int]
) -> None:
    """Probed DIFF that a server then refuses (a cluster mid-upgrade): one error, then exact."""
    if _has_extensions(server_kind, server_version):
        pytest.skip("this server has BITOP DIFF/ANDOR")
    tracker = await _marked(client, prefix)
    # What a probe answered by an upgraded node would have cached for this pool.
    _execute._PROBED[client.connection_pool] = Capabilities(diff=True, andor=True)
    with pytest.raises(UnsupportedOperation, match="probes again"):
        await tracker.count(A - B - C)
    assert tracker.capabilities is None
    assert await tracker.count(A - B - C) == len(MARKS["a"] - MARKS["b"] - MARKS["c"])
    assert tracker.capabilities == Capabilities()


async def test_a_server_without_lua_makes_count_raise_a_clear_error(
    redis_binary: str, server_kind: str, server_version: tuple[int, int, int]
) -> None:
    """On Valkey without its lua module, scripts="lua" marks, and count raises clearly."""
    if server_kind != "valkey" or server_version < (9, 0, 0):
        pytest.skip("only Valkey >= 9 runs Lua as a module that can be unloaded")
    with EmbeddedRedis(redis_binary, args=["--enable-module-command", "yes"]) as server:
        admin = redis.asyncio.Redis.from_url(server.url)
        try:
            await admin.execute_command("MODULE", "UNLOAD", "lua")  # type: ignore[no-untyped-call]  # pyright: ignore[reportUnknownMemberType]
        finally:
            await admin.aclose()
        async with Tracker(server.url, prefix="nolua", scripts="lua") as tracker:
            await tracker.mark_event("a", 1, AT)
            assert await tracker.contains(A, 1)
            with pytest.raises(UnsupportedOperation, match="no Lua scripts"):
                await tracker.count(A)


async def test_a_server_without_lua_counts_without_scripts_by_default(
    redis_binary: str, server_kind: str, server_version: tuple[int, int, int]
) -> None:
    """On Valkey without its lua module, the default (auto) counts exactly, as transactions."""
    if server_kind != "valkey" or server_version < (9, 0, 0):
        pytest.skip("only Valkey >= 9 runs Lua as a module that can be unloaded")
    with EmbeddedRedis(redis_binary, args=["--enable-module-command", "yes"]) as server:
        admin = redis.asyncio.Redis.from_url(server.url)
        try:
            await admin.execute_command("MODULE", "UNLOAD", "lua")  # type: ignore[no-untyped-call]  # pyright: ignore[reportUnknownMemberType]
            async with Tracker(server.url, prefix="nolua") as tracker:
                await tracker.mark_events([(e, uid, AT) for e, ids in MARKS.items() for uid in ids])
                for expr, expected in QUESTIONS:
                    assert await tracker.count(expr) == len(expected)
            assert not [k for k in await scan_keys(admin, "nolua") if b"~tmp" in k]
        finally:
            await admin.aclose()
