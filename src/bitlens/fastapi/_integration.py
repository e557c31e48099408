"""bitlens in a FastAPI (or Starlette) app: install, lifespan, dependency, middleware, router."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response

from .._tracker import Tracker
from ..web import JSON_HEADERS, SKIP_MARK, RequestMarker, handle, page

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable
    from contextlib import AbstractAsyncContextManager

    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster
    from starlette.applications import Starlette
    from starlette.types import ASGIApp, Message, Receive, Scope, Send
    from typing_extensions import Unpack

    from .._tracker import TrackerOptions
    from ..web import UserIdGetter

__all__ = [
    "STATE_KEY",
    "BitlensMiddleware",
    "bitlens_lifespan",
    "install",
    "mark_requests",
    "router",
    "tracker_from",
]

STATE_KEY = "bitlens_tracker"
"""The attribute of ``app.state`` that holds the tracker while the app runs."""


def bitlens_lifespan(
    url_or_client: str | Redis | RedisCluster | Tracker,
    *,
    drain_timeout: float | None = 30.0,
    **options: Unpack[TrackerOptions],
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """Return a lifespan that opens a :class:`~bitlens.Tracker` and closes it at shutdown.

    The tracker lives in ``app.state.bitlens_tracker`` while the app runs; handlers get it
    with :func:`tracker_from`. At shutdown the fire-and-forget queue is drained (up to
    ``drain_timeout`` seconds) and the tracker closed, unless a ready tracker was passed
    in: whoever made it closes it. To combine with a lifespan of your own, enter this one
    inside it: ``async with bitlens_lifespan(url)(app): yield``.

    Example::

        app = FastAPI(lifespan=bitlens_lifespan("redis://localhost:6379/0", prefix="app"))

    :param url_or_client: a ``redis://`` URL, a ``redis.asyncio`` client or a ready tracker
    :param drain_timeout: seconds to wait for queued marks at shutdown (None: no limit)
    :param options: :class:`~bitlens.Tracker` keyword options (not with a ready tracker)
    :raises TypeError: if options are given together with a ready tracker
    """
    if isinstance(url_or_client, Tracker) and options:
        raise TypeError("options cannot be given together with a ready Tracker")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if isinstance(url_or_client, Tracker):
            tracker, owned = url_or_client, False
        else:
            tracker, owned = Tracker(url_or_client, **options), True
        setattr(app.state, STATE_KEY, tracker)
        try:
            yield
        finally:
            delattr(app.state, STATE_KEY)
            if owned:
                await tracker.aclose(drain_timeout=drain_timeout)

    return lifespan


def install(
    app: FastAPI,
    url_or_client: str | Redis | RedisCluster | Tracker,
    *,
    mark: RequestMarker[Request] | None = None,
    routes_prefix: str | None = "/bitlens",
    drain_timeout: float | None = 30.0,
    **options: Unpack[TrackerOptions],
) -> None:
    """Give a FastAPI app a tracker, and optionally request marking and the dashboard.

    Wraps the app's lifespan (the one it was made with, if any) in
    :func:`bitlens_lifespan`: the tracker is open before that lifespan starts and closed
    after it ends, so its startup and shutdown code may use it too. Handlers get the
    tracker with :func:`tracker_from`. The same call as ``bitlens.aiohttp.install``.

    Example::

        app = FastAPI()
        install(
            app,
            "redis://localhost:6379/0",
            prefix="app",
            mark=RequestMarker(lambda request: getattr(request.state, "user_id", None)),
        )  # the dashboard: /bitlens/

    :param app: the application (before it starts)
    :param url_or_client: a ``redis://`` URL, a ``redis.asyncio`` client or a ready tracker
    :param mark: marks an event per request (see :class:`BitlensMiddleware`); ``None``:
        no marking
    :param routes_prefix: where the dashboard page and its JSON API live (``None``: not
        served; ``""``: at the root)
    :param drain_timeout: seconds to wait for queued marks at shutdown (None: no limit)
    :param options: :class:`~bitlens.Tracker` keyword options (not with a ready tracker)
    :raises TypeError: if options are given together with a ready tracker
    :raises ValueError: if ``routes_prefix`` is not empty and does not start with ``/``,
        or ends with one
    """
    if routes_prefix and (not routes_prefix.startswith("/") or routes_prefix.endswith("/")):
        raise ValueError(f"routes_prefix must be '' or like '/bitlens', got {routes_prefix!r}")
    opened = bitlens_lifespan(url_or_client, drain_timeout=drain_timeout, **options)
    inner = app.router.lifespan_context

    # Any: the state is the inner lifespan's (None, or a mapping), passed on as it is.
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Any]:
        async with opened(app), inner(app) as state:
            yield state

    app.router.lifespan_context = lifespan
    if mark is not None:
        app.add_middleware(BitlensMiddleware, marker=mark)
    if routes_prefix is not None:
        app.include_router(router(), prefix=routes_prefix)


def _tracker_of(app: object) -> Tracker | None:
    state = getattr(app, "state", None)
    tracker = getattr(state, STATE_KEY, None)
    return tracker if isinstance(tracker, Tracker) else None


def tracker_from(request: Request) -> Tracker:
    """Return the application's tracker: a FastAPI dependency.

    Example::

        @app.get("/stats")
        async def stats(tracker: Annotated[Tracker, Depends(tracker_from)]) -> int:
            return await tracker.count(MonthEvents.from_date("request"))

    :param request: the current request
    :raises RuntimeError: if the app got no tracker from :func:`install` or
        ``lifespan=bitlens_lifespan(...)`` (or its lifespan has not run)
    """
    tracker = _tracker_of(request.app)
    if tracker is None:
        raise RuntimeError(
            "no bitlens tracker in app.state: call bitlens.fastapi.install(app, ...) or make "
            "the app with FastAPI(lifespan=bitlens_lifespan(...)), and run its lifespan"
        )
    return tracker


class BitlensMiddleware:
    """A pure ASGI middleware that marks an event per HTTP request (see :func:`mark_requests`).

    The request is handed on untouched and its response streamed as is; once the app has
    answered (or raised), :meth:`RequestMarker.mark` queues the mark without waiting on
    Redis and without ever raising. Requests on excluded paths and those served by
    :func:`router` are not marked. WebSocket and lifespan messages pass through.

    :param app: the ASGI app to wrap
    :param marker: decides who and what to mark, and counts
    """

    def __init__(self, app: ASGIApp, *, marker: RequestMarker[Request]) -> None:
        self.app = app
        self.marker = marker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.marker.excludes(scope["path"]):
            self.marker.skip()
            await self.app(scope, receive, send)
            return
        app = scope.get("app")  # now: a mounted sub-application would replace it
        status: list[int] = []

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            await self._mark(scope, app, status)
            raise
        await self._mark(scope, app, status)

    async def _mark(self, scope: Scope, app: object, status: list[int]) -> None:
        # The router's own redirect of a path to its twin with(out) a slash (``/bitlens``
        # to the page at ``/bitlens/``) ran no endpoint: the redirected request is marked.
        redirected = status[:1] in ([307], [308]) and scope.get("endpoint") is None
        if scope.get(SKIP_MARK) or redirected:
            self.marker.skip()
            return
        # No receive channel: the body belongs to the app, which has read it already.
        await self.marker.mark(_tracker_of(app), Request(scope))


def mark_requests(
    app: Starlette,
    user_id: UserIdGetter[Request],
    *,
    event: str | Callable[[Request], str | None] = "request",
    exclude: Iterable[str] = (),
) -> RequestMarker[Request]:
    """Mark ``event`` for the user of every HTTP request; return the marker (for its stats).

    ``user_id`` runs after the handler, so it may read what authentication or the handler
    put on ``request.state``. Marks go through ``mark_event_nowait``: a request never
    waits on Redis, and never fails because of Redis or a bad id (those are logged and
    counted in ``marker.stats()``).

    Example::

        app = FastAPI(lifespan=bitlens_lifespan(url))
        marker = mark_requests(app, lambda request: getattr(request.state, "user_id", None))

    :param app: the FastAPI or Starlette app (before it starts)
    :param user_id: returns the request's user id, or ``None`` to leave it unmarked
    :param event: the event name, or a function of the request returning one (or None)
    :param exclude: path prefixes never marked, e.g. ``("/health", "/static")``
    :raises InvalidEventName: if ``event`` is a name bitlens would refuse
    """
    marker = RequestMarker(user_id, event=event, exclude=exclude)
    app.add_middleware(BitlensMiddleware, marker=marker)
    return marker


def _json(status: int, body: object) -> Response:
    return Response(
        json.dumps(body, allow_nan=False, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers=dict(JSON_HEADERS),
    )


_SUMMARIES = {
    "events": "Event names found under the tracker's prefix",
    "counts": "Unique users per period for each event",
    "contains": "Whether a user did an event in a period",
    "retention": "A retention table",
    "engagement": "Rolling DAU, WAU and MAU and their ratios per point",
    "lifecycle": "New, returning, resurrecting and dormant users per period",
    "stickiness": "Users active in exactly k of the periods",
    "funnel": "Users at each step of a funnel and the conversions",
}
_PERIOD = ("period", "string", False, "day, week (ISO) or month; default day")
_EVENT = ("event", "string", True, "the event name")
_EVERY = ("every", "string", False, "day (default), week (ISO) or month")
_RANGE = [
    ("start", "string", False, "a date in the first period, e.g. 2026-11-01"),
    ("end", "string", False, "a date in the last period (default today)"),
]
_SEGMENT = ("segment", "array", False, "a unique event whose users form a segment; repeatable")
# (name, type, required, description) of each endpoint's query parameters, for OpenAPI.
_PARAMETERS: dict[str, list[tuple[str, str, bool, str]]] = {
    "events": [("limit", "integer", False, "the most names returned (default 1000)")],
    "counts": [
        ("event", "array", True, "an event name; repeat for several (at most 20)"),
        _PERIOD,
        ("start", "string", False, "a date in the first period, e.g. 2026-11-01"),
        ("end", "string", False, "a date in the last period (default today)"),
    ],
    "contains": [
        ("event", "string", True, "the event name"),
        ("user_id", "integer", True, "the user id"),
        _PERIOD,
        ("at", "string", False, "a date in the period (default today)"),
    ],
    "retention": [
        ("start", "string", True, "the event that puts a user in a cohort"),
        ("returning", "string", False, "the event that counts as coming back (default start)"),
        _PERIOD,
        ("cohorts", "integer", False, "how many cohort rows (default 31, at most 120)"),
        ("buckets", "integer", False, "how many bucket columns (default 13, at most 120)"),
        ("end", "string", False, "a date in the last cohort's period (default today)"),
        ("criterion", "string", False, "on (default) or on_or_after"),
        ("mode", "string", False, "recurring (default) or first_time"),
        ("history_start", "string", False, "for first_time: the date the data begins"),
    ],
    "engagement": [_EVENT, _EVERY, *_RANGE, _SEGMENT],
    "lifecycle": [
        _EVENT,
        ("every", "string", False, "week (ISO, default), day or month"),
        *_RANGE,
        ("first", "string", False, "a sign-up event, or the date the data begins (default start)"),
        _SEGMENT,
    ],
    "stickiness": [_EVENT, _EVERY, *_RANGE, _SEGMENT],
    "funnel": [
        ("step", "array", True, "a step event, in order; repeat for each (2 to 10)"),
        _EVERY,
        *_RANGE,
        ("within", "string", False, "a conversion window per entry period, e.g. 7d, 2w, 1m"),
        ("ordered", "string", False, "period (default: each step at or after the last) or any"),
        _SEGMENT,
    ],
}


def _parameter(name: str, kind: str, required: bool, description: str) -> dict[str, object]:
    schema: dict[str, object] = {"type": kind}
    if kind == "array":
        schema["items"] = {"type": "string"}
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


def router(
    *,
    tracker: Callable[..., Tracker] = tracker_from,
    include_page: bool = True,
) -> APIRouter:
    """Return an ``APIRouter`` with the dashboard page at ``/`` and its JSON API.

    Endpoints (see :mod:`bitlens.web`): ``GET /events``, ``/counts``,
    ``/contains``, ``/retention``, ``/engagement``, ``/lifecycle``, ``/stickiness``
    and ``/funnel``; bad parameters are answered 400 with
    ``{"error": message}``, an unreachable Redis 503. Requests it serves are never marked.

    Example::

        app.include_router(router(), prefix="/bitlens")  # the page is /bitlens/

    :param tracker: the dependency that provides the tracker (default :func:`tracker_from`)
    :param include_page: also serve the HTML page at ``/``
    """
    api = APIRouter(tags=["bitlens"])
    provide = Annotated[Tracker, Depends(tracker)]

    def endpoint(name: str, summary: str) -> None:
        async def serve(request: Request, tracker: Tracker) -> Response:
            request.scope[SKIP_MARK] = True
            query: dict[str, list[str]] = {}
            for key, value in request.query_params.multi_items():
                query.setdefault(key, []).append(value)
            status, body = await handle(tracker, name, query)
            return _json(status, body)

        serve.__name__ = f"bitlens_{name}"
        # FastAPI reads the dependency from the annotations, which must be objects here:
        # a string would be resolved in this module's globals, where `provide` is not.
        serve.__annotations__ = {"request": Request, "tracker": provide, "return": Response}
        api.add_api_route(
            f"/{name}",
            serve,
            methods=["GET"],
            summary=summary,
            name=f"bitlens_{name}",
            openapi_extra={"parameters": [_parameter(*p) for p in _PARAMETERS[name]]},
        )

    for name, summary in _SUMMARIES.items():
        endpoint(name, summary)

    if include_page:

        async def dashboard(request: Request) -> Response:
            request.scope[SKIP_MARK] = True
            found = page()
            return Response(found.body, media_type=found.content_type, headers=dict(found.headers))

        api.add_api_route(
            "/", dashboard, methods=["GET"], include_in_schema=False, name="bitlens_dashboard"
        )
    return api
