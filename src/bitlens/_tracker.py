"""The tracker: a facade over the write side and the query side of one Redis deployment.

It holds the configuration and the lifecycle; every operation is a delegation to
:class:`~bitlens._writer.Writer` (marks) or :class:`~bitlens._reader.Reader` (questions),
which share one :class:`~bitlens._execute.Executor`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt  # noqa: TC003 (TrackerOptions is read at runtime)
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal, NamedTuple, TypedDict, TypeVar, cast, overload

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from ._exceptions import InvalidOption
from ._execute import Executor
from ._ingest import Batch, IngestStats
from ._keys import (
    MAX_USER_ID,
    KeySchema,
    ShardedSchema,
    validate_event_name,
    validate_user_id,
)
from ._lower import ScriptMode, script_mode
from ._manage import Erasure, Manager, check_name_prefix
from ._options import CLIENT_READ_BYTES, Coalesce, Limits, Reads, check_options
from ._periods import TzLike  # noqa: TC001
from ._plan import Capabilities, ResolveContext
from ._reader import Reader
from ._state import Lifecycle, ShardRegistry
from ._transport import connection_kwargs
from ._writer import Mark, Writer
from ._writes import Granularity  # noqa: TC001

if TYPE_CHECKING:
    from collections.abc import Sized
    from types import TracebackType

    from typing_extensions import Self

    from ._expr import Expr
    from ._periods import Period
    from ._plan import Node
    from .cohort import (
        Criterion,
        EngagementReport,
        Every,
        FunnelReport,
        LifecycleReport,
        Mode,
        PeriodName,
        RetentionTable,
        Segments,
        StickinessReport,
    )
    from .otel import Telemetry

__all__ = ["CLIENT_READ_BYTES", "Mark", "Parts", "Reads", "Tracker", "TrackerOptions", "parts"]

_K = TypeVar("_K")
_LIMITS = Limits()


class TrackerOptions(TypedDict, total=False):
    """The keyword options of :class:`Tracker`, for functions that pass them on."""

    prefix: str
    tz: TzLike
    track_hourly: bool
    track_unique: bool
    shard_bits: int
    schema: KeySchema | None
    expire_after: Mapping[Granularity, _dt.timedelta] | None
    coalesce: bool | Coalesce
    limits: Limits
    cluster: bool
    replicas_ack: int
    capabilities: Capabilities | None
    telemetry: bool | Telemetry
    reads: Reads
    scripts: ScriptMode | None


class Tracker:
    """Marks events and answers questions about them, on one Redis server or cluster.

    A tracker is cheap to share: create one per application and use it from every task.
    It never closes a client it was handed; it closes the one it made from a URL.

    Example::

        async with Tracker("redis://localhost:6379/0") as tracker:
            await tracker.mark_event("active", 123)
            this_month = MonthEvents.from_date("active", datetime.now(UTC))
            print(await tracker.count(this_month), await tracker.contains(this_month, 123))

    :param url_or_client: a ``redis://`` URL (the tracker then owns a client that retries
        up to 5 times after connection errors), a ``redis.asyncio.Redis`` or a
        ``redis.asyncio.cluster.RedisCluster`` client (neither may use
        ``decode_responses=True``: bitmaps are bytes)
    :param prefix: the first segment of every key (default ``bl``)
    :param tz: the time zone whose calendar defines days, weeks and months (default UTC);
        aware datetimes are converted to it, naive ones are taken to be in it
    :param track_hourly: also mark hour bitmaps by default
    :param track_unique: also mark the UniqueEvents bitmap by default
    :param shard_bits: each shard holds ``2**shard_bits`` ids (default 20: bitmaps of at
        most 128 KiB; only shards holding a marked id exist)
    :param schema: a custom key schema (overrides ``prefix`` and ``shard_bits``)
    :param expire_after: a time to live per granularity (``"hour"``, ``"day"``, ``"week"``,
        ``"month"``): a positive ``datetime.timedelta``, counted from the end of each
        period. A mark whose deadline would fall past year 9999 raises ``InvalidPeriod``
        at the call
    :param coalesce: merge concurrent ``mark_event`` calls into shared round trips:
        ``True`` for the defaults of :class:`Coalesce`, or a :class:`Coalesce`
    :param limits: the largest id, chunk sizes and the fire-and-forget queue's size
        (:class:`Limits`)
    :param cluster: with a URL, connect to a Redis Cluster (``RedisCluster.from_url``)
    :param replicas_ack: after each write, wait (``WAIT``) until this many replicas have it,
        so an acknowledged mark survives a failover; raises ``ReplicationTimeout`` if not
    :param capabilities: the server's BITOP extensions (:class:`Capabilities`), stated so
        that no probe is ever sent; by default the first count learns them by sending
        ``BITOP DIFF`` and ``ANDOR`` over a key that does not exist, riding along with that
        count's round trip (once per connection pool; ``INFO`` is never needed)
    :param telemetry: OpenTelemetry spans and metrics (needs ``bitlens[otel]``): ``True``
        uses the global tracer and meter providers, a :class:`bitlens.otel.Telemetry`
        names its own; ``False`` (the default) costs nothing
    :param reads: where counts (``count``, ``count_many``, ``retention``) are computed.
        ``"server"`` (the default) runs a script that combines the bitmaps with ``BITOP``
        into temp keys and counts them there: one round trip per node, little data on the
        wire, but the Redis user needs write access to the prefix. ``"client"`` reads the
        bitmaps with ``GETRANGE`` (at most :data:`CLIENT_READ_BYTES` per round trip) and
        combines and counts them here with Python ints: same answers, no writes, so a
        read-only user (``%R~<prefix>:*``) can count; it moves every bitmap over the wire.
        ``contains`` and ``members`` read only, whichever is chosen
    :param scripts: how server-side counts run. ``"auto"`` sends the count script and,
        once the server refuses scripts (``EVAL`` unknown or denied by ACL, no Lua
        engine), runs each script call as one ``MULTI``/``EXEC`` of the same commands
        instead, for good on that connection pool (the count that found out takes one
        round trip more); ``"lua"`` always sends the script; ``"none"`` never does (same
        answers and round trips, no ``EVAL`` permission needed). ``None`` (the default)
        takes the ``BITLENS_SCRIPTS`` environment variable, else ``"auto"``
    :raises InvalidOption: for an option of the wrong type or out of its range (e.g.
        ``coalesce=1``, ``expire_after={"day": 5}``, a zero or negative TTL), before
        any client is made; it is a ``ValueError``
    :raises InvalidPrefix: for an unsafe ``prefix``
    :raises InvalidTimeZone: for an unknown ``tz``
    :raises TypeError: for a client that is neither a URL nor a ``redis.asyncio.Redis``
    :raises ValueError: for a client with ``decode_responses=True``
    """

    def __init__(
        self,
        url_or_client: str | Redis | RedisCluster,
        *,
        prefix: str = "bl",
        tz: TzLike = "UTC",
        track_hourly: bool = False,
        track_unique: bool = False,
        shard_bits: int = 20,
        schema: KeySchema | None = None,
        expire_after: Mapping[Granularity, _dt.timedelta] | None = None,
        coalesce: bool | Coalesce = False,
        limits: Limits = _LIMITS,
        cluster: bool = False,
        replicas_ack: int = 0,
        capabilities: Capabilities | None = None,
        telemetry: bool | Telemetry = False,
        reads: Reads = "server",
        scripts: ScriptMode | None = None,
    ) -> None:
        # Every option is checked before a client is made: a bad one raises InvalidOption
        # (or InvalidPrefix, InvalidTimeZone) and leaves nothing behind.
        zone, coalescing = check_options(
            tz=tz,
            flags={"track_hourly": track_hourly, "track_unique": track_unique, "cluster": cluster},
            schema=schema,
            coalesce=coalesce,
            limits=limits,
            expire_after=expire_after,
            replicas_ack=replicas_ack,
            capabilities=capabilities,
            reads=reads,
        )
        mode = script_mode(scripts, os.environ)
        instrument = _telemetry_hook(telemetry)
        key_schema = schema or ShardedSchema(prefix=prefix, shard_bits=shard_bits)
        limits = _fit_limits(limits, key_schema)
        if not key_schema.cluster_safe and (cluster or isinstance(url_or_client, RedisCluster)):
            raise InvalidOption(
                "schema",
                key_schema,
                "a layout whose keys of one shard share a hash slot on a Redis Cluster "
                "(this one keeps each bitmap in a slot of its own: use one server)",
            )
        self._client, self._owns_client = _client_of(url_or_client, cluster=cluster)
        self.schema: KeySchema = key_schema
        """The key schema: every key name this tracker reads or writes."""
        self.tz: _dt.tzinfo = zone
        """The time zone whose calendar defines days, weeks and months."""
        self.track_hourly = track_hourly
        """Whether marks set hour bits by default."""
        self.track_unique = track_unique
        """Whether marks set the UniqueEvents bit by default."""
        self.expire_after: dict[Granularity, _dt.timedelta] = dict(expire_after or {})
        """The time to live per granularity (empty: keys never expire)."""
        self.coalesce: Coalesce | None = coalescing
        """How concurrent marks share round trips (``None``: each goes alone)."""
        self.limits = limits
        """The largest id, chunk sizes and the fire-and-forget queue's size."""
        self.reads: Reads = reads
        """Where counts are computed: ``"server"`` or ``"client"``."""
        self._state = Lifecycle()
        self._registry = ShardRegistry(key_schema.shards)
        self._executor = Executor(
            self._client, replicas_ack=replicas_ack, capabilities=capabilities, scripts=mode
        )
        self._writer = Writer(
            self._executor,
            key_schema,
            self._registry,
            self._state,
            tz=zone,
            track_hourly=track_hourly,
            track_unique=track_unique,
            expire_after=self.expire_after,
            coalesce=coalescing,
            limits=limits,
        )
        self._reader = Reader(
            self._executor,
            key_schema,
            self._registry,
            self._state,
            context=ResolveContext(
                tz=zone, hourly=track_hourly, universe=key_schema.universe, layout=repr(key_schema)
            ),
            reads=reads,
            max_user_id=limits.max_user_id,
            members_chunk=limits.members_chunk_bytes,
        )
        self._manager = Manager(self._executor, self._client, key_schema, self._registry)
        if instrument is not None:
            instrument(self, parts(self))

    # -- configuration and lifecycle --------------------------------------------------------

    @property
    def client(self) -> Redis | RedisCluster:
        """The ``redis.asyncio`` client this tracker sends on."""
        return self._client

    @property
    def max_user_id(self) -> int:
        """The largest id accepted (``limits.max_user_id``)."""
        return self.limits.max_user_id

    @property
    def capabilities(self) -> Capabilities | None:
        """The server's BITOP extensions: as stated, as probed by a count, or ``None`` yet.

        Example::

            await tracker.count(MonthEvents("active", 2026, 11))
            tracker.capabilities  # Capabilities(diff=False, andor=False) on Valkey
        """
        return self._executor.capabilities

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` has been called."""
        return self._state.closed

    async def __aenter__(self) -> Self:
        self._state.check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self, *, drain_timeout: float | None = 30.0) -> None:
        """Flush pending marks and close; close the client too if the tracker made it.

        Waits for coalesced batches in flight and drains the fire-and-forget queue (marks
        still queued after ``drain_timeout`` seconds are dropped, counted and logged). A
        client that was handed in stays open. Calling ``aclose()`` twice is harmless.

        :param drain_timeout: seconds to wait for the fire-and-forget queue (None: no limit)
        """
        state = self._state
        if state.closed:
            return
        state.closed = state.draining = True
        try:
            await self._writer.drain(drain_timeout)
            await self._reader.wait_cleanup()
        finally:
            state.draining = False
            if self._owns_client:
                await self._client.aclose()

    def __del__(self) -> None:
        # Like aiohttp's unclosed session: marks queued with mark_event_nowait() and never
        # sent must not vanish without a word.
        state = getattr(self, "_state", None)
        if state is not None and not state.closed:
            self._writer.warn_unsent()

    def __repr__(self) -> str:
        state = "closed" if self._state.closed else "open"
        return f"<Tracker prefix={self.schema.prefix!r} tz={self.tz!s} {state}>"

    # -- marking ----------------------------------------------------------------------------

    async def mark_event(
        self,
        event: str,
        user_id: int,
        at: _dt.datetime | _dt.date | None = None,
        *,
        track_hourly: bool | None = None,
        track_unique: bool | None = None,
    ) -> None:
        """Mark that ``user_id`` did ``event`` at ``at`` (default: now), in one round trip.

        Sets the month, ISO week and day bits (and the hour and unique bits when asked) and
        the shard's universe bit, atomically in one MULTI/EXEC. Marking is idempotent, so
        retrying after a connection error never counts anyone twice. With
        ``Tracker(coalesce=True)`` concurrent calls share one round trip; each still
        returns only once its mark is written.

        :param event: the event name
        :param user_id: an int from 0 to the tracker's ``max_user_id``
        :param at: when it happened; aware datetimes are converted to the tracker's zone,
            naive ones are taken to be in it
        :param track_hourly: also set the hour bit (default: the tracker's setting)
        :param track_unique: also set the UniqueEvents bit (default: the tracker's setting)
        :raises InvalidUserId: for a bad id, before anything is sent
        :raises InvalidEventName: for a bad event name, before anything is sent
        :raises InvalidMoment: for an ``at`` that is not a datetime or date
        :raises InvalidPeriod: for an ``at`` outside years 1..9999, or one whose expiry
            deadline (with ``expire_after``) falls past year 9999
        :raises MarkRejected: when Redis refuses the mark for good (e.g. ``WRONGTYPE``: a
            foreign value at one of its keys); with ``coalesce=True`` only this caller
            fails, the other marks of its batch are written
        :raises TrackerClosed: after ``aclose()``
        """
        self._state.check_open()
        writer = self._writer
        item = writer.validate_mark(event, user_id, at, track_hourly, track_unique)
        coalescer = writer.coalescer
        if coalescer is not None:  # one coroutine frame fewer per coalesced mark
            await coalescer.add(*item, 1)
        else:
            await writer.write(item, 1)

    def mark_event_nowait(
        self,
        event: str,
        user_id: int,
        at: _dt.datetime | _dt.date | None = None,
        *,
        track_hourly: bool | None = None,
        track_unique: bool | None = None,
    ) -> bool:
        """Queue a mark and return at once: for handlers that must never wait on Redis.

        A background task sends the queue in chunks; passing failures (connection,
        timeout, failover) are retried with jittered backoff, logged on the ``bitlens``
        logger and counted in :meth:`stats`, never raised here. A mark Redis refuses for
        good is rejected alone (``stats().rejected``, logged once per reason) and the
        marks around it are written. An event loop that ends before ``aclose()`` with
        marks still queued gets a ``ResourceWarning``.
        The queue holds at most ``limits.nowait_max_queue`` marks: past that the new mark is
        dropped (counted, logged) and ``False`` is returned. ``aclose()`` drains the queue.
        Call it from inside the event loop (e.g. a request handler).

        :param event: the event name
        :param user_id: the id
        :param at: when it happened (default: now, taken at the call)
        :param track_hourly: also set the hour bit (default: the tracker's setting)
        :param track_unique: also set the UniqueEvents bit (default: the tracker's setting)
        :returns: whether the mark was queued
        :raises InvalidUserId: for a bad id (a bug in the caller, so it is raised)
        :raises InvalidEventName: for a bad event name
        :raises InvalidMoment: for an ``at`` that is not a datetime or date
        :raises InvalidPeriod: for an ``at`` whose periods or expiry deadline cannot exist
        :raises TrackerClosed: after ``aclose()``
        """
        self._state.check_open()
        writer = self._writer
        return writer.put_nowait(
            writer.validate_mark(event, user_id, at, track_hourly, track_unique)
        )

    async def unmark_event(
        self,
        event: str,
        user_id: int,
        at: _dt.datetime | _dt.date | None = None,
        *,
        track_hourly: bool | None = None,
        track_unique: bool | None = None,
    ) -> None:
        """Clear the bits :meth:`mark_event` would set (the universe keeps the id).

        :param event: the event name
        :param user_id: the id to clear
        :param at: which periods to clear (default: now)
        :param track_hourly: also clear the hour bit (default: the tracker's setting)
        :param track_unique: also clear the UniqueEvents bit (default: the tracker's setting)
        :raises InvalidUserId: for a bad id, before anything is sent
        :raises InvalidEventName: for a bad event name, before anything is sent
        :raises InvalidMoment: for an ``at`` that is not a datetime or date
        """
        self._state.check_open()
        writer = self._writer
        await writer.write(writer.validate_mark(event, user_id, at, track_hourly, track_unique), 0)

    async def mark_unique(self, event: str, user_id: int) -> None:
        """Mark ``user_id`` in ``UniqueEvents(event)`` (no time dimension), in one round trip.

        :param event: the event name
        :param user_id: the id to mark
        :raises InvalidUserId: for a bad id, before anything is sent
        :raises InvalidEventName: for a bad event name, before anything is sent
        """
        self._state.check_open()
        await self._writer.write(self._writer.validate_unique(event, user_id), 1)

    async def unmark_unique(self, event: str, user_id: int) -> None:
        """Clear ``user_id`` from ``UniqueEvents(event)``.

        :param event: the event name
        :param user_id: the id to clear
        :raises InvalidUserId: for a bad id, before anything is sent
        :raises InvalidEventName: for a bad event name, before anything is sent
        """
        self._state.check_open()
        await self._writer.write(self._writer.validate_unique(event, user_id), 0)

    def batch(self) -> Batch:
        """Return a batch: marks collected in memory, sent together in one round trip.

        Example::

            async with tracker.batch() as batch:
                batch.mark_event("active", 1)
                batch.mark_event("purchase", 1)

        :raises TrackerClosed: after ``aclose()``
        """
        self._state.check_open()
        return Batch(self._writer)

    async def mark_events(
        self,
        marks: Iterable[Mark],
        *,
        track_hourly: bool | None = None,
        track_unique: bool | None = None,
        progress: Callable[[int], object] | None = None,
    ) -> int:
        """Mark many ``(event, user_id)`` or ``(event, user_id, at)`` items.

        Items are streamed in chunks of ``limits.mark_chunk_size``, one round trip per chunk, each
        chunk one MULTI/EXEC with few commands per key (see the marking and ingestion guide).
        Each chunk is validated whole before it is sent; when an item is bad, the chunks
        before it have been written (marking is idempotent: fix and resend).

        :param marks: the items to mark; ``at`` defaults to now; any iterable, even endless
        :param track_hourly: also set hour bits (default: the tracker's setting)
        :param track_unique: also set UniqueEvents bits (default: the tracker's setting)
        :param progress: called with the number of items written so far after each chunk
        :returns: the number of items marked
        :raises InvalidUserId: for a bad id in the chunk, before that chunk is sent
        :raises InvalidEventName: for a bad name in the chunk, before that chunk is sent
        :raises InvalidMoment: for a bad ``at`` in the chunk, before that chunk is sent
        :raises InvalidPeriod: for an ``at`` whose periods or expiry deadline cannot exist
        """
        self._state.check_open()
        return await self._writer.mark_events(
            marks, track_hourly=track_hourly, track_unique=track_unique, progress=progress
        )

    async def mark_bulk(
        self,
        event: str,
        user_ids: Sized,
        times: Sized,
        *,
        hourly: bool | None = None,
        unique: bool | None = None,
        chunk_size: int | None = None,
        progress: Callable[[int, int], object] | None = None,
    ) -> int:
        """Mark ``event`` for columns of ids and times: a vectorized backfill (needs numpy).

        ``user_ids`` and ``times`` are columns of equal length: numpy arrays, pandas or
        polars Series, pyarrow arrays or plain sequences. Times are epoch seconds or
        timezone-aware timestamps (instants, converted to the tracker's zone), or naive
        ``datetime64`` / ``datetime`` values (wall-clock times in the tracker's zone, like
        a naive ``at``). Rows are grouped per key with numpy and written as byte images
        OR'ed into each key (bits already set stay set), with the universe and the shard
        registry like every mark, in chunks of ``chunk_size`` rows (default
        ``100_000``): one round trip per chunk (per node on a cluster). The same bits as
        :meth:`mark_events` of the same rows. Every row is checked before anything is
        sent.

        :param event: the event name
        :param user_ids: the ids, ints from 0 to the tracker's ``max_user_id``
        :param times: when each happened, one per id
        :param hourly: also set hour bits (default: the tracker's setting)
        :param unique: also set UniqueEvents bits (default: the tracker's setting)
        :param chunk_size: rows per chunk (default ``100_000``)
        :param progress: called with ``(rows written, rows in all)`` after each chunk
        :returns: the number of rows marked
        :raises InvalidUserId: for a bad id, before anything is sent
        :raises InvalidBulkInput: for columns of different lengths, a missing time (NaT,
            NaN, None) or one outside years 1..9999, before anything is sent
        :raises InvalidEventName: for a bad event name, before anything is sent
        :raises InvalidPeriod: for an expiry deadline that cannot exist
        :raises OptionalDependencyMissing: when numpy is not installed
            (``pip install 'bitlens[bulk]'``)
        :raises TrackerClosed: after ``aclose()``
        """
        self._state.check_open()
        return await self._writer.mark_bulk(
            event,
            user_ids,
            times,
            track_hourly=hourly,
            track_unique=unique,
            chunk_size=chunk_size,
            progress=progress,
        )

    def stats(self) -> IngestStats:
        """Return a snapshot of the write counters (marks written, queue, drops, retries)."""
        return self._writer.stats()

    # -- questions --------------------------------------------------------------------------

    async def count(self, expr: Expr) -> int:
        """Return how many ids are in ``expr``: one round trip however deep the tree.

        :param expr: any bitlens expression
        :raises InvalidExpression: if ``expr`` is not an expression
        :raises TrackerClosed: after ``aclose()``
        """
        self._state.check_open()
        return (await self._reader.count([self._reader.resolve(expr)]))[0]

    @overload
    async def count_many(self, exprs: Mapping[_K, Expr]) -> dict[_K, int]: ...  # type: ignore[overload-overlap]
    @overload
    async def count_many(self, exprs: Iterable[Expr]) -> list[int]: ...

    async def count_many(
        self, exprs: Mapping[_K, Expr] | Iterable[Expr]
    ) -> dict[_K, int] | list[int]:
        """Count many expressions in one round trip (e.g. a dashboard's 40 numbers).

        Equal subtrees across the batch are computed once per shard.

        Example::

            counts = await tracker.count_many({"dau": today, "wau": this_week, "mau": this_month})

        :param exprs: a mapping of names to expressions (answered as a dict with the same
            keys), or an iterable of expressions (answered as a list in the same order)
        :raises InvalidExpression: if an item is not an expression, before anything is sent
        :raises TrackerClosed: after ``aclose()``
        """
        self._state.check_open()
        resolve = self._reader.resolve
        if isinstance(exprs, Mapping):
            named = cast("Mapping[_K, Expr]", exprs)
            if not named:
                return {}
            totals = await self._reader.count([resolve(e) for e in named.values()])
            return dict(zip(named, totals, strict=True))
        nodes = [resolve(expr) for expr in exprs]
        return await self._reader.count(nodes) if nodes else []

    def _resolve_for_report(self, expr: Expr) -> Node:
        """Resolve ``expr`` for a report's planner (:mod:`bitlens.cohort`), no I/O."""
        return self._reader.resolve(expr)

    async def _count_nodes(self, nodes: Sequence[Node]) -> list[int]:
        """Count resolved trees built by a report's planner, in one batch.

        :raises TrackerClosed: after ``aclose()``
        """
        self._state.check_open()
        return await self._reader.count(list(nodes)) if nodes else []

    async def contains_many(self, expr: Expr, user_ids: Iterable[int]) -> list[bool]:
        """Return, for each id, whether it is in ``expr``, in bounded pipelines.

        One round trip per :data:`CONTAINS_CHUNK_COMMANDS` GETBITs (ids times bitmaps of the
        tree; 10,000 ids of a one-bitmap tree), sent one after another so client memory
        stays bounded however many ids are asked.

        :param expr: any bitlens expression
        :param user_ids: the ids to look up
        :raises InvalidUserId: for a bad id, before anything is sent
        :raises TrackerClosed: after ``aclose()``
        """
        return await self._reader.contains_many(expr, user_ids)

    async def retention(
        self,
        start: str | Expr,
        returning: str | Expr | None = None,
        *,
        period: PeriodName = "day",
        cohorts: int = 31,
        buckets: int | None = None,
        end: _dt.date | _dt.datetime | None = None,
        mode: Mode = "recurring",
        criterion: Criterion = "on",
        history_start: _dt.date | _dt.datetime | None = None,
        now: _dt.datetime | None = None,
        by: Segments | None = None,
    ) -> RetentionTable:
        r"""Build a retention table in one round trip (see :func:`bitlens.cohort.retention`).

        Example::

            table = await tracker.retention("signed_up", "active", period="week", cohorts=8)
            print(table.to_csv())

        :param start: the event (or period-free expression of ``EventTemplate``\ s) of the cohorts
        :param returning: what counts as returning (default: ``start`` again)
        :param period: ``"day"``, ``"week"`` (ISO) or ``"month"``
        :param cohorts: how many cohort rows, ending with the period of ``end``
        :param buckets: how many buckets per row (default 13: buckets 0 to 12)
        :param end: the last cohort's date (default: now)
        :param mode: ``"recurring"`` or ``"first_time"`` (needs ``history_start``)
        :param criterion: ``"on"``, ``"on_or_after"`` or brackets ``[(1, 3), (4, 7)]``
        :param history_start: how far back "never before" looks, for ``first_time``
        :param now: the clock deciding which buckets are complete (default: now)
        :param by: segments, each with its own table in ``table.segments`` (same round trip)
        :raises InvalidRetentionQuery: for inconsistent arguments, before anything is sent
        """
        from .cohort import retention as _retention

        return await _retention(
            self,
            start,
            returning,
            period=period,
            cohorts=cohorts,
            buckets=buckets,
            end=end,
            mode=mode,
            criterion=criterion,
            history_start=history_start,
            now=now,
            by=by,
        )

    async def engagement(
        self,
        event: str | Expr,
        start: _dt.date | _dt.datetime,
        end: _dt.date | _dt.datetime,
        *,
        every: Every = "day",
        windows: Sequence[str] = ("day", "week", "month"),
        by: Segments | None = None,
    ) -> EngagementReport:
        """DAU, WAU and MAU as rolling windows at every point, and their ratios, in one round
        trip (see :func:`bitlens.cohort.engagement`).

        Example::

            report = await tracker.engagement("active", dt.date(2026, 9, 1), dt.date(2026, 11, 30))
            report.points[-1].counts["week"], report.points[-1].ratio("day", "month")

        :raises InvalidRetentionQuery: for arguments that make no report, before any I/O
        """
        from .cohort import engagement as _engagement

        return await _engagement(self, event, start, end, every=every, windows=windows, by=by)

    async def lifecycle(
        self,
        event: str | Expr,
        start: _dt.date | _dt.datetime,
        end: _dt.date | _dt.datetime,
        *,
        every: Every = "week",
        first: str | Expr | _dt.date | _dt.datetime,
        by: Segments | None = None,
    ) -> LifecycleReport:
        """New, returning, resurrecting and dormant users per period, in one round trip
        (see :func:`bitlens.cohort.lifecycle`).

        Example::

            report = await tracker.lifecycle("active", start, end, first="signed_up")

        :raises InvalidRetentionQuery: for arguments that make no report, before any I/O
        """
        from .cohort import lifecycle as _lifecycle

        return await _lifecycle(self, event, start, end, every=every, first=first, by=by)

    async def stickiness(
        self,
        event: str | Expr,
        start: _dt.date | _dt.datetime,
        end: _dt.date | _dt.datetime,
        *,
        every: Every = "day",
        by: Segments | None = None,
    ) -> StickinessReport:
        """How many users were active in exactly k of the periods, in one round trip (see
        :func:`bitlens.cohort.stickiness`).

        Example::

            report = await tracker.stickiness("active", dt.date(2026, 11, 1), dt.date(2026, 11, 30))
            report.rows[0].exactly[29]  # active on all 30 days

        :raises InvalidRetentionQuery: for arguments that make no report, before any I/O
        """
        from .cohort import stickiness as _stickiness

        return await _stickiness(self, event, start, end, every=every, by=by)

    async def funnel(
        self,
        steps: Sequence[str | Expr],
        start: _dt.date | _dt.datetime,
        end: _dt.date | _dt.datetime,
        *,
        every: Every = "day",
        within: str | int | None = None,
        ordered: Literal["period"] | bool = "period",
        by: Segments | None = None,
    ) -> FunnelReport:
        """Users at each step of a funnel and the conversions, in one round trip (see
        :func:`bitlens.cohort.funnel`).

        Example::

            report = await tracker.funnel(["visit", "signup", "purchase"], start, end)
            report.rows[0].counts, report.rows[0].conversion()

        :raises InvalidRetentionQuery: for arguments that make no report, before any I/O
        """
        from .cohort import funnel as _funnel

        return await _funnel(
            self, steps, start, end, every=every, within=within, ordered=ordered, by=by
        )

    async def has_events(self, expr: Expr) -> bool:
        """Return whether ``expr`` holds at least one id.

        :param expr: any bitlens expression
        :raises TrackerClosed: after ``aclose()``
        """
        return await self.count(expr) > 0

    async def contains(self, expr: Expr, user_id: int) -> bool:
        """Return whether ``user_id`` is in ``expr``, in one round trip.

        Reads the id's bit in every bitmap of the tree (``GETBIT``) and evaluates the tree
        client-side: no temp keys, no writes.

        :param expr: any bitlens expression
        :param user_id: the id to look up
        :raises InvalidUserId: for a bad id, before anything is sent
        :raises TrackerClosed: after ``aclose()``
        """
        return await self._reader.contains(expr, user_id)

    def members(self, expr: Expr) -> AsyncIterator[int]:
        """Yield the ids in ``expr`` in ascending order, streamed shard by shard.

        Each round trip reads ``limits.members_chunk_bytes`` of every bitmap in the tree for one
        shard (``GETRANGE``) and evaluates the tree client-side, so memory stays bounded
        and no temp key is made.

        Example::

            async for user_id in tracker.members(MonthEvents("active", 2026, 11)):
                print(user_id)

        :param expr: any bitlens expression
        :raises TrackerClosed: after ``aclose()``
        """
        return self._reader.members(expr)

    # -- managing the data --------------------------------------------------------------------

    async def event_names(self, *, starting_with: str = "") -> list[str]:
        """Return the sorted names of the events stored under this tracker's prefix.

        Walks the keyspace with ``SCAN`` (never ``KEYS``; on a cluster, every master) and
        keeps only keys the schema parses, so other prefixes' keys never show.

        Example::

            await tracker.event_names(starting_with="checkout:")
            # ['checkout:paid', 'checkout:started']

        :param starting_with: only names starting with this text (``""``: every name)
        :raises InvalidOption: for a ``starting_with`` no event name can start with
        :raises TrackerClosed: after ``aclose()``
        """
        self._state.check_open()
        return await self._manager.event_names(check_name_prefix(starting_with))

    async def event_periods(self, event: str) -> list[Period | None]:
        """Return the periods ``event`` has bitmaps for (``None`` stands for UniqueEvents).

        Months first, then ISO weeks, days, hours and the Unique bitmap, each in time order.

        :param event: the event name
        :raises InvalidEventName: for a bad name, before anything is sent
        :raises TrackerClosed: after ``aclose()``
        """
        self._state.check_open()
        return await self._manager.event_periods(validate_event_name(event))

    async def delete_event(
        self, event: str, *, progress: Callable[[int], None] | None = None
    ) -> int:
        """Delete every bitmap of ``event`` (all periods, all shards); return the keys removed.

        ``SCAN`` finds the keys and ``UNLINK`` removes them in batches of 500 (on a cluster
        grouped by slot, one round trip per node per batch). Other events, the universe
        and other prefixes are not touched. Deleting an event that has no keys returns 0.

        :param event: the event name
        :param progress: called with the number of keys removed so far after each batch
        :raises InvalidEventName: for a bad name, before anything is sent
        :raises TrackerClosed: after ``aclose()``
        """
        self._state.check_open()
        return await self._manager.delete_event(validate_event_name(event), progress=progress)

    async def delete_all(self, *, progress: Callable[[int], None] | None = None) -> int:
        """Delete every key under this tracker's prefix; return how many were removed.

        Event bitmaps, universes, id maps and the shard registry: every key the schema
        parses, found with ``SCAN`` and removed with ``UNLINK`` in batches of 500. The
        match never reaches another prefix (deleting ``bl`` leaves ``bl:x`` alone) and
        keys under the prefix that the schema would never build are left as they are.

        :param progress: called with the number of keys removed so far after each batch
        :raises TrackerClosed: after ``aclose()``
        """
        self._state.check_open()
        return await self._manager.delete_all(progress=progress)

    async def erase_user(self, user_id: int) -> Erasure:
        """Clear ``user_id`` from every bitmap under this prefix (e.g. for a GDPR request).

        Only the keys of the id's own shard are read or written (on a cluster, only the
        node holding that shard is scanned); every other id's bits stay as they are, even
        while they are being marked. Idempotent: a second call clears nothing and returns
        an empty :class:`Erasure`. A mark of this same id sent while the erase runs may
        survive it; erase after the id's marks have stopped.

        Example::

            erased = await tracker.erase_user(123)
            print(len(erased), [(k.event, k.period) for k in erased.cleared])

        :param user_id: the id to erase
        :raises InvalidUserId: for a bad id, before anything is sent
        :raises TrackerClosed: after ``aclose()``
        """
        self._state.check_open()
        return await self._manager.erase_user(validate_user_id(user_id, self.limits.max_user_id))


class Parts(NamedTuple):
    """A tracker's inner parts, for the package's own modules (IdMap, telemetry)."""

    executor: Executor
    writer: Writer
    reader: Reader
    state: Lifecycle
    registry: ShardRegistry


def parts(tracker: Tracker) -> Parts:
    """The inner parts of ``tracker``: the package's one way in, instead of private names.

    :param tracker: a tracker
    """
    return Parts(
        tracker._executor, tracker._writer, tracker._reader, tracker._state, tracker._registry
    )


def _fit_limits(limits: Limits, schema: KeySchema) -> Limits:
    """``limits`` with ``max_user_id`` lowered to what ``schema`` holds, if left at default.

    :raises InvalidOption: for a ``max_user_id`` set above what the layout can hold
    """
    if limits.max_user_id <= schema.max_user_id:
        return limits
    if limits.max_user_id != MAX_USER_ID:
        raise InvalidOption(
            "limits",
            limits,
            f"max_user_id at most {schema.max_user_id} ({schema!r} holds no larger id)",
        )
    return dataclasses.replace(limits, max_user_id=schema.max_user_id)


def _client_of(
    url_or_client: str | Redis | RedisCluster, *, cluster: bool
) -> tuple[Redis | RedisCluster, bool]:
    """The client to send on, and whether the tracker made it (and so closes it).

    :raises TypeError: for something that is neither a URL nor a client
    :raises ValueError: for a client that decodes replies
    """
    if isinstance(url_or_client, str):
        # Marks are idempotent and queries leave nothing behind, so a retry after a
        # dropped connection is always safe; redis-py does not retry from_url clients.
        # Only connection errors are retried: a timeout may mean the server is still
        # running the request, and sending it again would multiply its work.
        if cluster:
            client: Redis | RedisCluster = RedisCluster.from_url(url_or_client)
        else:
            retry = Retry(
                ExponentialBackoff(cap=1.0, base=0.05),
                retries=5,
                supported_errors=(RedisConnectionError,),
            )
            client = Redis.from_url(
                url_or_client, retry=retry, retry_on_error=[RedisConnectionError]
            )
        owned = True
    elif isinstance(url_or_client, (Redis, RedisCluster)):
        client, owned = url_or_client, False
    else:
        raise TypeError(
            "Tracker needs a redis:// URL, a redis.asyncio.Redis or a "
            f"redis.asyncio.cluster.RedisCluster client, got {type(url_or_client).__name__}"
        )
    kwargs = connection_kwargs(client)
    if kwargs.get("decode_responses"):
        raise ValueError(
            "bitlens reads bitmaps as bytes: pass a client made with decode_responses=False"
        )
    return client, owned


def _telemetry_hook(telemetry: object) -> Callable[[Tracker, Parts], None] | None:
    """Check the ``telemetry`` option; return what instruments a new tracker (None: off).

    OpenTelemetry is imported only here, and only when telemetry is asked for.

    :raises InvalidOption: for a value that is not a bool or a ``bitlens.otel.Telemetry``,
        or for telemetry without OpenTelemetry installed
    """
    if telemetry is False:
        return None
    try:
        from .otel._telemetry import Telemetry, instrument
    except ImportError:
        expected = (
            "False, since OpenTelemetry is not installed (pip install 'bitlens[otel]')"
            if telemetry is True
            else "True or False"
        )
        raise InvalidOption("telemetry", telemetry, expected) from None
    if telemetry is True:
        telemetry = Telemetry()
    if not isinstance(telemetry, Telemetry):
        raise InvalidOption("telemetry", telemetry, "True, False or a bitlens.otel.Telemetry")
    options = telemetry

    def hook(tracker: Tracker, inner: Parts) -> None:
        instrument(
            tracker,
            options,
            executor=inner.executor,
            registry=inner.registry,
            writer=inner.writer,
        )

    return hook
