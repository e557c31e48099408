r"""Cohorts and retention, the way product teams read them, in one round trip per node.

"What share of the users who signed up in week W came back in week W+k?"::

    from bitlens import EventTemplate
    from bitlens.cohort import retention

    table = await retention(tracker, "signed_up", "active", period="week", cohorts=8)
    table.rows[0].cells[1].percent  # the first cohort's week-1 retention
    table.averages()                # weighted by cohort size, complete cells only
    table.to_csv(), table.to_html(), table.to_pandas()

``start`` and ``returning`` are event names or expressions over
:class:`bitlens.EventTemplate`\ s (``EventTemplate("active") & EventTemplate("ios")``).
:func:`get_dates_data` is bitmapist's cohort function with the same arguments and numbers.
"""

from ._bitmapist import DatesRow, TimeGroup, get_dates_data
from ._reports import (
    MAX_REPORT_PERIODS,
    MAX_REPORT_SEGMENTS,
    EngagementPoint,
    EngagementReport,
    Every,
    FunnelReport,
    FunnelRow,
    LifecyclePoint,
    LifecycleReport,
    Segments,
    StickinessReport,
    StickinessRow,
    engagement,
    funnel,
    lifecycle,
    stickiness,
)
from ._retention import Criterion, InvalidRetentionQuery, retention
from ._table import (
    CellDict,
    CriterionName,
    Mode,
    PeriodName,
    RetentionCell,
    RetentionRow,
    RetentionTable,
    RowDict,
    Values,
)

__all__ = [
    "MAX_REPORT_PERIODS",
    "MAX_REPORT_SEGMENTS",
    "CellDict",
    "Criterion",
    "CriterionName",
    "DatesRow",
    "EngagementPoint",
    "EngagementReport",
    "Every",
    "FunnelReport",
    "FunnelRow",
    "InvalidRetentionQuery",
    "LifecyclePoint",
    "LifecycleReport",
    "Mode",
    "PeriodName",
    "RetentionCell",
    "RetentionRow",
    "RetentionTable",
    "RowDict",
    "Segments",
    "StickinessReport",
    "StickinessRow",
    "TimeGroup",
    "Values",
    "engagement",
    "funnel",
    "get_dates_data",
    "lifecycle",
    "retention",
    "stickiness",
]


# Show users bitlens.cohort.RetentionTable, not bitlens.cohort._table.RetentionTable.
def _rehome() -> None:
    from contextlib import suppress

    for name in __all__:
        obj = globals()[name]
        # InvalidRetentionQuery lives in bitlens._exceptions with every other error.
        if getattr(obj, "__module__", "").startswith(("bitlens.cohort._", "bitlens._exceptions")):
            with suppress(AttributeError, TypeError):  # e.g. type aliases
                obj.__module__ = "bitlens.cohort"


_rehome()
del _rehome
