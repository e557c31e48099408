"""Columnar backfill: columns of ids and times → write batches of byte images (pure).

:meth:`Tracker.mark_bulk` marks one event for many ``(user_id, time)`` rows given as two
columns (numpy arrays, pandas / polars Series, pyarrow arrays or plain sequences). This
module turns them into :class:`~bitlens._writes.WriteBatch` es with numpy, in chunks of
:data:`BULK_CHUNK_SIZE` rows:

1. **Columns.** Ids become ``int64`` (bools, floats, negative ids and ids above the
   tracker's limit are refused); times become *wall seconds*: seconds since
   1970-01-01T00:00 on the tracker's wall clock. Instants (epoch seconds, timezone-aware
   pandas / polars / pyarrow timestamps, aware ``datetime`` objects) are converted with
   the zone's UTC offset at each instant — looked up once per UTC hour, and per row in an
   hour holding a transition — so DST changes fall where ``datetime.astimezone`` puts them.
   Naive times (numpy ``datetime64``, naive Series, naive ``datetime`` objects) are
   already wall-clock times in the tracker's zone, like a naive ``at`` of ``mark_event``.
2. **Periods.** Rows are numbered by their local hour (or day), and each distinct one
   gets its periods from the tracker once (the same periods ``mark_event`` uses).
3. **Grouping.** For each granularity the rows are sorted by (key, shard, bit) and split
   where the key or shard changes; duplicates fall away.
4. **Bits.** A key with few bits gets them as offsets (``SETBIT`` / ``BITFIELD``); one
   with many gets a byte image from ``np.packbits`` (most significant bit first, the bit
   order of ``SETBIT``) that the batch ORs in with ``SETRANGE`` + ``BITOP OR`` + ``DEL``
   of a temp key: bits already set stay set.

numpy is imported with this module; the write side imports it only when ``mark_bulk`` is
called.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Sequence, Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from ._exceptions import InvalidBulkInput, InvalidUserId
from ._keys import KeySchema, ShardedSchema
from ._periods import to_local
from ._writes import PreparedBits, WriteBatch

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ._periods import Period

__all__ = ["BULK_CHUNK_SIZE", "Columns", "PeriodsOf", "Planner", "load_columns"]

BULK_CHUNK_SIZE = 100_000
"""Rows per chunk of ``mark_bulk``: each chunk is one batch, one round trip per node.

Client memory is bounded by the chunk (a few dozen bytes per row while it is grouped);
the server work of a chunk is bounded by its keys, whose images are at most
``2**shard_bits / 8`` bytes each, however many rows set bits in them.
"""

PeriodsOf: TypeAlias = "Callable[[_dt.datetime], tuple[Period | None, ...]]"
"""The periods a mark at a naive local moment sets (the tracker's, cached per hour)."""

_EPOCH = _dt.datetime(1970, 1, 1)
_WALL_MIN = int((_dt.datetime.min - _EPOCH).total_seconds())
_WALL_MAX = int((_dt.datetime.max.replace(microsecond=0) - _EPOCH).total_seconds())
# Instants farther than a day from the calendar's ends cannot be in it in any zone.
_INSTANT_MIN = _WALL_MIN + 86_400
_INSTANT_MAX = _WALL_MAX - 86_400
_OUTSIDE = "outside years 1..9999 in the tracker's zone"
_NOT_A_TIME = "not a time (NaT, NaN or None)"
_PER_SECOND = {"ms": 10**3, "us": 10**6, "ns": 10**9, "ps": 10**12, "fs": 10**15, "as": 10**18}


def _values(column: object) -> tuple[NDArray[np.generic], bool]:
    """Return ``column`` as a numpy array, and whether its times are instants (aware).

    pandas, polars and pyarrow are recognised by the methods they have; none is imported.
    """
    if isinstance(column, np.ndarray):
        return column, False
    dtype = getattr(column, "dtype", None)
    if dtype is None:
        dtype = getattr(column, "type", None)  # pyarrow
    aware = getattr(dtype, "tz", None) is not None or bool(getattr(dtype, "time_zone", None))
    module = type(column).__module__
    if module.startswith("pyarrow"):
        to_numpy: Callable[..., object] = getattr(column, "to_numpy")  # noqa: B009
        return np.asarray(to_numpy(zero_copy_only=False)), aware
    if aware and module.startswith("pandas"):
        column = getattr(column, "dt").tz_convert(None)  # noqa: B009  # UTC, naive
    elif aware and module.startswith("polars"):
        utc = getattr(column, "dt").convert_time_zone("UTC")  # noqa: B009
        column = utc.dt.replace_time_zone(None)  # the UTC wall clock: instants
    convert: object = getattr(column, "to_numpy", None)
    if callable(convert):
        return np.asarray(convert()), aware
    if isinstance(column, Sequence) and not isinstance(column, (str, bytes)):
        items = list(column)
        return np.array(items, dtype=object), False
    raise InvalidBulkInput(
        "column", None, type(column).__name__, "expected an array, a Series or a sequence"
    )


def _ids(values: NDArray[np.generic], limit: int) -> NDArray[np.int64]:
    """Check one chunk of ids; return them as int64.

    :raises InvalidUserId: for the first bool, non-int, negative or too large id
    """
    kind = values.dtype.kind
    if kind == "O":
        for item in values:
            if (
                isinstance(item, (bool, np.bool_))
                or not isinstance(item, (int, np.integer))
                or not 0 <= item <= limit
            ):
                raise InvalidUserId(item, limit)
        return values.astype(np.int64)
    if kind not in "iu":
        raise InvalidUserId(values[0].item() if len(values) else values.dtype, limit)
    if kind == "u":
        unsigned = values.astype(np.uint64, copy=False)
        bad = np.flatnonzero(unsigned > np.uint64(limit))
        if len(bad):
            raise InvalidUserId(int(unsigned[bad[0]]), limit)
        return unsigned.astype(np.int64)
    signed = values.astype(np.int64, copy=False)
    bad = np.flatnonzero((signed < 0) | (signed > limit))
    if len(bad):
        raise InvalidUserId(int(signed[bad[0]]), limit)
    return signed


def _offsets_of(instants: NDArray[np.int64], tz: _dt.tzinfo) -> NDArray[np.int64]:
    """The zone's UTC offset (seconds) at each instant: once per UTC hour, per row at a change."""

    def offset(seconds: int) -> int:
        moment = _dt.datetime.fromtimestamp(seconds, tz)
        delta = moment.utcoffset()
        return 0 if delta is None else int(delta.total_seconds())

    hours, inverse = np.unique(np.floor_divide(instants, 3600), return_inverse=True)
    starts = np.array([offset(int(hour) * 3600) for hour in hours], dtype=np.int64)
    ends = np.array([offset(int(hour) * 3600 + 3599) for hour in hours], dtype=np.int64)
    offsets = starts[inverse]
    changing = np.flatnonzero((starts != ends)[inverse])  # rows in an hour with a transition
    for row in changing:
        offsets[row] = offset(int(instants[row]))
    return offsets


def _object_times(values: NDArray[np.generic], offset: int, tz: _dt.tzinfo) -> NDArray[np.int64]:
    """Wall seconds of a column of Python objects: datetimes, dates or epoch numbers."""
    out = np.empty(len(values), dtype=np.int64)
    instants: list[int] = []  # rows holding epoch seconds: converted together below
    for index, item in enumerate(values):
        if isinstance(item, (_dt.datetime, _dt.date)):
            local = to_local(item, tz).replace(tzinfo=None)
            out[index] = (local - _EPOCH) // _dt.timedelta(seconds=1)
        elif isinstance(item, (int, float, np.integer, np.floating)) and not isinstance(
            item, (bool, np.bool_)
        ):
            if not math.isfinite(item):
                raise InvalidBulkInput("times", offset + index, item, _NOT_A_TIME)
            seconds = math.floor(item)
            if not _INSTANT_MIN <= seconds <= _INSTANT_MAX:
                raise InvalidBulkInput("times", offset + index, item, _OUTSIDE)
            out[index] = seconds
            instants.append(index)
        elif item is None:
            raise InvalidBulkInput("times", offset + index, item, _NOT_A_TIME)
        else:
            raise InvalidBulkInput(
                "times", offset + index, item, "expected a datetime, a date or epoch seconds"
            )
    if instants:
        rows = np.array(instants, dtype=np.intp)
        out[rows] += _offsets_of(out[rows], tz)
    return out


def _first(mask: NDArray[np.bool_]) -> int:
    return int(np.flatnonzero(mask)[0])


def _times(
    values: NDArray[np.generic], aware: bool, offset: int, tz: _dt.tzinfo
) -> NDArray[np.int64]:
    """Check one chunk of times; return them as wall seconds in ``tz``.

    :raises InvalidBulkInput: for the first NaT/NaN/None, a time outside years 1..9999,
        or a value that is not a time
    """
    kind = values.dtype.kind
    if kind == "O":
        return _object_times(values, offset, tz)
    if kind == "M":  # datetime64: naive wall clock, or UTC when the column was aware
        missing = np.isnat(values)
        if missing.any():
            index = _first(missing)
            raise InvalidBulkInput("times", offset + index, values[index], _NOT_A_TIME)
        moments = values.astype("datetime64")
        unit, count = np.datetime_data(moments.dtype)
        per_second = _PER_SECOND.get(unit)
        if per_second is None:  # seconds or coarser: exact
            seconds = moments.astype("datetime64[s]").view(np.int64)
        else:  # finer: floored, so a moment before 1970 stays in its own second
            if count != 1:
                moments = moments.astype(f"datetime64[{unit}]")
            seconds = np.floor_divide(moments.view(np.int64), per_second)
    elif kind in "iu":
        seconds = values.astype(np.int64)
        aware = True
    elif kind == "f":
        missing = ~np.isfinite(values.astype(np.float64))
        if missing.any():
            index = _first(missing)
            raise InvalidBulkInput("times", offset + index, values[index].item(), _NOT_A_TIME)
        floats = np.floor(values.astype(np.float64))
        outside = (floats < _INSTANT_MIN) | (floats > _INSTANT_MAX)
        if outside.any():
            index = _first(outside)
            raise InvalidBulkInput("times", offset + index, values[index].item(), _OUTSIDE)
        seconds = floats.astype(np.int64)
        aware = True
    else:
        raise InvalidBulkInput(
            "times", None, str(values.dtype), "expected datetimes or epoch seconds"
        )
    if aware:
        outside = (seconds < _INSTANT_MIN) | (seconds > _INSTANT_MAX)
        if outside.any():
            index = _first(outside)
            raise InvalidBulkInput("times", offset + index, values[index].item(), _OUTSIDE)
        return seconds + _offsets_of(seconds, tz)
    outside = (seconds < _WALL_MIN) | (seconds > _WALL_MAX)
    if outside.any():
        index = _first(outside)
        raise InvalidBulkInput("times", offset + index, values[index].item(), _OUTSIDE)
    return seconds


@dataclass(slots=True)
class Columns:
    """The two columns of a backfill, as numpy arrays, cut into chunks on demand.

    :param ids: the user ids, as given (converted per chunk)
    :param times: the times, as given (converted per chunk)
    :param aware: whether ``times`` holds instants (converted to the zone per chunk)
    :param tz: the tracker's zone
    :param limit: the largest id accepted
    """

    ids: NDArray[np.generic]
    times: NDArray[np.generic]
    aware: bool
    tz: _dt.tzinfo
    limit: int

    def __len__(self) -> int:
        return len(self.ids)

    def chunk(self, start: int, stop: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Return rows ``start:stop`` checked: ids as int64, times as wall seconds.

        :raises InvalidUserId: for a bad id in those rows
        :raises InvalidBulkInput: for a bad time in those rows
        """
        ids = _ids(self.ids[start:stop], self.limit)
        return ids, _times(self.times[start:stop], self.aware, start, self.tz)


def load_columns(user_ids: Sized, times: Sized, tz: _dt.tzinfo, limit: int) -> Columns:
    """Take the two columns of a backfill as numpy arrays (no copy where none is needed).

    :param user_ids: the ids
    :param times: the times, one per id
    :param tz: the tracker's zone
    :param limit: the largest id accepted
    :raises InvalidBulkInput: for columns of different lengths, or of an unknown type
    """
    ids, _ = _values(user_ids)
    moments, aware = _values(times)
    if ids.ndim != 1:
        raise InvalidBulkInput("user_ids", None, ids.shape, "expected one dimension")
    if moments.ndim != 1:
        raise InvalidBulkInput("times", None, moments.shape, "expected one dimension")
    if len(ids) != len(moments):
        raise InvalidBulkInput(
            "times", None, len(moments), f"expected as many times as user_ids ({len(ids)})"
        )
    return Columns(ids, moments, aware, tz, limit)


@dataclass(slots=True)
class Planner:
    """Turns checked chunks of one event's rows into write batches.

    :param schema: the key schema
    :param event: the validated event name
    :param hourly: whether hour bits are set
    :param periods_of: the periods of a naive local moment (the tracker's)
    """

    schema: KeySchema
    event: str
    hourly: bool
    periods_of: PeriodsOf

    def slots(self, wall: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.intp]]:
        """The distinct local hours (or days) of ``wall`` and each row's index among them."""
        size = 3600 if self.hourly else 86_400
        found, inverse = np.unique(np.floor_divide(wall, size), return_inverse=True)
        return found * size, inverse.reshape(-1)

    def periods(self, starts: NDArray[np.int64]) -> list[tuple[Period | None, ...]]:
        """The periods of each distinct slot (checks them: calendar, expiry deadlines).

        :raises InvalidPeriod: for periods or expiry deadlines that cannot exist
        """
        return [self.periods_of(_EPOCH + _dt.timedelta(seconds=int(start))) for start in starts]

    def batch(
        self, writes: WriteBatch, ids: NDArray[np.int64], wall: NDArray[np.int64]
    ) -> WriteBatch:
        """Add one checked chunk to ``writes``: every key's bits, the universe, the count.

        :param writes: an empty write batch
        :param ids: the chunk's ids
        :param wall: the chunk's times as wall seconds
        """
        if not len(ids):
            return writes
        starts, inverse = self.slots(wall)
        slot_periods = self.periods(starts)
        shards, bits = self._split(ids)
        shard_values, shard_index = np.unique(shards, return_inverse=True)
        shard_index = shard_index.reshape(-1)
        image_bits = writes.image_bits
        for position in range(len(slot_periods[0])):
            codes: dict[Period | None, int] = {}
            slot_codes = np.fromiter(
                (codes.setdefault(p[position], len(codes)) for p in slot_periods),
                dtype=np.int64,
                count=len(slot_periods),
            )
            by_code = list(codes)
            group = slot_codes[inverse] * len(shard_values) + shard_index
            for value, offsets in _groups(group, bits):
                code, shard = divmod(value, len(shard_values))
                writes.add_prepared(
                    self.event,
                    by_code[code],
                    int(shard_values[shard]),
                    _prepare(offsets, image_bits),
                )
        for value, offsets in _groups(shard_index.astype(np.int64), bits):
            writes.add_prepared_universe(int(shard_values[value]), _prepare(offsets, image_bits))
        writes.add_marks(len(ids))
        return writes

    def _split(self, ids: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Each id's shard and bit offset."""
        schema = self.schema
        if type(schema) is ShardedSchema:
            shift = schema.shard_bits
            return ids >> shift, ids & ((1 << shift) - 1)
        distinct, inverse = np.unique(ids, return_inverse=True)
        shards = np.array([schema.shard_of(int(uid)) for uid in distinct], dtype=np.int64)
        bits = np.array([schema.bit_of(int(uid)) for uid in distinct], dtype=np.int64)
        inverse = inverse.reshape(-1)
        return shards[inverse], bits[inverse]


def _groups(
    group: NDArray[np.int64], bits: NDArray[np.int64]
) -> list[tuple[int, NDArray[np.int64]]]:
    """Split ``bits`` by ``group``: each group's distinct bits, ascending."""
    order = np.lexsort((bits, group))
    group, bits = group[order], bits[order]
    keep = np.ones(len(bits), dtype=np.bool_)
    keep[1:] = (group[1:] != group[:-1]) | (bits[1:] != bits[:-1])
    group, bits = group[keep], bits[keep]
    edges = np.flatnonzero(group[1:] != group[:-1]) + 1
    starts = np.concatenate(([0], edges))
    stops = np.concatenate((edges, [len(bits)]))
    return [
        (int(group[start]), bits[start:stop])
        for start, stop in zip(starts.tolist(), stops.tolist(), strict=True)
    ]


def _prepare(offsets: NDArray[np.int64], image_bits: int) -> PreparedBits:
    """The bits of one key: offsets when few, a byte image (MSB first) when many."""
    if len(offsets) < image_bits:
        return PreparedBits(offsets=tuple(offsets.tolist()))
    lo = int(offsets[0]) >> 3
    hi = int(offsets[-1]) >> 3
    plane = np.zeros((hi - lo + 1) * 8, dtype=np.bool_)
    plane[offsets - (lo << 3)] = True
    return PreparedBits(lo=lo, image=np.packbits(plane).tobytes())
