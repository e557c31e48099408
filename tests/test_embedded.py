"""Tests of :mod:`bitlens.embedded`: the one private redis-server the demo and ``serve`` start."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import bitlens
from _helpers import connect
from bitlens import embedded
from bitlens.embedded import ENV_VAR, EmbeddedRedis, RedisServerNotFound, find_redis_server

pytestmark = pytest.mark.anyio

EMBEDDED_EXPORTED = [
    "ENV_VAR",
    "EmbeddedRedis",
    "RedisServerNotFound",
    "find_redis_server",
    "server_version",
]
"""The exact public names of ``bitlens.embedded``."""


def test_embedded_all_is_exactly_the_pinned_list() -> None:
    """bitlens.embedded.__all__ equals its pinned list."""
    assert embedded.__all__ == EMBEDDED_EXPORTED


@pytest.mark.parametrize("name", ["EmbeddedRedis", "RedisServerNotFound"])
def test_embedded_classes_live_in_bitlens_embedded(name: str) -> None:
    """EmbeddedRedis and RedisServerNotFound report ``__module__ == "bitlens.embedded"``."""
    assert getattr(embedded, name).__module__ == "bitlens.embedded"


def test_redis_server_not_found_joins_the_tree() -> None:
    """RedisServerNotFound is a BitlensError and a RuntimeError."""
    assert issubclass(RedisServerNotFound, bitlens.BitlensError)
    assert issubclass(RedisServerNotFound, RuntimeError)


async def test_restart_keeps_the_port_and_answers(redis_binary: str) -> None:
    """An EmbeddedRedis restarted serves again on the same port, with its data gone."""
    with EmbeddedRedis(redis_binary) as server:
        url = server.url
        connection = connect(url)
        try:
            await connection.set("k", 1)
            server.restart()
            await connection.connection_pool.disconnect()
            assert (server.url, await connection.get("k")) == (url, None)
        finally:
            await connection.aclose()


def test_stop_is_idempotent_and_cleans_up(redis_binary: str) -> None:
    """stop() twice is harmless, and the server no longer runs."""
    server = EmbeddedRedis(redis_binary)
    server.start()
    server.stop()
    server.stop()
    assert (server.running, server.pid) == (False, None)


def test_directory_holds_the_log_until_stop(redis_binary: str) -> None:
    """``directory`` holds the server's redis.log while it runs; stop() removes it."""
    with EmbeddedRedis(redis_binary) as server:
        directory = server.directory
        assert directory is not None
        assert Path(directory, "redis.log").is_file()
    assert (server.directory, Path(directory).exists()) == (None, False)


def test_server_version_matches_fixture(
    redis_binary: str, server_version: tuple[int, int, int]
) -> None:
    """server_version() parses ``--version`` into the tuple the fixture reports."""
    assert embedded.server_version(redis_binary) == server_version


def test_not_executable_env_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A non-executable BITLENS_REDIS_SERVER raises RedisServerNotFound with install hints."""
    binary = tmp_path / "not-executable"
    binary.write_text("")
    binary.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert not os.access(binary, os.X_OK)
    monkeypatch.setenv(ENV_VAR, str(binary))
    with pytest.raises(RedisServerNotFound, match=r"not an executable.*pip install"):
        find_redis_server()
