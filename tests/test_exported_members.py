"""Pins the public surface of ``bitlens``: what ``__all__`` exports and how it presents itself."""

from __future__ import annotations

import inspect
import types

import pytest

import bitlens
from bitlens import cohort

EXPORTED = [
    "MAX_USER_ID",
    "AuthenticationFailed",
    "Batch",
    "BitOpAnd",
    "BitOpDiff",
    "BitOpNot",
    "BitOpOr",
    "BitOpXor",
    "BitlensError",
    "BitmapistSchema",
    "CannotMigrate",
    "Capabilities",
    "CleanupFailed",
    "Coalesce",
    "Day",
    "DayEvents",
    "EmptyDifference",
    "EmptyRange",
    "Erasure",
    "EventKey",
    "EventTemplate",
    "EventsBetween",
    "ExpiryPastCalendar",
    "Expr",
    "ExtensionRefused",
    "GranularityNotTracked",
    "Hour",
    "HourEvents",
    "HourlyRangeNotTracked",
    "HourlyWindowNotTracked",
    "IdMap",
    "IdMapKey",
    "IdMapMismatch",
    "IngestStats",
    "InvalidBulkInput",
    "InvalidEventName",
    "InvalidExpression",
    "InvalidExternalId",
    "InvalidMoment",
    "InvalidOption",
    "InvalidPeriod",
    "InvalidPeriodField",
    "InvalidPrefix",
    "InvalidTimeZone",
    "InvalidUserId",
    "InvalidWindow",
    "KeySchema",
    "Last",
    "Limits",
    "Mark",
    "MarkRejected",
    "MigrationReport",
    "Month",
    "MonthEvents",
    "NoDefaultTracker",
    "NoPeriod",
    "NoUtcOffset",
    "NotAPeriod",
    "OptionalDependencyMissing",
    "OutsideCalendar",
    "ParsedKey",
    "Period",
    "PeriodEvents",
    "PermissionDenied",
    "QueryRejected",
    "QueryTooLarge",
    "RangeNotOnWholeHour",
    "RegistryKey",
    "ReplicationTimeout",
    "ScriptsUnavailable",
    "ServerOutOfMemory",
    "ShardedSchema",
    "TempKey",
    "Tracker",
    "TrackerClosed",
    "TrackerOptions",
    "UnboundTemplate",
    "UniqueEvents",
    "Universe",
    "UniverseKey",
    "UniverseKind",
    "UniverseUnavailable",
    "UnsupportedOperation",
    "Week",
    "WeekEvents",
    "Year",
    "YearEvents",
    "__version__",
    "get_tracker",
    "last",
    "mark_event",
    "mark_events",
    "mark_unique",
    "migrate",
    "setup",
    "unmark_event",
    "unmark_unique",
]
"""The exact public names; adding or removing one is an API change that must edit this list."""

CLASSES = [
    name
    for name in EXPORTED
    if inspect.isclass(getattr(bitlens, name, None))
    and not isinstance(getattr(bitlens, name), types.GenericAlias)
]
FUNCTIONS = [name for name in EXPORTED if inspect.isfunction(getattr(bitlens, name, None))]


def test_all_is_exactly_the_pinned_list() -> None:
    """bitlens.__all__ equals the pinned list, in the same order."""
    assert bitlens.__all__ == EXPORTED


def _isort_key(name: str) -> tuple[int, str]:
    """Sort as isort's order-by-type does: CONSTANTS, then Classes, then everything else.

    :param name: an exported name
    """
    group = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return group, name


def test_all_is_sorted() -> None:
    """bitlens.__all__ is sorted isort-style: constants, classes, then functions and dunders."""
    assert bitlens.__all__ == sorted(bitlens.__all__, key=_isort_key)


def test_all_has_no_duplicates() -> None:
    """No name appears twice in bitlens.__all__."""
    assert len(set(bitlens.__all__)) == len(bitlens.__all__)


@pytest.mark.parametrize("name", EXPORTED)
def test_every_name_resolves(name: str) -> None:
    """Every exported name is an attribute of the package."""
    assert hasattr(bitlens, name)


def test_star_import_gives_exactly_the_public_names() -> None:
    """``from bitlens import *`` binds the names of __all__ and nothing else."""
    namespace: dict[str, object] = {}
    exec("from bitlens import *", namespace)  # a fixed, trusted statement
    namespace.pop("__builtins__", None)
    assert sorted(namespace) == sorted(EXPORTED)


def test_the_pinned_classes_are_the_expected_ones() -> None:
    """The exported classes are every name of the list but constants, aliases and functions."""
    assert sorted(set(EXPORTED) - set(CLASSES) - set(FUNCTIONS)) == [
        "MAX_USER_ID",
        "Mark",
        "ParsedKey",
        "UniverseKind",
        "__version__",
    ]


@pytest.mark.parametrize("name", CLASSES)
def test_public_classes_live_in_bitlens(name: str) -> None:
    """Every exported class reports ``__module__ == "bitlens"``, not a private module."""
    assert getattr(bitlens, name).__module__ == "bitlens"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_public_functions_live_in_bitlens(name: str) -> None:
    """Every exported function reports ``__module__ == "bitlens"``, not a private module."""
    assert getattr(bitlens, name).__module__ == "bitlens"


def test_max_user_id_is_the_largest_signed_64_bit_int() -> None:
    """MAX_USER_ID is 2**63 - 1."""
    assert bitlens.MAX_USER_ID == 2**63 - 1


def test_version_is_a_non_empty_string() -> None:
    """__version__ is a non-empty str."""
    assert isinstance(bitlens.__version__, str)
    assert bitlens.__version__


COHORT_EXPORTED = [
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
"""The exact public names of ``bitlens.cohort``."""


def _defined_here(obj: object) -> bool:
    """A class or function (not a type alias such as ``list[int]``, a class on Python 3.10)."""
    if isinstance(obj, types.GenericAlias):
        return False
    return inspect.isclass(obj) or inspect.isfunction(obj)


COHORT_DEFINED = [name for name in COHORT_EXPORTED if _defined_here(getattr(cohort, name))]


def test_cohort_all_is_exactly_the_pinned_list() -> None:
    """bitlens.cohort.__all__ equals its pinned list, sorted isort-style."""
    assert cohort.__all__ == COHORT_EXPORTED
    assert cohort.__all__ == sorted(cohort.__all__, key=_isort_key)


@pytest.mark.parametrize("name", COHORT_DEFINED)
def test_cohort_classes_and_functions_live_in_bitlens_cohort(name: str) -> None:
    """Every class and function of bitlens.cohort reports ``__module__ == "bitlens.cohort"``."""
    assert getattr(cohort, name).__module__ == "bitlens.cohort"


def test_invalid_retention_query_is_a_bitlens_value_error() -> None:
    """InvalidRetentionQuery joins the exception tree as a usage error and a ValueError."""
    assert issubclass(cohort.InvalidRetentionQuery, bitlens.BitlensError)
    assert issubclass(cohort.InvalidRetentionQuery, ValueError)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("bitlens.cohort", "InvalidRetentionQuery"),
        ("bitlens.web", "InvalidParameter"),
        ("bitlens.cli._parse", "ParseError"),
    ],
)
def test_part_errors_live_in_the_one_tree(module: str, name: str) -> None:
    """The cohort, web and CLI errors are _exceptions' classes, BitlensErrors and ValueErrors."""
    import importlib

    from bitlens import _exceptions

    error = getattr(importlib.import_module(module), name)
    assert error is getattr(_exceptions, name)
    assert name in _exceptions.__all__
    assert issubclass(error, bitlens.BitlensError)
    assert issubclass(error, ValueError)


def test_part_errors_survive_pickling() -> None:
    """InvalidParameter and ParseError pickle back to equal fields and message."""
    import pickle

    from bitlens._exceptions import InvalidParameter, ParseError

    parameter = pickle.loads(pickle.dumps(InvalidParameter("period", "must be day")))
    assert (parameter.name, parameter.detail, str(parameter)) == (
        "period",
        "must be day",
        "invalid 'period': must be day",
    )
    parse = pickle.loads(pickle.dumps(ParseError("expected ')'", "(a", 2)))
    assert (parse.message, parse.text, parse.position) == ("expected ')'", "(a", 2)
    assert parse.render() == "expected ')'\n  (a\n    ^"
