"""A bounded soak: every write path and the queries under load, across one server restart.

Run it with ``nox -s soak`` (or ``python benchmarks/soak.py --seconds 60 --tasks 200``;
``--quick``: 6 s and 20 tasks, to check that it runs).
By default it starts a private redis-server with ``--appendonly yes --appendfsync always``
(so a SIGKILL keeps every acknowledged write), pinned to CPU 0 with this process on CPU 1
when both are usable. Halfway through, the server is killed with SIGKILL and
started again on the same port. At the end every attempted mark must be present exactly,
no query may have seen a count outside [acknowledged, attempted], no error may have
happened outside the outage, connections must not have grown and no temp key may be left.
Exit code 0 on PASS, 1 on FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from common import EmbeddedRedis, find_redis_server, pin_client, start_server  # beside this file

from bitlens import MonthEvents, Tracker

PREFIX = "soak"
AT = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.timezone.utc)
PATHS = ("plain", "coalesced", "nowait")
GRACE = 2.0  # seconds after the restart still counted as the outage (reconnects)


@dataclass
class PathState:
    """Attempted and acknowledged ids of one write path."""

    event: str
    attempted: set[int] = field(default_factory=set)
    acked: set[int] = field(default_factory=set)


@dataclass
class Soak:
    """The shared state of one soak run."""

    paths: dict[str, PathState]
    stop_at: float
    outage: tuple[float, float] | None = None
    outage_started: float | None = None
    errors_in: int = 0
    errors_out: int = 0
    error_samples: list[str] = field(default_factory=list)
    queries: int = 0
    violations: list[str] = field(default_factory=list)

    def in_outage(self, when: float) -> bool:
        """Tell whether ``when`` falls in the outage window (kill to restart + grace)."""
        if self.outage_started is None or when < self.outage_started:
            return False
        return self.outage is None or when <= self.outage[1] + GRACE

    def error(self, where: str, exc: BaseException) -> None:
        """Count an error, inside or outside the outage window."""
        if self.in_outage(time.monotonic()):
            self.errors_in += 1
        else:
            self.errors_out += 1
            if len(self.error_samples) < 10:
                self.error_samples.append(f"{where}: {type(exc).__name__}: {exc}")


async def writer(soak: Soak, tracker: Tracker, path: PathState, ids: range) -> None:
    """Mark ``ids`` one by one with ``mark_event`` until the time is up."""
    for user_id in ids:
        if time.monotonic() >= soak.stop_at:
            return
        path.attempted.add(user_id)
        try:
            await tracker.mark_event(path.event, user_id, AT)
        except Exception as exc:
            soak.error(path.event, exc)
            await asyncio.sleep(0.05)
        else:
            path.acked.add(user_id)


async def nowait_writer(soak: Soak, tracker: Tracker, path: PathState, ids: range) -> None:
    """Queue ``ids`` with ``mark_event_nowait``; a queued mark counts as acknowledged."""
    for user_id in ids:
        if time.monotonic() >= soak.stop_at:
            return
        path.attempted.add(user_id)
        if tracker.mark_event_nowait(path.event, user_id, AT):
            path.acked.add(user_id)
        await asyncio.sleep(0.002)


async def querier(soak: Soak, tracker: Tracker, n: int) -> None:
    """Ask count, count_many, contains and members in turn, checking every answer."""
    sync = [soak.paths["plain"], soak.paths["coalesced"]]
    step = 0
    while time.monotonic() < soak.stop_at:
        step += 1
        path = sync[(n + step) % 2]
        expr = MonthEvents(path.event, 2026, 12)
        acked_before = len(path.acked)
        sure = set(path.acked)
        kind = ("count", "count_many", "contains", "members")[step % 4]
        try:
            if kind == "count":
                got = await tracker.count(expr)
                check_range(soak, kind, got, acked_before, len(path.attempted))
            elif kind == "count_many":
                other = sync[(n + step + 1) % 2]
                other_before = len(other.acked)
                a, b = await tracker.count_many([expr, MonthEvents(other.event, 2026, 12)])
                check_range(soak, kind, a, acked_before, len(path.attempted))
                check_range(soak, kind, b, other_before, len(other.attempted))
            elif kind == "contains":
                if sure:
                    user_id = next(iter(sure))
                    if not await tracker.contains(expr, user_id):
                        soak.violations.append(f"contains: acked id {user_id} missing")
            else:
                members = {uid async for uid in tracker.members(expr)}
                attempted = set(path.attempted)
                if not sure <= members:
                    soak.violations.append(f"members: {len(sure - members)} acked ids missing")
                if not members <= attempted:
                    soak.violations.append(f"members: {len(members - attempted)} unknown ids")
            soak.queries += 1
        except Exception as exc:
            soak.error(kind, exc)
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.01)


def check_range(soak: Soak, kind: str, got: int, low: int, high: int) -> None:
    """Record a violation unless ``low <= got <= high``."""
    if not low <= got <= high:
        soak.violations.append(f"{kind}: {got} not in [{low}, {high}]")


async def connections(admin: aioredis.Redis) -> int:
    """Return the number of client connections, not counting ``admin``'s own."""
    clients = await admin.client_list()
    return len(clients) - 1


async def leftover_keys(admin: aioredis.Redis) -> list[str]:
    """Return the keys under the prefix that are neither bitmaps, universes nor registry."""
    left: list[str] = []
    async for raw in admin.scan_iter(match=f"{PREFIX}:*", count=1000):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        if key == f"{PREFIX}:~shards" or key.endswith(":~all"):
            continue
        if "~tmp" in key or not any(f":{p.event}:" in key for p in PATHS_STATE):
            left.append(key)
    return left


PATHS_STATE: list[PathState] = []


async def progress(soak: Soak, trackers: list[Tracker], admin: aioredis.Redis) -> None:
    """Print marks/s, errors and connections every 10 seconds."""
    last = time.monotonic()
    last_marks = 0
    while time.monotonic() < soak.stop_at:
        await asyncio.sleep(min(10.0, max(0.0, soak.stop_at - time.monotonic())))
        now = time.monotonic()
        marks = sum(t.stats().marks_written for t in trackers)
        conns: int | str = "n/a"
        for _ in range(2):  # the first call after a restart finds a dead connection
            try:
                conns = await connections(admin)
                break
            except Exception:
                await asyncio.sleep(0.1)
        rate = (marks - last_marks) / max(now - last, 1e-9)
        print(
            f"  {rate:10,.0f} marks/s  errors {soak.errors_in} in / {soak.errors_out} out"
            f"  queries {soak.queries}  connections {conns}",
            flush=True,
        )
        last, last_marks = now, marks


def restart(soak: Soak, server: EmbeddedRedis) -> None:
    """Kill the server with SIGKILL and start it again on the same port."""
    soak.outage_started = time.monotonic()
    server.kill()
    server.start()
    soak.outage = (soak.outage_started, time.monotonic())


async def run(args: argparse.Namespace, url: str, server: EmbeddedRedis | None) -> bool:
    """Run the soak against ``url``; return whether every check passed."""
    admin = aioredis.Redis.from_url(url)
    async for key in admin.scan_iter(match=f"{PREFIX}:*", count=1000):
        await admin.delete(key)
    plain = Tracker(url, prefix=PREFIX)
    coalesced = Tracker(url, prefix=PREFIX, coalesce=True)
    nowait = Tracker(url, prefix=PREFIX)
    trackers = [plain, coalesced, nowait]
    paths = {p: PathState(f"soak-{p}") for p in PATHS}
    PATHS_STATE[:] = list(paths.values())
    n_query = max(1, args.tasks // 20)
    n_nowait = max(1, args.tasks // 20)
    n_plain = max(1, (args.tasks - n_query - n_nowait) // 2)
    n_coal = max(1, args.tasks - n_query - n_nowait - n_plain)
    span = 10_000_000
    # Warm-up: one mark per tracker and a query, so every pool has its connections.
    for tracker, path in zip(trackers, paths.values(), strict=True):
        await tracker.mark_event(path.event, 0, AT)
        path.attempted.add(0)
        path.acked.add(0)
        await tracker.count(MonthEvents(path.event, 2026, 12))
    start = time.monotonic()
    soak = Soak(paths, stop_at=start + args.seconds)
    print(
        f"soak: {args.seconds:.0f} s, {args.tasks} tasks ({n_plain} plain, {n_coal} coalesced,"
        f" {n_nowait} nowait, {n_query} query) on {url}",
        flush=True,
    )
    tasks: list[asyncio.Task[None]] = []
    for i in range(n_plain):
        ids = range(1 + i, span, n_plain)
        tasks.append(asyncio.create_task(writer(soak, plain, paths["plain"], ids)))
    for i in range(n_coal):
        ids = range(1 + i, span, n_coal)
        tasks.append(asyncio.create_task(writer(soak, coalesced, paths["coalesced"], ids)))
    for i in range(n_nowait):
        ids = range(1 + i, span, n_nowait)
        tasks.append(asyncio.create_task(nowait_writer(soak, nowait, paths["nowait"], ids)))
    for i in range(n_query):
        tasks.append(asyncio.create_task(querier(soak, Tracker(url, prefix=PREFIX), i)))
    await asyncio.sleep(2.0)
    conns_start = await connections(admin)
    reporter = asyncio.create_task(progress(soak, trackers, admin))
    if server is not None:
        await asyncio.sleep(max(0.0, start + args.seconds / 2 - time.monotonic()))
        await asyncio.to_thread(restart, soak, server)
        print("  server restarted (SIGKILL + start)", flush=True)
    await asyncio.gather(*tasks)
    await reporter
    elapsed = time.monotonic() - start
    conns_end = await connections(admin)
    written = {p: t.stats().marks_written for p, t in zip(PATHS, trackers, strict=True)}
    for tracker in trackers:
        await tracker.aclose()
    # Re-send what was attempted but not acknowledged (marking is idempotent), then check.
    resent = 0
    async with Tracker(url, prefix=PREFIX) as fresh:
        drained = await fresh.count(MonthEvents(paths["nowait"].event, 2026, 12))
        for path in paths.values():
            missing = path.attempted - path.acked
            resent += len(missing)
            for user_id in missing:
                await fresh.mark_event(path.event, user_id, AT)
        exact: dict[str, bool] = {}
        for name, path in paths.items():
            expr = MonthEvents(path.event, 2026, 12)
            count = await fresh.count(expr)
            members = {uid async for uid in fresh.members(expr)}
            exact[name] = count == len(path.attempted) and members == path.attempted
    left = await leftover_keys(admin)
    await admin.aclose()
    outage = soak.outage[1] - soak.outage[0] if soak.outage else 0.0
    checks = {
        "exact counts and members": all(exact.values()),
        "no error outside the outage": soak.errors_out == 0,
        "no query out of range": not soak.violations,
        "connections not grown": conns_end <= conns_start,
        "no leftover keys": not left,
    }
    ok = all(checks.values())
    total = sum(written.values())
    print("\nsummary")
    rows = [
        *((f"marks written, {p}", f"{written[p]:,}") for p in PATHS),
        ("nowait marks present after drain", f"{drained:,} of {len(paths['nowait'].acked):,}"),
        ("marks/s (all paths)", f"{total / elapsed:,.0f}"),
        ("queries", f"{soak.queries:,}"),
        ("errors during / outside the outage", f"{soak.errors_in} / {soak.errors_out}"),
        ("outage (kill to PING)", f"{outage:.2f} s"),
        ("unacknowledged marks re-sent", f"{resent:,}"),
        ("connections start / end", f"{conns_start} / {conns_end}"),
        ("leftover keys", f"{len(left)}"),
        *((f"check: {name}", "ok" if good else "FAILED") for name, good in checks.items()),
        ("result", "PASS" if ok else "FAIL"),
    ]
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    for line in soak.error_samples + soak.violations[:10] + left[:10]:
        print(f"  ! {line}")
    for name, good in exact.items():
        if not good:
            print(f"  ! {name}: final count or members differ from the attempted ids")
    return ok


def main() -> int:
    """Parse the arguments, start the server if needed, run the soak; 0 on PASS."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seconds", type=float, default=None, help="default 60 (quick: 6)")
    parser.add_argument("--tasks", type=int, default=None, help="default 200 (quick: 20)")
    parser.add_argument(
        "--quick", action="store_true", help="6 s and 20 tasks: checks that it runs"
    )
    parser.add_argument("--url", default=None, help="an existing server (no restart then)")
    args = parser.parse_args()
    if args.seconds is None:
        args.seconds = 6.0 if args.quick else 60.0
    if args.tasks is None:
        args.tasks = 20 if args.quick else 200
    if args.url is not None:
        return 0 if asyncio.run(run(args, args.url, None)) else 1
    pin = pin_client()
    aof = ["--appendonly", "yes", "--appendfsync", "always"]
    with start_server(find_redis_server(), pin, args=aof) as server:
        version = ".".join(map(str, server.version))
        print(f"redis-server {version}, Python {sys.version.split()[0]}, pinned: {pin}")
        return 0 if asyncio.run(run(args, server.url, server)) else 1


if __name__ == "__main__":
    sys.exit(main())
