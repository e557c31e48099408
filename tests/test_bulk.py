"""mark_bulk: columnar backfill, exact against sets and against mark_events, bounded, typed."""

from __future__ import annotations

import datetime as dt
import itertools
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bitlens
from _helpers import examples, scan_keys
from bitlens import (
    Day,
    DayEvents,
    HourEvents,
    InvalidBulkInput,
    InvalidOption,
    InvalidUserId,
    Limits,
    Month,
    MonthEvents,
    OptionalDependencyMissing,
    ShardedSchema,
    Tracker,
    UniqueEvents,
    WeekEvents,
)
from bitlens._bulk import Planner
from bitlens._writes import WriteBatch

if TYPE_CHECKING:
    import redis.asyncio
    from redis.asyncio.cluster import RedisCluster

    from _proxy import RoundTripProxy
    from bitlens import Expr

pytestmark = pytest.mark.anyio

UTC = dt.timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
SHARD_BITS = 8  # small shards: a few hundred ids span several of them
# 2026-03-20 .. 2026-04-05 (spring forward in Berlin on 03-29) in epoch seconds.
START = int(dt.datetime(2026, 3, 20, tzinfo=UTC).timestamp())
STOP = int(dt.datetime(2026, 4, 5, tzinfo=UTC).timestamp())
_examples = itertools.count()
FIXTURE_HEALTH = HealthCheck.function_scoped_fixture
KINDS = ["numpy-datetime64", "numpy-epoch", "pandas-aware", "pandas-epoch", "list-datetime"]

_row = st.tuples(st.integers(0, 2 * 2**SHARD_BITS - 1), st.integers(START, STOP))
rows_strategy = st.one_of(
    st.lists(_row, min_size=1, max_size=30),  # few bits per key: SETBIT and BITFIELD
    st.lists(_row, min_size=80, max_size=400),  # many: byte images
)


def _leaves(at: dt.datetime, event: str = "active") -> list[Expr]:
    """Every kind of leaf holding ``at`` (a local time in Berlin)."""
    return [
        MonthEvents(event, at.year, at.month),
        WeekEvents(event, *at.isocalendar()[:2]),
        DayEvents(event, at.year, at.month, at.day),
        HourEvents(event, at.year, at.month, at.day, at.hour),
        UniqueEvents(event),
    ]


def _model(rows: list[tuple[int, int]]) -> dict[Expr, set[int]]:
    """The ids of each leaf, from Python sets and ``datetime.astimezone``."""
    model: dict[Expr, set[int]] = {}
    for user_id, seconds in rows:
        local = dt.datetime.fromtimestamp(seconds, BERLIN)
        for leaf in _leaves(local):
            model.setdefault(leaf, set()).add(user_id)
    return model


async def _dump(client: redis.asyncio.Redis | RedisCluster, prefix: str) -> dict[str, object]:
    """Every key under ``prefix`` (named without it) with its value: bytes, or a set."""
    out: dict[str, object] = {}
    for key in await scan_keys(client, prefix):
        name = key.decode()[len(prefix) :]
        if await client.type(key) in (b"set", "set"):
            out[name] = set(await client.smembers(key))
        else:
            out[name] = await client.get(key)
    return out


async def _delete(client: redis.asyncio.Redis | RedisCluster, *prefixes: str) -> None:
    for prefix in prefixes:
        for key in await scan_keys(client, prefix):
            await client.delete(key)


def _berlin(client: redis.asyncio.Redis | RedisCluster, prefix: str) -> Tracker:
    return Tracker(
        client,
        prefix=prefix,
        tz=BERLIN,
        shard_bits=SHARD_BITS,
        track_hourly=True,
        track_unique=True,
    )


@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rows=rows_strategy)
async def test_bulk_writes_the_bytes_mark_events_writes(
    client: redis.asyncio.Redis, prefix: str, rows: list[tuple[int, int]]
) -> None:
    """Every key mark_bulk writes holds the bytes mark_events writes for the same rows."""
    number = next(_examples)
    bulk_prefix, rows_prefix = f"{prefix}-b{number}", f"{prefix}-r{number}"
    ids = np.array([uid for uid, _ in rows], dtype=np.int64)
    seconds = np.array([s for _, s in rows], dtype=np.int64)
    try:
        assert await _berlin(client, bulk_prefix).mark_bulk("active", ids, seconds) == len(rows)
        await _berlin(client, rows_prefix).mark_events(
            [("active", uid, dt.datetime.fromtimestamp(s, UTC)) for uid, s in rows]
        )
        assert await _dump(client, bulk_prefix) == await _dump(client, rows_prefix)
    finally:
        await _delete(client, bulk_prefix, rows_prefix)


@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rows=rows_strategy)
async def test_bulk_matches_the_set_model(
    client: redis.asyncio.Redis, prefix: str, rows: list[tuple[int, int]]
) -> None:
    """count, contains and members after mark_bulk equal a model built from Python sets."""
    example_prefix = f"{prefix}-{next(_examples)}"
    tracker = _berlin(client, example_prefix)
    model = _model(rows)
    try:
        await tracker.mark_bulk("active", [u for u, _ in rows], [s for _, s in rows])
        leaves = list(model)
        assert await tracker.count_many(leaves) == [len(model[leaf]) for leaf in leaves]
        probes = sorted({u for u, _ in rows} | {0, 2**SHARD_BITS, 4 * 2**SHARD_BITS})
        for leaf in leaves:
            expected = model[leaf]
            assert await tracker.contains_many(leaf, probes) == [p in expected for p in probes]
            assert [u async for u in tracker.members(leaf)] == sorted(expected)
    finally:
        await _delete(client, example_prefix)


async def test_dst_changes_put_instants_in_their_local_hours(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """Instants around Berlin's DST changes land in the local hour astimezone gives them."""
    tracker = _berlin(client, prefix)
    instants = [
        dt.datetime(2026, 3, 28, 23, 30, tzinfo=UTC),  # 00:30 CET on the 29th
        dt.datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC),  # 01:59:59 CET
        dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # 03:00 CEST: 02:00 never happened
        dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # 02:30 CEST
        dt.datetime(2026, 10, 25, 1, 30, tzinfo=UTC),  # 02:30 CET, the hour again
    ]
    seconds = np.array([int(i.timestamp()) for i in instants], dtype=np.int64)
    await tracker.mark_bulk("active", np.arange(5, dtype=np.int64), seconds)
    counts = await tracker.count_many(
        [
            HourEvents("active", 2026, 3, 29, 0),
            HourEvents("active", 2026, 3, 29, 1),
            HourEvents("active", 2026, 3, 29, 3),
            HourEvents("active", 2026, 10, 25, 2),
            DayEvents("active", 2026, 3, 28),
            DayEvents("active", 2026, 3, 29),
        ]
    )
    assert counts == [1, 1, 1, 2, 0, 3]


async def test_bulk_keeps_bits_already_set(client: redis.asyncio.Redis, prefix: str) -> None:
    """Bits set before a dense backfill (sent as byte images) stay set: OR, not overwrite."""
    tracker = Tracker(client, prefix=prefix)
    at = dt.datetime(2026, 11, 27, 12, tzinfo=UTC)
    before = [3, 999_999, 500_001]
    for uid in before:
        await tracker.mark_event("active", uid, at)
    ids = np.arange(10_001, 40_000, 3, dtype=np.int64)
    times = np.full(len(ids), np.datetime64("2026-11-27T15:00"))
    await tracker.mark_bulk("active", ids, times)
    day = DayEvents("active", 2026, 11, 27)
    assert [u async for u in tracker.members(day)] == sorted([*before, *ids.tolist()])


@pytest.mark.parametrize(
    "kind",
    [
        "numpy-datetime64",
        "numpy-epoch",
        "pandas-aware",
        "pandas-epoch",
        "list-datetime",
        "list-epoch",
    ],
)
async def test_each_column_type_is_accepted(
    client: redis.asyncio.Redis, prefix: str, kind: str
) -> None:
    """numpy arrays, pandas Series and plain lists of ids and times all mark the same bits."""
    tracker = Tracker(client, prefix=prefix, tz=BERLIN)
    instants = [dt.datetime(2026, 3, 29, h, 30, tzinfo=UTC) for h in (0, 1, 22)]
    local = [i.astimezone(BERLIN).replace(tzinfo=None) for i in instants]
    epoch = [int(i.timestamp()) for i in instants]
    columns: dict[str, tuple[object, object]] = {
        "numpy-datetime64": (np.array([1, 2, 3]), np.array(local, dtype="datetime64[us]")),
        "numpy-epoch": (np.array([1, 2, 3], dtype=np.uint32), np.array(epoch, dtype=np.float64)),
        "pandas-aware": (
            pd.Series([1, 2, 3]),
            pd.Series(pd.to_datetime(epoch, unit="s", utc=True)),
        ),
        "pandas-epoch": (pd.Series([1, 2, 3]), pd.Series(epoch)),
        "list-datetime": ([1, 2, 3], instants),
        "list-epoch": ((1, 2, 3), epoch),
    }
    ids, times = columns[kind]
    await tracker.mark_bulk("active", ids, times, hourly=True)  # type: ignore[arg-type]
    counts = await tracker.count_many(
        [
            HourEvents("active", 2026, 3, 29, 1),
            HourEvents("active", 2026, 3, 29, 3),
            DayEvents("active", 2026, 3, 29),
            DayEvents("active", 2026, 3, 30),
        ]
    )
    assert counts == [1, 1, 2, 1]


@pytest.mark.parametrize("library", ["pyarrow", "polars"])
async def test_arrow_and_polars_columns_are_accepted(
    client: redis.asyncio.Redis, prefix: str, library: str
) -> None:
    """pyarrow arrays and polars Series (when installed) mark like numpy arrays."""
    module = pytest.importorskip(library)
    tracker = Tracker(client, prefix=prefix)
    instants = [dt.datetime(2026, 11, 27, 10, tzinfo=UTC), dt.datetime(2026, 11, 28, tzinfo=UTC)]
    if library == "pyarrow":
        ids, times = module.array([1, 2]), module.array(instants)
    else:
        ids, times = module.Series([1, 2]), module.Series(instants)
    await tracker.mark_bulk("active", ids, times)
    assert await tracker.count(DayEvents("active", 2026, 11, 27)) == 1


async def test_long_input_is_sent_in_chunks_one_round_trip_each(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """2,500 rows in chunks of 1,000 are 3 chunks: 3 round trips, progress after each."""
    tracker = Tracker(counted_client, prefix=prefix)
    calls: list[tuple[int, int]] = []
    ids = np.arange(0, 2_500 * 7, 7, dtype=np.int64)
    times = np.full(len(ids), np.datetime64("2026-11-27T12:00"))
    written = await tracker.mark_bulk(
        "active", ids, times, chunk_size=1_000, progress=lambda d, t: calls.append((d, t))
    )
    assert written == 2_500
    assert proxy.round_trips == 3  # ceil(2,500 / 1,000) chunks x 1 MULTI/EXEC each
    assert calls == [(1_000, 2_500), (2_000, 2_500), (2_500, 2_500)]
    assert await tracker.count(DayEvents("active", 2026, 11, 27)) == 2_500


async def test_default_chunk_is_one_round_trip_per_hundred_thousand_rows(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """Without chunk_size, 250,000 rows go in chunks of 100,000: 3 round trips."""
    tracker = Tracker(counted_client, prefix=prefix)
    ids = np.arange(250_000, dtype=np.int64)
    times = np.full(len(ids), np.datetime64("2026-11-27T12:00"))
    await tracker.mark_bulk("active", ids, times)
    assert proxy.round_trips == 3


@pytest.mark.parametrize(
    ("ids", "times", "error"),
    [
        ([1, -1], [0, 0], InvalidUserId),
        ([1, 2**40], [0, 0], InvalidUserId),
        ([1, True], [0, 0], InvalidUserId),
        (np.array([1.0, 2.0]), [0, 0], InvalidUserId),
        ([1, 2], np.array(["2026-01-01", "NaT"], dtype="datetime64[s]"), InvalidBulkInput),
        ([1, 2], np.array([0.0, np.nan]), InvalidBulkInput),
        ([1, 2], [0, None], InvalidBulkInput),
        ([1, 2], [0, 10**15], InvalidBulkInput),
        ([1, 2], [0], InvalidBulkInput),
        ([1, 2], ["2026-01-01", "2026-01-02"], InvalidBulkInput),
    ],
)
async def test_bad_rows_raise_before_anything_is_sent(
    counted_client: redis.asyncio.Redis,
    proxy: RoundTripProxy,
    prefix: str,
    ids: object,
    times: object,
    error: type[Exception],
) -> None:
    """A bad id or time anywhere (even in the last chunk) raises typed, with nothing sent."""
    tracker = Tracker(counted_client, prefix=prefix, limits=Limits(max_user_id=2**32))
    with pytest.raises(error):
        await tracker.mark_bulk("active", ids, times, chunk_size=1)  # type: ignore[arg-type]
    assert proxy.round_trips == 0
    assert await scan_keys(counted_client, prefix) == set()


async def test_missing_numpy_raises_a_typed_error(
    client: redis.asyncio.Redis, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without numpy, mark_bulk raises OptionalDependencyMissing naming the extra."""
    monkeypatch.setitem(sys.modules, "numpy", cast("object", None))
    monkeypatch.delitem(sys.modules, "bitlens._bulk", raising=False)
    monkeypatch.delattr(bitlens, "_bulk", raising=False)
    tracker = Tracker(client, prefix=prefix)
    with pytest.raises(OptionalDependencyMissing, match=r"bitlens\[bulk\]"):
        await tracker.mark_bulk("active", [1], [0])


async def test_bulk_on_a_cluster_matches_the_set_model(
    cluster_client: RedisCluster, prefix: str
) -> None:
    """On a Redis Cluster, ids across many shards give the same answers as the set model."""
    tracker = _berlin(cluster_client, prefix)
    rng = np.random.default_rng(7)
    ids = rng.integers(0, 40 * 2**SHARD_BITS, 3_000)
    seconds = rng.integers(START, STOP, 3_000)
    model = _model(list(zip(ids.tolist(), seconds.tolist(), strict=True)))
    try:
        await tracker.mark_bulk("active", ids, seconds, chunk_size=1_000)
        leaves = list(model)
        assert await tracker.count_many(leaves) == [len(model[leaf]) for leaf in leaves]
        some = leaves[0]
        assert [u async for u in tracker.members(some)] == sorted(model[some])
    finally:
        await _delete(cluster_client, prefix)


async def test_bulk_keys_get_their_expiry_deadline(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """With expire_after, each day key mark_bulk writes gets EXPIREAT end of day + ttl."""
    tracker = Tracker(client, prefix=prefix, expire_after={"day": dt.timedelta(days=30)})
    today = dt.datetime.now(UTC).date()
    ids = np.arange(0, 500, dtype=np.int64)  # many bits: the key is written as an image
    at = np.datetime64(f"{today.isoformat()}T10:00")
    await tracker.mark_bulk("active", ids, np.full(500, at))
    day_key = tracker.schema.event_key("active", Day(today.year, today.month, today.day), 0)
    month_key = tracker.schema.event_key("active", Month(today.year, today.month), 0)
    end_of_day = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tzinfo=UTC)
    deadline = (end_of_day + dt.timedelta(days=30)).timestamp()
    # TTL, not EXPIRETIME: Redis 6.2 has no EXPIRETIME.
    remaining = await client.ttl(day_key)
    assert abs(dt.datetime.now(UTC).timestamp() + remaining - deadline) <= 2
    assert await client.ttl(month_key) == -1


async def test_numpy_scalars_in_a_list_are_ids_and_times(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """A plain list of numpy integers (ids) and numpy floats (epoch seconds) is accepted."""
    tracker = Tracker(client, prefix=prefix)
    at = dt.datetime(2026, 11, 27, 10, tzinfo=UTC).timestamp()
    await tracker.mark_bulk("active", [np.int64(4), np.uint16(9)], [np.float64(at), at])
    assert [u async for u in tracker.members(DayEvents("active", 2026, 11, 27))] == [4, 9]


def test_a_dense_key_is_one_image_with_bit_zero_as_the_high_bit() -> None:
    """30 ids of one key become SETRANGE of bytes whose most significant bit is the lowest id."""
    schema = ShardedSchema(prefix="p", shard_bits=SHARD_BITS)  # an image from 24 bits on
    planner = Planner(schema, "active", False, lambda moment: (Day(2026, 11, 27),))
    ids = np.arange(8, 38, dtype=np.int64)  # bits 8..37: bytes 1..4
    wall = np.full(len(ids), int(dt.datetime(2026, 11, 27, 12, tzinfo=UTC).timestamp()))
    commands = planner.batch(WriteBatch(schema), ids, wall).commands("t", set())
    images = [c[2:] for c in commands if c[0] == "SETRANGE"]
    assert images == [(1, b"\xff\xff\xff\xfc"), (1, b"\xff\xff\xff\xfc")]  # day, universe


@dataclass(frozen=True, slots=True)
class _OwnLayout(ShardedSchema):
    """A schema subclass: its shards and bits are asked of the schema, id by id."""


async def test_a_custom_schema_gets_the_bytes_mark_events_writes(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """With a schema subclass (no inlined shard arithmetic) the keys still equal mark_events'."""
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 6 * 2**SHARD_BITS, 800)
    seconds = rng.integers(START, STOP, 800)
    schemas = [_OwnLayout(prefix=f"{prefix}-b", shard_bits=SHARD_BITS)]
    schemas.append(_OwnLayout(prefix=f"{prefix}-r", shard_bits=SHARD_BITS))
    bulk, rows = (Tracker(client, schema=s, tz=BERLIN, track_hourly=True) for s in schemas)
    await bulk.mark_bulk("active", ids, seconds)
    moments = [dt.datetime.fromtimestamp(s, UTC) for s in seconds.tolist()]
    await rows.mark_events([("active", u, m) for u, m in zip(ids.tolist(), moments, strict=True)])
    assert await _dump(client, f"{prefix}-b") == await _dump(client, f"{prefix}-r")


async def test_bad_chunk_size_is_refused(client: redis.asyncio.Redis, prefix: str) -> None:
    """chunk_size=0 raises InvalidOption before anything is sent."""
    tracker = Tracker(client, prefix=prefix)
    with pytest.raises(InvalidOption):
        await tracker.mark_bulk("active", [1], [0], chunk_size=0)
    assert await scan_keys(client, prefix) == set()
