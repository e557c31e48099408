"""Scale-out: one count over 30M ids on a 2-master cluster beside the same data on one master.

Run it as a script::

    python benchmarks/scaleout_bench.py [--quick] [--server PATH] [--output PATH]

The same month bitmaps (30,000,000 ids: 29 shards of 2**20 ids, two months of 50% density
and their universe) are written, as whole shard images, to one private redis-server and to
a private cluster of 2 masters without replicas. On a machine with two usable CPUs the
standalone server and the cluster's first master are pinned to CPU 0, the second master to
CPU 1, so the cluster's two masters really work in parallel; the client is not pinned (it
shares the two CPUs with the servers, the same on both sides). The sides take turns, query
by query; each figure is a median of the same run.

Each count is one round trip per master holding shards (bitlens runs the masters' script
calls in parallel). The server time of a query (``INFO commandstats``, summed over the
masters) is also measured, and with it the table projects the wall clock on more masters
on separate cores: the client and network part stays, the largest master's share of the
server work shrinks with the number of masters (its share of the shards).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common import (  # beside this file
    SEED,
    EmbeddedCluster,
    EmbeddedRedis,
    log,
    median,
    newest_server,
    table,
    usable_cpus,
)
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from bitlens import Expr, Month, MonthEvents, Tracker

if TYPE_CHECKING:
    from collections.abc import Sequence

UTC = dt.timezone.utc
SHARD = 1 << 20
A, B = MonthEvents("active", 2026, 10), MonthEvents("active", 2026, 11)
QUERIES: dict[str, Expr] = {"count(M)": B, "count(M1 & M2)": A & B}
PROJECT_TO = (3, 4)


@dataclass(frozen=True)
class Scale:
    """How big and how long: ``quick`` shrinks everything."""

    ids: int
    runs: int
    warmup: int


FULL = Scale(30_000_000, 200, 10)
QUICK = Scale(3 * SHARD, 5, 2)
"""Seconds: checks that every part runs and answers right, measures nothing."""


Images = list[tuple[bytes, bytes]]
"""Per shard, the images of the two months."""
Cells = dict[tuple[str, str], Any]
"""Per (side, query), a figure."""


async def _write(client: Redis | RedisCluster, tracker: Tracker, images: Images) -> None:
    """Write the two months and the universe of every shard, and the shard registry."""
    schema = tracker.schema
    for shard, (a, b) in enumerate(images):
        universe = bytes(x | y for x, y in zip(a, b, strict=True))
        await client.set(schema.event_key("active", Month(2026, 10), shard), a)
        await client.set(schema.event_key("active", Month(2026, 11), shard), b)
        await client.set(schema.universe_key(shard), universe)
    await client.sadd(schema.registry_key, *range(len(images)))


def _images(ids: int) -> list[tuple[bytes, bytes]]:
    """Random shard images of two months over ``ids`` ids (the last shard partly filled)."""
    rng = random.Random(SEED)
    images: Images = []
    for lo in range(0, ids, SHARD):
        size = min(SHARD, ids - lo) // 8
        images.append((rng.randbytes(size), rng.randbytes(size)))
    return images


def _expected(images: Images) -> dict[str, int]:
    """The counts, from the images themselves."""
    month = sum(int.from_bytes(b, "big").bit_count() for _, b in images)
    both = sum((int.from_bytes(a, "big") & int.from_bytes(b, "big")).bit_count() for a, b in images)
    return {"count(M)": month, "count(M1 & M2)": both}


TOP_LEVEL = ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_scard")
"""The commands a count sends; the script's own commands are inside its call's time."""


def _server_usec(stats: dict[str, Any]) -> float:
    """Total µs of the commands a count sends, from an ``INFO commandstats`` reply.

    The ``BITOP``/``BITCOUNT``/``DEL`` a script runs are listed too, but their time is
    already inside the ``EVALSHA``'s: only the commands sent are summed.
    """
    return sum(
        float(value["usec"])
        for key, value in stats.items()
        if key in TOP_LEVEL and isinstance(value, dict)
    )


async def _measure(
    trackers: dict[str, Tracker],
    resets: dict[str, list[Redis]],
    scale: Scale,
) -> tuple[
    dict[tuple[str, str], list[float]], dict[tuple[str, str], float], dict[tuple[str, str], int]
]:
    """Time every query on every side, taking turns; return samples, server µs, answers."""
    samples: Cells = {}
    server: Cells = {}
    answers: Cells = {}
    for query, expr in QUERIES.items():
        for side, tracker in trackers.items():
            for _ in range(scale.warmup):
                answers[side, query] = await tracker.count(expr)
            for node in resets[side]:
                await node.config_resetstat()
            samples[side, query] = []
        for _ in range(scale.runs):
            for side, tracker in trackers.items():
                began = time.perf_counter()
                answers[side, query] = await tracker.count(expr)
                samples[side, query].append(time.perf_counter() - began)
        for side in trackers:
            total = 0.0
            for node in resets[side]:
                total += _server_usec(await node.info("commandstats"))
            server[side, query] = total / scale.runs
    return samples, server, answers


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.2f} ms"


def _report(
    samples: Cells,
    server: Cells,
    largest_share: float,
    shards: int,
    per_master: list[int],
    pinned: bool,
    quick: bool,
    binary: str,
) -> str:
    """The Markdown table and its notes."""
    rows: list[list[str]] = []
    for query in QUERIES:
        alone = median(samples["one master", query])
        two = median(samples["2 masters", query])
        work = server["one master", query] / 1e6  # seconds of server work per query
        rest = max(0.0, two - work * largest_share)  # what does not shrink with masters
        projected = [alone / (rest + work / n) for n in PROJECT_TO]
        rows.append(
            [
                f"`{query}`",
                _ms(alone),
                f"{server['one master', query]:,.0f} µs",
                _ms(two),
                f"{server['2 masters', query]:,.0f} µs",
                f"**{alone / two:.2f}x**",
                " / ".join(f"{value:.2f}x" for value in projected),
            ]
        )
    header = [
        "query",
        "one master",
        "server µs",
        "2 masters, own cores",
        "server µs (both)",
        "speed-up",
        f"projected on {' / '.join(map(str, PROJECT_TO))} masters",
    ]
    where = (
        "the standalone server and the first master on CPU 0, the second master on CPU 1, "
        "the client unpinned"
        if pinned
        else "NOT pinned (CPUs 0 and 1 not both usable): the masters may share a core"
    )
    return "\n".join(
        [
            f"## Scale-out on a cluster{' (--quick: not representative)' if quick else ''}",
            "",
            f"{dt.datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, {where}; "
            f"`{binary}`. {shards} shards of 2^20 ids ({' + '.join(map(str, per_master))} "
            "on the two masters), medians of the sides taking turns.",
            "",
            table(header, rows),
            "",
            "- speed-up: one master's median over the cluster's. Server µs: `INFO "
            "commandstats` per query, summed over the masters.",
            "- Projection: the cluster's wall clock less the largest master's share of the "
            f"server work ({largest_share:.0%} of it here) is the part that stays (client, "
            "round trip, the slowest master's wake-up); on n masters on separate cores the "
            "server work is split n ways, so the projected speed-up is one master's time "
            "over that part plus 1/n of the server work.",
            "",
        ]
    )


async def run_scaleout_bench(*, quick: bool, binary: str | None = None) -> str:
    """Run the benchmark; return its Markdown.

    :param quick: small data and few runs, to check that the benchmark works
    :param binary: the redis-server to run; the newest found if ``None``
    """
    scale = QUICK if quick else FULL
    binary = binary or newest_server()
    pinned = usable_cpus()
    images = _images(scale.ids)
    expected = _expected(images)
    with (
        EmbeddedRedis(binary, cpu=0 if pinned else None) as server,
        EmbeddedCluster(binary, masters=2, replicas=0) as cluster,
    ):
        masters = cluster.masters()
        if pinned:
            for cpu, node in enumerate(masters):
                if node.pid is not None:
                    os.sched_setaffinity(node.pid, {cpu})
        timeout = 60.0 if quick else 5.0
        standalone = Redis.from_url(server.url, socket_timeout=timeout)
        clustered = RedisCluster.from_url(cluster.url, socket_timeout=timeout)
        admins = [Redis(host=node.host, port=node.port) for node in masters]
        try:
            await clustered.initialize()
            trackers = {
                "one master": Tracker(standalone, prefix="scale"),
                "2 masters": Tracker(clustered, prefix="scale"),
            }
            log(f"scale-out: writing {len(images)} shards to both sides")
            for side, tracker in trackers.items():
                await _write(standalone if side == "one master" else clustered, tracker, images)
            schema = trackers["2 masters"].schema
            owners = [
                clustered.get_node_from_key(schema.universe_key(shard))
                for shard in range(len(images))
            ]
            ports = [owner.port if owner is not None else 0 for owner in owners]
            per_master = [ports.count(node.port) for node in masters]
            log("scale-out: timing")
            samples, used, answers = await _measure(
                trackers, {"one master": [standalone], "2 masters": admins}, scale
            )
            for (side, query), answer in answers.items():
                if answer != expected[query]:  # a figure of a wrong answer means nothing
                    raise RuntimeError(f"{side} counted {query} as {answer}, not {expected[query]}")
            for tracker in trackers.values():
                await tracker.aclose()
        finally:
            await standalone.aclose()
            await clustered.aclose()
            for admin in admins:
                await admin.aclose()
    largest = max(per_master) / max(1, sum(per_master))
    return _report(samples, used, largest, len(images), per_master, pinned, quick, binary)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark from the command line and print (or write) the Markdown."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small data, few runs")
    parser.add_argument("--server", help="redis-server binary (default: the newest found)")
    parser.add_argument("--output", type=Path, help="also write the Markdown to this file")
    args = parser.parse_args(argv)
    text = asyncio.run(run_scaleout_bench(quick=args.quick, binary=args.server))
    print(text)
    if args.output is not None:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
