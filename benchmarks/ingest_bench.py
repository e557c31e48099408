"""Ingest benchmarks: batch ingest, 1,000 concurrent marks, and one mark alone.

Three workloads, each beside its baseline measured in the same run on the same server:

* **Batch ingest**: ``await tracker.mark_events(events)`` for 1M events (random ids among
  1M users, timestamps spread over 30 days: month, ISO week and day bits) against the raw
  server limit, the same 3M SETBITs pre-packed as RESP and sent over one plain socket in
  pipelines of 128; plus the same bits with bitlens' grouping forced to plain SETBITs or to
  BITFIELD without byte images (only the command emission differs).
* **1,000 concurrent tasks** each awaiting one ``mark_event``: plain vs ``coalesce=True``.
* **One mark alone**: ``await tracker.mark_event`` vs a bare ``redis.asyncio`` MULTI/EXEC
  pipeline of the same SETBITs.

And the same three through bitmapist 3.119 (sync, its own venv with ``redis<6``), run by
``bitmapist_ingest_side.py`` as a subprocess.

Use it from ``benchmarks/run.py`` (``await run_ingest(host, port, quick=...)`` returns
Markdown blocks; ``measure_ingest`` returns the results, and ``render_blocks`` turns them
into sections shaped like ``run.py``'s ``Section``), or alone::

    python benchmarks/ingest_bench.py [--quick] [--server PATH ...] [--all-servers]
        [--no-bitmapist] [--bitmapist-python PATH] [--users N]

Alone, it starts a private redis-server per binary pinned to CPU 0 and pins itself (and its
helper processes) to CPU 1; inside ``run.py`` the caller has already done both.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import datetime as dt
import gc
import os
import platform
import random
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from common import (  # beside this file
    BITMAPIST_VERSION,
    SEED,
    command,
    cpu_model,
    dist_version,
    find_redis_server,
    find_redis_servers,
    log,
    pin_client,
    run_side,
    send_bit_commands,
    start_server,
)
from common import (
    table as md_table,
)
from redis.asyncio import Redis

import bitlens
from bitlens import Day, Limits, Tracker

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

__all__ = [
    "Block",
    "IngestResults",
    "Plan",
    "Workload",
    "measure_ingest",
    "render",
    "render_blocks",
    "run_ingest",
]

BITMAPIST_SIDE = "bitmapist_ingest_side.py"

PREFIX = "bench"
EVENT = "active"
START = dt.datetime(2026, 10, 17, tzinfo=dt.timezone.utc)  # 30 days: 2 months, 5 ISO weeks
DAYS = 30
DEPTH = 128  # raw pipeline depth

# Goals from the issue.
GOAL_BATCH = 1.0  # bitlens events/s over raw events/s (raw SETBITs/s / 3): at least
GOAL_COALESCE = 5.0  # coalesced throughput over plain: at least
GOAL_SINGLE = 0.8  # bitlens latency over the bare pipeline's: at most
LIMIT_SINGLE = 1.15  # ... and never above


# -------------------------------------------------------------------------------------------
# The plan and the workload
# -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How much of everything; ``--quick`` shrinks it."""

    events: int
    users: int
    repeats: int
    bursts: int
    burst_warmup: int
    single: int
    single_warmup: int
    bitmapist_loop: int
    bitmapist_pipeline: int
    quick: bool
    setbit_repeats: int = 1  # the forced-SETBIT variant is slow: fewer runs
    chunk: int = 10_000  # bitlens' default mark_chunk_size
    tasks: int = 1_000

    @classmethod
    def make(cls, *, quick: bool, users: int = 1_000_000) -> Plan:
        """The full or the quick plan."""
        if quick:  # seconds: checks that every part runs, measures nothing
            return cls(20_000, users, 1, 2, 1, 50, 10, 1_000, 5_000, quick=True, tasks=200)
        return cls(1_000_000, users, 5, 10, 2, 2_000, 200, 20_000, 100_000, quick=False)


Mark = tuple[str, int, dt.datetime]


@dataclass
class Workload:
    """The events, as ids and seconds after ``START`` and as ready ``mark_events`` items."""

    uids: array.array[int]
    seconds: array.array[int]
    marks: list[Mark]
    expected_bits: int  # distinct (month|week|day key, id) pairs
    distinct_ids: int
    days: int = DAYS

    @classmethod
    def make(cls, events: int, users: int, seed: int = SEED, days: int = DAYS) -> Workload:
        """``events`` marks of ``EVENT``: uniform random ids and times over ``days`` days."""
        rng = random.Random(seed)
        span = days * 86_400
        uids = array.array("I", (rng.randrange(users) for _ in range(events)))
        seconds = array.array("I", (rng.randrange(span) for _ in range(events)))
        marks = [
            (EVENT, u, START + dt.timedelta(seconds=s)) for u, s in zip(uids, seconds, strict=True)
        ]
        dates = [START + dt.timedelta(days=d) for d in range(days)]
        month_of = [(d.year, d.month) for d in dates]
        week_of = [d.isocalendar()[:2] for d in dates]
        bits: set[tuple[object, int]] = set()
        for u, s in zip(uids, seconds, strict=True):
            d = s // 86_400
            bits.add((("M", month_of[d]), u))
            bits.add((("W", week_of[d]), u))
            bits.add((("D", d), u))
        return cls(uids, seconds, marks, len(bits), len(set(uids)), days)

    def in_time_order(self) -> Workload:
        """The same events sorted by time (a log replayed in order): the same bits."""
        order = sorted(range(len(self.marks)), key=self.seconds.__getitem__)
        return Workload(
            array.array("I", (self.uids[i] for i in order)),
            array.array("I", (self.seconds[i] for i in order)),
            [self.marks[i] for i in order],
            self.expected_bits,
            self.distinct_ids,
            self.days,
        )


def bitmapist_keys(day: dt.datetime) -> tuple[str, str, str]:
    """bitmapist 3.x's month, ISO week and day keys (numbers not zero-padded)."""
    iso_year, iso_week, _ = day.isocalendar()
    base = f"trackist_{EVENT}_"
    return (
        f"{base}{day.year}-{day.month}",
        f"{base}W{iso_year}-{iso_week}",
        f"{base}{day.year}-{day.month}-{day.day}",
    )


# -------------------------------------------------------------------------------------------
# Results
# -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchRun:
    """One timed batch ingest."""

    events: int
    seconds: float
    client_cpu: float
    server_cpu: float
    round_trips: int
    commands: dict[str, int]
    server_usec: float = 0.0
    bits_ok: bool | None = None

    @property
    def rate(self) -> float:
        """Events per second."""
        return self.events / self.seconds


@dataclass(frozen=True)
class BurstResult:
    """Bursts of ``tasks`` concurrent marks."""

    walls: list[float]
    latencies: list[float]
    round_trips: float  # per burst
    tasks: int

    @property
    def rate(self) -> float:
        """Median marks per second over a whole burst."""
        return self.tasks / statistics.median(self.walls)


@dataclass(frozen=True)
class SingleResult:
    """Sequential single-mark latencies."""

    samples: list[float]
    cpu: float  # client CPU seconds per call

    @property
    def median(self) -> float:
        """Median latency in seconds."""
        return statistics.median(self.samples)


@dataclass
class BitmapistResults:
    """What ``bitmapist_ingest_side.py`` reported (or why it did not run)."""

    versions: str = ""
    loop: BatchRun | None = None
    pipeline: BatchRun | None = None
    bursts: BurstResult | None = None
    single: SingleResult | None = None
    failure: str = ""


@dataclass
class IngestResults:
    """Everything one ``measure_ingest`` run measured, on one server."""

    plan: Plan
    server: str  # e.g. "6.2.14 (libc)"
    batch: dict[str, list[BatchRun]] = field(default_factory=dict)
    redis_benchmark: dict[int, float] = field(default_factory=dict)  # clients -> SETBITs/s
    redis_benchmark_note: str = ""
    bursts: dict[str, BurstResult] = field(default_factory=dict)
    single: dict[str, SingleResult] = field(default_factory=dict)
    bitmapist: BitmapistResults = field(default_factory=BitmapistResults)
    expected_bits: int = 0
    distinct_ids: int = 0
    affinity: list[int] = field(default_factory=list)
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    elapsed: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at start and end
    server_affinity: list[int] = field(default_factory=list)  # empty: unknown

    def median_rate(self, name: str) -> float:
        """Median events/s of a batch variant."""
        return statistics.median(r.rate for r in self.batch[name])


# -------------------------------------------------------------------------------------------
# Server statistics
# -------------------------------------------------------------------------------------------


async def _server_cpu(client: Redis) -> float:
    info = await command(client, "INFO", "cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


_NOT_WORK = ("config", "info", "flushall", "exec", "multi")


async def _commandstats(client: Redis) -> tuple[dict[str, int], float]:
    """Calls per command and their µs since the last ``CONFIG RESETSTAT``.

    EXEC's usec includes the commands it ran, so it is left out (and MULTI with it).
    """
    stats = await command(client, "INFO", "commandstats")
    calls: dict[str, int] = {}
    usec = 0.0
    for key, value in stats.items():
        name = str(key).removeprefix("cmdstat_").split("|")[0]
        if name in _NOT_WORK or not isinstance(value, dict):
            continue
        calls[name] = calls.get(name, 0) + int(value.get("calls", 0))
        usec += float(value.get("usec", 0))
    return calls, usec


async def _bitcount(client: Redis, pattern: str) -> int:
    total = 0
    async for key in client.scan_iter(match=pattern, count=1000):
        total += int(await command(client, "BITCOUNT", key))
    return total


async def server_version(client: Redis) -> tuple[str, list[int]]:
    """``6.2.14 (libc)``, the version and allocator of the server, and its CPU affinity.

    The affinity is read from the server's pid when it runs on this machine (else empty).
    """
    server = await command(client, "INFO", "server")
    memory = await command(client, "INFO", "memory")
    allocator = str(memory.get("mem_allocator", "?")).split("-")[0]
    affinity: list[int] = []
    with contextlib.suppress(OSError, KeyError, ValueError, AttributeError):
        affinity = sorted(os.sched_getaffinity(int(server["process_id"])))
    return f"{server['redis_version']} ({allocator})", affinity


# -------------------------------------------------------------------------------------------
# Batch ingest: raw, bitlens and its grouping variants
# -------------------------------------------------------------------------------------------


def pack_raw(workload: Workload) -> list[tuple[bytes, int]]:
    """Every SETBIT of the workload (3 per event) as RESP, in pipelines of ``DEPTH``."""
    templates: list[tuple[bytes, bytes, bytes]] = []
    for day in range(workload.days):
        month, week, date = (
            b"*4\r\n$6\r\nSETBIT\r\n$%d\r\n%b\r\n$%%d\r\n%%d\r\n$1\r\n1\r\n" % (len(k), k.encode())
            for k in bitmapist_keys(START + dt.timedelta(days=day))
        )
        templates.append((month, week, date))
    pipelines: list[tuple[bytes, int]] = []
    current: list[bytes] = []
    append = current.append
    for u, s in zip(workload.uids, workload.seconds, strict=True):
        month, week, date = templates[s // 86_400]
        arg = (len(str(u)), u)
        append(month % arg)
        append(week % arg)
        append(date % arg)
        if len(current) >= DEPTH:
            pipelines.append((b"".join(current[:DEPTH]), DEPTH))
            del current[:DEPTH]
    while current:
        chunk = current[:DEPTH]
        pipelines.append((b"".join(chunk), len(chunk)))
        del current[:DEPTH]
    return pipelines


def send_raw(host: str, port: int, pipelines: Sequence[tuple[bytes, int]]) -> tuple[float, float]:
    """Send the pipelines one after another on one socket; return (wall s, client CPU s).

    Each pipeline's replies are read (CRLF-terminated integers, counted) before the next is
    sent, as redis-benchmark -P does with one client.

    :raises RuntimeError: on an error reply
    """
    with socket.create_connection((host, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        recv, sendall = sock.recv, sock.sendall
        errors = 0
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        for data, count in pipelines:
            sendall(data)
            got = 0
            carry = False
            while got < count:
                chunk = recv(65536)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                got += chunk.count(b"\r\n") + (carry and chunk[0] == 10)
                carry = chunk[-1] == 13
                if 45 in chunk:  # b"-": an error reply (an integer reply never has one)
                    errors += 1
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    if errors:
        raise RuntimeError(f"{errors} error replies from raw SETBITs")
    return seconds, cpu


BATCH_VARIANTS = {
    "raw": "raw SETBIT pipelines of 128, one socket (3 SETBITs per event)",
    "bitlens": "bitlens `mark_events` (default: BITFIELD / byte image per key)",
    "bitlens-setbit": "bitlens' executor, the benchmark's own commands: one SETBIT per bit",
    "bitlens-bitfield": "bitlens' executor, the benchmark's own commands: BITFIELD only",
    "raw-sorted": "raw SETBIT pipelines, events in time order",
    "bitlens-sorted": "bitlens default, events in time order",
    "bitlens-bitfield-sorted": "bitlens' executor, BITFIELD only, events in time order",
}
SORTED = "-sorted"


async def _timed_bitlens(client: Redis, workload: Workload, variant: str, plan: Plan) -> BatchRun:
    await command(client, "FLUSHALL")
    tracker = Tracker(client, prefix=PREFIX, limits=Limits(mark_chunk_size=plan.chunk))
    marks = workload.marks
    await command(client, "CONFIG", "RESETSTAT")
    server0 = await _server_cpu(client)
    gc.collect()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    variant = variant.removesuffix(SORTED)
    if variant == "bitlens":
        await tracker.mark_events(marks)
    elif variant in ("bitlens-bitfield", "bitlens-setbit"):
        schema = tracker.schema
        bitfield = variant == "bitlens-bitfield"
        await send_bit_commands(client, schema, marks, bitfield=bitfield, chunk=plan.chunk)
    else:
        raise ValueError(variant)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    server = await _server_cpu(client) - server0
    calls, usec = await _commandstats(client)
    if variant == "bitlens":
        round_trips = tracker.stats().batches_sent
    else:  # one MULTI/EXEC per chunk
        round_trips = -(-len(marks) // plan.chunk)
    await tracker.aclose()
    events_bits = await _bitcount(client, f"{PREFIX}:{{*}}:{EVENT}:*")
    universe_bits = await _bitcount(client, f"{PREFIX}:{{*}}:~all")
    ok = events_bits == workload.expected_bits and universe_bits == workload.distinct_ids
    if not ok:
        log(
            f"  {variant}: {events_bits:,} event bits (expected {workload.expected_bits:,}), "
            f"{universe_bits:,} universe bits (expected {workload.distinct_ids:,})"
        )
    return BatchRun(len(marks), seconds, cpu, server, round_trips, calls, usec, ok)


async def _timed_raw(
    client: Redis, host: str, port: int, workload: Workload, pipelines: list[tuple[bytes, int]]
) -> BatchRun:
    await command(client, "FLUSHALL")
    await command(client, "CONFIG", "RESETSTAT")
    server0 = await _server_cpu(client)
    gc.collect()
    seconds, cpu = send_raw(host, port, pipelines)  # blocks the loop on purpose: nothing else runs
    server = await _server_cpu(client) - server0
    calls, usec = await _commandstats(client)
    bits = await _bitcount(client, f"trackist_{EVENT}_*")
    ok = bits == workload.expected_bits
    if not ok:
        log(f"  raw: {bits:,} bits (expected {workload.expected_bits:,})")
    return BatchRun(len(workload.marks), seconds, cpu, server, len(pipelines), calls, usec, ok)


def redis_benchmark(host: str, port: int, requests: int, clients: int) -> float | None:
    """SETBITs/s by ``redis-benchmark -P 128`` (one key, one offset), or None if absent."""
    exe = shutil.which("redis-benchmark")
    if exe is None:
        return None
    argv = [exe, "-h", host, "-p", str(port), "-c", str(clients), "-P", str(DEPTH)]
    argv += ["-n", str(requests), "--csv", "SETBIT", "rb:bench", "999999", "1"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in done.stdout.splitlines():
        fields = [f.strip('"') for f in line.split(",")]
        if len(fields) > 1 and fields[0].startswith("SETBIT"):
            with contextlib.suppress(ValueError):
                return float(fields[1])
    return None


# -------------------------------------------------------------------------------------------
# 1,000 concurrent marks, and one mark alone
# -------------------------------------------------------------------------------------------


HARNESSES = ("tasks", "anyio")


async def _burst(
    tracker: Tracker | None, marks: Sequence[Mark], harness: str = "anyio"
) -> tuple[float, list[float]]:
    """Start one task per mark at once; return (burst wall s, per-call latencies).

    ``harness``: ``tasks`` (one asyncio task per mark, started with ``loop.create_task``
    and awaited with ``asyncio.gather``: what uvicorn and aiohttp do per request) or
    ``anyio`` (an anyio task group, about 4x dearer per task). With ``tracker=None`` the
    tasks do nothing: the floor of the harness itself.
    """
    latencies = [0.0] * len(marks)
    perf = time.perf_counter

    async def one(i: int, uid: int, at: dt.datetime) -> None:
        t0 = perf()
        if tracker is not None:
            await tracker.mark_event(EVENT, uid, at)
        latencies[i] = perf() - t0

    start = perf()
    if harness == "anyio":
        async with anyio.create_task_group() as tg:
            for i, (_, uid, at) in enumerate(marks):
                tg.start_soon(one, i, uid, at)
    else:
        spawn = asyncio.get_running_loop().create_task
        await asyncio.gather(*[spawn(one(i, uid, at)) for i, (_, uid, at) in enumerate(marks)])
    return perf() - start, latencies


async def measure_bursts(client: Redis, workload: Workload, plan: Plan) -> dict[str, BurstResult]:
    """Plain and coalescing trackers and the no-op floor, per harness, bursts taking turns.

    Results are keyed ``plain``, ``coalesce``, ``noop`` (asyncio tasks) and the same with
    ``-anyio`` (an anyio task group).
    """
    await command(client, "FLUSHALL")
    plain = Tracker(client, prefix=PREFIX)
    coalesce = Tracker(client, prefix=PREFIX, coalesce=True)
    kinds: dict[str, Tracker | None] = {"plain": plain, "coalesce": coalesce, "noop": None}
    runs: dict[str, tuple[Tracker | None, str]] = {}
    for harness in HARNESSES:
        for kind, tracker in kinds.items():
            runs[kind if harness == "tasks" else f"{kind}-{harness}"] = (tracker, harness)
    names = list(runs)
    walls: dict[str, list[float]] = {name: [] for name in names}
    lats: dict[str, list[float]] = {name: [] for name in names}
    batches: dict[str, int] = dict.fromkeys(names, 0)
    marks, n, k = workload.marks, len(workload.marks), plan.tasks
    burst = 0
    for b in range(plan.burst_warmup + plan.bursts):
        for name in names[b % len(names) :] + names[: b % len(names)]:
            tracker, harness = runs[name]
            chunk = [marks[(burst * k + i) % n] for i in range(k)]
            burst += 1
            sent = tracker.stats().batches_sent if tracker is not None else 0
            gc.collect()
            wall, latencies = await _burst(tracker, chunk, harness)
            if b >= plan.burst_warmup:
                walls[name].append(wall)
                lats[name].extend(latencies)
                if tracker is not None:
                    batches[name] += tracker.stats().batches_sent - sent
    await plain.aclose()
    await coalesce.aclose()
    return {
        name: BurstResult(walls[name], lats[name], batches[name] / plan.bursts, k) for name in names
    }


async def measure_single(client: Redis, workload: Workload, plan: Plan) -> dict[str, SingleResult]:
    """One ``mark_event`` at a time vs bare redis.asyncio MULTI/EXEC pipelines of SETBITs.

    The bare pipelines set the very keys and offsets bitlens sets (month, week, day and the
    shard's universe; the 3-SETBIT variant leaves out the universe). Their keys are built
    before timing (an edge for the bare side). The variants take turns in blocks of 100
    calls, so drift hits them alike.
    """
    await command(client, "FLUSHALL")
    tracker = Tracker(client, prefix=PREFIX)
    schema = tracker.schema
    count = min(len(workload.marks), max(plan.single, plan.single_warmup))
    bits: list[list[tuple[str, int]]] = []
    for _, uid, at in workload.marks[:count]:
        day = Day(at.year, at.month, at.day, tracker.tz)
        shard, bit = schema.shard_of(uid), schema.bit_of(uid)
        keys = [schema.event_key(EVENT, p, shard) for p in (day.as_month(), day.as_week(), day)]
        bits.append([*((key, bit) for key in keys), (schema.universe_key(shard), bit)])

    def bare(width: int) -> Callable[[int], Awaitable[object]]:
        async def call(j: int) -> object:
            async with client.pipeline(transaction=True) as pipe:
                for key, bit in bits[j][:width]:
                    pipe.setbit(key, bit, 1)
                return await pipe.execute()

        return call

    async def ours(j: int) -> object:
        _, uid, at = workload.marks[j]
        await tracker.mark_event(EVENT, uid, at)
        return None

    variants: dict[str, Callable[[int], Awaitable[object]]] = {
        "bitlens": ours,
        "bare4": bare(4),
        "bare3": bare(3),
    }
    for call in variants.values():
        for j in range(plan.single_warmup):
            await call(j % count)
    samples: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, float] = dict.fromkeys(variants, 0.0)
    block = 100
    names = list(variants)
    perf = time.perf_counter
    gc.collect()
    for b, start in enumerate(range(0, plan.single, block)):
        order = names[b % len(names) :] + names[: b % len(names)]
        for name in order:
            call = variants[name]
            out = samples[name]
            cpu0 = time.process_time()
            for j in range(start, min(start + block, plan.single)):
                t0 = perf()
                await call(j % count)
                out.append(perf() - t0)
            cpu[name] += time.process_time() - cpu0
    await tracker.aclose()
    return {name: SingleResult(samples[name], cpu[name] / plan.single) for name in variants}


# -------------------------------------------------------------------------------------------
# bitmapist in its own venv (see bitmapist_env.py)
# -------------------------------------------------------------------------------------------


def _batch_from_json(raw: dict[str, Any]) -> BatchRun:
    return BatchRun(
        events=int(raw["events"]),
        seconds=float(raw["seconds"]),
        client_cpu=float(raw["client_cpu"]),
        server_cpu=float(raw["server_cpu"]),
        round_trips=int(raw["round_trips"]),
        commands={str(k): int(v) for k, v in raw["commands"].items()},
    )


def run_bitmapist(
    host: str, port: int, workload: Workload, plan: Plan, python: str | None
) -> BitmapistResults:
    """Run ``bitmapist_ingest_side.py`` in bitmapist's venv (it inherits our CPU affinity)."""
    count = min(len(workload.marks), max(plan.bitmapist_pipeline, plan.bitmapist_loop, 200_000))
    with tempfile.TemporaryDirectory(prefix="bitlens-ingest-") as tmp:
        path = Path(tmp) / "events.bin"
        with path.open("wb") as f:
            workload.uids[:count].tofile(f)
            workload.seconds[:count].tofile(f)
        argv = ["--host", host, "--port", str(port)]
        argv += ["--events", str(path), "--count", str(count), "--start", START.isoformat()]
        argv += ["--loop", str(min(count, plan.bitmapist_loop))]
        argv += ["--pipeline", str(min(count, plan.bitmapist_pipeline)), "--chunk", str(plan.chunk)]
        argv += ["--tasks", str(plan.tasks), "--bursts", str(plan.bursts)]
        argv += ["--burst-warmup", str(plan.burst_warmup), "--single", str(plan.single)]
        argv += ["--single-warmup", str(plan.single_warmup)]
        if hasattr(os, "sched_getaffinity") and len(mine := os.sched_getaffinity(0)) == 1:
            argv += ["--cpu", str(next(iter(mine)))]
        try:
            report = run_side(BITMAPIST_SIDE, argv, python=python)
        except RuntimeError as exc:
            return BitmapistResults(failure=str(exc))
    bursts = report["bursts"]
    return BitmapistResults(
        versions=f"bitmapist {report['bitmapist']}, redis-py {report['redis_py']} "
        f"(Python {report['python']}, CPUs {report['affinity']})",
        loop=_batch_from_json(report["loop"]),
        pipeline=_batch_from_json(report["pipeline"]),
        bursts=BurstResult(
            [float(w) for w in bursts["walls"]],
            [float(x) for x in bursts["latencies"]],
            float(plan.tasks),
            plan.tasks,
        ),
        single=SingleResult(
            [float(x) for x in report["single"]["samples"]], float(report["single"]["cpu"])
        ),
    )


# -------------------------------------------------------------------------------------------
# The whole measurement
# -------------------------------------------------------------------------------------------


async def measure_ingest(
    server_host: str,
    server_port: int,
    *,
    quick: bool,
    users: int = 1_000_000,
    bitmapist: bool = True,
    bitmapist_python: str | None = None,
    workload: Workload | None = None,
) -> IngestResults:
    """Run every ingest workload against a private server (it is FLUSHALLed throughout).

    The caller pins: the server to one CPU, this process to another (helper processes
    inherit its affinity).

    :param server_host: the server's host
    :param server_port: its port
    :param quick: 20k events and fewer repetitions, to check that everything works
    :param users: ids are drawn from 0..users-1
    :param bitmapist: also run the bitmapist 3.119 side
    :param bitmapist_python: a python with bitmapist 3.119 (default: ``.nox/bench-bitmapist``,
        created on first use)
    :param workload: the events (default: made from ``SEED``; pass one to share it)
    """
    plan = Plan.make(quick=quick, users=users)
    started = time.perf_counter()
    load0 = os.getloadavg()[0]
    if workload is None:
        t0 = time.perf_counter()
        workload = Workload.make(plan.events, users)
        log(f"  workload: {plan.events:,} events made in {time.perf_counter() - t0:.1f} s")
    elif len(workload.marks) != plan.events:
        raise ValueError(f"the workload has {len(workload.marks):,} events, not {plan.events:,}")
    client = Redis(host=server_host, port=server_port)
    frozen = False
    try:
        version_, server_affinity = await server_version(client)
        results = IngestResults(plan, version_, server_affinity=server_affinity)
        results.expected_bits = workload.expected_bits
        results.distinct_ids = workload.distinct_ids
        if hasattr(os, "sched_getaffinity"):
            results.affinity = sorted(os.sched_getaffinity(0))
        t0 = time.perf_counter()
        ordered = workload.in_time_order()
        pipelines = {"raw": pack_raw(workload), "raw-sorted": pack_raw(ordered)}
        took = time.perf_counter() - t0
        log(f"  packed 2 x {len(pipelines['raw']):,} raw pipelines in {took:.1f} s")
        # The events and packed pipelines live all run: keep the collector off them.
        gc.collect()
        gc.freeze()
        frozen = True
        variants = list(BATCH_VARIANTS)
        results.batch = {name: [] for name in variants}
        for rep in range(plan.repeats):
            order = variants[rep % len(variants) :] + variants[: rep % len(variants)]
            for name in order:
                if name == "bitlens-setbit" and rep >= plan.setbit_repeats:
                    continue
                events = ordered if name.endswith(SORTED) else workload
                if name.startswith("raw"):
                    run = await _timed_raw(
                        client, server_host, server_port, events, pipelines[name]
                    )
                else:
                    run = await _timed_bitlens(client, events, name, plan)
                results.batch[name].append(run)
                log(f"  batch {rep + 1}/{plan.repeats} {name}: {run.rate:,.0f} events/s")
        del pipelines, ordered
        await command(client, "FLUSHALL")
        requests = plan.events  # SETBITs (a few seconds' worth)
        for clients in (1, 50):
            rate = await anyio.to_thread.run_sync(
                redis_benchmark, server_host, server_port, requests, clients
            )
            if rate is not None:
                results.redis_benchmark[clients] = rate
        if not results.redis_benchmark:
            results.redis_benchmark_note = "redis-benchmark not found or failed"
        results.bursts = await measure_bursts(client, workload, plan)
        for name, burst in results.bursts.items():
            log(f"  burst {name}: {burst.rate:,.0f} marks/s")
        results.single = await measure_single(client, workload, plan)
        for name, single in results.single.items():
            log(f"  single {name}: {single.median * 1e6:,.0f} µs")
        await command(client, "FLUSHALL")
        if bitmapist:
            results.bitmapist = await anyio.to_thread.run_sync(
                run_bitmapist, server_host, server_port, workload, plan, bitmapist_python
            )
            if results.bitmapist.failure:
                log(f"  bitmapist: not measured: {results.bitmapist.failure}")
        else:
            results.bitmapist = BitmapistResults(failure="not asked (--no-bitmapist)")
        await command(client, "FLUSHALL")
    finally:
        if frozen:
            gc.unfreeze()
        await client.aclose()
    results.elapsed = time.perf_counter() - started
    results.load = (load0, os.getloadavg()[0])
    return results


async def run_ingest(
    server_host: str,
    server_port: int,
    *,
    quick: bool,
    bitmapist: bool = True,
    bitmapist_python: str | None = None,
    users: int = 1_000_000,
    command: str | None = None,
    header: bool = True,
    workload: Workload | None = None,
) -> list[str]:
    """Measure everything and return the report as Markdown blocks (see :func:`render`).

    Each block is a Markdown section: a preamble (with ``header``: machine, server, date,
    ``command``), then batch ingest, grouping, 1,000 concurrent marks, and one mark alone.
    """
    results = await measure_ingest(
        server_host,
        server_port,
        quick=quick,
        users=users,
        bitmapist=bitmapist,
        bitmapist_python=bitmapist_python,
        workload=workload,
    )
    return render(results, command=command, header=header)


# -------------------------------------------------------------------------------------------
# Rendering
# -------------------------------------------------------------------------------------------


def _us(seconds: float) -> str:
    us = seconds * 1e6
    return f"{us:,.0f} µs" if us < 1000 else f"{us / 1000:,.2f} ms"


def _rate(x: float) -> str:
    return f"{x:,.0f}"


def _check(ok: bool) -> str:
    return "✓" if ok else "✗"


def _pct(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _spread(values: Sequence[float]) -> str:
    return "" if len(values) < 2 else f" ({_rate(min(values))} - {_rate(max(values))})"


def _commands(calls: dict[str, int], events: int, per: int) -> str:
    parts = sorted(calls.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{n * per / events:,.0f} {name.upper()}" for name, n in parts if n)


def render(results: IngestResults, *, command: str | None = None, header: bool = True) -> list[str]:
    """The report as Markdown blocks: a preamble (if ``header``), then one per workload."""
    r = results
    plan = r.plan
    blocks: list[str] = []
    pinned = len(r.affinity) == 1 and len(r.server_affinity) == 1
    pinned = pinned and r.affinity != r.server_affinity
    if header:
        lines = [
            f"# bitlens ingest benchmarks: redis-server {r.server}",
            "",
            f"- Date: {r.started:%Y-%m-%d %H:%M} UTC"
            f"{' (--quick: not representative)' if plan.quick else ''}; took {r.elapsed:.0f} s",
            f"- Machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}, "
            f"{platform.system()} {platform.release()}; CPU affinity: client "
            f"{r.affinity}, server {r.server_affinity or 'unknown'}"
            f"{' (pinned to different cores)' if pinned else ' (NOT pinned apart: noisy)'}",
            f"- Python {platform.python_version()}, bitlens {bitlens.__version__}, "
            f"redis-py {dist_version('redis')}, hiredis {dist_version('hiredis')}, anyio "
            f"{dist_version('anyio')}",
            f"- redis-server {r.server}",
            f"- Load average (1 min) at start / end: {r.load[0]:.2f} / {r.load[1]:.2f}"
            + (
                " (other processes were busy on this machine: expect noise)"
                if max(r.load) > 2.5
                else ""
            ),
        ]
        if command:
            lines.append(f"- Command: `{command}`")
        blocks.append("\n".join(lines) + "\n")
    blocks.extend(block.markdown() for block in render_blocks(r))
    return blocks


def render_blocks(results: IngestResults) -> list[Block]:
    """The four sections (batch, grouping, bursts, single) as :class:`Block` s.

    For ``run.py``: ``Section(b.title, "", b.tables, b.notes)`` for each.
    """
    return [
        _render_batch(results),
        _render_grouping(results),
        _render_bursts(results),
        _render_single(results),
    ]


def _render_batch(r: IngestResults) -> Block:
    plan = r.plan
    raw = r.median_rate("raw")
    rows: list[list[str]] = []
    for name in ("raw", "bitlens"):
        runs = r.batch[name]
        rate = statistics.median(x.rate for x in runs)
        ratio = rate / raw
        goal = "baseline" if name == "raw" else f"≥ {GOAL_BATCH:.1f}: {_check(ratio >= GOAL_BATCH)}"
        rows.append(
            [
                BATCH_VARIANTS[name],
                f"**{_rate(rate)}**{_spread([x.rate for x in runs])}",
                f"{ratio:.2f}",
                goal,
                f"{statistics.median(x.client_cpu for x in runs):.2f} s",
                f"{statistics.median(x.server_cpu for x in runs):.2f} s",
                f"{runs[0].round_trips:,}",
            ]
        )
    for clients, setbits in sorted(r.redis_benchmark.items()):
        rows.append(
            [
                f"redis-benchmark -P 128 -c {clients} (SETBIT of one key/offset; SETBITs/s ÷ 3)",
                _rate(setbits / 3),
                f"{setbits / 3 / raw:.2f}",
                "info",
                "",
                "",
                "",
            ]
        )
    b = r.bitmapist
    for run, label in ((b.loop, "`mark_event` in a loop"), (b.pipeline, "user pipeline")):
        if run is None:
            continue
        text = (
            f"bitmapist {BITMAPIST_VERSION} {label}"
            + (f" of {plan.chunk:,} marks (`use_pipeline=False`)" if run is b.pipeline else "")
            + f" ({run.events:,}-event sample)"
        )
        rows.append(
            [
                text,
                _rate(run.rate),
                f"{run.rate / raw:.2f}",
                "info",
                f"{run.client_cpu * plan.events / run.events:.2f} s*",
                f"{run.server_cpu * plan.events / run.events:.2f} s*",
                f"{run.round_trips * plan.events // run.events:,}*",
            ]
        )
    table = md_table(
        [
            f"batch ingest, {plan.events:,} events",
            "events/s (median; min - max)",
            "vs raw",
            "goal",
            "client CPU",
            "server CPU",
            "round trips",
        ],
        rows,
    )
    ok = all(x.bits_ok for runs in r.batch.values() for x in runs)
    notes = [
        f"Events: `{EVENT}` by a random id among {plan.users:,} users ({r.distinct_ids:,} "
        f"distinct), at a random second of {DAYS} days from {START:%Y-%m-%d} (2 months, 5 ISO "
        "weeks, 30 days), in random order: 3 bits per event (month, ISO week, day), "
        f"{r.expected_bits:,} distinct bits in all. bitlens also sets the shard's universe "
        "bit: 4 bits per event, 33% more than the raw client's 3.",
        f"Median of {plan.repeats} run(s) per row, the rows taking turns; every run starts on an "
        "empty server (FLUSHALL) and is checked afterwards (BITCOUNT of every key = the "
        f"distinct bits): {'all correct' if ok else 'SOME WRONG: see stderr'}.",
        "**raw**: the same month/week/day SETBITs (bitmapist's keys and offsets) pre-packed as "
        "RESP before timing, then sent over one plain socket in pipelines of 128, each "
        "pipeline's replies read before the next is sent (what `redis-benchmark -P 128 -c 1` "
        "does). events/s = events / seconds; 'vs raw' is the issue's ratio (bitlens events/s "
        "over raw SETBITs/s ÷ 3).",
        f"**bitlens**: `await tracker.mark_events(events)`, chunks of {plan.chunk:,} events, "
        "each one MULTI/EXEC round trip, one chunk in flight while the next is validated and "
        "grouped (the events are prepared as `(event, id, aware UTC datetime)` tuples before "
        "timing).",
        "CPU: client = this process's CPU time during the run; server = `used_cpu_user + "
        "used_cpu_sys` of `INFO cpu`. Client and server run on different cores, so a side "
        "whose wall time is close to its client CPU is client-bound.",
    ]
    if b.loop is not None:
        notes.append(
            "bitmapist has no batch API: its rows time a sample of the same events from empty "
            "keys; * = scaled to the full event count. " + b.versions + "."
        )
    elif b.failure:
        notes.append(f"bitmapist not measured: {b.failure}")
    if r.redis_benchmark_note:
        notes.append(r.redis_benchmark_note)
    return _section(
        f"Batch ingest: {plan.events:,} events vs the raw SETBIT limit (redis-server {r.server})",
        [table],
        notes,
    )


def _render_grouping(r: IngestResults) -> Block:
    plan = r.plan
    rows = []
    for name in (
        "bitlens",
        "bitlens-bitfield",
        "bitlens-setbit",
        "raw",
        "bitlens-sorted",
        "bitlens-bitfield-sorted",
        "raw-sorted",
    ):
        runs = r.batch[name]
        rate = r.median_rate(name)
        mid = sorted(runs, key=lambda x: x.rate)[len(runs) // 2]
        base = r.median_rate("bitlens-sorted" if name.endswith(SORTED) else "bitlens")
        rows.append(
            [
                BATCH_VARIANTS[name],
                f"**{_rate(rate)}**{_spread([x.rate for x in runs])}",
                f"{rate / base:.2f}",
                f"{mid.server_usec / 1e6:.2f} s",
                f"{mid.server_cpu:.2f} s",
                f"{mid.client_cpu:.2f} s",
                _commands(mid.commands, mid.events, plan.events),
            ]
        )
    table = md_table(
        [
            f"grouping ({plan.events:,} events)",
            "events/s (median; min - max)",
            "vs bitlens default",
            "server command time",
            "server CPU",
            "client CPU",
            "commands sent",
        ],
        rows,
    )
    best = max(("bitlens", "bitlens-bitfield", "bitlens-setbit"), key=r.median_rate)
    best_sorted = max(("bitlens-sorted", "bitlens-bitfield-sorted"), key=r.median_rate)
    sorted_ratio = r.median_rate("bitlens-sorted") / r.median_rate("raw-sorted")
    notes = [
        "The same events and bits, the same keys and the same executor (one MULTI/EXEC per "
        "chunk of 10,000 events); only the commands each key's bits become differ: the "
        "default `mark_events` (one `SETBIT` for a lone bit, one `BITFIELD ... SET u1 o 1 ...` "
        "for a few, a byte image `SETRANGE`+`BITOP OR`+`DEL` once a key gets at least one "
        "bit per 1 KiB of its 128 KiB shard bitmap), BITFIELD only, or one `SETBIT` per bit. "
        "The last two build their commands in the benchmark (`benchmarks/common.py`, plain "
        "arguments, no validation) and send them through bitlens' executor.",
        "Server command time: the `usec` of `INFO commandstats` (MULTI/EXEC left out; EXEC's "
        "includes its commands). Server CPU also counts reading and parsing requests.",
        "The forced-SETBIT row is bound by the client, not Redis: bitlens' executor reads its "
        "~40,000 replies per chunk one parser call at a time; compare its server CPU with the "
        "default's.",
        "Time order: the same events sorted by time, as when a log is replayed: each chunk "
        "of 10,000 events then covers about 45 minutes, so a day's bits arrive together and "
        f"become byte images. bitlens default vs raw in time order: {sorted_ratio:.2f}. "
        "'vs bitlens default' compares with the bitlens default on the same order.",
        f"Fastest here, random order: **{BATCH_VARIANTS[best]}**; time order: "
        f"**{BATCH_VARIANTS[best_sorted]}**.",
        f"Runs per row: {plan.repeats} ({plan.setbit_repeats} for the forced-SETBIT row, "
        "which takes about 10x longer).",
    ]
    return _section(
        f"Batch ingest: SETBIT vs BITFIELD vs byte images (redis-server {r.server})", [table], notes
    )


def _render_bursts(r: IngestResults) -> Block:
    plan = r.plan
    rows = []
    labels = {
        "plain": "bitlens `mark_event`",
        "coalesce": "bitlens `coalesce=True`",
        "noop": f"floor: {plan.tasks:,} tasks that do nothing",
    }
    for harness in HARNESSES:
        suffix = "" if harness == "tasks" else f"-{harness}"
        plain = r.bursts[f"plain{suffix}"]
        floor = r.bursts[f"noop{suffix}"]
        where = "asyncio tasks" if harness == "tasks" else "anyio task group"
        for kind, label in labels.items():
            burst = r.bursts[kind + suffix]
            ratio = burst.rate / plain.rate
            goal = "info"
            if kind == "coalesce":
                if harness == "tasks":
                    goal = f"≥ {GOAL_COALESCE:.0f}x: {_check(ratio >= GOAL_COALESCE)}"
                else:  # no tracker can beat the task group's own floor
                    goal = f"info (ceiling {floor.rate / plain.rate:.1f}x)"
            elif kind == "plain":
                goal = ""
            latency = kind != "noop"
            rows.append(
                [
                    f"{label}, {where}",
                    f"**{_rate(burst.rate)}**{_spread([plan.tasks / w for w in burst.walls])}"
                    if latency
                    else f"{_rate(burst.rate)}{_spread([plan.tasks / w for w in burst.walls])}",
                    _us(_pct(burst.latencies, 0.5)) if latency else "",
                    _us(_pct(burst.latencies, 0.99)) if latency else "",
                    f"{burst.round_trips:,.1f}",
                    f"{ratio:.1f}x" if latency else "",
                    goal,
                ]
            )
    plain = r.bursts["plain"]
    b = r.bitmapist.bursts
    if b is not None:
        rows.append(
            [
                f"bitmapist {BITMAPIST_VERSION} `mark_event` (sync: {plan.tasks:,} calls one "
                "after another)",
                f"{_rate(b.rate)}{_spread([plan.tasks / w for w in b.walls])}",
                _us(_pct(b.latencies, 0.5)),
                _us(_pct(b.latencies, 0.99)),
                f"{b.round_trips:,.0f}",
                f"{b.rate / plain.rate:.1f}x",
                "info",
            ]
        )
    table = md_table(
        [
            f"{plan.tasks:,} concurrent marks",
            "marks/s (median; min - max)",
            "p50 latency",
            "p99 latency",
            "round trips per burst",
            "vs plain",
            "goal",
        ],
        rows,
    )
    notes = [
        f"Each burst starts {plan.tasks:,} tasks at once, each awaiting one "
        "`tracker.mark_event('active', id, at)` (different ids and times per burst): asyncio "
        "tasks made with `loop.create_task` and awaited with `asyncio.gather` (uvicorn and "
        "aiohttp run each request in such a task), or an anyio task group. Throughput = "
        f"{plan.tasks:,} / the burst's wall time, median of {plan.bursts} bursts per row after "
        f"{plan.burst_warmup} warm-up burst(s), the rows' bursts taking turns. Latency: per "
        "call, from just before the `await` to its return, pooled over the bursts.",
        "Plain calls: one MULTI/EXEC round trip each; redis-py's pool allows 100 connections, "
        "bitlens' executor queues the callers beyond (no MaxConnectionsError). Coalescing: "
        "concurrent calls share batches (a leader waits up to 2 ms or 1,000 marks), each "
        "call still returning only once its mark is written.",
        "The floor rows time the same bursts with tasks that do nothing: starting and "
        f"finishing {plan.tasks:,} tasks is part of every burst's wall time. An anyio task "
        "group costs about 4x more per task than plain asyncio tasks, so even a coalescing "
        "tracker that cost nothing could not exceed plain's throughput over the floor's "
        "(the ceiling in the goal column). The goal is judged on asyncio tasks, the way "
        "web servers run request handlers.",
    ]
    return _section(f"{plan.tasks:,} concurrent marks (redis-server {r.server})", [table], notes)


def _render_single(r: IngestResults) -> Block:
    plan = r.plan
    bare = r.single["bare4"].median
    rows = []
    labels = {
        "bitlens": "bitlens `await tracker.mark_event(...)`",
        "bare4": "redis.asyncio `pipeline(transaction=True)`, the same 4 SETBITs",
        "bare3": "redis.asyncio `pipeline(transaction=True)`, 3 SETBITs (no universe)",
    }
    for name, label in labels.items():
        s = r.single[name]
        ratio = s.median / bare
        goal = ""
        if name == "bitlens":
            goal = (
                f"≤ {GOAL_SINGLE}: {_check(ratio <= GOAL_SINGLE)}; "
                f"≤ {LIMIT_SINGLE}: {_check(ratio <= LIMIT_SINGLE)}"
            )
        rows.append(
            [
                label,
                f"**{_us(s.median)}** ({_us(_pct(s.samples, 0.1))} - {_us(_pct(s.samples, 0.9))})",
                _us(s.cpu),
                f"{ratio:.2f}",
                goal,
            ]
        )
    b = r.bitmapist.single
    if b is not None:
        rows.append(
            [
                f"bitmapist {BITMAPIST_VERSION} `mark_event` (sync, redis-py 5, MULTI/EXEC of 3)",
                f"{_us(b.median)} ({_us(_pct(b.samples, 0.1))} - {_us(_pct(b.samples, 0.9))})",
                _us(b.cpu),
                f"{b.median / bare:.2f}",
                "info",
            ]
        )
    table = md_table(
        ["one mark alone", "median latency (p10 - p90)", "client CPU per call", "vs bare", "goal"],
        rows,
    )
    notes = [
        f"{plan.single:,} sequential calls per row after {plan.single_warmup} warm-up calls, "
        "the rows taking turns in blocks of 100. The bare pipelines set the very keys and "
        "offsets bitlens sets (month, ISO week, day, and the shard's universe), their key "
        "names built before timing. bitlens sends MULTI, the SETBITs, an SADD of the shard "
        "registry, and EXEC in one write on a pooled connection.",
        "Client CPU per call: this process's CPU time over the calls / calls; the rest of "
        "the latency is the round trip (two cross-core wake-ups) and Redis. On this VM the "
        "CPU time also counts some of the wait, so it can exceed the median.",
        "bitmapist's row is synchronous redis-py 5 (its own process): a blocking socket "
        "round trip costs less client CPU than any asyncio client's.",
    ]
    return _section(f"One mark alone (redis-server {r.server})", [table], notes)


@dataclass(frozen=True)
class Block:
    """One report section, shaped like ``run.py``'s ``Section(title, intro, tables, notes)``."""

    title: str
    tables: list[str]
    notes: list[str]

    def markdown(self) -> str:
        """The section as Markdown, under a ``##`` heading."""
        parts = [f"## {self.title}", *self.tables, "\n".join(f"- {n}" for n in self.notes)]
        return "\n\n".join(parts) + "\n"


def _section(title: str, tables: Sequence[str], notes: Sequence[str]) -> Block:
    return Block(title, list(tables), list(notes))


# -------------------------------------------------------------------------------------------
# Standalone
# -------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ingest benchmarks on each server; print Markdown on stdout."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="benchmarks/ingest_bench.py", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20k events, 1 repetition")
    parser.add_argument("--server", action="append", metavar="PATH", help="redis-server binary")
    parser.add_argument("--all-servers", action="store_true", help="every redis-server found")
    parser.add_argument("--no-bitmapist", action="store_true", help="skip bitmapist")
    parser.add_argument("--bitmapist-python", metavar="PATH", help="a python with bitmapist")
    parser.add_argument("--users", type=int, default=1_000_000, help="ids 0..N-1")
    args = parser.parse_args(argv)
    binaries = list(args.server or [find_redis_server()])
    if args.all_servers:
        binaries += [b for b in find_redis_servers() if b not in binaries]
    can_pin = pin_client()
    if not can_pin:
        log("warning: CPUs 0 and 1 are not both usable; running unpinned (noisy)")
    command = shlex.join(["python", "benchmarks/ingest_bench.py", *argv])
    workload: Workload | None = None
    failed = False
    for binary in binaries:
        server = start_server(binary, can_pin)
        log(f"== ingest on {binary} (port {server.port})")
        try:
            if workload is None:
                plan = Plan.make(quick=args.quick, users=args.users)
                workload = Workload.make(plan.events, args.users)
            results = asyncio.run(
                measure_ingest(
                    server.host,
                    server.port,
                    quick=args.quick,
                    users=args.users,
                    bitmapist=not args.no_bitmapist,
                    bitmapist_python=args.bitmapist_python,
                    workload=workload,
                )
            )
        finally:
            server.stop()
        print("\n".join(render(results, command=command)), flush=True)
        wrong = [name for name, runs in results.batch.items() if not all(x.bits_ok for x in runs)]
        if wrong:  # a figure of a wrong result means nothing: fail (nox -s bench_smoke)
            log(f"error: {', '.join(wrong)} left other bits than expected on {binary}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
