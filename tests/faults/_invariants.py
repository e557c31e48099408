"""The four checks every fault scenario ends with.

A scenario records each mark it attempts and each mark whose ``await`` returned in a
:class:`Ledger`, injects its fault, then calls :func:`check_invariants`, which asserts:

1. every acknowledged mark is present, seen by a *fresh* reader (its own client and
   tracker, so no cached shard list hides a lost registry), through ``count`` and
   ``members``; and nothing is present that was never attempted;
2. no key outside the event bitmaps, the universes and the registry exists under the
   prefix (SCAN): no temp key outlived its query;
3. the tracker's connections to the server are back within their bound;
4. the next call on the tracker under test answers correctly.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import redis.asyncio

from _helpers import close_cluster_client, connect, connect_cluster, scan_keys
from bitlens import DayEvents, MonthEvents, Tracker, WeekEvents
from bitlens._periods import Day, to_local

if TYPE_CHECKING:
    from bitlens import Expr
    from bitlens._periods import Period

__all__ = ["FAULT_CLIENT_NAME", "Ledger", "check_invariants", "tracked_client"]

FAULT_CLIENT_NAME = "bitlens-under-test"
"""The ``CLIENT SETNAME`` of the client a scenario's tracker uses (:func:`tracked_client`)."""

UTC = dt.timezone.utc


@dataclass
class Ledger:
    """What a scenario tried to write and what it was told was written.

    :param tz: the tracker's time zone (days are taken in it)
    """

    tz: dt.tzinfo = UTC
    attempted: dict[tuple[str, Day], set[int]] = field(default_factory=lambda: defaultdict(set))
    acked: dict[tuple[str, Day], set[int]] = field(default_factory=lambda: defaultdict(set))

    def _day(self, at: dt.datetime | dt.date) -> Day:
        local = to_local(at, self.tz)
        return Day(local.year, local.month, local.day, self.tz)

    def attempt(self, event: str, user_id: int, at: dt.datetime | dt.date) -> None:
        """Record a mark about to be sent (it may or may not end up written)."""
        self.attempted[event, self._day(at)].add(user_id)

    def ack(self, event: str, user_id: int, at: dt.datetime | dt.date) -> None:
        """Record a mark whose ``await`` returned: it must be in Redis."""
        self.attempted[event, self._day(at)].add(user_id)
        self.acked[event, self._day(at)].add(user_id)

    @property
    def acked_count(self) -> int:
        """How many (event, day, id) marks were acknowledged."""
        return sum(map(len, self.acked.values()))

    def grouped(self, kind: str) -> dict[tuple[str, Period], tuple[set[int], set[int]]]:
        """Return ``(acked, attempted)`` ids per (event, day/week/month)."""
        out: dict[tuple[str, Period], tuple[set[int], set[int]]] = {}
        for (event, day), ids in self.attempted.items():
            period: Period = {"day": day, "week": day.as_week(), "month": day.as_month()}[kind]
            acked, attempted = out.setdefault((event, period), (set(), set()))
            attempted |= ids
            acked |= self.acked.get((event, day), set())
        return out


def tracked_client(url: str, **kwargs: Any) -> redis.asyncio.Redis:
    """Return a client whose connections carry :data:`FAULT_CLIENT_NAME` (counted in check 3).

    :param url: the server's URL
    :param kwargs: more ``Redis.from_url`` options
    """
    return redis.asyncio.Redis.from_url(url, client_name=FAULT_CLIENT_NAME, **kwargs)  # pyright: ignore[reportUnknownMemberType]


async def _named_connections(admin: redis.asyncio.Redis) -> int:
    listing = await admin.client_list()  # pyright: ignore[reportUnknownMemberType]
    return sum(1 for entry in listing if entry.get("name") == FAULT_CLIENT_NAME)


def _leftovers(keys: set[bytes], prefix: str) -> set[bytes]:
    period = rb"(U|M\d{4}-\d\d|W\d{4}-\d\d|D\d{4}-\d\d-\d\d|H\d{4}-\d\d-\d\dT\d\d)"
    event = rb"[^~:{}][^{}]*:" + period
    allowed = re.compile(
        rb"\A" + re.escape(prefix.encode()) + rb":(~shards|\{\d+\}:(~all|" + event + rb"))\Z"
    )
    return {key for key in keys if allowed.fullmatch(key) is None}


async def _settled(reader: Tracker, expr: Expr, *, rounds: int = 40) -> tuple[set[int], int]:
    """Read ``expr``'s members and count until two reads agree (or ``rounds`` run out).

    A coalesced batch whose callers were cancelled is still sent, and retried after an
    outage, so marks that were attempted but never acknowledged may land while the
    invariants are read; the members and the count are compared once they stop changing.

    :param reader: a fresh tracker
    :param expr: the expression to read
    :param rounds: how many reads to try, 50 ms apart
    """
    found = {uid async for uid in reader.members(expr)}
    counted = await reader.count(expr)
    for _ in range(rounds):
        again = {uid async for uid in reader.members(expr)}
        if again == found and counted == len(found):
            break
        found, counted = again, await reader.count(expr)
        await anyio.sleep(0.05)
    return found, counted


async def check_invariants(
    url: str,
    prefix: str,
    ledger: Ledger,
    tracker: Tracker,
    *,
    shard_bits: int = 20,
    connection_bound: int | None = None,
    probe_event: str = "after-fault",
    cluster: bool = False,
) -> None:
    """Assert the four invariants of a fault scenario (see the module docstring).

    :param url: the server's URL (a fresh reader connects to it)
    :param prefix: the scenario's key prefix
    :param ledger: what the scenario attempted and was acknowledged
    :param tracker: the tracker under test, still open (check 4 uses it)
    :param shard_bits: the trackers' shard size
    :param connection_bound: the most connections named :data:`FAULT_CLIENT_NAME` allowed
        (skipped when ``None``)
    :param probe_event: the event check 4 marks
    :param cluster: ``url`` names a node of a Redis Cluster (check 3 is then skipped)
    """
    admin = connect_cluster(url) if cluster else connect(url)
    reader_client = connect_cluster(url) if cluster else connect(url)
    try:
        async with Tracker(
            reader_client, prefix=prefix, shard_bits=shard_bits, tz=ledger.tz
        ) as reader:
            # 1. acknowledged marks present, nothing never attempted, seen by a fresh reader
            for kind, make in (("day", DayEvents), ("week", WeekEvents), ("month", MonthEvents)):
                for (event, period), (acked, attempted) in ledger.grouped(kind).items():
                    expr = make.from_date(event, period.start, tz=ledger.tz)
                    found, counted = await _settled(reader, expr)
                    missing = acked - found
                    assert not missing, f"{len(missing)} acked marks missing from {expr!r}"
                    extra = found - attempted
                    assert not extra, f"{len(extra)} never-attempted ids in {expr!r}"
                    assert counted == len(found), f"count of {expr!r}: {counted} != {len(found)}"
            # 2. no temp key (or anything foreign) outlived its query
            left = _leftovers(await scan_keys(admin, prefix), prefix)
            assert not left, f"keys left behind: {sorted(left)[:5]} ({len(left)} in all)"
            # 3. connections back within their bound
            if connection_bound is not None and isinstance(admin, redis.asyncio.Redis):
                named = await _named_connections(admin)
                assert named <= connection_bound, f"{named} connections > {connection_bound}"
            # 4. the next call answers correctly
            now = dt.datetime.now(ledger.tz)
            today = DayEvents.from_date(probe_event, now, tz=ledger.tz)
            await tracker.mark_event(probe_event, 7, now)
            assert await tracker.contains(today, 7)
            assert await reader.count(today) == 1
    finally:
        for connection in (reader_client, admin):
            if isinstance(connection, redis.asyncio.Redis):
                await connection.aclose()
            else:
                await close_cluster_client(connection)
