"""Counting on the client (``Tracker(reads="client")``): bitmaps read, combined here.

Only ``GETRANGE`` and the registry check go to Redis, so a read-only user can count; the
trees are evaluated with Python ints and counted with ``int.bit_count``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._execute import Executor, Group, merge_groups
from ._options import CLIENT_READ_BYTES
from ._plan import KeyRef, Node, evaluate, leaves_of
from ._replies import Replies, as_int, as_iterable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from ._keys import KeySchema
    from ._plan import Command
    from ._state import ShardRegistry

__all__ = ["count_on_client"]

_MIN_WINDOW = 4096


async def count_on_client(
    executor: Executor,
    schema: KeySchema,
    registry: ShardRegistry,
    nodes: Sequence[Node],
    refresh: Callable[[], Awaitable[None]],
) -> list[int]:
    """Count resolved trees on the client (``reads="client"``): reads only, no writes.

    Every shard's distinct bitmaps are read with ``GETRANGE`` in windows (see
    :data:`CLIENT_READ_BYTES`), combined with Python int operations and counted with
    ``int.bit_count``. The registry is checked as on the server path (``SCARD`` or
    ``SMEMBERS`` in the first round trip). A window is read again further on only
    where one of its bitmaps filled it, so with the default 128 KiB shards each
    shard is read once: ``ceil(shards * L / (CLIENT_READ_BYTES // 128 KiB))`` round
    trips per node (one for up to 256 bitmap-shards), plus one for shards the
    registry names that the tracker did not know.
    """
    totals = [0] * len(nodes)
    leaves: list[KeyRef] = list(dict.fromkeys(leaf for n in nodes for leaf in leaves_of(n)))
    queried: set[int] = set()
    pending = registry.sorted()
    while True:
        loaded = registry.loaded
        check: Command | None = ("SCARD" if loaded else "SMEMBERS", schema.registry_key)
        if registry.fixed:  # the layout's shards: no registry to check
            check = None
        reply = await _read_counts(executor, schema, nodes, leaves, pending, check, totals)
        if check is None:
            return totals
        queried.update(pending)
        if loaded and as_int(reply) == len(queried):
            return totals
        if loaded:
            await refresh()
        else:
            registry.learn(as_iterable(reply))
        pending = sorted(registry.known - queried)
        if not pending:
            return totals


async def _read_counts(
    executor: Executor,
    schema: KeySchema,
    nodes: Sequence[Node],
    leaves: Sequence[KeyRef],
    shards: Sequence[int],
    check: Command | None,
    totals: list[int],
) -> object:
    """Read ``shards`` window by window, adding each tree's count to ``totals``.

    :returns: the reply to ``check`` (if any), which rides along with the first round trip
    """
    shard_bytes = schema.bitmap_bytes
    width = max(1, len(leaves))
    window = min(shard_bytes, max(_MIN_WINDOW, CLIENT_READ_BYTES // width))
    per_trip = max(1, CLIENT_READ_BYTES // (width * window))
    work: list[tuple[int, int]] = [(shard, 0) for shard in shards]
    checked: object = None
    first = True
    while first or work:
        batch, work = work[:per_trip], work[per_trip:]
        groups: list[Group] = (
            [Group(schema.registry_key, [check])] if first and check is not None else []
        )
        for shard, start in batch:
            keys = [leaf.key(schema, shard) for leaf in leaves]
            end = start + window - 1
            groups.append(Group(keys[0], [("GETRANGE", key, start, end) for key in keys]))
        if executor.is_cluster:
            results = await executor.run(groups)
        else:
            merged = await executor.run(merge_groups(groups))
            flat = iter(merged[0])
            results = [Replies(next(flat) for _ in group.commands) for group in groups]
        if first and check is not None:
            checked = results.pop(0)[0]
        first = False
        for (shard, start), result in zip(batch, results, strict=True):
            replies = result.each_bytes()
            size = max(map(len, replies), default=0)
            if size:
                values: dict[KeyRef, int] = {
                    leaf: int.from_bytes(r.ljust(size, b"\0"), "big")
                    for leaf, r in zip(leaves, replies, strict=True)
                }
                for i, node in enumerate(nodes):
                    totals[i] += evaluate(node, values).bit_count()
            if size == window and start + window < shard_bytes:
                work.append((shard, start + window))  # a bitmap goes on: read on
    return checked
