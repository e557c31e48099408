"""Copy every event bitmap from one key layout to another: bitmapist's into bitlens', and back.

:func:`migrate` finds the source's bitmaps with ``SCAN``, reads each in bounded
``GETRANGE`` chunks (never one ``GET`` of a whole bitmap), cuts each chunk at the target's
shard boundaries and ORs it into the target's bitmap (and the target's universe) inside
one ``MULTI``/``EXEC`` per chunk, so bits already in the target stay and a chunk copied
twice changes nothing. A checkpoint under the target prefix lists the bitmaps already
copied, so an interrupted run resumes where it stopped; a verification pass compares every
bitmap's count on both sides. A dry run reports what would be copied and an upper bound of
the target's memory, reading only key lengths.

Only event bitmaps move (every period, and UniqueEvents): the target's universe and shard
registry are built as the bits arrive; temp keys, id maps and the source's universe stay
behind. Time-to-live settings are not copied.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import WatchError

from ._exceptions import CannotMigrate
from ._execute import Group
from ._expr import EventTemplate, Expr, UniqueEvents
from ._keys import EventKey
from ._tracker import parts

if TYPE_CHECKING:
    from collections.abc import Callable

    from redis.asyncio import Redis

    from ._tracker import Tracker
    from ._writes import Command

__all__ = ["CHUNK_BYTES", "KEY_OVERHEAD", "MigrationReport", "checkpoint_key", "migrate"]

CHUNK_BYTES = 64 * 1024
"""Bytes of a source bitmap read per ``GETRANGE`` (and written per target transaction)."""

KEY_OVERHEAD = 64
"""Bytes of Redis' own bookkeeping per key, for the dry run's memory estimate."""

_VERIFY_BATCH = 200


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What a migration found, copied and checked.

    :param keys: event bitmaps found in the source
    :param bytes: their total length in bytes
    :param copied: bitmaps copied by this run
    :param resumed: bitmaps the checkpoint said an earlier run had copied (skipped)
    :param target_keys: at most this many keys in the target (bitmaps and universes)
    :param target_bytes: at most this many bytes of target memory (values plus
        :data:`KEY_OVERHEAD` per key)
    :param verified: bitmaps whose counts were compared (0 on a dry run or without verify)
    :param mismatches: ``(key, source count, target count)`` of every bitmap that differs
    :param dry_run: whether nothing was written
    """

    keys: int
    bytes: int
    copied: int
    resumed: int
    target_keys: int
    target_bytes: int
    verified: int
    mismatches: tuple[tuple[EventKey, int, int], ...]
    dry_run: bool

    @property
    def ok(self) -> bool:
        """Whether every verified count matched."""
        return not self.mismatches


def checkpoint_key(target: Tracker) -> str:
    """The name of the set listing the source keys copied into ``target`` so far.

    It lives under the target prefix and is no key of the target's layout (its name
    parses to nothing), so no query or listing ever mistakes it for data.

    :param target: the target tracker
    """
    return f"{target.schema.registry_key}:migrated"


@dataclass(frozen=True, slots=True)
class _Source:
    name: str  # the source key, as SCAN returned it (decoded)
    key: EventKey
    length: int


async def _discover(source: Tracker) -> list[_Source]:
    """Every event bitmap of the source, with its length (sorted, for a stable order)."""
    schema = source.schema
    found: dict[str, EventKey] = {}
    for pattern in schema.scan_patterns:
        async for raw in source.client.scan_iter(match=pattern, count=1000):
            parsed = schema.parse_scanned(raw)
            if isinstance(parsed, EventKey):
                found[raw.decode() if isinstance(raw, bytes) else raw] = parsed
    names = sorted(found)
    lengths: list[int] = []
    for lo in range(0, len(names), 500):
        pipe = source.client.pipeline(transaction=False)
        for name in names[lo : lo + 500]:
            pipe.strlen(name)
        lengths += [int(n) for n in await pipe.execute()]
    return [_Source(n, found[n], length) for n, length in zip(names, lengths, strict=True)]


def _pieces(
    source: Tracker, target: Tracker, item: _Source, start: int, data: bytes
) -> list[tuple[int, int, bytes]]:
    """Cut ``data`` (bytes ``start``.. of a source bitmap) into ``(shard, byte, bytes)``
    pieces of the target, one per target shard it covers; all-zero pieces are dropped."""
    first = source.schema.user_id(item.key.shard, start * 8)
    out: list[tuple[int, int, bytes]] = []
    offset = 0
    while offset < len(data):
        uid = first + offset * 8
        shard, bit = target.schema.shard_of(uid), target.schema.bit_of(uid)
        room = target.schema.bitmap_bytes - bit // 8
        piece = data[offset : offset + room]
        if piece.strip(b"\0"):
            out.append((shard, bit // 8, piece))
        offset += len(piece)
    return out


def _check_fits(source: Tracker, target: Tracker, items: list[_Source]) -> None:
    """Refuse, before anything is written, a source holding ids the target cannot hold."""
    for item in items:
        if not item.length:
            continue
        last = source.schema.user_id(item.key.shard, item.length * 8 - 1)
        if last > target.max_user_id:
            raise CannotMigrate(
                f"{item.name} may hold ids up to {last}, but the target holds at most "
                f"{target.max_user_id}"
            )


def _estimate(source: Tracker, target: Tracker, items: list[_Source]) -> tuple[int, int]:
    """An upper bound of the target's keys and bytes, from the source lengths only."""
    keys: set[tuple[str, object, int]] = set()
    universe: dict[int, int] = {}
    size = 0
    for item in items:
        start = source.schema.user_id(item.key.shard, 0)
        offset = 0
        while offset < item.length:
            uid = start + offset * 8
            shard, byte = target.schema.shard_of(uid), target.schema.bit_of(uid) // 8
            piece = min(item.length - offset, target.schema.bitmap_bytes - byte)
            keys.add((item.key.event, item.key.period, shard))
            size += piece
            universe[shard] = max(universe.get(shard, 0), byte + piece)
            offset += piece
    if target.schema.universe == "absent":
        universe = {}
    count = len(keys) + len(universe)
    return count, size + sum(universe.values()) + count * KEY_OVERHEAD


async def _copy(
    source: Tracker, target: Tracker, item: _Source, chunk: int, registered: set[int]
) -> None:
    """Copy one source bitmap chunk by chunk, OR'ing each piece into the target."""
    schema = target.schema
    for start in range(0, item.length, chunk):
        data = _as_bytes(await source.client.getrange(item.name, start, start + chunk - 1))
        for shard, byte, piece in _pieces(source, target, item, start, data):
            if schema.shards is None and shard not in registered:
                # Listed before its bits land, so no reader ever misses a shard with data.
                await target.client.sadd(schema.registry_key, shard)
                registered.add(shard)
            keys = [schema.event_key(item.key.event, item.key.period, shard)]
            if schema.universe != "absent":
                keys.append(schema.universe_key(shard))
            if isinstance(target.client, RedisCluster):
                await _or_through_temp(target, shard, keys, byte, piece)
            else:
                await _or_in_place(target.client, keys, byte, piece)


async def _or_in_place(client: Redis, keys: list[str], byte: int, piece: bytes) -> None:
    """OR ``piece`` into each key at ``byte``: read, OR, write under WATCH (retried)."""
    async with client.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(*keys)
                olds = [
                    _as_bytes(await pipe.getrange(key, byte, byte + len(piece) - 1)) for key in keys
                ]
                pipe.multi()  # type: ignore[no-untyped-call]
                for key, old in zip(keys, olds, strict=True):
                    pipe.setrange(key, byte, _or(piece, old))
                await pipe.execute()
                return
            except WatchError:  # a concurrent write to one of the keys: read again
                continue


def _as_bytes(reply: bytes | str) -> bytes:
    return reply.encode() if isinstance(reply, str) else reply


def _or(piece: bytes, old: bytes) -> bytes:
    size = len(piece)
    merged = int.from_bytes(piece, "big") | int.from_bytes(old.ljust(size, b"\0"), "big")
    return merged.to_bytes(size, "big")


async def _or_through_temp(
    target: Tracker, shard: int, keys: list[str], byte: int, piece: bytes
) -> None:
    """OR ``piece`` into each key at ``byte`` with a temp key in the shard's slot, in one
    MULTI/EXEC on the shard's node (a cluster: WATCH cannot span its pipelines)."""
    temp = target.schema.temp_key(shard, secrets.token_hex(8), 0)
    commands: list[Command] = [("SETRANGE", temp, byte, piece)]
    commands += [("BITOP", "OR", key, key, temp) for key in keys]
    commands.append(("DEL", temp))
    await parts(target).executor.run([Group(keys[0], commands, transaction=True)])


def _leaf(key: EventKey) -> Expr:
    return (
        UniqueEvents(key.event) if key.period is None else EventTemplate(key.event).at(key.period)
    )


async def _verify(
    source: Tracker, target: Tracker, items: list[_Source]
) -> tuple[int, tuple[tuple[EventKey, int, int], ...]]:
    """Compare each (event, period)'s count on both sides; return how many and mismatches."""
    by_leaf: dict[tuple[str, object], list[_Source]] = {}
    for item in items:
        by_leaf.setdefault((item.key.event, item.key.period), []).append(item)
    groups = list(by_leaf.values())
    mismatches: list[tuple[EventKey, int, int]] = []
    for lo in range(0, len(groups), _VERIFY_BATCH):
        batch = groups[lo : lo + _VERIFY_BATCH]
        pipe = source.client.pipeline(transaction=False)
        for group in batch:
            for item in group:
                pipe.bitcount(item.name)
        counts = iter(int(n) for n in await pipe.execute())
        theirs = [sum(next(counts) for _ in group) for group in batch]
        ours = await target.count_many([_leaf(group[0].key) for group in batch])
        for group, want, got in zip(batch, theirs, ours, strict=True):
            if want != got:
                mismatches.append((group[0].key, want, got))
    return len(groups), tuple(mismatches)


async def migrate(
    source: Tracker,
    target: Tracker,
    *,
    dry_run: bool = False,
    verify: bool = True,
    fresh: bool = False,
    chunk_bytes: int = CHUNK_BYTES,
    progress: Callable[[int, int], object] | None = None,
) -> MigrationReport:
    """Copy every event bitmap of ``source``'s layout into ``target``'s.

    Either side may be bitmapist's layout or bitlens' own, on one server or (bitlens'
    layout) a Redis Cluster. Bits already in the target are kept (each chunk is OR'ed
    in), so a run can be repeated; the source is only read. Stop the source's writers
    first, or run again with ``fresh=True`` afterwards to pick up what they added.

    Example::

        source = Tracker(url, schema=BitmapistSchema())
        target = Tracker(url, prefix="bl")
        report = await migrate(source, target, progress=print)
        assert report.ok

    :param source: the tracker whose keys are read
    :param target: the tracker whose keys are written
    :param dry_run: only report the keys, bytes and target size; write nothing
    :param verify: compare every bitmap's count on both sides at the end
    :param fresh: ignore (and clear) the checkpoint of an earlier run
    :param chunk_bytes: bytes read per ``GETRANGE`` (at least 1)
    :param progress: called with ``(bytes done, bytes in all)`` after each bitmap
    :raises CannotMigrate: when the source holds ids the target cannot hold (e.g. ids of
        2**32 or more into bitmapist's layout), before anything is written
    """
    if chunk_bytes < 1:
        raise CannotMigrate(f"chunk_bytes must be at least 1, got {chunk_bytes}")
    items = await _discover(source)
    total = sum(item.length for item in items)
    _check_fits(source, target, items)
    target_keys, target_bytes = _estimate(source, target, items)
    if dry_run:
        return MigrationReport(
            len(items), total, 0, 0, target_keys, target_bytes, 0, (), dry_run=True
        )
    checkpoint = checkpoint_key(target)
    if fresh:
        await target.client.delete(checkpoint)
    stored: set[bytes | str] = await target.client.smembers(checkpoint)
    done = {_as_bytes(m).decode() for m in stored}
    copied = resumed = 0
    moved = 0
    registered: set[int] = set()
    for item in items:
        if item.name in done:
            resumed += 1
        else:
            await _copy(source, target, item, chunk_bytes, registered)
            await target.client.sadd(checkpoint, item.name)
            copied += 1
        moved += item.length
        if progress is not None:
            progress(moved, total)
    verified, mismatches = await _verify(source, target, items) if verify else (0, ())
    if not mismatches:
        await target.client.delete(checkpoint)
    return MigrationReport(
        len(items),
        total,
        copied,
        resumed,
        target_keys,
        target_bytes,
        verified,
        mismatches,
        dry_run=False,
    )
