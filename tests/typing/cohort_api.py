"""Static checks of bitlens.cohort's types: mypy and pyright read this file, nothing runs it.

Each ``assert_type`` states the exact type a user gets back from the cohort API.
"""

from __future__ import annotations

import sys
from datetime import date, datetime

from bitlens import EventTemplate, Period, Tracker
from bitlens.cohort import (
    DatesRow,
    RetentionCell,
    RetentionRow,
    RetentionTable,
    RowDict,
    get_dates_data,
    retention,
)

if sys.version_info >= (3, 11):
    from typing import assert_type
else:
    from typing_extensions import assert_type


async def retention_tables(tracker: Tracker) -> None:
    """A table, its rows and cells, and every conversion answer their documented types."""
    table = await retention(
        tracker,
        "signed_up",
        EventTemplate("active") & EventTemplate("ios"),
        period="week",
        cohorts=8,
        buckets=6,
        end=date(2026, 11, 27),
        mode="first_time",
        criterion="on_or_after",
        history_start=date(2026, 1, 1),
        now=datetime(2026, 11, 27),
    )
    assert_type(table, RetentionTable)
    assert_type(
        await retention(tracker, EventTemplate("a"), criterion=[(1, 3), (4, 7)]), RetentionTable
    )
    row = table.rows[0]
    assert_type(row, RetentionRow)
    assert_type(row.cohort, Period)
    assert_type(row.size, int)
    cell = row.cells[0]
    assert_type(cell, RetentionCell)
    assert_type(cell.count, int | None)
    assert_type(cell.percent, float | None)
    assert_type(cell.complete, bool)
    assert_type(table.averages(), tuple[float | None, ...])
    assert_type(table.simple_means(), tuple[float | None, ...])
    assert_type(table.to_rows(), list[list[str | int | float | None]])
    assert_type(table.to_dicts(), list[RowDict])
    assert_type(table.to_csv(), str)
    assert_type(table.to_html(), str)


async def bitmapist_tables(tracker: Tracker) -> None:
    """get_dates_data answers bitmapist's list of rows."""
    rows = await get_dates_data("active", "song:play", time_group="weeks", tracker=tracker)
    assert_type(rows, list[DatesRow])
    assert_type(rows[0], list[datetime | int | float | str])
