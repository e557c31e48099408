"""bitlens.compat.bitmapist on its own: the loop thread, systems, layouts and its fixed bugs.

The call-by-call comparison with bitmapist 3.119 is tests/test_compat_bitmapist.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
import threading
from typing import TYPE_CHECKING
from uuid import uuid4

import pytest
import redis

from bitlens import BitmapistSchema, InvalidUserId, ShardedSchema, UniverseUnavailable
from bitlens.compat import bitmapist as bm

if TYPE_CHECKING:
    from bitlens.embedded import EmbeddedRedis

UTC = dt.timezone.utc
AT = dt.datetime(2026, 11, 27, 9, tzinfo=UTC)


@pytest.fixture
def system(redis_server: EmbeddedRedis, prefix: str) -> str:
    """A system of its own for the test, on bitmapist's layout under ``{prefix}_``."""
    name = f"s{uuid4().hex[:8]}"
    bm.setup_redis(name, redis_server.host, redis_server.port, schema=BitmapistSchema(f"{prefix}_"))
    return name


@pytest.fixture
def raw(redis_server: EmbeddedRedis) -> redis.Redis:
    """A sync client of the session server, for looking at keys."""
    return redis.Redis(host=redis_server.host, port=redis_server.port)


def test_a_mark_writes_bitmapists_keys(system: str, prefix: str, raw: redis.Redis) -> None:
    """mark_event writes the month, week and day keys bitmapist would."""
    bm.mark_event("active", 3, system=system, now=AT)
    assert sorted(k.decode() for k in raw.scan_iter(match=f"{prefix}_*")) == [
        f"{prefix}_active_2026-11",
        f"{prefix}_active_2026-11-27",
        f"{prefix}_active_W2026-48",
    ]


def test_track_hourly_follows_the_module_flag(system: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With bitmapist.TRACK_HOURLY set, a mark without track_hourly sets the hour too."""
    monkeypatch.setattr(bm, "TRACK_HOURLY", True)
    bm.mark_event("active", 3, system=system, now=AT)
    assert 3 in bm.HourEvents("active", 2026, 11, 27, 9, system=system)


def test_bit_operations_are_lazy(system: str) -> None:
    """A BitOpAnd built before a mark counts it: no snapshot taken at construction."""
    a, b = bm.MonthEvents("a", 2026, 11, system), bm.MonthEvents("b", 2026, 11, system)
    both = bm.BitOpAnd(a, b)
    bm.mark_event("a", 1, system=system, now=AT)
    bm.mark_event("b", 1, system=system, now=AT)
    assert len(both) == 1
    assert list(both) == [1]


def test_bit_operations_leave_no_key(system: str, prefix: str, raw: redis.Redis) -> None:
    """Counting a nested BitOp leaves no bitop key behind."""
    bm.mark_event("a", 1, system=system, now=AT)
    a, b = bm.MonthEvents("a", 2026, 11, system), bm.WeekEvents("a", 2026, 48, system)
    assert len((a & b) | bm.BitOpXor(a, b)) == 1
    assert list(raw.scan_iter(match=f"{prefix}_bitop_*")) == []


def test_the_complement_needs_a_universe(system: str) -> None:
    """~x on bitmapist's layout raises UniverseUnavailable instead of counting padding bits."""
    bm.mark_event("a", 1, system=system, now=AT)
    with pytest.raises(UniverseUnavailable):
        len(~bm.MonthEvents("a", 2026, 11, system))


def test_a_named_universe_makes_the_complement_exact(
    redis_server: EmbeddedRedis, prefix: str
) -> None:
    """With schema=BitmapistSchema(universe="all"), ~x is the marked ids not in x."""
    name = f"u{uuid4().hex[:8]}"
    schema = BitmapistSchema(f"{prefix}_", universe="all")
    bm.setup_redis(name, redis_server.host, redis_server.port, schema=schema)
    bm.mark_event("a", 1, system=name, now=AT)
    bm.mark_event("b", 2, system=name, now=AT)
    assert list(~bm.MonthEvents("a", 2026, 11, name)) == [2]


def test_bitlens_layout_through_the_same_calls(
    redis_server: EmbeddedRedis, prefix: str, raw: redis.Redis
) -> None:
    """setup_redis(schema=ShardedSchema(...)) runs the same calls on bitlens' own layout."""
    name = f"b{uuid4().hex[:8]}"
    bm.setup_redis(name, redis_server.host, redis_server.port, schema=ShardedSchema(prefix))
    bm.mark_event("a", 2**40, system=name, now=AT)
    assert len(~bm.MonthEvents("b", 2026, 11, name)) == 1
    assert raw.exists(f"{prefix}:{{{2**20}}}:a:M2026-11") == 1


def test_bad_input_is_typed_and_sends_nothing(system: str, prefix: str, raw: redis.Redis) -> None:
    """An id of 2**32 raises InvalidUserId before any key is written."""
    with pytest.raises(InvalidUserId):
        bm.mark_event("a", 2**32, system=system, now=AT)
    assert list(raw.scan_iter(match=f"{prefix}_*")) == []


def test_an_unknown_system_is_a_key_error() -> None:
    """A system never set up raises KeyError naming setup_redis, as bitmapist's lookup does."""
    with pytest.raises(KeyError, match="setup_redis"):
        len(bm.UniqueEvents("a", system="nowhere"))


def test_temporary_bitop_keys_of_bitmapist_are_deleted(
    system: str, prefix: str, raw: redis.Redis
) -> None:
    """delete_temporary_bitop_keys removes bitmapist's result keys, not the events."""
    bm.mark_event("a", 1, system=system, now=AT)
    raw.set(f"{prefix}_bitop_AND_{prefix}_a_2026-11", b"\x40")
    bm.delete_temporary_bitop_keys(system)
    assert sorted(k.decode() for k in raw.scan_iter(match=f"{prefix}_*")) == [
        f"{prefix}_a_2026-11",
        f"{prefix}_a_2026-11-27",
        f"{prefix}_a_W2026-48",
    ]


def test_delete_all_events_leaves_nothing(system: str, prefix: str, raw: redis.Redis) -> None:
    """delete_all_events removes the events and bitmapist's bitop keys."""
    bm.mark_event("a", 1, system=system, now=AT)
    raw.set(f"{prefix}_bitop_OR_x", b"\x40")
    bm.delete_all_events(system)
    assert list(raw.scan_iter(match=f"{prefix}_*")) == []
    assert bm.get_event_names(system) == []


def test_calls_from_many_threads(system: str) -> None:
    """Eight threads marking at once all land: the loop thread serves each caller."""

    def work(n: int) -> None:
        for uid in range(n * 50, n * 50 + 50):
            bm.mark_event("t", uid, system=system, now=AT)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(bm.MonthEvents("t", 2026, 11, system)) == 400


def test_a_call_from_inside_an_event_loop(system: str) -> None:
    """Sync calls made from an async function (another loop) still complete."""

    async def handler() -> int:
        bm.mark_event("h", 1, system=system, now=AT)
        return len(bm.MonthEvents("h", 2026, 11, system))

    assert asyncio.run(handler()) == 1


def _child(system: str, out: multiprocessing.Queue[int]) -> None:
    bm.mark_event("f", 7, system=system, now=AT)
    out.put(len(bm.MonthEvents("f", 2026, 11, system)))


def test_a_forked_child_gets_its_own_loop(system: str) -> None:
    """After fork, the child's calls run on a loop and connections of its own."""
    bm.mark_event("f", 1, system=system, now=AT)  # the parent's loop and tracker exist
    context = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[int] = context.Queue()
    child = context.Process(target=_child, args=(system, out))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert out.get(timeout=5) == 2
    assert len(bm.MonthEvents("f", 2026, 11, system)) == 2
