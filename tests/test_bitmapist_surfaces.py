"""The command line (``--schema bitmapist``) and the dashboard's API on bitmapist's layout."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest

from _helpers import run_cli
from bitlens import BitmapistSchema, MonthEvents, Tracker
from bitlens.web import counts, list_events, retention

if TYPE_CHECKING:
    import redis.asyncio

pytestmark = pytest.mark.anyio

UTC = dt.timezone.utc
AT = dt.datetime(2026, 1, 5, 9, tzinfo=UTC)


async def _marked(client: redis.asyncio.Redis, prefix: str) -> Tracker:
    """A bitmapist-layout tracker under ``{prefix}_`` with active 1, 2, 3 and paid 2."""
    tracker = Tracker(client, schema=BitmapistSchema(prefix=f"{prefix}_"))
    await tracker.mark_events([("active", n, AT) for n in (1, 2, 3)])
    await tracker.mark_event("paid", 2, AT)
    await tracker.mark_event("active", 2, AT + dt.timedelta(days=7))
    return tracker


async def test_count_reads_the_layout(
    client: redis.asyncio.Redis, redis_url: str, prefix: str
) -> None:
    """``bitlens count --schema bitmapist`` counts bitmapist's keys, differences included."""
    await _marked(client, prefix)
    ran = await run_cli(
        "count", "--url", redis_url, "--schema", "bitmapist", "--prefix", f"{prefix}_",
        "month:active:2026-01", "month:active:2026-01 - month:paid:2026-01",
    )  # fmt: skip
    assert ran.code == 0, ran.err
    assert ran.out.splitlines() == ["3", "2"]


async def test_events_lists_the_layouts_events(
    client: redis.asyncio.Redis, redis_url: str, prefix: str
) -> None:
    """``bitlens events --schema bitmapist`` lists the event names of bitmapist's keys."""
    await _marked(client, prefix)
    ran = await run_cli(
        "events", "--url", redis_url, "--schema", "bitmapist", "--prefix", f"{prefix}_"
    )
    assert ran.code == 0, ran.err
    assert ran.out.split() == ["active", "paid"]


async def test_a_complement_without_universe_is_an_error(
    client: redis.asyncio.Redis, redis_url: str, prefix: str
) -> None:
    """``~x`` on the layout fails with the typed error's advice, not a wrong number."""
    await _marked(client, prefix)
    ran = await run_cli(
        "count", "--url", redis_url, "--schema", "bitmapist", "--prefix", f"{prefix}_",
        "~month:paid:2026-01",
    )  # fmt: skip
    assert ran.code != 0
    assert "keeps no universe of marked ids" in ran.err
    assert ran.out == ""


async def test_universe_names_the_complements_universe(
    client: redis.asyncio.Redis, redis_url: str, prefix: str
) -> None:
    """``--universe active`` makes ``~x`` the ids of active's unique bitmap not in x."""
    tracker = Tracker(client, schema=BitmapistSchema(prefix=f"{prefix}_", universe="all"))
    await tracker.mark_events([("active", n, AT) for n in (1, 2, 3)])
    await tracker.mark_event("paid", 2, AT)
    ran = await run_cli(
        "count", "--url", redis_url, "--schema", "bitmapist", "--prefix", f"{prefix}_",
        "--universe", "all", "~month:paid:2026-01",
    )  # fmt: skip
    assert ran.code == 0, ran.err
    assert ran.out.split() == ["2"]


async def test_universe_without_the_bitmapist_schema_is_a_usage_error(redis_url: str) -> None:
    """``--universe`` on bitlens' own layout (which keeps its universe) exits 2."""
    ran = await run_cli("count", "--url", redis_url, "--universe", "all", "unique:x")
    assert ran.code == 2
    assert "--universe is for --schema bitmapist" in ran.err


async def test_erase_user_clears_the_layouts_bits(
    client: redis.asyncio.Redis, redis_url: str, prefix: str
) -> None:
    """``bitlens erase-user --schema bitmapist --yes`` clears the id from every bitmap."""
    tracker = await _marked(client, prefix)
    ran = await run_cli(
        "erase-user", "--url", redis_url, "--schema", "bitmapist", "--prefix", f"{prefix}_",
        "--yes", "2",
    )  # fmt: skip
    assert ran.code == 0, ran.err
    assert [u async for u in tracker.members(MonthEvents("active", 2026, 1))] == [1, 3]


async def test_the_dashboards_events_and_counts(client: redis.asyncio.Redis, prefix: str) -> None:
    """The dashboard's /events and weekly /counts read bitmapist's keys."""
    tracker = await _marked(client, prefix)
    assert await list_events(tracker) == {
        "events": ["active", "paid"],
        "truncated": False,
        "prefix": f"{prefix}_",
    }
    reply = await counts(
        tracker,
        ["active", "paid"],
        period="week",
        start=dt.date(2026, 1, 5),
        end=dt.date(2026, 1, 12),
        now=dt.datetime(2026, 2, 1, tzinfo=UTC),
    )
    assert reply["series"] == [
        {"event": "active", "counts": [3, 1]},
        {"event": "paid", "counts": [1, 0]},
    ]


async def test_the_dashboards_retention(client: redis.asyncio.Redis, prefix: str) -> None:
    """The dashboard's weekly retention of bitmapist's keys: 1 of 3 came back a week later."""
    tracker = await _marked(client, prefix)
    reply = await retention(
        tracker, "active", period="week", cohorts=1, buckets=2, end=dt.date(2026, 1, 5)
    )
    rows = reply["rows"]
    assert isinstance(rows, list)
    assert rows[0]["size"] == 3
    assert [cell["count"] for cell in rows[0]["cells"]] == [3, 1]
