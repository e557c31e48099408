"""bitmapist 3.x's ``bitmapist.cohort``, sync, running on bitlens.

:func:`get_dates_data` returns bitmapist's rows cell for cell (``[date, size, c0, ...]``),
computed in one round trip instead of one per cell; :func:`render_html_form`,
:func:`render_html_data` and :func:`render_csv_data` render them as bitmapist's
templates do, without its template engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ...cohort import get_dates_data as _get_dates_data
from ._render import render_csv_data, render_html_data, render_html_form
from ._runtime import RUNNER

if TYPE_CHECKING:
    from ..._tracker import Tracker
    from ...cohort import DatesRow

__all__ = ["get_dates_data", "render_csv_data", "render_html_data", "render_html_form"]


def get_dates_data(
    select1: str,
    select2: str,
    select1b: str | None = None,
    select2b: str | None = None,
    time_group: Literal["days", "weeks", "months", "years"] = "days",
    system: str = "default",
    as_percent: bool = True,
    num_results: int = 31,
    num_of_rows: int = 12,
    start_date: str | None = None,
) -> list[DatesRow]:
    """Return bitmapist's cohort table of ``select1`` (``& select1b``) returning to ``select2``.

    Row ``i`` is ``[date, size, c0 .. c{num_of_rows}]``: ``''`` where the cohort is empty
    or nothing is marked for ``select2`` yet, ``0.0`` where nobody came back.

    :param select1: the cohort's event
    :param select2: the returning event
    :param select1b: an extra cohort event, ANDed with ``select1``
    :param select2b: an extra returning event, ANDed with ``select2``
    :param time_group: ``"days"``, ``"weeks"``, ``"months"`` or ``"years"``
    :param system: the system's name
    :param as_percent: cells as percentages (default) or counts
    :param num_results: the number of rows
    :param num_of_rows: the number of later periods per row, after the first
    :param start_date: the first row's date, ``YYYY-MM-DD`` (default: rows end today)
    """

    async def call(tracker: Tracker) -> list[DatesRow]:
        return await _get_dates_data(
            select1,
            select2,
            select1b,
            select2b,
            time_group=time_group,
            as_percent=as_percent,
            num_results=num_results,
            num_of_rows=num_of_rows,
            start_date=start_date,
            tracker=tracker,
        )

    return RUNNER.run(system, call)
