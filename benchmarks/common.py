"""What every benchmark shares: servers, CPU pinning, timing, medians, tables, bitmapist.

``run.py``, ``ingest_bench.py``, ``cluster_bench.py``, ``scaleout_bench.py``,
``single_bench.py`` and ``soak.py`` import this module (it sits beside them); the
``bitmapist_*_side.py`` scripts do not: they run in bitmapist's own venv, without bitlens.

It is also the one seam between the benchmarks and bitlens' internals: the grouping
variants of the ingest benchmark (:func:`send_bit_commands`) send commands they build
themselves through bitlens' executor, to compare only how bits become commands; the
single-operation benchmark captures the commands a tracker sends (:func:`executor_of`) to
replay them on its minimal asyncio client. Those package-internal names are imported here
and nowhere else, so a change inside bitlens breaks one function, in one place; everything
else the benchmarks do goes through the public API.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bitmapist_env import BITMAPIST_VERSION, ensure_bitmapist_venv  # beside this file

from bitlens import Day
from bitlens._execute import Executor  # the seam (see the module docstring)
from bitlens._plan import COUNT_SCRIPT
from bitlens._tracker import parts
from bitlens.embedded import EmbeddedRedis, find_redis_server, server_version

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT / "tests") not in sys.path:  # the test harness: the cluster builder, the search
    sys.path.insert(0, str(ROOT / "tests"))

from harness import EmbeddedCluster, find_redis_servers  # noqa: E402  (needs the path above)

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable, Iterator, Sequence

    from redis.asyncio import Redis

    from bitlens import KeySchema, Period, Tracker

__all__ = [
    "BITMAPIST_VERSION",
    "CLIENT_CPU",
    "HERE",
    "ROOT",
    "SEED",
    "SERVER_CPU",
    "EmbeddedCluster",
    "EmbeddedRedis",
    "command",
    "count_script",
    "count_script_sha",
    "cpu_model",
    "dist_version",
    "executor_of",
    "ensure_bitmapist_venv",
    "find_redis_server",
    "find_redis_servers",
    "log",
    "median",
    "newest_server",
    "pin_client",
    "pinned",
    "run_side",
    "send_bit_commands",
    "server_version",
    "spread",
    "start_server",
    "table",
    "usable_cpus",
]

SERVER_CPU = 0
"""The CPU every private redis-server is pinned to."""
CLIENT_CPU = 1
"""The CPU the benchmark process (and every helper process it starts) is pinned to."""
SEED = 20261127
"""The seed of every random workload, so every run measures the same data."""


def log(message: str) -> None:
    """Print progress to stderr (stdout carries the Markdown).

    :param message: the line to print
    """
    print(message, file=sys.stderr, flush=True)


async def command(client: Redis, *args: str | int | bytes) -> Any:
    """Send one command (``Redis.execute_command`` is untyped in redis-py).

    :param client: the client
    :param args: the command and its arguments
    """
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


# -- machine and versions --------------------------------------------------------------------


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def dist_version(dist: str) -> str:
    """Return the installed version of a distribution, or ``not installed``.

    :param dist: the distribution name, e.g. ``redis``
    """
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def newest_server() -> str:
    """Return the newest redis-server binary found (see :func:`harness.find_redis_servers`)."""
    return max(find_redis_servers(), key=server_version)


# -- pinning ---------------------------------------------------------------------------------


def usable_cpus() -> bool:
    """Tell whether CPUs 0 and 1 are both usable, so server and client can be pinned apart."""
    return hasattr(os, "sched_getaffinity") and {SERVER_CPU, CLIENT_CPU} <= os.sched_getaffinity(0)


def pin_client() -> bool:
    """Pin this process to :data:`CLIENT_CPU` if CPUs 0 and 1 are usable; tell whether it did."""
    if not usable_cpus():
        return False
    os.sched_setaffinity(0, {CLIENT_CPU})
    return True


@contextlib.contextmanager
def pinned() -> Iterator[bool]:
    """Pin this process to :data:`CLIENT_CPU` while the block runs, if it can; restore after."""
    if not usable_cpus():
        yield False
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {CLIENT_CPU})
    try:
        yield True
    finally:
        os.sched_setaffinity(0, before)


def start_server(binary: str, pin: bool, args: Sequence[str] = ()) -> EmbeddedRedis:
    """Start a private redis-server, pinned to :data:`SERVER_CPU` when ``pin`` is set.

    ``EmbeddedRedis`` checks the CPU against this process's affinity, which may already be
    :data:`CLIENT_CPU` only: it is widened for the check, then pinned back.

    :param binary: the redis-server executable
    :param pin: pin the server (this process is, or is about to be, on :data:`CLIENT_CPU`)
    :param args: extra redis-server arguments
    """
    if not pin:
        server = EmbeddedRedis(binary, args=args)
        server.start()
        return server
    os.sched_setaffinity(0, {SERVER_CPU, CLIENT_CPU})
    try:
        server = EmbeddedRedis(binary, cpu=SERVER_CPU, args=args)
        server.start()
    finally:
        os.sched_setaffinity(0, {CLIENT_CPU})
    return server


# -- statistics and tables -------------------------------------------------------------------


def executor_of(tracker: Tracker) -> Executor:
    """The executor a tracker sends through (to watch its round trips).

    :param tracker: a tracker
    """
    return parts(tracker).executor


def count_script_sha() -> str:
    """The SHA1 a server knows bitlens' count script by (for ``EVALSHA``)."""
    return hashlib.sha1(COUNT_SCRIPT.encode()).hexdigest()


def count_script() -> str:
    """The source of bitlens' count script (what an ``EVAL`` of it carries)."""
    return COUNT_SCRIPT


def median(values: Sequence[float]) -> float:
    """Return the median.

    :param values: at least one sample
    """
    return statistics.median(values)


def spread(values: Sequence[float]) -> tuple[float, float]:
    """Return the 10th and 90th percentiles; the extremes when there are fewer than 10 values.

    :param values: at least one sample
    """
    if len(values) < 10:
        return min(values), max(values)
    deciles = statistics.quantiles(values, n=10)
    return deciles[0], deciles[-1]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Render a Markdown table.

    :param header: the column titles
    :param rows: the cells, already formatted
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# -- bitmapist, in its own venv --------------------------------------------------------------


def run_side(
    script: str,
    argv: Sequence[str],
    *,
    stdin: str | None = None,
    timeout: float = 900,
    python: str | None = None,
) -> dict[str, Any]:
    """Run one of the ``bitmapist_*_side.py`` scripts in bitmapist's venv; return its JSON.

    The script inherits this process's CPU affinity.

    :param script: the script's file name, beside this file
    :param argv: its arguments
    :param stdin: text to feed it on standard input
    :param timeout: how long it may run, in seconds
    :param python: a python with bitmapist 3.119 (default: bitmapist's venv, made on first use)
    :raises RuntimeError: if the venv cannot be made or the script fails
    """
    exe = python or str(ensure_bitmapist_venv())
    full = [exe, str(HERE / script), *argv]
    try:
        done = subprocess.run(
            full, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"`{shlex.join(full)}` failed: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        raise RuntimeError(f"{script} exited with {done.returncode}:\n{tail}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


# -- the grouping variants of the ingest benchmark -------------------------------------------


def _periods(at: dt.datetime) -> tuple[Period, ...]:
    """The periods a tracker with default options writes a mark to (no hours, UTC)."""
    day = Day(at.year, at.month, at.day)
    return (day.as_month(), day.as_week(), day)


async def send_bit_commands(
    client: Redis,
    schema: KeySchema,
    marks: Iterable[tuple[str, int, dt.datetime]],
    *,
    bitfield: bool,
    chunk: int,
) -> int:
    """Write ``marks`` as a default tracker would, with the commands built here; return them.

    Bits are grouped per key as bitlens groups them (every period of the default tracker,
    the shard's universe, the registry), but each key becomes one ``SETBIT`` per bit, or
    (``bitfield``) one ``BITFIELD key SET u1 o 1 ...`` (a lone bit stays a ``SETBIT``),
    never a byte image; every ``chunk`` marks go in one MULTI/EXEC through bitlens' own
    executor, as ``mark_events`` sends them. Only the grouping of the bits into commands
    differs from bitlens' default, so the benchmark compares just that.

    :param client: the server
    :param schema: the tracker's key schema
    :param marks: valid ``(event, user_id, at)`` marks, ``at`` in UTC
    :param bitfield: one BITFIELD per key instead of one SETBIT per bit
    :param chunk: marks per MULTI/EXEC
    """
    executor = Executor(client)
    pending: list[tuple[str, int, dt.datetime]] = []
    sent = 0
    for mark in marks:
        pending.append(mark)
        if len(pending) >= chunk:
            sent += await _send_chunk(executor, schema, pending, bitfield=bitfield)
            pending = []
    if pending:
        sent += await _send_chunk(executor, schema, pending, bitfield=bitfield)
    return sent


async def _send_chunk(
    executor: Executor,
    schema: KeySchema,
    marks: Sequence[tuple[str, int, dt.datetime]],
    *,
    bitfield: bool,
) -> int:
    """Group one chunk's bits per key and send them as one MULTI/EXEC; return the marks."""
    keys: dict[str, set[int]] = {}
    universe: dict[int, set[int]] = {}
    periods: dict[tuple[int, int, int], tuple[Period, ...]] = {}
    for event, uid, at in marks:
        day = (at.year, at.month, at.day)
        found = periods.get(day)
        if found is None:
            found = periods[day] = _periods(at)
        shard, bit = schema.shard_of(uid), schema.bit_of(uid)
        for period in found:
            keys.setdefault(schema.event_key(event, period, shard), set()).add(bit)
        universe.setdefault(shard, set()).add(bit)
    for shard, bits in universe.items():
        keys.setdefault(schema.universe_key(shard), set()).update(bits)
    commands: list[tuple[str | int, ...]] = []
    for key, bits in keys.items():
        ordered = sorted(bits)
        if bitfield and len(ordered) > 1:
            args: list[str | int] = ["BITFIELD", key]
            for offset in ordered:
                args += ["SET", "u1", offset, 1]
            commands.append(tuple(args))
        else:
            commands.extend(("SETBIT", key, offset, 1) for offset in ordered)
    commands.append(("SADD", schema.registry_key, *sorted(universe)))
    await executor.send(commands, transaction=True)
    return len(marks)
