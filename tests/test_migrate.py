"""migrate(): bitmapist's layout into bitlens' (one server and a cluster) and back.

Each test marks a reference set through one layout, copies it, and reads every bitmap
back through the other; round trips and commands come from the counting proxy.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import TYPE_CHECKING

import pytest

from _helpers import run_cli
from bitlens import (
    BitmapistSchema,
    CannotMigrate,
    DayEvents,
    Expr,
    HourEvents,
    MonthEvents,
    Tracker,
    UniqueEvents,
    Universe,
    WeekEvents,
    YearEvents,
    migrate,
)
from bitlens._migrate import checkpoint_key

if TYPE_CHECKING:
    import redis.asyncio
    from redis.asyncio.cluster import RedisCluster

    from _proxy import RoundTripProxy

pytestmark = pytest.mark.anyio

UTC = dt.timezone.utc
AT = dt.datetime(2026, 12, 31, 22, tzinfo=UTC)
IDS = [0, 1, 7, 4_095, 2**20 - 1, 2**20, 2**20 + 5, 3 * 2**20 + 17, 5_000_000]


def leaves() -> list[Expr]:
    """Every bitmap the workload writes, at every granularity, and a year."""
    out: list[Expr] = []
    for event in ("active", "paid"):
        out += [
            MonthEvents(event, 2026, 12),
            WeekEvents(event, 2026, 53),
            DayEvents(event, 2026, 12, 31),
            HourEvents(event, 2026, 12, 31, 22),
            UniqueEvents(event),
            MonthEvents(event, 2027, 1),
            YearEvents(event, 2026),
        ]
    return out


async def _mark(tracker: Tracker, seed: int = 3) -> None:
    rng = random.Random(seed)
    active = [*IDS, *rng.sample(range(6_000_000), 300)]
    await tracker.mark_events(
        [("active", uid, AT) for uid in active], track_hourly=True, track_unique=True
    )
    await tracker.mark_events([("paid", uid, AT) for uid in active[::3]], track_hourly=True)
    await tracker.mark_event("active", 9, AT + dt.timedelta(hours=3))  # January 2027


async def _members(tracker: Tracker) -> list[list[int]]:
    out = []
    for expr in leaves():
        out.append([uid async for uid in tracker.members(expr)])
    return out


def _bitmapist(client: redis.asyncio.Redis, prefix: str) -> Tracker:
    return Tracker(client, schema=BitmapistSchema(prefix=f"{prefix}_"))


async def test_bitmapist_data_reads_the_same_in_bitlens_layout(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """Every bitmap copied from bitmapist's layout has the same members in bitlens'."""
    source, target = _bitmapist(client, prefix), Tracker(client, prefix=f"{prefix}b")
    await _mark(source)
    report = await migrate(source, target, chunk_bytes=1_000)
    assert report.ok
    assert report.copied == report.keys == 11
    assert report.verified == 11
    assert await _members(target) == await _members(source)


async def test_the_target_universe_holds_every_copied_id(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """After the copy, ~x and Universe() are exact in the target."""
    source, target = _bitmapist(client, prefix), Tracker(client, prefix=f"{prefix}b")
    await _mark(source)
    await migrate(source, target)
    ids = {uid for members in await _members(source) for uid in members}
    assert await target.count(Universe()) == len(ids)
    assert await target.count(~UniqueEvents("active")) == len(ids) - await source.count(
        UniqueEvents("active")
    )


async def test_reads_are_bounded_getrange_chunks(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, client: redis.asyncio.Redis,
    prefix: str,
) -> None:  # fmt: skip
    """The source is read with GETRANGE of at most chunk_bytes, never one GET of a bitmap."""
    writer = _bitmapist(client, prefix)
    await writer.mark_events([("big", uid, AT) for uid in (1, 5_000_000)])
    source = _bitmapist(counted_client, prefix)
    proxy.reset()
    await migrate(source, Tracker(client, prefix=f"{prefix}b"), chunk_bytes=65_536, verify=False)
    names = proxy.command_names
    assert "GET" not in names
    # three bitmaps of 625,001 bytes: ceil(625001 / 65536) = 10 reads each
    assert names.count("GETRANGE") == 30


async def test_an_interrupted_run_resumes_from_its_checkpoint(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """A run stopped after two bitmaps leaves a checkpoint; the next copies only the rest."""
    source, target = _bitmapist(client, prefix), Tracker(client, prefix=f"{prefix}b")
    await _mark(source)
    seen: list[int] = []

    def stop_after_two(done: int, total: int) -> None:
        seen.append(done)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await migrate(source, target, progress=stop_after_two)
    assert await client.scard(checkpoint_key(target)) == 2
    report = await migrate(source, target)
    assert (report.resumed, report.copied) == (2, 9)
    assert report.ok
    assert await client.exists(checkpoint_key(target)) == 0
    assert await _members(target) == await _members(source)


async def test_a_dry_run_writes_nothing_and_bounds_the_target(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """--dry-run reports keys and bytes, writes no key, and its estimate bounds the result."""
    source, target = _bitmapist(client, prefix), Tracker(client, prefix=f"{prefix}b")
    await _mark(source)
    dry = await migrate(source, target, dry_run=True)
    assert [k async for k in client.scan_iter(match=f"{prefix}b:*")] == []
    assert (dry.keys, dry.copied, dry.verified) == (11, 0, 0)
    assert dry.bytes == sum([await client.strlen(k) async for k in client.scan_iter(f"{prefix}_*")])
    await migrate(source, target)
    written = [k async for k in client.scan_iter(match=f"{prefix}b:{{*")]
    assert len(written) <= dry.target_keys
    assert sum([await client.strlen(k) for k in written]) <= dry.target_bytes


async def test_bits_already_in_the_target_are_kept(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """The copy ORs into the target: an id marked there before is still there."""
    source, target = _bitmapist(client, prefix), Tracker(client, prefix=f"{prefix}b")
    await source.mark_event("active", 1, AT)
    await target.mark_event("active", 2**21, AT)
    report = await migrate(source, target)
    assert [u async for u in target.members(MonthEvents("active", 2026, 12))] == [1, 2**21]
    assert not report.ok  # the target holds more than the source: verification says so
    assert report.mismatches[0][1:] == (1, 2)


async def test_rollback_copies_bitlens_data_into_bitmapists_layout(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """bitlens' layout back into bitmapist's: the same members in every bitmap."""
    source, target = Tracker(client, prefix=f"{prefix}b"), _bitmapist(client, prefix)
    await _mark(source)
    report = await migrate(source, target)
    assert report.ok
    assert await _members(target) == await _members(source)


async def test_rollback_refuses_ids_past_2_to_the_32(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """An id of 2**32 in bitlens' layout has no place in bitmapist's: refused, nothing written."""
    source, target = Tracker(client, prefix=f"{prefix}b"), _bitmapist(client, prefix)
    await source.mark_events([("active", 1, AT), ("active", 2**32 + 1, AT)])
    with pytest.raises(CannotMigrate, match="at most 4294967295"):
        await migrate(source, target)
    assert [k async for k in client.scan_iter(match=f"{prefix}_*")] == []


async def test_a_cluster_target(
    client: redis.asyncio.Redis, cluster_client: RedisCluster, prefix: str
) -> None:
    """bitmapist's layout on one server into bitlens' layout on a Redis Cluster."""
    source = _bitmapist(client, prefix)
    target = Tracker(cluster_client, prefix=f"{prefix}c")
    await _mark(source)
    report = await migrate(source, target, chunk_bytes=50_000)
    assert report.ok
    assert await _members(target) == await _members(source)


async def test_the_command_line_migrates_and_verifies(
    client: redis.asyncio.Redis, redis_url: str, prefix: str
) -> None:
    """``bitlens migrate --schema bitmapist`` copies, verifies and says so; exit 0."""
    await _mark(_bitmapist(client, prefix))
    args = ("--url", redis_url, "--schema", "bitmapist", "--prefix", f"{prefix}_")
    dry = await run_cli("migrate", *args, "--to-prefix", f"{prefix}b", "--dry-run")
    assert dry.code == 0, dry.err
    assert "dry run: would copy 11 bitmaps; nothing was written" in dry.out
    ran = await run_cli("migrate", *args, "--to-prefix", f"{prefix}b")
    assert ran.code == 0, ran.err
    assert "copied 11 bitmaps (0 done by an earlier run)" in ran.out
    assert "verified 11 bitmaps: every count matches" in ran.out
    assert "bitlens migrate: 100%" in ran.err
    target = Tracker(client, prefix=f"{prefix}b")
    assert await target.count(MonthEvents("active", 2026, 12)) > 300
