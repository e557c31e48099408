"""The id map: external ids (strings, UUIDs) to dense ints and back, stored in Redis.

Bitmaps index users by small integers. When an application's ids are strings or UUIDs, an
:class:`IdMap` gives each one a dense int the first time it is seen, and maps ints back
for ``members``. The map lives in Redis beside the tracker's bitmaps, so every process and
every machine agrees on it.

Layout: the map is split into ``buckets`` (default 64) by a CRC-32 of the external id.
Bucket ``b`` of map ``ids`` is two hashes sharing one hash tag, so one Redis Cluster slot;
the tracker's key schema names them (:meth:`~bitlens.KeySchema.idmap_keys`), e.g. under
prefix ``bl``::

    bl:{~idmap:ids:5}:fwd    external id -> int
    bl:{~idmap:ids:5}:rev    int -> external id; '~n' the next sequence, '~b' the bucket count

The n-th id of bucket ``b`` gets ``n * buckets + b``: the ints are dense (every bucket fills
at the same rate, so the largest int stays close to the number of ids) and the bucket of an
int is ``int % buckets``, so reverse lookups need no search.

Atomicity: a new id is assigned by a Lua script that reads, increments and writes inside its
bucket's slot, so concurrent first sightings of an id — in one process or in many — all get
the same int; the script is idempotent, so a retry after a dropped connection is safe. A
batch costs one round trip per node (one script or ``HMGET`` per bucket touched).

Durability: like marks, assignments replicate asynchronously. On a cluster that fails over,
give the tracker ``replicas_ack=1`` so an assignment is acknowledged only once a replica
has it — else a promoted replica could hand an int that was already given out to another id.
"""

from __future__ import annotations

import uuid
import zlib
from typing import TYPE_CHECKING, Final, Literal, TypeAlias, overload

from redis.exceptions import ResponseError

from ._exceptions import IdMapMismatch, InvalidExternalId, InvalidOption
from ._execute import Group
from ._keys import validate_user_id
from ._replies import as_text
from ._tracker import parts

if TYPE_CHECKING:
    import datetime as _dt
    from collections.abc import AsyncIterator, Iterable, Sequence

    from ._expr import Expr
    from ._tracker import Tracker
    from ._writes import Command

__all__ = ["ExternalId", "ExternalMark", "IdMap"]

ExternalId: TypeAlias = "str | uuid.UUID"
"""An id an :class:`IdMap` accepts: a ``str``, or a ``uuid.UUID`` (stored as ``str(uuid)``)."""

ExternalMark: TypeAlias = (
    "tuple[str, str | uuid.UUID] | tuple[str, str | uuid.UUID, _dt.datetime | _dt.date | None]"
)
"""One item of :meth:`IdMap.mark_events`: ``(event, external_id)`` or ``(..., at)``."""

MAX_EXTERNAL_ID_BYTES: Final = 1024
"""The longest external id accepted, in UTF-8 bytes."""


ASSIGN_SCRIPT: Final = """
local buckets = ARGV[1]
local known = redis.call('HGET', KEYS[2], '~b')
if known and known ~= buckets then
  return redis.error_reply('BITLENS_IDMAP_BUCKETS ' .. known)
end
local width, bucket = tonumber(buckets), tonumber(ARGV[2])
local n = nil
local out = {}
for i = 3, #ARGV do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if not v then
    if not n then n = tonumber(redis.call('HGET', KEYS[2], '~n') or '0') end
    v = string.format('%d', n * width + bucket)
    n = n + 1
    redis.call('HSET', KEYS[1], ARGV[i], v)
    redis.call('HSET', KEYS[2], v, ARGV[i])
  end
  out[#out + 1] = v
end
if n then redis.call('HSET', KEYS[2], '~n', string.format('%d', n), '~b', buckets) end
return out
"""
"""Return the int of each external id of one bucket, assigning the next ones to new ids.

KEYS: the bucket's forward and reverse hashes. ARGV: the bucket count, the bucket, the
external ids. Refuses (``BITLENS_IDMAP_BUCKETS <n>``) a bucket made with another count.
"""


class IdMap:
    """Maps external ids (strings, UUIDs) to dense ints for a tracker, and back.

    Example::

        ids = IdMap(tracker)
        await ids.mark_event("active", "7f0c0b4e-5a8e-4d9a-9a43-2b1f7f0d3c11")
        [n] = await ids.ids(["7f0c0b4e-5a8e-4d9a-9a43-2b1f7f0d3c11"])
        async for user in ids.members(MonthEvents("active", 2026, 11)):
            print(user)  # the original strings, ascending by their int

    Assignments are cached in the process (they never change), so marking an id seen
    before costs no extra round trip.

    :param tracker: the tracker whose client, prefix and ``replicas_ack`` the map uses
    :param name: the map's name, to keep several maps under one prefix (default ``ids``)
    :param buckets: how many buckets (and cluster slots) the map is spread over; fixed for
        the life of the map: a map made with another count raises :class:`IdMapMismatch`
    :param cache_size: assignments kept in the process (0: none)
    :param members_chunk: ints mapped back per round trip by :meth:`members`
    :raises InvalidOption: for a bad name, bucket count, cache size or chunk size (a
        ``ValueError``), before anything is sent
    """

    def __init__(
        self,
        tracker: Tracker,
        name: str = "ids",
        *,
        buckets: int = 64,
        cache_size: int = 100_000,
        members_chunk: int = 1_000,
    ) -> None:
        name = tracker.schema.validate_idmap_name(name)
        if not _is_int(buckets) or not 1 <= buckets <= 16384:
            raise InvalidOption("buckets", buckets, "an int from 1 to 16384")
        if not _is_int(cache_size) or cache_size < 0:
            raise InvalidOption("cache_size", cache_size, "an int >= 0")
        if not _is_int(members_chunk) or members_chunk < 1:
            raise InvalidOption("members_chunk", members_chunk, "an int >= 1")
        self.tracker = tracker
        self._parts = parts(tracker)
        self.name = name
        self.buckets = buckets
        self.cache_size = cache_size
        self.members_chunk = members_chunk
        keys = [tracker.schema.idmap_keys(name, b) for b in range(buckets)]
        self._forward = [forward for forward, _ in keys]
        self._reverse = [reverse for _, reverse in keys]
        self._to_int: dict[str, int] = {}
        self._to_external: dict[int, str] = {}

    def __repr__(self) -> str:
        """Return a short description with the name, prefix and bucket count."""
        return f"<IdMap {self.name!r} prefix={self.tracker.schema.prefix!r} buckets={self.buckets}>"

    def bucket_of(self, external_id: str) -> int:
        """Return the bucket of an external id (a CRC-32 of its UTF-8 bytes).

        :param external_id: a validated external id
        """
        return zlib.crc32(external_id.encode()) % self.buckets

    def keys(self, bucket: int) -> tuple[str, str]:
        """Return the forward and reverse hash keys of one bucket.

        :param bucket: a bucket number, 0 to ``buckets - 1``
        """
        return self._forward[bucket], self._reverse[bucket]

    # -- lookups --------------------------------------------------------------------------

    @overload
    async def ids(
        self, external_ids: Iterable[ExternalId], *, create: Literal[True]
    ) -> list[int]: ...
    @overload
    async def ids(
        self, external_ids: Iterable[ExternalId], *, create: bool = False
    ) -> list[int | None]: ...

    async def ids(
        self, external_ids: Iterable[ExternalId], *, create: bool = False
    ) -> list[int] | list[int | None]:
        """Return the int of each external id, in order: one round trip per node at most.

        :param external_ids: strings or UUIDs (a UUID stands for ``str(uuid)``)
        :param create: give ids seen for the first time the next free ints (atomically:
            concurrent callers anywhere get the same int for the same id); without it,
            unknown ids answer ``None``
        :raises InvalidExternalId: for an id that is not a non-empty ``str`` or a UUID, or
            is longer than 1,024 UTF-8 bytes, before anything is sent
        :raises IdMapMismatch: if the map in Redis was made with another bucket count
        :raises TrackerClosed: after the tracker's ``aclose()``
        :raises TypeError: for a single ``str`` instead of a list of them
        """
        if isinstance(external_ids, (str, bytes)):
            raise TypeError("ids() takes a list of external ids, not a single str")
        wanted = [_validate_external(e) for e in external_ids]
        self._parts.state.check_open()
        found = {e: self._to_int[e] for e in set(wanted) if e in self._to_int}
        missing: dict[int, list[str]] = {}
        for external in dict.fromkeys(wanted):
            if external not in found:
                missing.setdefault(self.bucket_of(external), []).append(external)
        if missing:
            for external, value in (await self._lookup(missing, create)).items():
                if value is not None:
                    found[external] = value
                    self._remember(external, value)
        return [found.get(external) for external in wanted]

    async def _lookup(self, by_bucket: dict[int, list[str]], create: bool) -> dict[str, int | None]:
        """Ask Redis for the ints of external ids grouped by bucket (one round trip per node)."""
        executor = self._parts.executor
        groups: list[Group] = []
        for bucket, externals in by_bucket.items():
            forward, reverse = self.keys(bucket)
            if create:
                script: Command = (
                    "EVAL",
                    ASSIGN_SCRIPT,
                    2,
                    forward,
                    reverse,
                    self.buckets,
                    bucket,
                    *externals,
                )
                # As a transaction only so that, with replicas_ack, WAIT follows it.
                groups.append(Group(forward, [script], transaction=executor.replicas_ack > 0))
            else:
                groups.append(
                    Group(forward, [("HGET", reverse, "~b"), ("HMGET", forward, *externals)])
                )
        try:
            results = await executor.run(groups)
        except ResponseError as exc:
            raise self._mismatch(exc) from None
        answers: dict[str, int | None] = {}
        for externals, replies in zip(by_bucket.values(), results, strict=True):
            if create:
                values = replies.list_at(0)
            else:
                self._check_buckets(replies[0])
                values = replies.list_at(1)
            for external, value in zip(externals, values, strict=True):
                answers[external] = None if value is None else int(as_text(value))
        return answers

    async def external(self, user_ids: Iterable[int]) -> list[str | None]:
        """Return the external id of each int, in order (``None`` for an int never assigned).

        :param user_ids: ints, as :meth:`ids` and ``members`` give them
        :raises InvalidUserId: for a negative, non-int or too large id, before anything is sent
        :raises IdMapMismatch: if the map in Redis was made with another bucket count
        :raises TrackerClosed: after the tracker's ``aclose()``
        """
        wanted = [validate_user_id(uid, self.tracker.max_user_id) for uid in user_ids]
        self._parts.state.check_open()
        found = {uid: self._to_external[uid] for uid in set(wanted) if uid in self._to_external}
        missing: dict[int, list[int]] = {}
        for uid in dict.fromkeys(wanted):
            if uid not in found:
                missing.setdefault(uid % self.buckets, []).append(uid)
        if missing:
            groups = [
                Group(
                    self._reverse[bucket],
                    [
                        ("HGET", self._reverse[bucket], "~b"),
                        ("HMGET", self._reverse[bucket], *uids),
                    ],
                )
                for bucket, uids in missing.items()
            ]
            try:
                results = await self._parts.executor.run(groups)
            except ResponseError as exc:
                raise self._mismatch(exc) from None
            for uids, replies in zip(missing.values(), results, strict=True):
                self._check_buckets(replies[0])
                for uid, value in zip(uids, replies.list_at(1), strict=True):
                    if value is not None:
                        found[uid] = as_text(value)
                        self._remember(found[uid], uid)
        return [found.get(uid) for uid in wanted]

    async def members(self, expr: Expr) -> AsyncIterator[str]:
        """Yield the external ids in ``expr``, ascending by their int.

        Streams ``tracker.members(expr)`` and maps the ints back ``members_chunk`` at a
        time (one round trip per node per chunk). Ints that were marked directly, without
        the map, have no external id and are skipped.

        Example::

            async for user in ids.members(MonthEvents("active", 2026, 11)):
                print(user)

        :param expr: any bitlens expression
        :raises TrackerClosed: after the tracker's ``aclose()``
        """
        chunk: list[int] = []
        async for uid in self.tracker.members(expr):
            chunk.append(uid)
            if len(chunk) >= self.members_chunk:
                for external in await self.external(chunk):
                    if external is not None:
                        yield external
                chunk = []
        if chunk:
            for external in await self.external(chunk):
                if external is not None:
                    yield external

    async def contains(self, expr: Expr, external_id: ExternalId) -> bool:
        """Return whether an external id is in ``expr`` (``False`` if it was never mapped).

        :param expr: any bitlens expression
        :param external_id: a string or UUID
        :raises InvalidExternalId: for a bad external id, before anything is sent
        """
        [uid] = await self.ids([external_id])
        return uid is not None and await self.tracker.contains(expr, uid)

    # -- marking --------------------------------------------------------------------------

    async def mark_event(
        self,
        event: str,
        external_id: ExternalId,
        at: _dt.datetime | _dt.date | None = None,
        *,
        track_hourly: bool | None = None,
        track_unique: bool | None = None,
    ) -> int:
        """Mark ``event`` for an external id, giving it an int first if it is new.

        Two round trips for an id this process has not seen yet (assign, then mark), one
        for an id it has.

        :param event: the event name
        :param external_id: a string or UUID
        :param at: when it happened (default: now)
        :param track_hourly: also set the hour bit (default: the tracker's setting)
        :param track_unique: also set the UniqueEvents bit (default: the tracker's setting)
        :returns: the id's int
        :raises InvalidExternalId: for a bad external id, before anything is sent
        :raises InvalidEventName: for a bad event name, before anything is sent
        """
        external = _validate_external(external_id)
        self._parts.writer.validate_mark(event, 0, at, track_hourly, track_unique)
        [uid] = await self.ids([external], create=True)
        await self.tracker.mark_event(
            event, uid, at, track_hourly=track_hourly, track_unique=track_unique
        )
        return uid

    async def mark_events(
        self,
        marks: Iterable[ExternalMark],
        *,
        track_hourly: bool | None = None,
        track_unique: bool | None = None,
    ) -> int:
        """Mark many ``(event, external_id)`` or ``(event, external_id, at)`` items.

        Items go in chunks of the tracker's ``limits.mark_chunk_size``: per chunk, one round trip
        per node to assign ints to new ids, then the tracker's ``mark_events``.

        :param marks: the items; ``at`` defaults to now
        :param track_hourly: also set hour bits (default: the tracker's setting)
        :param track_unique: also set UniqueEvents bits (default: the tracker's setting)
        :returns: the number of items marked
        :raises InvalidExternalId: for a bad external id in a chunk, before it is sent
        :raises InvalidEventName: for a bad event name in a chunk, before it is sent
        """
        sent = 0
        chunk: list[tuple[str, str, _dt.datetime | _dt.date | None]] = []
        for mark in marks:
            if type(mark) is not tuple or len(mark) not in (2, 3):
                raise TypeError(f"expected (event, external_id[, at]), got {mark!r}")
            event, external_id, at = mark if len(mark) == 3 else (*mark, None)
            self._parts.writer.validate_mark(event, 0, at, track_hourly, track_unique)
            chunk.append((event, _validate_external(external_id), at))
            if len(chunk) >= self.tracker.limits.mark_chunk_size:
                sent += await self._mark_chunk(chunk, track_hourly, track_unique)
                chunk = []
        if chunk:
            sent += await self._mark_chunk(chunk, track_hourly, track_unique)
        return sent

    async def _mark_chunk(
        self,
        chunk: Sequence[tuple[str, str, _dt.datetime | _dt.date | None]],
        track_hourly: bool | None,
        track_unique: bool | None,
    ) -> int:
        """Assign ints to a chunk's external ids, then mark the chunk through the tracker."""
        uids = await self.ids([external for _, external, _ in chunk], create=True)
        return await self.tracker.mark_events(
            [(event, uid, at) for (event, _, at), uid in zip(chunk, uids, strict=True)],
            track_hourly=track_hourly,
            track_unique=track_unique,
        )

    # -- internals ------------------------------------------------------------------------

    def _remember(self, external: str, uid: int) -> None:
        """Cache an assignment both ways (it never changes); start over when the cache is full."""
        if not self.cache_size:
            return
        if len(self._to_int) >= self.cache_size:
            self._to_int.clear()
            self._to_external.clear()
        self._to_int[external] = uid
        self._to_external[uid] = external

    def _check_buckets(self, reply: object) -> None:
        """Raise IdMapMismatch if a bucket's stored count (``~b``, if any) is not ours."""
        if reply is not None and int(as_text(reply)) != self.buckets:
            raise IdMapMismatch(self.name, int(as_text(reply)), self.buckets)

    def _mismatch(self, error: ResponseError) -> Exception:
        """Turn the assign script's refusal into IdMapMismatch; leave other errors alone."""
        message = str(error)
        marker = "BITLENS_IDMAP_BUCKETS "
        if marker not in message:
            return error
        stored = message.split(marker, 1)[1].split()[0]
        return IdMapMismatch(self.name, int(stored), self.buckets)


def _is_int(value: object) -> bool:
    """Tell whether ``value`` is an ``int`` and not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_external(external_id: object) -> str:
    """Return an external id as a ``str`` (a UUID as ``str(uuid)``).

    :param external_id: the id to check
    :raises InvalidExternalId: if it is not a non-empty ``str`` or a UUID, or is too long
    """
    if isinstance(external_id, uuid.UUID):
        return str(external_id)
    if not isinstance(external_id, str):
        raise InvalidExternalId(external_id, "type", MAX_EXTERNAL_ID_BYTES)
    if not external_id:
        raise InvalidExternalId(external_id, "empty", MAX_EXTERNAL_ID_BYTES)
    try:
        size = len(external_id.encode())
    except UnicodeEncodeError:
        raise InvalidExternalId(external_id, "unicode", MAX_EXTERNAL_ID_BYTES) from None
    if size > MAX_EXTERNAL_ID_BYTES:
        raise InvalidExternalId(external_id, "size", MAX_EXTERNAL_ID_BYTES)
    return external_id
