"""Each exception builds its own message from typed fields, keeps them, and survives pickling."""

from __future__ import annotations

import copy
import pickle
import uuid
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest

import bitlens
from bitlens import _exceptions as exc
from bitlens._exceptions import BitlensError

if TYPE_CHECKING:
    from collections.abc import Callable

_UTC = timezone.utc
_START = datetime(2026, 3, 1, 13, 0)
_END = datetime(2026, 3, 2, 0, 0)
_DIFF = bitlens.Capabilities(diff=True)

# (the error made from fields, the fields it must keep, parts its message must hold)
CASES: dict[str, tuple[Callable[[], BitlensError], dict[str, object], tuple[str, ...]]] = {
    "InvalidUserId": (
        lambda: exc.InvalidUserId(-3, 100),
        {"user_id": -3, "limit": 100},
        ("-3", "0 to 100", "int"),
    ),
    "InvalidExternalId": (
        lambda: exc.InvalidExternalId("x" * 9, "size", 8),
        {"external_id": "x" * 9, "problem": "size", "max_bytes": 8},
        ("'xxxxxxxxx'", "at most 8 UTF-8 bytes"),
    ),
    "IdMapMismatch": (
        lambda: exc.IdMapMismatch("users", 4, 8),
        {"name": "users", "stored": 4, "given": 8},
        ("'users'", "buckets=4", "not 8"),
    ),
    "InvalidEventName": (
        lambda: exc.InvalidEventName("a b", "a space is not allowed"),
        {"name": "a b", "reason": "a space is not allowed"},
        ("'a b'", "a space is not allowed"),
    ),
    "InvalidPrefix": (lambda: exc.InvalidPrefix("{x}"), {"prefix": "{x}"}, ("'{x}'",)),
    "InvalidPeriod": (
        lambda: exc.InvalidPeriod("no such day"),
        {"detail": "no such day"},
        ("invalid period", "no such day"),
    ),
    "InvalidPeriodField": (
        lambda: exc.InvalidPeriodField("week", 53, 1, 52, "ISO year 2025"),
        {"field": "week", "value": 53, "low": 1, "high": 52, "within": "ISO year 2025"},
        ("week 53", "for ISO year 2025", "(1..52)"),
    ),
    "OutsideCalendar": (
        lambda: exc.OutsideCalendar(datetime(9999, 12, 31, 23), zone=_UTC),
        {"subject": datetime(9999, 12, 31, 23), "zone": _UTC, "shift": None},
        ("9999-12-31T23:00:00 in UTC", "outside years 1..9999"),
    ),
    "NoUtcOffset": (
        lambda: exc.NoUtcOffset(_START, "offset must be less than 24 hours"),
        {"moment": _START, "error": "offset must be less than 24 hours"},
        ("2026, 3, 1, 13, 0", "no usable UTC offset", "less than 24 hours"),
    ),
    "RangeNotOnWholeHour": (
        lambda: exc.RangeNotOnWholeHour("end", datetime(2026, 3, 1, 13, 30), _UTC),
        {"side": "end", "bound": datetime(2026, 3, 1, 13, 30), "zone": _UTC},
        ("whole hours", "end is 2026-03-01T13:30:00", "in UTC"),
    ),
    "EmptyRange": (
        lambda: exc.EmptyRange(_END, _START, _UTC),
        {"start": _END, "end": _START, "zone": _UTC},
        ("empty range", "start 2026-03-02T00:00:00", "end 2026-03-01T13:00:00", "in UTC"),
    ),
    "ExpiryPastCalendar": (
        lambda: exc.ExpiryPastCalendar("month", "9999-12", timedelta(days=40)),
        {"granularity": "month", "period": "9999-12", "ttl": timedelta(days=40)},
        ("month 9999-12 cannot expire", "expire_after['month'] = 40 days", "past year 9999"),
    ),
    "InvalidTimeZone": (
        lambda: exc.InvalidTimeZone("Mars/Olympus"),
        {"tz": "Mars/Olympus"},
        ("unknown time zone 'Mars/Olympus'",),
    ),
    "InvalidMoment": (lambda: exc.InvalidMoment(3.5), {"value": 3.5}, ("float", "3.5")),
    "InvalidBulkInput": (
        lambda: exc.InvalidBulkInput("times", 4, None, "not a time"),
        {"column": "times", "index": 4, "value": None, "reason": "not a time"},
        ("times[4]", "None", "not a time"),
    ),
    "OptionalDependencyMissing": (
        lambda: exc.OptionalDependencyMissing("Tracker.mark_bulk()", "numpy", "bulk"),
        {"feature": "Tracker.mark_bulk()", "package": "numpy", "extra": "bulk"},
        ("needs numpy", "bitlens[bulk]"),
    ),
    "InvalidOption": (
        lambda: exc.InvalidOption("max_user_id", 0, "an int from 1"),
        {"option": "max_user_id", "value": 0, "expected": "an int from 1"},
        ("max_user_id=0", "an int from 1"),
    ),
    "GranularityNotTracked": (
        lambda: exc.GranularityNotTracked("needs hours"),
        {"detail": "needs hours"},
        ("needs hours",),
    ),
    "HourlyRangeNotTracked": (
        lambda: exc.HourlyRangeNotTracked(_START, _END, _UTC, "start"),
        {"start": _START, "end": _END, "zone": _UTC, "side": "start"},
        ("2026-03-01T13:00:00 .. 2026-03-02T00:00:00 (UTC)", "starts at 13:00", "track_hourly"),
    ),
    "HourlyWindowNotTracked": (
        lambda: exc.HourlyWindowNotTracked(bitlens.Last("login", hours=3)),
        {"window": bitlens.Last("login", hours=3)},
        ("'login'", "hours=3", "hour bitmaps", "track_hourly=True"),
    ),
    "InvalidExpression": (lambda: exc.InvalidExpression({1}), {"operand": {1}}, ("set", "{1}")),
    "UnsupportedOperation": (
        lambda: exc.UnsupportedOperation("not here"),
        {"detail": "not here"},
        ("not here",),
    ),
    "NoPeriod": (
        lambda: exc.NoPeriod(bitlens.UniqueEvents("login"), "delta"),
        {"subject": bitlens.UniqueEvents("login"), "operation": "delta"},
        ("UniqueEvents has no period to shift",),
    ),
    "UnboundTemplate": (
        lambda: exc.UnboundTemplate(bitlens.EventTemplate("login"), "count"),
        {"template": bitlens.EventTemplate("login"), "operation": "count"},
        ("EventTemplate('login')", "bind it first with .at(period)"),
    ),
    "NotAPeriod": (
        lambda: exc.NotAPeriod(bitlens.EventTemplate("login"), 2026),
        {"template": bitlens.EventTemplate("login"), "value": 2026},
        ("cannot bind EventTemplate('login') to 2026",),
    ),
    "InvalidWindow": (
        lambda: exc.InvalidWindow(2, 3, 0),
        {"days": 2, "hours": 3, "offset": 0},
        ("exactly one of days=N or hours=N", "days=2", "hours=3"),
    ),
    "EmptyDifference": (
        lambda: exc.EmptyDifference(bitlens.UniqueEvents("login")),
        {"base": bitlens.UniqueEvents("login")},
        ("BitOpDiff needs", "at least one set to subtract", "'login'"),
    ),
    "CannotMigrate": (
        lambda: exc.CannotMigrate("ids up to 2**40"),
        {"detail": "ids up to 2**40"},
        ("cannot migrate: ids up to 2**40",),
    ),
    "UniverseUnavailable": (
        lambda: exc.UniverseUnavailable("BitmapistSchema(prefix='trackist_')"),
        {"schema": "BitmapistSchema(prefix='trackist_')"},
        ("keeps no universe", "BitOpNot(x, universe=", "BitmapistSchema(universe="),
    ),
    "QueryTooLarge": (
        lambda: exc.QueryTooLarge(900, 500),
        {"work": 900, "limit": 500},
        ("reading 900 bitmaps", "at most 500"),
    ),
    "ScriptsUnavailable": (
        lambda: exc.ScriptsUnavailable("ERR unknown command 'eval'"),
        {"reply": "ERR unknown command 'eval'"},
        ("no Lua scripts", "ERR unknown command 'eval'"),
    ),
    "ExtensionRefused": (
        lambda: exc.ExtensionRefused(_DIFF, "ERR syntax error", probed=True),
        {"capabilities": _DIFF, "reply": "ERR syntax error", "probed": True},
        ("diff=True", "ERR syntax error", "probes again"),
    ),
    "TrackerClosed": (exc.TrackerClosed, {}, ("closed",)),
    "NoDefaultTracker": (exc.NoDefaultTracker, {}, ("bitlens.setup",)),
    "MarkRejected": (
        lambda: exc.MarkRejected("login", 7, "WRONGTYPE"),
        {"event": "login", "user_id": 7, "reason": "WRONGTYPE"},
        ("('login', 7)", "WRONGTYPE"),
    ),
    "CleanupFailed": (
        lambda: exc.CleanupFailed(3, "NOPERM"),
        {"keys": 3, "reason": "NOPERM"},
        ("3 temp key(s)", "NOPERM"),
    ),
    "QueryRejected": (
        lambda: exc.QueryRejected("bad slot"),
        {"reason": "bad slot"},
        ("refused its arguments", "bad slot"),
    ),
    "AuthenticationFailed": (
        lambda: exc.AuthenticationFailed("WRONGPASS"),
        {"detail": "WRONGPASS"},
        ("refused authentication (WRONGPASS)", "PASSWORD"),
    ),
    "PermissionDenied": (
        lambda: exc.PermissionDenied("BITOP", "NOPERM", "grant +bitop"),
        {"command": "BITOP", "detail": "NOPERM", "remedy": "grant +bitop"},
        ("may not run BITOP (NOPERM)", "grant +bitop"),
    ),
    "ServerOutOfMemory": (
        lambda: exc.ServerOutOfMemory("OOM command not allowed"),
        {"detail": "OOM command not allowed"},
        ("out of memory (OOM command not allowed)", "maxmemory"),
    ),
    "RedisServerNotFound": (
        lambda: exc.RedisServerNotFound("no binary at /x"),
        {"reason": "no binary at /x"},
        ("no binary at /x", "BITLENS_REDIS_SERVER"),
    ),
    "ReplicationTimeout": (
        lambda: exc.ReplicationTimeout(2, 1),
        {"wanted": 2, "got": 1},
        ("acknowledged by 1 replica(s)", "2 required"),
    ),
    "InvalidParameter": (
        lambda: exc.InvalidParameter("period", "must be one of day, week, month; got 'year'"),
        {"name": "period", "detail": "must be one of day, week, month; got 'year'"},
        ("invalid 'period'", "got 'year'"),
    ),
    "InvalidRetentionQuery": (
        lambda: exc.InvalidRetentionQuery("cohorts must be at least 1, got 0"),
        {"detail": "cohorts must be at least 1, got 0"},
        ("cohorts must be at least 1, got 0",),
    ),
    "ParseError": (
        lambda: exc.ParseError("expected ')'", "(a & b", 6),
        {"message": "expected ')'", "text": "(a & b", "position": 6},
        ("expected ')'",),
    ),
}


def test_every_exported_class_has_a_case() -> None:
    """The table below covers every class the exceptions module exports."""
    assert sorted(CASES) == sorted(name for name in exc.__all__ if name != "BitlensError")


@pytest.mark.parametrize("name", sorted(CASES))
def test_message_names_its_fields(name: str) -> None:
    """The class builds its message from its fields, and keeps each field as an attribute."""
    make, fields, parts = CASES[name]
    error = make()
    assert isinstance(error, getattr(exc, name))
    assert {key: getattr(error, key) for key in fields} == fields
    for part in parts:
        assert part in str(error)


@pytest.mark.parametrize("name", sorted(CASES))
def test_copy_and_pickle_rebuild_from_fields(name: str) -> None:
    """copy and pickle give an error of the same class, fields and message."""
    make, fields, _ = CASES[name]
    error = make()
    for clone in (copy.copy(error), pickle.loads(pickle.dumps(error))):
        assert type(clone) is type(error)
        assert str(clone) == str(error)
        assert {key: getattr(clone, key) for key in fields} == fields


def test_wrong_type_time_zone_pickles_as_type_error() -> None:
    """An InvalidTimeZone for a zone of the wrong type stays a TypeError through pickle."""
    clone = pickle.loads(pickle.dumps(exc.InvalidTimeZone(42)))
    assert isinstance(clone, exc.InvalidTimeZone)
    assert isinstance(clone, TypeError)
    assert clone.tz == 42


def test_external_id_problems_name_their_cause() -> None:
    """Each InvalidExternalId problem gives its own reason."""
    reasons = {
        problem: exc.InvalidExternalId(uuid.uuid4() if problem == "type" else "", problem).reason
        for problem in ("type", "empty", "unicode", "size")
    }
    assert reasons == {
        "type": "must be a str or uuid.UUID, not UUID",
        "empty": "must not be empty",
        "unicode": "must be valid Unicode (no lone surrogates)",
        "size": "must be at most 1024 UTF-8 bytes",
    }


def test_tree_in_docstring_lists_every_class() -> None:
    """The module docstring draws every exported class, each under its base class."""
    doc = exc.__doc__ or ""
    tree = doc[doc.index("BitlensError\n") :]
    rows = [line for line in tree.splitlines() if "── " in line]
    drawn = {line.split("── ")[1].split()[0]: len(line.split("── ")[0]) for line in rows}
    assert sorted(drawn) == sorted(name for name in exc.__all__ if name != "BitlensError")
    for name in drawn:
        cls = getattr(exc, name)
        parent = next(b for b in cls.__mro__[1:] if issubclass(b, BitlensError))
        depth = 5 if parent is BitlensError else drawn[parent.__name__] + 4
        assert drawn[name] == depth, name
