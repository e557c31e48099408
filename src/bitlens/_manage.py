"""Managing stored data: list events and their periods, delete an event or a prefix, erase a user.

Every walk of the keyspace is ``SCAN`` with a ``MATCH`` pattern the key schema gives
(never ``KEYS``), and every key found is confirmed with :meth:`~bitlens.KeySchema.parse`
before it is touched, so another prefix's keys and foreign keys under the prefix are never
read or deleted. Deletions are ``UNLINK`` (the memory is freed off the main thread) in
batches of at most :data:`DELETE_BATCH` keys; on a Redis Cluster each batch is grouped by
hash slot and sent as one pipeline, one round trip per node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from ._exceptions import InvalidOption
from ._execute import Group
from ._keys import EventKey, UniverseKey, event_name_problem, period_suffix

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable

    from redis.asyncio import Redis
    from redis.asyncio.cluster import ClusterNode

    from ._execute import Executor
    from ._keys import KeySchema
    from ._periods import Period
    from ._state import ShardRegistry

__all__ = ["DELETE_BATCH", "SCAN_COUNT", "Erasure", "Manager"]

SCAN_COUNT = 1000
"""Keys each SCAN step looks at (a hint to the server: one step never blocks it for long)."""

DELETE_BATCH = 500
"""The most keys one ``UNLINK`` (or one erase pipeline) carries."""

_KIND_ORDER = "MWDHU"  # month, week, day, hour, unique: the order periods are listed in


@dataclass(frozen=True, slots=True)
class Erasure:
    """What :meth:`~bitlens.Tracker.erase_user` cleared.

    :param user_id: the id erased
    :param cleared: every event bitmap whose bit for the id was set (and is now clear),
        ordered by event and period
    :param universe: whether the id was in its shard's universe (and is no longer)
    """

    user_id: int
    cleared: tuple[EventKey, ...]
    universe: bool

    def __len__(self) -> int:
        """How many bits were cleared (the universe's included)."""
        return len(self.cleared) + int(self.universe)

    def __bool__(self) -> bool:
        """Whether anything was cleared (``False`` when the id had no bit anywhere)."""
        return len(self) > 0


def period_order(period: Period | None) -> tuple[int, str]:
    """A sort key: months, then weeks, days, hours and the Unique bitmap, each by time.

    :param period: a period, or ``None`` for UniqueEvents
    """
    suffix = period_suffix(period)
    return _KIND_ORDER.index(suffix[0]), suffix


def check_name_prefix(starting_with: object) -> str:
    """Return ``starting_with`` if it can begin an event name (``""``: every name).

    :raises InvalidOption: for a non-``str`` or a text an event name cannot start with
    """
    if not isinstance(starting_with, str) or (
        starting_with and event_name_problem(starting_with) is not None
    ):
        raise InvalidOption(
            "starting_with", starting_with, "the start of an event name (a str; '' for all)"
        )
    return starting_with


class Manager:
    """Lists, deletes and erases the data of one key schema.

    :param executor: sends the deletions and bit reads/writes (one round trip per node)
    :param client: the client whose public ``SCAN`` walks the keyspace
    :param schema: the key schema: the only code that knows key names
    :param registry: the tracker's memory of shards holding data (forgotten by
        :meth:`delete_all`)
    """

    def __init__(
        self,
        executor: Executor,
        client: Redis | RedisCluster,
        schema: KeySchema,
        registry: ShardRegistry,
    ) -> None:
        self._executor = executor
        self._client = client
        self._schema = schema
        self._registry = registry

    # -- listing -----------------------------------------------------------------------------

    async def scan(self, pattern: str, node: ClusterNode | None = None) -> AsyncIterator[bytes]:
        """Yield each key ``SCAN MATCH pattern`` finds, once.

        :param pattern: a SCAN MATCH pattern from the schema
        :param node: on a cluster, the one node to walk (``None``: every master)
        """
        seen: set[bytes] = set()
        client = self._client
        if node is not None and isinstance(client, RedisCluster):
            found = client.scan_iter(match=pattern, count=SCAN_COUNT, target_nodes=node)
        else:
            found = client.scan_iter(match=pattern, count=SCAN_COUNT)
        keys = cast("AsyncIterator[bytes]", found)
        async for key in keys:
            if key not in seen:  # SCAN may return a key more than once
                seen.add(key)
                yield key

    async def event_names(self, starting_with: str = "") -> list[str]:
        """Return the sorted names of the events that have bitmaps, optionally filtered.

        :param starting_with: only names that start with this text (``""``: every name)
        """
        found: set[str] = set()
        pattern = self._schema.events_pattern(starting_with)
        async for key in self.scan(pattern):
            parsed = self._schema.parse_scanned(key)
            if isinstance(parsed, EventKey) and parsed.event.startswith(starting_with):
                found.add(parsed.event)
        return sorted(found)

    async def event_periods(self, event: str) -> list[Period | None]:
        """Return the periods ``event`` has bitmaps for (``None``: its Unique bitmap).

        Months first, then ISO weeks, days, hours and the Unique bitmap, each in time order.

        :param event: a validated event name
        """
        found: set[Period | None] = set()
        async for _, key in self._keys_of(event):
            found.add(key.period)
        return sorted(found, key=period_order)

    async def _keys_of(self, event: str) -> AsyncIterator[tuple[str, EventKey]]:
        """Yield every bitmap key of ``event`` (all periods and shards), and what it holds."""
        async for key in self.scan(self._schema.event_pattern(event)):
            parsed = self._schema.parse_scanned(key)
            if isinstance(parsed, EventKey) and parsed.event == event:
                yield key.decode(), parsed  # parse_scanned confirmed it is UTF-8

    # -- deleting ----------------------------------------------------------------------------

    async def delete_event(
        self, event: str, *, progress: Callable[[int], None] | None = None
    ) -> int:
        """Delete every bitmap of ``event``; return how many keys were removed.

        :param event: a validated event name
        :param progress: called with the running total after each batch
        """
        names = (key async for key, _ in self._keys_of(event))
        return await self._unlink_all(names, progress)

    async def delete_all(self, *, progress: Callable[[int], None] | None = None) -> int:
        """Delete every key of the schema (bitmaps, universes, id maps, the registry).

        :param progress: called with the running total after each batch
        """

        async def confirmed() -> AsyncIterator[str]:
            for pattern in self._schema.scan_patterns:
                async for key in self.scan(pattern):
                    if self._schema.parse_scanned(key) is not None:
                        yield key.decode()  # parse_scanned confirmed it is UTF-8

        removed = await self._unlink_all(confirmed(), progress)
        self._registry.forget()
        return removed

    async def _unlink_all(
        self, names: AsyncIterator[str], progress: Callable[[int], None] | None
    ) -> int:
        """UNLINK ``names`` in bounded batches; return how many existed."""
        removed = 0
        batch: list[str] = []
        async for name in names:
            batch.append(name)
            if len(batch) >= DELETE_BATCH:
                removed += await self._unlink(batch)
                batch = []
                if progress is not None:
                    progress(removed)
        if batch:
            removed += await self._unlink(batch)
            if progress is not None:
                progress(removed)
        return removed

    async def _unlink(self, keys: list[str]) -> int:
        """UNLINK ``keys`` in one round trip (one per node on a cluster)."""
        cluster = isinstance(self._client, RedisCluster)
        groups = [Group(g[0], [("UNLINK", *g)]) for g in (_by_slot(keys) if cluster else [keys])]
        return sum(replies.int_at(0) for replies in await self._executor.run(groups))

    # -- erasing -----------------------------------------------------------------------------

    async def erase_user(self, user_id: int) -> Erasure:
        """Clear ``user_id``'s bit in every bitmap of its shard; return what was set.

        Only keys of the id's shard are read or written (on a cluster, only the node that
        holds its slot is scanned). Each batch reads the bits (``GETBIT``, which never
        grows a key) and clears the set ones (``SETBIT … 0``, one bit: other ids' bits are
        never touched), two round trips per batch.

        :param user_id: a validated user id
        """
        schema = self._schema
        shard, bit = schema.shard_of(user_id), schema.bit_of(user_id)
        node = None
        if isinstance(self._client, RedisCluster):
            await self._client.initialize()  # the slot map (a no-op once read)
            node = self._client.get_node_from_key(schema.universe_key(shard))
        cleared: list[EventKey] = []
        universe = False
        batch: list[EventKey | UniverseKey] = []

        async def flush() -> None:
            nonlocal universe
            for key in await self._clear_bits(batch, bit):
                if isinstance(key, UniverseKey):
                    universe = True
                else:
                    cleared.append(key)
            batch.clear()

        async for name in self.scan(schema.shard_pattern(shard), node):
            parsed = schema.parse_scanned(name)
            if isinstance(parsed, (EventKey, UniverseKey)) and parsed.shard == shard:
                batch.append(parsed)
                if len(batch) >= DELETE_BATCH:
                    await flush()
        if batch:
            await flush()
        cleared.sort(key=lambda k: (k.event, period_order(k.period)))
        return Erasure(user_id, tuple(cleared), universe)

    async def _clear_bits(
        self, keys: list[EventKey | UniverseKey], bit: int
    ) -> list[EventKey | UniverseKey]:
        """Clear ``bit`` in each key where it is set; return the keys it was set in."""
        names = [self._schema.build(key) for key in keys]
        # Every key of one shard shares one hash slot: one group, one node.
        found = await self._executor.send([("GETBIT", name, bit) for name in names])
        set_in = [i for i in range(len(names)) if found.int_at(i)]
        if not set_in:
            return []
        before = await self._executor.send([("SETBIT", names[i], bit, 0) for i in set_in])
        # A bit another erase cleared in between was not cleared by this one.
        return [keys[i] for n, i in enumerate(set_in) if before.int_at(n)]


def _by_slot(keys: Iterable[str]) -> list[list[str]]:
    """Group keys by Redis Cluster hash slot (a multi-key command must stay in one slot)."""
    groups: dict[int, list[str]] = {}
    for key in keys:
        groups.setdefault(key_slot(key.encode()), []).append(key)
    return list(groups.values())
