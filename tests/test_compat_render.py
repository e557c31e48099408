"""The cohort renderers of bitlens.compat.bitmapist against bitmapist 3.119's own templates.

bitmapist renders with mako in its venv; the CSV must be identical, the HTML identical once
runs of whitespace are collapsed (the same tags, attributes, styles and text).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from bitlens.compat.bitmapist.cohort import render_csv_data, render_html_data, render_html_form

if TYPE_CHECKING:
    from pathlib import Path

UTC = dt.timezone.utc
_SIDE = """
import json, sys, datetime
from bitmapist import cohort
job = json.load(sys.stdin)
rows = [[datetime.datetime.fromisoformat(r[0]), *r[1:]] for r in job.get("rows", [])]
fn = getattr(cohort, job["fn"])
if job["fn"] == "render_html_form":
    kw = dict(job["kwargs"])
    for name in ("selections1", "selections1b", "selections2", "selections2b"):
        if kw.get(name) is not None:
            kw[name] = [tuple(s) if isinstance(s, list) else s for s in kw[name]]
    print(fn(**kw), end="")
else:
    print(fn(rows, **job["kwargs"]), end="")
"""

ROWS: list[list[Any]] = [
    [dt.datetime(2026, 11, 2, tzinfo=UTC), 40, 100.0, 37.5, 0.0, ""],
    [dt.datetime(2026, 11, 9, tzinfo=UTC), 0, "", "", "", ""],
    [dt.datetime(2026, 11, 16, tzinfo=UTC), 7, 100.0, 14.285714285714286, "", ""],
]
COUNTS: list[list[Any]] = [
    [dt.datetime(2026, 1, 1, tzinfo=UTC), 40, 40, 15, 0, ""],
    [dt.datetime(2027, 1, 1, tzinfo=UTC), 3, 3, "", "", ""],
]


def _bitmapist(python: Path, fn: str, rows: list[list[Any]], **kwargs: Any) -> str:
    job = {"fn": fn, "rows": [[r[0].isoformat(), *r[1:]] for r in rows], "kwargs": kwargs}
    done = subprocess.run(
        [str(python), "-c", _SIDE], input=json.dumps(job), capture_output=True, text=True,
        check=True, timeout=60,
    )  # fmt: skip
    return done.stdout


def _flat(html: str) -> str:
    return " ".join(html.split())


@pytest.mark.parametrize("time_group", ["days", "weeks", "months", "years"])
@pytest.mark.parametrize(("rows", "as_percent"), [(ROWS, True), (COUNTS, False)])
def test_csv_is_bitmapists(
    bitmapist_python: Path, time_group: str, rows: list[list[Any]], as_percent: bool
) -> None:
    """The CSV equals bitmapist's character for character, '' and 0.0 cells included."""
    kwargs = {"as_percent": as_percent, "time_group": time_group, "num_of_rows": 3}
    ours = render_csv_data(rows, **kwargs)  # type: ignore[arg-type]
    assert ours == _bitmapist(bitmapist_python, "render_csv_data", rows, **kwargs)


@pytest.mark.parametrize("time_group", ["days", "weeks", "months", "years"])
@pytest.mark.parametrize(("rows", "as_percent"), [(ROWS, True), (COUNTS, False)])
def test_html_table_is_bitmapists(
    bitmapist_python: Path, time_group: str, rows: list[list[Any]], as_percent: bool
) -> None:
    """The HTML table, averages row included, equals bitmapist's up to whitespace."""
    kwargs = {"as_percent": as_percent, "time_group": time_group, "num_of_rows": 3}
    ours = render_html_data(rows, **kwargs)  # type: ignore[arg-type]
    theirs = _bitmapist(bitmapist_python, "render_html_data", rows, **kwargs)
    assert _flat(ours) == _flat(theirs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"action_url": "/cohort", "selections1": [["Active", "active"], ["Paid", "paid"]]},
        {
            "action_url": "/cohort?x=1",
            "selections1": [["Active", "active"], "---", ["Paid", "paid"]],
            "selections1b": [["Web", "web"]],
            "selections2": [["Played", "song:play"]],
            "selections2b": [["iOS", "ios"]],
            "time_group": "weeks",
            "select1": "paid",
            "select1b": "web",
            "select2": "song:play",
            "select2b": "",
            "as_percent": False,
            "num_results": 12,
            "num_of_rows": 6,
            "start_date": "2026-11-02",
        },
    ],
)
def test_html_form_is_bitmapists(bitmapist_python: Path, kwargs: dict[str, Any]) -> None:
    """The query form, with and without chosen values, equals bitmapist's up to whitespace."""
    ours_kwargs: dict[str, Any] = {
        k: [tuple(s) if isinstance(s, list) else s for s in v] if k.startswith("selections") else v
        for k, v in kwargs.items()
    }
    ours = render_html_form(**ours_kwargs)
    theirs = _bitmapist(bitmapist_python, "render_html_form", [], **kwargs)
    assert _flat(ours) == _flat(theirs)


def test_names_are_escaped_in_html() -> None:
    """An event label holding markup is escaped (bitmapist inserts it raw)."""
    html = render_html_form("/c", [("<b>Active</b>", "a&b")])
    assert "&lt;b&gt;Active&lt;/b&gt;" in html
    assert 'value="a&amp;b"' in html
