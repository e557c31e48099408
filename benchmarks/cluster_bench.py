"""bitlens on Redis Cluster: ingest and query beside a standalone server, the hot spot of
sequential ids, and memory per marked id.

Run it as a script::

    python benchmarks/cluster_bench.py [--quick] [--output PATH]

or call ``await run_cluster_bench(quick=...)``, which returns the Markdown blocks.

One private standalone redis-server and one private cluster (3 masters with 1 replica each)
run the same binary (the newest found), all pinned to CPU 0 while this process runs on CPU 1
when both CPUs are usable (see FACTS.md: unpinned runs flip between same-core and cross-core
round trips). Every figure is a median of the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from common import (  # beside this file
    CLIENT_CPU,
    SEED,
    SERVER_CPU,
    EmbeddedCluster,
    EmbeddedRedis,
    median,
    newest_server,
    pinned,
    spread,
    usable_cpus,
)
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from bitlens import (
    Expr,
    IdMap,
    KeySchema,
    Limits,
    MonthEvents,
    ShardedSchema,
    Tracker,
    WeekEvents,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence


__all__ = ["StripedSchema", "run_cluster_bench"]

UTC = dt.timezone.utc
TODAY = dt.datetime(2026, 11, 27, 12, tzinfo=UTC)


@dataclass(frozen=True)
class Scale:
    """How big and how long: ``quick`` shrinks everything."""

    ingest_events: int
    ingest_runs: int
    query_runs: int
    hot_events: int
    random_ids: int
    dense_ids: int


FULL = Scale(300_000, 5, 300, 300_000, 10_000, 1_000_000)
QUICK = Scale(5_000, 1, 5, 5_000, 200, 20_000)
"""Seconds: checks that every part runs, measures nothing."""

ID_SPACE = 16 << 20
"""Ingest and query ids are drawn from 16 default shards of 2**20 ids."""

QUERY: Expr = (MonthEvents("active", 2026, 11) & WeekEvents("active", 2026, 47)) | (
    MonthEvents("purchase", 2026, 11) - MonthEvents("active", 2026, 10)
)
"""The depth-2 expression the query rows count."""


# -- a striped key schema (measured here only; see docs/cluster.md's hot spots) ---------------


@dataclass(frozen=True, slots=True)
class StripedSchema(ShardedSchema):
    """Range shards interleaved over ``stripes``: id ``i`` goes to stripe ``i % stripes``.

    Sequential ids then spread over ``stripes`` shards (hash tags, so slots and masters)
    instead of filling the last shard; each shard's bitmap stays dense (every
    ``stripes``-th id). Key names are the default layout's. A prototype for measurement:
    ``members`` assumes contiguous shards.

    :param prefix: the first segment of every key
    :param shard_bits: ids per shard and stripe, as a power of two
    :param stripes: how many stripes
    """

    stripes: int = 16

    def shard_of(self, user_id: int) -> int:
        """Return the shard of an id: its range (of ``id // stripes``) and stripe."""
        return ((user_id // self.stripes) >> self.shard_bits) * self.stripes + (
            user_id % self.stripes
        )

    def bit_of(self, user_id: int) -> int:
        """Return the bit of an id inside its shard."""
        return (user_id // self.stripes) & ((1 << self.shard_bits) - 1)

    def user_id(self, shard: int, bit: int) -> int:
        """Return the id at ``bit`` of ``shard``."""
        return (((shard // self.stripes) << self.shard_bits) | bit) * self.stripes + (
            shard % self.stripes
        )


# -- helpers ----------------------------------------------------------------------------------


def _int(value: float) -> str:
    return f"{value:,.0f}"


def _events(n: int, rng: random.Random) -> list[tuple[str, int, dt.datetime]]:
    """Return ``n`` random events over 16 shards, from mid-October to the end of November."""
    start = dt.datetime(2026, 10, 15, tzinfo=UTC)
    span = int((dt.datetime(2026, 12, 1, tzinfo=UTC) - start).total_seconds())
    return [
        (
            "purchase" if rng.random() < 0.2 else "active",
            rng.randrange(ID_SPACE),
            start + dt.timedelta(seconds=rng.randrange(span)),
        )
        for _ in range(n)
    ]


@dataclass
class Deployment:
    """A server kind under test: a client and how to wipe and inspect it."""

    name: str
    client: Redis | RedisCluster
    flush: Callable[[], Awaitable[None]]


async def _flush_cluster(cluster: EmbeddedCluster) -> None:
    for node in cluster.masters():
        node.call("FLUSHALL")
    await anyio.sleep(0.05)  # let the replicas follow


def _node_cpu(text: str) -> float:
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])


@contextlib.asynccontextmanager
async def _servers(
    binary: str,
) -> AsyncIterator[tuple[EmbeddedRedis, EmbeddedCluster, EmbeddedCluster, bool]]:
    """Start the standalone server and two clusters pinned to CPU 0, then pin this process."""
    cpu = SERVER_CPU if usable_cpus() else None
    with (
        EmbeddedRedis(binary, cpu=cpu) as server,
        EmbeddedCluster(binary, cpu=cpu) as cluster,
        EmbeddedCluster(binary, cpu=cpu, replicas=0) as bare,
        pinned() as pinned_,
    ):
        yield server, cluster, bare, pinned_


async def _close(client: Redis | RedisCluster) -> None:
    await client.aclose()
    if isinstance(client, RedisCluster):
        await client.nodes_manager.aclose()
        await client.nodes_manager.aclose("startup_nodes")


# -- ingest and query -------------------------------------------------------------------------


async def _ingest_and_query(
    deployments: Sequence[Deployment], scale: Scale
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, int]]:
    """Time ``mark_events`` of the same events and a depth-2 count on every deployment."""
    events = _events(scale.ingest_events, random.Random(SEED))
    ingest: dict[str, list[float]] = {d.name: [] for d in deployments}
    query: dict[str, list[float]] = {d.name: [] for d in deployments}
    answers: dict[str, int] = {}
    for run in range(scale.ingest_runs):  # alternate kinds, so noise hits both alike
        for deployment in deployments:
            await deployment.flush()
            tracker = Tracker(deployment.client, prefix=f"ingest{run}")
            began = time.perf_counter()
            await tracker.mark_events(events)
            ingest[deployment.name].append(time.perf_counter() - began)
    last = f"ingest{scale.ingest_runs - 1}"
    trackers = {d.name: Tracker(d.client, prefix=last) for d in deployments}
    for name, tracker in trackers.items():  # learn the server and the registry first
        for _ in range(5):
            answers[name] = await tracker.count(QUERY)
    for _ in range(scale.query_runs):
        for name, tracker in trackers.items():
            began = time.perf_counter()
            await tracker.count(QUERY)
            query[name].append(time.perf_counter() - began)
    return ingest, query, answers


def _throughput_block(
    deployments: Sequence[Deployment],
    ingest: dict[str, list[float]],
    query: dict[str, list[float]],
    answers: dict[str, int],
    scale: Scale,
    version: str,
) -> str:
    names = [d.name for d in deployments]
    lines = [
        f"### Ingest and query: Redis Cluster beside a standalone server ({version})",
        "",
        "| workload | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    row = [f"ingest: `mark_events` of {scale.ingest_events:,} events (16 shards, 2 events)"]
    for name in names:
        seconds = median(ingest[name])
        row.append(f"**{_int(scale.ingest_events / seconds)} events/s** ({seconds:.2f} s)")
    lines.append("| " + " | ".join(row) + " |")
    row = ["query: `count` of a depth-2 expression over 16 shards"]
    for name in names:
        lo, hi = spread(query[name])
        row.append(
            f"**{median(query[name]) * 1e3:.2f} ms** (p10-p90 {lo * 1e3:.2f}-{hi * 1e3:.2f})"
        )
    lines.append("| " + " | ".join(row) + " |")
    lines.append(
        "| round trips per query | 1 | "
        + " | ".join(["1 per master, concurrently"] * (len(names) - 1))
        + " |"
    )
    lines += [
        "",
        f"Medians of {scale.ingest_runs} ingest runs (each into an empty deployment) and "
        f"{scale.query_runs} counts, standalone and cluster alternating. The count is "
        f"`(active(Nov) & active(W47)) | (purchase(Nov) - active(Oct))`; both kinds answer "
        f"{sorted(set(answers.values()))}. All servers share CPU 0 (the cluster's 3 masters "
        "and 3 replicas too), so the cluster cannot show server-side parallelism here; its "
        "masters feed a replica each (replicas replay every write, the count script's temp "
        "`BITOP`s included). Events are spread over mid-October to November.",
    ]
    return "\n".join(lines) + "\n"


# -- the hot spot -----------------------------------------------------------------------------


@dataclass
class HotRun:
    """One hot-spot workload on the cluster."""

    label: str
    seconds: list[float]
    cpu: list[dict[str, float]]  # per run: master name -> server CPU seconds
    keys: int


async def _hot_workload(
    label: str,
    cluster: EmbeddedCluster,
    client: RedisCluster,
    ids: list[int],
    schema: Callable[[str], KeySchema],
    runs: int,
) -> HotRun:
    """Mark ``ids`` at one instant (today's marks) and record time and CPU per master."""
    masters = cluster.masters()
    result = HotRun(label, [], [], 0)
    for run in range(runs):
        await _flush_cluster(cluster)
        tracker = Tracker(client, schema=schema(f"hot{run}"))
        before = {node.name: _node_cpu(node.text("INFO", "cpu")) for node in masters}
        began = time.perf_counter()
        await tracker.mark_events([("active", uid, TODAY) for uid in ids])
        result.seconds.append(time.perf_counter() - began)
        after = {node.name: _node_cpu(node.text("INFO", "cpu")) for node in masters}
        result.cpu.append({name: after[name] - before[name] for name in before})
        result.keys = len({tracker.schema.shard_of(uid) for uid in ids})  # shards written per run
    return result


def _hot_block(runs: Sequence[HotRun], events: int) -> str:
    lines = [
        "### Sequential new ids on the cluster: the hot spot of range shards",
        "",
        "| workload | shards written | client events/s | server CPU per master (ms) | "
        "busiest master's share | server µs per event |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        seconds = median(run.seconds)
        names = sorted(run.cpu[0])
        per_master = [median([cpu[name] for cpu in run.cpu]) * 1e3 for name in names]
        total = sum(per_master)
        share = max(per_master) / total if total else 0.0
        lines.append(
            f"| {run.label} | {run.keys} | {_int(events / seconds)} | "
            f"{' / '.join(f'{ms:.0f}' for ms in sorted(per_master, reverse=True))} | "
            f"{share:.0%} | {total * 1e3 / events:.2f} |"
        )
    lines += [
        "",
        f"`mark_events` of {events:,} marks of one day (`active`, month + week + day + universe), "
        "chunks of 10,000. Server CPU is `used_cpu_user + used_cpu_sys` of each master "
        "(replicas not shown), medians.",
    ]
    return "\n".join(lines) + "\n"


async def _hot_spot(cluster: EmbeddedCluster, client: RedisCluster, scale: Scale) -> str:
    rng = random.Random(SEED + 1)
    n = scale.hot_events
    base = 50_000_000  # the newest users: ids just above everything marked so far
    runs = 3

    def default(prefix: str) -> KeySchema:
        return ShardedSchema(prefix=prefix)

    def striped(prefix: str) -> KeySchema:
        return StripedSchema(prefix=prefix, stripes=16)

    results = [
        await _hot_workload(
            "random ids over 16 shards (range shards)",
            cluster,
            client,
            [rng.randrange(ID_SPACE) for _ in range(n)],
            default,
            runs,
        ),
        await _hot_workload(
            f"{n:,} sequential new ids (range shards, the default)",
            cluster,
            client,
            list(range(base, base + n)),
            default,
            runs,
        ),
        await _hot_workload(
            f"{n:,} sequential new ids (16 stripes, prototype)",
            cluster,
            client,
            list(range(base, base + n)),
            striped,
            runs,
        ),
    ]
    plain = await _single_marks(cluster, client, base, coalesce=False)
    coalesced = await _single_marks(cluster, client, base, coalesce=True)
    single = (
        "Single marks of new sequential ids, 5,000 `mark_event` calls 64 at a time: one "
        f"MULTI/EXEC each, {_int(plain[0])} marks/s from this client and **{plain[1]:.0f} µs "
        "of CPU per mark** on the master owning the newest shard (socket I/O included: one "
        f"core saturates near {_int(1e6 / plain[1])} marks/s from all clients together); with "
        f"`Tracker(coalesce=True)`, {_int(coalesced[0])} marks/s and **{coalesced[1]:.1f} µs** "
        "per mark on that master.\n"
    )
    return _hot_block(results, n) + "\n" + single


async def _single_marks(
    cluster: EmbeddedCluster, client: RedisCluster, base: int, *, coalesce: bool
) -> tuple[float, float]:
    """Return (marks/s, µs of CPU per mark on the newest shard's master) for concurrent
    ``mark_event`` calls of new sequential ids, 64 at a time."""
    await _flush_cluster(cluster)
    tracker = Tracker(client, prefix="single", coalesce=coalesce)
    ids = list(range(base, base + 5_000))
    hot = cluster.node_for_slot(cluster.keyslot(tracker.schema.universe_key(base >> 20)))
    before = _node_cpu(hot.text("INFO", "cpu"))
    began = time.perf_counter()
    limiter = anyio.CapacityLimiter(64)

    async def mark(uid: int) -> None:
        async with limiter:
            await tracker.mark_event("active", uid, TODAY)

    async with anyio.create_task_group() as tg:
        for uid in ids:
            tg.start_soon(mark, uid)
    seconds = time.perf_counter() - began
    await tracker.aclose()
    hot_cpu = _node_cpu(hot.text("INFO", "cpu")) - before
    return len(ids) / seconds, hot_cpu / len(ids) * 1e6


# -- memory -----------------------------------------------------------------------------------


async def _memory_usage(client: Redis, pattern: str) -> tuple[int, int]:
    """Return (keys, bytes) summed with ``MEMORY USAGE key SAMPLES 0`` over a SCAN."""
    keys = [key async for key in client.scan_iter(match=pattern, count=1000)]  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    total = 0
    for start in range(0, len(keys), 1000):
        pipe = client.pipeline(transaction=False)
        for key in keys[start : start + 1000]:
            pipe.execute_command("MEMORY", "USAGE", key, "SAMPLES", 0)
        total += sum(int(size or 0) for size in await pipe.execute())
    return len(keys), total


async def _mark_month(
    tracker: Tracker, ids: Sequence[int], rng: random.Random, idmap: IdMap | None = None
) -> None:
    """Mark each id once, on a random day of November 2026."""
    days = [dt.datetime(2026, 11, d, 12, tzinfo=UTC) for d in range(1, 31)]
    if idmap is None:
        await tracker.mark_events(("active", uid, rng.choice(days)) for uid in ids)
    else:
        await idmap.mark_events(("active", str(uid), rng.choice(days)) for uid in ids)


async def _memory(server: EmbeddedRedis, scale: Scale) -> str:
    # Allocating gigabytes of sparse bitmaps outlasts redis-py's default 5 s read timeout.
    client = Redis.from_url(server.url, socket_timeout=600)
    rows: list[str] = []
    try:
        refused = ""
        try:
            await client.setbit("probe", 2**40, 1)
        except ResponseError as exc:
            refused = str(exc)
        await client.delete("probe")
        rng = random.Random(SEED + 2)
        sparse = sorted({rng.getrandbits(63) for _ in range(scale.random_ids)})
        above = sum(uid > 2**32 - 1 for uid in sparse)
        rows.append(
            f"| {len(sparse):,} random 63-bit ids | one unsharded bitmap per period "
            f"(bitmapist) | - | refused: {above:,} of them lie past bit 2**32-1 "
            f'("{refused}") | - |'
        )
        layouts: list[tuple[str, int, bool]] = [
            ("bitlens, shards of 2**20 ids (default)", 20, False),
            ("bitlens, shards of 2**8 ids", 8, False),
            ("bitlens + `IdMap` (ids as strings → dense ints), default shards", 20, True),
        ]
        for label, bits, mapped in layouts:
            await client.flushall()
            tracker = Tracker(
                client, prefix="mem", shard_bits=bits, limits=Limits(mark_chunk_size=1_000)
            )
            idmap = IdMap(tracker) if mapped else None
            await _mark_month(tracker, sparse, random.Random(SEED + 3), idmap)
            keys, size = await _memory_usage(client, "mem:*")
            detail = ""
            if mapped:
                map_keys, map_size = await _memory_usage(client, "mem:{~idmap:*")
                detail = (
                    f" (bitmaps {(size - map_size) / len(sparse):,.1f}, "
                    f"id map {map_size / len(sparse):,.1f} in {map_keys} hashes)"
                )
            rows.append(
                f"| {len(sparse):,} random 63-bit ids | {label} | {keys:,} | {size:,} | "
                f"**{size / len(sparse):,.1f}**{detail} |"
            )
        dense = range(scale.dense_ids)
        dense_layouts: list[tuple[str, int, str]] = [
            ("one unsharded bitmap per period (bitmapist's layout)", 32, "mem:{0}:active:*"),
            ("bitlens, shards of 2**20 ids (default), with the universe", 20, "mem:*"),
            ("bitlens, shards of 2**8 ids, with the universe", 8, "mem:*"),
        ]
        for label, bits, pattern in dense_layouts:
            await client.flushall()
            tracker = Tracker(client, prefix="mem", shard_bits=bits)
            await _mark_month(tracker, dense, random.Random(SEED + 4))
            keys, size = await _memory_usage(client, pattern)
            rows.append(
                f"| {len(dense):,} dense ids (0 to {len(dense) - 1:,}) | {label} | {keys:,} | "
                f"{size:,} | **{size / len(dense):,.2f}** |"
            )
        await client.flushall()
    finally:
        await client.aclose()
    version = ".".join(map(str, server.version))
    lines = [
        f"### Memory per marked id (redis-server {version})",
        "",
        "| ids | layout | keys | bytes (`MEMORY USAGE`, summed) | bytes per marked id |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "Each id is marked once, on a random day of November 2026: one month bitmap, five "
        "ISO weeks, 30 days (and bitlens' universe). The unsharded layout is measured as "
        "bitlens with `shard_bits=32` (one shard) without its universe key: the same bitmaps "
        "bitmapist stores. A random 63-bit id is alone in its shard, so with the default "
        "shards each of its 4 bitmaps is as long as its offset inside the shard (64 KiB on "
        "average); small shards or the id map keep such ids cheap.",
    ]
    return "\n".join(lines) + "\n"


# -- entry points -----------------------------------------------------------------------------


async def run_cluster_bench(*, quick: bool) -> list[str]:
    """Run every cluster benchmark and return its Markdown blocks (tables with notes).

    :param quick: small data and few runs, to check that the benchmark works
    """
    scale = QUICK if quick else FULL
    binary = newest_server()
    blocks: list[str] = []
    async with _servers(binary) as (server, cluster, bare, is_pinned):
        # --quick runs where other work may stall the pinned servers for seconds (CI, a
        # busy laptop): a longer socket timeout than redis-py's 5 s; it measures nothing.
        timeout = 60.0 if quick else 5.0  # 5 s: redis-py's default
        standalone = Redis.from_url(server.url)
        clustered = RedisCluster.from_url(cluster.url, socket_timeout=timeout)
        unreplicated = RedisCluster.from_url(bare.url, socket_timeout=timeout)
        try:
            await clustered.initialize()
            await unreplicated.initialize()
            version = ".".join(map(str, server.version))

            async def flush_standalone() -> None:
                await standalone.flushall()

            async def flush_cluster() -> None:
                await _flush_cluster(cluster)

            async def flush_bare() -> None:
                await _flush_cluster(bare)

            deployments = [
                Deployment("standalone", standalone, flush_standalone),
                Deployment("cluster: 3 masters, 1 replica each", clustered, flush_cluster),
                Deployment("cluster: 3 masters, no replicas", unreplicated, flush_bare),
            ]
            ingest, query, answers = await _ingest_and_query(deployments, scale)
            if len(set(answers.values())) != 1:  # a figure of a wrong answer means nothing
                raise RuntimeError(
                    f"the deployments answered the same count differently: {answers}"
                )
            blocks.append(_throughput_block(deployments, ingest, query, answers, scale, version))
            blocks.append(await _hot_spot(cluster, clustered, scale))
            await standalone.flushall()
            await _flush_cluster(cluster)
            await _flush_cluster(bare)
            blocks.append(await _memory(server, scale))
        finally:
            await _close(standalone)
            await _close(clustered)
            await _close(unreplicated)
    where = (
        f"redis-server pinned to CPU {SERVER_CPU}, this process to CPU {CLIENT_CPU}"
        if is_pinned
        else "NOT pinned (CPUs 0 and 1 not both usable): expect noisy figures"
    )
    blocks.insert(
        0,
        f"_Cluster benchmarks{' (--quick: not representative)' if quick else ''}: "
        f"{dt.datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, {where}; "
        f"`{binary}`._\n",
    )
    return blocks


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks from the command line and print (or write) the Markdown."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small data, few runs")
    parser.add_argument("--output", type=Path, help="also write the Markdown to this file")
    args = parser.parse_args(argv)
    blocks: list[str] = anyio.run(_run, args.quick)
    text = "\n".join(blocks)
    print(text)
    if args.output is not None:
        args.output.write_text(text)
    return 0


async def _run(quick: bool) -> list[str]:
    return await run_cluster_bench(quick=quick)


if __name__ == "__main__":
    sys.exit(main())
