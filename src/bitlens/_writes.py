"""Write batches: marks grouped per key and turned into few commands (pure, no I/O).

Every mark sets one bit in each of its period bitmaps and in its shard's universe. A
:class:`WriteBatch` collects marks and emits, per key, the cheapest exact command:

* one bit: ``SETBIT key offset value``;
* a few bits: one ``BITFIELD key SET u1 o1 v SET u1 o2 v ...``;
* many bits (at least one per ``IMAGE_BYTES_PER_BIT`` bytes of the shard's bitmap, e.g. a
  month's bitmap in a batch of thousands of marks): the bits are drawn into a byte image on
  the client and OR'ed in on the server — ``SETRANGE tmp lo image``, ``BITOP OR key key
  tmp``, ``DEL tmp`` — three commands however many bits (the temp key carries the shard's
  hash tag and lives inside the same MULTI/EXEC).

Bits grouped outside the batch — a vectorized backfill's (:mod:`bitlens._bulk`) — come in
as :class:`PreparedBits` per key, already offsets or a byte image, and are emitted the
same way.

The executor sends a batch as one MULTI/EXEC per node, so each shard's marks are atomic.
Bit values follow the order of the calls: marking then unmarking a bit in one batch
leaves it clear.

Expiry: with ``expire_after`` every write to a key of that granularity carries ``EXPIREAT
<end of its period + ttl>`` in the same MULTI/EXEC, so a key re-created after a flush or a
restart gets its deadline again, and a ``BITOP`` (which drops a key's TTL) is followed by
it. The deadline is computed from the period, so every process sets the same one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeAlias

from ._keys import KeySchema, ShardedSchema
from ._periods import Day, Hour, Month, Period, Week

if TYPE_CHECKING:
    import datetime as _dt
    from collections.abc import Callable, Mapping, Sequence


__all__ = ["BitfieldSets", "Command", "Granularity", "PreparedBits", "WriteBatch"]

Granularity: TypeAlias = Literal["hour", "day", "week", "month"]
Command: TypeAlias = "tuple[str | int | bytes | BitfieldSets, ...]"

_IMAGE_MIN_BITS = 24
"""Below this many bits a key is written with SETBIT/BITFIELD, never with an image."""

IMAGE_BYTES_PER_BIT = 1024
"""An image is used once a key gets at least one bit per this many bytes of its shard.

Redis' cost of a byte image grows with the key's length, not with its bits: ``SETRANGE``
allocates and zero-fills the temp key up to the image's end and ``BITOP OR`` walks the
whole key (at most ``2**shard_bits / 8`` bytes); a ``BITFIELD SET`` costs the server a
fixed amount per bit. Measured on redis 6.2 and 7.0 (``nox -s bench``, grouping table):
an image of a 128 KiB key costs the server about as much as ~150-300 BITFIELD bits and
builds on the client in about the time it takes to format them.
"""

_GRANULARITY: dict[type[Period], Granularity] = {
    Hour: "hour",
    Day: "day",
    Week: "week",
    Month: "month",
}


@dataclass(slots=True)
class _KeyBits:
    shard: int
    period: Period | None
    ones: set[int] = field(default_factory=lambda: set[int]())
    zeros: set[int] = field(default_factory=lambda: set[int]())


@dataclass(slots=True)
class WriteBatch:
    """Marks collected for one round trip, emitted as few commands per key.

    Example::

        batch = WriteBatch(schema)
        batch.add("active", 42, [Month(2026, 11), Week(2026, 48), Day(2026, 11, 27)], 1)
        commands = batch.commands(token="f3a9", new_shards=batch.shards)

    :param schema: the key schema
    :param expire_after: a time to live per granularity, counted from the end of each period
    """

    schema: KeySchema
    expire_after: Mapping[Granularity, _dt.timedelta] = field(default_factory=dict)
    _keys: dict[str, _KeyBits] = field(default_factory=dict)
    _universe: dict[int, set[int]] = field(default_factory=dict)
    _pending: dict[tuple[str, int], tuple[Sequence[Period | None], list[int]]] = field(
        default_factory=dict
    )
    _prepared: list[tuple[str, int, Period | None, PreparedBits]] = field(default_factory=list)
    marks: int = 0
    _shift: int = -1

    def __post_init__(self) -> None:
        if type(self.schema) is ShardedSchema:  # inline its arithmetic (not a subclass's)
            self._shift = self.schema.shard_bits

    def __len__(self) -> int:
        return self.marks

    @property
    def shards(self) -> set[int]:
        """The shards this batch writes to."""
        self._settle()
        found = {bits.shard for bits in self._keys.values()} | set(self._universe)
        found.update(shard for _, shard, _, _ in self._prepared)
        return found

    @property
    def image_bits(self) -> int:
        """The fewest bits of one key for which a byte image costs Redis less than BITFIELD."""
        key_bytes = 1 << max(self.schema.shard_bits - 3, 0)  # a shard key's longest length
        return max(_IMAGE_MIN_BITS, -(-key_bytes // IMAGE_BYTES_PER_BIT))

    def add_prepared(
        self, event: str, period: Period | None, shard: int, bits: PreparedBits
    ) -> None:
        """Add bits to set in one event key, already grouped (e.g. by a vectorized backfill).

        The bits are OR'ed in: bits already set in the key stay set. Add the ids to the
        shard's universe with :meth:`add_prepared_universe` and count the marks they stand
        for with :meth:`add_marks`.

        :param event: a validated event name
        :param period: the period of the key (``None``: UniqueEvents)
        :param shard: the shard of the key
        :param bits: the bits, as offsets or as a byte image
        """
        self._prepared.append((self.schema.event_key(event, period, shard), shard, period, bits))

    def add_prepared_universe(self, shard: int, bits: PreparedBits) -> None:
        """Add bits to set in a shard's universe, already grouped.

        :param shard: the shard
        :param bits: the bits, as offsets or as a byte image
        """
        if self.schema.universe != "absent":  # a layout without one keeps no such bits
            self._prepared.append((self.schema.universe_key(shard), shard, None, bits))

    def add_marks(self, count: int) -> None:
        """Count ``count`` marks written by :meth:`add_prepared` bits.

        :param count: how many marks the prepared bits stand for
        """
        self.marks += count

    def add(self, event: str, user_id: int, periods: Sequence[Period | None], value: int) -> None:
        """Add one validated mark (``value`` 1) or unmark (``value`` 0).

        Marks are only appended to a list per (event, periods) here — the hot path of
        ``mark_events`` — and spread into per-key bit sets with set operations later.

        :param event: a validated event name
        :param user_id: a validated user id
        :param periods: the periods to write (``None``: the UniqueEvents bitmap); pass the
            same sequence object for marks of the same hour (the tracker caches them) so
            they group together; identity is checked, not equality
        :param value: 1 to set the bits, 0 to clear them (the universe keeps the id)
        """
        self.marks += 1
        if value:
            group = (event, id(periods))
            found = self._pending.get(group)
            if found is None or found[0] is not periods:
                if found is not None:  # an id() reused by another object: settle the old one
                    self._settle()
                found = self._pending[group] = (periods, [])
            found[1].append(user_id)
            return
        self._settle()  # marks before this unmark are applied first, in order
        for shard, bits in self._split([user_id]).items():
            for period in periods:
                target = self._bits(event, period, shard)
                target.zeros |= bits
                target.ones -= bits

    def _split(self, user_ids: list[int]) -> dict[int, set[int]]:
        """Group ids by shard, as bit offsets."""
        shift = self._shift
        if shift < 0:
            schema = self.schema
            by_shard: dict[int, set[int]] = {}
            for uid in user_ids:
                by_shard.setdefault(schema.shard_of(uid), set()).add(schema.bit_of(uid))
            return by_shard
        mask = (1 << shift) - 1
        lo, hi = min(user_ids) >> shift, max(user_ids) >> shift
        if lo == hi:  # the common case: one shard, one set comprehension
            return {lo: {uid & mask for uid in user_ids}}
        by_shard = {}
        for uid in user_ids:
            by_shard.setdefault(uid >> shift, set()).add(uid & mask)
        return by_shard

    def _settle(self) -> None:
        """Spread the pending marks into per-key bit sets and the universe."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        universe = self._universe
        for (event, _), (periods, user_ids) in pending.items():
            for shard, bits in self._split(user_ids).items():
                for period in periods:
                    target = self._bits(event, period, shard)
                    target.ones |= bits
                    if target.zeros:
                        target.zeros -= bits
                seen = universe.get(shard)
                if seen is None:
                    universe[shard] = set(bits)
                else:
                    seen |= bits

    def _bits(self, event: str, period: Period | None, shard: int) -> _KeyBits:
        key = self.schema.event_key(event, period, shard)
        bits = self._keys.get(key)
        if bits is None:
            bits = self._keys[key] = _KeyBits(shard, period)
        return bits

    def commands(self, token: str, new_shards: set[int]) -> list[Command]:
        """Return the commands that apply the batch (to be sent inside MULTI/EXEC).

        :param token: a random token for the temp keys of byte images
        :param new_shards: shards to add to the registry
        """
        out = [command for commands in self.by_shard(token).values() for command in commands]
        if new_shards:
            out.append(("SADD", self.schema.registry_key, *sorted(new_shards)))
        return out

    def by_shard(self, token: str) -> dict[int, list[Command]]:
        """Return the commands of each shard (all keys of a shard share one hash slot).

        :param token: a random token for the temp keys of byte images
        """
        self._settle()
        out: dict[int, list[Command]] = {}
        temp = _TempNames(self.schema, token)
        image_bits = self.image_bits
        for key, bits in self._keys.items():
            commands = out.setdefault(bits.shard, [])
            if bits.ones:
                _emit(commands, key, bits.ones, 1, bits.shard, temp, image_bits)
            if bits.zeros:
                _emit(commands, key, bits.zeros, 0, bits.shard, temp, image_bits)
            self._expire(commands, key, bits.period)
        for shard, offsets in self._universe.items():
            if self.schema.universe == "absent":  # the layout keeps no universe
                break
            universe = self.schema.universe_key(shard)
            _emit(out.setdefault(shard, []), universe, offsets, 1, shard, temp, image_bits)
        for key, shard, period, prepared in self._prepared:
            commands = out.setdefault(shard, [])
            prepared.emit(commands, key, temp(shard) if prepared.image else "")
            self._expire(commands, key, period)
        return out

    def _expire(self, out: list[Command], key: str, period: Period | None) -> None:
        if period is None or not self.expire_after:
            return
        ttl = self.expire_after.get(_GRANULARITY[type(period)])
        if ttl is not None:
            out.append(("EXPIREAT", key, int((period.end + ttl).timestamp())))


@dataclass(slots=True)
class _TempNames:
    schema: KeySchema
    token: str
    count: int = 0

    def __call__(self, shard: int) -> str:
        self.count += 1
        return self.schema.temp_key(shard, self.token, self.count)


def _emit(
    out: list[Command],
    key: str,
    offsets: set[int],
    value: int,
    shard: int,
    temp: Callable[[int], str],
    image_bits: int,
) -> bool:
    """Append the cheapest exact command(s) for ``offsets``; return whether an image was used.

    A byte image is used for ``image_bits`` bits or more (a set, never a clear).
    """
    if len(offsets) == 1:
        out.append(("SETBIT", key, next(iter(offsets)), value))
        return False
    ordered = sorted(offsets)
    lo, hi = ordered[0] >> 3, ordered[-1] >> 3
    span = hi - lo + 1
    if value and len(ordered) >= image_bits:
        image = bytearray(span)
        base = lo << 3
        for offset in ordered:
            rel = offset - base
            image[rel >> 3] |= 0x80 >> (rel & 7)
        name = temp(shard)
        out.append(("SETRANGE", name, lo, bytes(image)))
        out.append(("BITOP", "OR", key, key, name))
        out.append(("DEL", name))
        return True
    # BITFIELD key SET u1 <o1> v SET u1 <o2> v ...: one plain value for the whole run
    # (the transport formats it from pre-encoded templates, at C speed).
    out.append(("BITFIELD", key, BitfieldSets(tuple(ordered), value)))
    return False


@dataclass(frozen=True, slots=True)
class BitfieldSets:
    """The arguments ``SET u1 <offset> <value>`` of a ``BITFIELD``, once per offset.

    A plain value standing for ``4 * len(offsets)`` arguments; :meth:`arguments` spells
    them out.

    :param offsets: the bit offsets, ascending, each at most once
    :param value: the bit value each offset is set to (0 or 1)
    """

    offsets: tuple[int, ...]
    value: int

    def arguments(self) -> tuple[str | int, ...]:
        """Return the arguments one by one: ``("SET", "u1", o1, v, "SET", "u1", o2, v, ...)``."""
        return tuple(a for o in self.offsets for a in ("SET", "u1", o, self.value))


@dataclass(frozen=True, slots=True)
class PreparedBits:
    """Bits to set in one key, grouped outside a :class:`WriteBatch` (e.g. vectorized).

    Either ``offsets`` (ascending, each once: sent as ``SETBIT`` or one ``BITFIELD``) or a
    byte ``image`` whose first byte is byte ``lo`` of the key (bit 0 of a byte is its most
    significant bit, as in ``SETBIT``): sent as ``SETRANGE tmp lo image``, ``BITOP OR key
    key tmp``, ``DEL tmp`` in the same transaction. Either way the bits are OR'ed in.

    :param offsets: the bit offsets (empty when ``image`` is given)
    :param lo: the byte offset of the image's first byte
    :param image: the byte image (empty when ``offsets`` are given)
    """

    offsets: tuple[int, ...] = ()
    lo: int = 0
    image: bytes = b""

    def emit(self, out: list[Command], key: str, temp: str) -> None:
        """Append the commands that OR these bits into ``key``.

        :param out: the commands of the key's shard
        :param key: the key
        :param temp: a temp key name of the shard (used for an image only)
        """
        if self.image:
            out.append(("SETRANGE", temp, self.lo, self.image))
            out.append(("BITOP", "OR", key, key, temp))
            out.append(("DEL", temp))
        elif len(self.offsets) == 1:
            out.append(("SETBIT", key, self.offsets[0], 1))
        elif self.offsets:
            out.append(("BITFIELD", key, BitfieldSets(self.offsets, 1)))
