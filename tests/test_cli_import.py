"""``bitlens import``: CSV and JSON lines files marked through mark_bulk, run as a subprocess."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from _helpers import run_cli, scan_keys
from bitlens import DayEvents, HourEvents, MonthEvents, Tracker

if TYPE_CHECKING:
    from pathlib import Path

    import redis.asyncio

pytestmark = pytest.mark.anyio

CSV = """\
event,user_id,timestamp
active,1,2026-11-27T12:00:00Z
active,2,2026-11-27T23:30:00+00:00
active,3,1795824000
signed_up,1,2026-11-01T09:00:00
"""
"""Three ``active`` rows (the third is 2026-11-28T00:00Z in epoch seconds), one signup."""


async def test_csv_import_marks_every_row(
    client: redis.asyncio.Redis, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    """A CSV file's rows land in their day and month bitmaps; stdout counts them per event."""
    path = tmp_path / "events.csv"
    path.write_text(CSV, encoding="utf-8")
    ran = await run_cli("import", str(path), "--url", redis_url, "--prefix", prefix)
    assert ran.code == 0, ran.err
    assert ran.out.splitlines()[-1] == "4 rows of 2 events marked"
    tracker = Tracker(client, prefix=prefix)
    counts = await tracker.count_many(
        [
            DayEvents("active", 2026, 11, 27),
            DayEvents("active", 2026, 11, 28),
            MonthEvents("signed_up", 2026, 11),
        ]
    )
    assert counts == [2, 1, 1]


async def test_jsonl_import_reads_its_columns_in_the_zone_given(
    client: redis.asyncio.Redis, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    """JSON lines with renamed columns, naive times in --tz and --hourly set hour bits there."""
    path = tmp_path / "events.jsonl"
    rows = [
        {"name": "active", "uid": 7, "ts": "2026-11-27T23:30:00"},
        {"name": "active", "uid": 8, "ts": 1795822200},  # 2026-11-27T23:30Z = 00:30 Berlin
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    ran = await run_cli(
        "import",
        str(path),
        "--event-column",
        "name",
        "--user-column",
        "uid",
        "--time-column",
        "ts",
        "--hourly",
        "--tz",
        "Europe/Berlin",
        "--url",
        redis_url,
        "--prefix",
        prefix,
    )
    assert ran.code == 0, ran.err
    tracker = Tracker(client, prefix=prefix, tz="Europe/Berlin")
    counts = await tracker.count_many(
        [HourEvents("active", 2026, 11, 27, 23), HourEvents("active", 2026, 11, 28, 0)]
    )
    assert counts == [1, 1]


async def test_dry_run_checks_the_file_and_sends_nothing(
    client: redis.asyncio.Redis, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    """--dry-run prints the counts per event and writes no key."""
    path = tmp_path / "events.csv"
    path.write_text(CSV, encoding="utf-8")
    ran = await run_cli("import", str(path), "--dry-run", "--url", redis_url, "--prefix", prefix)
    assert ran.code == 0, ran.err
    assert ran.out.splitlines() == [
        f"{'active':<9}  {3:>10}",
        f"{'signed_up':<9}  {1:>10}",
        "4 rows of 2 events checked (dry run, nothing sent)",
    ]
    assert await scan_keys(client, prefix) == set()


async def test_a_bad_row_exits_2_naming_its_line(
    client: redis.asyncio.Redis, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    """A row whose timestamp cannot be read stops the import with exit 2 and its line."""
    path = tmp_path / "events.csv"
    path.write_text(CSV + "active,4,yesterday\n", encoding="utf-8")
    ran = await run_cli("import", str(path), "--url", redis_url, "--prefix", prefix)
    assert ran.code == 2
    assert "line 6: timestamp 'yesterday' is not ISO 8601" in ran.err
    assert await scan_keys(client, prefix) == set()


async def test_progress_goes_to_stderr_once_per_chunk_at_most(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    """Off a terminal, progress is plain lines on stderr ending in the total; stdout is clean."""
    path = tmp_path / "events.csv"
    path.write_text(CSV, encoding="utf-8")
    ran = await run_cli(
        "import", str(path), "--chunk-rows", "1", "--url", redis_url, "--prefix", prefix
    )
    assert ran.code == 0, ran.err
    assert ran.err.splitlines()[-1] == "bitlens import: 4 rows (100%)"
    assert "bitlens import:" not in ran.out
