"""The data the benchmarks query, written in both key layouts (bitlens' and bitmapist's).

``run.py`` (expressions, cohorts) and ``network_bench.py`` write these datasets onto their
private servers: the same bytes under bitlens' sharded keys and bitmapist 3.x's keys, so
both libraries answer the same questions over the same bits.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import TYPE_CHECKING, Any

from common import SEED, command  # beside this file

from bitlens import Day, Month, ShardedSchema, Week

if TYPE_CHECKING:
    from collections.abc import Sequence

    from redis.asyncio import Redis

__all__ = [
    "COHORT_BUCKETS",
    "COHORT_DAYS",
    "COHORT_END",
    "COHORT_EVENT",
    "COHORT_FIRST_DAY",
    "COHORT_KWARGS",
    "COHORT_NOW",
    "COHORT_ROWS",
    "COHORT_START",
    "COHORT_USERS",
    "COHORT_USERS_QUICK",
    "EVENTS",
    "MONTHS",
    "YEAR",
    "bitmapist_key",
    "cohort_days",
    "cohort_fill",
    "fill",
    "random_bitmap",
    "REFRESH_DAYS",
    "REFRESH_EVENT",
    "REFRESH_FIRST_DAY",
    "refresh_days",
    "refresh_fill",
]

# -- month bitmaps: the expression workloads ------------------------------------------------

YEAR = 2026
MONTHS = (8, 9, 10, 11)
EVENTS = ("active", "ios", "android")


def bitmapist_key(event: str, year: int, month: int) -> str:
    """bitmapist 3.x's month key: ``trackist_{event}_{Y}-{M}``, month not zero-padded."""
    return f"trackist_{event}_{year}-{month}"


def random_bitmap(rng: random.Random, ids: int) -> tuple[bytes, float]:
    """Return a bitmap of ids 0..ids-1 with a density of 31, 37.5, 44 or 50 %, and it."""
    nbytes = (ids + 7) // 8
    a, b, c, d = (int.from_bytes(rng.randbytes(nbytes), "big") for _ in range(4))
    kind = rng.randrange(4)
    if kind == 0:
        value = a & (b | (c & d))
    elif kind == 1:
        value = a & (b | c)
    elif kind == 2:
        value = a & (b | c | d)
    else:
        value = a
    pad = nbytes * 8 - ids  # bits past the last id (Redis numbers bits MSB first)
    value = (value >> pad) << pad
    return value.to_bytes(nbytes, "big"), value.bit_count() / ids


async def fill(client: Redis, schema: ShardedSchema, ids: int) -> dict[str, float]:
    """Write the same random month bitmaps in both layouts, with SET of ready bytes.

    bitlens: ``bench:{shard}:{event}:M2026-11`` per 2**20-id shard, the universe
    ``bench:{shard}:~all`` (ids 0..ids-1) and the registry ``bench:~shards``;
    bitmapist: one ``trackist_{event}_2026-11`` key per month.

    :returns: the density of every bitmap, by ``event Y-M``
    """
    await command(client, "FLUSHALL")
    rng = random.Random(SEED)
    step = 1 << (schema.shard_bits - 3)  # bytes per shard
    shards = range((ids - 1 >> schema.shard_bits) + 1)
    nbytes = (ids + 7) // 8
    pad = nbytes * 8 - ids
    universe = (((1 << ids) - 1) << pad).to_bytes(nbytes, "big")
    pipe = client.pipeline(transaction=False)
    for s in shards:
        pipe.execute_command("SET", schema.universe_key(s), universe[s * step : (s + 1) * step])
    pipe.execute_command("SADD", schema.registry_key, *shards)
    await pipe.execute()
    densities: dict[str, float] = {}
    for event in EVENTS:
        for month in MONTHS:
            data, density = random_bitmap(rng, ids)
            densities[f"{event} {YEAR}-{month:02d}"] = density
            pipe = client.pipeline(transaction=False)
            pipe.execute_command("SET", bitmapist_key(event, YEAR, month), data)
            for s in shards:
                key = schema.event_key(event, Month(YEAR, month), s)
                pipe.execute_command("SET", key, data[s * step : (s + 1) * step])
            await pipe.execute()
    return densities


# -- daily bitmaps: a dashboard refresh ------------------------------------------------------

REFRESH_EVENT = "visit"
REFRESH_FIRST_DAY = dt.date(2026, 8, 17)
REFRESH_DAYS = 90
"""A dashboard's 90 daily counts (``bitmapist_side.py``'s ``90 daily counts`` reads them)."""


def refresh_days() -> list[dt.date]:
    """The refresh's days, oldest first."""
    return [REFRESH_FIRST_DAY + dt.timedelta(days=i) for i in range(REFRESH_DAYS)]


async def refresh_fill(client: Redis, schema: ShardedSchema, ids: int) -> int:
    """Write a random day bitmap of ids 0..ids-1 per refresh day in both layouts (no flush).

    bitlens: ``{prefix}:{shard}:visit:D2026-08-17`` per shard (the universe and registry
    come from :func:`fill`, which must run first: every id here is below its ``ids``);
    bitmapist: ``trackist_visit_2026-8-17``. Returns the sum of the 90 daily counts.
    """
    rng = random.Random(SEED + 1)
    step = 1 << (schema.shard_bits - 3)
    shards = range((ids - 1 >> schema.shard_bits) + 1)
    total = 0
    for day in refresh_days():
        data, _ = random_bitmap(rng, ids)
        total += int.from_bytes(data, "big").bit_count()
        pipe = client.pipeline(transaction=False)
        pipe.execute_command(
            "SET", f"trackist_{REFRESH_EVENT}_{day.year}-{day.month}-{day.day}", data
        )
        for s in shards:
            key = schema.event_key(REFRESH_EVENT, Day(day.year, day.month, day.day), s)
            pipe.execute_command("SET", key, data[s * step : (s + 1) * step])
        await pipe.execute()
    return total


# -- daily bitmaps: the cohort table ------------------------------------------------------

COHORT_EVENT = "active"
COHORT_FIRST_DAY = dt.date(2026, 10, 1)
COHORT_DAYS = 45
COHORT_USERS = 200_000
COHORT_USERS_QUICK = 5_000
COHORT_ROWS, COHORT_BUCKETS = 31, 13  # bitmapist's default table: num_results x (num_of_rows+1)
# The table's cohorts are days 2..32, so the last cohort's bucket 12 is day 44, the last one.
COHORT_START = COHORT_FIRST_DAY + dt.timedelta(days=2)
COHORT_END = COHORT_START + dt.timedelta(days=COHORT_ROWS - 1)
COHORT_NOW = dt.datetime.combine(
    COHORT_FIRST_DAY + dt.timedelta(days=COHORT_DAYS), dt.time(), tzinfo=dt.timezone.utc
)
COHORT_KWARGS: dict[str, Any] = {
    "select1": COHORT_EVENT,
    "select2": COHORT_EVENT,
    "time_group": "days",
    "num_results": COHORT_ROWS,
    "num_of_rows": COHORT_BUCKETS - 1,
    "start_date": COHORT_START.isoformat(),
}


def cohort_days(users: int) -> dict[dt.date, bytes]:
    """Daily bitmaps of ``users`` ids: each joins on a random day, then comes back less and less.

    On day ``a`` after joining a user is active with probability ``0.05 + 0.35 * 0.93**a``.
    """
    rng = random.Random(SEED)
    nbytes = (users + 7) // 8
    days = [bytearray(nbytes) for _ in range(COHORT_DAYS)]
    joiners: list[list[int]] = [[] for _ in range(COHORT_DAYS)]
    for uid in range(users):
        joiners[rng.randrange(COHORT_DAYS)].append(uid)
    for joined, ids in enumerate(joiners):
        for day in range(joined, COHORT_DAYS):
            age = day - joined
            share = 1.0 if age == 0 else 0.05 + 0.35 * 0.93**age
            for uid in rng.sample(ids, round(share * len(ids))):
                days[day][uid >> 3] |= 0x80 >> (uid & 7)
    return {COHORT_FIRST_DAY + dt.timedelta(days=i): bytes(b) for i, b in enumerate(days)}


def _or_bytes(parts: Sequence[bytes]) -> bytes:
    value = 0
    for part in parts:
        value |= int.from_bytes(part, "big")
    return value.to_bytes(len(parts[0]), "big")


async def cohort_fill(client: Redis, schema: ShardedSchema, users: int) -> int:
    """Write the daily, ISO weekly and monthly bitmaps in both layouts; return the marks.

    bitlens: ``bench:{0}:active:D2026-10-01`` etc. (one shard holds every id), the universe
    and the registry; bitmapist: ``trackist_active_2026-10-1``, ``trackist_active_W2026-40``,
    ``trackist_active_2026-10``. Same bytes in both: the id is the bit offset.
    """
    await command(client, "FLUSHALL")
    days = cohort_days(users)
    weeks: dict[tuple[int, int], list[bytes]] = {}
    months: dict[tuple[int, int], list[bytes]] = {}
    for day, data in days.items():
        weeks.setdefault(day.isocalendar()[:2], []).append(data)
        months.setdefault((day.year, day.month), []).append(data)
    pipe = client.pipeline(transaction=False)
    for day, data in days.items():
        pipe.execute_command(
            "SET", f"trackist_{COHORT_EVENT}_{day.year}-{day.month}-{day.day}", data
        )
        pipe.execute_command(
            "SET", schema.event_key(COHORT_EVENT, Day(day.year, day.month, day.day), 0), data
        )
    for (iso_year, week), parts in weeks.items():
        data = _or_bytes(parts)
        pipe.execute_command("SET", f"trackist_{COHORT_EVENT}_W{iso_year}-{week}", data)
        pipe.execute_command("SET", schema.event_key(COHORT_EVENT, Week(iso_year, week), 0), data)
    for (year, month), parts in months.items():
        data = _or_bytes(parts)
        pipe.execute_command("SET", f"trackist_{COHORT_EVENT}_{year}-{month}", data)
        pipe.execute_command("SET", schema.event_key(COHORT_EVENT, Month(year, month), 0), data)
    pipe.execute_command("SET", schema.universe_key(0), _or_bytes(list(days.values())))
    pipe.execute_command("SADD", schema.registry_key, 0)
    await pipe.execute()
    return sum(int.from_bytes(d, "big").bit_count() for d in days.values())
