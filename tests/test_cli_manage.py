"""The data-managing commands (delete-event, delete-all, erase-user, events), as a process."""

from __future__ import annotations

import json
import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from _helpers import run_cli, scan_keys
from bitlens import MonthEvents, Tracker

if TYPE_CHECKING:
    import redis.asyncio
    from redis.asyncio.cluster import RedisCluster

    from harness import EmbeddedCluster

pytestmark = pytest.mark.anyio

AT = datetime(2026, 11, 27, 13, 5, tzinfo=timezone.utc)
NOVEMBER = MonthEvents("active", 2026, 11)
GUIDE = Path(__file__).resolve().parent.parent / "docs" / "managing-data.md"


async def _marked(client: redis.asyncio.Redis | RedisCluster, prefix: str) -> Tracker:
    """A tracker that has marked ids 1 and 2 for "active" and id 1 for "paid"."""
    tracker = Tracker(client, prefix=prefix)
    await tracker.mark_events([("active", 1, AT), ("active", 2, AT), ("paid", 1, AT)])
    return tracker


async def test_delete_event_with_yes_deletes_without_asking(
    client: redis.asyncio.Redis, redis_url: str, prefix: str
) -> None:
    """delete-event --yes removes the event's keys and says how many."""
    tracker = await _marked(client, prefix)
    ran = await run_cli("delete-event", "paid", "--yes", "--url", redis_url, "--prefix", prefix)
    assert ran.code == 0, ran.err
    assert ran.out == "deleted 3 keys of event 'paid'\n"
    assert await tracker.event_names() == ["active"]


async def test_delete_event_asks_and_a_yes_answer_deletes(
    client: redis.asyncio.Redis, redis_url: str, prefix: str
) -> None:
    """Without --yes the question goes to stderr and "y" on stdin confirms it."""
    tracker = await _marked(client, prefix)
    ran = await run_cli("delete-event", "paid", "--url", redis_url, "--prefix", prefix, stdin="y\n")
    assert ran.code == 0, ran.err
    assert f"Delete event 'paid' under prefix '{prefix}'" in ran.err
    assert "(3 periods, every shard)? [y/N]" in ran.err
    assert await tracker.event_names() == ["active"]


async def test_delete_event_not_confirmed_deletes_nothing(
    client: redis.asyncio.Redis, redis_url: str, prefix: str
) -> None:
    """Any answer but y/yes (or no answer at all) exits 1 and leaves every key."""
    await _marked(client, prefix)
    before = await scan_keys(client, prefix)
    for answer in ("n\n", ""):
        ran = await run_cli(
            "delete-event", "paid", "--url", redis_url, "--prefix", prefix, stdin=answer
        )
        assert ran.code == 1
        assert "not confirmed: nothing was deleted" in ran.err
    assert await scan_keys(client, prefix) == before


async def test_delete_event_of_an_unknown_event_says_so(redis_url: str, prefix: str) -> None:
    """An event without bitmaps is reported, nothing is asked, exit 0."""
    ran = await run_cli("delete-event", "never", "--url", redis_url, "--prefix", prefix)
    assert ran.code == 0, ran.err
    assert ran.out == f"no bitmaps of event 'never' under prefix '{prefix}'\n"
    assert "[y/N]" not in ran.err


async def test_delete_event_bad_name_is_a_usage_error(redis_url: str) -> None:
    """An invalid event name exits 2 with the usage line."""
    ran = await run_cli("delete-event", "~all", "--yes", "--url", redis_url)
    assert ran.code == 2
    assert "usage: bitlens delete-event" in ran.err


async def test_delete_all_removes_the_prefix_but_not_a_longer_one(
    client: redis.asyncio.Redis, redis_url: str, prefix: str
) -> None:
    """delete-all --yes empties the prefix; prefix:x keeps its data."""
    await _marked(client, prefix)
    inner = await _marked(client, f"{prefix}:x")
    ran = await run_cli("delete-all", "--yes", "--url", redis_url, "--prefix", prefix)
    assert ran.code == 0, ran.err
    assert ran.out.startswith("deleted ")
    assert ran.out.endswith(f" keys under prefix '{prefix}'\n")
    inner_keys = f"{prefix}:x:".encode()
    assert all(k.startswith(inner_keys) for k in await scan_keys(client, prefix))
    assert await inner.count(NOVEMBER) == 2


async def test_erase_user_prints_what_it_cleared(
    client: redis.asyncio.Redis, redis_url: str, prefix: str
) -> None:
    """erase-user lists each cleared bitmap, then a summary line."""
    tracker = await _marked(client, prefix)
    ran = await run_cli("erase-user", "1", "--yes", "--url", redis_url, "--prefix", prefix)
    assert ran.code == 0, ran.err
    assert ran.out == (
        "active  2026-11\n"
        "active  2026-W48\n"
        "active  2026-11-27\n"
        "paid    2026-11\n"
        "paid    2026-W48\n"
        "paid    2026-11-27\n"
        "cleared user 1 from 6 bitmaps (its shard's universe too)\n"
    )
    assert [u async for u in tracker.members(NOVEMBER)] == [2]


async def test_erase_user_json_and_a_second_run_clears_nothing(
    client: redis.asyncio.Redis, redis_url: str, prefix: str
) -> None:
    """--json prints the cleared bitmaps; erasing again prints an empty list."""
    await _marked(client, prefix)
    args = ("erase-user", "2", "--yes", "--json", "--url", redis_url, "--prefix", prefix)
    first = json.loads((await run_cli(*args)).out)
    assert first == {
        "user_id": 2,
        "cleared": [
            {"event": "active", "period": "2026-11"},
            {"event": "active", "period": "2026-W48"},
            {"event": "active", "period": "2026-11-27"},
        ],
        "universe": True,
    }
    again = json.loads((await run_cli(*args)).out)
    assert again == {"user_id": 2, "cleared": [], "universe": False}


async def test_events_filter_and_periods(
    client: redis.asyncio.Redis, redis_url: str, prefix: str
) -> None:
    """events --starting-with keeps matching names; --periods lists their periods."""
    tracker = Tracker(client, prefix=prefix)
    await tracker.mark_events([("checkout:paid", 1, AT), ("checkout:started", 1, AT)])
    await tracker.mark_unique("signup", 1)
    args = ("events", "--url", redis_url, "--prefix", prefix)
    ran = await run_cli(*args, "--starting-with", "checkout:", "--periods")
    assert ran.code == 0, ran.err
    assert ran.out == (
        "checkout:paid     2026-11 2026-W48 2026-11-27\n"
        "checkout:started  2026-11 2026-W48 2026-11-27\n"
    )
    listing = json.loads((await run_cli(*args, "--periods", "--json")).out)
    assert listing[-1] == {"event": "signup", "periods": ["unique"]}


async def test_erase_user_on_a_cluster(
    cluster_client: RedisCluster, redis_cluster: EmbeddedCluster, prefix: str
) -> None:
    """erase-user --cluster clears the id on the cluster."""
    tracker = await _marked(cluster_client, prefix)
    ran = await run_cli(
        "erase-user", "1", "--yes", "--cluster", "--url", redis_cluster.url, "--prefix", prefix
    )
    assert ran.code == 0, ran.err
    assert [u async for u in tracker.members(NOVEMBER)] == [2]


def _session(page: Path) -> list[tuple[list[str], list[str]]]:
    """The ``$ bitlens ...`` commands of the page's console block and the lines after each."""
    text = page.read_text("utf-8")
    block = text.split("```text\n$ bitlens ", 1)[1].split("```", 1)[0]
    steps: list[tuple[list[str], list[str]]] = []
    for line in ("$ bitlens " + block).splitlines():
        if line.startswith("$ bitlens "):
            steps.append((shlex.split(line)[2:], []))
        else:
            steps[-1][1].append(line)
    return steps


async def test_the_guides_session_runs_as_shown(
    client: redis.asyncio.Redis, redis_url: str, prefix: str
) -> None:
    """docs/managing-data.md's commands print what the page shows (answering y when asked)."""
    tracker = Tracker(client, prefix=prefix)
    for event in ("checkout:started", "checkout:paid"):
        await tracker.mark_event(event, 1, AT)
    guide_url = "redis://localhost:6379/0"
    for args, shown in _session(GUIDE):
        real = [redis_url if a == guide_url else prefix if a == "shop" else a for a in args]
        ran = await run_cli(*real, stdin="y\n")
        assert ran.code == 0, ran.err
        # A line ending in "[y/N] y" is the question (stderr) and the answer typed.
        asked = [line for line in shown if line.endswith("[y/N] y")]
        printed = [line.replace("'shop'", repr(prefix)) for line in shown if line not in asked]
        assert ran.out.splitlines() == printed, args
        for question in asked:
            expected = question.removesuffix(" y").replace(guide_url, redis_url)
            assert expected.replace("'shop'", repr(prefix)) in ran.err
    assert await tracker.event_names() == []
