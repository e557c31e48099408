"""bitmapist 3.119 marking and answering questions, run in bitmapist's own venv.

The layout tests (``tests/test_bitmapist_layout.py``) drive this script with the python of
a venv that holds bitmapist 3.119 and redis-py < 6; it imports nothing of bitlens. It reads
one JSON document on stdin and prints one on stdout::

    python bitmapist_side.py --host 127.0.0.1 --port 6379 < job.json

The job may hold:

* ``"marks"``: ``[[event, user_id, iso datetime, hourly, unique], ...]``, written with
  bitmapist's own ``mark_event(..., track_hourly=hourly, track_unique=unique)``;
* ``"questions"``: ``[[kind, expression, ids], ...]``, answered with bitmapist's objects:
  kind ``count`` (``len()``), ``has`` (``has_events_marked()``), ``members`` (iteration,
  sorted), ``contains`` (``id in obj`` for each of ``ids``); an expression is a list:
  ``["month", event, y, m]``, ``["week", event, iso_y, w]``, ``["day", event, y, m, d]``,
  ``["hour", event, y, m, d, h]``, ``["year", event, y]``, ``["unique", event]``,
  ``["and" | "or" | "xor", expr, ...]`` (``BitOpAnd``/``Or``/``Xor``), and ``["diff",
  a, b, ...]``: bitmapist has no difference, so its members are those of ``a`` minus
  those of the others, by iteration.

The reply is ``{"bitmapist": version, "answers": [...]}``, one answer per question. Every
``BitOp*`` key it made is deleted before it exits.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from importlib.metadata import version
from typing import Any

import bitmapist  # pyright: ignore[reportMissingImports]


def _build(expr: list[Any]) -> Any:
    kind, *args = expr
    if kind == "month":
        return bitmapist.MonthEvents(*args)
    if kind == "week":
        return bitmapist.WeekEvents(*args)
    if kind == "day":
        return bitmapist.DayEvents(*args)
    if kind == "hour":
        return bitmapist.HourEvents(*args)
    if kind == "year":
        return bitmapist.YearEvents(*args)
    if kind == "unique":
        return bitmapist.UniqueEvents(*args)
    ops = {"and": bitmapist.BitOpAnd, "or": bitmapist.BitOpOr, "xor": bitmapist.BitOpXor}
    return ops[kind](*(_build(arg) for arg in args))


def _members(expr: list[Any]) -> list[int]:
    if expr[0] == "diff":
        found = set(_members(expr[1]))
        for other in expr[2:]:
            found -= set(_members(other))
        return sorted(found)
    return sorted(_build(expr))


def _answer(kind: str, expr: list[Any], ids: list[int]) -> Any:
    if kind == "members":
        return _members(expr)
    if expr[0] == "diff":  # no bitmapist object: answer from its members
        members = set(_members(expr))
        if kind == "count":
            return len(members)
        if kind == "has":
            return bool(members)
        return [uid in members for uid in ids]
    obj = _build(expr)
    if kind == "count":
        return len(obj)
    if kind == "has":
        return bool(obj.has_events_marked())
    return [uid in obj for uid in ids]


def main() -> None:
    """Mark, answer, print."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    job = json.load(sys.stdin)
    bitmapist.setup_redis("default", args.host, args.port)
    for event, user_id, at, hourly, unique in job.get("marks", []):
        bitmapist.mark_event(
            event,
            int(user_id),
            now=datetime.fromisoformat(at),
            track_hourly=bool(hourly),
            track_unique=bool(unique),
        )
    answers = [_answer(kind, expr, ids) for kind, expr, ids in job.get("questions", [])]
    bitmapist.delete_runtime_bitop_keys()
    json.dump({"bitmapist": version("bitmapist"), "answers": answers}, sys.stdout)


if __name__ == "__main__":
    main()
