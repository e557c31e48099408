"""The key schema: where each bit of each event lives in Redis (pure, no I/O).

Ids are split into *shards* of ``2**shard_bits`` ids. Every key of one shard carries the
same hash tag, so all events and periods of one id range share one Redis Cluster slot and
every BITOP, temp key and MULTI/EXEC of a query stays inside that slot::

    bl:{7}:active:M2026-11        month bitmap of event "active", ids 7*2**20 .. 8*2**20-1
    bl:{7}:active:W2026-07        ISO week 7 of ISO year 2026
    bl:{7}:active:D2026-01-05     a day
    bl:{7}:active:H2026-01-05T13  an hour (only with hourly tracking)
    bl:{7}:active:U               UniqueEvents (no time dimension)
    bl:{7}:~all                   the universe: every id ever marked in shard 7
    bl:{7}:~tmp:<token>:<n>       a query's temp key (lives inside one MULTI/EXEC)
    bl:~shards                    the set of shard numbers that hold data

Event names may hold ``:``; the period suffix never does, so the last segment of a key is
always its period and two (event, period) pairs never share a key. Names starting with ``~``
are refused, so bitlens' own keys never collide with an event's.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from ._exceptions import InvalidEventName, InvalidPrefix, InvalidUserId
from ._periods import Day, Hour, Month, Period, Week, Year

__all__ = [
    "MAX_USER_ID",
    "KeySchema",
    "ShardedSchema",
    "validate_event_name",
    "validate_user_id",
]

MAX_USER_ID: Final = 2**63 - 1
"""The largest user id bitlens accepts by default (the largest signed 64-bit integer)."""

MAX_EVENT_NAME_LENGTH: Final = 200

_UNSAFE_EVENT = re.compile(r"[\s{}\x00-\x1f\x7f]")
_SAFE_PREFIX = re.compile(r"^[^\s{}\x00-\x1f\x7f]{1,64}$")


def validate_user_id(user_id: object, limit: int = MAX_USER_ID) -> int:
    """Return ``user_id`` if it is an ``int`` from 0 to ``limit``.

    :param user_id: the id to check
    :param limit: the largest id allowed
    :raises InvalidUserId: for ``bool``, non-``int``, negative or too large ids
    """
    if isinstance(user_id, bool) or not isinstance(user_id, int):
        raise InvalidUserId(user_id, limit)
    if not 0 <= user_id <= limit:
        raise InvalidUserId(user_id, limit)
    return int(user_id)


def validate_event_name(name: object) -> str:
    """Return ``name`` if it is safe to embed in a key.

    :param name: the event name to check
    :raises InvalidEventName: if it is not a non-empty ``str`` of at most 200 characters
        without whitespace, control characters, ``{`` or ``}``, or if it starts with ``~``
    """
    if not isinstance(name, str):
        raise InvalidEventName(name, f"must be a str, not {type(name).__name__}")
    if not name:
        raise InvalidEventName(name, "must not be empty")
    if len(name) > MAX_EVENT_NAME_LENGTH:
        raise InvalidEventName(name, f"must be at most {MAX_EVENT_NAME_LENGTH} characters")
    if name.startswith("~"):
        raise InvalidEventName(name, "names starting with '~' are reserved for bitlens")
    bad = _UNSAFE_EVENT.search(name)
    if bad is not None:
        raise InvalidEventName(
            name,
            f"{bad.group()!r} is not allowed (no whitespace, control characters, '{{' or '}}')",
        )
    return name


@lru_cache(maxsize=1 << 16)
def _sharded_event_key(prefix: str, event: str, period: Period | None, shard: int) -> str:
    # Hot path: the same keys are built for every query and every mark.
    return f"{prefix}:{{{shard}}}:{event}:{period_suffix(period)}"


def period_suffix(period: Period | None) -> str:
    """Return the key suffix of a period: zero-padded, sorting chronologically.

    :param period: an Hour, Day, Week or Month (Year has no keys of its own); ``None`` for
        UniqueEvents
    :raises TypeError: for a Year or an unknown period type
    """
    if period is None:
        return "U"
    if isinstance(period, Month):
        return f"M{period.year:04d}-{period.month:02d}"
    if isinstance(period, Week):
        return f"W{period.iso_year:04d}-{period.week:02d}"
    if isinstance(period, Day):
        return f"D{period.year:04d}-{period.month:02d}-{period.day:02d}"
    if isinstance(period, Hour):
        return f"H{period.year:04d}-{period.month:02d}-{period.day:02d}T{period.hour:02d}"
    if isinstance(period, Year):
        raise TypeError("Year has no bitmap of its own; it is the OR of its months")
    raise TypeError(f"unknown period type {type(period).__name__}")


class KeySchema(ABC):
    """How ids, events and periods map to Redis keys and bit offsets.

    The schema is one replaceable object: :class:`ShardedSchema` is the default, and a
    bitmapist-compatible layout can stand in its place.
    """

    __slots__ = ()

    prefix: str
    shard_bits: int

    @abstractmethod
    def shard_of(self, user_id: int) -> int:
        """Return the shard number that holds ``user_id``.

        :param user_id: a validated user id
        """

    @abstractmethod
    def bit_of(self, user_id: int) -> int:
        """Return the bit offset of ``user_id`` inside its shard's bitmaps.

        :param user_id: a validated user id
        """

    @abstractmethod
    def user_id(self, shard: int, bit: int) -> int:
        """Return the user id at ``bit`` of ``shard`` (the inverse of shard_of/bit_of).

        :param shard: a shard number
        :param bit: a bit offset inside that shard
        """

    @abstractmethod
    def event_key(self, event: str, period: Period | None, shard: int) -> str:
        """Return the key of ``event`` in ``period`` (``None``: the Unique bitmap) for a shard.

        :param event: a validated event name
        :param period: Hour, Day, Week or Month, or ``None`` for UniqueEvents
        :param shard: the shard number
        """

    @abstractmethod
    def universe_key(self, shard: int) -> str:
        """Return the key of the shard's universe bitmap (every id ever marked).

        :param shard: the shard number
        """

    @abstractmethod
    def temp_key(self, shard: int, token: str, n: int) -> str:
        """Return the ``n``-th temp key of query ``token`` in ``shard`` (same hash slot).

        :param shard: the shard number
        :param token: a random token unique to one query
        :param n: the index of the temp key within the query
        """

    @property
    @abstractmethod
    def registry_key(self) -> str:
        """The key of the set of shard numbers that hold data."""

    @property
    @abstractmethod
    def scan_pattern(self) -> str:
        """A SCAN MATCH pattern that finds every key of this schema."""


@dataclass(frozen=True, slots=True)
class ShardedSchema(KeySchema):
    """The default bitlens layout: a prefix, id-range shards and one hash tag per shard.

    Example::

        schema = ShardedSchema(prefix="bl", shard_bits=20)
        schema.event_key("active", Month(2026, 11), schema.shard_of(7_340_033))
        # 'bl:{7}:active:M2026-11'

    :param prefix: the first segment of every key
    :param shard_bits: each shard holds ``2**shard_bits`` ids (8 to 32; 20 = 128 KiB bitmaps)
    """

    prefix: str = "bl"
    shard_bits: int = 20

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or _SAFE_PREFIX.match(self.prefix) is None:
            raise InvalidPrefix(self.prefix)
        if (
            isinstance(self.shard_bits, bool)
            or not isinstance(self.shard_bits, int)
            or not 8 <= self.shard_bits <= 32
        ):
            raise ValueError(f"shard_bits must be an int from 8 to 32, got {self.shard_bits!r}")

    def shard_of(self, user_id: int) -> int:
        return user_id >> self.shard_bits

    def bit_of(self, user_id: int) -> int:
        return user_id & ((1 << self.shard_bits) - 1)

    def user_id(self, shard: int, bit: int) -> int:
        return (shard << self.shard_bits) | bit

    def event_key(self, event: str, period: Period | None, shard: int) -> str:
        return _sharded_event_key(self.prefix, event, period, shard)

    def universe_key(self, shard: int) -> str:
        return f"{self.prefix}:{{{shard}}}:~all"

    def temp_key(self, shard: int, token: str, n: int) -> str:
        return f"{self.prefix}:{{{shard}}}:~tmp:{token}:{n}"

    @property
    def registry_key(self) -> str:
        return f"{self.prefix}:~shards"

    @property
    def scan_pattern(self) -> str:
        escaped = re.sub(r"([*?\[\]\\])", r"\\\1", self.prefix)
        return f"{escaped}:*"
