"""Columnar backfill: ``mark_bulk`` events/s beside the raw SETBIT limit ÷ 3, same run.

    python benchmarks/bulk_bench.py [--quick] [--server PATH] [--events N] [--users N]
        [--rounds N] [--output PATH]

The workload is the batch-ingest one of ``ingest_bench.py``: random ids among ``--users``
users, times spread over 30 days (month, ISO week and day bits: 3 granularities). Two
sides take turns on the same pinned server (redis-server on CPU 0, the client on CPU 1):

* **raw**: every SETBIT of the workload (3 per event) pre-packed as RESP and sent over
  one plain socket in pipelines of 128 — the C-client limit; events/s is SETBITs/s ÷ 3;
* **mark_bulk**: ``await tracker.mark_bulk(event, ids, epoch_seconds)`` with numpy
  columns (the universe and the shard registry included, which raw does not write).

A second, row-wise part times ``await tracker.mark_events(events)`` of ``(event, user_id,
at)`` tuples beside the same raw limit: ``--row-events`` events (300,000) with ids among
``--row-users`` users (10,000,000: ten shards, so every chunk writes to every shard) and
times over ``ROW_DAYS`` days, sides interleaved for ``--row-rounds`` rounds.

Both sides' bits are counted after each run and must equal the workload's; no figure is
asserted. ``--quick`` (20,000 events, one round) checks that it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from common import command, log, newest_server, pinned, start_server  # beside this file
from common import table as md_table
from ingest_bench import DAYS, EVENT, START, Workload, pack_raw, send_raw
from redis.asyncio import Redis

from bitlens import Tracker

if TYPE_CHECKING:
    from collections.abc import Sequence

PREFIX = "bulk"
ROW_DAYS = 7


async def _bits(client: Redis, pattern: str) -> int:
    """The set bits of every key matching ``pattern`` (SCAN, then BITCOUNT)."""
    total = 0
    async for key in client.scan_iter(match=pattern, count=1000):  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        total += int(await command(client, "BITCOUNT", key))  # pyright: ignore[reportUnknownArgumentType]
    return total


async def _bulk_run(
    url: str, workload: Workload, columns: tuple[np.ndarray, np.ndarray] | None
) -> float:
    """Time one ``mark_bulk`` of ``columns`` (or, given none, one ``mark_events`` of the
    workload's tuples) on an empty server; return its seconds."""
    client = Redis.from_url(url)
    try:
        await command(client, "FLUSHALL")
        tracker = Tracker(client, prefix=PREFIX)
        gc.collect()
        t0 = time.perf_counter()
        if columns is None:
            await tracker.mark_events(workload.marks)
        else:
            await tracker.mark_bulk(EVENT, *columns)
        seconds = time.perf_counter() - t0
        await tracker.aclose()
        bits = await _bits(client, f"{PREFIX}:{{*}}:{EVENT}:*")
        if bits != workload.expected_bits:
            side = "mark_events" if columns is None else "mark_bulk"
            raise SystemExit(f"{side} wrote {bits:,} bits, not {workload.expected_bits:,}")
        return seconds
    finally:
        await client.aclose()


async def _raw_run(url: str, host: str, port: int, workload: Workload) -> float:
    """Time the raw SETBIT pipelines of the workload on an empty server; return seconds."""
    client = Redis.from_url(url)
    try:
        await command(client, "FLUSHALL")
        pipelines = pack_raw(workload)
        gc.collect()
        seconds, _ = send_raw(host, port, pipelines)
        bits = await _bits(client, f"trackist_{EVENT}_*")
        if bits != workload.expected_bits:
            raise SystemExit(f"raw SETBITs wrote {bits:,} bits, not {workload.expected_bits:,}")
        return seconds
    finally:
        await client.aclose()


def _row_wise(rows: Workload, users: int, raw: list[float], marks: list[float]) -> str:
    """The row-wise part's Markdown: ``mark_events`` of tuples beside the raw limit ÷ 3."""
    events = len(rows.marks)
    raw_rate = events / statistics.median(raw)
    rate = events / statistics.median(marks)
    return "\n".join(
        [
            f"Row-wise: {events:,} `(event, user_id, at)` tuples, ids among {users:,}"
            f" ({-(-users // 2**20)} shards), {rows.days} days, median of {len(raw)}"
            " interleaved round(s)",
            "",
            md_table(
                ["side", "events/s", "seconds (median)", "vs raw ÷ 3"],
                [
                    [
                        "raw SETBIT pipelines of 128 (SETBITs/s ÷ 3)",
                        f"{raw_rate:,.0f}",
                        f"{statistics.median(raw):.3f}",
                        "1.00x",
                    ],
                    [
                        "`mark_events` (tuples)",
                        f"{rate:,.0f}",
                        f"{statistics.median(marks):.3f}",
                        f"{rate / raw_rate:.2f}x",
                    ],
                ],
            ),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print (and write) its Markdown report."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 events, one round")
    parser.add_argument("--server", default=None, help="redis-server binary")
    parser.add_argument("--events", type=int, default=None, help="events (default 1,000,000)")
    parser.add_argument("--users", type=int, default=1_000_000, help="distinct ids drawn from")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of both sides")
    parser.add_argument("--row-events", type=int, default=None, help="row-wise events (300,000)")
    parser.add_argument("--row-users", type=int, default=10_000_000, help="row-wise id range")
    parser.add_argument("--row-rounds", type=int, default=None, help="row-wise rounds (5)")
    parser.add_argument("--output", type=Path, default=None, help="also write the Markdown here")
    args = parser.parse_args(argv)
    events = args.events or (20_000 if args.quick else 1_000_000)
    rounds = args.rounds or (1 if args.quick else 3)
    row_events = args.row_events or (20_000 if args.quick else 300_000)
    row_rounds = args.row_rounds or (1 if args.quick else 5)
    log(f"bulk: making {events:,} events over {DAYS} days")
    workload = Workload.make(events, args.users)
    ids = np.frombuffer(workload.uids, dtype=np.uint32).astype(np.int64)
    epoch = np.frombuffer(workload.seconds, dtype=np.uint32).astype(np.int64) + int(
        START.timestamp()
    )
    log(f"bulk: making {row_events:,} row-wise events over {ROW_DAYS} days")
    rows = Workload.make(row_events, args.row_users, days=ROW_DAYS)
    bulk: list[float] = []
    raw: list[float] = []
    row_raw: list[float] = []
    row_marks: list[float] = []
    with pinned() as pin:
        server = start_server(args.server or newest_server(), pin)
        host, port = server.host, server.port
        try:
            for r in range(rounds):
                log(f"bulk: round {r + 1} of {rounds}")
                raw.append(asyncio.run(_raw_run(server.url, host, port, workload)))
                bulk.append(asyncio.run(_bulk_run(server.url, workload, (ids, epoch))))
            for r in range(row_rounds):
                log(f"bulk: row-wise round {r + 1} of {row_rounds}")
                row_raw.append(asyncio.run(_raw_run(server.url, host, port, rows)))
                row_marks.append(asyncio.run(_bulk_run(server.url, rows, None)))
        finally:
            server.stop()
    raw_rate = events / statistics.median(raw)
    bulk_rate = events / statistics.median(bulk)
    lines = [
        f"{events:,} events (ids among {args.users:,}, {DAYS} days: month, week and day bits),"
        f" median of {rounds} round(s), server and client pinned: {pin}",
        "",
        md_table(
            ["side", "events/s", "seconds (median)", "vs raw ÷ 3"],
            [
                [
                    "raw SETBIT pipelines of 128 (SETBITs/s ÷ 3)",
                    f"{raw_rate:,.0f}",
                    f"{statistics.median(raw):.3f}",
                    "1.00x",
                ],
                [
                    "`mark_bulk` (numpy columns)",
                    f"{bulk_rate:,.0f}",
                    f"{statistics.median(bulk):.3f}",
                    f"{bulk_rate / raw_rate:.2f}x",
                ],
            ],
        ),
        "",
        _row_wise(rows, args.row_users, row_raw, row_marks),
    ]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
