"""Retries, authentication, OOM and ACL errors: typed, never multiplying server work."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import os
import pickle
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import pytest
import redis.asyncio
from redis.exceptions import TimeoutError as RedisTimeoutError

from _helpers import paused_server
from bitlens import (
    AuthenticationFailed,
    DayEvents,
    PermissionDenied,
    ServerOutOfMemory,
    Tracker,
)
from bitlens._exceptions import ReplicationTimeout
from bitlens._transport import Transport
from bitlens.embedded import EmbeddedRedis
from faults._invariants import Ledger, check_invariants

if TYPE_CHECKING:
    from asyncio.trsock import TransportSocket
    from collections.abc import AsyncIterator, Iterator

    from _helpers import AclUser

pytestmark = pytest.mark.anyio

AT = dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc)


@pytest.fixture
def private(redis_binary: str) -> Iterator[EmbeddedRedis]:
    """A private server this test may pause."""
    with EmbeddedRedis(redis_binary) as server:
        yield server


@pytest.fixture
def secured(redis_binary: str) -> Iterator[EmbeddedRedis]:
    """A private server that requires the password ``secret`` (set once it answers)."""
    with EmbeddedRedis(redis_binary) as server:
        admin = redis.Redis.from_url(server.url)
        admin.config_set("requirepass", "secret")
        admin.close()
        yield server


async def _eval_calls(admin: redis.asyncio.Redis) -> int:
    stats = await admin.info("commandstats")  # pyright: ignore[reportUnknownMemberType]
    entry = stats.get("cmdstat_eval") or {}
    calls: int = int(entry.get("calls", 0))
    return calls


async def test_a_timeout_is_not_retried(private: EmbeddedRedis, prefix: str) -> None:
    """A count that times out under CLIENT PAUSE runs at most once on the server."""
    url = private.url + "?socket_timeout=0.2"
    admin = redis.asyncio.Redis.from_url(private.url)
    ledger = Ledger()
    async with Tracker(url, prefix=prefix) as tracker:
        await tracker.mark_event("active", 1, AT)
        ledger.ack("active", 1, AT)
        day = DayEvents("active", 2026, 11, 27)
        assert await tracker.count(day) == 1
        before = await _eval_calls(admin)
        async with paused_server(private.url, 1000, "ALL"):
            with pytest.raises(RedisTimeoutError):
                await tracker.count(day)
        assert await _eval_calls(admin) - before <= 1
        await check_invariants(private.url, prefix, ledger, tracker)
    await admin.aclose()


@dataclass
class StalledWrite:
    """A write of more than the socket buffers to a stopped server, and how it ended."""

    error: RedisTimeoutError
    socket: TransportSocket
    transport: Transport


@contextlib.asynccontextmanager
async def _stalled_write(server: EmbeddedRedis, key: str) -> AsyncIterator[StalledWrite]:
    """Open a connection, stop ``server`` (SIGSTOP), write 64 MB to it, then resume it."""
    client = redis.asyncio.Redis.from_url(server.url + "?socket_timeout=0.3")
    transport = Transport(client)
    pid = server.pid
    assert pid is not None
    try:
        assert await transport.exchange(None, [("PING",)], None) == [b"PONG"]  # opened
        conn = client.connection_pool._available_connections[0]  # pyright: ignore[reportPrivateUsage]
        sock = conn._writer.transport.get_extra_info("socket")  # type: ignore[union-attr]  # pyright: ignore[reportPrivateUsage, reportOptionalMemberAccess]
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(RedisTimeoutError) as caught:
                await transport.exchange(None, [("SET", key, b"x" * 64_000_000)], None)
            await anyio.sleep(0.05)  # the event loop's turn to close what was aborted
        finally:
            os.kill(pid, signal.SIGCONT)
        yield StalledWrite(caught.value, sock, transport)
    finally:
        await client.aclose()


async def test_a_write_the_server_does_not_take_times_out_naming_it(
    private: EmbeddedRedis, prefix: str
) -> None:
    """A request the stopped server does not read raises a timeout naming the server."""
    async with _stalled_write(private, f"{prefix}:big") as stalled:
        assert str(stalled.error) == f"Timeout writing to {private.host}:{private.port}"


async def test_a_timed_out_write_closes_its_socket_at_once(
    private: EmbeddedRedis, prefix: str
) -> None:
    """The socket of a timed-out write is closed, its unsent bytes dropped, not left open."""
    async with _stalled_write(private, f"{prefix}:big") as stalled:
        assert stalled.socket.fileno() == -1


async def test_a_timed_out_write_leaves_nothing_and_the_next_call_works(
    private: EmbeddedRedis, prefix: str
) -> None:
    """After the server resumes, the cut-off request did nothing; a fresh connection answers."""
    async with _stalled_write(private, f"{prefix}:big") as stalled:
        replies = await stalled.transport.exchange(None, [("EXISTS", f"{prefix}:big")], None)
        assert replies == [0]


async def test_a_missing_password_fails_at_once(secured: EmbeddedRedis, prefix: str) -> None:
    """A URL without the required password raises AuthenticationFailed."""
    async with Tracker(secured.url, prefix=prefix) as tracker:
        with pytest.raises(AuthenticationFailed, match="PASSWORD"):
            await tracker.mark_event("active", 1, AT)


async def test_a_wrong_password_fails_at_once(secured: EmbeddedRedis, prefix: str) -> None:
    """A URL with a wrong password raises AuthenticationFailed."""
    url = secured.url.replace("redis://", "redis://:wrong@")
    async with Tracker(url, prefix=prefix) as tracker:
        with pytest.raises(AuthenticationFailed):
            await tracker.mark_event("active", 1, AT)


async def test_out_of_memory_is_typed(redis_binary: str, prefix: str) -> None:
    """A write refused by maxmemory noeviction raises ServerOutOfMemory."""
    with EmbeddedRedis(redis_binary, args=["--maxmemory-policy", "noeviction"]) as server:
        admin = redis.asyncio.Redis.from_url(server.url)
        await admin.set("ballast", b"x" * 2_000_000)
        await admin.config_set("maxmemory", "1mb")
        async with Tracker(server.url, prefix=prefix) as tracker:
            with pytest.raises(ServerOutOfMemory) as caught:
                await tracker.mark_event("active", 1, AT)
            assert caught.value.__cause__ is not None
        await admin.aclose()


async def test_a_refused_command_is_named(
    private: EmbeddedRedis, prefix: str, acl_user: AclUser
) -> None:
    """A user without SETBIT gets PermissionDenied naming SETBIT."""
    await acl_user(private.url, "nosetbit", ["on", ">pw", f"~{prefix}*", "+@all", "-setbit"])
    url = private.url.replace("redis://", "redis://nosetbit:pw@")
    async with Tracker(url, prefix=prefix) as tracker:
        with pytest.raises(PermissionDenied) as caught:
            await tracker.mark_event("active", 1, AT)
    assert "SETBIT" in caught.value.command


async def test_counting_needs_no_info(
    private: EmbeddedRedis, prefix: str, acl_user: AclUser
) -> None:
    """A user with +@all -info counts correctly."""
    await acl_user(private.url, "noinfo", ["on", ">pw", f"~{prefix}*", "+@all", "-info"])
    url = private.url.replace("redis://", "redis://noinfo:pw@")
    async with Tracker(url, prefix=prefix) as tracker:
        for uid in (1, 2, 70_000):
            await tracker.mark_event("active", uid, AT)
        assert await tracker.count(DayEvents("active", 2026, 11, 27)) == 3
        assert await tracker.count(DayEvents("active", 2026, 11, 27)) == 3


def test_replication_timeout_survives_copy_and_pickle() -> None:
    """ReplicationTimeout keeps its type and fields through copy and pickle."""
    error = ReplicationTimeout(2, 1)
    for clone in (copy.copy(error), pickle.loads(pickle.dumps(error))):
        assert isinstance(clone, ReplicationTimeout)
        assert (clone.wanted, clone.got, str(clone)) == (2, 1, str(error))
