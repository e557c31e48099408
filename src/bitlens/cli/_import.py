"""``bitlens import FILE``: backfill history from a CSV, JSON lines or Parquet file.

Rows of ``event,user_id,timestamp`` (the column names are options) are read in chunks of
``--chunk-rows`` rows, split by event and written with :meth:`Tracker.mark_bulk`, one
chunk at a time, so memory stays bounded however long the file. Timestamps are ISO 8601
(``2026-11-27T12:30:00+01:00``; without an offset they are in ``--tz``) or epoch seconds.

A bad row stops the import with its line number; the chunks before it stay written
(marking is idempotent: fix the file and import it again). ``--dry-run`` reads and checks
the whole file and sends nothing.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from .._exceptions import OptionalDependencyMissing
from .._keys import validate_event_name
from .._periods import resolve_tz
from ._common import (
    UsageError,
    add_connection_options,
    open_tracker,
    positive_int,
    require_url,
)

if TYPE_CHECKING:
    import argparse
    from argparse import _SubParsersAction  # pyright: ignore[reportPrivateUsage]
    from collections.abc import Iterator

    from .._tracker import Tracker

__all__ = ["add_import_parser", "parse_time", "read_chunks"]

CHUNK_ROWS = 100_000
"""Rows read and sent per chunk by default."""

Row = tuple[str, int, "_dt.datetime | float"]
_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


def add_import_parser(sub: _SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``import`` subcommand.

    :param sub: the subparsers of the ``bitlens`` parser
    """
    parser = sub.add_parser(
        "import",
        help="backfill marks from a CSV, JSON lines or Parquet file of event,user_id,timestamp",
        description=(
            "Mark every row of FILE (CSV with a header, JSON lines, or Parquet when pyarrow "
            "is installed), streamed in chunks through Tracker.mark_bulk. Timestamps are ISO "
            "8601 (without an offset: in --tz) or epoch seconds. Progress goes to stderr."
        ),
    )
    parser.add_argument("file", metavar="FILE", type=Path, help="the file to import")
    parser.add_argument(
        "--format",
        choices=("csv", "jsonl", "parquet"),
        default=None,
        help="the file's format (default: from its extension: .csv, .jsonl/.ndjson, .parquet)",
    )
    parser.add_argument("--event-column", default="event", metavar="NAME", help="default: event")
    parser.add_argument("--user-column", default="user_id", metavar="NAME", help="default: user_id")
    parser.add_argument(
        "--time-column", default="timestamp", metavar="NAME", help="default: timestamp"
    )
    parser.add_argument("--hourly", action="store_true", help="also set hour bits")
    parser.add_argument("--unique", action="store_true", help="also set UniqueEvents bits")
    parser.add_argument(
        "--chunk-rows",
        type=positive_int,
        default=CHUNK_ROWS,
        metavar="N",
        help=f"rows read and sent per chunk (default: {CHUNK_ROWS:,})",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="read and check every row, send nothing (needs no Redis)",
    )
    add_connection_options(parser, url_help="required unless --dry-run")
    parser.set_defaults(run=_run, parser=parser)


def parse_time(text: str) -> _dt.datetime | float:
    """Read a timestamp cell: epoch seconds, or ISO 8601 (a trailing ``Z`` means UTC).

    :param text: the cell
    :raises ValueError: for anything else
    """
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    return _dt.datetime.fromisoformat(text)


class _Columns:
    """Reads one row's three cells from a mapping, with the line number in every error."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.names = (args.event_column, args.user_column, args.time_column)

    def row(self, record: object, line: int) -> Row:
        if not isinstance(record, dict):
            raise UsageError(f"line {line}: expected an object with {', '.join(self.names)}")
        event_name, user_name, time_name = self.names
        try:
            event, user, moment = record[event_name], record[user_name], record[time_name]
        except KeyError as exc:
            raise UsageError(f"line {line}: no column {exc.args[0]!r}") from None
        if isinstance(user, str):
            user = user.strip()
            user = int(user) if user.isdigit() else user
        if isinstance(user, bool) or not isinstance(user, int):
            raise UsageError(f"line {line}: user id {user!r} is not a non-negative integer")
        try:
            at = parse_time(moment) if isinstance(moment, str) else moment
        except ValueError:
            raise UsageError(f"line {line}: timestamp {moment!r} is not ISO 8601") from None
        if isinstance(at, bool) or not isinstance(at, (int, float, _dt.datetime)):
            raise UsageError(f"line {line}: timestamp {moment!r} is not a time")
        return str(event), user, at


def _records(kind: str, handle: io.TextIOWrapper) -> Iterator[object]:
    if kind == "csv":
        yield from csv.DictReader(handle)
        return
    for line, text in enumerate(handle, 1):
        if text.strip():
            try:
                yield json.loads(text)
            except json.JSONDecodeError as exc:
                raise UsageError(f"line {line}: not JSON: {exc.msg}") from None
        else:
            yield None  # keeps the line numbers; skipped below


def read_chunks(args: argparse.Namespace, progress: _Progress) -> Iterator[list[Row]]:
    """Yield the file's rows in chunks of ``--chunk-rows``.

    :param args: the parsed arguments
    :param progress: told how many bytes have been read
    :raises UsageError: for an unknown format, a missing column or an unreadable cell
    """
    path: Path = args.file
    kind: str | None = args.format or _FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UsageError(f"cannot tell the format of {str(path)!r}: give --format")
    if kind == "parquet":
        yield from _parquet_chunks(args, progress)
        return
    columns = _Columns(args)
    size: int = args.chunk_rows
    with path.open("rb") as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as handle:
        rows: list[Row] = []
        first_line = 2 if kind == "csv" else 1  # after a CSV's header
        for number, record in enumerate(_records(kind, handle), first_line):
            if record is None:
                continue
            rows.append(columns.row(record, number))
            if len(rows) >= size:
                progress.read(raw.tell())
                yield rows
                rows = []
        progress.read(raw.tell())
        if rows:
            yield rows


def _parquet_chunks(args: argparse.Namespace, progress: _Progress) -> Iterator[list[Row]]:
    """Yield a Parquet file's rows in chunks (needs pyarrow)."""
    try:
        import pyarrow.parquet as pq  # type: ignore[import-not-found, unused-ignore]  # pyright: ignore[reportMissingImports]
    except ModuleNotFoundError:
        raise OptionalDependencyMissing("bitlens import of Parquet", "pyarrow", "bulk") from None
    columns = _Columns(args)
    source = pq.ParquetFile(args.file)  # pyright: ignore[reportUnknownVariableType]
    line = 1
    for batch in source.iter_batches(  # pyright: ignore[reportUnknownVariableType]
        batch_size=args.chunk_rows, columns=list(columns.names)
    ):
        records: list[object] = batch.to_pylist()  # pyright: ignore[reportUnknownMemberType]
        rows = [columns.row(record, line + i) for i, record in enumerate(records)]
        line += len(rows)
        yield rows
    progress.read(args.file.stat().st_size)


class _Progress:
    """Progress on stderr: a bar redrawn in place on a terminal, else a line per 5 s."""

    def __init__(self, total_bytes: int) -> None:
        self.total = max(total_bytes, 1)
        self.bytes = 0
        self.rows = 0
        self.tty = sys.stderr.isatty()
        self.last = time.monotonic()

    def read(self, position: int) -> None:
        self.bytes = position

    def done(self, rows: int) -> None:
        self.rows += rows
        share = min(self.bytes / self.total, 1.0)
        if self.tty:
            bar = "#" * int(share * 30)
            sys.stderr.write(f"\r[{bar:<30}] {share:6.1%}  {self.rows:,} rows")
            sys.stderr.flush()
        elif time.monotonic() - self.last >= 5.0:
            self.last = time.monotonic()
            print(f"bitlens import: {self.rows:,} rows ({share:.0%})", file=sys.stderr)

    def finish(self) -> None:
        if self.tty:
            sys.stderr.write("\n")
        print(f"bitlens import: {self.rows:,} rows (100%)", file=sys.stderr)


def _by_event(rows: list[Row]) -> dict[str, tuple[list[int], list[_dt.datetime | float]]]:
    out: dict[str, tuple[list[int], list[_dt.datetime | float]]] = {}
    for event, user_id, at in rows:
        ids, times = out.setdefault(event, ([], []))
        ids.append(user_id)
        times.append(at)
    return out


def _check(event: str, ids: list[int], times: list[_dt.datetime | float], tz: str) -> None:
    """Check one event's rows as mark_bulk would, without sending them (for --dry-run)."""
    try:
        from .. import _bulk  # numpy: only when importing
    except ModuleNotFoundError:
        raise OptionalDependencyMissing("bitlens import", "numpy", "bulk") from None
    from .._keys import MAX_USER_ID

    validate_event_name(event)
    columns = _bulk.load_columns(ids, times, resolve_tz(tz), MAX_USER_ID)
    columns.chunk(0, len(columns))


async def _import(args: argparse.Namespace, tracker: Tracker | None) -> Counter[str]:
    progress = _Progress(args.file.stat().st_size)
    counts: Counter[str] = Counter()
    for rows in read_chunks(args, progress):
        for event, (ids, times) in _by_event(rows).items():
            if tracker is None:
                _check(event, ids, times, args.tz)
            else:
                await tracker.mark_bulk(event, ids, times, hourly=args.hourly, unique=args.unique)
            counts[event] += len(ids)
        progress.done(len(rows))
    progress.finish()
    return counts


def _run(args: argparse.Namespace) -> int:
    """Run ``bitlens import``."""
    if not args.file.is_file():
        raise UsageError(f"no such file: {str(args.file)!r}")

    async def go() -> Counter[str]:
        if args.dry_run:
            return await _import(args, None)
        async with open_tracker(args, require_url(args)) as tracker:
            return await _import(args, tracker)

    counts = anyio.run(go)
    width = max(map(len, counts), default=0)
    sys.stdout.writelines(f"{event:<{width}}  {counts[event]:>10,}\n" for event in sorted(counts))
    verb = "checked (dry run, nothing sent)" if args.dry_run else "marked"
    sys.stdout.write(f"{sum(counts.values()):,} rows of {len(counts)} events {verb}\n")
    return 0
