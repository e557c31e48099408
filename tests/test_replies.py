"""The executor's typed per-group replies."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bitlens._execute import Executor, Group
from bitlens._replies import Replies

if TYPE_CHECKING:
    from redis.asyncio import Redis


def test_int_at_reads_an_integer_reply() -> None:
    """An integer reply, or one sent as a bulk string, reads as an int."""
    assert [Replies([3, b"4"]).int_at(i) for i in range(2)] == [3, 4]


def test_a_reply_of_another_type_says_what_it_was() -> None:
    """An array where an integer was expected raises a TypeError naming the reply."""
    with pytest.raises(TypeError, match=r"unexpected reply \[1\]"):
        Replies([[1]]).int_at(0)


def test_a_missing_keys_bulk_reply_reads_as_empty_bytes() -> None:
    """``None`` (a GETRANGE of no key) reads as ``b""`` among other bulk replies."""
    assert Replies([b"\x01", None]).each_bytes() == [b"\x01", b""]


def test_joined_keeps_the_commands_order() -> None:
    """Joining groups' replies gives them one after another, as a Replies."""
    joined = Replies.joined([Replies([1]), Replies([b"a", 2])])
    assert (type(joined), list(joined)) == (Replies, [1, b"a", 2])


@pytest.mark.anyio
async def test_the_executor_answers_each_group_with_typed_replies(
    client: Redis, prefix: str
) -> None:
    """Each group, plain or a transaction, comes back as its own Replies."""
    executor = Executor(client)
    key = prefix + "n"
    plain, atomic = await executor.run(
        [Group(key, [("SET", key, "1"), ("GET", key)]), Group(key, [("INCR", key)], True)]
    )
    await client.delete(key)
    assert (type(plain), plain.bytes_at(1), type(atomic), atomic.int_at(0)) == (
        Replies,
        b"1",
        Replies,
        2,
    )
