"""OpenTelemetry: operation and round-trip spans, ingestion metrics, and life without it.

Every test records into its own SDK providers (in-memory exporter and reader), never the
global ones, against the real session server, most of them through the counting proxy so
the spans' round-trip counts can be checked against the wire.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import bitlens.otel
from bitlens import (
    Capabilities,
    Coalesce,
    IngestStats,
    InvalidOption,
    InvalidUserId,
    Limits,
    MonthEvents,
    Tracker,
)
from bitlens.otel import Telemetry

if TYPE_CHECKING:
    from collections.abc import Iterator

    import redis.asyncio
    from redis.asyncio.cluster import RedisCluster

    from _cluster_counter import ClusterProxies
    from _proxy import RoundTripProxy

pytestmark = pytest.mark.anyio

AT = dt.datetime(2026, 11, 5, 12, tzinfo=dt.timezone.utc)
NOVEMBER = MonthEvents("active", 2026, 11)


@dataclasses.dataclass
class Recorded:
    """SDK providers that keep what they record in memory.

    :param tracer_provider: a tracer provider exporting to :attr:`exporter`
    :param exporter: the finished spans
    :param meter_provider: a meter provider read by :attr:`reader`
    :param reader: the metrics, on demand
    """

    tracer_provider: TracerProvider
    exporter: InMemorySpanExporter
    meter_provider: MeterProvider
    reader: InMemoryMetricReader

    @property
    def telemetry(self) -> Telemetry:
        """The tracker option that records here."""
        return Telemetry(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """The finished spans, in the order they ended (only those called ``name``).

        :param name: a span name, or None for all
        """
        found = self.exporter.get_finished_spans()
        return [s for s in found if name is None or s.name == name]

    def span(self, name: str) -> ReadableSpan:
        """The one finished span called ``name``.

        :param name: a span name
        """
        (found,) = self.spans(name)
        return found

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        """The finished spans whose parent is ``parent``.

        :param parent: a finished span
        """
        return [s for s in self.spans() if _parent(s) == _id(parent)]

    def points(self, name: str) -> list[NumberDataPoint | HistogramDataPoint]:
        """The data points of the metric called ``name`` (empty if none was reported).

        :param name: an instrument name
        """
        data = self.reader.get_metrics_data()
        out: list[NumberDataPoint | HistogramDataPoint] = []
        if data is None:
            return out
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        out += [
                            p
                            for p in metric.data.data_points
                            if isinstance(p, (NumberDataPoint, HistogramDataPoint))
                        ]
        return out

    def value(self, name: str, prefix: str) -> int | float:
        """The value of an observable counter for one key prefix.

        :param name: an instrument name
        :param prefix: the trackers' key prefix
        """
        (point,) = [p for p in self.points(name) if p.attributes == {"bitlens.prefix": prefix}]
        assert isinstance(point, NumberDataPoint)
        return point.value


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    """Yield in-memory SDK tracer and meter providers, shut down after the test."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    try:
        yield Recorded(tracer_provider, exporter, meter_provider, reader)
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()


async def _nine_marks_in_five_batches(tracker: Tracker) -> None:
    """Three lone marks, a mark_events chunk of 4 and a queued pair, then close ``tracker``."""
    for uid in (1, 2, 3):
        await tracker.mark_event("active", uid, AT)
    await tracker.mark_events([("active", uid, AT) for uid in range(10, 14)])
    tracker.mark_event_nowait("active", 20, AT)
    tracker.mark_event_nowait("active", 21, AT)
    await tracker.aclose()


def _pythonpath(src: str) -> str:
    """``src`` first, then the test process's own ``PYTHONPATH`` (for a subprocess).

    :param src: the directory holding this checkout's ``bitlens``
    """
    return os.pathsep.join(filter(None, (src, os.environ.get("PYTHONPATH"))))


def _id(span: ReadableSpan) -> int:
    context = span.get_span_context()
    assert context is not None
    return context.span_id


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


# -- operation spans ----------------------------------------------------------------------


async def test_count_span_holds_its_events_shards_round_trips_and_commands(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str, recorded: Recorded
) -> None:
    """A count's span names its events and shards and counts what went on the wire."""
    tracker = Tracker(counted_client, prefix=prefix, telemetry=recorded.telemetry)
    await tracker.mark_event("active", 7, AT)
    await tracker.mark_event("active", 2**20 + 1, AT)
    proxy.reset()
    assert await tracker.count(NOVEMBER & MonthEvents("paid", 2026, 11)) == 0
    span = recorded.span("bitlens.count")
    assert span.attributes is not None
    assert span.attributes["bitlens.events"] == ("active", "paid")
    assert span.attributes["bitlens.shards"] == (0, 1)
    assert span.attributes["bitlens.prefix"] == prefix
    assert span.attributes["bitlens.result"] == 0
    assert (span.attributes["bitlens.round_trips"], span.attributes["bitlens.commands"]) == (
        proxy.round_trips,
        proxy.commands,
    )
    assert proxy.round_trips == 1


async def test_round_trip_spans_are_client_children_of_the_operation_span(
    client: redis.asyncio.Redis, prefix: str, recorded: Recorded
) -> None:
    """Each round trip is a CLIENT span with Redis attributes, under its operation's span."""
    tracker = Tracker(client, prefix=prefix, telemetry=recorded.telemetry)
    await tracker.mark_event("active", 7, AT)
    operation = recorded.span("bitlens.mark_event")
    (round_trip,) = recorded.children(operation)
    assert round_trip.name == "MULTI SETBIT SADD EXEC"
    assert round_trip.kind is SpanKind.CLIENT
    assert round_trip.attributes is not None
    assert round_trip.attributes["db.system.name"] == "redis"
    assert round_trip.attributes["db.operation.name"] == "BATCH"
    assert round_trip.attributes["db.operation.batch.size"] == 7
    assert round_trip.attributes["server.port"] == client.connection_pool.connection_kwargs["port"]


async def test_operation_spans_nest_under_the_callers_span(
    client: redis.asyncio.Redis, prefix: str, recorded: Recorded
) -> None:
    """A bitlens span opened inside an application span is its child."""
    tracker = Tracker(client, prefix=prefix, telemetry=recorded.telemetry)
    tracer = recorded.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("GET /stats"):
        await tracker.count(NOVEMBER)
    assert _parent(recorded.span("bitlens.count")) == _id(recorded.span("GET /stats"))


async def test_bad_input_is_recorded_as_an_error_on_the_operation_span(
    client: redis.asyncio.Redis, prefix: str, recorded: Recorded
) -> None:
    """An InvalidUserId sets the span's status to ERROR, with the exception, and sends nothing."""
    tracker = Tracker(client, prefix=prefix, telemetry=recorded.telemetry)
    with pytest.raises(InvalidUserId):
        await tracker.mark_event("active", -1)
    span = recorded.span("bitlens.mark_event")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "InvalidUserId"
    assert span.attributes["bitlens.round_trips"] == 0
    assert [event.name for event in span.events] == ["exception"]


async def test_a_server_error_is_recorded_on_the_round_trip_and_the_operation(
    client: redis.asyncio.Redis, prefix: str, recorded: Recorded
) -> None:
    """A WRONGTYPE reply marks both the round trip's span and the count's span as errors."""
    tracker = Tracker(client, prefix=prefix, telemetry=recorded.telemetry)
    await tracker.mark_event("active", 7, AT)
    key = tracker.schema.event_key("active", NOVEMBER.period, 0)
    await client.delete(key)
    await client.rpush(key, "not a bitmap")
    with pytest.raises(Exception, match="WRONGTYPE"):
        await tracker.count(NOVEMBER)
    operation = recorded.span("bitlens.count")
    (round_trip,) = recorded.children(operation)
    assert operation.status.status_code is StatusCode.ERROR
    assert round_trip.status.status_code is StatusCode.ERROR


async def test_an_operation_inside_another_is_counted_in_the_outer_span(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str, recorded: Recorded
) -> None:
    """``contains`` (by way of ``contains_many``) opens one bitlens span, not two."""
    tracker = Tracker(counted_client, prefix=prefix, telemetry=recorded.telemetry)
    await tracker.mark_event("active", 7, AT)
    proxy.reset()
    recorded.exporter.clear()
    assert await tracker.contains(NOVEMBER, 7)
    assert [s.name for s in recorded.spans() if s.name.startswith("bitlens.")] == [
        "bitlens.contains"
    ]
    attributes = recorded.span("bitlens.contains").attributes
    assert attributes is not None
    assert attributes["bitlens.round_trips"] == proxy.round_trips == 1


async def test_retention_is_one_span_with_its_round_trips(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str, recorded: Recorded
) -> None:
    """A retention table is one ``bitlens.retention`` span counting its one round trip."""
    tracker = Tracker(counted_client, prefix=prefix, telemetry=recorded.telemetry)
    await tracker.mark_event("signup", 7, AT)
    await tracker.mark_event("active", 7, AT + dt.timedelta(days=7))
    await tracker.count(NOVEMBER)  # the registry is read: the table is then one round trip
    proxy.reset()
    recorded.exporter.clear()
    await tracker.retention("signup", "active", period="week", cohorts=2, end=AT, now=AT)
    span = recorded.span("bitlens.retention")
    assert span.attributes is not None
    assert span.attributes["bitlens.events"] == ("active", "signup")
    assert span.attributes["bitlens.period"] == "week"
    assert span.attributes["bitlens.round_trips"] == proxy.round_trips == 1
    assert not recorded.spans("bitlens.count_many")


async def test_mark_events_has_a_flush_span_per_chunk(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str, recorded: Recorded
) -> None:
    """mark_events' span holds one ``bitlens.flush`` per chunk and every event and shard."""
    tracker = Tracker(
        counted_client,
        prefix=prefix,
        limits=Limits(mark_chunk_size=2),
        telemetry=recorded.telemetry,
    )
    marks = [("active", 1, AT), ("paid", 2, AT), ("active", 3, AT), ("active", 2**20, AT)]
    assert await tracker.mark_events(iter([*marks, ("paid", 5, AT)])) == 5
    span = recorded.span("bitlens.mark_events")
    flushes = recorded.children(span)
    assert [f.name for f in flushes] == ["bitlens.flush"] * 3
    assert [f.attributes["bitlens.marks"] for f in flushes if f.attributes] == [2, 2, 1]
    assert span.attributes is not None
    assert span.attributes["bitlens.marks"] == 5
    assert span.attributes["bitlens.events"] == ("active", "paid")
    assert span.attributes["bitlens.shards"] == (0, 1)
    assert span.attributes["bitlens.round_trips"] == proxy.round_trips == 3


async def test_mark_events_lists_at_most_32_events_and_says_it_left_some_out(
    client: redis.asyncio.Redis, prefix: str, recorded: Recorded
) -> None:
    """Forty event names: the span lists the first 32 seen and marks the list truncated."""
    tracker = Tracker(client, prefix=prefix, telemetry=recorded.telemetry)
    assert await tracker.mark_events([(f"e{n:02}", 1, AT) for n in range(40)]) == 40
    attributes = recorded.span("bitlens.mark_events").attributes
    assert attributes is not None
    assert attributes["bitlens.events"] == tuple(f"e{n:02}" for n in range(32))
    assert attributes["bitlens.events.truncated"] is True
    assert "bitlens.events.count" not in attributes
    assert attributes["bitlens.shards.count"] == 1


async def test_members_span_counts_every_chunk_it_read(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str, recorded: Recorded
) -> None:
    """A members stream is one span holding all its reads and the number of ids yielded."""
    tracker = Tracker(
        counted_client,
        prefix=prefix,
        limits=Limits(members_chunk_bytes=1),
        telemetry=recorded.telemetry,
    )
    await tracker.mark_events([("active", uid, AT) for uid in (1, 9, 17)])
    proxy.reset()
    assert [uid async for uid in tracker.members(NOVEMBER)] == [1, 9, 17]
    span = recorded.span("bitlens.members")
    assert span.attributes is not None
    assert span.attributes["bitlens.result"] == 3
    assert span.attributes["bitlens.round_trips"] == proxy.round_trips
    assert {_parent(s) for s in recorded.children(span)} == {_id(span)}
    assert len(recorded.children(span)) == proxy.round_trips


async def test_a_members_stream_left_early_still_ends_its_span(
    client: redis.asyncio.Redis, prefix: str, recorded: Recorded
) -> None:
    """Closing a members stream before its end ends the span, marked ``closed_early``."""
    tracker = Tracker(client, prefix=prefix, telemetry=recorded.telemetry)
    await tracker.mark_events([("active", uid, AT) for uid in (1, 2)])
    stream = tracker.members(NOVEMBER)
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    attributes = recorded.span("bitlens.members").attributes
    assert attributes is not None
    assert attributes["bitlens.closed_early"] is True


async def test_coalesced_marks_are_sent_under_one_flush_span_of_their_own(
    client: redis.asyncio.Redis, prefix: str, recorded: Recorded
) -> None:
    """Each caller's span stays under its request; the shared batch is a root flush span."""
    tracker = Tracker(
        client, prefix=prefix, coalesce=Coalesce(delay=0.05), telemetry=recorded.telemetry
    )
    tracer = recorded.tracer_provider.get_tracer("app")

    async def request(user_id: int) -> None:
        with tracer.start_as_current_span(f"request {user_id}"):
            await tracker.mark_event("active", user_id, AT)

    await asyncio.gather(*(request(uid) for uid in (1, 2, 3)))
    for uid in (1, 2, 3):
        (mark,) = recorded.children(recorded.span(f"request {uid}"))
        assert mark.name == "bitlens.mark_event"
        assert mark.attributes is not None
        assert mark.attributes["bitlens.coalesced"] is True
    flush = recorded.span("bitlens.flush")
    assert flush.parent is None
    assert flush.attributes is not None
    assert flush.attributes["bitlens.marks"] == 3
    assert [s.kind for s in recorded.children(flush)] == [SpanKind.CLIENT]


async def test_the_fire_and_forget_queue_is_flushed_outside_the_callers_span(
    client: redis.asyncio.Redis, prefix: str, recorded: Recorded
) -> None:
    """A queued mark's span is the caller's child; the queue's flush span is a root."""
    tracker = Tracker(client, prefix=prefix, telemetry=recorded.telemetry)
    tracer = recorded.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("request"):
        assert tracker.mark_event_nowait("active", 1, AT)
    await tracker.aclose()
    (queued,) = recorded.children(recorded.span("request"))
    assert queued.name == "bitlens.mark_event_nowait"
    flush = recorded.span("bitlens.flush")
    assert flush.parent is None
    assert flush.attributes is not None
    assert flush.attributes["bitlens.marks"] == 1


async def test_a_batch_is_flushed_under_the_callers_span(
    client: redis.asyncio.Redis, prefix: str, recorded: Recorded
) -> None:
    """``tracker.batch()`` sends one ``bitlens.flush`` span, a child of the caller's span."""
    tracker = Tracker(client, prefix=prefix, telemetry=recorded.telemetry)
    tracer = recorded.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("job"):
        async with tracker.batch() as batch:
            batch.mark_event("active", 1, AT)
            batch.mark_event("paid", 2**20, AT)
    flush = recorded.span("bitlens.flush")
    assert _parent(flush) == _id(recorded.span("job"))
    assert flush.attributes is not None
    assert (flush.attributes["bitlens.marks"], flush.attributes["bitlens.shards"]) == (2, (0, 1))
    assert flush.attributes["bitlens.round_trips"] == 1


async def test_a_cancelled_operation_ends_its_span_as_an_error(
    client: redis.asyncio.Redis, prefix: str, recorded: Recorded
) -> None:
    """A mark cancelled while the server holds writes (CLIENT PAUSE) ends its span in ERROR."""
    tracker = Tracker(client, prefix=prefix, telemetry=recorded.telemetry)
    await tracker.mark_event("active", 1, AT)  # the connection is open
    await client.client_pause(5000, all=False)  # pyright: ignore[reportUnknownMemberType]
    try:
        task = asyncio.get_running_loop().create_task(tracker.mark_event("active", 2, AT))
        await anyio.wait_all_tasks_blocked()  # the mark waits for the paused server's reply
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await client.client_unpause()  # pyright: ignore[reportUnknownMemberType]
    second = recorded.spans("bitlens.mark_event")[-1]
    assert second.status.status_code is StatusCode.ERROR
    assert second.attributes is not None
    assert second.attributes["error.type"] == "CancelledError"


async def test_round_trip_spans_can_be_turned_off(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str, recorded: Recorded
) -> None:
    """With ``round_trip_spans=False`` only operation spans remain, still counting trips."""
    telemetry = dataclasses.replace(recorded.telemetry, round_trip_spans=False)
    tracker = Tracker(counted_client, prefix=prefix, telemetry=telemetry)
    await tracker.mark_event("active", 1, AT)
    assert [s.name for s in recorded.spans()] == ["bitlens.mark_event"]
    attributes = recorded.span("bitlens.mark_event").attributes
    assert attributes is not None
    assert attributes["bitlens.round_trips"] == proxy.round_trips == 1


async def test_redis_instrumentation_sees_none_of_bitlens_round_trips(
    client: redis.asyncio.Redis, prefix: str, recorded: Recorded
) -> None:
    """opentelemetry-instrumentation-redis traces the client's own calls, never bitlens' sends.

    bitlens writes packed commands on pooled connections, below ``execute_command`` and
    ``Pipeline.execute``, so its own round-trip spans are the only Redis spans of its work.
    """
    RedisInstrumentor.instrument_client(client, tracer_provider=recorded.tracer_provider)
    try:
        tracker = Tracker(client, prefix=prefix, telemetry=recorded.telemetry)
        tracer = recorded.tracer_provider.get_tracer("app")
        with tracer.start_as_current_span("request"):
            await tracker.mark_event("active", 1, AT)
            assert await tracker.count(NOVEMBER) == 1
            await client.ping()  # the instrumentation works: this call gets its span
    finally:
        RedisInstrumentor.uninstrument_client(client)
    scopes = {
        s.name: s.instrumentation_scope.name if s.instrumentation_scope else None
        for s in recorded.spans()
    }
    redis_spans = [name for name, scope in scopes.items() if scope and "redis" in scope]
    assert redis_spans == ["PING"]
    request = recorded.span("request")
    assert [s.name for s in recorded.children(request)] == [
        "bitlens.mark_event",
        "bitlens.count",
        "PING",
    ]


async def test_telemetry_sends_the_same_round_trips_as_without(
    counted_client: redis.asyncio.Redis, proxy: RoundTripProxy, prefix: str, recorded: Recorded
) -> None:
    """The same workload costs the same round trips and commands with telemetry or without."""
    costs: list[tuple[int, int]] = []
    options: tuple[bool | Telemetry, ...] = (False, recorded.telemetry)
    for index, telemetry in enumerate(options):
        # Capabilities stated: the pool's one-time probe would ride with the first only.
        tracker = Tracker(
            counted_client,
            prefix=f"{prefix}{index}",
            telemetry=telemetry,
            capabilities=Capabilities(),
        )
        proxy.reset()
        await tracker.mark_event("active", 1, AT)
        await tracker.mark_events([("active", 2, AT), ("paid", 2**20, AT)])
        await tracker.count_many([NOVEMBER, NOVEMBER & MonthEvents("paid", 2026, 11)])
        await tracker.contains_many(NOVEMBER, [1, 2, 3])
        assert [uid async for uid in tracker.members(NOVEMBER)] == [1, 2]
        costs.append((proxy.round_trips, proxy.commands))
    assert costs[0] == costs[1]


async def test_a_tracker_without_telemetry_keeps_the_class_methods(
    client: redis.asyncio.Redis, prefix: str, recorded: Recorded
) -> None:
    """Only an instrumented tracker gets wrappers; another one is left exactly as it was."""
    Tracker(client, prefix=prefix, telemetry=recorded.telemetry)
    plain = Tracker(client, prefix=prefix)
    assert "count" not in vars(plain)
    assert plain._executor.observer is None


# -- metrics ------------------------------------------------------------------------------


async def test_every_ingest_counter_is_exported_with_its_stats_value(
    client: redis.asyncio.Redis, prefix: str, recorded: Recorded
) -> None:
    """Each IngestStats field is a ``bitlens.ingest.<field>`` metric equal to stats()."""
    tracker = Tracker(client, prefix=prefix, telemetry=recorded.telemetry)
    await _nine_marks_in_five_batches(tracker)
    stats = tracker.stats()
    assert stats.marks_written == 9
    for field in dataclasses.fields(IngestStats):
        assert recorded.value(f"bitlens.ingest.{field.name}", prefix) == getattr(
            stats, field.name
        ), field.name


async def test_marks_dropped_by_a_full_queue_are_exported(
    client: redis.asyncio.Redis, prefix: str, recorded: Recorded
) -> None:
    """A queue of one that is offered three marks exports 1 enqueued, 2 dropped, 1 written."""
    tracker = Tracker(
        client, prefix=prefix, limits=Limits(nowait_max_queue=1), telemetry=recorded.telemetry
    )
    assert [tracker.mark_event_nowait("active", uid, AT) for uid in (1, 2, 3)] == [
        True,
        False,
        False,
    ]
    assert recorded.value("bitlens.ingest.nowait_pending", prefix) == 1
    await tracker.aclose()
    assert recorded.value("bitlens.ingest.nowait_enqueued", prefix) == 1
    assert recorded.value("bitlens.ingest.nowait_dropped", prefix) == 2
    assert recorded.value("bitlens.ingest.nowait_written", prefix) == 1
    assert recorded.value("bitlens.ingest.nowait_pending", prefix) == 0


async def test_batch_sizes_and_flush_latency_are_recorded_per_batch(
    client: redis.asyncio.Redis, prefix: str, recorded: Recorded
) -> None:
    """Three lone marks, a mark_events chunk of 4 and a queued pair make 5 batches of 9 marks."""
    tracker = Tracker(client, prefix=prefix, telemetry=recorded.telemetry)
    await _nine_marks_in_five_batches(tracker)
    (sizes,) = recorded.points("bitlens.ingest.batch.size")
    (latency,) = recorded.points("bitlens.ingest.flush.duration")
    assert isinstance(sizes, HistogramDataPoint)
    assert isinstance(latency, HistogramDataPoint)
    assert (sizes.count, sizes.sum, sizes.min, sizes.max) == (5, 9, 1, 4)
    assert latency.count == 5
    assert latency.min > 0
    assert sizes.attributes == {"bitlens.prefix": prefix}


async def test_trackers_of_one_prefix_are_summed_and_other_prefixes_kept_apart(
    client: redis.asyncio.Redis, prefix: str, recorded: Recorded
) -> None:
    """Two trackers on one prefix add up; a third prefix reports on its own."""
    trackers = [
        Tracker(client, prefix=p, telemetry=recorded.telemetry)
        for p in (prefix, prefix, f"{prefix}x")
    ]
    for uid, tracker in enumerate(trackers):
        await tracker.mark_event("active", uid, AT)
    assert recorded.value("bitlens.ingest.marks_written", prefix) == 2
    assert recorded.value("bitlens.ingest.marks_written", f"{prefix}x") == 1


# -- options and life without OpenTelemetry -----------------------------------------------


def test_a_telemetry_option_of_the_wrong_type_is_refused(redis_url: str) -> None:
    """``telemetry="yes"`` raises InvalidOption before any client is made."""
    with pytest.raises(InvalidOption, match="telemetry"):
        Tracker(redis_url, telemetry="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [("tracer_provider", object()), ("meter_provider", 3), ("round_trip_spans", 1)],
)
def test_telemetry_checks_its_fields(field: str, value: object) -> None:
    """A Telemetry field of the wrong type raises InvalidOption naming it."""
    with pytest.raises(InvalidOption, match=field):
        Telemetry(**{field: value})  # type: ignore[arg-type]


def test_the_otel_module_exports_only_telemetry() -> None:
    """bitlens.otel's public surface is Telemetry, presented as bitlens.otel.Telemetry."""
    assert bitlens.otel.__all__ == ["Telemetry"]
    assert Telemetry.__module__ == "bitlens.otel"


_WITHOUT_OTEL = textwrap.dedent(
    """
    import asyncio, importlib.abc, sys

    class Hide(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Hide())

    import bitlens
    from bitlens import InvalidOption, MonthEvents, Tracker

    assert not [m for m in sys.modules if m.startswith("opentelemetry")], "imported"
    try:
        import bitlens.otel
    except ImportError as exc:
        assert "bitlens[otel]" in str(exc), exc
    else:
        raise AssertionError("bitlens.otel imported without OpenTelemetry")
    url, prefix = sys.argv[1:]
    try:
        Tracker(url, telemetry=True)
    except InvalidOption as exc:
        assert "bitlens[otel]" in str(exc), exc
    else:
        raise AssertionError("telemetry=True accepted without OpenTelemetry")

    async def main():
        async with Tracker(url, prefix=prefix) as tracker:
            await tracker.mark_event("active", 5)
            print(await tracker.count(MonthEvents.from_date("active")))

    asyncio.run(main())
    """
)


def test_bitlens_works_where_opentelemetry_cannot_be_imported(redis_url: str, prefix: str) -> None:
    """With OpenTelemetry hidden, bitlens imports, marks and counts; asking for it says how."""
    src = os.path.join(os.path.dirname(bitlens.otel.__file__), os.pardir, os.pardir)
    env = {**os.environ, "PYTHONPATH": _pythonpath(os.path.abspath(src))}
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_OTEL, redis_url, prefix],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


async def test_a_cluster_count_has_one_round_trip_span_per_node(
    counted_cluster_client: RedisCluster,
    cluster_proxies: ClusterProxies,
    prefix: str,
    recorded: Recorded,
) -> None:
    """On a cluster, a count's span counts the round trips of every node it reached."""
    tracker = Tracker(
        counted_cluster_client, prefix=prefix, shard_bits=8, telemetry=recorded.telemetry
    )
    await tracker.mark_events([("active", shard * 256, AT) for shard in range(12)])
    await tracker.count(NOVEMBER)  # the registry is read once
    cluster_proxies.reset()
    recorded.exporter.clear()
    assert await tracker.count(NOVEMBER) == 12
    span = recorded.span("bitlens.count")
    trips = recorded.children(span)
    per_node = cluster_proxies.per_node()
    assert span.attributes is not None
    assert span.attributes["bitlens.round_trips"] == len(trips) == sum(per_node.values())
    ports = {str(s.attributes["server.port"]) for s in trips if s.attributes}
    assert len(ports) == len(per_node)
    assert span.attributes["bitlens.shards.count"] == 12


# -- the guide's examples -----------------------------------------------------------------

GUIDE = Path(__file__).parent.parent / "docs" / "observability.md"


def _guide_examples() -> list[str]:
    """The ``python`` code blocks of docs/observability.md, in order."""
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)


def _run_example(code: str, tmp_path: Path, redis_url: str) -> str:
    """Run one example as a script of its own (it may set the global providers); return stdout.

    :param code: the example
    :param tmp_path: where to write it
    :param redis_url: the server it talks to (``REDIS_URL``)
    """
    script = tmp_path / "example.py"
    script.write_text(code)
    src = Path(bitlens.otel.__file__).parent.parent.parent
    env = {**os.environ, "PYTHONPATH": _pythonpath(str(src)), "REDIS_URL": redis_url}
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_guide_has_its_two_examples() -> None:
    """docs/observability.md holds the in-memory example and the FastAPI app."""
    examples = _guide_examples()
    assert len(examples) == 2
    assert "FastAPI(" in examples[1]


def test_the_guides_first_example_prints_its_four_spans(tmp_path: Path, redis_url: str) -> None:
    """The in-memory example prints two round trips and the two operations they belong to."""
    out = _run_example(_guide_examples()[0], tmp_path, redis_url)
    names = [line.split(" {")[0] for line in out.splitlines()]
    assert names == [
        "MULTI SETBIT SADD EXEC",
        "bitlens.mark_event",
        "BITOP SMEMBERS EVAL",
        "bitlens.count",
    ]


def test_the_guides_fastapi_app_nests_bitlens_spans_under_its_requests(
    tmp_path: Path, redis_url: str
) -> None:
    """The FastAPI example: bitlens spans in each request's trace, round trips under them."""
    out = _run_example(_guide_examples()[1], tmp_path, redis_url)
    decoder = json.JSONDecoder()
    spans: list[dict[str, Any]] = []
    metric_names: set[str] = set()
    at = 0
    while at < len(out):
        if out[at].isspace():
            at += 1
        elif out.startswith('{"buyers', at):  # the handler's replies
            at = out.index("\n", at)
        else:
            value, at = decoder.raw_decode(out, at)
            if "resource_metrics" in value:
                metric_names |= {
                    metric["name"]
                    for resource in value["resource_metrics"]
                    for scope in resource["scope_metrics"]
                    for metric in scope["metrics"]
                }
            else:
                spans.append(value)
    by_id = {span["context"]["span_id"]: span for span in spans}

    def root(span: dict[str, Any]) -> str:
        while span["parent_id"] is not None:
            span = by_id[span["parent_id"]]
        return str(span["name"])

    operations = [s for s in spans if str(s["name"]).startswith("bitlens.")]
    assert sorted(s["name"] for s in operations) == sorted(
        ["bitlens.count", "bitlens.mark_event"] * 2
    )
    assert {root(s).startswith("POST /buy/") for s in operations} == {True}
    for operation in operations:
        (trip,) = [s for s in spans if s["parent_id"] == operation["context"]["span_id"]]
        assert trip["kind"] == "SpanKind.CLIENT"
    assert out.count('{"buyers this month":') == 2
    assert {"bitlens.ingest.marks_written", "bitlens.ingest.batch.size"} <= metric_names


_GLOBAL_PROVIDERS = textwrap.dedent(
    """
    import asyncio, sys

    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from bitlens import Tracker

    url, prefix = sys.argv[1:]

    async def main():
        early = Tracker(url, prefix=prefix, telemetry=True)  # before any provider is set
        reader, exporter = InMemoryMetricReader(), InMemorySpanExporter()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        late = Tracker(url, prefix=prefix, telemetry=True)
        await early.mark_event("active", 1)
        await late.mark_event("active", 2)
        names = sorted(s.name for s in exporter.get_finished_spans() if "bitlens" in s.name)
        points = [
            (dict(p.attributes), p.value)
            for r in reader.get_metrics_data().resource_metrics
            for sm in r.scope_metrics
            for m in sm.metrics
            if m.name == "bitlens.ingest.marks_written"
            for p in m.data.data_points
        ]
        print(names, points)
        await early.aclose()
        await late.aclose()

    asyncio.run(main())
    """
)


def test_telemetry_true_follows_global_providers_set_after_the_tracker(
    redis_url: str, prefix: str
) -> None:
    """Trackers made before and after the global providers are set report into them, once."""
    src = Path(bitlens.otel.__file__).parent.parent.parent
    result = subprocess.run(
        [sys.executable, "-c", _GLOBAL_PROVIDERS, redis_url, prefix],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": _pythonpath(str(src))},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"['bitlens.mark_event', 'bitlens.mark_event'] [({{'bitlens.prefix': '{prefix}'}}, 2)]"
    )
    assert "already" not in result.stderr  # no duplicate-instrument warning
