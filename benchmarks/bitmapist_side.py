"""The bitmapist 3.119 side of the expression benchmark (run by ``benchmarks/run.py``).

bitmapist needs redis-py < 6, so this script runs in its own venv
(``.bench/bitmapist-venv``), on CPU 1 like the bitlens client, against the server and data
that ``run.py`` prepared. It prints one JSON document on stdout::

    python bitmapist_side.py --host 127.0.0.1 --port 6379 --iterations 200 --warmup 20 \
        --max-seconds 20 --workloads "M1 & M2" "depth-3 tree"

Each workload is timed as bitmapist users write it: constructing the ``BitOp*`` objects
(each runs ``BITOP`` eagerly, one round trip per node) and then ``len()`` (``BITCOUNT``).
The workload names and trees mirror ``WORKLOADS`` in ``run.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import sys
import time
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

import bitmapist  # pyright: ignore[reportMissingImports]
from bitmapist import (  # pyright: ignore[reportMissingImports]
    BitOpAnd,
    BitOpNot,
    BitOpOr,
    DayEvents,
    MonthEvents,
)
from redis.connection import AbstractConnection

if TYPE_CHECKING:
    from collections.abc import Callable

SYSTEM = "default"


def _month(event: str, month: int) -> Any:
    return MonthEvents(event, 2026, month, system=SYSTEM)


def and2() -> int:
    """M1 & M2: active in October and in November."""
    return len(BitOpAnd(SYSTEM, _month("active", 10), _month("active", 11)))


def tree3() -> int:
    """(M1 & M2) | ((M3 - M4) & iOS_M4), written the cheapest way bitmapist allows.

    bitmapist has no difference: ``a - b`` is ``a AND (NOT b)``; the two ANDs flatten into
    one three-way ``BitOpAnd``.
    """
    both = BitOpAnd(SYSTEM, _month("active", 8), _month("active", 9))
    not_m4 = BitOpNot(SYSTEM, _month("active", 11))
    churned_ios = BitOpAnd(SYSTEM, _month("active", 10), not_m4, _month("ios", 11))
    return len(BitOpOr(SYSTEM, both, churned_ios))


def not1() -> int:
    """~M4: bare BITOP NOT, which also counts never-marked ids below the key's length."""
    return len(BitOpNot(SYSTEM, _month("active", 11)))


def ping() -> int:
    """One PING: the round-trip floor of redis-py (sync)."""
    bitmapist.get_redis(SYSTEM).ping()
    return 0


_NEXT = [0]
"""The counter the single-operation workloads draw their ids from."""

AT = dt.datetime(2026, 11, 15, 12, tzinfo=dt.timezone.utc)
"""When the single marks happen (the same moment as ``single_bench.py``'s)."""


def contains() -> int:
    """``uid in MonthEvents(...)``: one GETBIT (the ids cycle through the first million)."""
    _NEXT[0] += 1
    return int(_NEXT[0] * 13 % 1_000_000 in _month("active", 11))


def mark() -> int:
    """One ``mark_event`` (MULTI/EXEC of its SETBITs), ids cycling through a million."""
    _NEXT[0] += 1
    bitmapist.mark_event("single", _NEXT[0] * 17 % 1_000_000, system=SYSTEM, now=AT)
    return 0


REFRESH_EVENT = "visit"
REFRESH_FIRST_DAY = dt.date(2026, 8, 17)
REFRESH_DAYS = 90
"""The dashboard refresh's days (``datasets.py`` writes them; the same constants there)."""


def refresh() -> int:
    """A dashboard refresh: ``len(DayEvents(...))`` of each of 90 days, one BITCOUNT each."""
    total = 0
    for i in range(REFRESH_DAYS):
        day = REFRESH_FIRST_DAY + dt.timedelta(days=i)
        total += len(DayEvents(REFRESH_EVENT, day.year, day.month, day.day, system=SYSTEM))
    return total


WORKLOADS: dict[str, Callable[[], int]] = {
    "contains": contains,
    "mark_event": mark,
    "PING (round-trip floor)": ping,
    "M1 & M2": and2,
    "depth-3 tree": tree3,
    "~M4": not1,
    "90 daily counts": refresh,
}


class _SendCounter:
    """Counts writes to the socket: one per command unpipelined, one per pipeline."""

    def __init__(self) -> None:
        self.count = 0
        original: Any = AbstractConnection.send_packed_command

        def counting(conn: Any, command: Any, check_health: bool = True) -> Any:
            self.count += 1
            return original(conn, command, check_health)

        AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]


def _run(
    fn: Callable[[], int],
    client: Any,
    counter: _SendCounter,
    iterations: int,
    warmup: int,
    max_seconds: float,
) -> dict[str, Any]:
    result = 0
    for _ in range(warmup):
        result = fn()
    client.config_resetstat()
    gc.collect()
    samples: list[float] = []
    sends = counter.count
    cpu = time.process_time()
    start = time.perf_counter()
    while len(samples) < iterations and (not samples or time.perf_counter() - start < max_seconds):
        t0 = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - t0)
    cpu = time.process_time() - cpu
    sends = counter.count - sends
    stats = client.info("commandstats")
    return {
        "samples": samples,
        "cpu": cpu / len(samples),
        "round_trips": sends / len(samples),
        "commandstats": stats,
        "count": result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--iterations", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--max-seconds", type=float, required=True)
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to a CPU")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS))
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    bitmapist.setup_redis(SYSTEM, args.host, args.port)
    client = bitmapist.get_redis(SYSTEM)
    counter = _SendCounter()
    results = {}
    for name in args.workloads:
        if name not in WORKLOADS:
            continue
        results[name] = _run(
            WORKLOADS[name], client, counter, args.iterations, args.warmup, args.max_seconds
        )
    leftover = [k.decode() for k in client.scan_iter(match="trackist_bitop_*", count=1000)]
    leftover_bytes = sum(int(client.memory_usage(k) or 0) for k in leftover)
    json.dump(
        {
            "bitmapist": version("bitmapist"),
            "redis_py": version("redis"),
            "python": sys.version.split()[0],
            "workloads": results,
            "leftover_keys": sorted(leftover),
            "leftover_bytes": leftover_bytes,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
