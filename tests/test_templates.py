"""A lone mark and a ``contains`` are packed once per keys, the bit offset filled in per call."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest

from _helpers import Wires
from bitlens import MonthEvents, ReplicationTimeout, Tracker
from bitlens._tracker import parts
from bitlens._transport import HOLE, bulk_int, pack, pack_template
from bitlens._writes import BitfieldSets

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from _proxy import RoundTripProxy
    from bitlens._writes import Command

pytestmark = pytest.mark.anyio

UTC = dt.timezone.utc
AT = dt.datetime(2026, 11, 5, 12, tzinfo=UTC)
NOV = MonthEvents("active", 2026, 11)
PAID = MonthEvents("paid", 2026, 11)


@pytest.mark.parametrize("number", [0, 7, 1023, 1024, 99_999, 2**20 - 1, 2**40])
def test_a_filled_template_is_the_packed_request(number: int) -> None:
    """Joining a template's pieces with the number is ``pack`` of the commands holding it."""
    commands: list[Command] = [
        ("MULTI",),
        ("SETBIT", "p:{0}:e:M2026-11", HOLE, 1),
        ("SETBIT", "p:{0}:é:D2026-11-05", HOLE, 0),
        ("SADD", "p:~shards", 0),
        ("EXEC",),
    ]
    filled = [tuple(number if a is HOLE else a for a in c) for c in commands]
    assert bulk_int(number).join(pack_template(commands)) == pack(filled)


def test_a_template_without_holes_is_one_piece() -> None:
    """A request with no hole packs to one piece: ``pack`` of it."""
    commands: list[Command] = [("GETBIT", "k", 5), ("PING",)]
    assert pack_template(commands) == (pack(commands),)


def test_an_unfilled_hole_is_never_sent() -> None:
    """``pack`` refuses a HOLE (an int underneath) rather than sending it as 0."""
    with pytest.raises(TypeError):
        pack([("SETBIT", "k", HOLE, 1)])


def test_a_template_refuses_bitfield_runs() -> None:
    """BITFIELD runs (whose argument count depends on them) cannot be left in a template."""
    with pytest.raises(TypeError):
        pack_template([("BITFIELD", "k", BitfieldSets((1, 2), 1))])


async def test_lone_marks_and_unmarks_from_their_templates_set_the_right_bits(
    client: Redis, prefix: str
) -> None:
    """Marks of several ids of one shard, then an unmark, leave exactly the marked bits."""
    async with Tracker(client, prefix=prefix) as tracker:
        for uid in (1, 5, 1023, 1024, 70_000):
            await tracker.mark_event("active", uid, AT)
        await tracker.unmark_event("active", 5, AT)
        assert await tracker.count(NOV) == 4
        assert [await tracker.contains(NOV, uid) for uid in (1, 5, 1023, 1024, 70_000, 2)] == [
            True,
            False,
            True,
            True,
            True,
            False,
        ]


async def test_a_lone_mark_is_one_transaction_from_its_template(
    counted_client: Redis, proxy: RoundTripProxy, prefix: str
) -> None:
    """A mark sent from its template is one round trip of MULTI, 4 SETBITs, SADD, EXEC."""
    async with Tracker(counted_client, prefix=prefix) as tracker:
        await tracker.mark_event("active", 1, AT)
        proxy.reset()
        await tracker.mark_event("active", 2, AT)
    assert proxy.round_trips == 1
    assert proxy.command_names == ["MULTI", *["SETBIT"] * 4, "SADD", "EXEC"]


async def test_an_observer_sees_each_lone_mark_with_its_own_bit(client: Redis, prefix: str) -> None:
    """While an observer watches, a mark's wire holds its own offset, never a hole."""
    async with Tracker(client, prefix=prefix) as tracker:
        await tracker.mark_event("active", 1, AT)
        wires = Wires()
        parts(tracker).executor.observer = wires
        await tracker.mark_event("active", 77, AT)
        await tracker.contains(NOV & PAID, 78)
    setbits = [c for c in wires.wires[0] if c[0] == "SETBIT"]
    assert {c[2] for c in setbits} == {77}
    assert {c[2] for c in wires.wires[1]} == {78}
    assert all(type(arg) is not type(HOLE) for wire in wires.wires for c in wire for arg in c)


async def test_a_mark_after_replicas_ack_changed_waits_for_the_replicas(
    client: Redis, prefix: str
) -> None:
    """A template packed without WAIT is not reused once the executor asks for replicas."""
    async with Tracker(client, prefix=prefix) as tracker:
        await tracker.mark_event("active", 1, AT)
        executor = parts(tracker).executor
        executor.replicas_ack, executor.replicas_timeout = 1, 0.05
        with pytest.raises(ReplicationTimeout):
            await tracker.mark_event("active", 2, AT)


async def test_contains_keeps_one_lookup_per_tree_and_shard(client: Redis, prefix: str) -> None:
    """Asking about many ids of one shard keeps one entry; another shard adds one."""
    async with Tracker(client, prefix=prefix) as tracker:
        await tracker.mark_event("active", 3, AT)
        await tracker.mark_event("paid", 3, AT)
        answers = [await tracker.contains(NOV & PAID, uid) for uid in range(10)]
        assert answers == [uid == 3 for uid in range(10)]
        lookups = parts(tracker).reader._lookups  # pyright: ignore[reportPrivateUsage]
        assert len(lookups) == 1
        assert not await tracker.contains(NOV & PAID, 2**20 + 3)
        assert len(lookups) == 2
