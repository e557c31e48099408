"""Single operations beside bitmapist and the asyncio floor: contains, one mark, count(a & b).

    python benchmarks/single_bench.py [--quick] [--server PATH] [--no-bitmapist] [--output PATH]

What a web handler does most is one operation at a time. Each is timed three ways on the
same pinned server (redis-server on CPU 0, every client on CPU 1) and the same data, the
sides taking turns in rounds:

* **bitlens**: ``await tracker.contains(...)``, ``await tracker.mark_event(...)``,
  ``await tracker.count(a & b)``;
* **the asyncio floor**: a minimal hand-written asyncio client (one connection,
  ``asyncio.open_connection`` and hiredis' reader) sending exactly the commands bitlens
  sends for the operation (captured from bitlens' executor), in one write, reading the
  replies — what any asyncio library needs at least;
* **bitmapist 3.119** (sync, redis-py 5, in its own venv): ``uid in MonthEvents(...)``,
  ``mark_event(...)``, ``len(BitOpAnd(...))`` (a ``BITOP`` then a ``BITCOUNT``).

Latency is the median of every timed call; client CPU is ``process_time`` per call. No
figure is asserted: ``--quick`` (tiny data, few calls) checks that it runs and that all
sides agree on the answers.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import random
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hiredis
import redis.asyncio
from common import (  # beside this file
    SEED,
    count_script,
    count_script_sha,
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

from bitlens import Month, MonthEvents, Tracker

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from bitlens._writes import Command

AT = dt.datetime(2026, 11, 15, 12, tzinfo=dt.timezone.utc)
"""When the single marks happen (bitmapist's side marks the same moment)."""

WORKLOADS = ("contains", "mark_event", "count(a & b)")
BITMAPIST_NAMES = {"contains": "contains", "mark_event": "mark_event", "count(a & b)": "M1 & M2"}
"""Each workload's name in ``bitmapist_side.py`` (whose ``M1 & M2`` is ``a & b`` here)."""


# -- the floor: a minimal asyncio client ---------------------------------------------------


def _pack(commands: Sequence[Command]) -> bytes:
    """RESP arrays of bulk strings, the plainest encoder there is."""
    out = bytearray()
    for command in commands:
        out += b"*%d\r\n" % len(command)
        for arg in command:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            out += b"$%d\r\n%s\r\n" % (len(data), data)
    return bytes(out)


class FloorClient:
    """One connection, one write per operation, hiredis parsing the replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._parser = hiredis.Reader()

    @classmethod
    async def connect(cls, host: str, port: int) -> FloorClient:
        """Open the connection."""
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def send(self, packed: bytes, replies: int) -> list[Any]:
        """Write ``packed`` and read ``replies`` replies."""
        self._writer.write(packed)
        out: list[Any] = []
        parser = self._parser
        while len(out) < replies:
            reply = parser.gets()
            if reply is False:
                parser.feed(await self._reader.read(65536))
                continue
            out.append(reply)
        return out

    async def aclose(self) -> None:
        """Close the connection."""
        self._writer.close()
        await self._writer.wait_closed()


class _Capture:
    """A round-trip observer that keeps the wire of the round trips it sees."""

    def __init__(self) -> None:
        self.wires: list[list[Command]] = []

    def round_trip(self, wire: Sequence[Command], connection: object) -> Any:
        """Keep ``wire``; time nothing."""
        self.wires.append(list(wire))
        return _Nothing()


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _as_evalsha(wire: Sequence[Command]) -> list[Command]:
    """The wire with every EVAL of the count script sent as EVALSHA, as bitlens sends it."""
    sha, script = count_script_sha(), count_script()
    return [
        ("EVALSHA", sha, *command[2:]) if command[:2] == ("EVAL", script) else command
        for command in wire
    ]


# -- timing -----------------------------------------------------------------------------


async def _time(op: Callable[[int], Awaitable[object]], calls: int) -> tuple[list[float], float]:
    """Run ``op`` ``calls`` times after a warm-up; return the latencies and CPU per call."""
    for i in range(min(200, calls)):
        await op(i)
    gc.collect()
    samples: list[float] = []
    cpu = time.process_time()
    for i in range(calls):
        t0 = time.perf_counter()
        await op(i)
        samples.append(time.perf_counter() - t0)
    return samples, (time.process_time() - cpu) / calls


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs"


async def _prepare(url: str, ids: int) -> tuple[bytes, bytes]:
    """Write the same random months in both layouts; return their images."""
    rng = random.Random(SEED)
    a, b = rng.randbytes(ids // 8), rng.randbytes(ids // 8)
    client = redis.asyncio.Redis.from_url(url)
    async with Tracker(client, prefix="bl") as tracker:
        schema = tracker.schema
        universe = bytes(x | y for x, y in zip(a, b, strict=True))
        await client.set(schema.event_key("active", Month(2026, 10), 0), a)
        await client.set(schema.event_key("active", Month(2026, 11), 0), b)
        await client.set(schema.universe_key(0), universe)
        await client.sadd(schema.registry_key, 0)
    await client.set("trackist_active_2026-10", a)
    await client.set("trackist_active_2026-11", b)
    await client.aclose()
    return a, b


async def _round(
    url: str, host: str, port: int, calls: int, results: dict[str, dict[str, list[Any]]]
) -> dict[str, int]:
    """One round of the bitlens and floor sides; return bitlens' answers."""
    a, b = MonthEvents("active", 2026, 10), MonthEvents("active", 2026, 11)
    both = a & b
    answers: dict[str, int] = {}
    async with Tracker(url, prefix="bl") as tracker:
        answers["count(a & b)"] = await tracker.count(both)  # learns capabilities, loads script
        executor = executor_of(tracker)
        capture = _Capture()
        executor.observer = capture
        await tracker.contains(b, 13)
        await tracker.mark_event("single", 17, AT)
        await tracker.count(both)
        executor.observer = None
        contains_wire, mark_wire, count_wire = (_as_evalsha(w) for w in capture.wires)
        bitlens_ops: dict[str, Callable[[int], Awaitable[object]]] = {
            "contains": lambda i: tracker.contains(b, i * 13 % 1_000_000),
            "mark_event": lambda i: tracker.mark_event("single", i * 17 % 1_000_000, AT),
            "count(a & b)": lambda i: tracker.count(both),
        }
        for name, op in bitlens_ops.items():
            samples, cpu = await _time(op, calls)
            results[name]["bitlens"] += samples
            results[name]["bitlens_cpu"].append(cpu)
    floor = await FloorClient.connect(host, port)
    try:
        sends = {
            name: (_pack(wire), len(wire))
            for name, wire in zip(WORKLOADS, (contains_wire, mark_wire, count_wire), strict=True)
        }
        # The floor sends bitlens' very commands (the contains and mark of id 13 / 17 each
        # time: the same work for the server, a GETBIT or SETBITs of one offset).
        for name in WORKLOADS:
            packed, replies = sends[name]

            def send(_: int, packed: bytes = packed, replies: int = replies) -> Awaitable[object]:
                return floor.send(packed, replies)

            samples, cpu = await _time(send, calls)
            results[name]["floor"] += samples
            results[name]["floor_cpu"].append(cpu)
        reply = await floor.send(*sends["count(a & b)"])
        answers["floor count(a & b)"] = int(reply[-1][0])
    finally:
        await floor.aclose()
    return answers


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print (and write) its Markdown report."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, few calls")
    parser.add_argument("--server", default=None, help="redis-server binary")
    parser.add_argument("--no-bitmapist", action="store_true", help="skip bitmapist")
    parser.add_argument("--calls", type=int, default=None, help="timed calls per side and round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of all sides")
    parser.add_argument("--output", type=Path, default=None, help="also write the Markdown here")
    args = parser.parse_args(argv)
    ids = 80_000 if args.quick else 1_000_000
    calls = args.calls or (50 if args.quick else 2000)
    rounds = args.rounds or (1 if args.quick else 3)
    binary = args.server or newest_server()
    results: dict[str, dict[str, list[Any]]] = {
        name: {"bitlens": [], "bitlens_cpu": [], "floor": [], "floor_cpu": [], "bitmapist": []}
        for name in WORKLOADS
    }
    bitmapist_cpu: dict[str, list[float]] = {name: [] for name in WORKLOADS}
    with pinned() as pin:
        server = start_server(binary, pin)
        try:
            url = server.url
            a, b = asyncio.run(_prepare(url, ids))
            expected = sum(bin(x & y).count("1") for x, y in zip(a, b, strict=True))
            for r in range(rounds):
                log(f"single: round {r + 1} of {rounds}")
                answers = asyncio.run(_round(url, server.host, server.port, calls, results))
                if answers["count(a & b)"] != expected or answers["floor count(a & b)"] != expected:
                    raise SystemExit(f"wrong count: {answers} (expected {expected})")
                if args.no_bitmapist:
                    continue
                report = run_side(
                    "bitmapist_side.py",
                    [
                        "--host", server.host, "--port", str(server.port),
                        "--iterations", str(calls), "--warmup", str(min(200, calls)),
                        "--max-seconds", "60",
                        "--workloads", *BITMAPIST_NAMES.values(),
                    ],
                )  # fmt: skip
                for name, theirs in BITMAPIST_NAMES.items():
                    got = report["workloads"][theirs]
                    results[name]["bitmapist"] += got["samples"]
                    bitmapist_cpu[name].append(got["cpu"])
                    if name == "count(a & b)" and got["count"] != expected:
                        raise SystemExit(f"bitmapist counted {got['count']}, not {expected}")
            version = server_version(binary)
        finally:
            server.stop()
    header = [
        "operation",
        "bitlens",
        "asyncio floor (same commands)",
        "bitlens / floor",
        "bitmapist 3.119",
        "bitlens / bitmapist",
        "client CPU per call (bitlens / floor / bitmapist)",
    ]
    rows = []
    for name in WORKLOADS:
        got = results[name]
        ours, floor = median(got["bitlens"]), median(got["floor"])
        lo, hi = spread(got["bitlens"])
        mine = median(got["bitmapist"]) if got["bitmapist"] else None
        cpu = (median(got["bitlens_cpu"]), median(got["floor_cpu"]))
        their_cpu = median(bitmapist_cpu[name]) if bitmapist_cpu[name] else None
        rows.append(
            [
                f"`{name}`",
                f"**{_us(ours)}** ({_us(lo)} - {_us(hi)})",
                _us(floor),
                f"{ours / floor:.2f}",
                _us(mine) if mine is not None else "—",
                f"{ours / mine:.2f}" if mine is not None else "—",
                " / ".join([_us(cpu[0]), _us(cpu[1]), _us(their_cpu) if their_cpu else "—"]),
            ]
        )
    lines = [
        f"## Single operations (redis-server {'.'.join(map(str, version))})",
        "",
        f"{calls:,} timed calls per side and round, {rounds} round(s), sides taking turns; "
        f"{ids:,} ids, two month bitmaps of 50% density; medians (p10 - p90).",
        "",
        table(header, rows),
        "",
        "- The floor sends, on one connection, exactly the commands bitlens sends for the "
        "operation (captured from its executor: `GETBIT`; `MULTI`, the `SETBIT`s, `SADD`, "
        "`EXEC`; `SCARD` and `EVALSHA`), packed by a plain RESP encoder and read by hiredis.",
        "- bitmapist's `count(a & b)` is `len(BitOpAnd(a, b))`: a `BITOP` round trip, then "
        "a `BITCOUNT` one.",
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
