"""The tracker: configuration, lifecycle, marking and evaluation on one Redis deployment."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import logging
import math
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypedDict, TypeVar, cast, overload

import anyio
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from ._exceptions import (
    InvalidOption,
    InvalidPeriod,
    MarkRejected,
    PermissionDenied,
    TrackerClosed,
    UnsupportedOperation,
)
from ._execute import Executor, Group
from ._ingest import Background, Batch, Coalescer, Counters, IngestStats, is_permanent
from ._keys import MAX_USER_ID, KeySchema, ShardedSchema, validate_event_name, validate_user_id
from ._periods import Day, Hour, Month, Period, TzLike, Week, resolve_tz, to_local
from ._plan import (
    COUNT_SCRIPT,
    Capabilities,
    Command,
    CountPlan,
    KeyRef,
    Node,
    ResolveContext,
    ScriptCall,
    evaluate,
    iter_set_bits,
    leaves_of,
    plan_counts,
    resolve,
    script_error,
)
from ._writes import Granularity, WriteBatch

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

    from ._expr import Expr
    from .cohort import Criterion, Mode, PeriodName, RetentionTable
    from .otel import Telemetry

__all__ = ["CLIENT_READ_BYTES", "Mark", "Reads", "Tracker", "TrackerOptions"]

_K = TypeVar("_K")
_log = logging.getLogger("bitlens")

Mark: TypeAlias = tuple[str, int] | tuple[str, int, _dt.datetime | _dt.date | None]
"""One item of :meth:`Tracker.mark_events`: ``(event, user_id)`` or ``(event, user_id, at)``."""


_UNIQUE_ONLY: tuple[None] = (None,)

CONTAINS_CHUNK_COMMANDS = 10_000
"""The most GETBITs one ``contains_many`` pipeline carries (ids times bitmaps of the tree)."""

Reads: TypeAlias = Literal["server", "client"]
"""Where counts are computed: ``"server"`` (a script, temp keys) or ``"client"`` (reads only)."""

CLIENT_READ_BYTES = 32 * 1024 * 1024
"""The most bitmap bytes one round trip of ``reads="client"`` counting asks for.

Each shard is read in windows of ``min(shard size, max(4 KiB, CLIENT_READ_BYTES // L))``
bytes of each of its ``L`` distinct bitmaps, and one round trip carries
``max(1, CLIENT_READ_BYTES // (L * window))`` such windows, so the client holds at most
about this many bytes of replies at once.
"""

_MIN_WINDOW = 4096


class TrackerOptions(TypedDict, total=False):
    """The keyword options of :class:`Tracker`, for functions that pass them on."""

    prefix: str
    tz: TzLike
    track_hourly: bool
    track_unique: bool
    shard_bits: int
    max_user_id: int
    schema: KeySchema | None
    members_chunk_bytes: int
    mark_chunk_size: int
    expire_after: Mapping[Granularity, _dt.timedelta] | None
    coalesce: bool
    coalesce_max_marks: int
    coalesce_delay: float
    coalesce_max_in_flight: int
    nowait_max_queue: int
    cluster: bool
    replicas_ack: int
    capabilities: Capabilities | None
    telemetry: bool | Telemetry
    reads: Reads


class Tracker:
    """Marks events and answers questions about them, on one Redis server.

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
    :param max_user_id: the largest id accepted (default ``2**63 - 1``)
    :param schema: a custom key schema (overrides ``prefix`` and ``shard_bits``)
    :param members_chunk_bytes: bytes of bitmap read per round trip by ``members``
    :param mark_chunk_size: events sent per round trip by ``mark_events``
    :param expire_after: a time to live per granularity (``"hour"``, ``"day"``, ``"week"``,
        ``"month"``): a positive ``datetime.timedelta``, counted from the end of each
        period. A mark whose deadline would fall past year 9999 raises ``InvalidPeriod``
        at the call
    :param coalesce: merge concurrent ``mark_event`` calls into shared round trips
    :param coalesce_max_marks: a coalesced batch is sent once it holds this many marks
    :param coalesce_delay: the longest a coalesced batch waits for company, in seconds
    :param coalesce_max_in_flight: coalesced batches on the wire at once (back-pressure)
    :param nowait_max_queue: marks ``mark_event_nowait`` may hold; new ones beyond are dropped
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
    :raises InvalidOption: for an option of the wrong type or out of its range (e.g.
        ``max_user_id=True``, ``expire_after={"day": 5}``, a zero or negative TTL), before
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
        max_user_id: int = MAX_USER_ID,
        schema: KeySchema | None = None,
        members_chunk_bytes: int = 64 * 1024,
        mark_chunk_size: int = 10_000,
        expire_after: Mapping[Granularity, _dt.timedelta] | None = None,
        coalesce: bool = False,
        coalesce_max_marks: int = 1_000,
        coalesce_delay: float = 0.002,
        coalesce_max_in_flight: int = 4,
        nowait_max_queue: int = 100_000,
        cluster: bool = False,
        replicas_ack: int = 0,
        capabilities: Capabilities | None = None,
        telemetry: bool | Telemetry = False,
        reads: Reads = "server",
    ) -> None:
        # Every option is checked before a client is made: a bad one raises InvalidOption
        # (or InvalidPrefix, InvalidTimeZone) and leaves nothing behind.
        zone = _check_options(
            tz=tz,
            flags={
                "track_hourly": track_hourly,
                "track_unique": track_unique,
                "coalesce": coalesce,
                "cluster": cluster,
            },
            counts={
                "members_chunk_bytes": members_chunk_bytes,
                "mark_chunk_size": mark_chunk_size,
                "coalesce_max_marks": coalesce_max_marks,
                "coalesce_max_in_flight": coalesce_max_in_flight,
                "nowait_max_queue": nowait_max_queue,
            },
            max_user_id=max_user_id,
            schema=schema,
            expire_after=expire_after,
            coalesce_delay=coalesce_delay,
            replicas_ack=replicas_ack,
            capabilities=capabilities,
            reads=reads,
        )
        instrument = _telemetry_hook(telemetry)
        key_schema = schema or ShardedSchema(prefix=prefix, shard_bits=shard_bits)
        # Only connection errors are retried: a timeout may mean the server is still
        # running the request, and sending it again would multiply its work.
        retry = Retry(
            ExponentialBackoff(cap=1.0, base=0.05),
            retries=5,
            supported_errors=(RedisConnectionError,),
        )
        if isinstance(url_or_client, str):
            # Marks are idempotent and queries leave nothing behind, so a retry after a
            # dropped connection is always safe; redis-py does not retry from_url clients.
            if cluster:
                self._client: Redis | RedisCluster = RedisCluster.from_url(url_or_client)
            else:
                self._client = Redis.from_url(
                    url_or_client,
                    retry=retry,
                    retry_on_error=[RedisConnectionError],
                )
            self._owns_client = True
        elif isinstance(url_or_client, (Redis, RedisCluster)):
            self._client = url_or_client
            self._owns_client = False
        else:
            raise TypeError(
                "Tracker needs a redis:// URL, a redis.asyncio.Redis or a "
                f"redis.asyncio.cluster.RedisCluster client, got {type(url_or_client).__name__}"
            )
        client: Any = self._client
        kwargs = (
            client.get_connection_kwargs()
            if isinstance(client, RedisCluster)
            else client.connection_pool.connection_kwargs
        )
        if kwargs.get("decode_responses"):
            raise ValueError(
                "bitlens reads bitmaps as bytes: pass a client made with decode_responses=False"
            )
        self.schema: KeySchema = key_schema
        self.tz: _dt.tzinfo = zone
        self.track_hourly = track_hourly
        self.track_unique = track_unique
        self.max_user_id = max_user_id
        self.members_chunk_bytes = members_chunk_bytes
        self.mark_chunk_size = mark_chunk_size
        self.expire_after: dict[Granularity, _dt.timedelta] = dict(expire_after or {})
        self.coalesce = coalesce
        self.coalesce_max_marks = coalesce_max_marks
        self.coalesce_delay = coalesce_delay
        self.coalesce_max_in_flight = coalesce_max_in_flight
        self.nowait_max_queue = nowait_max_queue
        self.reads: Reads = reads
        self._context = ResolveContext(tz=self.tz, hourly=track_hourly)
        self._executor = Executor(
            self._client, replicas_ack=replicas_ack, capabilities=capabilities
        )
        self._known_shards: set[int] = set()
        self._registry_loaded = False
        self._closed = False
        self._draining = False
        self._counters = Counters()
        self._period_cache: dict[tuple[int, int, int, int, bool], tuple[Period | None, ...]] = {}
        self._valid_events: set[str] = set()
        self._lone_keys: dict[
            tuple[str, int, int], tuple[tuple[Period | None, ...], list[str], str]
        ] = {}
        # Temps of cut-off counts still to delete, and the one task deleting them.
        self._unkept: list[str] = []
        self._cleanup: asyncio.Task[None] | None = None
        self._coalescer: Coalescer | None = None  # made on first use, inside the event loop
        self._background: Background | None = None
        self._shard_nodes: dict[int, str] = {}  # cluster: shard → node name, for coalescing
        if instrument is not None:
            instrument(self)

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def client(self) -> Redis | RedisCluster:
        """The ``redis.asyncio`` client this tracker sends on."""
        return self._client

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
        return self._closed

    async def __aenter__(self) -> Self:
        self._check_open()
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
        if self._closed:
            return
        self._closed = True
        self._draining = True
        try:
            if self._coalescer is not None:
                await self._coalescer.wait_idle()
            if self._background is not None:
                await self._background.drain(drain_timeout)
            if self._cleanup is not None:
                await asyncio.gather(self._cleanup, return_exceptions=True)
        finally:
            self._draining = False
            if self._owns_client:
                await self._client.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise TrackerClosed

    def __del__(self) -> None:
        # Like aiohttp's unclosed session: marks queued with mark_event_nowait() and never
        # sent must not vanish without a word.
        background = getattr(self, "_background", None)
        if background is not None and not getattr(self, "_closed", True):
            background.warn_unsent()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Tracker prefix={self.schema.prefix!r} tz={self.tz!s} {state}>"

    # -- marking ----------------------------------------------------------------------------

    def _periods(
        self, at: _dt.datetime | _dt.date | None, hourly: bool, unique: bool = False
    ) -> tuple[Period | None, ...]:
        """The periods a mark at ``at`` sets (``None``: UniqueEvents), cached per hour.

        The same tuple object comes back for every mark of the same local hour, which lets
        a WriteBatch find its keys once per batch.
        """
        tz = self.tz
        if at is None:
            moment = _dt.datetime.now(tz)
        elif type(at) is _dt.datetime and at.tzinfo is tz:  # the hot path: no conversion
            moment = at
        else:
            moment = to_local(at, tz)
        key = (moment.year, moment.month, moment.day, moment.hour if hourly else -1, unique)
        periods = self._period_cache.get(key)
        if periods is None:
            day = Day(moment.year, moment.month, moment.day, self.tz)
            found: tuple[Period | None, ...] = (day.as_month(), day.as_week(), day)
            if hourly:
                found += (Hour(moment.year, moment.month, moment.day, moment.hour, self.tz),)
            if unique:
                found += (None,)
            if self.expire_after:  # once per local hour: cached with the periods
                _check_deadlines(found, self.expire_after)
            if len(self._period_cache) > 4096:
                self._period_cache.clear()
            periods = self._period_cache[key] = found
        return periods

    def _validate_mark(
        self,
        event: str,
        user_id: int,
        at: _dt.datetime | _dt.date | None,
        track_hourly: bool | None,
        track_unique: bool | None,
    ) -> tuple[str, int, tuple[Period | None, ...]]:
        if type(event) is not str or event not in self._valid_events:  # unhashable too
            validate_event_name(event)
            if len(self._valid_events) < 10_000:
                self._valid_events.add(event)
        if type(user_id) is not int or not 0 <= user_id <= self.max_user_id:
            user_id = validate_user_id(user_id, self.max_user_id)
        if track_hourly is None:
            hourly = self.track_hourly
        elif isinstance(track_hourly, bool):
            hourly = track_hourly
        else:
            raise InvalidOption("track_hourly", track_hourly, "True, False or None")
        if track_unique is None:
            unique = self.track_unique
        elif isinstance(track_unique, bool):
            unique = track_unique
        else:
            raise InvalidOption("track_unique", track_unique, "True, False or None")
        return event, user_id, self._periods(at, hourly, unique)

    def _validate_unique(self, event: str, user_id: int) -> tuple[str, int, tuple[None]]:
        return validate_event_name(event), self._uid(user_id), _UNIQUE_ONLY

    def _new_writes(self) -> WriteBatch:
        return WriteBatch(self.schema, self.expire_after)

    async def _flush(self, writes: WriteBatch) -> None:
        """Send a batch of marks in one round trip; re-assert every shard it writes.

        Every write re-asserts its shards in the registry, so a reader can never miss a
        shard that holds data — whatever the server lost (a restart without persistence, a
        ``FLUSHDB``, a restore from an older snapshot, a failover to a lagging replica):
        the next write into a shard lists it again. On one server the ``SADD`` rides in the
        same MULTI/EXEC as the bits; on a cluster it goes to the registry's master in the
        same concurrent fan-out as the shards' transactions, never as a second round trip.
        """
        self._check_open_or_draining()
        if not writes.marks:
            return
        shards = writes.shards
        token = secrets.token_hex(8)
        registry = self.schema.registry_key
        if self._executor.is_cluster:
            # One MULTI/EXEC per shard (its keys share one slot) on the shard's node; the
            # registry lives in a slot of its own. One pipeline per node, concurrently.
            groups = [
                Group(self.schema.universe_key(shard), commands, transaction=True)
                for shard, commands in writes.by_shard(token).items()
            ]
            # The registry's SADD is a transaction too, only so that with replicas_ack the
            # executor sends WAIT after it (it does so after transactions): a registry entry
            # lost in a failover would hide an acknowledged mark from every new reader.
            sadd: Command = ("SADD", registry, *sorted(shards))
            groups.append(Group(registry, [sadd], transaction=True))
            await self._executor.run(groups)
        else:
            await self._executor.send(writes.commands(token, shards), transaction=True)
        self._known_shards |= shards
        self._counters.marks_written += writes.marks
        self._counters.batches_sent += 1

    def _check_open_or_draining(self) -> None:
        # Marks accepted before aclose() are still sent while it drains them.
        if self._closed and not self._draining:
            raise TrackerClosed

    async def _write_one(
        self, item: tuple[str, int, tuple[Period | None, ...]], value: int
    ) -> None:
        if self.coalesce:
            if self._coalescer is None:
                self._coalescer = Coalescer(
                    self._flush,
                    self._new_writes,
                    self._counters,
                    max_marks=self.coalesce_max_marks,
                    delay=self.coalesce_delay,
                    max_in_flight=self.coalesce_max_in_flight,
                    route=self._node_of if self._executor.is_cluster else None,
                )
            await self._coalescer.add(*item, value)
            return
        try:
            await self._write_lone(item, value)
        except Exception as error:
            if not is_permanent(error):
                raise
            self._counters.reject((*item, value), error)
            raise MarkRejected(item[0], item[1], str(error)) from error

    def _node_of(self, user_id: int) -> str | None:
        """The cluster node holding ``user_id``'s shard (coalesced batches go per node)."""
        shard = self.schema.shard_of(user_id)
        node = self._shard_nodes.get(shard)
        if node is None:
            node = self._executor.node_of(self.schema.universe_key(shard))
            if node is not None:  # unknown before the first call reads the cluster's slots
                if len(self._shard_nodes) > 65_536:
                    self._shard_nodes.clear()
                self._shard_nodes[shard] = node
        return node

    async def _write_lone(
        self, item: tuple[str, int, tuple[Period | None, ...]], value: int
    ) -> None:
        if self.expire_after or self._executor.is_cluster:
            writes = self._new_writes()
            writes.add(*item, value)
            await self._flush(writes)
            return
        # The hottest path: one mark on one server. Its keys are cached per (event, hour,
        # shard) and its commands written directly: the same MULTI/EXEC a WriteBatch of
        # one mark would send, without the batch machinery.
        self._check_open_or_draining()
        event, user_id, periods = item
        schema = self.schema
        shard, bit = schema.shard_of(user_id), schema.bit_of(user_id)
        found = self._lone_keys.get((event, shard, id(periods)))
        if found is None or found[0] is not periods:
            if len(self._lone_keys) > 4096:
                self._lone_keys.clear()
            keys = [schema.event_key(event, period, shard) for period in periods]
            found = (periods, keys, schema.universe_key(shard))
            self._lone_keys[event, shard, id(periods)] = found
        commands: list[Command] = [("SETBIT", key, bit, value) for key in found[1]]
        if value:
            commands.append(("SETBIT", found[2], bit, 1))
        commands.append(("SADD", schema.registry_key, shard))  # re-asserted on every write
        await self._executor.send(commands, transaction=True)
        self._known_shards.add(shard)
        self._counters.marks_written += 1
        self._counters.batches_sent += 1

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
        self._check_open()
        item = self._validate_mark(event, user_id, at, track_hourly, track_unique)
        coalescer = self._coalescer
        if coalescer is not None:  # one coroutine frame fewer per coalesced mark
            await coalescer.add(*item, 1)
        else:
            await self._write_one(item, 1)

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
        The queue holds at most ``nowait_max_queue`` marks: past that the new mark is
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
        self._check_open()
        item = self._validate_mark(event, user_id, at, track_hourly, track_unique)
        if self._background is None:
            self._background = Background(
                self._flush,
                self._new_writes,
                self._counters,
                max_queue=self.nowait_max_queue,
                chunk=self.mark_chunk_size,
            )
        return self._background.put((*item, 1))

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
        self._check_open()
        await self._write_one(
            self._validate_mark(event, user_id, at, track_hourly, track_unique), 0
        )

    async def mark_unique(self, event: str, user_id: int) -> None:
        """Mark ``user_id`` in ``UniqueEvents(event)`` (no time dimension), in one round trip.

        :param event: the event name
        :param user_id: the id to mark
        :raises InvalidUserId: for a bad id, before anything is sent
        :raises InvalidEventName: for a bad event name, before anything is sent
        """
        self._check_open()
        await self._write_one(self._validate_unique(event, user_id), 1)

    async def unmark_unique(self, event: str, user_id: int) -> None:
        """Clear ``user_id`` from ``UniqueEvents(event)``.

        :param event: the event name
        :param user_id: the id to clear
        :raises InvalidUserId: for a bad id, before anything is sent
        :raises InvalidEventName: for a bad event name, before anything is sent
        """
        self._check_open()
        await self._write_one(self._validate_unique(event, user_id), 0)

    def batch(self) -> Batch:
        """Return a batch: marks collected in memory, sent together in one round trip.

        Example::

            async with tracker.batch() as batch:
                batch.mark_event("active", 1)
                batch.mark_event("purchase", 1)

        :raises TrackerClosed: after ``aclose()``
        """
        self._check_open()
        return Batch(self)

    async def mark_events(
        self,
        marks: Iterable[Mark],
        *,
        track_hourly: bool | None = None,
        track_unique: bool | None = None,
        progress: Callable[[int], object] | None = None,
    ) -> int:
        """Mark many ``(event, user_id)`` or ``(event, user_id, at)`` items.

        Items are streamed in chunks of ``mark_chunk_size``, one round trip per chunk, each
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
        self._check_open()
        writes = self._new_writes()
        validate = self._validate_mark
        chunk_size = self.mark_chunk_size
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
                    in_flight = asyncio.get_running_loop().create_task(self._flush(writes))
                    writes = self._new_writes()
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
            await self._flush(writes)
            sent += writes.marks
            if progress is not None:
                progress(sent)
        return sent

    def stats(self) -> IngestStats:
        """Return a snapshot of the write counters (marks written, queue, drops, retries)."""
        c = self._counters
        return IngestStats(
            marks_written=c.marks_written,
            batches_sent=c.batches_sent,
            coalesced_batches=c.coalesced_batches,
            nowait_enqueued=c.nowait_enqueued,
            nowait_written=c.nowait_written,
            nowait_dropped=c.nowait_dropped,
            nowait_pending=len(self._background) if self._background is not None else 0,
            nowait_failures=c.nowait_failures,
            rejected=c.rejected,
        )

    # -- evaluation -------------------------------------------------------------------------

    def _resolve(self, expr: Expr) -> Node:
        return resolve(expr, self._context)

    def _uid(self, user_id: int) -> int:
        return validate_user_id(user_id, self.max_user_id)

    # -- evaluation -------------------------------------------------------------------------

    def _learn_shards(self, reply: object) -> list[int]:
        """Merge an SMEMBERS reply of the registry; return the known shards it lacks."""
        stored = {int(s) for s in _as_iterable(reply)}
        self._known_shards |= stored
        self._registry_loaded = True
        return sorted(self._known_shards - stored)

    async def _refresh_shards(self) -> None:
        """Read the shard registry; re-register known shards it lost (e.g. after a flush).

        With ``reads="client"`` (a user that may only read) nothing is re-registered: the
        shards this tracker knows are still read, and its own next write re-asserts them.
        """
        registry = self.schema.registry_key
        reply = await self._executor.send([("SMEMBERS", registry)])
        lost = self._learn_shards(reply[0])
        if lost and self.reads == "server":
            await self._executor.send([("SADD", registry, *lost)])

    async def _count_nodes(self, nodes: Sequence[Node]) -> list[int]:
        """Count several resolved trees over every shard: normally one round trip.

        The round trip carries the ``EVAL`` calls of the count script over every known shard's
        keys and a check of the shard registry. Their number is a function of the width:
        for each plan of :func:`~bitlens._plan.plan_counts` and each of its
        :meth:`~bitlens._plan.CountPlan.calls`, ``ceil(shards / call.shards_per_call())``
        on one server (every shard on a cluster); all of them still ride in one round trip
        per node. The registry check is a ``SCARD`` once the tracker has read the
        registry (shards are only ever added and every shard this tracker knows is
        registered, so an equal cardinality proves every shard was covered), else the
        registry itself (``SMEMBERS``). Shards found that way are counted in one more round
        trip: a tracker's first count on data written elsewhere takes two.
        """
        if not nodes:
            return []
        if self.reads == "client":
            return await self._count_nodes_here(nodes)
        totals = [0] * len(nodes)
        plans = plan_counts(nodes, self._executor.capabilities)  # before any I/O
        shard_bytes = max(1, (1 << self.schema.shard_bits) // 8)
        programs = [(plan, plan.calls(shard_bytes)) for plan in plans]
        registry = self.schema.registry_key
        schema = self.schema
        queried: set[int] = set()
        pending = sorted(self._known_shards)
        while True:
            loaded = self._registry_loaded
            check: Command = ("SCARD" if loaded else "SMEMBERS", registry)
            token = secrets.token_hex(8)
            # (plan, call) of each script call, in send order
            calls: list[tuple[CountPlan, ScriptCall]] = []
            if self._executor.is_cluster:  # scripts need one slot: calls per shard
                groups = [Group(registry, [check])]
                for shard in pending:
                    commands: list[Command] = []
                    for plan, program in programs:
                        for call in program:
                            keys = call.keys(plan, schema, shard, token)
                            commands.append(_eval(keys, call.argv))
                            calls.append((plan, call))
                    groups.append(Group(schema.universe_key(shard), commands))
            else:  # every shard of the server, in bounded calls, in one pipeline
                commands = [check]
                for plan, program in programs:
                    for call in program:
                        step = call.shards_per_call()
                        for lo in range(0, len(pending), step):
                            keys = [
                                key
                                for shard in pending[lo : lo + step]
                                for key in call.keys(plan, schema, shard, token)
                            ]
                            commands.append(_eval(keys, call.argv))
                            calls.append((plan, call))
                groups = [Group(registry, commands)]
            # While the server's BITOP extensions are unknown, probe them on a fresh key of
            # a shard of this call (no extra round trip; on a cluster, no extra node: with
            # no shard to count yet, the probe waits for the next round trip).
            probe = None
            if self._executor.capabilities is None and (pending or not self._executor.is_cluster):
                probe = schema.temp_key(pending[0] if pending else 0, token + "p", 0)
            kept = [
                schema.temp_key(shard, token, n)
                for _, program in programs
                for call in program
                for n in call.kept
                for shard in pending
            ]
            try:
                results = await self._run_with_kept(groups, kept, probe)
            except ResponseError as exc:
                typed = script_error(str(exc))
                if typed is not None:
                    raise typed from exc
                refused = _count_refused(
                    exc, plans[0].caps if plans else None, stated=self._executor.stated
                )
                if refused is None:
                    raise
                if refused[1]:  # the probe's answer was wrong for some node: probe again
                    self._executor.forget_capabilities()
                raise refused[0] from exc
            except PermissionDenied as exc:
                if exc.command in ("SCARD", "SMEMBERS", "SADD"):
                    raise
                raise self._count_denied(exc) from exc
            replies = [reply for result in results for reply in result]
            for (plan, call), reply in zip(calls, replies[1:], strict=True):
                for q, value in zip(call.questions, _as_list(reply), strict=True):
                    totals[plan.indexes[q]] += _as_int(value)
            queried.update(pending)
            if loaded and _as_int(replies[0]) == len(queried):
                return totals
            if loaded:
                await self._refresh_shards()
            else:
                lost = self._learn_shards(replies[0])
                if lost:
                    await self._executor.send([("SADD", registry, *lost)])
            pending = sorted(self._known_shards - queried)
            if not pending:
                return totals

    async def _run_with_kept(
        self, groups: list[Group], kept: list[str], probe: str | None = None
    ) -> list[list[object]]:
        """Run a count's groups; if they fail midway, delete the temps kept between calls.

        A temp key that one script call keeps for a later one exists between the two calls
        only (with a 60 s ``PEXPIRE``). When the pipeline is cut between them (a dropped
        connection, a cancelled caller), one task the tracker owns deletes every such key
        at once (one task for all cut-off counts, so cleanups never pile up connections),
        and the caller's cancellation cannot stop it; ``aclose()`` waits for it.
        """
        if not kept:
            return await self._executor.run(groups, probe=probe)
        try:
            return await self._executor.run(groups, probe=probe)
        except BaseException:
            self._unkept += kept
            if self._cleanup is None or self._cleanup.done():
                self._cleanup = asyncio.get_running_loop().create_task(self._delete_unkept())
            raise

    async def _delete_unkept(self) -> None:
        """Delete the temps cut-off counts kept, until none is left to delete."""
        while self._unkept:
            keys, self._unkept = self._unkept, []
            await self._delete_kept(keys)

    async def _delete_kept(self, keys: list[str]) -> None:
        """Delete temp keys a cut-off count kept between its calls (best effort, logged)."""
        by_slot: dict[str, list[str]] = {}
        for key in keys:
            by_slot.setdefault(key[: key.index("}") + 1], []).append(key)
        groups = [
            Group(names[0], [("DEL", *names[lo : lo + 1000])])
            for names in by_slot.values()
            for lo in range(0, len(names), 1000)
        ]
        try:
            await self._executor.run(groups if self._executor.is_cluster else _merge(groups))
        except Exception as exc:  # their PEXPIRE still removes them within 60 s
            _log.warning("could not delete %d kept temp keys: %r", len(keys), exc)

    def _count_denied(self, error: PermissionDenied) -> PermissionDenied:
        """The error for a user that may not write the count script's temp keys."""
        pattern = f"{self.schema.prefix}:*"
        return PermissionDenied(
            "BITOP, PEXPIRE and DEL on the count script's temp keys",
            f"{error.command}: {error.detail}",
            f"counting on the server needs +eval +bitop +bitcount +pexpire +del and write "
            f"access to the prefix (~{pattern}, not the read-only %R~{pattern}); a user "
            f"that may only read can count with Tracker(..., reads='client'), which only "
            "reads (GETRANGE); see https://bitlens.readthedocs.io/en/latest/access-control.html",
        )

    async def _count_nodes_here(self, nodes: Sequence[Node]) -> list[int]:
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
        registry = self.schema.registry_key
        queried: set[int] = set()
        pending = sorted(self._known_shards)
        while True:
            loaded = self._registry_loaded
            check: Command = ("SCARD" if loaded else "SMEMBERS", registry)
            reply = await self._read_counts(nodes, leaves, pending, check, totals)
            queried.update(pending)
            if loaded and _as_int(reply) == len(queried):
                return totals
            if loaded:
                await self._refresh_shards()
            else:
                self._learn_shards(reply)
            pending = sorted(self._known_shards - queried)
            if not pending:
                return totals

    async def _read_counts(
        self,
        nodes: Sequence[Node],
        leaves: Sequence[KeyRef],
        shards: Sequence[int],
        check: Command,
        totals: list[int],
    ) -> object:
        """Read ``shards`` window by window, adding each tree's count to ``totals``.

        :returns: the reply to ``check``, which rides along with the first round trip
        """
        schema = self.schema
        shard_bytes = max(1, (1 << schema.shard_bits) // 8)
        width = max(1, len(leaves))
        window = min(shard_bytes, max(_MIN_WINDOW, CLIENT_READ_BYTES // width))
        per_trip = max(1, CLIENT_READ_BYTES // (width * window))
        work: list[tuple[int, int]] = [(shard, 0) for shard in shards]
        checked: object = None
        first = True
        while first or work:
            batch, work = work[:per_trip], work[per_trip:]
            groups: list[Group] = [Group(schema.registry_key, [check])] if first else []
            for shard, start in batch:
                keys = [leaf.key(schema, shard) for leaf in leaves]
                end = start + window - 1
                groups.append(Group(keys[0], [("GETRANGE", key, start, end) for key in keys]))
            if self._executor.is_cluster:
                results = await self._executor.run(groups)
            else:
                merged = await self._executor.run(_merge(groups))
                flat = iter(merged[0])
                results = [[next(flat) for _ in group.commands] for group in groups]
            if first:
                checked = results.pop(0)[0]
                first = False
            for (shard, start), result in zip(batch, results, strict=True):
                replies = [_as_bytes(r) for r in result]
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

    async def count(self, expr: Expr) -> int:
        """Return how many ids are in ``expr``: one round trip however deep the tree.

        :param expr: any bitlens expression
        :raises InvalidExpression: if ``expr`` is not an expression
        :raises TrackerClosed: after ``aclose()``
        """
        self._check_open()
        node = self._resolve(expr)
        return (await self._count_nodes([node]))[0]

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
        self._check_open()
        if isinstance(exprs, Mapping):
            named = cast("Mapping[_K, Expr]", exprs)
            if not named:
                return {}
            totals = await self._count_nodes([self._resolve(e) for e in named.values()])
            return dict(zip(named, totals, strict=True))
        nodes = [self._resolve(expr) for expr in exprs]
        return await self._count_nodes(nodes) if nodes else []

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
        self._check_open()
        node = self._resolve(expr)
        uids = [self._uid(uid) for uid in user_ids]
        leaves = leaves_of(node)
        width = len(leaves)
        per_chunk = max(1, CONTAINS_CHUNK_COMMANDS // width)
        answers: list[bool] = []
        for lo in range(0, len(uids), per_chunk):  # one bounded pipeline at a time
            groups: list[Group] = []
            for uid in uids[lo : lo + per_chunk]:
                shard, bit = self.schema.shard_of(uid), self.schema.bit_of(uid)
                keys = [leaf.key(self.schema, shard) for leaf in leaves]
                groups.append(Group(keys[0], [("GETBIT", key, bit) for key in keys]))
            results = await self._executor.run(
                _merge(groups) if not self._executor.is_cluster else groups
            )
            replies = [reply for result in results for reply in result]
            answers += [
                bool(
                    evaluate(
                        node,
                        {
                            leaf: _as_int(r)
                            for leaf, r in zip(leaves, replies[i : i + width], strict=True)
                        },
                    )
                )
                for i in range(0, len(replies), width)
            ]
        return answers

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
        return (await self.contains_many(expr, [user_id]))[0]

    async def members(self, expr: Expr) -> AsyncIterator[int]:
        """Yield the ids in ``expr`` in ascending order, streamed shard by shard.

        Each round trip reads ``members_chunk_bytes`` of every bitmap in the tree for one
        shard (``GETRANGE``) and evaluates the tree client-side, so memory stays bounded
        and no temp key is made.

        Example::

            async for user_id in tracker.members(MonthEvents("active", 2026, 11)):
                print(user_id)

        :param expr: any bitlens expression
        :raises TrackerClosed: after ``aclose()``
        """
        self._check_open()
        node = self._resolve(expr)
        leaves = leaves_of(node)
        await self._refresh_shards()
        chunk = self.members_chunk_bytes
        for shard in sorted(self._known_shards):
            start = 0
            while True:
                self._check_open()
                keys = [leaf.key(self.schema, shard) for leaf in leaves]
                end = start + chunk - 1
                commands: list[Command] = [("GETRANGE", key, start, end) for key in keys]
                replies = [
                    _as_bytes(r) for r in await self._executor.send(commands, transaction=False)
                ]
                width = max(map(len, replies), default=0)
                if width:
                    values: dict[KeyRef, int] = {
                        leaf: int.from_bytes(reply.ljust(width, b"\0"), "big")
                        for leaf, reply in zip(leaves, replies, strict=False)
                    }
                    result = evaluate(node, values)
                    if result:
                        base = self.schema.user_id(shard, start * 8)
                        for bit in iter_set_bits(result.to_bytes(width, "big")):
                            yield base + bit
                if width < chunk:
                    break
                start += chunk


_GRANULARITIES: frozenset[str] = frozenset(("hour", "day", "week", "month"))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _count_refused(
    error: ResponseError, caps: Capabilities | None, *, stated: bool
) -> tuple[UnsupportedOperation, bool] | None:
    """Return the typed error for a count the server cannot run, else ``None``.

    The flag says whether the probed capabilities must be forgotten.

    :param error: the count's error reply
    :param caps: the capabilities its plans were compiled with
    :param stated: whether the caller stated them (else they were probed)
    """
    text = str(error)
    if "scripting engine" in text or "unknown command 'eval'" in text.lower():
        return UnsupportedOperation(
            f"the server runs no Lua scripts ({text}), which count() needs: load Valkey's "
            "lua module or use a server or service that allows EVAL"
        ), False
    if caps is None or not (caps.diff or caps.andor) or "syntax error" not in text:
        return None
    if stated:
        return UnsupportedOperation(
            f"the server refused a BITOP extension of {caps!r} ({text}): it lacks them "
            "(Redis < 8.2, Valkey); pass capabilities=Capabilities() or leave capabilities "
            "unset so the tracker probes the server"
        ), False
    # Probed on one node, refused by another (a cluster mid-upgrade): the caller forgets
    # the probe's answer, so the next count probes again rather than every count failing.
    return UnsupportedOperation(
        f"a node refused a BITOP extension of {caps!r} that another one has ({text}); the "
        "next count probes again. Pass capabilities=Capabilities() while the servers differ"
    ), True


def _check_options(
    *,
    tz: object,
    flags: Mapping[str, object],
    counts: Mapping[str, object],
    max_user_id: object,
    schema: object,
    expire_after: object,
    coalesce_delay: object,
    replicas_ack: object,
    capabilities: object = None,
    reads: object = "server",
) -> _dt.tzinfo:
    """Check the Tracker's options; return its zone.

    :raises InvalidOption: for an option of the wrong type or out of its range
    :raises InvalidTimeZone: for an unknown zone
    """
    for name, flag in flags.items():
        if not isinstance(flag, bool):
            raise InvalidOption(name, flag, "True or False")
    for name, count in counts.items():
        if not _is_int(count) or cast("int", count) < 1:
            raise InvalidOption(name, count, "an int >= 1")
    if not _is_int(max_user_id) or not 1 <= cast("int", max_user_id) <= MAX_USER_ID:
        raise InvalidOption("max_user_id", max_user_id, "an int from 1 to 2**63-1")
    if schema is not None and not isinstance(schema, KeySchema):
        raise InvalidOption("schema", schema, "a bitlens KeySchema or None")
    if (
        not isinstance(coalesce_delay, (int, float))
        or isinstance(coalesce_delay, bool)
        or not math.isfinite(coalesce_delay)
        or coalesce_delay < 0
    ):
        raise InvalidOption("coalesce_delay", coalesce_delay, "a finite number of seconds >= 0")
    if not _is_int(replicas_ack) or cast("int", replicas_ack) < 0:
        raise InvalidOption("replicas_ack", replicas_ack, "an int >= 0")
    if capabilities is not None and not (
        isinstance(capabilities, Capabilities)
        and isinstance(capabilities.diff, bool)
        and isinstance(capabilities.andor, bool)
    ):
        raise InvalidOption("capabilities", capabilities, "a bitlens Capabilities or None")
    if not isinstance(reads, str) or reads not in ("server", "client"):
        raise InvalidOption("reads", reads, "'server' or 'client'")
    if expire_after is not None:
        if not isinstance(expire_after, Mapping):
            raise InvalidOption(
                "expire_after", expire_after, "a mapping of granularities to timedeltas, or None"
            )
        for granularity, ttl in cast("Mapping[object, object]", expire_after).items():
            if granularity not in _GRANULARITIES:
                raise InvalidOption(
                    "expire_after",
                    expire_after,
                    f"keys among 'hour', 'day', 'week' and 'month', not {granularity!r}",
                )
            if not isinstance(ttl, _dt.timedelta) or ttl <= _dt.timedelta(0):
                raise InvalidOption(
                    f"expire_after[{granularity!r}]", ttl, "a positive datetime.timedelta"
                )
    zone = resolve_tz(cast("TzLike", tz))
    try:
        zone.utcoffset(_dt.datetime(2000, 1, 1))
    except Exception as exc:  # a tzinfo subclass that cannot answer (e.g. bare tzinfo())
        raise InvalidOption("tz", tz, f"a tzinfo that gives UTC offsets ({exc!r})") from None
    return zone


def _telemetry_hook(telemetry: object) -> Callable[[Tracker], None] | None:
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
    return lambda tracker: instrument(tracker, options)


_GRANULARITY_OF: dict[type[Period], Granularity] = {
    Hour: "hour",
    Day: "day",
    Week: "week",
    Month: "month",
}


def _check_deadlines(
    periods: tuple[Period | None, ...], expire_after: Mapping[Granularity, _dt.timedelta]
) -> None:
    """Check that every deadline a mark's keys would get (period end + TTL) can be sent.

    The same arithmetic as the write batch's ``EXPIREAT``, done at the call so that a mark
    that cannot expire is refused there, never later in a sender.

    :raises InvalidPeriod: if a deadline falls past year 9999
    """
    for period in periods:
        if period is None:
            continue
        granularity = _GRANULARITY_OF.get(type(period))
        ttl = expire_after.get(granularity) if granularity is not None else None
        if ttl is None:
            continue
        try:
            int((period.end + ttl).timestamp())
        except (InvalidPeriod, OverflowError, ValueError, OSError):
            raise InvalidPeriod(
                f"a mark in {granularity} {period} cannot expire: its deadline (the "
                f"period's end + expire_after[{granularity!r}] = {ttl}) falls past year 9999"
            ) from None


def _eval(keys: list[str], argv: Sequence[str | int]) -> Command:
    return ("EVAL", COUNT_SCRIPT, len(keys), *keys, *argv)


def _merge(groups: list[Group]) -> list[Group]:
    """One group of every command (a single server takes them in one pipeline anyway)."""
    return [Group(groups[0].route, [c for g in groups for c in g.commands])]


def _as_int(reply: object) -> int:
    if isinstance(reply, (int, bytes, str)):
        return int(reply)
    raise TypeError(f"unexpected reply {reply!r}")


def _as_bytes(reply: object) -> bytes:
    if reply is None:
        return b""
    if isinstance(reply, bytes):
        return reply
    raise TypeError(f"unexpected reply {reply!r}")


def _as_list(reply: object) -> list[object]:
    if isinstance(reply, list):
        return cast("list[object]", reply)
    raise TypeError(f"unexpected reply {reply!r}")


def _as_iterable(reply: object) -> Iterable[bytes | str | int]:
    if isinstance(reply, (set, list, tuple, frozenset)):
        return cast("Iterable[bytes | str | int]", reply)
    raise TypeError(f"unexpected reply {reply!r}")
