"""``bitlens report``: the four product reports from the command line, against a real server."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

import pytest

from _helpers import run_cli
from bitlens import Tracker

if TYPE_CHECKING:
    import redis.asyncio

pytestmark = pytest.mark.anyio

FIRST = dt.date(2026, 11, 2)  # a Monday


async def _marked(client: redis.asyncio.Redis, prefix: str) -> Tracker:
    tracker = Tracker(client, prefix=prefix)
    noon = dt.time(12, tzinfo=dt.timezone.utc)
    marks = [("visit", u, dt.datetime.combine(FIRST, noon)) for u in range(10)]
    marks += [("cart", u, dt.datetime.combine(FIRST, noon)) for u in range(4)]
    marks += [
        ("active", u, dt.datetime.combine(FIRST + dt.timedelta(days=u % 3), noon)) for u in range(6)
    ]
    marks += [("signed_up", u, dt.datetime.combine(FIRST, noon)) for u in range(2)]
    await tracker.mark_events(marks)
    await tracker.mark_unique("pro", 1)
    return tracker


async def test_a_funnel_prints_each_step_and_its_conversion(
    client: redis.asyncio.Redis, redis_url: str, prefix: str
) -> None:
    """report funnel prints one aligned row per step with users and conversions."""
    await _marked(client, prefix)
    ran = await run_cli(
        "report", "funnel", "visit", "cart", "--start", "2026-11-02", "--end", "2026-11-03",
        "--url", redis_url, "--prefix", prefix,
    )  # fmt: skip
    assert ran.code == 0, ran.err
    assert ran.out.splitlines() == [
        "segment  entered  step  users  conversion  overall",
        "all      all         1     10      100.0%   100.0%",
        "all      all         2      4       40.0%    40.0%",
    ]


async def test_engagement_as_json_with_a_segment(
    client: redis.asyncio.Redis, redis_url: str, prefix: str
) -> None:
    """report engagement --format json --segment gives a row per point and segment."""
    await _marked(client, prefix)
    ran = await run_cli(
        "report", "engagement", "active", "--start", "2026-11-04", "--end", "2026-11-04",
        "--segment", "plan=pro:unique:pro", "--format", "json",
        "--url", redis_url, "--prefix", prefix,
    )  # fmt: skip
    assert ran.code == 0, ran.err
    rows = json.loads(ran.out)
    assert [(r["segment"], r["day"], r["week"], r["month"]) for r in rows] == [
        ("all", 2, 6, 6),
        ("plan=pro", 0, 1, 1),
    ]


async def test_lifecycle_with_a_signup_event_as_csv(
    client: redis.asyncio.Redis, redis_url: str, prefix: str
) -> None:
    """report lifecycle --first EVENT --format csv splits the week's actives."""
    await _marked(client, prefix)
    ran = await run_cli(
        "report", "lifecycle", "active", "--first", "signed_up", "--start", "2026-11-02",
        "--end", "2026-11-08", "--format", "csv", "--url", redis_url, "--prefix", prefix,
    )  # fmt: skip
    assert ran.code == 0, ran.err
    assert ran.out.splitlines() == [
        "period,segment,new,returning,resurrecting,dormant",
        "2026-W45,all,2,0,4,0",
    ]


async def test_stickiness_prints_exactly_and_at_least(
    client: redis.asyncio.Redis, redis_url: str, prefix: str
) -> None:
    """report stickiness over 3 days prints k = 1..3 with both counts."""
    await _marked(client, prefix)
    ran = await run_cli(
        "report", "stickiness", "active", "--start", "2026-11-02", "--end", "2026-11-04",
        "--format", "csv", "--url", redis_url, "--prefix", prefix,
    )  # fmt: skip
    assert ran.code == 0, ran.err
    assert ran.out.splitlines() == [
        "segment,k,exactly,at_least",
        "all,1,6,6",
        "all,2,0,0",
        "all,3,0,0",
    ]


async def test_lifecycle_without_first_is_a_usage_error(redis_url: str) -> None:
    """report lifecycle without --first exits 2 and says what --first takes."""
    ran = await run_cli(
        "report", "lifecycle", "active", "--start", "2026-11-02", "--url", redis_url
    )
    assert ran.code == 2
    assert "--first" in ran.err
