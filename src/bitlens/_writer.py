"""The write side: validation, write batches, lone marks, coalescing, fire-and-forget.

Every path ends in :meth:`Writer.flush` (or, for one mark on one server, the same
MULTI/EXEC written without the batch machinery): marks are validated whole before
anything is queued or sent, each shard written is re-asserted in the registry in the same
round trip, and every path counts into one :class:`~bitlens.IngestStats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as _dt
import secrets
from typing import TYPE_CHECKING, TypeAlias

import anyio

from ._exceptions import InvalidOption, MarkRejected, OptionalDependencyMissing
from ._execute import Executor, Group, GroupTemplate
from ._ingest import Coalescer, FireAndForget, IngestStats, Rejections, is_permanent
from ._keys import KeySchema, validate_event_name, validate_user_id
from ._options import Coalesce, Limits, check_deadlines
from ._periods import Day, Hour, Period, to_local
from ._transport import HOLE
from ._writes import Granularity, WriteBatch

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sized

    from ._plan import Command
    from ._state import Lifecycle, ShardRegistry

__all__ = ["Mark", "Writer"]

Mark: TypeAlias = tuple[str, int] | tuple[str, int, _dt.datetime | _dt.date | None]
"""One item of :meth:`Tracker.mark_events`: ``(event, user_id)`` or ``(event, user_id, at)``."""

Validated = tuple[str, int, tuple[Period | None, ...]]
"""A validated mark without its value: event, user id, the periods it sets."""

_UNIQUE_ONLY: tuple[None] = (None,)

_LoneKeys: TypeAlias = (
    "tuple[tuple[Period | None, ...], list[str], str | None, list[GroupTemplate | None]]"
)
"""What a lone mark of one event, shard and periods reuses: the periods, their keys, the
universe key, and the packed mark (value 0 and 1) once made."""


class Writer:
    """Everything a tracker does to put marks into Redis.

    :param executor: sends the writes
    :param schema: names the keys
    :param registry: the shards known to hold data (written ones are noted)
    :param state: the tracker's lifecycle
    :param tz: the tracker's zone
    :param track_hourly: set hour bits by default
    :param track_unique: set UniqueEvents bits by default
    :param expire_after: a time to live per granularity
    :param coalesce: how concurrent marks share round trips (``None``: they do not)
    :param limits: ids, chunk and queue sizes
    """

    def __init__(
        self,
        executor: Executor,
        schema: KeySchema,
        registry: ShardRegistry,
        state: Lifecycle,
        *,
        tz: _dt.tzinfo,
        track_hourly: bool,
        track_unique: bool,
        expire_after: Mapping[Granularity, _dt.timedelta],
        coalesce: Coalesce | None,
        limits: Limits,
    ) -> None:
        self._executor = executor
        self._schema = schema
        self._registry = registry
        self._state = state
        self._tz = tz
        self._hourly = track_hourly
        self._unique = track_unique
        self._expire_after = dict(expire_after)
        self._coalesce = coalesce
        self._limits = limits
        self.tally = IngestStats()
        self.rejections = Rejections()
        self.coalescer: Coalescer | None = None  # made on first use, inside the event loop
        self.queue: FireAndForget | None = None
        self._period_cache: dict[tuple[int, int, int, int, bool], tuple[Period | None, ...]] = {}
        self._valid_events: set[str] = set()
        self._lone_keys: dict[tuple[str, int, int], _LoneKeys] = {}
        self._shard_nodes: dict[int, str] = {}  # cluster: shard → node name, for coalescing

    # -- validation -------------------------------------------------------------------------

    def periods(
        self, at: _dt.datetime | _dt.date | None, hourly: bool, unique: bool = False
    ) -> tuple[Period | None, ...]:
        """The periods a mark at ``at`` sets (``None``: UniqueEvents), cached per hour.

        The same tuple object comes back for every mark of the same local hour, which lets
        a WriteBatch find its keys once per batch.
        """
        tz = self._tz
        if at is None:
            moment = _dt.datetime.now(tz)
        elif type(at) is _dt.datetime and at.tzinfo is tz:  # the hot path: no conversion
            moment = at
        else:
            moment = to_local(at, tz)
        key = (moment.year, moment.month, moment.day, moment.hour if hourly else -1, unique)
        periods = self._period_cache.get(key)
        if periods is None:
            day = Day(moment.year, moment.month, moment.day, tz)
            found: tuple[Period | None, ...] = (day.as_month(), day.as_week(), day)
            if hourly:
                found += (Hour(moment.year, moment.month, moment.day, moment.hour, tz),)
            if unique:
                found += (None,)
            if self._expire_after:  # once per local hour: cached with the periods
                check_deadlines(found, self._expire_after)
            if len(self._period_cache) > 4096:
                self._period_cache.clear()
            periods = self._period_cache[key] = found
        return periods

    def validate_mark(
        self,
        event: str,
        user_id: int,
        at: _dt.datetime | _dt.date | None,
        track_hourly: bool | None,
        track_unique: bool | None,
    ) -> Validated:
        """Check a mark's every part; return it with the periods it sets.

        :raises InvalidEventName: for a bad name
        :raises InvalidUserId: for a bad id
        :raises InvalidOption: for a flag that is not a bool or None
        :raises InvalidMoment: for an ``at`` that is not a datetime or date
        :raises InvalidPeriod: for periods or an expiry deadline that cannot exist
        """
        if type(event) is not str or event not in self._valid_events:  # unhashable too
            validate_event_name(event)
            if len(self._valid_events) < 10_000:
                self._valid_events.add(event)
        limit = self._limits.max_user_id
        if type(user_id) is not int or not 0 <= user_id <= limit:
            user_id = validate_user_id(user_id, limit)
        if track_hourly is None:
            hourly = self._hourly
        elif isinstance(track_hourly, bool):
            hourly = track_hourly
        else:
            raise InvalidOption("track_hourly", track_hourly, "True, False or None")
        if track_unique is None:
            unique = self._unique
        elif isinstance(track_unique, bool):
            unique = track_unique
        else:
            raise InvalidOption("track_unique", track_unique, "True, False or None")
        return event, user_id, self.periods(at, hourly, unique)

    def validate_unique(self, event: str, user_id: int) -> Validated:
        """Check a mark of ``UniqueEvents(event)``; return it with its one period (None).

        :raises InvalidEventName: for a bad name
        :raises InvalidUserId: for a bad id
        """
        return (
            validate_event_name(event),
            validate_user_id(user_id, self._limits.max_user_id),
            _UNIQUE_ONLY,
        )

    # -- sending ----------------------------------------------------------------------------

    def new_writes(self) -> WriteBatch:
        """An empty write batch of this tracker's schema and expiry."""
        return WriteBatch(self._schema, self._expire_after)

    async def flush(self, writes: WriteBatch) -> None:
        """Send a batch of marks in one round trip; re-assert every shard it writes.

        Every write re-asserts its shards in the registry, so a reader can never miss a
        shard that holds data — whatever the server lost (a restart without persistence, a
        ``FLUSHDB``, a restore from an older snapshot, a failover to a lagging replica):
        the next write into a shard lists it again. On one server the ``SADD`` rides in the
        same MULTI/EXEC as the bits; on a cluster it goes to the registry's master in the
        same concurrent fan-out as the shards' transactions, never as a second round trip.
        """
        self._state.check_sending()
        if not writes.marks:
            return
        shards = writes.shards
        token = secrets.token_hex(8)
        registry = self._schema.registry_key
        if self._executor.is_cluster:
            # One MULTI/EXEC per shard (its keys share one slot) on the shard's node; the
            # registry lives in a slot of its own. One pipeline per node, concurrently.
            groups = [
                Group(self._schema.universe_key(shard), commands, transaction=True)
                for shard, commands in writes.by_shard(token).items()
            ]
            # The registry's SADD is a transaction too, only so that with replicas_ack the
            # executor sends WAIT after it (it does so after transactions): a registry entry
            # lost in a failover would hide an acknowledged mark from every new reader.
            if not self._registry.fixed:
                sadd: Command = ("SADD", registry, *sorted(shards))
                groups.append(Group(registry, [sadd], transaction=True))
            await self._executor.run(groups)
        else:
            listed = set() if self._registry.fixed else shards
            await self._executor.send(writes.commands(token, listed), transaction=True)
        self._registry.note(shards)
        self.tally.marks_written += writes.marks
        self.tally.batches_sent += 1

    async def write(self, item: Validated, value: int) -> None:
        """Write one validated mark (``value`` 1) or unmark (0): coalesced or alone.

        :raises MarkRejected: when Redis refuses it for good
        """
        if self._coalesce is not None:
            coalescer = self.coalescer
            if coalescer is None:
                coalescer = self.coalescer = Coalescer(
                    self.flush,
                    self.new_writes,
                    self.tally,
                    self.rejections,
                    max_marks=self._coalesce.max_marks,
                    delay=self._coalesce.delay,
                    max_in_flight=self._coalesce.max_in_flight,
                    route=self._node_of if self._executor.is_cluster else None,
                )
            await coalescer.add(*item, value)
            return
        try:
            await self._write_lone(item, value)
        except Exception as error:
            if not is_permanent(error):
                raise
            self.rejections.reject((*item, value), error, self.tally)
            raise MarkRejected(item[0], item[1], str(error)) from error

    def _node_of(self, user_id: int) -> str | None:
        """The cluster node holding ``user_id``'s shard (coalesced batches go per node)."""
        shard = self._schema.shard_of(user_id)
        node = self._shard_nodes.get(shard)
        if node is None:
            node = self._executor.node_of(self._schema.universe_key(shard))
            if node is not None:  # unknown before the first call reads the cluster's slots
                if len(self._shard_nodes) > 65_536:
                    self._shard_nodes.clear()
                self._shard_nodes[shard] = node
        return node

    async def _write_lone(self, item: Validated, value: int) -> None:
        if self._expire_after or self._executor.is_cluster:
            writes = self.new_writes()
            writes.add(*item, value)
            await self.flush(writes)
            return
        # The hottest path: one mark on one server. Its keys are cached per (event, hour,
        # shard), and its request is packed once per keys and value, the bit offset left
        # open (Executor.prepare_template): the same MULTI/EXEC a WriteBatch of one mark
        # would send, without the batch machinery, the planning or the encoding.
        self._state.check_sending()
        event, user_id, periods = item
        schema = self._schema
        shard, bit = schema.shard_of(user_id), schema.bit_of(user_id)
        found = self._lone_keys.get((event, shard, id(periods)))
        if found is None or found[0] is not periods:
            if len(self._lone_keys) > 4096:
                self._lone_keys.clear()
            keys = [schema.event_key(event, period, shard) for period in periods]
            universe = None if schema.universe == "absent" else schema.universe_key(shard)
            shapes: list[GroupTemplate | None] = [None, None]
            found = (periods, keys, universe, shapes)
            self._lone_keys[event, shard, id(periods)] = found
        shaped = found[3][value]
        if shaped is None:
            shaped = self._executor.prepare_template([self._lone_group(found, shard, value, HOLE)])
            found[3][value] = shaped
        if shaped is not None:
            await self._executor.run_template(shaped, bit)
        else:  # a cluster or the public fallback
            await self._executor.run([self._lone_group(found, shard, value, bit)])
        self._registry.known.add(shard)
        self.tally.marks_written += 1
        self.tally.batches_sent += 1

    def _lone_group(self, found: _LoneKeys, shard: int, value: int, bit: int) -> Group:
        """The MULTI/EXEC group of one mark (``value`` 1) or unmark (0) of ``bit``.

        :param bit: the bit offset, or :data:`~bitlens._transport.HOLE` for a template
        """
        commands: list[Command] = [("SETBIT", key, bit, value) for key in found[1]]
        if value and found[2] is not None:
            commands.append(("SETBIT", found[2], bit, 1))
        if not self._registry.fixed:  # re-asserted every write
            commands.append(("SADD", self._schema.registry_key, shard))
        return Group(str(commands[0][1]), commands, transaction=True)

    def put_nowait(self, item: Validated) -> bool:
        """Queue a validated mark for the fire-and-forget sender; False if it was dropped."""
        queue = self.queue
        if queue is None:
            queue = self.queue = FireAndForget(
                self.flush,
                self.new_writes,
                self.tally,
                self.rejections,
                max_queue=self._limits.nowait_max_queue,
                chunk=self._limits.mark_chunk_size,
            )
        return queue.put((*item, 1))

    async def mark_events(
        self,
        marks: Iterable[Mark],
        *,
        track_hourly: bool | None,
        track_unique: bool | None,
        progress: Callable[[int], object] | None,
    ) -> int:
        """Stream marks in validated chunks, one round trip each, one chunk in flight.

        :returns: the number of marks written
        """
        writes = self.new_writes()
        validate = self.validate_mark
        chunk_size = self._limits.mark_chunk_size
        sent = 0
        # One chunk is in flight while the next one is built: Redis applies a chunk while
        # this process validates and groups the next (two cores at work instead of one).
        in_flight: asyncio.Task[None] | None = None
        try:
            for mark in marks:
                if type(mark) is not tuple:
                    raise TypeError(f"expected (event, user_id[, at]), got {mark!r}")
                if len(mark) == 3:
                    event, user_id, at = mark
                elif len(mark) == 2:
                    event, user_id, at = (*mark, None)
                else:
                    raise TypeError(f"expected (event, user_id[, at]), got {mark!r}")
                writes.add(*validate(event, user_id, at, track_hourly, track_unique), 1)
                if writes.marks >= chunk_size:
                    if in_flight is not None:
                        await in_flight
                        in_flight = None
                        sent += chunk_size
                        if progress is not None:
                            progress(sent)
                    in_flight = asyncio.get_running_loop().create_task(self.flush(writes))
                    writes = self.new_writes()
                    await asyncio.sleep(0)  # let it pack and write its request
            if in_flight is not None:
                await in_flight
                in_flight = None
                sent += chunk_size
                if progress is not None:
                    progress(sent)
        except BaseException as exc:
            if in_flight is not None:
                if isinstance(exc, Exception):  # e.g. a bad item: the chunks before it are sent
                    # The shield holds off anyio cancel scopes; a plain Task.cancel() of the
                    # caller is forwarded into the chunk by this await, which then ends
                    # cancelled before the caller raises (tests/faults/test_chunk_settle.py).
                    with anyio.CancelScope(shield=True):
                        await in_flight  # if it failed, its error (the earlier one) is raised
                    if progress is not None:
                        progress(sent + chunk_size)
                else:  # cancelled: so is the chunk in flight (marks are idempotent)
                    in_flight.cancel()
                    with anyio.CancelScope(shield=True), contextlib.suppress(BaseException):
                        await in_flight
            raise
        if writes.marks:
            await self.flush(writes)
            sent += writes.marks
            if progress is not None:
                progress(sent)
        return sent

    async def mark_bulk(
        self,
        event: str,
        user_ids: Sized,
        times: Sized,
        *,
        track_hourly: bool | None,
        track_unique: bool | None,
        chunk_size: int | None,
        progress: Callable[[int, int], object] | None,
    ) -> int:
        """Mark one event for columns of ids and times, vectorized, chunk by chunk.

        Every chunk is checked before the first one is sent; then each chunk is one
        write batch (one round trip per node), one chunk in flight while the next is
        grouped.

        :returns: the number of rows marked
        """
        try:
            from . import _bulk  # numpy: only for mark_bulk
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] != "numpy":
                raise
            raise OptionalDependencyMissing("Tracker.mark_bulk()", "numpy", "bulk") from None
        event = validate_event_name(event)
        hourly, unique = self._flags(track_hourly, track_unique)
        size = _bulk.BULK_CHUNK_SIZE if chunk_size is None else chunk_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InvalidOption("chunk_size", chunk_size, "an int >= 1 or None")
        columns = _bulk.load_columns(user_ids, times, self._tz, self._limits.max_user_id)
        planner = _bulk.Planner(
            self._schema, event, hourly, lambda moment: self.periods(moment, hourly, unique)
        )
        total = len(columns)
        bounds = [(start, min(start + size, total)) for start in range(0, total, size)]
        for start, stop in bounds:  # everything is checked before anything is sent
            planner.periods(planner.slots(columns.chunk(start, stop)[1])[0])
        done = 0
        in_flight: tuple[asyncio.Task[None], int] | None = None
        try:
            for start, stop in bounds:
                writes = planner.batch(self.new_writes(), *columns.chunk(start, stop))
                if in_flight is not None:
                    await in_flight[0]
                    done += in_flight[1]
                    in_flight = None
                    if progress is not None:
                        progress(done, total)
                task = asyncio.get_running_loop().create_task(self.flush(writes))
                in_flight = (task, stop - start)
                await asyncio.sleep(0)  # let it pack and write its request
            if in_flight is not None:
                await in_flight[0]
                done += in_flight[1]
                in_flight = None
                if progress is not None:
                    progress(done, total)
        except BaseException as exc:
            if in_flight is not None:
                if isinstance(exc, Exception):  # the chunk in flight is still written
                    with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                        await in_flight[0]
                else:  # cancelled: so is the chunk in flight (marks are idempotent)
                    in_flight[0].cancel()
                    with anyio.CancelScope(shield=True), contextlib.suppress(BaseException):
                        await in_flight[0]
            raise
        return done

    def _flags(self, track_hourly: bool | None, track_unique: bool | None) -> tuple[bool, bool]:
        """The hourly and unique flags of a mark (``None``: the tracker's settings).

        :raises InvalidOption: for a flag that is not a bool or None
        """
        if track_hourly is not None and not isinstance(track_hourly, bool):
            raise InvalidOption("track_hourly", track_hourly, "True, False or None")
        if track_unique is not None and not isinstance(track_unique, bool):
            raise InvalidOption("track_unique", track_unique, "True, False or None")
        return (
            self._hourly if track_hourly is None else track_hourly,
            self._unique if track_unique is None else track_unique,
        )

    def stats(self) -> IngestStats:
        """A snapshot of the write counters."""
        pending = len(self.queue) if self.queue is not None else 0
        return dataclasses.replace(self.tally, nowait_pending=pending)

    async def drain(self, limit: float | None) -> None:
        """Wait for coalesced batches in flight, then drain the fire-and-forget queue.

        :param limit: seconds to wait for the queue (None: no limit)
        """
        if self.coalescer is not None:
            await self.coalescer.wait_idle()
        if self.queue is not None:
            await self.queue.drain(limit)

    def warn_unsent(self) -> None:
        """Warn that queued fire-and-forget marks will never be sent (tracker not closed)."""
        if self.queue is not None:
            self.queue.warn_unsent()
