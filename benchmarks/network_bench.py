"""bitlens beside bitmapist over a network of known latency (0.5 ms and 2 ms round trips).

    python benchmarks/network_bench.py [--quick] [--server PATH] [--rtt-ms 0.5 2]
                                       [--no-bitmapist] [--output PATH]

On loopback a round trip costs ~30 µs, so a library that needs several of them hardly
pays for it; between two machines it costs 0.2-2 ms, and round trips become the whole
story. Here the server (pinned to CPU 0) is reached through ``delay_proxy.py`` (on CPU 0
too: it stands for the network), which holds every byte for a fixed time each way; both
libraries (on CPU 1) go through the same proxy to the same data, taking turns in rounds.
The one-way delay is set so that a bare ``PING`` through the proxy takes the round trip
asked for (the proxy's own work included), and that measured ``PING`` is reported.

Workloads (each bitlens call is one round trip; bitmapist needs what the last column says):

* one-round-trip operations: ``contains``, one ``mark_event``, ``count(a & b)`` (bitmapist:
  ``BITOP`` then ``BITCOUNT``);
* the depth-3 tree of ``run.py`` (bitmapist: 4 ``BITOP``\\ s and a ``BITCOUNT``);
* a dashboard refresh: 90 daily counts (bitmapist: 90 ``BITCOUNT``\\ s);
* the 31 x 13 day cohort table of ``run.py`` (``get_dates_data``; bitmapist: a ``BITOP``
  and a ``BITCOUNT`` per cell).

Latency is the median of every timed call; the ratio is bitlens' median over bitmapist's.
No figure is asserted: ``--quick`` checks that it runs and that both sides agree.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common import (  # beside this file
    HERE,
    SERVER_CPU,
    dist_version,
    executor_of,
    log,
    median,
    newest_server,
    pinned,
    run_side,
    server_version,
    spread,
    start_server,
    table,
)
from datasets import (  # beside this file
    COHORT_KWARGS,
    COHORT_USERS,
    COHORT_USERS_QUICK,
    REFRESH_EVENT,
    cohort_fill,
    fill,
    refresh_days,
    refresh_fill,
)
from delay_proxy import ping_round_trip  # beside this file
from redis.asyncio import Redis

from bitlens import DayEvents, MonthEvents, ShardedSchema, Tracker
from bitlens.cohort import get_dates_data

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, Sequence

    from bitlens import Expr
    from bitlens._writes import Command

PREFIX = "bench"
AT = dt.datetime(2026, 11, 15, 12, tzinfo=dt.timezone.utc)
"""When the single marks happen (bitmapist's side marks the same moment)."""

WORKLOADS = (
    "contains",
    "mark_event",
    "count(a & b)",
    "depth-3 tree",
    "90 daily counts",
    "31 x 13 cohort table",
)
BITMAPIST_NAMES = {
    "contains": "contains",
    "mark_event": "mark_event",
    "count(a & b)": "M1 & M2",
    "depth-3 tree": "depth-3 tree",
    "90 daily counts": "90 daily counts",
}
"""Each workload's name in ``bitmapist_side.py`` (the cohort table has a script of its own)."""

GOALS = {
    "contains": 1.0,
    "mark_event": 1.0,
    "count(a & b)": 1.0,
    "depth-3 tree": 0.3,
    "90 daily counts": 0.07,
    "31 x 13 cohort table": 0.05,
}
"""The ratio (bitlens / bitmapist) each workload should stay under at a 0.5 ms round trip."""


def _m(event: str, month: int) -> MonthEvents:
    return MonthEvents(event, 2026, month)


TREE: Expr = (_m("active", 8) & _m("active", 9)) | (
    (_m("active", 10) - _m("active", 11)) & _m("ios", 11)
)
BOTH: Expr = _m("active", 10) & _m("active", 11)


@dataclass
class Results:
    """Samples per workload and side, and round trips per call."""

    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    round_trips: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, workload: str, side: str, samples: Sequence[float], trips: float) -> None:
        """Pool ``samples`` of ``side`` for ``workload``."""
        self.samples.setdefault(workload, {}).setdefault(side, []).extend(samples)
        self.round_trips.setdefault(workload, {})[side] = trips


class _Counter:
    """A round-trip observer of bitlens' executor: counts the round trips it sees."""

    def __init__(self) -> None:
        self.count = 0

    def round_trip(
        self, wire: Sequence[Command], connection: object
    ) -> contextlib.nullcontext[None]:
        """Count one round trip."""
        self.count += 1
        return contextlib.nullcontext()


@contextlib.contextmanager
def _proxy(port: int, one_way_ms: float, pin: bool) -> Iterator[int]:
    """Run ``delay_proxy.py`` in front of ``port``; yield the port it listens on."""
    argv = [sys.executable, str(HERE / "delay_proxy.py"), "--target", f"127.0.0.1:{port}"]
    argv += ["--one-way-ms", f"{one_way_ms:.4f}"]
    if pin:
        argv += ["--cpu", str(SERVER_CPU)]
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield int(process.stdout.readline())
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def _one_way_for(port: int, rtt: float, pin: bool) -> tuple[float, float]:
    """The one-way delay (ms) whose PING round trip through the proxy is ``rtt`` (ms).

    Returns the delay and the PING round trip measured with it (ms).
    """
    with _proxy(port, 0.0, pin) as bare:
        overhead = ping_round_trip("127.0.0.1", bare) * 1000
    one_way = max(0.0, (rtt - overhead) / 2)
    for _ in range(2):  # the proxy's own cost grows a little with the delay: correct twice
        with _proxy(port, one_way, pin) as delayed:
            measured = ping_round_trip("127.0.0.1", delayed) * 1000
        one_way = max(0.0, one_way + (rtt - measured) / 2)
    with _proxy(port, one_way, pin) as delayed:
        measured = ping_round_trip("127.0.0.1", delayed) * 1000
    return one_way, measured


async def _time(
    op: Callable[[int], Awaitable[object]], calls: int, max_seconds: float
) -> list[float]:
    """Run ``op`` (a few warm-up calls first) up to ``calls`` times or ``max_seconds``."""
    for i in range(3):
        await op(i)
    gc.collect()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < calls and (not samples or time.perf_counter() - start < max_seconds):
        t0 = time.perf_counter()
        await op(len(samples))
        samples.append(time.perf_counter() - t0)
    return samples


async def _bitlens_round(
    url: str, workloads: Sequence[str], calls: int, max_seconds: float, results: Results
) -> dict[str, int]:
    """Time ``workloads`` on bitlens through ``url``; return its answers."""
    days = [DayEvents(REFRESH_EVENT, d.year, d.month, d.day) for d in refresh_days()]
    answers: dict[str, int] = {}
    async with Tracker(url, prefix=PREFIX) as tracker:

        async def refresh(_: int) -> int:
            return sum(await tracker.count_many(days))

        async def cohort(_: int) -> int:
            rows = await get_dates_data(**COHORT_KWARGS, tracker=tracker)
            return len(rows) * len(rows[0])

        ops: dict[str, Callable[[int], Awaitable[Any]]] = {
            "contains": lambda i: tracker.contains(_m("active", 11), i * 13 % 1_000_000),
            "mark_event": lambda i: tracker.mark_event("single", i * 17 % 1_000_000, AT),
            "count(a & b)": lambda _: tracker.count(BOTH),
            "depth-3 tree": lambda _: tracker.count(TREE),
            "90 daily counts": refresh,
            "31 x 13 cohort table": cohort,
        }
        counter = _Counter()
        executor = executor_of(tracker)
        for name in workloads:
            answer = await ops[name](0)
            if isinstance(answer, int):  # a mark answers None
                answers[name] = answer
            executor.observer = counter
            before = counter.count
            await ops[name](1)
            trips = counter.count - before
            executor.observer = None
            results.add(name, "bitlens", await _time(ops[name], calls, max_seconds), trips)
    return answers


def _bitmapist_round(
    port: int, workloads: Sequence[str], calls: int, max_seconds: float, results: Results
) -> dict[str, int]:
    """Time ``workloads`` on bitmapist through ``port``; return its answers."""
    answers: dict[str, int] = {}
    names = [BITMAPIST_NAMES[w] for w in workloads if w in BITMAPIST_NAMES]
    if names:
        report = run_side(
            "bitmapist_side.py",
            [
                "--host", "127.0.0.1", "--port", str(port),
                "--iterations", str(calls), "--warmup", "3",
                "--max-seconds", str(max_seconds), "--workloads", *names,
            ],
        )  # fmt: skip
        for ours, theirs in BITMAPIST_NAMES.items():
            if ours in workloads:
                got = report["workloads"][theirs]
                results.add(ours, "bitmapist", got["samples"], got["round_trips"])
                answers[ours] = int(got["count"])
    if "31 x 13 cohort table" in workloads:
        job = {
            "bench": {
                "kwargs": COHORT_KWARGS,
                "iterations": calls,
                "warmup": 1,
                "max_seconds": max_seconds,
            }
        }
        argv = ["--host", "127.0.0.1", "--port", str(port)]
        raw = run_side("bitmapist_cohort_side.py", argv, stdin=json.dumps(job))["bench"]
        results.add("31 x 13 cohort table", "bitmapist", raw["samples"], raw["round_trips"])
        answers["31 x 13 cohort table"] = int(raw["count"])
    return answers


def _check(ours: dict[str, int], theirs: dict[str, int], expected: dict[str, int]) -> None:
    """Both sides' answers agree where they must (bitlens' exact counts where known)."""
    for name, value in expected.items():
        if ours.get(name, value) != value:
            raise SystemExit(f"bitlens answered {ours[name]} for {name}, not {value}")
        if name in theirs and theirs[name] != value:
            raise SystemExit(f"bitmapist answered {theirs[name]} for {name}, not {value}")
    for name in ("31 x 13 cohort table",):
        if name in ours and name in theirs and ours[name] != theirs[name]:
            raise SystemExit(f"{name}: bitlens {ours[name]} cells, bitmapist {theirs[name]}")


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:,.2f} ms" if ms < 100 else f"{ms:,.0f} ms"


@dataclass(frozen=True)
class Phase:
    """Workloads that run on one dataset."""

    workloads: tuple[str, ...]
    prepare: Callable[[Redis, ShardedSchema], Awaitable[dict[str, int]]]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print (and write) its Markdown report."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, few calls")
    parser.add_argument("--server", default=None, help="redis-server binary")
    parser.add_argument("--rtt-ms", type=float, nargs="+", default=[0.5, 2.0])
    parser.add_argument("--no-bitmapist", action="store_true", help="skip bitmapist")
    parser.add_argument("--calls", type=int, default=None, help="timed calls per side and round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of both sides")
    parser.add_argument("--output", type=Path, default=None, help="also write the Markdown here")
    args = parser.parse_args(argv)
    ids = 50_000 if args.quick else 1_000_000
    users = COHORT_USERS_QUICK if args.quick else COHORT_USERS
    calls = args.calls or (5 if args.quick else 100)
    rounds = args.rounds or (1 if args.quick else 2)
    max_seconds = 1.0 if args.quick else 6.0
    binary = args.server or newest_server()

    async def months_and_days(client: Redis, schema: ShardedSchema) -> dict[str, int]:
        await fill(client, schema, ids)
        total = await refresh_fill(client, schema, ids)
        async with Tracker(client, prefix=PREFIX) as tracker:  # the reference answers
            return {"count(a & b)": await tracker.count(BOTH), "90 daily counts": total}

    async def cohort_days(client: Redis, schema: ShardedSchema) -> dict[str, int]:
        await cohort_fill(client, schema, users)
        return {}

    phases = (
        Phase(WORKLOADS[:5], months_and_days),
        Phase(WORKLOADS[5:], cohort_days),
    )
    results: dict[float, Results] = {rtt: Results() for rtt in args.rtt_ms}
    floors: dict[float, tuple[float, float]] = {}
    with pinned() as pin:
        server = start_server(binary, pin)
        try:
            for rtt in args.rtt_ms:
                floors[rtt] = _one_way_for(server.port, rtt, pin)
                log(f"network: {rtt} ms asked, PING through the proxy {floors[rtt][1]:.3f} ms")
            for phase in phases:

                async def prepare(phase: Phase = phase) -> dict[str, int]:
                    client = Redis.from_url(server.url)
                    try:
                        return await phase.prepare(client, ShardedSchema(prefix=PREFIX))
                    finally:
                        await client.aclose()

                expected = asyncio.run(prepare())
                for rtt in args.rtt_ms:
                    with _proxy(server.port, floors[rtt][0], pin) as port:
                        url = f"redis://127.0.0.1:{port}"
                        for r in range(rounds):
                            log(f"network: {phase.workloads[0]}.. at {rtt} ms, round {r + 1}")
                            ours = asyncio.run(
                                _bitlens_round(
                                    url, phase.workloads, calls, max_seconds, results[rtt]
                                )
                            )
                            theirs = (
                                {}
                                if args.no_bitmapist
                                else _bitmapist_round(
                                    port, phase.workloads, calls, max_seconds, results[rtt]
                                )
                            )
                            _check(ours, theirs, expected)
            version = server_version(binary)
        finally:
            server.stop()
    header = [
        "workload",
        "round trip (PING)",
        "bitlens",
        "bitmapist 3.119",
        "bitlens / bitmapist",
        "goal at 0.5 ms",
        "round trips (bitlens / bitmapist)",
    ]
    rows = []
    for name in WORKLOADS:
        for rtt in args.rtt_ms:
            got = results[rtt].samples[name]
            trips = results[rtt].round_trips[name]
            ours_s = median(got["bitlens"])
            lo, hi = spread(got["bitlens"])
            theirs_s = median(got["bitmapist"]) if got.get("bitmapist") else None
            ratio = f"{ours_s / theirs_s:.2f}" if theirs_s else "—"
            rows.append(
                [
                    f"`{name}`",
                    f"{rtt:g} ms ({floors[rtt][1]:.2f})",
                    f"**{_ms(ours_s)}** ({_ms(lo)} - {_ms(hi)})",
                    _ms(theirs_s) if theirs_s else "—",
                    ratio,
                    f"≤ {GOALS[name]:g}" if rtt == 0.5 else "",
                    f"{trips.get('bitlens', 0):g} / "
                    + (f"{trips['bitmapist']:g}" if "bitmapist" in trips else "—"),
                ]
            )
    lines = [
        f"## Over a network (redis-server {'.'.join(map(str, version))})",
        "",
        f"Each call through `delay_proxy.py`; up to {calls:,} timed calls per side, workload "
        f"and round ({max_seconds:g} s at most), {rounds} round(s), the sides taking turns; "
        f"{ids:,} ids for the month and day bitmaps, {users:,} users for the cohort table; "
        "medians (p10 - p90). The round trip column gives the one asked for and, in "
        "parentheses, a bare `PING` through the proxy (ms).",
        "",
        table(header, rows),
        "",
        "- The proxy and the server share CPU 0, both clients run on CPU 1; the proxy adds "
        "its own work to every round trip (counted in the `PING` figure).",
        "- bitlens' round trips are counted by its executor; bitmapist's are its socket "
        "writes (one per command, one per pipeline).",
        f"- Python {sys.version.split()[0]}, redis-py {dist_version('redis')}, "
        f"hiredis {dist_version('hiredis')}"
        + (" — `--quick`: not representative." if args.quick else "."),
    ]
    report_text = "\n".join(lines) + "\n"
    print(report_text)
    if args.output is not None:
        args.output.write_text(report_text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
