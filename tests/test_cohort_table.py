"""Pure parts of cohorts: EventTemplates, period covering, and the table's maths and renderings."""

from __future__ import annotations

import csv
import datetime as dt
import math
import sys
from dataclasses import replace

import pytest

from bitlens import (
    BitOpOr,
    Day,
    DayEvents,
    EventTemplate,
    Hour,
    HourEvents,
    InvalidEventName,
    Month,
    MonthEvents,
    Period,
    UniqueEvents,
    Universe,
    UnsupportedOperation,
    Week,
    WeekEvents,
    Year,
    YearEvents,
)
from bitlens._plan import leaves_of, resolve
from bitlens.cohort import RetentionCell, RetentionRow, RetentionTable
from bitlens.cohort._retention import _union, distributive

UTC = dt.timezone.utc

# -- EventTemplates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "leaf"),
    [
        (Hour(2026, 11, 27, 13), HourEvents("a", 2026, 11, 27, 13)),
        (Day(2026, 11, 27), DayEvents("a", 2026, 11, 27)),
        (Week(2026, 53), WeekEvents("a", 2026, 53)),
        (Month(2026, 11), MonthEvents("a", 2026, 11)),
        (Year(2026), YearEvents("a", 2026)),
    ],
)
def test_event_at_binds_each_period_type(period: Period, leaf: object) -> None:
    """EventTemplate("a").at(period) is the concrete leaf of that period's type."""
    bound = EventTemplate("a").at(period)
    assert bound == leaf
    assert type(bound) is type(leaf)


def test_at_binds_templates_inside_operators_and_keeps_concrete_leaves() -> None:
    """at() maps every EventTemplate of a tree; UniqueEvents, MonthEvents and Universe() stay."""
    week = Week(2026, 48)
    tree = (EventTemplate("a") & UniqueEvents("ios")) | ~(
        EventTemplate("b") - MonthEvents("c", 2026, 1)
    )
    tree |= Universe() ^ EventTemplate("d")
    expected = (WeekEvents("a", 2026, 48) & UniqueEvents("ios")) | ~(
        WeekEvents("b", 2026, 48) - MonthEvents("c", 2026, 1)
    )
    expected |= Universe() ^ WeekEvents("d", 2026, 48)
    assert tree.at(week) == expected


def test_an_event_has_no_period_to_shift() -> None:
    """EventTemplate("a").next() raises UnsupportedOperation: bind it first."""
    with pytest.raises(UnsupportedOperation, match=r"\.at\(period\)"):
        EventTemplate("a").next()


def test_resolving_an_unbound_event_raises_unsupported_operation() -> None:
    """The planner refuses a template inside any tree, naming the fix."""
    with pytest.raises(UnsupportedOperation, match=r"bind it first with \.at\(period\)"):
        resolve(DayEvents("b", 2026, 1, 1) | EventTemplate("a"))


def test_event_validates_its_name() -> None:
    """Event names follow the same rules as every leaf's."""
    with pytest.raises(InvalidEventName):
        EventTemplate("{a}")


def test_events_are_values() -> None:
    """Equal templates are equal and hash alike (so equal cells share work)."""
    assert EventTemplate("a") & EventTemplate("b") == EventTemplate("a") & EventTemplate("b")
    assert len({EventTemplate("a"), EventTemplate("a")}) == 1
    assert repr(EventTemplate("a")) == "EventTemplate('a')"


# -- ranges of periods -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (EventTemplate("a"), True),
        (EventTemplate("a") | EventTemplate("b"), True),
        (EventTemplate("a") & UniqueEvents("ios"), True),
        (EventTemplate("a") - UniqueEvents("bot"), True),
        (UniqueEvents("x"), True),
        (EventTemplate("a") & EventTemplate("b"), False),
        (EventTemplate("a") - EventTemplate("b"), False),
        (~EventTemplate("a"), False),
        (EventTemplate("a") ^ UniqueEvents("x"), False),
    ],
)
def test_which_templates_distribute_over_periods(template: EventTemplate, expected: bool) -> None:
    """Only templates whose value over many periods is the OR of their values may use months."""
    assert distributive(template) is expected


def test_a_range_of_one_event_is_covered_by_months_weeks_and_days() -> None:
    """2026-11-01..12-15 is November, Dec 1-6, ISO week 50 and Dec 14-15: 10 bitmaps, not 45."""
    union = _union(EventTemplate("a"), Day(2026, 11, 1), Day(2026, 12, 15))
    leaves = leaves_of(resolve(union))
    assert MonthEvents("a", 2026, 11).period in {leaf.period for leaf in leaves}
    assert len(leaves) == 10


def test_a_range_of_a_composite_is_bound_period_by_period() -> None:
    """``a & b`` over 45 days is the OR of 45 day-level ANDs (both on the same day)."""
    union = _union(EventTemplate("a") & EventTemplate("b"), Day(2026, 11, 1), Day(2026, 12, 15))
    assert isinstance(union, BitOpOr)
    assert len(union.operands) == 45


# -- the table -----------------------------------------------------------------------------------


def _cell(bucket: int, count: int | None, size: int, complete: bool) -> RetentionCell:
    percent = count / size * 100 if count is not None and size else None
    return RetentionCell(bucket, count, percent, complete)


def _table(criterion: str = "on") -> RetentionTable:
    """Three weekly cohorts around the ISO year boundary, one of them empty."""
    rows = (
        RetentionRow(
            Week(2026, 52),
            100,
            True,
            (_cell(0, 100, 100, True), _cell(1, 40, 100, True), _cell(2, 10, 100, False)),
        ),
        RetentionRow(
            Week(2026, 53),
            0,
            True,
            (_cell(0, 0, 0, True), _cell(1, 0, 0, True), _cell(2, None, 0, False)),
        ),
        RetentionRow(
            Week(2027, 1),
            50,
            True,
            (_cell(0, 50, 50, True), _cell(1, 10, 50, False), _cell(2, None, 50, False)),
        ),
    )
    columns: tuple[tuple[int, int | None], ...] = (
        ((0, None), (1, None), (2, None))
        if criterion == "on_or_after"
        else ((0, 0), (1, 3), (4, 7))
        if criterion == "brackets"
        else ((0, 0), (1, 1), (2, 2))
    )
    return RetentionTable(
        period="week",
        mode="recurring",
        criterion="on_or_after"
        if criterion == "on_or_after"
        else "brackets"
        if criterion == "brackets"
        else "on",
        columns=columns,
        rows=rows,
        start=EventTemplate("signed_up"),
        returning=EventTemplate("active") & EventTemplate("ios"),
        now=dt.datetime(2027, 1, 13, tzinfo=UTC),
    )


def test_averages_are_weighted_by_cohort_size_over_complete_cells() -> None:
    """Bucket 1: only 2026-W52's cell is complete (40 of 100); empty cohorts never count."""
    assert _table().averages() == (100.0, 40.0, None)


def test_weighted_averages_pool_counts_and_sizes() -> None:
    """Two complete cells, 40 of 100 and 10 of 50, average to 50 of 150, not to 30 %."""
    table = _table()
    newest = table.rows[2]
    cells = (newest.cells[0], replace(newest.cells[1], complete=True), newest.cells[2])
    done = replace(newest, cells=cells)
    pooled = replace(table, rows=(table.rows[0], table.rows[1], done))
    assert pooled.averages()[1] == pytest.approx(50 / 150 * 100)
    assert pooled.simple_means()[1] == pytest.approx(30.0)


def test_simple_means_skip_empty_cohorts_and_incomplete_cells() -> None:
    """The simple mean averages the complete cells' percentages of non-empty cohorts."""
    assert _table().simple_means() == (100.0, 40.0, None)


def test_column_labels_follow_the_criterion() -> None:
    """Labels: ``1`` (on), ``1+`` (on or after), ``1-3`` (brackets)."""
    assert _table().column_labels() == ("0", "1", "2")
    assert _table("on_or_after").column_labels() == ("0+", "1+", "2+")
    assert _table("brackets").column_labels() == ("0", "1-3", "4-7")


def test_to_rows_gives_label_size_and_values() -> None:
    """Flat rows carry the ISO label, the size, then percentages or counts (None for future)."""
    table = _table()
    assert table.header() == ("cohort", "size", "0", "1", "2")
    assert table.to_rows()[2] == ["2027-W01", 50, 100.0, 20.0, None]
    assert table.to_rows("count")[1] == ["2026-W53", 0, 0, 0, None]


def test_to_dicts_is_json_ready() -> None:
    """Each dict holds the label, the period's start, the size and every cell's fields."""
    first = _table().to_dicts()[0]
    assert first["cohort"] == "2026-W52"
    assert first["start"] == "2026-12-21T00:00:00+00:00"
    assert first["cells"][1] == {
        "bucket": 1,
        "label": "1",
        "count": 40,
        "percent": 40.0,
        "complete": True,
    }


def test_csv_has_iso_labels_and_empty_fields_for_future_cells() -> None:
    """CSV rows: ``2027-W01,50,100.00,20.00,`` — the future bucket is an empty field."""
    rows = list(csv.reader(_table().to_csv().splitlines()))
    assert rows[0] == ["signed_up -> active & ios", "size", "0", "1", "2", "incomplete"]
    assert rows[2] == ["2026-W53", "0", "", "", "", ""]
    assert rows[3] == ["2027-W01", "50", "100.00", "20.00", "", "1"]


def test_csv_names_the_buckets_not_over_in_its_last_column() -> None:
    """The incomplete column lists started, unfinished buckets by label; future ones are not."""
    table = _table("brackets")
    last = table.rows[2]
    running = replace(last, cells=(replace(last.cells[0], complete=False), *last.cells[1:]))
    rows = list(csv.reader(replace(table, rows=(*table.rows[:2], running)).to_csv().splitlines()))
    assert [row[-1] for row in rows] == ["incomplete", "4-7", "", "0 1-3"]


def test_csv_of_counts() -> None:
    """to_csv("count") writes the counts."""
    assert _table().to_csv("count").splitlines()[1] == "2026-W52,100,100,40,10,2"


def test_html_caption_names_the_events_and_the_criterion() -> None:
    """The caption reads ``signed_up -> active & ios (week, recurring, brackets)``, escaped."""
    assert "<caption>signed_up -&gt; active &amp; ios (week, recurring, brackets)</caption>" in (
        _table("brackets").to_html()
    )


def test_html_marks_incomplete_and_future_cells() -> None:
    """Incomplete cells carry class="incomplete", future ones class="future", and a shade."""
    html = _table().to_html()
    assert '<td class="incomplete" style="background-color: hsla(210, 80%, 45%, 0.10)' in html
    assert html.count('<td class="future"></td>') == 2
    assert '<th scope="row">2027-W01</th>' in html
    assert "weighted mean" in html


def test_html_stars_incomplete_cells_and_explains_the_star() -> None:
    """An unfinished cell reads ``10.0%*`` and the footer says what ``*`` means."""
    html = _table().to_html()
    assert 'title="10 of 100, not over yet">10.0%*</td>' in html
    assert 'title="40 of 100">40.0%</td>' in html
    assert '<tr class="note"><td colspan="5">* not over yet: may still grow' in html


def test_html_of_a_finished_table_has_no_note() -> None:
    """When every started bucket is over, no cell is starred and no note is added."""
    table = _table()
    done = tuple(
        replace(row, cells=tuple(replace(c, complete=c.count is not None) for c in row.cells))
        for row in table.rows
    )
    html = replace(table, rows=done).to_html()
    assert "*" not in html
    assert 'class="note"' not in html


def test_to_pandas_without_pandas_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without pandas, to_pandas raises ImportError naming the fix and the alternatives."""
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pip install pandas"):
        _table().to_pandas()


def test_to_pandas_builds_a_frame_indexed_by_cohort() -> None:
    """With pandas installed, the frame has size and bucket columns, NaN for missing."""
    pytest.importorskip("pandas")
    frame = _table().to_pandas()
    assert list(frame.columns) == ["size", "0", "1", "2"]
    assert list(frame.index) == ["2026-W52", "2026-W53", "2027-W01"]
    assert math.isnan(float(frame.loc["2027-W01", "2"]))  # type: ignore[arg-type]
    assert _table().to_pandas("count").loc["2026-W52", "1"] == 40
