"""The spans and metrics of an instrumented tracker (see :mod:`bitlens.otel`).

One function, :func:`instrument`, called once by ``Tracker(telemetry=...)``:

* it sets the executor's round-trip observer, the one place every request to Redis passes
  (a child span per round trip, counted into the operation that made it);
* it replaces the tracker's public operations, on that instance only, with wrappers that
  open a span each; an operation called by another of the same tracker (``contains`` by
  way of ``contains_many``, ``retention``'s ``count_many``) is counted in the outer span;
* it wraps the tracker's flush (every batch of marks goes through it but a lone
  ``mark_event``'s own MULTI/EXEC) for the ``bitlens.flush`` span and the histograms;
* it registers the tracker with the observable counters of its meter, which read
  :meth:`~bitlens.Tracker.stats` by field name at each collection.

A tracker made without ``telemetry`` is never touched: it pays nothing.
"""

from __future__ import annotations

import dataclasses
import heapq
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .._exceptions import InvalidOption
from .._ingest import IngestStats
from .._version import __version__

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
    from opentelemetry.trace import Span, Tracer, TracerProvider
    from opentelemetry.util.types import AttributeValue

    from .._execute import Executor
    from .._state import ShardRegistry
    from .._tracker import Tracker
    from .._writer import Writer
    from .._writes import WriteBatch

__all__ = ["Telemetry", "instrument"]

_T = TypeVar("_T")

SCOPE = "bitlens"
"""The instrumentation scope name of every span and instrument."""

MAX_LISTED = 32
"""The most event names or shards one span lists (``bitlens.events.count`` tells them all)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Telemetry:
    """Where a tracker's spans and metrics go; pass as ``Tracker(..., telemetry=...)``.

    ``telemetry=True`` is ``Telemetry()``: the global providers, which OpenTelemetry's
    set-up (or ``opentelemetry-instrument``) installs; until one is set, nothing is
    recorded.

    Example::

        from opentelemetry.sdk.trace import TracerProvider

        tracker = Tracker(url, telemetry=Telemetry(tracer_provider=TracerProvider()))

    :param tracer_provider: the provider of the ``bitlens`` tracer (default: the global one)
    :param meter_provider: the provider of the ``bitlens`` meter (default: the global one)
    :param round_trip_spans: open a child span per round trip to Redis (the operation
        spans count round trips and commands either way)
    :raises InvalidOption: for a provider without ``get_tracer``/``get_meter`` or a
        non-bool ``round_trip_spans``
    """

    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    round_trip_spans: bool = True

    def __post_init__(self) -> None:
        """Check each field's type."""
        if self.tracer_provider is not None and not hasattr(self.tracer_provider, "get_tracer"):
            raise InvalidOption(
                "tracer_provider", self.tracer_provider, "an OpenTelemetry TracerProvider"
            )
        if self.meter_provider is not None and not hasattr(self.meter_provider, "get_meter"):
            raise InvalidOption(
                "meter_provider", self.meter_provider, "an OpenTelemetry MeterProvider"
            )
        if not isinstance(self.round_trip_spans, bool):
            raise InvalidOption("round_trip_spans", self.round_trip_spans, "True or False")


class _Op:
    """The round trips and commands of one operation span, while it runs."""

    __slots__ = ("commands", "flushed", "observer", "parent", "round_trips", "seconds")

    def __init__(self, observer: _Observer, parent: _Op | None) -> None:
        self.observer = observer
        self.parent = parent
        self.round_trips = 0
        self.commands = 0
        self.seconds = 0.0
        self.flushed = False


_CURRENT: ContextVar[_Op | None] = ContextVar("bitlens_operation", default=None)
"""The operation span of the running task (copied into the tasks it starts)."""


def _fail(span: Span, error: BaseException) -> None:
    span.record_exception(error)
    span.set_attribute("error.type", type(error).__qualname__)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def _operation_name(wire: Sequence[tuple[object, ...]]) -> tuple[str, str]:
    """Return the span name (command names in order, once each) and ``db.operation.name``."""
    names = list(dict.fromkeys(str(command[0]).upper() for command in wire if command))
    if len(wire) == 1:
        return names[0], names[0]
    if len(names) == 1:
        return names[0], f"BATCH {names[0]}"
    return " ".join(names), "BATCH"


class _Observer:
    """The executor's round-trip observer and the factory of one tracker's spans.

    :param tracker: the instrumented tracker
    :param tracer: where spans go
    :param instruments: the meter's histograms
    :param round_trip_spans: open a span per round trip
    """

    def __init__(
        self,
        tracker: Tracker,
        tracer: Tracer,
        instruments: _Instruments,
        *,
        round_trip_spans: bool,
    ) -> None:
        self.tracer = tracer
        self.instruments = instruments
        self.round_trip_spans = round_trip_spans
        self.prefix = tracker.schema.prefix
        self.metric_attributes: dict[str, AttributeValue] = {"bitlens.prefix": self.prefix}
        self._tracker = weakref.ref(tracker)

    # -- round trips ----------------------------------------------------------------------

    @contextmanager
    def round_trip(self, wire: Sequence[tuple[object, ...]], connection: object) -> Iterator[None]:
        """Count ``wire`` into the running operations; open its span (see the executor).

        :param wire: the commands sent, ``MULTI``/``EXEC`` included
        :param connection: the redis-py connection, for the server's address
        """
        op = _CURRENT.get()
        if op is not None and op.observer is not self:
            op = None  # another tracker's operation: not ours to count
        started = time.perf_counter()
        try:
            if not self.round_trip_spans:
                yield
                return
            name, operation = _operation_name(wire)
            attributes: dict[str, AttributeValue] = {
                "db.system.name": "redis",
                "db.system": "redis",
                "db.operation.name": operation,
                "bitlens.commands": len(wire),
            }
            if len(wire) > 1:
                attributes["db.operation.batch.size"] = len(wire)
            host = getattr(connection, "host", None)
            port = getattr(connection, "port", None)
            if isinstance(host, str):
                attributes["server.address"] = host
            if isinstance(port, int):
                attributes["server.port"] = port
            db = getattr(connection, "db", None)
            if isinstance(db, int):
                attributes["db.namespace"] = str(db)
            with self.tracer.start_as_current_span(
                name,
                kind=SpanKind.CLIENT,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    yield
                except BaseException as error:
                    _fail(span, error)
                    raise
        finally:
            if op is not None:
                op.seconds += time.perf_counter() - started
            while op is not None:
                op.round_trips += 1
                op.commands += len(wire)
                op = op.parent

    # -- operations -----------------------------------------------------------------------

    def _inside(self) -> bool:
        """Whether an operation of this tracker is running in this task already."""
        op = _CURRENT.get()
        return op is not None and op.observer is self

    def _start(self, name: str, attributes: Mapping[str, AttributeValue]) -> Any:
        attrs: dict[str, AttributeValue] = {"bitlens.prefix": self.prefix, **attributes}
        return self.tracer.start_as_current_span(
            f"bitlens.{name}",
            kind=SpanKind.INTERNAL,
            attributes=attrs,
            record_exception=False,
            set_status_on_exception=False,
        )

    async def operation(
        self,
        name: str,
        attributes: Mapping[str, AttributeValue],
        call: Callable[[], Awaitable[_T]],
        finish: Callable[[Span, _T, _Op], None] | None = None,
    ) -> _T:
        """Run ``call`` inside the span of operation ``name`` (or the running one's).

        :param name: the operation, e.g. ``"count"``
        :param attributes: the span's attributes known before the call
        :param call: the tracker's own method, bound to its arguments
        :param finish: sets the attributes known after a successful call
        """
        if self._inside():
            return await call()
        op = _Op(self, None)
        token = _CURRENT.set(op)
        try:
            with self._start(name, attributes) as span:
                try:
                    result = await call()
                except BaseException as error:
                    _fail(span, error)
                    raise
                finally:
                    span.set_attribute("bitlens.round_trips", op.round_trips)
                    span.set_attribute("bitlens.commands", op.commands)
                if finish is not None:
                    finish(span, result, op)
                return result
        finally:
            _CURRENT.reset(token)

    async def detached(
        self, name: str, attributes: Mapping[str, AttributeValue], call: Callable[[], Awaitable[_T]]
    ) -> _T:
        """Run ``call`` under a span that is not current, in a context without spans.

        For a coalesced mark: the batch it joins may be sent by a task this call starts,
        and that task must not inherit this caller's span (it sends for every caller).

        :param name: the operation
        :param attributes: the span's attributes
        :param call: the tracker's own method, bound to its arguments
        """
        attrs: dict[str, AttributeValue] = {
            "bitlens.prefix": self.prefix,
            "bitlens.coalesced": True,
            **attributes,
        }
        span = self.tracer.start_span(f"bitlens.{name}", kind=SpanKind.INTERNAL, attributes=attrs)
        context_token = otel_context.attach(otel_context.Context())
        op_token = _CURRENT.set(None)
        try:
            return await call()
        except BaseException as error:
            _fail(span, error)
            raise
        finally:
            _CURRENT.reset(op_token)
            otel_context.detach(context_token)
            span.end()

    async def flush(
        self, call: Callable[[WriteBatch], Awaitable[None]], writes: WriteBatch
    ) -> None:
        """Send a batch of marks under a ``bitlens.flush`` span; record its size and latency.

        :param call: the tracker's own flush
        :param writes: the batch
        """
        parent = _CURRENT.get()
        if parent is not None and parent.observer is not self:
            parent = None
        marks = writes.marks
        attributes: dict[str, AttributeValue] = {"bitlens.marks": marks}
        if marks:
            attributes.update(_listed("bitlens.shards", writes.shards))
        op = _Op(self, parent)
        token = _CURRENT.set(op)
        started = time.perf_counter()
        try:
            with self._start("flush", attributes) as span:
                try:
                    await call(writes)
                except BaseException as error:
                    _fail(span, error)
                    raise
                finally:
                    span.set_attribute("bitlens.round_trips", op.round_trips)
                    span.set_attribute("bitlens.commands", op.commands)
        finally:
            _CURRENT.reset(token)
        if parent is not None:
            parent.flushed = True
        if marks:
            self.instruments.record_flush(
                marks, time.perf_counter() - started, self.metric_attributes
            )

    def lone_mark(self, op: _Op) -> None:
        """Record a mark sent as its own MULTI/EXEC (no flush) as a batch of one.

        :param op: the finished operation
        """
        if not op.flushed and op.round_trips:
            self.instruments.record_flush(1, op.seconds, self.metric_attributes)


def _listed(
    name: str, values: Iterable[str] | Iterable[int], *, complete: bool = True
) -> dict[str, AttributeValue]:
    """``name`` (sorted, at most :data:`MAX_LISTED`) and ``name + ".count"``.

    :param complete: whether ``values`` holds them all; if not, ``name + ".truncated"``
        replaces the count (``mark_events`` stops collecting past :data:`MAX_LISTED`)
    """
    unique: set[Any] = values if isinstance(values, set) else set(values)
    head = sorted(unique) if len(unique) <= MAX_LISTED else heapq.nsmallest(MAX_LISTED, unique)
    out: dict[str, AttributeValue] = {name: head}
    if complete:
        out[f"{name}.count"] = len(unique)
    else:
        out[f"{name}.truncated"] = True
    return out


def _events_of(*exprs: object) -> list[str]:
    """The event names a set of expressions (or event names) reads, without any I/O."""
    found: set[str] = set()
    stack = list(exprs)
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            found.add(node)
        elif isinstance(node, (tuple, list)):
            stack.extend(node)  # pyright: ignore[reportUnknownArgumentType]
        elif dataclasses.is_dataclass(node) and not isinstance(node, type):
            for field in dataclasses.fields(node):
                value = getattr(node, field.name, None)
                if field.name == "event" and isinstance(value, str):
                    found.add(value)
                elif not isinstance(value, str):
                    stack.append(value)
    return sorted(found)


def _event_attributes(*exprs: object) -> dict[str, AttributeValue]:
    return _listed("bitlens.events", _events_of(*exprs))


def _shard_of(tracker: Tracker, user_id: object) -> int | None:
    if type(user_id) is int and 0 <= user_id <= tracker.max_user_id:
        return tracker.schema.shard_of(user_id)
    return None


def _shards_of(tracker: Tracker, user_ids: Iterable[object]) -> dict[str, AttributeValue]:
    found = (_shard_of(tracker, uid) for uid in user_ids)
    return _listed("bitlens.shards", {shard for shard in found if shard is not None})


_REGISTRIES: weakref.WeakKeyDictionary[Tracker, ShardRegistry] = weakref.WeakKeyDictionary()
"""The known shards of each instrumented tracker."""


def _known_shards(span: Span, tracker: Tracker) -> None:
    span.set_attributes(_listed("bitlens.shards", _REGISTRIES[tracker].known))


class _Collected:
    """Counts what an iterable of marks yields, for ``mark_events``' span."""

    __slots__ = ("all_events", "all_shards", "events", "shards", "tracker")

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.events: set[str] = set()
        self.shards: set[int] = set()
        self.all_events = True  # False once a name past MAX_LISTED was left out
        self.all_shards = True

    def watch(self, marks: Iterable[Any]) -> Iterator[Any]:
        """Yield ``marks`` unchanged, noting their events and shards (bounded memory).

        :param marks: the caller's items
        """
        events, shards = self.events, self.shards
        for mark in marks:
            if type(mark) is tuple and len(mark) >= 2:  # pyright: ignore[reportUnknownArgumentType]
                event, user_id = mark[0], mark[1]  # pyright: ignore[reportUnknownVariableType]
                if isinstance(event, str) and event not in events:
                    if len(events) < MAX_LISTED:
                        events.add(event)
                    else:
                        self.all_events = False
                shard = _shard_of(self.tracker, user_id)
                if shard is not None and shard not in shards:
                    if len(shards) < MAX_LISTED:
                        shards.add(shard)
                    else:
                        self.all_shards = False
            yield mark


class _Instruments:
    """The histograms of one meter, and the observable counters of every tracker on it."""

    def __init__(self, meter: Meter) -> None:
        self._trackers: weakref.WeakSet[Tracker] = weakref.WeakSet()
        self._lock = threading.Lock()  # metric readers collect from threads of their own
        self.batch_size = meter.create_histogram(
            "bitlens.ingest.batch.size",
            unit="{mark}",
            description="Marks per batch written to Redis (one MULTI/EXEC per node)",
        )
        self.flush_duration = meter.create_histogram(
            "bitlens.ingest.flush.duration",
            unit="s",
            description="Time to write one batch of marks to Redis, retries included",
        )
        for field in dataclasses.fields(IngestStats):  # by name: new counters appear by themselves
            name = field.name
            callback = self._callback(name)
            description = f"IngestStats.{name} of bitlens trackers, summed per key prefix"
            if name.endswith("pending"):
                meter.create_observable_up_down_counter(
                    f"bitlens.ingest.{name}", [callback], unit="{mark}", description=description
                )
            else:
                meter.create_observable_counter(
                    f"bitlens.ingest.{name}", [callback], unit="1", description=description
                )

    def _callback(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            totals: dict[str, int] = {}
            with self._lock:
                trackers = list(self._trackers)
            for tracker in trackers:
                value = getattr(tracker.stats(), name, None)
                if isinstance(value, int):
                    prefix = tracker.schema.prefix
                    totals[prefix] = totals.get(prefix, 0) + value
            return [
                metrics.Observation(value, {"bitlens.prefix": prefix})
                for prefix, value in sorted(totals.items())
            ]

        return observe

    def add(self, tracker: Tracker) -> None:
        """Report ``tracker``'s counters from now on (until it is garbage collected).

        :param tracker: an instrumented tracker
        """
        with self._lock:
            self._trackers.add(tracker)

    def record_flush(
        self, marks: int, seconds: float, attributes: Mapping[str, AttributeValue]
    ) -> None:
        """Record one batch written.

        :param marks: its marks
        :param seconds: how long it took
        :param attributes: the tracker's metric attributes
        """
        self.batch_size.record(marks, attributes)
        self.flush_duration.record(seconds, attributes)


_INSTRUMENTS: weakref.WeakKeyDictionary[object, _Instruments] = weakref.WeakKeyDictionary()
"""One set of instruments per meter provider (an instrument name is registered once)."""


class _GlobalProvider:
    """The key of the instruments made on the global meter provider, whichever it is.

    Made before the application sets its provider, the global meter is a proxy that
    forwards to the provider set later: one set of instruments serves both.
    """


_GLOBAL = _GlobalProvider()


def _instruments_for(provider: MeterProvider | None) -> _Instruments:
    key: object = provider if provider is not None else _GLOBAL
    found = _INSTRUMENTS.get(key)
    if found is None:
        meter = metrics.get_meter(SCOPE, __version__, meter_provider=provider)
        found = _INSTRUMENTS[key] = _Instruments(meter)
    return found


def instrument(
    tracker: Tracker,
    telemetry: Telemetry,
    *,
    executor: Executor,
    registry: ShardRegistry,
    writer: Writer,
) -> None:
    """Give ``tracker`` its spans and metrics (called once, by its constructor).

    :param tracker: a new tracker
    :param telemetry: where its spans and metrics go
    :param executor: the tracker's executor, whose round trips are observed
    :param registry: the tracker's known shards, named on query spans
    :param writer: the tracker's write side, whose every batch sent is measured
    """
    tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=telemetry.tracer_provider)
    instruments = _instruments_for(telemetry.meter_provider)
    instruments.add(tracker)
    observer = _Observer(tracker, tracer, instruments, round_trip_spans=telemetry.round_trip_spans)
    executor.observer = observer
    _REGISTRIES[tracker] = registry
    for name, make in _WRAPPERS.items():
        # On this instance only: trackers made without telemetry keep the class's methods.
        setattr(tracker, name, make(tracker, observer, getattr(tracker, name)))
    # Every write path ends in the write side's flush (the lone mark on one server aside,
    # which the executor's observer sees): on this instance only, like the methods above.
    setattr(writer, "flush", _flush(tracker, observer, writer.flush))  # noqa: B010


# -- the wrappers, one per operation: each returns a function of the method's signature ---


def _single_mark(name: str) -> Callable[[Tracker, _Observer, Any], Any]:
    def make(tracker: Tracker, observer: _Observer, method: Any) -> Any:
        async def wrapper(event: Any, user_id: Any, *args: Any, **kwargs: Any) -> None:
            attributes = {
                **_listed("bitlens.events", [str(event)]),
                **_shards_of(tracker, [user_id]),
            }
            call: Callable[[], Awaitable[None]] = lambda: method(event, user_id, *args, **kwargs)  # noqa: E731
            if tracker.coalesce:
                return await observer.detached(name, attributes, call)
            return await observer.operation(
                name, attributes, call, lambda _span, _result, op: observer.lone_mark(op)
            )

        return wrapper

    return make


def _mark_events(tracker: Tracker, observer: _Observer, method: Any) -> Any:
    async def mark_events(marks: Iterable[Any], **kwargs: Any) -> int:
        collected = _Collected(tracker)

        async def call() -> int:
            sent: int = await method(collected.watch(marks), **kwargs)
            return sent

        def finish(span: Span, sent: int, _op: _Op) -> None:
            span.set_attribute("bitlens.marks", sent)
            span.set_attributes(
                _listed("bitlens.events", collected.events, complete=collected.all_events)
            )
            span.set_attributes(
                _listed("bitlens.shards", collected.shards, complete=collected.all_shards)
            )

        return await observer.operation("mark_events", {}, call, finish)

    return mark_events


def _mark_event_nowait(tracker: Tracker, observer: _Observer, method: Any) -> Any:
    def mark_event_nowait(event: Any, user_id: Any, *args: Any, **kwargs: Any) -> bool:
        attributes: dict[str, AttributeValue] = {
            "bitlens.prefix": observer.prefix,
            **_listed("bitlens.events", [str(event)]),
            **_shards_of(tracker, [user_id]),
        }
        span = observer.tracer.start_span(
            "bitlens.mark_event_nowait", kind=SpanKind.INTERNAL, attributes=attributes
        )
        # The queue's sender task may start here: it must not inherit the caller's span.
        context_token = otel_context.attach(otel_context.Context())
        op_token = _CURRENT.set(None)
        try:
            queued = bool(method(event, user_id, *args, **kwargs))
            span.set_attribute("bitlens.queued", queued)
            return queued
        except BaseException as error:
            _fail(span, error)
            raise
        finally:
            _CURRENT.reset(op_token)
            otel_context.detach(context_token)
            span.end()

    return mark_event_nowait


def _count(tracker: Tracker, observer: _Observer, method: Any) -> Any:
    async def count(expr: Any) -> int:
        def finish(span: Span, total: int, _op: _Op) -> None:
            _known_shards(span, tracker)
            span.set_attribute("bitlens.result", total)

        return await observer.operation(
            "count", _event_attributes(expr), lambda: method(expr), finish
        )

    return count


def _has_events(tracker: Tracker, observer: _Observer, method: Any) -> Any:
    async def has_events(expr: Any) -> bool:
        def finish(span: Span, found: bool, _op: _Op) -> None:
            _known_shards(span, tracker)

        return await observer.operation(
            "has_events", _event_attributes(expr), lambda: method(expr), finish
        )

    return has_events


def _count_many(tracker: Tracker, observer: _Observer, method: Any) -> Any:
    async def count_many(exprs: Any) -> Any:
        if not isinstance(exprs, Mapping):
            exprs = list(exprs)  # read once here, once by the tracker
            items: list[object] = exprs
        else:
            items = list(exprs.values())  # pyright: ignore[reportUnknownArgumentType, reportUnknownMemberType]
        attributes = {**_event_attributes(*items), "bitlens.expressions": len(items)}

        def finish(span: Span, _result: object, _op: _Op) -> None:
            _known_shards(span, tracker)

        return await observer.operation("count_many", attributes, lambda: method(exprs), finish)

    return count_many


def _contains(tracker: Tracker, observer: _Observer, method: Any) -> Any:
    async def contains(expr: Any, user_id: Any) -> bool:
        attributes = {**_event_attributes(expr), **_shards_of(tracker, [user_id])}
        return await observer.operation("contains", attributes, lambda: method(expr, user_id))

    return contains


def _contains_many(tracker: Tracker, observer: _Observer, method: Any) -> Any:
    async def contains_many(expr: Any, user_ids: Iterable[Any]) -> list[bool]:
        ids = list(user_ids)  # read once here, once by the tracker
        attributes = {
            **_event_attributes(expr),
            **_shards_of(tracker, ids),
            "bitlens.ids": len(ids),
        }
        return await observer.operation("contains_many", attributes, lambda: method(expr, ids))

    return contains_many


def _retention(tracker: Tracker, observer: _Observer, method: Any) -> Any:
    async def retention(start: Any, returning: Any = None, **kwargs: Any) -> Any:
        attributes: dict[str, AttributeValue] = {
            **_event_attributes(start, returning),
            "bitlens.period": str(kwargs.get("period", "day")),
        }
        cohorts = kwargs.get("cohorts")
        if isinstance(cohorts, int):
            attributes["bitlens.cohorts"] = cohorts

        def finish(span: Span, _table: object, _op: _Op) -> None:
            _known_shards(span, tracker)

        return await observer.operation(
            "retention", attributes, lambda: method(start, returning, **kwargs), finish
        )

    return retention


def _members(tracker: Tracker, observer: _Observer, method: Any) -> Any:
    async def members(expr: Any) -> AsyncIterator[int]:
        inner: AsyncIterator[int] = method(expr)
        if observer._inside():
            async for user_id in inner:
                yield user_id
            return
        op = _Op(observer, None)
        span = observer.tracer.start_span(
            "bitlens.members",
            kind=SpanKind.INTERNAL,
            attributes={"bitlens.prefix": observer.prefix, **_event_attributes(expr)},
        )
        span_context = trace.set_span_in_context(span)
        yielded = 0
        try:
            while True:
                # Current only while the tracker reads a chunk, never across the caller's
                # loop body: the consumer's own spans stay siblings of this one.
                context_token = otel_context.attach(span_context)
                op_token = _CURRENT.set(op)
                try:
                    user_id = await inner.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    _CURRENT.reset(op_token)
                    otel_context.detach(context_token)
                yielded += 1
                yield user_id
        except GeneratorExit:
            span.set_attribute("bitlens.closed_early", True)
            raise
        except BaseException as error:
            _fail(span, error)
            raise
        finally:
            aclose = getattr(inner, "aclose", None)
            if aclose is not None:
                await aclose()
            span.set_attribute("bitlens.round_trips", op.round_trips)
            span.set_attribute("bitlens.commands", op.commands)
            span.set_attribute("bitlens.result", yielded)
            _known_shards(span, tracker)
            span.end()

    return members


def _flush(tracker: Tracker, observer: _Observer, method: Any) -> Any:
    async def flush(writes: WriteBatch) -> None:
        await observer.flush(method, writes)

    return flush


_WRAPPERS: dict[str, Callable[[Tracker, _Observer, Any], Any]] = {
    "mark_event": _single_mark("mark_event"),
    "unmark_event": _single_mark("unmark_event"),
    "mark_unique": _single_mark("mark_unique"),
    "unmark_unique": _single_mark("unmark_unique"),
    "mark_events": _mark_events,
    "mark_event_nowait": _mark_event_nowait,
    "count": _count,
    "count_many": _count_many,
    "has_events": _has_events,
    "contains": _contains,
    "contains_many": _contains_many,
    "retention": _retention,
    "members": _members,
}
"""The tracker attributes an instrumented tracker overrides, and how."""
