"""The server misbehaves under marking load: every acknowledged mark is still in Redis.

Each scenario runs writers on every write path while the fault is injected, then ends with
the four checks of :func:`faults._invariants.check_invariants`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest
from redis.exceptions import RedisError

from _helpers import connect
from bitlens import BitlensError, DayEvents, MonthEvents, Tracker, WeekEvents
from bitlens.embedded import EmbeddedRedis
from faults._invariants import FAULT_CLIENT_NAME, Ledger, check_invariants, tracked_client
from faults._load import AT, Load, WritePath, run_writer

if TYPE_CHECKING:
    import redis.asyncio

pytestmark = pytest.mark.anyio

PATHS: tuple[WritePath, ...] = ("plain", "coalesced", "mark_events")
WRITERS = 6


def _tracker(client: redis.asyncio.Redis, prefix: str, path: WritePath) -> Tracker:
    return Tracker(client, prefix=prefix, coalesce=path == "coalesced")


async def _kill_named_clients(admin: redis.asyncio.Redis) -> int:
    """``CLIENT KILL`` every connection of the tracker under test; return how many."""
    listing = await admin.client_list()  # pyright: ignore[reportUnknownMemberType]
    killed = 0
    for entry in listing:
        if entry.get("name") == FAULT_CLIENT_NAME:
            killed += await admin.client_kill_filter(_id=entry["id"])  # pyright: ignore[reportUnknownMemberType]
    return killed


@pytest.mark.parametrize("path", PATHS)
async def test_client_kill_mid_pipeline_loses_no_acknowledged_mark(
    redis_url: str, prefix: str, path: WritePath
) -> None:
    """Connections killed again and again under load: every mark that returned is there."""
    ledger, load = Ledger(), Load()
    admin = connect(redis_url)
    client = tracked_client(redis_url)
    tracker = _tracker(client, prefix, path)
    killed = 0
    try:
        async with anyio.create_task_group() as tg:
            for writer in range(WRITERS):
                tg.start_soon(run_writer, tracker, ledger, load, path, writer, WRITERS)
            await load.under_way.wait()
            for _ in range(500):  # ten kills, whenever a connection is up
                killed += await _kill_named_clients(admin)
                if killed >= 10:
                    break
                await anyio.sleep(0.02)
            await load.more(50)
            tg.cancel_scope.cancel()
        assert killed >= 10
        await check_invariants(redis_url, prefix, ledger, tracker, connection_bound=WRITERS + 2)
    finally:
        await tracker.aclose()
        await client.aclose()
        await admin.aclose()


@pytest.mark.parametrize("path", PATHS)
async def test_server_sigkilled_and_restarted_with_aof_keeps_acknowledged_marks(
    redis_binary: str, prefix: str, path: WritePath
) -> None:
    """SIGKILL mid-burst with appendfsync always: after restart every acked mark is there."""
    ledger, load = Ledger(), Load()
    aof = ["--appendonly", "yes", "--appendfsync", "always"]
    with EmbeddedRedis(redis_binary, args=aof) as server:
        client = tracked_client(server.url)
        tracker = _tracker(client, prefix, path)
        try:
            async with anyio.create_task_group() as tg:
                for writer in range(WRITERS):
                    tg.start_soon(run_writer, tracker, ledger, load, path, writer, WRITERS)
                await load.under_way.wait()
                server.kill()
                await anyio.sleep(0.2)  # writers fail while it is down
                await anyio.to_thread.run_sync(server.start)
                await load.more(50)
                tg.cancel_scope.cancel()
            assert load.failed > 0  # the outage was seen
            await check_invariants(
                server.url, prefix, ledger, tracker, connection_bound=WRITERS + 2
            )
        finally:
            await tracker.aclose()
            await client.aclose()


@pytest.mark.parametrize("path", PATHS)
async def test_client_pause_past_the_socket_timeout_loses_no_acknowledged_mark(
    redis_url: str, prefix: str, path: WritePath
) -> None:
    """Writes paused for 4 socket timeouts: calls time out, none that returned is lost."""
    ledger, load = Ledger(), Load()
    admin = connect(redis_url)
    client = tracked_client(redis_url, socket_timeout=0.2)
    tracker = _tracker(client, prefix, path)
    try:
        async with anyio.create_task_group() as tg:
            for writer in range(WRITERS):
                tg.start_soon(run_writer, tracker, ledger, load, path, writer, WRITERS)
            await load.under_way.wait()
            await admin.client_pause(800, all=False)  # pyright: ignore[reportUnknownMemberType]
            await anyio.sleep(1.0)
            await load.more(50)
            tg.cancel_scope.cancel()
        assert load.failed > 0  # the pause outlasted the timeout
        await check_invariants(redis_url, prefix, ledger, tracker, connection_bound=WRITERS + 2)
    finally:
        await tracker.aclose()
        await client.aclose()
        await admin.aclose()


@pytest.mark.parametrize("path", ["plain", "mark_events"])
async def test_maxmemory_reached_mid_ingest_writes_each_mark_whole_or_not_at_all(
    redis_binary: str, prefix: str, path: WritePath
) -> None:
    """noeviction OOM mid-ingest: each mark's bits are all set or none; acked ones stay."""
    ledger = Ledger()
    full = ["--maxmemory", "6mb", "--maxmemory-policy", "noeviction"]
    with EmbeddedRedis(redis_binary, args=full) as server:
        admin = connect(server.url)
        client = tracked_client(server.url)
        tracker = Tracker(client, prefix=prefix)
        try:
            # Each id sits at the top of its own shard: 4 keys of 128 KiB per mark.
            ids = [(shard << 20) + (1 << 20) - 1 - shard for shard in range(200)]
            refused: BaseException | None = None
            for start in range(0, len(ids), 1 if path == "plain" else 5):
                chunk = ids[start : start + (1 if path == "plain" else 5)]
                for uid in chunk:
                    ledger.attempt("active", uid, AT)
                try:
                    if path == "plain":
                        await tracker.mark_event("active", chunk[0], AT)
                    else:
                        await tracker.mark_events([("active", uid, AT) for uid in chunk])
                except (RedisError, BitlensError) as error:
                    refused = error
                    break
                for uid in chunk:
                    ledger.ack("active", uid, AT)
            assert refused is not None, "the server never ran out of memory"
            assert "OOM" in str(refused) or "memory" in str(refused).lower()
            # All or nothing per mark: its day, week, month and universe bits agree.
            exprs = [make.from_date("active", AT) for make in (DayEvents, WeekEvents, MonthEvents)]
            for uid in sorted(set().union(*ledger.attempted.values())):
                seen = [await tracker.contains(expr, uid) for expr in exprs]
                universe = await admin.getbit(tracker.schema.universe_key(uid >> 20), uid & 0xFFFFF)  # pyright: ignore[reportUnknownMemberType]
                assert len({*seen, bool(universe)}) == 1, f"mark {uid} half written: {seen}"
            await admin.config_set("maxmemory", "0")  # pyright: ignore[reportUnknownMemberType]
            await check_invariants(server.url, prefix, ledger, tracker, connection_bound=2)
        finally:
            await tracker.aclose()
            await client.aclose()
            await admin.aclose()
