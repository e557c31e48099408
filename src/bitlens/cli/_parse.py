"""The expression language of ``bitlens count`` and ``bitlens retention`` (pure, no eval).

A hand-written scanner and recursive-descent parser turn text into bitlens expressions::

    month:active:2026-11 & ~month:purchase:2026-11
    (week:active:2026-W47 | week:active:2026-W48) - unique:churned
    range:active:2026-11-01..2026-11-15 ^ last:active:7d
    month:"my:event":2026-11

Grammar (``~`` binds tightest, then ``&``, then ``^``, then ``|`` and ``-``, which share the
lowest level and group left to right, so ``a | b - c`` is ``(a | b) - c``)::

    expr    := xor (("|" | "-") xor)*
    xor     := and ("^" and)*
    and     := unary ("&" unary)*
    unary   := "~" unary | "(" expr ")" | leaf
    leaf    := "all"
             | "unique:" NAME
             | ("year" | "month" | "week" | "day" | "hour" | "last" | "range") ":" NAME ":" ARG
             | NAME                        (templates only: bitlens retention)
    NAME    := a run of characters other than whitespace, quotes, ":" and "&|^~()",
               or a quoted string: "..." or '...' (backslash escapes the next character)

``ARG`` is ``2026`` (year), ``2026-11`` (month), ``2026-W48`` (ISO week), ``2026-11-27``
(day), ``2026-11-27T13`` (hour), ``7d`` or ``24h`` (last), and ``FROM..TO`` (range) whose
bounds are days or hours, both inclusive. Leaves may contain ``-``, so write the minus
operator with spaces around it (``a - b``) or after a parenthesis.

With ``templates=True`` (retention's START and RETURNING), a bare or quoted name is the
period-free template ``EventTemplate(name)``, which the retention table binds to each period.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from .._exceptions import BitlensError, ParseError
from .._expr import (
    DayEvents,
    EventsBetween,
    EventTemplate,
    Expr,
    HourEvents,
    MonthEvents,
    UniqueEvents,
    Universe,
    WeekEvents,
    YearEvents,
    last,
)
from .._keys import validate_event_name

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["KINDS", "ParseError", "parse_expression"]

KINDS: Final = ("year", "month", "week", "day", "hour", "unique", "last", "range")
"""The leaf kinds, as written before the first ``:``."""

_OPERATORS: Final = frozenset("&|^-~()")
_NAME_STOP: Final = frozenset("&|^~():\"'")
_ARG = re.compile(r"[0-9A-Za-z.\-]*")
_YEAR = re.compile(r"(\d{4})")
_MONTH = re.compile(r"(\d{4})-(\d{1,2})")
_WEEK = re.compile(r"(\d{4})-[Ww](\d{1,2})")
_DAY = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_HOUR = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})[Tt](\d{1,2})")
_LAST = re.compile(r"(\d{1,6})([dDhH])")
_BOUND = r"\d{4}-\d{1,2}-\d{1,2}(?:[Tt]\d{1,2})?"
_RANGE = re.compile(rf"({_BOUND})\.\.({_BOUND})")

_FORMS: Final = {
    "year": "a year as YYYY",
    "month": "a month as YYYY-MM",
    "week": "an ISO week as YYYY-Www",
    "day": "a day as YYYY-MM-DD",
    "hour": "an hour as YYYY-MM-DDTHH",
    "last": "a window as Nd (days) or Nh (hours)",
    "range": "a range as YYYY-MM-DD..YYYY-MM-DD (or with THH hours), both ends included",
}


@dataclass(frozen=True, slots=True)
class _Token:
    """A token: an operator character, a leaf (with its expression) or the end."""

    kind: str  # "op", "leaf" or "end"
    position: int
    text: str
    expr: Expr | None = None


class _Scanner:
    """Splits an expression into tokens; leaves are parsed into expressions on the way."""

    def __init__(self, text: str, templates: bool) -> None:
        self.text = text
        self.templates = templates
        self.pos = 0

    def error(self, message: str, position: int | None = None) -> ParseError:
        """Return a :class:`ParseError` at ``position`` (default: the current one)."""
        return ParseError(message, self.text, self.pos if position is None else position)

    def tokens(self) -> list[_Token]:
        """Return every token of the text, the end token last."""
        out: list[_Token] = []
        text = self.text
        while True:
            while self.pos < len(text) and text[self.pos].isspace():
                self.pos += 1
            if self.pos >= len(text):
                out.append(_Token("end", self.pos, ""))
                return out
            char = text[self.pos]
            if char in _OPERATORS:
                out.append(_Token("op", self.pos, char))
                self.pos += 1
                continue
            start = self.pos
            expr = self._leaf()
            out.append(_Token("leaf", start, text[start : self.pos], expr))
            self._expect_boundary()

    def _expect_boundary(self) -> None:
        """After a leaf: only whitespace, an operator other than ``-``, or the end."""
        if self.pos >= len(self.text):
            return
        char = self.text[self.pos]
        if char.isspace() or (char in _OPERATORS and char != "-"):
            return
        raise self.error(f"unexpected {char!r} after a leaf")

    def _name(self) -> tuple[str, int]:
        """Read a quoted or bare name; return it and where it started."""
        text = self.text
        start = self.pos
        if start < len(text) and text[start] in "\"'":
            quote = text[start]
            chars: list[str] = []
            i = start + 1
            while i < len(text) and text[i] != quote:
                if text[i] == "\\" and i + 1 < len(text):
                    i += 1
                chars.append(text[i])
                i += 1
            if i >= len(text):
                raise self.error(f"unterminated quoted name: no closing {quote}", start)
            self.pos = i + 1
            return "".join(chars), start
        i = start
        while i < len(text) and not text[i].isspace() and text[i] not in _NAME_STOP:
            i += 1
        self.pos = i
        return text[start:i], start

    def _event(self, name: str, position: int) -> str:
        """Return ``name`` if it is a valid event name, else raise a ParseError at ``position``."""
        try:
            return validate_event_name(name)
        except BitlensError as exc:
            raise self.error(str(exc), position) from None

    def _leaf(self) -> Expr:
        """Read one leaf at the current position and return its expression."""
        text = self.text
        word, start = self._name()
        quoted = text[start] in "\"'"
        if quoted or self.pos >= len(text) or text[self.pos] != ":":
            if not quoted and word == "all":
                return Universe()
            if self.templates and word:
                return EventTemplate(self._event(word, start))
            if quoted:
                raise self.error(
                    'a quoted name goes after its kind, as in month:"my:event":2026-11', start
                )
            if not word:
                raise self.error(
                    f"unexpected {text[start]!r}: expected a leaf such as month:EVENT:2026-11"
                )
            raise self.error(
                f"expected a leaf such as month:{word}:2026-11, unique:{word} or all; got {word!r}",
                start,
            )
        kind = word.lower()
        if kind not in KINDS:
            hint = " (quote an event name that contains ':')" if self.templates else ""
            raise self.error(
                f"unknown kind {word!r}: expected one of {', '.join(KINDS)} or all{hint}", start
            )
        self.pos += 1  # the ':'
        name, name_at = self._name()
        if not name and (name_at >= len(text) or text[name_at] not in "\"'"):
            raise self.error(f"expected an event name after {word}:", name_at)
        event = self._event(name, name_at)
        if kind == "unique":
            if self.pos < len(text) and text[self.pos] == ":":
                raise self.error("unique:EVENT has no period (it means ever)")
            return UniqueEvents(event)
        if self.pos >= len(text) or text[self.pos] != ":":
            raise self.error(f"expected ':' then {_FORMS[kind]} after the event name")
        self.pos += 1
        arg_at = self.pos
        match = _ARG.match(text, arg_at)
        arg = match.group() if match else ""
        self.pos = arg_at + len(arg)
        try:
            return _LEAVES[kind](event, arg)
        except _BadArgument:
            shown = f", got {arg!r}" if arg else ""
            raise self.error(f"expected {_FORMS[kind]}{shown}", arg_at) from None
        except (BitlensError, ValueError) as exc:  # e.g. month 13, week 53 of a 52-week year
            raise self.error(str(exc), arg_at) from None


class _BadArgument(Exception):
    """The argument of a leaf does not have its kind's form."""


def _groups(pattern: re.Pattern[str], arg: str) -> tuple[int, ...]:
    """Return the ints of ``pattern``'s groups in ``arg``, or raise ``_BadArgument``."""
    match = pattern.fullmatch(arg)
    if match is None:
        raise _BadArgument
    return tuple(int(group) for group in match.groups())


def _year(event: str, arg: str) -> Expr:
    """Return ``year:EVENT:YYYY``."""
    return YearEvents(event, *_groups(_YEAR, arg))


def _month(event: str, arg: str) -> Expr:
    """Return ``month:EVENT:YYYY-MM``."""
    return MonthEvents(event, *_groups(_MONTH, arg))


def _week(event: str, arg: str) -> Expr:
    """Return ``week:EVENT:YYYY-Www``."""
    return WeekEvents(event, *_groups(_WEEK, arg))


def _day(event: str, arg: str) -> Expr:
    """Return ``day:EVENT:YYYY-MM-DD``."""
    return DayEvents(event, *_groups(_DAY, arg))


def _hour(event: str, arg: str) -> Expr:
    """Return ``hour:EVENT:YYYY-MM-DDTHH``."""
    return HourEvents(event, *_groups(_HOUR, arg))


def _last(event: str, arg: str) -> Expr:
    """Return ``last:EVENT:Nd`` or ``last:EVENT:Nh``."""
    match = _LAST.fullmatch(arg)
    if match is None:
        raise _BadArgument
    n = int(match.group(1))
    if n < 1:
        raise ValueError(f"a window needs at least one day or hour, got {arg!r}")
    return last(event, hours=n) if match.group(2) in "hH" else last(event, days=n)


def _bound(text: str, *, end: bool) -> tuple[_dt.date | _dt.datetime, bool]:
    """Return a range bound (the day or hour after it for an end: ends are inclusive)."""
    day, _, hour = text.upper().partition("T")
    date = _dt.date(*(int(part) for part in day.split("-")))
    if not hour:
        return (date + _dt.timedelta(days=1) if end else date), False
    moment = _dt.datetime.combine(date, _dt.time(int(hour)))
    return (moment + _dt.timedelta(hours=1) if end else moment), True


def _range(event: str, arg: str) -> Expr:
    """Return ``range:EVENT:FROM..TO``, both ends included."""
    match = _RANGE.fullmatch(arg)
    if match is None:
        raise _BadArgument
    start, start_hourly = _bound(match.group(1), end=False)
    stop, stop_hourly = _bound(match.group(2), end=True)
    hourly = start_hourly or stop_hourly
    if hourly:
        start = start if isinstance(start, _dt.datetime) else _as_datetime(start)
        stop = stop if isinstance(stop, _dt.datetime) else _as_datetime(stop)
    if _as_datetime(stop) <= _as_datetime(start):
        raise ValueError(f"the range {arg!r} ends before it starts")
    # Hours written by the user mean hour bitmaps exist, as for hour: and last:Nh leaves.
    return EventsBetween(event, start, stop, hourly=True if hourly else None)


def _as_datetime(moment: _dt.date | _dt.datetime) -> _dt.datetime:
    """Return ``moment`` as a datetime (a date means its midnight)."""
    if isinstance(moment, _dt.datetime):
        return moment
    return _dt.datetime.combine(moment, _dt.time())


_LEAVES: Final[dict[str, Callable[[str, str], Expr]]] = {
    "year": _year,
    "month": _month,
    "week": _week,
    "day": _day,
    "hour": _hour,
    "last": _last,
    "range": _range,
}


class _Parser:
    """Recursive descent over the scanner's tokens, one method per precedence level."""

    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0

    @property
    def token(self) -> _Token:
        """The current token."""
        return self.tokens[self.i]

    def error(self, message: str, token: _Token | None = None) -> ParseError:
        """Return a :class:`ParseError` at ``token`` (default: the current token)."""
        return ParseError(message, self.text, (token or self.token).position)

    def parse(self) -> Expr:
        """Return the whole text's expression."""
        if self.token.kind == "end":
            raise self.error("empty expression: expected a leaf such as month:EVENT:2026-11")
        expr = self.union()
        token = self.token
        if token.kind == "op" and token.text == ")":
            raise self.error("unmatched ')'")
        if token.kind != "end":
            raise self.error(f"expected an operator (& | ^ -) before {token.text!r}")
        return expr

    def _accept(self, *ops: str) -> str | None:
        """Consume the current token if it is one of ``ops``; return it, or ``None``."""
        token = self.token
        if token.kind == "op" and token.text in ops:
            self.i += 1
            return token.text
        return None

    def union(self) -> Expr:
        """``xor (("|" | "-") xor)*``, left to right."""
        expr = self.xor()
        while (op := self._accept("|", "-")) is not None:
            right = self.xor()
            expr = expr | right if op == "|" else expr - right
        return expr

    def xor(self) -> Expr:
        """``and ("^" and)*``."""
        expr = self.conjunction()
        while self._accept("^"):
            expr = expr ^ self.conjunction()
        return expr

    def conjunction(self) -> Expr:
        """``unary ("&" unary)*``."""
        expr = self.unary()
        while self._accept("&"):
            expr = expr & self.unary()
        return expr

    def unary(self) -> Expr:
        """``"~" unary | "(" expr ")" | leaf``."""
        token = self.token
        if self._accept("~"):
            return ~self.unary()
        if self._accept("("):
            expr = self.union()
            if not self._accept(")"):
                raise self.error(f"expected ')' to close the '(' at column {token.position + 1}")
            return expr
        if token.kind == "leaf" and token.expr is not None:
            self.i += 1
            return token.expr
        if token.kind == "end":
            raise self.error("unexpected end: expected a leaf, '(' or '~'")
        raise self.error(f"unexpected {token.text!r}: expected a leaf, '(' or '~'")


def parse_expression(text: str, *, templates: bool = False) -> Expr:
    r"""Parse ``text`` into a bitlens expression, without ``eval``.

    Example: ``parse_expression("month:active:2026-11 & ~unique:churned")`` is
    ``MonthEvents("active", 2026, 11) & ~UniqueEvents("churned")``.

    :param text: the expression (see the module docstring for the grammar)
    :param templates: also accept bare or quoted names as ``EventTemplate``\ s
    :raises ParseError: with the position of the first error
    """
    tokens = _Scanner(text, templates).tokens()
    return _Parser(text, tokens).parse()
