"""Retries, authentication, OOM and ACL errors: typed, never multiplying server work."""

from __future__ import annotations

import copy
import datetime as dt
import pickle
from typing import TYPE_CHECKING

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
from bitlens.embedded import EmbeddedRedis
from faults._invariants import Ledger, check_invariants

if TYPE_CHECKING:
    from collections.abc import Iterator

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
