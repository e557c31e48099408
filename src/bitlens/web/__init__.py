"""The framework-neutral web API behind ``bitlens.fastapi`` and ``bitlens.aiohttp``.

Three parts, none of which imports a web framework:

* the JSON API: :func:`list_events`, :func:`counts`, :func:`contains` and
  :func:`retention` take a :class:`~bitlens.Tracker` and validated values and return
  JSON-ready dicts; :func:`handle` parses a query string, calls one of them and maps
  usage errors to 400 (with the message) and an unreachable Redis to 503;
* :class:`RequestMarker`: marks an event per request for the user a callable names, with
  ``mark_event_nowait``, never failing or slowing the request;
* :func:`page`: the dashboard, one self-contained HTML page (inline CSS and JavaScript, no external
  resource) that picks events, a period and a range, draws the counts over time as SVG
  and the retention heatmap as a table, and fetches the API relative to its own URL.

A framework integration mounts the page at ``<mount>/`` and the API at
``<mount>/<endpoint>``::

    status, body = await handle(tracker, "counts", {"event": ["active"], "period": ["week"]})
"""

from ._api import (
    ENDPOINTS,
    MAX_BUCKETS,
    MAX_COHORTS,
    MAX_EVENTS,
    MAX_POINTS,
    ContainsReply,
    CountsReply,
    EventsReply,
    Reply,
    RetentionReply,
    SeriesDict,
    contains,
    counts,
    handle,
    list_events,
    retention,
)
from ._marking import SKIP_MARK, MarkingStats, RequestMarker, UserIdGetter
from ._page import JSON_HEADERS, Page, page
from ._params import InvalidParameter, Query
from ._reports import (
    MAX_FUNNEL_STEPS,
    MAX_SEGMENTS,
    EngagementReply,
    EngagementSeries,
    FunnelEntry,
    FunnelReply,
    FunnelSeries,
    LifecycleReply,
    LifecycleSeries,
    StickinessReply,
    StickinessSeries,
    engagement_reply,
    funnel_reply,
    lifecycle_reply,
    stickiness_reply,
)

__all__ = [
    "ENDPOINTS",
    "JSON_HEADERS",
    "MAX_BUCKETS",
    "MAX_COHORTS",
    "MAX_EVENTS",
    "MAX_FUNNEL_STEPS",
    "MAX_POINTS",
    "MAX_SEGMENTS",
    "SKIP_MARK",
    "ContainsReply",
    "CountsReply",
    "EngagementReply",
    "EngagementSeries",
    "EventsReply",
    "FunnelEntry",
    "FunnelReply",
    "FunnelSeries",
    "InvalidParameter",
    "LifecycleReply",
    "LifecycleSeries",
    "MarkingStats",
    "Page",
    "Query",
    "Reply",
    "RequestMarker",
    "RetentionReply",
    "SeriesDict",
    "StickinessReply",
    "StickinessSeries",
    "UserIdGetter",
    "contains",
    "counts",
    "engagement_reply",
    "funnel_reply",
    "handle",
    "lifecycle_reply",
    "list_events",
    "page",
    "retention",
    "stickiness_reply",
]


# Show users bitlens.web.RequestMarker, not bitlens.web._marking.RequestMarker.
def _rehome() -> None:
    from contextlib import suppress

    for name in __all__:
        obj = globals()[name]
        # InvalidParameter lives in bitlens._exceptions with every other error.
        if getattr(obj, "__module__", "").startswith(("bitlens.web._", "bitlens._exceptions")):
            with suppress(AttributeError, TypeError):  # e.g. type aliases
                obj.__module__ = "bitlens.web"


_rehome()
del _rehome
