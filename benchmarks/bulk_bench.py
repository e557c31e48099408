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


async def _bits(client: Redis, pattern: str) -> int:
    """The set bits of every key matching ``pattern`` (SCAN, then BITCOUNT)."""
    total = 0
    async for key in client.scan_iter(match=pattern, count=1000):  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        total += int(await command(client, "BITCOUNT", key))  # pyright: ignore[reportUnknownArgumentType]
    return total


async def _bulk_run(url: str, workload: Workload, ids: np.ndarray, epoch: np.ndarray) -> float:
    """Time one ``mark_bulk`` of the workload on an empty server; return its seconds."""
    client = Redis.from_url(url)
    try:
        await command(client, "FLUSHALL")
        tracker = Tracker(client, prefix=PREFIX)
        gc.collect()
        t0 = time.perf_counter()
        await tracker.mark_bulk(EVENT, ids, epoch)
        seconds = time.perf_counter() - t0
        await tracker.aclose()
        bits = await _bits(client, f"{PREFIX}:{{*}}:{EVENT}:*")
        if bits != workload.expected_bits:
            raise SystemExit(f"mark_bulk wrote {bits:,} bits, not {workload.expected_bits:,}")
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print (and write) its Markdown report."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 events, one round")
    parser.add_argument("--server", default=None, help="redis-server binary")
    parser.add_argument("--events", type=int, default=None, help="events (default 1,000,000)")
    parser.add_argument("--users", type=int, default=1_000_000, help="distinct ids drawn from")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of both sides")
    parser.add_argument("--output", type=Path, default=None, help="also write the Markdown here")
    args = parser.parse_args(argv)
    events = args.events or (20_000 if args.quick else 1_000_000)
    rounds = args.rounds or (1 if args.quick else 3)
    log(f"bulk: making {events:,} events over {DAYS} days")
    workload = Workload.make(events, args.users)
    ids = np.frombuffer(workload.uids, dtype=np.uint32).astype(np.int64)
    epoch = np.frombuffer(workload.seconds, dtype=np.uint32).astype(np.int64) + int(
        START.timestamp()
    )
    bulk: list[float] = []
    raw: list[float] = []
    with pinned() as pin:
        server = start_server(args.server or newest_server(), pin)
        try:
            for r in range(rounds):
                log(f"bulk: round {r + 1} of {rounds}")
                raw.append(asyncio.run(_raw_run(server.url, server.host, server.port, workload)))
                bulk.append(asyncio.run(_bulk_run(server.url, workload, ids, epoch)))
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
    ]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
