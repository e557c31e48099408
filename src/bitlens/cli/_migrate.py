"""``bitlens migrate``: copy a dataset from one key layout to another (and back).

The source is ``--url``/``--schema``/``--prefix``, the target ``--to-url`` (default: the
same server), ``--to-schema`` (default: the other layout) and ``--to-prefix``. Progress
goes to stderr, the report to stdout; the exit status is 1 when verification finds a
bitmap whose counts differ.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

import anyio

from .._migrate import CHUNK_BYTES, migrate
from ._common import (
    SCHEMAS,
    add_connection_options,
    open_tracker,
    positive_int,
    prefix_type,
    require_url,
)

if TYPE_CHECKING:
    from argparse import _SubParsersAction  # pyright: ignore[reportPrivateUsage]

    from .._migrate import MigrationReport

__all__ = ["add_migrate_parser"]


def add_migrate_parser(sub: _SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``bitlens migrate``.

    :param sub: the subparsers of the ``bitlens`` parser
    """
    parser = sub.add_parser(
        "migrate",
        help="copy every event bitmap into another key layout (bitmapist's <-> bitlens')",
        description=(
            "Copy every event bitmap under --prefix (in --schema's layout) into --to-schema's "
            "layout under --to-prefix: found with SCAN, read in GETRANGE chunks, OR'ed into "
            "the target shard by shard, with a checkpoint under the target prefix so an "
            "interrupted run resumes, then every bitmap's count compared on both sides. "
            "The source is only read. --dry-run reports keys, bytes and the target's memory."
        ),
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="report what would be copied; write nothing"
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="skip comparing the counts at the end"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="ignore the checkpoint of an earlier run"
    )
    parser.add_argument(
        "--chunk-bytes",
        type=positive_int,
        default=CHUNK_BYTES,
        metavar="N",
        help=f"bytes read per GETRANGE (default: {CHUNK_BYTES:,})",
    )
    target = parser.add_argument_group("target")
    target.add_argument("--to-url", metavar="URL", default=None, help="default: the source's URL")
    target.add_argument(
        "--to-schema",
        choices=SCHEMAS,
        default=None,
        help="the target's layout (default: the other one)",
    )
    target.add_argument(
        "--to-prefix",
        type=prefix_type,
        default=None,
        help="the target's prefix (default: bl, or trackist_ for --to-schema bitmapist)",
    )
    target.add_argument(
        "--to-universe",
        metavar="EVENT",
        default=None,
        help="with --to-schema bitmapist: the universe event of the target",
    )
    target.add_argument(
        "--to-cluster", action="store_true", help="--to-url is a node of a Redis Cluster"
    )
    add_connection_options(parser, url_help="required", tz=False)
    parser.set_defaults(run=_run, parser=parser)


class _Bar:
    """Bytes copied so far, on stderr: a bar redrawn on a terminal, else a line per 5 s."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = time.monotonic()
        self.started = self.last
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        fraction = done / total if total else 1.0
        rate = done / max(time.monotonic() - self.started, 1e-9)
        text = f"bitlens migrate: {fraction:4.0%} {done:,}/{total:,} bytes ({rate:,.0f}/s)"
        if self.tty:
            bar = "#" * int(fraction * 30)
            sys.stderr.write(f"\rbitlens migrate [{bar:<30}] {text[17:]}")
            sys.stderr.flush()
            self.shown = True
        elif time.monotonic() - self.last >= 5.0 or done >= total:
            self.last = time.monotonic()
            print(text, file=sys.stderr)

    def finish(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


def _target_args(args: argparse.Namespace) -> argparse.Namespace:
    """The target's connection options, as open_tracker reads them."""
    schema = args.to_schema or ("bitlens" if args.schema == "bitmapist" else "bitmapist")
    return argparse.Namespace(
        prefix=args.to_prefix,
        schema=schema,
        universe=args.to_universe,
        cluster=args.to_cluster,
        tz="UTC",
    )


def _print(report: MigrationReport, source: str, target: str) -> None:
    out = sys.stdout
    verb = "would copy" if report.dry_run else "copied"
    out.write(f"{source} -> {target}\n")
    out.write(f"source: {report.keys:,} bitmaps, {report.bytes:,} bytes\n")
    out.write(
        f"target: at most {report.target_keys:,} keys, {report.target_bytes:,} bytes of memory\n"
    )
    if report.dry_run:
        out.write(f"dry run: {verb} {report.keys:,} bitmaps; nothing was written\n")
        return
    out.write(f"{verb} {report.copied:,} bitmaps ({report.resumed:,} done by an earlier run)\n")
    if report.verified:
        out.write(f"verified {report.verified:,} bitmaps: ")
        out.write("every count matches\n" if report.ok else f"{len(report.mismatches)} differ\n")
    for key, want, got in report.mismatches:
        period = "unique" if key.period is None else str(key.period)
        out.write(f"  {key.event} {period}: source {want:,}, target {got:,}\n")


def _run(args: argparse.Namespace) -> int:
    """Run ``bitlens migrate``."""
    url = require_url(args)
    to = _target_args(args)
    to_url = args.to_url or url

    async def go() -> MigrationReport:
        async with open_tracker(args, url) as source, open_tracker(to, to_url) as target:
            bar = _Bar()
            report = await migrate(
                source,
                target,
                dry_run=args.dry_run,
                verify=not args.no_verify,
                fresh=args.fresh,
                chunk_bytes=args.chunk_bytes,
                progress=bar,
            )
            bar.finish()
            _print(report, f"{source.schema!r}", f"{target.schema!r}")
            return report

    report = anyio.run(go)
    return 0 if report.ok else 1
