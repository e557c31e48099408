"""Wide and degenerate questions: exact answers, bounded script calls, no temp key left."""

from __future__ import annotations

import datetime as dt
import random
from typing import TYPE_CHECKING

import pytest
from redis.exceptions import ResponseError

from _helpers import as_script_calls, connect, scan_keys
from _retention_reference import Index, reference_table
from bitlens import (
    BitOpOr,
    CleanupFailed,
    Day,
    DayEvents,
    EventsBetween,
    EventTemplate,
    PermissionDenied,
    QueryRejected,
    Tracker,
)
from bitlens._plan import COUNT_SCRIPT, script_error
from bitlens.web import _api
from bitlens.web._api import MAX_BUCKETS, MAX_COHORTS

if TYPE_CHECKING:
    import redis.asyncio
    from redis.asyncio.cluster import RedisCluster

    from _cluster_counter import ClusterProxies
    from _helpers import AclUser
    from _proxy import RoundTripProxy

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("scripts")]  # scripts: conftest

UTC = dt.timezone.utc
SHARD_BITS = 8


async def _no_temp_keys(client: redis.asyncio.Redis, prefix: str) -> None:
    """Assert no temp key is left under ``prefix``."""
    keys = await scan_keys(client, prefix)
    assert not [key for key in keys if b"~tmp" in key]


def _marks(days: list[dt.date], ids: int = 40) -> list[tuple[str, int, dt.datetime]]:
    """Marks of ids 0, 37, 74, ... (``ids`` of them, several shards), each on 3 random days."""
    rng = random.Random(7)
    marks: list[tuple[str, int, dt.datetime]] = []
    for uid in range(0, ids * 37, 37):
        for day in rng.sample(days, 3):
            marks.append(("a", uid, dt.datetime(day.year, day.month, day.day, 12, tzinfo=UTC)))
    return marks


def _days(first: dt.date, n: int) -> list[dt.date]:
    """The ``n`` days from ``first`` on."""
    return [first + dt.timedelta(days=k) for k in range(n)]


async def _marked(tracker: Tracker, days: list[dt.date], ids: int = 40) -> dict[dt.date, set[int]]:
    """Mark :func:`_marks` of ``days``; return who did what."""
    marks = _marks(days, ids)
    who: dict[dt.date, set[int]] = {}
    for _, uid, at in marks:
        who.setdefault(at.date(), set()).add(uid)
    await tracker.mark_events(marks)
    return who


def _index(days: list[dt.date]) -> Index:
    """The reference index of what :func:`_marked` marks on ``days``."""
    index = Index(Day)
    for event, uid, at in _marks(days):
        index.add(event, uid, at)
    return index


async def test_count_many_of_nothing_sends_nothing(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """count_many({}) and count_many([]) answer empty with 0 commands sent."""
    tracker = Tracker(counted_client, prefix=prefix)
    await tracker.mark_event("a", 1)
    proxy.reset()
    assert await tracker.count_many({}) == {}
    assert await tracker.count_many([]) == []
    assert (proxy.round_trips, proxy.commands) == (0, 0)


async def test_count_many_of_nothing_sends_nothing_on_a_cluster(
    counted_cluster_client: RedisCluster, cluster_proxies: ClusterProxies, prefix: str
) -> None:
    """On a cluster too, count_many({}) answers {} with 0 commands to any node."""
    tracker = Tracker(counted_cluster_client, prefix=prefix)
    cluster_proxies.reset()
    assert await tracker.count_many({}) == {}
    assert sum(cluster_proxies.per_node().values()) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["x", 0, "C", 1],
        [1, 0, "C", 5],
        [1, 1, "B", "NOT", 2, 1, 1, "C", 2],
        [1, 1, "B", "OR", 2, 9, 1],
        [1, 1, "D", 1, 1],
        [1, 0, "Q"],
    ],
    ids=repr,
)
async def test_the_script_refuses_malformed_arguments(
    client: redis.asyncio.Redis, prefix: str, argv: list[str | int]
) -> None:
    """The count script checks its own arguments and answers a typed, clean error."""
    width = sum(v for v in argv[:2] if isinstance(v, int)) + 1
    keys = [f"{prefix}:{{0}}:~tmp:t:{n}" for n in range(width)]
    with pytest.raises(ResponseError) as caught:
        await client.execute_command("EVAL", COUNT_SCRIPT, len(keys), *keys, *argv)  # type: ignore[no-untyped-call]
    assert isinstance(script_error(str(caught.value)), QueryRejected)
    await _no_temp_keys(client, prefix)


async def test_the_script_refuses_a_zero_width_call(client: redis.asyncio.Redis) -> None:
    """A call without keys (the shape that once looped forever) is refused at once."""
    with pytest.raises(ResponseError, match="BITLENS-ARGS"):
        await client.execute_command("EVAL", COUNT_SCRIPT, 0, 0, 0, "C", 1)  # type: ignore[no-untyped-call]


async def test_the_script_refuses_unbounded_work(client: redis.asyncio.Redis, prefix: str) -> None:
    """A call declaring more than the script's work bound is refused before it runs."""
    keys = [f"{prefix}:{{0}}:a:D2026-01-01", f"{prefix}:{{0}}:~tmp:t:0"]
    argv: list[str | int] = [1, 0]
    for _ in range(100_001):
        argv += ["C", 1]
    with pytest.raises(ResponseError, match="BITLENS-ARGS more than"):
        await client.execute_command("EVAL", COUNT_SCRIPT, len(keys), *keys, *argv)  # type: ignore[no-untyped-call]


async def test_an_or_of_eight_thousand_days_is_exact(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """A BitOpOr of 8,200 days (sliced BITOPs) counts exactly and leaves no temp key."""
    tracker = Tracker(client, prefix=prefix, shard_bits=SHARD_BITS)
    first = dt.date(2004, 1, 1)
    days = _days(first, 8_200)
    who = await _marked(tracker, days)
    expr = BitOpOr(*(DayEvents("a", d.year, d.month, d.day) for d in days))
    assert await tracker.count(expr) == len(set().union(*who.values()))
    await _no_temp_keys(client, prefix)


async def test_events_between_over_thirty_years_is_exact(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """EventsBetween over 30 years, and the OR of its 10,957 days, count exactly."""
    tracker = Tracker(client, prefix=prefix, shard_bits=SHARD_BITS)
    first = dt.date(1996, 3, 3)
    days = _days(first, 10_957)
    who = await _marked(tracker, [*days, dt.date(1996, 3, 2)])
    expected = set().union(*(who.get(d, set()) for d in days))
    between = EventsBetween("a", first, days[-1] + dt.timedelta(days=1))
    ored = BitOpOr(*(DayEvents("a", d.year, d.month, d.day) for d in days))
    assert await tracker.count_many([between, ored]) == [len(expected)] * 2
    await _no_temp_keys(client, prefix)


async def test_count_many_of_nine_thousand_questions_is_exact(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """9,000 composite questions in one round trip of bounded calls, exact, no temp key."""
    tracker = Tracker(counted_client, prefix=prefix, shard_bits=SHARD_BITS)
    first = dt.date(2026, 1, 1)
    days = _days(first, 300)
    who = await _marked(tracker, days)
    await tracker.count(DayEvents("a", 2026, 1, 1))
    rng = random.Random(3)
    pairs = [(rng.choice(days), rng.choice(days)) for _ in range(9_000)]
    questions = [
        DayEvents("a", x.year, x.month, x.day) | DayEvents("a", y.year, y.month, y.day)
        for x, y in pairs
    ]
    proxy.reset()
    answers = await tracker.count_many(questions)
    assert proxy.round_trips == 1
    calls = as_script_calls(proxy.command_names)
    assert sum(name in ("EVAL", "EVALSHA") for name in calls) > 1
    assert answers == [len(who.get(x, set()) | who.get(y, set())) for x, y in pairs]
    await _no_temp_keys(counted_client, prefix)


async def test_first_time_retention_with_an_early_history_start_is_exact(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """First-time retention looking back 25 years matches the set reference, no temp key."""
    tracker = Tracker(client, prefix=prefix, shard_bits=SHARD_BITS)
    first = dt.date(2025, 10, 1)
    days = _days(first, 60)
    await _marked(tracker, days)
    index = _index(days)
    now = dt.datetime(2025, 12, 1, tzinfo=UTC)
    history = dt.date(2001, 1, 1)
    table = await tracker.retention(
        "a", period="day", cohorts=31, mode="first_time", history_start=history, now=now
    )
    expected = reference_table(
        index,
        EventTemplate("a"),
        EventTemplate("a"),
        cohorts=31,
        columns=tuple((k, k) for k in range(13)),
        now=now,
        history_start=history,
    )
    assert [(r.size, tuple(c.count for c in r.cells)) for r in table.rows] == [
        (r.size, r.counts) for r in expected
    ]
    await _no_temp_keys(client, prefix)


async def test_the_dashboards_largest_retention_is_exact(
    client: redis.asyncio.Redis, prefix: str
) -> None:
    """The dashboard's maximum table (120 cohorts x 120 buckets) matches the reference."""
    tracker = Tracker(client, prefix=prefix, shard_bits=SHARD_BITS)
    first = dt.date(2026, 1, 1)
    days = _days(first, 240)
    await _marked(tracker, days)
    index = _index(days)
    end = first + dt.timedelta(days=MAX_COHORTS - 1)
    reply = await _api.retention(
        tracker, "a", period="day", cohorts=MAX_COHORTS, buckets=MAX_BUCKETS, end=end
    )
    table = await tracker.retention(
        "a", period="day", cohorts=MAX_COHORTS, buckets=MAX_BUCKETS, end=end
    )
    now = table.now
    expected = reference_table(
        index,
        EventTemplate("a"),
        EventTemplate("a"),
        cohorts=MAX_COHORTS,
        columns=tuple((k, k) for k in range(MAX_BUCKETS)),
        now=now,
        end=dt.datetime(end.year, end.month, end.day, tzinfo=UTC),
    )
    assert len(reply["rows"]) == MAX_COHORTS
    assert [(r.size, tuple(c.count for c in r.cells)) for r in table.rows] == [
        (r.size, r.counts) for r in expected
    ]
    await _no_temp_keys(client, prefix)


async def test_contains_many_of_300000_ids_is_chunked(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """contains_many of 300,000 ids answers exactly in 30 round trips of 10,000 GETBITs."""
    tracker = Tracker(counted_client, prefix=prefix)
    marked = set(range(0, 300_000, 7))
    await tracker.mark_events([("a", uid, dt.datetime(2026, 1, 5, tzinfo=UTC)) for uid in marked])
    proxy.reset()
    answers = await tracker.contains_many(DayEvents("a", 2026, 1, 5), range(300_000))
    assert answers == [uid in marked for uid in range(300_000)]
    assert proxy.round_trips == 30


@pytest.mark.parametrize("refused", ["del", "pexpire"])
async def test_a_refused_cleanup_raises_and_leaves_no_key(
    redis_url: str,
    client: redis.asyncio.Redis,
    prefix: str,
    refused: str,
    scripts: str,
    acl_user: AclUser,
) -> None:
    """A user without +del (or +pexpire) gets a typed error, and no temp key survives.

    The script runs and cleans up (CleanupFailed); lowered to MULTI/EXEC, the refused
    command is refused at queueing, so the transaction never runs (PermissionDenied).
    """
    writer = Tracker(client, prefix=prefix, shard_bits=SHARD_BITS)
    await _marked(writer, [dt.date(2026, 1, d) for d in range(1, 20)])
    user = f"u{prefix}"
    await acl_user(redis_url, user, ["on", ">pw", f"~{prefix}*", "+@all", f"-{refused}"])
    limited = connect(redis_url.replace("redis://", f"redis://{user}:pw@"))
    try:
        reader = Tracker(limited, prefix=prefix, shard_bits=SHARD_BITS)
        expr = DayEvents("a", 2026, 1, 2) | DayEvents("a", 2026, 1, 3)
        if scripts == "none":
            with pytest.raises(PermissionDenied, match=refused.upper()):
                await reader.count(expr)
            await _no_temp_keys(client, prefix)
            return
        with pytest.raises(CleanupFailed) as caught:
            await reader.count(expr)
        assert caught.value.keys >= 1
        assert refused.upper() in caught.value.reason
        # Redis: "... can't run this command ..."; Valkey: "... no permissions to run ..."
        assert "can't run this command" in caught.value.reason or (
            "no permissions to run" in caught.value.reason
        )
        await _no_temp_keys(client, prefix)
    finally:
        await limited.aclose()
