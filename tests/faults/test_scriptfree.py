"""Counting where scripts are refused: a real ACL user without EVAL, EVALSHA and FCALL.

In ``scripts="auto"`` mode the first count finds out (its ``EVAL`` is refused) and is sent
again as transactions; every later count and retention table is exact in the same round
trips as with scripts.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest
import redis

from _helpers import ping
from _proxy import RoundTripProxy
from bitlens import DayEvents, PermissionDenied, Tracker, UnsupportedOperation
from bitlens.embedded import EmbeddedRedis
from faults._invariants import Ledger, check_invariants, tracked_client

if TYPE_CHECKING:
    from collections.abc import Iterator

    from bitlens import Expr

pytestmark = pytest.mark.anyio

AT = dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc)
END = AT.date()
PREFIX = "nolua"
COMMON = "+ping +hello +client|setname +select"
WRITER = (
    f"on >wpass resetkeys ~nolua:* -@all {COMMON} "
    "+multi +exec +setbit +bitfield +setrange +bitop +del +sadd +expireat +getbit +smembers"
)
# The server-side reader of docs/access-control.md, without any way to run a script.
READER = (
    f"on >rpass resetkeys ~nolua:* -@all {COMMON} +multi +exec "
    "+bitop +bitcount +pexpire +del +smembers +scard +getrange +getbit -eval -evalsha"
)
# The reader above, without the BITOP the count's temps need.
NO_BITOP = READER.replace("+bitop ", "").replace(">rpass", ">npass")
SCRIPTED = f"on >spass resetkeys ~nolua:* -@all {COMMON} +multi +exec +eval +evalsha " + (
    "+bitop +bitcount +pexpire +del +smembers +scard +getrange +getbit"
)


@pytest.fixture
def private(redis_binary: str) -> Iterator[EmbeddedRedis]:
    """A private server: a writer, a reader refused scripts, one allowed them, one no BITOP."""
    with EmbeddedRedis(redis_binary) as server:
        admin = redis.Redis.from_url(server.url)
        fcall = " -fcall" if server.version >= (7, 0, 0) else ""  # FCALL is new in 7.0
        users = (
            ("writer", WRITER),
            ("reader", READER + fcall),
            ("scripted", SCRIPTED),
            ("nobitop", NO_BITOP),
        )
        for name, rules in users:
            admin.execute_command("ACL", "SETUSER", name, "reset", *rules.split())  # type: ignore[no-untyped-call]  # pyright: ignore[reportUnknownMemberType]
        admin.close()
        yield server


async def _seed(url: str, ledger: Ledger) -> Tracker:
    """Mark ids in three shards over three days (acked in ``ledger``); return the writer."""
    writer = Tracker(url.replace("redis://", "redis://writer:wpass@"), prefix=PREFIX)  # owned
    for day in range(3):
        for uid in (1, 2 + day, 3_000_000 + day):
            at = AT - dt.timedelta(days=day)
            await writer.mark_event("active", uid, at)
            ledger.ack("active", uid, at)
    return writer


DAY = DayEvents("active", 2026, 11, 27)
EARLIER = DayEvents("active", 2026, 11, 26)
COMPOSITE: Expr = (DAY & ~EARLIER) | (EARLIER - DayEvents("active", 2026, 11, 25))


async def test_a_user_refused_scripts_counts_in_the_same_round_trips(
    private: EmbeddedRedis,
) -> None:
    """Refused EVAL, auto mode counts and runs retention exactly, in the scripts' round trips."""
    ledger = Ledger()
    writer = await _seed(private.url, ledger)
    async with RoundTripProxy(private.host, private.port) as proxy:
        client = tracked_client(proxy.url.replace("redis://", "redis://reader:rpass@"))
        scripted_client = tracked_client(proxy.url.replace("redis://", "redis://scripted:spass@"))
        async with Tracker(client, prefix=PREFIX) as reader:
            async with Tracker(scripted_client, prefix=PREFIX) as scripted:
                assert await scripted.count(DAY) == await reader.count(DAY) == 3  # learns
                trips: list[int] = []
                answers: list[object] = []
                for tracker in (scripted, reader):
                    proxy.reset()
                    answers.append(await tracker.count(COMPOSITE))
                    table = await tracker.retention("active", period="day", cohorts=3, end=END)
                    answers.append(table.rows)  # (its clock, table.now, differs)
                    trips.append(proxy.round_trips)
                    assert bool({"EVAL", "EVALSHA"} & set(proxy.command_names)) == (
                        tracker is scripted
                    )
                assert answers[:2] == answers[2:]
                assert answers[0] == 4
                assert trips[0] == trips[1]
            await check_invariants(private.url, PREFIX, ledger, writer)
        await client.aclose()
        await scripted_client.aclose()
    await writer.aclose()


async def test_finding_out_costs_one_round_trip_once_per_pool(private: EmbeddedRedis) -> None:
    """The first count of a pool refused scripts takes one round trip more; later ones do not."""
    ledger = Ledger()
    writer = await _seed(private.url, ledger)
    async with RoundTripProxy(private.host, private.port) as proxy:
        client = tracked_client(proxy.url.replace("redis://", "redis://reader:rpass@"))
        scripted_client = tracked_client(proxy.url.replace("redis://", "redis://scripted:spass@"))
        assert await ping(client)
        assert await ping(scripted_client)  # connected: the handshakes are not counted
        trips: list[int] = []
        for pool in (scripted_client, client, client):
            async with Tracker(pool, prefix=PREFIX) as tracker:  # a fresh tracker each time
                proxy.reset()
                assert await tracker.count(EARLIER) == 3
                trips.append(proxy.round_trips)
        assert trips == [trips[0], trips[0] + 1, trips[0]]
        await check_invariants(private.url, PREFIX, ledger, writer)
        await client.aclose()
        await scripted_client.aclose()
    await writer.aclose()


async def test_stated_none_sends_no_script(private: EmbeddedRedis) -> None:
    """scripts="none" never sends EVAL, from the first count on, and counts exactly."""
    ledger = Ledger()
    writer = await _seed(private.url, ledger)
    async with RoundTripProxy(private.host, private.port) as proxy:
        client = tracked_client(proxy.url.replace("redis://", "redis://scripted:spass@"))
        async with Tracker(client, prefix=PREFIX, scripts="none") as tracker:
            assert await tracker.count(COMPOSITE) == 4
            assert proxy.command_names.count("EXEC") >= 1
            assert not {"EVAL", "EVALSHA"} & set(proxy.command_names)
        await check_invariants(private.url, PREFIX, ledger, writer)
        await client.aclose()
    await writer.aclose()


async def test_stated_lua_raises_where_scripts_are_refused(private: EmbeddedRedis) -> None:
    """scripts="lua" does not fall back: the refused EVAL is a typed error."""
    ledger = Ledger()
    writer = await _seed(private.url, ledger)
    client = tracked_client(private.url.replace("redis://", "redis://reader:rpass@"))
    async with Tracker(client, prefix=PREFIX, scripts="lua") as tracker:
        with pytest.raises((PermissionDenied, UnsupportedOperation)):
            await tracker.count(DAY)
        await check_invariants(private.url, PREFIX, ledger, writer)
    await client.aclose()
    await writer.aclose()


async def test_a_user_without_bitop_is_told_what_a_script_free_count_needs(
    private: EmbeddedRedis,
) -> None:
    """With scripts="none" the PermissionDenied remedy names MULTI/EXEC, not EVAL."""
    ledger = Ledger()
    writer = await _seed(private.url, ledger)
    client = tracked_client(private.url.replace("redis://", "redis://nobitop:npass@"))
    async with Tracker(client, prefix=PREFIX, scripts="none") as tracker:
        with pytest.raises(PermissionDenied) as caught:
            await tracker.count(DAY & EARLIER)
        await check_invariants(private.url, PREFIX, ledger, writer)
    await client.aclose()
    await writer.aclose()
    assert caught.value.remedy is not None
    assert "needs +multi +exec +bitop" in caught.value.remedy
    assert "+eval" not in caught.value.remedy
