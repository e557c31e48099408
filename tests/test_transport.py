"""The transport: EVALSHA with a NOSCRIPT fallback, the one RESP encoder, the pipeline fallback."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from _helpers import connect
from bitlens import DayEvents, Tracker
from bitlens._transport import PIECES, PIECES_LIMIT, Transport, pack
from bitlens._writes import BitfieldSets

if TYPE_CHECKING:
    import redis.asyncio
    from redis.asyncio.cluster import RedisCluster

    from _cluster_counter import ClusterProxies
    from _proxy import RoundTripProxy

pytestmark = pytest.mark.anyio

DAY = DayEvents("active", 2026, 11, 27)
OTHER = DayEvents("other", 2026, 11, 27)


async def _seed(tracker: Tracker) -> None:
    """Mark three ids in two shards (two of them in both events)."""
    import datetime as dt

    at = dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc)
    await tracker.mark_events(
        [("active", 1, at), ("active", 2, at), ("active", 3_000_000, at), ("other", 2, at)]
    )


async def test_a_count_sends_evalsha_once_the_server_has_the_script(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """The first count sends EVAL (caching the script); the next sends EVALSHA, no body."""
    tracker = Tracker(counted_client, prefix=prefix)
    await _seed(tracker)
    proxy.reset()
    assert await tracker.count(DAY & ~OTHER) == 2
    assert "EVAL" in proxy.command_names
    proxy.reset()
    assert await tracker.count(DAY & ~OTHER) == 2
    assert proxy.round_trips == 1
    assert "EVALSHA" in proxy.command_names
    assert "EVAL" not in proxy.command_names


async def test_a_count_after_script_flush_answers_right_in_one_more_round_trip(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, redis_url: str, prefix: str
) -> None:
    """After SCRIPT FLUSH the EVALSHA's NOSCRIPT resends the call with EVAL, once."""
    tracker = Tracker(counted_client, prefix=prefix)
    await _seed(tracker)
    assert await tracker.count(DAY | OTHER) == 3
    admin = connect(redis_url)
    try:
        await admin.script_flush()
    finally:
        await admin.aclose()
    proxy.reset()
    assert await tracker.count(DAY | OTHER) == 3
    assert proxy.round_trips == 2
    assert proxy.command_names.count("EVALSHA") == 1
    assert proxy.command_names.count("EVAL") == 1
    proxy.reset()
    assert await tracker.count(DAY | OTHER) == 3
    assert proxy.round_trips == 1
    assert "EVALSHA" in proxy.command_names


async def test_every_cluster_node_gets_evalsha_after_its_first_eval(
    counted_cluster_client: RedisCluster, cluster_proxies: ClusterProxies, prefix: str
) -> None:
    """On a cluster each node learns the script once; then every node gets EVALSHA."""
    tracker = Tracker(counted_cluster_client, prefix=prefix)
    await _seed(tracker)
    assert await tracker.count(DAY & ~OTHER) == 2
    assert await tracker.count(DAY & ~OTHER) == 2
    cluster_proxies.reset()
    assert await tracker.count(DAY & ~OTHER) == 2
    per_node = cluster_proxies.per_node()
    for node in per_node:
        names = cluster_proxies.proxy(node).command_names
        assert "EVAL" not in names
    assert (
        sum(cluster_proxies.proxy(node).command_names.count("EVALSHA") for node in per_node) == 2
    )  # one call per shard


async def test_a_cluster_count_after_script_flush_on_every_node_answers_right(
    counted_cluster_client: RedisCluster, prefix: str
) -> None:
    """After SCRIPT FLUSH on every node a cluster count still answers right."""
    tracker = Tracker(counted_cluster_client, prefix=prefix)
    await _seed(tracker)
    assert await tracker.count(DAY | OTHER) == 3
    for node in counted_cluster_client.get_nodes():
        await counted_cluster_client.execute_command("SCRIPT", "FLUSH", target_nodes=node)
    assert await tracker.count(DAY | OTHER) == 3
    assert await tracker.count(DAY & ~OTHER) == 2


async def test_the_pipeline_fallback_counts_in_the_same_round_trips(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """Forced onto the public pipeline(), a mark and a count take one round trip each."""
    tracker = Tracker(counted_client, prefix=prefix)
    tracker._executor._transport = Transport(counted_client, mode="pipeline")  # pyright: ignore[reportPrivateUsage]
    assert not tracker._executor._transport.fast  # pyright: ignore[reportPrivateUsage]
    await _seed(tracker)
    assert await tracker.count(DAY & ~OTHER) == 2
    proxy.reset()
    assert await tracker.count(DAY & ~OTHER) == 2
    assert proxy.round_trips == 1


def test_bitfield_sets_encode_as_their_arguments() -> None:
    """A BitfieldSets run packs exactly as its SET u1 arguments spelled out one by one."""
    sets = BitfieldSets((0, 9, 10, 99, 100, 123_456, 10**12), 1)
    assert pack([("BITFIELD", "k", sets)]) == pack([("BITFIELD", "k", *sets.arguments())])


def test_pack_honours_the_clients_encoding() -> None:
    """str arguments are encoded with the given encoding and error handler."""
    assert pack([("SET", "k", "é")], "latin-1") == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n\xe9\r\n"
    assert pack([("SET", "k", "é")], "ascii", "replace").endswith(b"$1\r\n?\r\n")


def _plain_resp(commands: list[tuple[str | int | bytes, ...]], encoding: str = "utf-8") -> bytes:
    out = b""
    for command in commands:
        out += b"*%d\r\n" % len(command)
        for arg in command:
            data = arg if isinstance(arg, bytes) else str(arg).encode(encoding)
            out += b"$%d\r\n%b\r\n" % (len(data), data)
    return out


def test_pack_is_plain_resp_for_every_kind_of_argument() -> None:
    """Small, large and negative ints, repeated and new strings, bytes: plain RESP arrays."""
    commands: list[tuple[str | int | bytes, ...]] = [
        ("SET", "k", "v"),
        ("SETBIT", "k:é", 0, 1),
        ("EVALSHA", "sha", 1023, 1024, -1, 10**15, b"\x00\r\n", "k:é"),
        ("RPUSH", "list", *range(70)),  # an array header past the ready-made ones
        ("SET", "k", "v"),
    ]
    assert pack(commands) == _plain_resp(commands)
    assert pack(commands) == _plain_resp(commands)  # the strings now come ready-made


def test_pack_keeps_at_most_its_limit_of_ready_made_strings() -> None:
    """However many distinct strings are sent, the kept bulk strings stay bounded."""
    for n in range(PIECES_LIMIT + 10):
        pack([("GET", f"key:{n}")])
        assert len(PIECES) <= PIECES_LIMIT
    assert pack([("GET", "key:1")]) == _plain_resp([("GET", "key:1")])


def test_pack_never_reuses_a_string_encoded_another_way() -> None:
    """A string first sent as UTF-8 is encoded afresh for a latin-1 client, and back."""
    assert pack([("SET", "k", "é")]) == _plain_resp([("SET", "k", "é")])
    assert pack([("SET", "k", "é")], "latin-1") == _plain_resp([("SET", "k", "é")], "latin-1")
    assert pack([("SET", "k", "é")]) == _plain_resp([("SET", "k", "é")])


def test_pack_refuses_a_bool() -> None:
    """True is not sent as 1: a bool argument is a TypeError, as any other type."""
    with pytest.raises(TypeError, match="cannot send True"):
        pack([("SETBIT", "k", 0, True)])


async def test_the_transport_decodes_with_the_clients_encoding(redis_url: str) -> None:
    """A client made with encoding='latin-1' has its replies decoded as latin-1."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url, encoding="latin-1")
    try:
        assert Transport(client).decode(b"\xe9") == "é"
    finally:
        await client.aclose()
