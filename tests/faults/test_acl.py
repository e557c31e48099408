"""The least-privilege ACL users of docs/access-control.md mark, count, list and report."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest
import redis.asyncio
import redis.exceptions

from bitlens import Capabilities, DayEvents, Tracker
from bitlens._embedded import EmbeddedRedis
from faults._invariants import Ledger, check_invariants, tracked_client

if TYPE_CHECKING:
    from collections.abc import Iterator

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
def private(redis_binary: str) -> Iterator[EmbeddedRedis]:
    """A private server holding the three users."""
    with EmbeddedRedis(redis_binary) as server:
        admin = redis.Redis.from_url(server.url)
        users = (("writer", WRITER), ("reader", READER), ("admin", ADMIN), ("counter", COUNTER))
        for name, rules in users:
            admin.acl_setuser(name, reset=True)
            admin.execute_command("ACL", "SETUSER", name, *rules.split())  # type: ignore[no-untyped-call]  # pyright: ignore[reportUnknownMemberType]
        admin.close()
        yield server


@pytest.mark.parametrize("reader_user", ["reader:rpass", "admin:apass"])
async def test_least_privilege_users_work(private: EmbeddedRedis, reader_user: str) -> None:
    """The writer marks; the reader (and admin) count, list members and run retention."""
    ledger = Ledger()
    writer_url = private.url.replace("redis://", "redis://writer:wpass@")
    reader_url = private.url.replace("redis://", f"redis://{reader_user}@")
    writer_client = tracked_client(writer_url)
    client = tracked_client(reader_url)
    async with (
        Tracker(writer_client, prefix=PREFIX) as writer,
        Tracker(client, prefix=PREFIX) as reader,
    ):
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
    await writer_client.aclose()
    await client.aclose()


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
    writer_client = tracked_client(private.url.replace("redis://", "redis://writer:wpass@"))
    client = tracked_client(private.url.replace("redis://", f"redis://{reader_user}@"))
    async with (
        Tracker(writer_client, prefix=PREFIX) as writer,
        Tracker(client, prefix=PREFIX) as reader,
    ):
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
    await writer_client.aclose()
    await client.aclose()


async def test_a_user_without_bitop_counts_single_bitmaps(private: EmbeddedRedis) -> None:
    """A user refused BITOP gets the probe's NOPERM as "no extensions" and counts a bitmap."""
    ledger = Ledger()
    writer_client = tracked_client(private.url.replace("redis://", "redis://writer:wpass@"))
    client = tracked_client(private.url.replace("redis://", "redis://counter:cpass@"))
    async with (
        Tracker(writer_client, prefix=PREFIX) as writer,
        Tracker(client, prefix=PREFIX) as counter,
    ):
        for uid in (5, 6, 2_000_000):
            await writer.mark_event("active", uid, AT)
            ledger.ack("active", uid, AT)
        assert await counter.count(DayEvents("active", 2026, 11, 27)) == 3
        assert counter.capabilities == Capabilities()
        await check_invariants(private.url, PREFIX, ledger, writer)
    await writer_client.aclose()
    await client.aclose()
