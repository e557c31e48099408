"""The bitmapist 3.119 side of the ingest benchmark (run by ``benchmarks/ingest_bench.py``).

bitmapist needs redis-py < 6, so this script runs in its own venv (``.nox/bench-bitmapist``),
on the client CPU like the bitlens side, against a private server that the caller flushed.
It reads the same events as the bitlens side from ``--events`` (uint32 user ids, then uint32
seconds after ``--start``) and prints one JSON document on stdout::

    python bitmapist_ingest_side.py --host 127.0.0.1 --port 6379 --events /tmp/events.bin \
        --count 200000 --start 2026-10-17T00:00:00+00:00 --loop 20000 --pipeline 100000 \
        --tasks 1000 --bursts 10 --single 2000 --single-warmup 200

Workloads (bitmapist is synchronous and has no batch API):

* ``loop``: ``mark_event`` called in a loop (its default: one MULTI/EXEC of 3 SETBITs each);
* ``pipeline``: the fastest batch a bitmapist user can write: ``mark_event(...,
  system=pipe, use_pipeline=False)`` into a user-managed ``pipeline()`` (MULTI/EXEC),
  executed every ``--chunk`` events (bitlens' default chunk);
* ``bursts``: 1,000 ``mark_event`` calls one after another (no concurrency in sync code);
* ``single``: the latency of one ``mark_event`` (sequential, after a warm-up).
"""

from __future__ import annotations

import argparse
import array
import datetime as dt
import gc
import json
import os
import sys
import time
from importlib.metadata import version
from typing import Any

import bitmapist  # pyright: ignore[reportMissingImports]

SYSTEM = "default"
EVENT = "active"


def _server_cpu(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _commands(client: Any) -> dict[str, int]:
    stats = client.info("commandstats")
    out: dict[str, int] = {}
    for key, value in stats.items():
        name = key.removeprefix("cmdstat_").split("|")[0]
        if name in ("config", "info", "flushall") or not isinstance(value, dict):
            continue
        out[name] = out.get(name, 0) + int(value.get("calls", 0))
    return out


def _batch(client: Any, marks: list[tuple[int, dt.datetime]], chunk: int | None) -> dict[str, Any]:
    """Time ``marks`` written from fresh keys, one call each or in user pipelines."""
    client.flushall()
    client.config_resetstat()
    gc.collect()
    server0 = _server_cpu(client)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    if chunk is None:
        for uid, at in marks:
            bitmapist.mark_event(EVENT, uid, SYSTEM, now=at)
        round_trips = len(marks)
    else:
        round_trips = 0
        for start in range(0, len(marks), chunk):
            pipe = client.pipeline()  # MULTI/EXEC, as bitmapist's own marks
            for uid, at in marks[start : start + chunk]:
                bitmapist.mark_event(EVENT, uid, pipe, now=at, use_pipeline=False)
            pipe.execute()
            round_trips += 1
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    server = _server_cpu(client) - server0
    return {
        "events": len(marks),
        "seconds": seconds,
        "client_cpu": cpu,
        "server_cpu": server,
        "round_trips": round_trips,
        "commands": _commands(client),
    }


def _bursts(
    marks: list[tuple[int, dt.datetime]], tasks: int, bursts: int, warmup: int
) -> dict[str, Any]:
    """``tasks`` calls back to back per burst: per-call latency and burst throughput."""
    walls: list[float] = []
    latencies: list[float] = []
    n = len(marks)
    for b in range(warmup + bursts):
        lat: list[float] = []
        start = time.perf_counter()
        for i in range(tasks):
            uid, at = marks[(b * tasks + i) % n]
            t0 = time.perf_counter()
            bitmapist.mark_event(EVENT, uid, SYSTEM, now=at)
            lat.append(time.perf_counter() - t0)
        wall = time.perf_counter() - start
        if b >= warmup:
            walls.append(wall)
            latencies.extend(lat)
    return {"walls": walls, "latencies": latencies}


def _single(marks: list[tuple[int, dt.datetime]], calls: int, warmup: int) -> dict[str, Any]:
    n = len(marks)
    for i in range(warmup):
        uid, at = marks[i % n]
        bitmapist.mark_event(EVENT, uid, SYSTEM, now=at)
    gc.collect()
    samples: list[float] = []
    cpu0 = time.process_time()
    for i in range(calls):
        uid, at = marks[i % n]
        t0 = time.perf_counter()
        bitmapist.mark_event(EVENT, uid, SYSTEM, now=at)
        samples.append(time.perf_counter() - t0)
    cpu = (time.process_time() - cpu0) / calls
    return {"samples": samples, "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--events", required=True, help="binary file of uids then seconds")
    parser.add_argument("--count", type=int, required=True, help="events in the file")
    parser.add_argument("--start", required=True, help="ISO datetime of second 0")
    parser.add_argument("--loop", type=int, required=True, help="events for the loop")
    parser.add_argument("--pipeline", type=int, required=True, help="events for the pipeline")
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=1_000)
    parser.add_argument("--bursts", type=int, required=True)
    parser.add_argument("--burst-warmup", type=int, default=1)
    parser.add_argument("--single", type=int, required=True)
    parser.add_argument("--single-warmup", type=int, required=True)
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to a CPU")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})

    uids: array.array[int] = array.array("I")
    seconds: array.array[int] = array.array("I")
    with open(args.events, "rb") as f:
        uids.fromfile(f, args.count)
        seconds.fromfile(f, args.count)
    start = dt.datetime.fromisoformat(args.start)
    # Datetimes are made before timing, as for the bitlens side.
    marks = [(u, start + dt.timedelta(seconds=s)) for u, s in zip(uids, seconds, strict=True)]
    gc.collect()
    gc.freeze()

    bitmapist.setup_redis(SYSTEM, args.host, args.port)
    client = bitmapist.get_redis(SYSTEM)
    results: dict[str, Any] = {
        "bitmapist": version("bitmapist"),
        "redis_py": version("redis"),
        "python": sys.version.split()[0],
        "affinity": sorted(os.sched_getaffinity(0)),
    }
    results["loop"] = _batch(client, marks[: args.loop], None)
    results["pipeline"] = _batch(client, marks[: args.pipeline], args.chunk)
    client.flushall()
    results["bursts"] = _bursts(marks, args.tasks, args.bursts, args.burst_warmup)
    results["single"] = _single(marks, args.single, args.single_warmup)
    client.flushall()
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
