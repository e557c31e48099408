"""bitmapist 3.119's cohort table, run in bitmapist's own venv (it needs redis-py < 6).

Used by the cohort benchmark (``benchmarks/run.py --only cohort``) and by the parity test
(``tests/test_cohort.py``), which compare bitlens' ``get_dates_data`` with bitmapist's on
the same server and the same marks. Reads one JSON document on stdin, prints one on stdout::

    python bitmapist_cohort_side.py --host 127.0.0.1 --port 6379 < job.json

The job may hold:

* ``"marks"``: ``[[event, user_id, iso datetime], ...]``, written with bitmapist's own
  ``mark_event`` (in pipelines of 1,000 events);
* ``"tables"``: ``{name: {get_dates_data keyword arguments}}``, each answered once; rows
  come back with the date as an ISO string and every cell as bitmapist returned it;
* ``"bench"``: ``{"kwargs": {...}, "iterations": N, "warmup": N, "max_seconds": S}``:
  ``get_dates_data`` timed as bitmapist users call it, with its round trips counted (one
  per command: bitmapist sends each ``BITCOUNT`` and ``BITOP`` on its own) and the
  server's ``INFO commandstats``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from datetime import datetime
from importlib.metadata import version
from typing import Any

import bitmapist  # pyright: ignore[reportMissingImports]
from bitmapist.cohort import get_dates_data  # pyright: ignore[reportMissingImports]
from redis.connection import AbstractConnection

SYSTEM = "default"


class _SendCounter:
    """Counts writes to the socket: one per command unpipelined, one per pipeline."""

    def __init__(self) -> None:
        self.count = 0
        original: Any = AbstractConnection.send_packed_command

        def counting(conn: Any, command: Any, check_health: bool = True) -> Any:
            self.count += 1
            return original(conn, command, check_health)

        AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]


def _mark(client: Any, marks: list[list[Any]]) -> int:
    for i in range(0, len(marks), 1000):
        pipe = client.pipeline(transaction=False)
        for event, user_id, at in marks[i : i + 1000]:
            bitmapist.mark_event(
                event, int(user_id), system=pipe, now=datetime.fromisoformat(at), use_pipeline=False
            )
        pipe.execute()
    return len(marks)


def _table(kwargs: dict[str, Any]) -> list[list[Any]]:
    rows = get_dates_data(system=SYSTEM, **kwargs)
    return [[row[0].isoformat(), *row[1:]] for row in rows]


def _bench(client: Any, counter: _SendCounter, job: dict[str, Any]) -> dict[str, Any]:
    kwargs = job["kwargs"]
    for _ in range(int(job["warmup"])):
        get_dates_data(system=SYSTEM, **kwargs)
    client.config_resetstat()
    gc.collect()
    samples: list[float] = []
    rows: list[list[Any]] = []
    sends = counter.count
    cpu = time.process_time()
    start = time.perf_counter()
    while len(samples) < int(job["iterations"]) and (
        not samples or time.perf_counter() - start < float(job["max_seconds"])
    ):
        t0 = time.perf_counter()
        rows = get_dates_data(system=SYSTEM, **kwargs)
        samples.append(time.perf_counter() - t0)
    cpu = time.process_time() - cpu
    sends = counter.count - sends
    return {
        "samples": samples,
        "cpu": cpu / len(samples),
        "round_trips": sends / len(samples),
        "commandstats": client.info("commandstats"),
        "count": len(rows) * len(rows[0]),
        "rows": [[row[0].isoformat(), *row[1:]] for row in rows],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to a CPU")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    job = json.load(sys.stdin)
    bitmapist.setup_redis(SYSTEM, args.host, args.port)
    client = bitmapist.get_redis(SYSTEM)
    counter = _SendCounter()
    out: dict[str, Any] = {
        "bitmapist": version("bitmapist"),
        "redis_py": version("redis"),
        "python": sys.version.split()[0],
    }
    if "marks" in job:
        out["marked"] = _mark(client, job["marks"])
    if "tables" in job:
        out["tables"] = {name: _table(kwargs) for name, kwargs in job["tables"].items()}
    if "bench" in job:
        out["bench"] = _bench(client, counter, job["bench"])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
