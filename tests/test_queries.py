"""Expression queries on real servers: answers against a set model, round trips, no leaks.

The expression suite (random trees against a set model) runs on every standalone server and
on the session cluster (:func:`deployed_client`); the round-trip, command and leak tests run
on a standalone server through the counting proxy (their cluster counterparts, counted per
node, are in ``test_cluster``).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _helpers import as_script_calls, examples, scan_keys
from _reference import Model
from _trees import LEAVES, SHARD_BITS, UTC, seed, trees
from bitlens import (
    BitOpAnd,
    BitOpNot,
    BitOpOr,
    DayEvents,
    EventsBetween,
    Expr,
    GranularityNotTracked,
    MonthEvents,
    Tracker,
    UniqueEvents,
    Universe,
    YearEvents,
    last,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import redis.asyncio
    from redis.asyncio.cluster import RedisCluster

    from _proxy import RoundTripProxy

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("scripts")]  # scripts: conftest


@dataclass
class Seeded:
    """A tracker over a fixed random data set, its model, and the round-trip proxy."""

    tracker: Tracker
    model: Model
    proxy: RoundTripProxy
    ids: list[int]


@pytest.fixture
async def seeded(
    scripts: str, counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> AsyncIterator[Seeded]:
    """Marks ~2,000 random events over ~24 shards once per test function."""
    tracker = Tracker(counted_client, prefix=prefix, shard_bits=SHARD_BITS)
    model = Model()
    ids = await seed(tracker, model, seed=len(prefix) + 11)
    await tracker.count(Universe())  # learn the server's capabilities
    proxy.reset()
    yield Seeded(tracker, model, proxy, ids)
    await tracker.aclose()


@dataclass
class Deployed:
    """A tracker on a standalone server or on the cluster over the same data set, its model."""

    tracker: Tracker
    model: Model
    ids: list[int]


@pytest.fixture
async def deployed(
    deployed_client: redis.asyncio.Redis | RedisCluster, prefix: str
) -> AsyncIterator[Deployed]:
    """Marks ~2,000 random events over ~24 shards (on every master of the cluster) per test."""
    tracker = Tracker(deployed_client, prefix=prefix, shard_bits=SHARD_BITS)
    model = Model()
    ids = await seed(tracker, model, seed=len(prefix) + 11)
    yield Deployed(tracker, model, ids)
    await tracker.aclose()


TREE_SETTINGS = settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


# -- the expression suite: each property on a standalone server and on the cluster ------------


@TREE_SETTINGS
@given(tree=trees(5))
async def test_count_matches_reference(deployed: Deployed, tree: Expr) -> None:
    """count of any tree up to depth 5 over ~24 shards equals the set model."""
    assert await deployed.tracker.count(tree) == len(deployed.model.ids(tree))


@TREE_SETTINGS
@given(tree=trees(5), probe=st.lists(st.integers(0, 6_300), min_size=1, max_size=25))
async def test_contains_matches_reference(deployed: Deployed, tree: Expr, probe: list[int]) -> None:
    """contains_many of any tree equals set membership, for marked and unmarked ids."""
    expected = deployed.model.ids(tree)
    answers = await deployed.tracker.contains_many(tree, probe)
    assert answers == [uid in expected for uid in probe]


@TREE_SETTINGS
@given(tree=trees(5))
async def test_members_matches_reference(deployed: Deployed, tree: Expr) -> None:
    """members of any tree yields exactly the model's ids, ascending (across masters)."""
    got = [uid async for uid in deployed.tracker.members(tree)]
    assert got == sorted(deployed.model.ids(tree))


async def test_batch_of_40_questions_is_exact(deployed: Deployed) -> None:
    """count_many of a dashboard's 40 composite questions equals the model."""
    rng = random.Random(5)
    questions = [rng.choice(LEAVES) & ~rng.choice(LEAVES) | rng.choice(LEAVES) for _ in range(40)]
    assert await deployed.tracker.count_many(questions) == [
        len(deployed.model.ids(q)) for q in questions
    ]


# -- one standalone server: round trips and commands ------------------------------------------


@settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(tree=trees(5))
async def test_any_tree_costs_one_round_trip(seeded: Seeded, tree: Expr) -> None:
    """count of a tree of depth 1..5 over ~24 shards is one round trip."""
    seeded.proxy.reset()
    await seeded.tracker.count(tree)
    assert seeded.proxy.round_trips == 1


async def test_contains_costs_one_round_trip(seeded: Seeded) -> None:
    """contains of a composite tree is one round trip and writes nothing."""
    tree = (LEAVES[0] & ~LEAVES[4]) | (LEAVES[10] - YearEvents("c", 2026))
    await seeded.tracker.contains(tree, seeded.ids[5])
    assert seeded.proxy.round_trips == 1
    assert set(seeded.proxy.command_names) == {"GETBIT"}


async def test_batch_of_40_questions_costs_one_round_trip(seeded: Seeded) -> None:
    """A dashboard's 40 counts are answered in one round trip, each exactly."""
    rng = random.Random(5)
    questions = {
        f"q{i}": rng.choice(LEAVES) & ~rng.choice(LEAVES) | rng.choice(LEAVES) for i in range(40)
    }
    answers = await seeded.tracker.count_many(questions)
    assert seeded.proxy.round_trips == 1
    assert answers == {name: len(seeded.model.ids(q)) for name, q in questions.items()}


async def test_composite_count_is_one_atomic_script_for_all_shards(seeded: Seeded) -> None:
    """A composite count over ~24 shards sends the registry check and one EVALSHA, nothing else."""
    await seeded.tracker.count(LEAVES[0] & LEAVES[1])
    assert as_script_calls(seeded.proxy.command_names, "EVALSHA") == ["SCARD", "EVALSHA"]


async def test_no_bare_not_is_ever_sent(seeded: Seeded) -> None:
    """The complement never uses BITOP NOT, which counts ids that do not exist."""
    n = await seeded.tracker.count(~MonthEvents("a", 2026, 11))
    assert n == len(seeded.model.everyone - seeded.model.ids(MonthEvents("a", 2026, 11)))
    assert n < 6_000


async def test_not_within_named_universe(seeded: Seeded) -> None:
    """BitOpNot(x, universe=u) is u minus x."""
    expr = BitOpNot(MonthEvents("a", 2026, 11), universe=UniqueEvents("b"))
    assert await seeded.tracker.count(expr) == len(
        seeded.model.unique["b"] - seeded.model.ids(MonthEvents("a", 2026, 11))
    )


async def test_no_temp_key_survives_queries_cancelled_or_dropped(
    seeded: Seeded, client: redis.asyncio.Redis, prefix: str
) -> None:
    """After 2,000 random queries, some cancelled and some cut off, only data keys remain."""
    before = await scan_keys(client, prefix)
    rng = random.Random(99)
    cancelled = dropped = 0
    for i in range(2_000):
        tree = BitOpAnd(rng.choice(LEAVES), BitOpOr(rng.choice(LEAVES), ~rng.choice(LEAVES)))
        if i % 7 == 0:
            with anyio.move_on_after(rng.uniform(0, 0.002)) as scope:
                await seeded.tracker.count(tree)
            cancelled += scope.cancelled_caught
        elif i % 11 == 0:
            async with anyio.create_task_group() as tg:
                tg.start_soon(seeded.proxy.drop_connections)
                try:
                    await seeded.tracker.count(tree)
                except ConnectionError:
                    dropped += 1
                except Exception as exc:  # redis' ConnectionError is not the builtin
                    if "Connection" not in type(exc).__name__:
                        raise
                    dropped += 1
        else:
            assert await seeded.tracker.count(tree) == len(seeded.model.ids(tree))
    assert cancelled > 0
    assert dropped > 0
    after = await scan_keys(client, prefix)
    assert after == before
    assert not any(b"~tmp" in key for key in after)


async def test_answers_stay_exact_after_cancellations(seeded: Seeded) -> None:
    """A cancelled query leaves no half-read reply on a pooled connection."""
    tree = (LEAVES[0] | LEAVES[5]) - LEAVES[1]
    for delay in (0.0, 0.0001, 0.0003, 0.001):
        with anyio.move_on_after(delay):
            await seeded.tracker.count(tree)
        assert await seeded.tracker.count(tree) == len(seeded.model.ids(tree))


async def test_rolling_window_counts_recent_marks(client: redis.asyncio.Redis, prefix: str) -> None:
    """last(days=7) counts marks of the last seven calendar days, not older ones."""
    tracker = Tracker(client, prefix=prefix)
    now = dt.datetime.now(UTC)
    await tracker.mark_event("a", 1, now)
    await tracker.mark_event("a", 2, now - dt.timedelta(days=6))
    await tracker.mark_event("a", 3, now - dt.timedelta(days=8))
    assert [u async for u in tracker.members(last("a", days=7))] == [1, 2]
    assert 3 in [u async for u in tracker.members(last("a", days=7).prev())]


async def test_hour_range_without_hourly_raises_before_sending(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """A range with ragged hours on a daily tracker raises and sends nothing."""
    tracker = Tracker(counted_client, prefix=prefix)
    with pytest.raises(GranularityNotTracked):
        await tracker.count(EventsBetween("a", dt.datetime(2026, 11, 2, 13), dt.date(2026, 11, 4)))
    assert proxy.commands == 0


async def test_last_hours_on_a_daily_tracker_says_track_hourly(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """last(hours=24) on a tracker without track_hourly raises saying so, sending nothing."""
    tracker = Tracker(counted_client, prefix=prefix)
    with pytest.raises(GranularityNotTracked, match=r"track_hourly=True"):
        await tracker.count(last("a", hours=24))
    assert proxy.commands == 0


async def test_last_hours_on_an_hourly_tracker_counts_recent_hours(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """With track_hourly=True, last(hours=24) counts marks of the last 24 hours only."""
    tracker = Tracker(client, prefix=prefix, track_hourly=True)
    now = dt.datetime.now(UTC)
    await tracker.mark_event("a", 1, now)
    await tracker.mark_event("a", 2, now - dt.timedelta(hours=22))  # in, even if the hour turns
    await tracker.mark_event("a", 3, now - dt.timedelta(hours=25))
    assert [u async for u in tracker.members(last("a", hours=24))] == [1, 2]


async def test_from_date_counts_the_berlin_day_of_an_aware_instant(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """On a Berlin tracker, DayEvents.from_date(23:30 UTC) counts the next Berlin day's marks."""
    tracker = Tracker(client, prefix=prefix, tz="Europe/Berlin")
    late = dt.datetime(2026, 11, 27, 23, 30, tzinfo=UTC)  # 00:30 on the 28th in Berlin
    await tracker.mark_event("a", 1, late)
    await tracker.mark_event("a", 2, dt.datetime(2026, 11, 27, 12, 0, tzinfo=UTC))
    assert [u async for u in tracker.members(DayEvents.from_date("a", late))] == [1]
    assert await tracker.contains(DayEvents.from_date("a", late).prev(), 2)


async def test_hour_range_with_hourly_tracking_is_exact(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """With hourly tracking a range from 22:00 to the next midnight is exact."""
    tracker = Tracker(client, prefix=prefix, track_hourly=True)
    await tracker.mark_event("a", 1, dt.datetime(2026, 11, 2, 21, 59))
    await tracker.mark_event("a", 2, dt.datetime(2026, 11, 2, 22, 0))
    await tracker.mark_event("a", 3, dt.datetime(2026, 11, 3, 0, 0))
    between = EventsBetween("a", dt.datetime(2026, 11, 2, 22), dt.datetime(2026, 11, 3))
    assert [u async for u in tracker.members(between)] == [2]
