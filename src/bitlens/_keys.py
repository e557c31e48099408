"""The key schema: the only code that builds or parses a key name (pure, no I/O).

:class:`KeySchema` is the interface every layout implements: the key of each event bitmap
(per period, the Unique one), each shard's universe, a query's temp keys, the shard
registry and the id map hashes; SCAN and ACL patterns that find them; and :meth:`parse
<KeySchema.parse>`, which reads a key name back into what built it (an :class:`EventKey`,
:class:`UniverseKey`, :class:`TempKey`, :class:`RegistryKey` or :class:`IdMapKey`).
:class:`ShardedSchema` is bitlens' layout; its docstring draws its keys. The tracker, the
planner, the write batches, :class:`~bitlens.IdMap`, the command line and the web API all
ask the schema, so a new layout is a subclass and nothing else.

The name rules (event names, prefixes, id map names) live here too.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal, TypeAlias, cast

from ._exceptions import (
    InvalidEventName,
    InvalidOption,
    InvalidPeriod,
    InvalidPrefix,
    InvalidUserId,
    UniverseUnavailable,
)
from ._periods import Day, Hour, Month, Period, Week, Year

__all__ = [
    "MAX_USER_ID",
    "BitmapistSchema",
    "EventKey",
    "IdMapKey",
    "KeySchema",
    "ParsedKey",
    "RegistryKey",
    "ShardedSchema",
    "TempKey",
    "UniverseKey",
    "UniverseKind",
    "describe_char",
    "event_name_problem",
    "glob_escape",
    "is_safe_name",
    "unsafe_char",
    "validate_event_name",
    "validate_user_id",
]

MAX_USER_ID: Final = 2**63 - 1
"""The largest user id bitlens accepts by default (the largest signed 64-bit integer)."""

MAX_EVENT_NAME_LENGTH: Final = 200

# Characters no name may hold: ``{`` and ``}`` (they would break a hash tag), whitespace
# (``\s`` is every Unicode space and line break), C0 and C1 controls, lone surrogates (not
# encodable as UTF-8: ``json.loads`` makes them from ``"\\ud800"``) and every Unicode
# format character (category Cf: zero-width characters, bidi overrides and isolates, the
# byte order mark, invisible operators, tags...), which would make two keys that print the
# same differ. tests/test_hostile_input.py checks this list against ``unicodedata``.
_UNSAFE_CHARS: Final = (
    "\\s{}"
    "\x00-\x1f\x7f-\x9f"  # C0, DEL, C1
    "\ud800-\udfff"  # surrogates
    "\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"  # format (Cf) ...
    "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
_UNSAFE_EVENT = re.compile(f"[{_UNSAFE_CHARS}]")
_SAFE_NAME = re.compile(f"[^{_UNSAFE_CHARS}]{{1,64}}")
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def unsafe_char(text: str) -> str | None:
    """Return the first character of ``text`` that no key segment may hold, if any.

    Refused: whitespace, ``{`` and ``}``, C0/C1 controls, lone surrogates and Unicode
    format characters (zero-width, bidi controls, BOM, ...).

    :param text: the name to check
    """
    bad = _UNSAFE_EVENT.search(text)
    return None if bad is None else bad.group()


def describe_char(char: str) -> str:
    """Name a character for an error message, e.g. ``"'\\u202e' (U+202E)"``.

    :param char: one character
    """
    return f"{char!r} (U+{ord(char):04X})"


def is_safe_name(name: object) -> bool:
    """Tell whether ``name`` is a usable prefix or id map name: 1-64 safe characters.

    The whole string must match (a trailing newline is refused too).

    :param name: the name to check
    """
    return isinstance(name, str) and _SAFE_NAME.fullmatch(name) is not None


def glob_escape(text: str) -> str:
    """Escape the characters that are special in a SCAN ``MATCH`` pattern.

    :param text: literal text, e.g. a prefix
    """
    return _GLOB_SPECIAL.sub(r"\\\1", text)


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


def event_name_problem(name: object) -> str | None:
    """Say why ``name`` cannot be an event name, or return ``None`` if it can.

    :param name: the event name to check
    """
    if not isinstance(name, str):
        return f"must be a str, not {type(name).__name__}"
    if not name:
        return "must not be empty"
    if len(name) > MAX_EVENT_NAME_LENGTH:
        return f"must be at most {MAX_EVENT_NAME_LENGTH} characters"
    if name.startswith("~"):
        return "names starting with '~' are reserved for bitlens"
    bad = unsafe_char(name)
    if bad is not None:
        return (
            f"{describe_char(bad)} is not allowed (no whitespace, control or invisible format "
            "characters, lone surrogates, '{' or '}')"
        )
    return None


def validate_event_name(name: object) -> str:
    """Return ``name`` if it is safe to embed in a key.

    :param name: the event name to check
    :raises InvalidEventName: if it is not a non-empty ``str`` of at most 200 characters
        without whitespace, control or format characters, lone surrogates, ``{`` or ``}``,
        or if it starts with ``~``
    """
    problem = event_name_problem(name)
    if problem is not None:
        raise InvalidEventName(name, problem)
    return cast("str", name)


# -- what a key holds ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventKey:
    """An event's bitmap in one period (``period=None``: its Unique bitmap) for one shard.

    :param event: the event name
    :param period: an Hour, Day, Week or Month, or ``None`` for UniqueEvents
    :param shard: the shard number
    """

    event: str
    period: Period | None
    shard: int


@dataclass(frozen=True, slots=True)
class UniverseKey:
    """A shard's universe bitmap: every id ever marked in it.

    :param shard: the shard number
    """

    shard: int


@dataclass(frozen=True, slots=True)
class TempKey:
    """A query's temp key in one shard (it lives only inside the query that made it).

    :param shard: the shard number
    :param token: the query's random token (no ``:``)
    :param n: the index of the temp key within the query
    """

    shard: int
    token: str
    n: int


@dataclass(frozen=True, slots=True)
class RegistryKey:
    """The set of shard numbers that hold data (one per schema)."""


@dataclass(frozen=True, slots=True)
class IdMapKey:
    """One hash of one bucket of an :class:`~bitlens.IdMap`.

    :param name: the id map's name
    :param bucket: the bucket number
    :param side: ``"forward"`` (external id to int) or ``"reverse"`` (int to external id)
    """

    name: str
    bucket: int
    side: Literal["forward", "reverse"]


ParsedKey: TypeAlias = EventKey | UniverseKey | TempKey | RegistryKey | IdMapKey
"""What :meth:`KeySchema.parse` finds in a key name: one of the kinds of key a schema builds."""

UniverseKind: TypeAlias = Literal["complete", "partial", "absent"]
"""What a layout's universe bitmap holds (:attr:`KeySchema.universe`).

``"complete"``: every id of every bitmap (each mark sets it in the same transaction), so
``~x`` is one exact XOR. ``"partial"``: a bitmap the caller named, which other writers may
not keep up to date: complements stay inside it, and no algebra assumes it holds every
bitmap. ``"absent"``: the layout has none; ``~x`` and ``Universe()`` are refused.
"""


# -- the schema interface --------------------------------------------------------------------


class KeySchema(ABC):
    """Every key name bitlens reads or writes: how to build it, and how to read it back.

    The schema is the only code that knows the shape of a key; the tracker, the planner,
    :class:`~bitlens.IdMap`, the command line and the web API ask it. :class:`ShardedSchema`
    is bitlens' layout. Another layout is a subclass that implements the abstract members
    below; the rest (:meth:`build`, :attr:`scan_patterns`, :meth:`validate_idmap_name`)
    follows from them. A subclass must keep two promises, which the tests check for
    ``ShardedSchema``:

    * ``parse(build(k)) == k`` for every key ``k`` it builds, and ``parse`` answers
      ``None`` for every other name (a foreign key under the prefix, another prefix's key);
    * on a Redis Cluster, all keys of one shard (event bitmaps, universe, temp keys) share
      one hash slot, so each shard's work is one transaction on one node.
    """

    __slots__ = ()

    prefix: str
    shard_bits: int

    # -- ids ------------------------------------------------------------------------------

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

    # -- building keys --------------------------------------------------------------------

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
        :param token: a random token unique to one query, without ``:``
        :param n: the index of the temp key within the query
        """

    @abstractmethod
    def idmap_keys(self, name: str, bucket: int) -> tuple[str, str]:
        """Return the forward and reverse hash keys of one bucket of an id map (one slot).

        :param name: a name :meth:`validate_idmap_name` accepted
        :param bucket: the bucket number
        """

    @property
    @abstractmethod
    def registry_key(self) -> str:
        """The key of the set of shard numbers that hold data (unused if :attr:`shards`)."""

    # -- what the layout has --------------------------------------------------------------

    @property
    def max_user_id(self) -> int:
        """The largest user id this layout can hold (by default :data:`MAX_USER_ID`)."""
        return MAX_USER_ID

    @property
    def shards(self) -> tuple[int, ...] | None:
        """The fixed shards of a layout without a shard registry; ``None`` (the default):
        the registry at :attr:`registry_key` lists them."""
        return None

    @property
    def universe(self) -> UniverseKind:
        """What :meth:`universe_key` holds (see :data:`UniverseKind`; by default complete)."""
        return "complete"

    @property
    def cluster_safe(self) -> bool:
        """Whether all keys of one shard share a hash slot, as a Redis Cluster needs."""
        return True

    @property
    def bitmap_bytes(self) -> int:
        """The longest one bitmap of one shard can be, in bytes (the planner's budgets)."""
        return max(1, (1 << self.shard_bits) // 8)

    def build(self, key: ParsedKey) -> str:
        """Return the key name of ``key`` (the inverse of :meth:`parse`).

        :param key: what the key holds
        """
        if isinstance(key, EventKey):
            return self.event_key(key.event, key.period, key.shard)
        if isinstance(key, UniverseKey):
            return self.universe_key(key.shard)
        if isinstance(key, TempKey):
            return self.temp_key(key.shard, key.token, key.n)
        if isinstance(key, IdMapKey):
            forward, reverse = self.idmap_keys(key.name, key.bucket)
            return forward if key.side == "forward" else reverse
        return self.registry_key

    # -- reading keys ---------------------------------------------------------------------

    @abstractmethod
    def parse(self, key: str) -> ParsedKey | None:
        """Return what ``key`` holds, or ``None`` if this schema would never build it.

        Exact: a key parses only if :meth:`build` gives it back character for character,
        so foreign keys under the prefix and keys of other prefixes give ``None``.

        :param key: a key name, e.g. from ``SCAN``
        """

    def parse_scanned(self, key: bytes | str) -> ParsedKey | None:
        """Return what a key as ``SCAN`` returned it holds (:meth:`parse` of its text).

        A name that is not UTF-8 is no key of the schema (every key is built as text).

        :param key: a key name as bytes, or already decoded
        """
        if isinstance(key, bytes):
            try:
                key = key.decode("utf-8")
            except UnicodeDecodeError:
                return None
        return self.parse(key)

    @property
    @abstractmethod
    def scan_pattern(self) -> str:
        """A SCAN MATCH pattern of every key of this schema except :attr:`registry_key`.

        It matches no key of another prefix (``bl``'s pattern never sees ``bl:x``'s keys).
        """

    @property
    def scan_patterns(self) -> tuple[str, ...]:
        """SCAN MATCH patterns that together find every key of this schema, and no other.

        :attr:`scan_pattern`, then :attr:`registry_key` escaped as a pattern of its own
        (cheaper to read with ``EXISTS`` than to SCAN for).
        """
        return (self.scan_pattern, glob_escape(self.registry_key))

    @property
    def event_scan_pattern(self) -> str:
        """A SCAN MATCH pattern that finds at least one key of every event ever marked.

        It may match other keys too (:meth:`parse` tells them apart); a layout can narrow
        it to the bitmaps every mark writes. By default :attr:`scan_pattern`.
        """
        return self.scan_pattern

    def events_pattern(self, starting_with: str = "") -> str:
        """A SCAN MATCH pattern that finds a key of every event whose name starts so.

        It may match other keys too (:meth:`parse` tells them apart). By default
        :attr:`event_scan_pattern`.

        :param starting_with: the start of the names wanted (``""``: every event)
        """
        return self.event_scan_pattern

    def event_pattern(self, event: str) -> str:
        """A SCAN MATCH pattern that finds every bitmap of ``event`` (all periods, shards).

        It may match other keys too (:meth:`parse` tells them apart). By default
        :attr:`scan_pattern`.

        :param event: a validated event name
        """
        return self.scan_pattern

    def shard_pattern(self, shard: int) -> str:
        """A SCAN MATCH pattern that finds every bitmap and the universe of ``shard``.

        It may match other keys too (:meth:`parse` tells them apart). By default
        :attr:`scan_pattern`.

        :param shard: a shard number
        """
        return self.scan_pattern

    @property
    @abstractmethod
    def acl_pattern(self) -> str:
        """An ACL key pattern (``~pattern``) that grants every key of this schema."""

    # -- names ----------------------------------------------------------------------------

    def validate_idmap_name(self, name: object) -> str:
        """Return ``name`` if it can name an id map: 1-64 safe characters.

        :param name: the name to check
        :raises InvalidOption: if it is not a ``str`` of 1-64 characters without
            whitespace, control or format characters, ``{`` or ``}``
        """
        if not is_safe_name(name):
            raise InvalidOption(
                "name",
                name,
                "1-64 characters without whitespace, control or format characters, '{' or '}'",
            )
        return cast("str", name)


# -- the default layout ----------------------------------------------------------------------


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


# ASCII digits only: ``\d`` would also take other scripts' digits, which int() accepts.
_SUFFIX = re.compile(
    r"M(?P<my>[0-9]{4})-(?P<mm>[0-9]{2})"
    r"|W(?P<wy>[0-9]{4})-(?P<ww>[0-9]{2})"
    r"|D(?P<dy>[0-9]{4})-(?P<dm>[0-9]{2})-(?P<dd>[0-9]{2})"
    r"|H(?P<hy>[0-9]{4})-(?P<hm>[0-9]{2})-(?P<hd>[0-9]{2})T(?P<hh>[0-9]{2})"
)
_NUMBER = re.compile(r"0|[1-9][0-9]*")


def _period_of(suffix: str) -> tuple[Period | None] | None:
    """Read a suffix :func:`period_suffix` made: ``(period,)``, ``(None,)`` for ``U``, else None."""
    if suffix == "U":
        return (None,)
    found = _SUFFIX.fullmatch(suffix)
    if found is None:
        return None
    g = found.groupdict()
    try:
        if g["my"] is not None:
            return (Month(int(g["my"]), int(g["mm"])),)
        if g["wy"] is not None:
            return (Week(int(g["wy"]), int(g["ww"])),)
        if g["dy"] is not None:
            return (Day(int(g["dy"]), int(g["dm"]), int(g["dd"])),)
        return (Hour(int(g["hy"]), int(g["hm"]), int(g["hd"]), int(g["hh"])),)
    except InvalidPeriod:  # month 13, February 30, ISO week 53 of a 52-week year, year 0
        return None


def _number(text: str) -> int | None:
    """Read a shard, bucket or index as :func:`str` writes it (ASCII, no leading zero)."""
    return int(text) if _NUMBER.fullmatch(text) else None


@dataclass(frozen=True, slots=True)
class ShardedSchema(KeySchema):
    """The bitlens layout: a prefix, id-range shards and one hash tag per shard.

    Ids are split into *shards* of ``2**shard_bits`` ids. Every key of one shard carries
    the same hash tag, so all events and periods of one id range share one Redis Cluster
    slot and every BITOP, temp key and MULTI/EXEC of a query stays inside that slot::

        bl:{7}:active:M2026-11        month bitmap of event "active", ids 7*2**20 .. 8*2**20-1
        bl:{7}:active:W2026-07        ISO week 7 of ISO year 2026
        bl:{7}:active:D2026-01-05     a day
        bl:{7}:active:H2026-01-05T13  an hour (only with hourly tracking)
        bl:{7}:active:U               UniqueEvents (no time dimension)
        bl:{7}:~all                   the universe: every id ever marked in shard 7
        bl:{7}:~tmp:<token>:<n>       a query's temp key (lives inside one MULTI/EXEC)
        bl:{~idmap:ids:5}:fwd         bucket 5 of id map "ids": external id -> int
        bl:{~idmap:ids:5}:rev         ... and int -> external id
        bl:~shards                    the set of shard numbers that hold data

    Event names may hold ``:``; the period suffix never does, so the last segment of a key
    is always its period and two (event, period) pairs never share a key. Names starting
    with ``~`` are refused, so bitlens' own keys never collide with an event's.

    Example::

        schema = ShardedSchema(prefix="bl", shard_bits=20)
        schema.event_key("active", Month(2026, 11), schema.shard_of(7_340_033))
        # 'bl:{7}:active:M2026-11'
        schema.parse("bl:{7}:active:M2026-11")
        # EventKey(event='active', period=Month(year=2026, month=11, ...), shard=7)

    :param prefix: the first segment of every key: 1-64 characters without whitespace,
        control or format characters, ``{`` or ``}``
    :param shard_bits: each shard holds ``2**shard_bits`` ids (8 to 32; 20 = 128 KiB bitmaps)
    :raises InvalidPrefix: for an unsafe prefix
    :raises InvalidOption: for a ``shard_bits`` that is not an int from 8 to 32
    """

    prefix: str = "bl"
    shard_bits: int = 20

    def __post_init__(self) -> None:
        if not is_safe_name(self.prefix):
            raise InvalidPrefix(self.prefix)
        if (
            isinstance(self.shard_bits, bool)
            or not isinstance(self.shard_bits, int)
            or not 8 <= self.shard_bits <= 32
        ):
            raise InvalidOption("shard_bits", self.shard_bits, "an int from 8 to 32")

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

    def idmap_keys(self, name: str, bucket: int) -> tuple[str, str]:
        tag = f"{self.prefix}:{{~idmap:{name}:{bucket}}}"
        return f"{tag}:fwd", f"{tag}:rev"

    @property
    def registry_key(self) -> str:
        return f"{self.prefix}:~shards"

    def parse(self, key: str) -> ParsedKey | None:
        head = len(self.prefix) + 1
        if not key.startswith(self.prefix) or key[head - 1 : head] != ":":
            return None
        rest = key[head:]
        if rest == "~shards":
            return RegistryKey()
        if not rest.startswith("{"):
            return None
        tag, sep, tail = rest[1:].partition("}:")
        if not sep:
            return None
        if tag.startswith("~idmap:"):
            return _parse_idmap(tag[len("~idmap:") :], tail)
        shard = _number(tag)
        if shard is None:
            return None
        if tail == "~all":
            return UniverseKey(shard)
        if tail.startswith("~tmp:"):
            token, sep, n = tail[len("~tmp:") :].partition(":")
            index = _number(n)
            if not sep or index is None or not token or unsafe_char(token) is not None:
                return None
            return TempKey(shard, token, index)
        event, sep, suffix = tail.rpartition(":")
        period = _period_of(suffix)
        if not sep or period is None or event_name_problem(event) is not None:
            return None
        return EventKey(event, period[0], shard)

    @property
    def scan_pattern(self) -> str:
        # Every key but the registry carries a hash tag right after the prefix (event
        # bitmaps, universes, temp keys, id maps): "bl:{*". A prefix holds no '{', so no
        # other prefix's key starts that way ("bl:x:{7}:..." does not match "bl:{*").
        return f"{glob_escape(self.prefix)}:{{*"

    @property
    def event_scan_pattern(self) -> str:
        # Month and Unique bitmaps (a period suffix starting M or U): every mark_event
        # sets a month bit and every mark_unique the unique bit, so every event has one.
        return f"{self.scan_pattern}:[MU]*"

    def events_pattern(self, starting_with: str = "") -> str:
        if not starting_with:
            return self.event_scan_pattern
        # "bl:{*}:act*": the hash tag, then the name's start (escaped: names may hold '*').
        return f"{glob_escape(self.prefix)}:{{*}}:{glob_escape(starting_with)}*"

    def event_pattern(self, event: str) -> str:
        return f"{glob_escape(self.prefix)}:{{*}}:{glob_escape(event)}:*"

    def shard_pattern(self, shard: int) -> str:
        return f"{glob_escape(self.prefix)}:{{{shard}}}:*"

    @property
    def acl_pattern(self) -> str:
        return f"{glob_escape(self.prefix)}:*"


def _parse_idmap(tag: str, tail: str) -> IdMapKey | None:
    """Read the ``name:bucket`` hash tag and ``fwd``/``rev`` tail of an id map key."""
    name, sep, number = tag.rpartition(":")
    bucket = _number(number)
    if not sep or bucket is None or not is_safe_name(name):
        return None
    if tail == "fwd":
        return IdMapKey(name, bucket, "forward")
    if tail == "rev":
        return IdMapKey(name, bucket, "reverse")
    return None


# -- bitmapist's layout ----------------------------------------------------------------------


def bitmapist_suffix(period: Period | None) -> str:
    """Return the key suffix bitmapist gives a period: unpadded numbers, ``u`` for Unique.

    :param period: an Hour, Day, Week or Month; ``None`` for UniqueEvents
    :raises TypeError: for a Year or an unknown period type
    """
    if period is None:
        return "u"
    if isinstance(period, Month):
        return f"{period.year}-{period.month}"
    if isinstance(period, Week):
        return f"W{period.iso_year}-{period.week}"
    if isinstance(period, Day):
        return f"{period.year}-{period.month}-{period.day}"
    if isinstance(period, Hour):
        return f"{period.year}-{period.month}-{period.day}-{period.hour}"
    if isinstance(period, Year):
        raise TypeError("Year has no bitmap of its own; it is the OR of its months")
    raise TypeError(f"unknown period type {type(period).__name__}")


_N = "(0|[1-9][0-9]*)"
_BITMAPIST_DATE = re.compile(f"{_N}-{_N}(?:-{_N}(?:-{_N})?)?")
_BITMAPIST_WEEK = re.compile(f"W{_N}-{_N}")
_BITMAPIST_TEMPS = "bitop_"
"""Where bitmapist's layout keeps temp keys: its ``BitOp*`` results are ``bitop_...``."""
_BITLENS_TEMPS = "bitop_bitlens_"


def _bitmapist_period(suffix: str) -> tuple[Period | None] | None:
    """Read a suffix :func:`bitmapist_suffix` made: ``(period,)``, ``(None,)``, else None."""
    if suffix == "u":
        return (None,)
    try:
        week = _BITMAPIST_WEEK.fullmatch(suffix)
        if week is not None:
            return (Week(int(week[1]), int(week[2])),)
        date = _BITMAPIST_DATE.fullmatch(suffix)
        if date is None:
            return None
        y, m, d, h = date.groups()
        if d is None:
            return (Month(int(y), int(m)),)
        if h is None:
            return (Day(int(y), int(m), int(d)),)
        return (Hour(int(y), int(m), int(d), int(h)),)
    except InvalidPeriod:  # month 13, February 30, hour 24, year 0...
        return None


@dataclass(frozen=True, slots=True)
class BitmapistSchema(KeySchema):
    """bitmapist's layout: one bitmap per event and period, the user id as the bit offset.

    Reads and writes exactly the keys of bitmapist 3.x (prefix ``trackist_``) and of
    bitmapist4 (``Bitmapist(key_prefix=...)``, ``bitmapist_`` by default), so a bitlens
    tracker and bitmapist code can share one dataset::

        trackist_active_2026-11        month (numbers unpadded)
        trackist_active_W2026-7        ISO week 7 of ISO year 2026
        trackist_active_2026-1-5       a day
        trackist_active_2026-1-5-13    an hour (only with hourly tracking)
        trackist_active_u              UniqueEvents
        trackist_bitop_bitlens_<token>_<n>  a query's temp key (bitmapist's BitOp keys
                                       are ``trackist_bitop_...`` too)

    What the layout lacks, and what bitlens does about it:

    * **No shards**: one bitmap per event and period, so ids are limited to
      ``2**shard_bits`` (at most ``2**32``: Redis' last bit offset is ``2**32 - 1``; a larger
      id raises :class:`~bitlens.InvalidUserId` before anything is sent). Lower
      ``shard_bits`` to what the ids need and the planner budgets each query by that size.
    * **No hash tags**: two events' keys may live on different Redis Cluster nodes, so a
      tracker refuses this schema on a cluster.
    * **No shard registry**: there is nothing to read; the one bitmap is always there.
    * **No universe of marked ids**: ``~x`` and ``Universe()`` have no exact meaning and
      raise :class:`~bitlens.UniverseUnavailable`, unless ``universe`` names an event whose
      UniqueEvents bitmap holds every id (bitlens sets it on each mark; mark it in
      bitmapist code too). ``a - b`` and ``BitOpNot(x, universe=v)`` need no universe.
    * **Prefixes nest**: ``trackist_`` also covers a prefix ``trackist_x_`` (the key
      ``trackist_x_a_2026-1`` is event ``x_a`` to one and ``a`` to the other), so choose
      prefixes that are not the start of another.

    Example::

        schema = BitmapistSchema()  # bitmapist 3.x
        schema.event_key("active", Week(2026, 7), 0)  # 'trackist_active_W2026-7'
        BitmapistSchema(prefix="bitmapist_", universe="all")  # bitmapist4, a universe

    :param prefix: the start of every key (``trackist_`` for bitmapist 3.x); 1-64
        characters without whitespace, control or format characters, ``{`` or ``}``
    :param universe: an event whose UniqueEvents bitmap is the universe of ``~x``, or
        ``None`` (``~x`` is refused)
    :param shard_bits: ids are below ``2**shard_bits`` (8 to 32)
    :raises InvalidPrefix: for an unsafe prefix
    :raises InvalidEventName: for a ``universe`` that is no valid event name
    :raises InvalidOption: for a ``shard_bits`` that is not an int from 8 to 32
    """

    prefix: str = "trackist_"
    universe_event: str | None = None
    shard_bits: int = 32

    def __init__(
        self, prefix: str = "trackist_", universe: str | None = None, shard_bits: int = 32
    ) -> None:
        if not is_safe_name(prefix):
            raise InvalidPrefix(prefix)
        if universe is not None:
            validate_event_name(universe)
            if universe.startswith(_BITMAPIST_TEMPS):
                raise InvalidEventName(universe, "names starting 'bitop_' are bitmapist's temps")
        if isinstance(shard_bits, bool) or not isinstance(shard_bits, int):
            raise InvalidOption("shard_bits", shard_bits, "an int from 8 to 32")
        if not 8 <= shard_bits <= 32:
            raise InvalidOption("shard_bits", shard_bits, "an int from 8 to 32")
        object.__setattr__(self, "prefix", prefix)
        object.__setattr__(self, "universe_event", universe)
        object.__setattr__(self, "shard_bits", shard_bits)

    def shard_of(self, user_id: int) -> int:
        return 0

    def bit_of(self, user_id: int) -> int:
        return user_id

    def user_id(self, shard: int, bit: int) -> int:
        return bit

    def event_key(self, event: str, period: Period | None, shard: int) -> str:
        if event.startswith(_BITMAPIST_TEMPS):
            raise InvalidEventName(event, "names starting 'bitop_' are bitmapist's temp keys")
        return f"{self.prefix}{event}_{bitmapist_suffix(period)}"

    def universe_key(self, shard: int) -> str:
        if self.universe_event is None:
            raise UniverseUnavailable(repr(self))
        return self.event_key(self.universe_event, None, shard)

    def temp_key(self, shard: int, token: str, n: int) -> str:
        return f"{self.prefix}{_BITLENS_TEMPS}{token}_{n}"

    def idmap_keys(self, name: str, bucket: int) -> tuple[str, str]:
        tag = f"{self.prefix}~idmap:{name}:{bucket}"
        return f"{tag}:fwd", f"{tag}:rev"

    @property
    def registry_key(self) -> str:
        return f"{self.prefix}~shards"

    @property
    def max_user_id(self) -> int:
        return (1 << self.shard_bits) - 1

    @property
    def shards(self) -> tuple[int, ...]:
        return (0,)

    @property
    def universe(self) -> UniverseKind:
        return "absent" if self.universe_event is None else "partial"

    @property
    def cluster_safe(self) -> bool:
        return False

    def parse(self, key: str) -> ParsedKey | None:
        if not key.startswith(self.prefix):
            return None
        rest = key[len(self.prefix) :]
        if rest == "~shards":
            return RegistryKey()
        if rest.startswith("~idmap:"):
            tag, sep, tail = rest[len("~idmap:") :].rpartition(":")
            return _parse_idmap(tag, tail) if sep else None
        if rest.startswith(_BITMAPIST_TEMPS):
            if not rest.startswith(_BITLENS_TEMPS):
                return None  # one of bitmapist's own BitOp results
            token, sep, n = rest[len(_BITLENS_TEMPS) :].rpartition("_")
            index = _number(n)
            if not sep or index is None or not token or unsafe_char(token) is not None:
                return None
            return TempKey(0, token, index)
        event, sep, suffix = rest.rpartition("_")
        period = _bitmapist_period(suffix)
        if not sep or period is None or event_name_problem(event) is not None:
            return None
        return EventKey(event, period[0], 0)

    @property
    def scan_pattern(self) -> str:
        return f"{glob_escape(self.prefix)}*"

    @property
    def scan_patterns(self) -> tuple[str, ...]:
        return (self.scan_pattern,)  # no registry key: nothing else to find

    def events_pattern(self, starting_with: str = "") -> str:
        return f"{glob_escape(self.prefix)}{glob_escape(starting_with)}*"

    def event_pattern(self, event: str) -> str:
        return f"{glob_escape(self.prefix)}{glob_escape(event)}_*"

    @property
    def acl_pattern(self) -> str:
        return f"{glob_escape(self.prefix)}*"

    def __repr__(self) -> str:
        args = [f"prefix={self.prefix!r}"]
        if self.universe_event is not None:
            args.append(f"universe={self.universe_event!r}")
        if self.shard_bits != 32:
            args.append(f"shard_bits={self.shard_bits}")
        return f"BitmapistSchema({', '.join(args)})"
