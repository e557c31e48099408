"""The least-privilege ACL users of docs/access-control.md mark, count, list and report.

A user that may only read gets a clear error from server-side counting and exact answers
with ``reads="client"``.
"""

from __future__ import annotations

import copy
import datetime as dt
import pickle
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest
import redis.asyncio
import redis.exceptions

from _helpers import connect, ping, set_acl_user
from bitlens import Capabilities, DayEvents, PermissionDenied, Tracker
from bitlens.embedded import EmbeddedRedis
from faults._invariants import Ledger, check_invariants, tracked_client

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from _helpers import AclUser
    from _proxy import RoundTripProxy

pytestmark = pytest.mark.anyio

AT = dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc)
PREFIX = "acl"

# Exactly the lines of docs/access-control.md, with the prefix "acl" (test_docs.py checks).
COMMON = "+ping +hello +client|setname +select"
WRITER = (
    f"on >wpass resetkeys ~acl:* -@all {COMMON} "
    "+multi +exec +setbit +bitfield +setrange +bitop +del +sadd +expireat +getbit +smembers"
)
READER = (
    f"on >rpass resetkeys ~acl:* -@all {COMMON} +multi +exec "
    "+eval +bitop +bitcount +pexpire +del +smembers +scard +getrange +getbit"
)
ADMIN = f"on >apass resetkeys ~acl:* +@all -@dangerous {COMMON}"
# A reader that may not run BITOP either: it can still count single bitmaps.
COUNTER = f"on >cpass resetkeys ~acl:* -@all {COMMON} +eval +bitcount +smembers +scard +getrange"


@pytest.fixture
async def private(redis_binary: str) -> AsyncIterator[EmbeddedRedis]:
    """A private server holding the four users (they go with it)."""
    with EmbeddedRedis(redis_binary) as server:
        admin = connect(server.url)
        users = (("writer", WRITER), ("reader", READER), ("admin", ADMIN), ("counter", COUNTER))
        for name, rules in users:
            await set_acl_user(admin, name, rules)
        await admin.aclose()
        yield server


@asynccontextmanager
async def _as_users(
    url: str, writer_user: str, reader_user: str
) -> AsyncIterator[tuple[Tracker, Tracker, redis.asyncio.Redis]]:
    """Open a tracker logged in as ``writer_user`` and one as ``reader_user`` (``name:pass``);
    yield both and the reader's client, and close them after."""
    writer_client = tracked_client(url.replace("redis://", f"redis://{writer_user}@"))
    client = tracked_client(url.replace("redis://", f"redis://{reader_user}@"))
    async with (
        Tracker(writer_client, prefix=PREFIX) as writer,
        Tracker(client, prefix=PREFIX) as reader,
    ):
        yield writer, reader, client
    await writer_client.aclose()
    await client.aclose()


@pytest.mark.parametrize("reader_user", ["reader:rpass", "admin:apass"])
async def test_least_privilege_users_work(private: EmbeddedRedis, reader_user: str) -> None:
    """The writer marks; the reader (and admin) count, list members and run retention."""
    ledger = Ledger()
    async with _as_users(private.url, "writer:wpass", reader_user) as (writer, reader, _):
        for uid in (1, 2, 3_000_000):
            await writer.mark_event("active", uid, AT)
            ledger.ack("active", uid, AT)
        dense = range(10, 3_010)  # written as byte images: SETRANGE, BITOP OR, DEL
        await writer.mark_events([("active", uid, AT) for uid in dense])
        for uid in dense:
            ledger.ack("active", uid, AT)
        day = DayEvents("active", 2026, 11, 27)
        assert await reader.count(day) == 3 + len(dense)
        assert [uid async for uid in reader.members(day)] == [1, 2, *dense, 3_000_000]
        table = await reader.retention("active", period="day", cohorts=2, end=AT.date())
        assert table is not None
        await check_invariants(private.url, PREFIX, ledger, writer)


async def _probed_by_default_user(url: str) -> Capabilities | None:
    """Return what a tracker of the default user (every command allowed) probes."""
    client = redis.asyncio.Redis.from_url(url)
    try:
        tracker = Tracker(client, prefix=PREFIX)
        await tracker.count(DayEvents("active", 2026, 11, 27))
        return tracker.capabilities
    finally:
        await client.aclose()


@pytest.mark.parametrize("reader_user", ["reader:rpass", "admin:apass"])
async def test_a_user_without_info_learns_capabilities_by_probing(
    private: EmbeddedRedis, reader_user: str
) -> None:
    """A user refused INFO counts exactly and learns what the default user's probe learns."""
    ledger = Ledger()
    async with _as_users(private.url, "writer:wpass", reader_user) as (writer, reader, client):
        with pytest.raises(redis.exceptions.NoPermissionError):
            await client.info("server")
        for uid in (1, 2, 3_000_000):
            await writer.mark_event("active", uid, AT)
            ledger.ack("active", uid, AT)
        day = DayEvents("active", 2026, 11, 27)
        assert await reader.count(day - DayEvents("other", 2026, 11, 27)) == 3
        assert reader.capabilities is not None
        assert reader.capabilities == await _probed_by_default_user(private.url)
        await check_invariants(private.url, PREFIX, ledger, writer)


async def test_a_user_without_bitop_counts_single_bitmaps(private: EmbeddedRedis) -> None:
    """A user refused BITOP gets the probe's NOPERM as "no extensions" and counts a bitmap."""
    ledger = Ledger()
    async with _as_users(private.url, "writer:wpass", "counter:cpass") as (writer, counter, _):
        for uid in (5, 6, 2_000_000):
            await writer.mark_event("active", uid, AT)
            ledger.ack("active", uid, AT)
        assert await counter.count(DayEvents("active", 2026, 11, 27)) == 3
        assert counter.capabilities == Capabilities()
        await check_invariants(private.url, PREFIX, ledger, writer)


def _read_only_rules(prefix: str, version: tuple[int, int, int]) -> list[str]:
    """The README's read-only user for ``prefix``: ``%R~`` on Redis 7, read commands on 6.2."""
    keys = f"%R~{prefix}:*" if version >= (7, 0, 0) else f"~{prefix}:*"
    return f"on >ropass resetkeys {keys} -@all {COMMON} {READ_ONLY}".split()


# Exactly the README's read-only reader (reads="client"), beside the prefix pattern.
READ_ONLY = "+smembers +scard +getrange +getbit"


@pytest.fixture
async def read_only(redis_server: EmbeddedRedis, prefix: str, acl_user: AclUser) -> str:
    """Create a user that may only read ``prefix``'s keys (deleted after); return its name."""
    user = f"ro-{prefix}"
    await acl_user(redis_server.url, user, _read_only_rules(prefix, redis_server.version))
    return user


async def _seeded_writer(url: str, prefix: str, ledger: Ledger) -> Tracker:
    """Mark a few ids in three shards (acked in ``ledger``); return the open writer."""
    writer = Tracker(tracked_client(url), prefix=prefix)
    for uid in (1, 2, 3_000_000):
        await writer.mark_event("active", uid, AT)
        ledger.ack("active", uid, AT)
    await writer.mark_event("other", 2, AT)
    ledger.ack("other", 2, AT)
    return writer


async def _read_only_pair(
    url: str, proxy: RoundTripProxy, user: str, prefix: str, ledger: Ledger
) -> tuple[Tracker, redis.asyncio.Redis]:
    """Return a seeded writer and a connected client of ``user`` through ``proxy``."""
    writer = await _seeded_writer(url, prefix, ledger)
    reader_client = connect(proxy.url.replace("redis://", f"redis://{user}:ropass@"))
    await ping(reader_client)
    return writer, reader_client


async def test_a_read_only_user_gets_a_clear_error_from_server_side_counting(
    redis_url: str, proxy: RoundTripProxy, read_only: str, prefix: str
) -> None:
    """A read-only user counting on the server gets PermissionDenied naming reads='client'."""
    ledger = Ledger()
    writer, reader_client = await _read_only_pair(redis_url, proxy, read_only, prefix, ledger)
    try:
        reader = Tracker(reader_client, prefix=prefix)
        day = DayEvents("active", 2026, 11, 27)
        with pytest.raises(PermissionDenied) as caught:
            await reader.count(day & ~DayEvents("other", 2026, 11, 27))
        message = str(caught.value)
        assert "reads='client'" in message
        assert f"~{prefix}:*" in message
        assert "temp keys" in message
        await check_invariants(redis_url, prefix, ledger, writer)
    finally:
        await reader_client.aclose()
        await writer.aclose()
        await writer.client.aclose()


async def test_a_read_only_user_counts_exactly_on_the_client_path(
    redis_url: str, proxy: RoundTripProxy, read_only: str, prefix: str
) -> None:
    """A read-only user with reads='client' counts, lists and reports in exact round trips."""
    ledger = Ledger()
    writer, reader_client = await _read_only_pair(redis_url, proxy, read_only, prefix, ledger)
    try:
        proxy.reset()
        reader = Tracker(reader_client, prefix=prefix, reads="client")
        day, other = DayEvents("active", 2026, 11, 27), DayEvents("other", 2026, 11, 27)
        assert await reader.count(day & ~other) == 2  # the registry, then the shards
        assert proxy.round_trips == 2
        proxy.reset()
        assert await reader.count_many([day, day | other, day ^ other, ~other]) == [3, 3, 2, 2]
        assert proxy.round_trips == 1
        assert [uid async for uid in reader.members(day - other)] == [1, 3_000_000]
        table = await reader.retention("active", period="day", cohorts=2, end=AT.date())
        assert [row.size for row in table.rows] == [0, 3]
        assert not {"EVAL", "EVALSHA"} & set(proxy.command_names)
        await check_invariants(redis_url, prefix, ledger, writer)
    finally:
        await reader_client.aclose()
        await writer.aclose()
        await writer.client.aclose()


def test_permission_denied_survives_copy_and_pickle() -> None:
    """PermissionDenied keeps its type, fields and remedy through copy and pickle."""
    error = PermissionDenied("BITOP", "NOPERM", "use reads='client'")
    for clone in (copy.copy(error), pickle.loads(pickle.dumps(error))):
        assert type(clone) is PermissionDenied
        assert (clone.command, clone.detail, clone.remedy) == ("BITOP", "NOPERM", error.remedy)
        assert str(clone) == str(error)
