"""OpenTelemetry for bitlens: a span per operation, a span per round trip, ingestion metrics.

Needs ``pip install 'bitlens[otel]'`` (``opentelemetry-api``); ``import bitlens`` never
imports OpenTelemetry, and a tracker made without ``telemetry`` costs nothing more.

Example::

    from bitlens import Tracker
    from bitlens.otel import Telemetry

    # the global tracer and meter providers (set by your OpenTelemetry setup):
    tracker = Tracker("redis://localhost:6379/0", telemetry=True)
    # or providers of your own:
    tracker = Tracker(url, telemetry=Telemetry(tracer_provider=tp, meter_provider=mp))

What is exported (see the observability guide for every attribute):

* a span per tracker operation (``bitlens.mark_event``, ``bitlens.count``,
  ``bitlens.retention``, …) with the events asked about, the shards covered, and the
  round trips and commands it sent; an operation's error is recorded on its span;
* a child span per round trip to Redis (``db.system.name = "redis"``), because bitlens
  sends packed commands on redis-py's pooled connections, below the calls that
  ``opentelemetry-instrumentation-redis`` wraps: that instrumentation sees none of them;
* a ``bitlens.flush`` span per batch of marks sent by a batch, coalescing,
  ``mark_events`` or the fire-and-forget queue;
* observable counters of :meth:`bitlens.Tracker.stats` (``bitlens.ingest.<field>``),
  histograms of flushed batch sizes and flush latency.
"""

try:
    import opentelemetry.metrics
    import opentelemetry.trace  # noqa: F401
except ImportError as _missing:  # pragma: no cover - exercised in a subprocess test
    raise ImportError("bitlens.otel needs OpenTelemetry: pip install 'bitlens[otel]'") from _missing

from ._telemetry import Telemetry

__all__ = ["Telemetry"]

Telemetry.__module__ = "bitlens.otel"
