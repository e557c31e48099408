"""``reads="client"``: counts computed here from GETRANGE reads equal the server's, exactly."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings

from _helpers import examples, scan_keys
from _reference import Model
from _trees import LEAVES, SHARD_BITS, seed, trees
from bitlens import (
    BitOpAnd,
    BitOpDiff,
    BitOpNot,
    BitOpOr,
    BitOpXor,
    DayEvents,
    Expr,
    InvalidOption,
    MonthEvents,
    Tracker,
    UniqueEvents,
    Universe,
)
from bitlens._tracker import CLIENT_READ_BYTES

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import redis.asyncio
    from redis.asyncio.cluster import RedisCluster

    from _proxy import RoundTripProxy

pytestmark = pytest.mark.anyio

UTC = dt.timezone.utc
READ_ONLY_COMMANDS = {"SCARD", "SMEMBERS", "GETRANGE"}


@dataclass
class Both:
    """A server-path and a client-path tracker over one seeded data set, and its model."""

    server: Tracker
    here: Tracker
    model: Model
    proxy: RoundTripProxy
    ids: list[int]


@pytest.fixture
async def both(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> AsyncIterator[Both]:
    """Seeds ~2,000 events over ~24 shards; both trackers have read the registry."""
    server = Tracker(counted_client, prefix=prefix, shard_bits=SHARD_BITS)
    model = Model()
    ids = await seed(server, model, seed=len(prefix) + 5)
    here = Tracker(counted_client, prefix=prefix, shard_bits=SHARD_BITS, reads="client")
    await server.count(Universe())
    await here.count(Universe())
    proxy.reset()
    yield Both(server, here, model, proxy, ids)
    await here.aclose()
    await server.aclose()


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(tree=trees(5))
async def test_client_counts_match_the_reference_and_the_server(both: Both, tree: Expr) -> None:
    """count of any tree on the client path equals the set model and the server path."""
    expected = len(both.model.ids(tree))
    assert await both.here.count(tree) == expected
    assert await both.server.count(tree) == expected


@pytest.mark.parametrize(
    "expr",
    [
        BitOpAnd(LEAVES[0], LEAVES[3], LEAVES[6]),
        BitOpOr(*LEAVES[:9]),
        BitOpXor(LEAVES[1], LEAVES[4], LEAVES[9]),
        BitOpNot(MonthEvents("a", 2026, 11)),
        BitOpNot(MonthEvents("a", 2026, 11), universe=UniqueEvents("b")),
        BitOpDiff(LEAVES[0], LEAVES[1], LEAVES[2]),
        Universe(),
    ],
    ids=["and", "or", "xor", "not", "not-within-universe", "diff", "universe"],
)
async def test_each_operator_counts_exactly_in_one_read_only_round_trip(
    both: Both, expr: Expr
) -> None:
    """AND, OR, XOR, NOT (with and without a universe), DIFF: exact, one round trip, reads."""
    assert await both.here.count(expr) == len(both.model.ids(expr))
    assert both.proxy.round_trips == 1
    assert set(both.proxy.command_names) <= READ_ONLY_COMMANDS


async def test_count_many_on_the_client_is_one_round_trip(both: Both) -> None:
    """A dashboard's 40 counts on the client path: one round trip of reads, each exact."""
    rng = random.Random(5)
    questions = {
        f"q{i}": rng.choice(LEAVES) & ~rng.choice(LEAVES) | rng.choice(LEAVES) for i in range(40)
    }
    answers = await both.here.count_many(questions)
    assert both.proxy.round_trips == 1
    assert set(both.proxy.command_names) <= READ_ONLY_COMMANDS
    assert answers == {name: len(both.model.ids(q)) for name, q in questions.items()}


async def test_client_path_writes_nothing(
    both: Both, client: redis.asyncio.Redis, prefix: str
) -> None:
    """Counting on the client creates no key at all, not even for a moment (no writes sent)."""
    before = await scan_keys(client, prefix)
    tree = (LEAVES[0] | LEAVES[5]) - LEAVES[1]
    assert await both.here.count(tree) == len(both.model.ids(tree))
    assert not {"EVAL", "EVALSHA"} & set(both.proxy.command_names)
    assert await scan_keys(client, prefix) == before


async def test_client_retention_equals_the_server_retention(both: Both) -> None:
    """A daily retention table on the client path equals the server path's, cell by cell."""
    now = dt.datetime(2026, 12, 31, tzinfo=UTC)
    end = dt.date(2026, 12, 5)
    tables = [
        await tracker.retention("a", "b", period="day", cohorts=20, end=end, now=now)
        for tracker in (both.server, both.here)
    ]
    server, here = ([(r.size, tuple(c.count for c in r.cells)) for r in t.rows] for t in tables)
    assert here == server
    assert any(size for size, _ in here)


async def test_a_fresh_client_reader_counts_in_two_round_trips(
    both: Both, counted_client: redis.asyncio.Redis, prefix: str
) -> None:
    """A new reads="client" tracker reads the registry, then the shards: two round trips."""
    fresh = Tracker(counted_client, prefix=prefix, shard_bits=SHARD_BITS, reads="client")
    tree = LEAVES[0] & ~LEAVES[1]
    assert await fresh.count(tree) == len(both.model.ids(tree))
    assert both.proxy.round_trips == 2
    assert both.proxy.command_names[0] == "SMEMBERS"


async def test_ids_in_many_default_shards_count_exactly(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """Ids spread over default 128 KiB shards (up to 2**40) count exactly on both paths."""
    server = Tracker(counted_client, prefix=prefix)
    ids = {0, 5, 2**20 - 1, 2**20, 3 * 2**20 + 77, 2**40 + 3}
    at = dt.datetime(2026, 3, 4, tzinfo=UTC)
    await server.mark_events([("a", uid, at) for uid in ids])
    await server.mark_events([("b", uid, at) for uid in ids if uid % 2])
    here = Tracker(counted_client, prefix=prefix, reads="client")
    day_a, day_b = DayEvents("a", 2026, 3, 4), DayEvents("b", 2026, 3, 4)
    for expr, expected in (
        (day_a, len(ids)),
        (day_a - day_b, len([u for u in ids if not u % 2])),
        (~day_b, len([u for u in ids if not u % 2])),
        (day_a ^ day_b, len([u for u in ids if not u % 2])),
    ):
        assert await here.count(expr) == expected
        assert await server.count(expr) == expected


async def test_a_bitmap_longer_than_its_window_is_read_on_in_a_second_round_trip(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """An OR of 300 days reads 300 bitmaps in windows below 128 KiB: two passes, exact."""
    days = [dt.date(2025, 1, 1) + dt.timedelta(days=n) for n in range(300)]
    assert CLIENT_READ_BYTES // len(days) < 2**17  # the window is smaller than a shard
    server = Tracker(counted_client, prefix=prefix)
    ids = [3, 2**20 - 2, 2**20 - 1]  # the last bytes of shard 0: past the first window
    await server.mark_events(
        [("a", uid, dt.datetime(d.year, d.month, d.day, tzinfo=UTC)) for d in days for uid in ids]
    )
    here = Tracker(counted_client, prefix=prefix, reads="client")
    await here.count(DayEvents("a", 2025, 1, 1))  # learn the registry
    proxy.reset()
    expr = BitOpOr(*(DayEvents("a", d.year, d.month, d.day) for d in days))
    assert await here.count(expr) == len(ids)
    assert proxy.round_trips == 2
    assert await server.count(expr) == len(ids)


async def test_members_and_contains_on_the_client_path_match_the_reference(both: Both) -> None:
    """members and contains are read-only on either path and match the model."""
    tree = (LEAVES[0] | LEAVES[7]) - LEAVES[2]
    expected = both.model.ids(tree)
    assert [uid async for uid in both.here.members(tree)] == sorted(expected)
    probe = both.ids[:50]
    assert await both.here.contains_many(tree, probe) == [uid in expected for uid in probe]
    assert set(both.proxy.command_names) <= READ_ONLY_COMMANDS | {"GETBIT"}


@pytest.mark.parametrize("reads", ["Client", "", None, 1, "both"])
def test_an_unknown_reads_option_raises(reads: object) -> None:
    """reads must be 'server' or 'client': anything else is an InvalidOption."""
    with pytest.raises(InvalidOption, match="reads"):
        Tracker("redis://localhost:1/0", reads=reads)  # type: ignore[arg-type]


async def test_client_counts_on_a_cluster_match_the_server_path(
    cluster_client: RedisCluster, prefix: str
) -> None:
    """On a Redis Cluster, reads='client' counts every master's shards exactly."""
    server = Tracker(cluster_client, prefix=prefix, shard_bits=SHARD_BITS)
    model = Model()
    await seed(server, model, seed=3)
    here = Tracker(cluster_client, prefix=prefix, shard_bits=SHARD_BITS, reads="client")
    rng = random.Random(8)
    questions = [rng.choice(LEAVES) & ~rng.choice(LEAVES) | rng.choice(LEAVES) for _ in range(10)]
    expected = [len(model.ids(q)) for q in questions]
    assert await here.count_many(questions) == expected
    assert await server.count_many(questions) == expected
