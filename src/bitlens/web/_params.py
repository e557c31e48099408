"""Query-string parsing for the dashboard's JSON API (pure, no I/O).

A query is a mapping of names to every value given for that name (``?event=a&event=b``),
which both web integrations build from their own request objects. Every parser raises
:class:`InvalidParameter` with a message fit to show the person who typed the URL.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping, Sequence
from typing import TypeAlias, TypeVar

from .._exceptions import InvalidParameter
from .._keys import validate_event_name

__all__ = [
    "InvalidParameter",
    "Query",
    "parse_choice",
    "parse_date",
    "parse_event",
    "parse_events",
    "parse_int",
    "parse_one",
]

Query: TypeAlias = Mapping[str, Sequence[str]]
"""A parsed query string: each name with every value given for it, in order."""

_C = TypeVar("_C", bound=str)

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_one(query: Query, name: str) -> str | None:
    """Return the single value of ``name``, or ``None`` when it is absent or empty.

    :param query: the parsed query string
    :param name: the parameter
    :raises InvalidParameter: if it is given more than once
    """
    values = query.get(name, ())
    if len(values) > 1:
        raise InvalidParameter(name, f"given {len(values)} times; give it once")
    return values[0] if values and values[0] != "" else None


def parse_event(query: Query, name: str, default: str | None = None) -> str:
    """Return an event name, validated as bitlens validates names.

    :param query: the parsed query string
    :param name: the parameter
    :param default: the value when absent (``None``: the parameter is required)
    :raises InvalidParameter: if it is absent without a default, repeated or not a valid
        event name
    """
    value = parse_one(query, name)
    if value is None:
        if default is None:
            raise InvalidParameter(name, "required")
        return default
    return _valid_event(name, value)


def parse_events(query: Query, name: str, *, limit: int) -> list[str]:
    """Return the values of a repeatable event parameter, without duplicates, in order.

    :param query: the parsed query string
    :param name: the parameter
    :param limit: the most distinct names allowed
    :raises InvalidParameter: if none is given, more than ``limit`` are, or one is invalid
    """
    names = list(dict.fromkeys(value for value in query.get(name, ()) if value != ""))
    if not names:
        raise InvalidParameter(name, "give at least one event")
    if len(names) > limit:
        raise InvalidParameter(name, f"at most {limit} events per request, got {len(names)}")
    return [_valid_event(name, value) for value in names]


def _valid_event(name: str, value: str) -> str:
    try:
        return validate_event_name(value)
    except ValueError as exc:  # InvalidEventName: say which parameter held it
        raise InvalidParameter(name, str(exc)) from None


def parse_choice(query: Query, name: str, choices: Sequence[_C]) -> _C:
    """Return the value of ``name`` if it is one of ``choices`` (default: the first one).

    :param query: the parsed query string
    :param name: the parameter
    :param choices: the values allowed, the default first
    :raises InvalidParameter: for any other value, or if repeated
    """
    value = parse_one(query, name)
    if value is None:
        return choices[0]
    for choice in choices:
        if value == choice:
            return choice
    raise InvalidParameter(name, f"must be one of {', '.join(choices)}; got {value!r}")


def parse_int(query: Query, name: str, default: int | None, low: int, high: int) -> int:
    """Return a decimal integer from ``low`` to ``high``.

    :param query: the parsed query string
    :param name: the parameter
    :param default: the value when absent (``None``: the parameter is required)
    :param low: the smallest value allowed
    :param high: the largest value allowed
    :raises InvalidParameter: if absent without a default, repeated, not an integer or
        out of range
    """
    value = parse_one(query, name)
    if value is None:
        if default is None:
            raise InvalidParameter(name, "required")
        return default
    if not value.isascii() or not value.isdigit() or len(value) > 20:
        raise InvalidParameter(name, f"must be an integer from {low} to {high}; got {value!r}")
    number = int(value)
    if not low <= number <= high:
        raise InvalidParameter(name, f"must be an integer from {low} to {high}; got {number}")
    return number


def parse_date(query: Query, name: str, default: _dt.date | None) -> _dt.date:
    """Return an ISO 8601 calendar date (``2026-11-27``).

    :param query: the parsed query string
    :param name: the parameter
    :param default: the value when absent (``None``: the parameter is required)
    :raises InvalidParameter: if absent without a default, repeated or not a date
    """
    value = parse_one(query, name)
    if value is None:
        if default is None:
            raise InvalidParameter(name, "required")
        return default
    if _ISO_DATE.match(value) is None:
        raise InvalidParameter(name, f"must be a date like 2026-11-27; got {value!r}")
    try:
        return _dt.date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidParameter(name, f"{value!r} is not a date: {exc}") from None
