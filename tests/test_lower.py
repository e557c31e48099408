"""Count-script calls lowered to MULTI/EXEC: the same replies and the same keys as the script."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.exceptions import ResponseError

from _helpers import connect, examples
from _reference import Model
from _trees import SHARD_BITS, seed, trees
from bitlens import InvalidOption, QueryRejected, Tracker, Universe
from bitlens._keys import ShardedSchema
from bitlens._lower import COUNT_SHA, count_call, decode, lower, refuses_scripts, script_mode
from bitlens._plan import CALL_BYTES, COUNT_SCRIPT, plan_counts, resolve, script_error

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    import redis.asyncio

    from bitlens import Expr
    from bitlens._lower import Arg
    from bitlens.embedded import EmbeddedRedis

pytestmark = pytest.mark.anyio

SHARDS = range(25)  # the seeded data spans shards 0..23; shard 24 holds nothing


@dataclass
class Data:
    """A seeded prefix and the client that reads it."""

    client: redis.asyncio.Redis
    schema: ShardedSchema
    tracker: Tracker


DATABASE = 9
"""The database of the session server this module's data lives in, emptied first: its
``SCAN``s for temp keys then walk this test's keys, not every key the suite has written."""


@pytest.fixture
async def data(redis_server: EmbeddedRedis, prefix: str) -> AsyncIterator[Data]:
    """Marks the shared random data set (~24 shards) under the test's prefix."""
    client = connect(f"redis://{redis_server.host}:{redis_server.port}/{DATABASE}")
    try:
        await client.flushdb()
        tracker = Tracker(client, prefix=prefix, shard_bits=SHARD_BITS, scripts="lua")
        await seed(tracker, Model(), seed=7)
        await tracker.count(Universe())  # learn the server's BITOP extensions
        yield Data(client, ShardedSchema(prefix=prefix, shard_bits=SHARD_BITS), tracker)
        await tracker.aclose()
        await client.flushdb()
    finally:
        await client.aclose()


async def _temps(client: redis.asyncio.Redis, prefix: str, token: str) -> dict[str, bytes | str]:
    """Every temp key of ``token`` (its token replaced by ``T``) and its value; each has a TTL."""
    found: dict[str, bytes | str] = {}
    pattern = f"{prefix}:{{*}}:~tmp:{token}:*"
    async for key in client.scan_iter(match=pattern, count=1000):
        name = key.decode()
        value = await client.get(name)
        assert value is not None
        assert await client.pttl(name) > 0
        found[name.replace(f":~tmp:{token}:", ":~tmp:T:")] = value
    return found


async def _lowered(client: redis.asyncio.Redis, keys: list[str], argv: Sequence[Arg]) -> object:
    """Run ``lower(keys, argv)`` as one MULTI/EXEC; return what :func:`decode` makes of it."""
    call = lower(keys, argv)
    async with client.pipeline(transaction=True) as pipe:
        for command in call.commands:
            pipe.execute_command(*command)
        replies = await pipe.execute(raise_on_error=False)
    return decode(call, replies)


@settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    batch=st.lists(trees(4), min_size=1, max_size=4),
    byte_budget=st.sampled_from((CALL_BYTES, 64, 200)),
    shards_per_call=st.sampled_from((1, 7, 25)),
)
async def test_lowered_calls_answer_and_leave_what_the_script_does(
    data: Data, batch: list[Expr], byte_budget: int, shards_per_call: int
) -> None:
    """Every call of random plans gives the script's reply and leaves the script's temp keys."""
    nodes = [resolve(tree) for tree in batch]
    prefix = data.schema.prefix
    for plan in plan_counts(nodes, data.tracker.capabilities):
        ours, theirs = secrets.token_hex(4), secrets.token_hex(4)
        for call in plan.calls(32, byte_budget):
            for lo in range(0, len(SHARDS), shards_per_call):
                shards = SHARDS[lo : lo + shards_per_call]
                mine = [k for s in shards for k in call.keys(plan, data.schema, s, ours)]
                keys = [k for s in shards for k in call.keys(plan, data.schema, s, theirs)]
                script = await data.client.execute_command(  # type: ignore[no-untyped-call]
                    "EVAL", COUNT_SCRIPT, len(keys), *keys, *call.argv
                )
                assert await _lowered(data.client, mine, call.argv) == script
            assert await _temps(data.client, prefix, ours) == await _temps(
                data.client, prefix, theirs
            )
        assert await _temps(data.client, prefix, ours) == {}


@pytest.mark.parametrize(
    "argv",
    [
        ["x", 0, "C", 1],
        [1, 0, "C", 5],
        [1, 1, "B", "NOT", 2, 1, 1, "C", 2],
        [1, 1, "B", "OR", 2, 9, 1],
        [1, 1, "D", 1, 1],
        [1, 1, "K", 1, 1],
        [1, 0, "Q"],
        [1, 0, "C", 1, "C"],
    ],
    ids=repr,
)
async def test_lowering_refuses_what_the_script_refuses(
    client: redis.asyncio.Redis, prefix: str, argv: list[str | int]
) -> None:
    """Malformed arguments raise QueryRejected with the script's own message, before I/O."""
    width = sum(v for v in argv[:2] if isinstance(v, int)) + 1
    keys = [f"{prefix}:{{0}}:~tmp:t:{n}" for n in range(width)]
    with pytest.raises(ResponseError) as script:
        await client.execute_command("EVAL", COUNT_SCRIPT, len(keys), *keys, *argv)  # type: ignore[no-untyped-call]
    expected = script_error(str(script.value))
    assert isinstance(expected, QueryRejected)
    with pytest.raises(QueryRejected) as ours:
        lower(keys, argv)
    assert str(ours.value) == str(expected)


def test_lowering_refuses_unbounded_work() -> None:
    """A call over the script's work bound is refused by the lowering too."""
    keys = ["bl:{0}:a:D2026-01-01", "bl:{0}:~tmp:t:0"]
    argv: list[Arg] = [1, 0]
    for _ in range(100_001):
        argv += ["C", 1]
    with pytest.raises(QueryRejected, match="more than 100000 key operations"):
        lower(keys, argv)


def test_a_wide_bitop_runs_in_slices_of_the_script() -> None:
    """A BITOP over 2,500 sources becomes three BITOPs of at most 1,000 keys, each expired."""
    sources = list(range(1, 2501))
    keys = [f"bl:{{0}}:k{n}" for n in sources] + ["bl:{0}:~tmp:t:0", "bl:{0}:~tmp:t:1"]
    call = lower(keys, [2500, 1, "B", "OR", 2501, 2500, *sources, "C", 2501, "D", 1, 2501])
    names = [str(c[0]) for c in call.commands]
    assert names == ["BITOP", "PEXPIRE"] * 3 + ["BITCOUNT", "DEL"]
    assert max(len(c) for c in call.commands) <= 1000


def test_count_call_recognises_eval_and_evalsha_of_the_count_script() -> None:
    """EVAL of the count script and EVALSHA of its digest are count calls; others are not."""
    assert count_call(("EVAL", COUNT_SCRIPT, 1, "k", 1, 0, "C", 1)) == (["k"], [1, 0, "C", 1])
    assert count_call(("EVALSHA", COUNT_SHA, 1, "k", 1, 0)) == (["k"], [1, 0])
    assert count_call(("EVAL", "return 1", 0)) is None


@pytest.mark.parametrize(
    "message",
    [
        "ERR unknown command 'EVAL', with args beginning with: ",
        "ERR unknown command 'evalsha', with args beginning with: ",
        "NOPERM User u has no permissions to run the 'eval' command",
        "NOPERM this user has no permissions to run the 'evalsha' command or its subcommand",
        "ERR Could not find scripting engine 'lua'",
    ],
)
def test_a_refusal_of_scripts_is_recognised(message: str) -> None:
    """Unknown or forbidden EVAL/EVALSHA, or no Lua engine (Valkey): no scripts run."""
    assert refuses_scripts(message)


@pytest.mark.parametrize(
    "message", ["NOSCRIPT No matching script", "BUSY Redis is busy running a script", "OOM x"]
)
def test_other_script_errors_are_no_refusal(message: str) -> None:
    """NOSCRIPT, BUSY or OOM say nothing about whether scripts may run."""
    assert not refuses_scripts(message)


@pytest.mark.parametrize("value", ["never", "", 0, True, "LUA"])
def test_a_bad_scripts_option_is_refused(value: object) -> None:
    """Tracker(scripts=...) takes only 'auto', 'lua', 'none' or None: InvalidOption else."""
    with pytest.raises(InvalidOption, match="scripts"):
        Tracker("redis://localhost:1/0", scripts=value)  # type: ignore[arg-type]


def test_the_environment_gives_the_default_mode() -> None:
    """With scripts=None the mode comes from BITLENS_SCRIPTS, and a bad value is refused."""
    assert script_mode(None, {}) == "auto"
    assert script_mode(None, {"BITLENS_SCRIPTS": "none"}) == "none"
    assert script_mode("lua", {"BITLENS_SCRIPTS": "none"}) == "lua"
    with pytest.raises(InvalidOption, match="BITLENS_SCRIPTS"):
        script_mode(None, {"BITLENS_SCRIPTS": "off"})
