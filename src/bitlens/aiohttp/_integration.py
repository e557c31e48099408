"""bitlens in an aiohttp application: cleanup context, middleware, routes, a dashboard server."""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from typing import TYPE_CHECKING

from aiohttp import web

from .._tracker import Tracker
from ..web import ENDPOINTS, JSON_HEADERS, RequestMarker, handle, page

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from aiohttp.typedefs import Handler, Middleware
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster
    from typing_extensions import Unpack

    from .._tracker import TrackerOptions

__all__ = [
    "TRACKER_KEY",
    "add_routes",
    "create_app",
    "install",
    "middleware",
    "serve_dashboard",
    "tracker_from",
]

logger = logging.getLogger("bitlens")

TRACKER_KEY: web.AppKey[Tracker] = web.AppKey("bitlens_tracker", Tracker)
"""The application key that holds the tracker (``app[TRACKER_KEY]``)."""

# The handlers of the dashboard's own routes, whose requests are never marked.
_DASHBOARD_HANDLERS: weakref.WeakSet[Handler] = weakref.WeakSet()


def install(
    app: web.Application,
    url_or_client: str | Redis | RedisCluster | Tracker,
    *,
    mark: RequestMarker[web.Request] | None = None,
    routes_prefix: str | None = "/bitlens",
    drain_timeout: float | None = 30.0,
    **options: Unpack[TrackerOptions],
) -> None:
    """Give an aiohttp app a tracker, and optionally request marking and the dashboard.

    Adds a cleanup context that opens a :class:`~bitlens.Tracker` at startup (stored in
    ``app[TRACKER_KEY]``, read with :func:`tracker_from`) and, at cleanup, drains its
    fire-and-forget queue (up to ``drain_timeout`` seconds) and closes it — unless a ready
    tracker was passed in: whoever made it closes it.

    Example::

        app = web.Application()
        install(
            app,
            "redis://localhost:6379/0",
            prefix="app",
            mark=RequestMarker(lambda request: request.get("user_id")),
        )  # the dashboard: /bitlens/

    :param app: the application (before it starts)
    :param url_or_client: a ``redis://`` URL, a ``redis.asyncio`` client or a ready tracker
    :param mark: marks an event per request (see :func:`middleware`); ``None``: no marking
    :param routes_prefix: where the dashboard page and its JSON API live (``None``: not
        served; ``""``: at the root)
    :param drain_timeout: seconds to wait for queued marks at cleanup (None: no limit)
    :param options: :class:`~bitlens.Tracker` keyword options (not with a ready tracker)
    :raises TypeError: if options are given together with a ready tracker
    """
    if isinstance(url_or_client, Tracker) and options:
        raise TypeError("options cannot be given together with a ready Tracker")

    async def tracker_context(app: web.Application) -> AsyncIterator[None]:
        if isinstance(url_or_client, Tracker):
            tracker, owned = url_or_client, False
        else:
            tracker, owned = Tracker(url_or_client, **options), True
        app[TRACKER_KEY] = tracker
        try:
            yield
        finally:
            if owned:
                await tracker.aclose(drain_timeout=drain_timeout)

    app.cleanup_ctx.append(tracker_context)
    if mark is not None:
        app.middlewares.append(middleware(mark))
    if routes_prefix is not None:
        add_routes(app, routes_prefix)


def tracker_from(request: web.Request) -> Tracker:
    """Return the tracker of the request's application (or of a parent application).

    :param request: the current request
    :raises RuntimeError: if no tracker was set up (see :func:`install`)
    """
    tracker = request.config_dict.get(TRACKER_KEY)
    if tracker is None:
        raise RuntimeError("no bitlens tracker: call bitlens.aiohttp.install(app, ...) first")
    return tracker


def middleware(marker: RequestMarker[web.Request]) -> Middleware:
    """Return an aiohttp middleware that marks an event per request with ``marker``.

    The mark is queued after the handler has answered (or raised, ``HTTPException``
    responses included), so ``marker``'s ``user_id`` may read what an authentication
    middleware or the handler put on the request (``request["user_id"] = ...``). Marks
    go through ``mark_event_nowait``: a request never waits on Redis and never fails
    because of it. Excluded paths and the dashboard's own routes are not marked.

    :param marker: decides who and what to mark, and counts
    """

    @web.middleware
    async def bitlens_marking(request: web.Request, handler: Handler) -> web.StreamResponse:
        if marker.excludes(request.path) or request.match_info.handler in _DASHBOARD_HANDLERS:
            marker.skip()
            return await handler(request)
        tracker = request.config_dict.get(TRACKER_KEY)
        try:
            response = await handler(request)
        except Exception:
            await marker.mark(tracker, request)
            raise
        await marker.mark(tracker, request)
        return response

    return bitlens_marking


def _json(status: int, body: object) -> web.Response:
    return web.Response(
        body=json.dumps(body, allow_nan=False, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=JSON_HEADERS,
    )


def add_routes(app: web.Application, prefix: str = "/bitlens") -> None:
    """Serve the dashboard page at ``<prefix>/`` and its JSON API under ``<prefix>/``.

    ``GET <prefix>/events``, ``/counts``, ``/contains``, ``/retention``, ``/engagement``,
    ``/lifecycle``, ``/stickiness`` and ``/funnel`` (see :mod:`bitlens.web`); bad
    parameters are answered 400 with ``{"error": message}``, an unreachable Redis 503.
    ``<prefix>`` itself redirects to ``<prefix>/`` (the page fetches the API relative to
    its own URL). These requests are never marked.

    :param app: the application, which must get a tracker from :func:`install`
    :param prefix: the mount point (``""``: at the root)
    :raises ValueError: if ``prefix`` is not empty and does not start with ``/``, or
        ends with one
    """
    if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
        raise ValueError(f"routes_prefix must be '' or like '/bitlens', got {prefix!r}")

    def endpoint(name: str) -> Handler:
        async def serve(request: web.Request) -> web.StreamResponse:
            query = {key: request.query.getall(key) for key in request.query}
            status, body = await handle(tracker_from(request), name, query)
            return _json(status, body)

        return serve

    async def dashboard(request: web.Request) -> web.StreamResponse:
        found = page()
        headers = {**found.headers, "Content-Type": found.content_type}
        return web.Response(body=found.body, headers=headers)

    async def add_slash(request: web.Request) -> web.StreamResponse:
        # Relative, so it stays right behind a proxy that mounts the app deeper.
        target = prefix.rsplit("/", 1)[-1] + "/"
        if request.query_string:
            target += "?" + request.query_string
        raise web.HTTPPermanentRedirect(target)

    routes: list[tuple[str, Handler, str | None]] = [
        (f"{prefix}/{name}", endpoint(name), f"bitlens_{name}") for name in ENDPOINTS
    ]
    routes.append((f"{prefix}/", dashboard, "bitlens_dashboard"))
    if prefix:
        routes.append((prefix, add_slash, None))
    for path, handler, name in routes:
        _DASHBOARD_HANDLERS.add(handler)
        app.router.add_get(path, handler, name=name)


def create_app(
    tracker: Tracker,
    *,
    routes_prefix: str = "",
    mark: RequestMarker[web.Request] | None = None,
) -> web.Application:
    """Return an aiohttp application serving the dashboard of ``tracker``.

    The app does not close the tracker: whoever made it does. ``bitlens serve`` runs this
    app (see :func:`serve_dashboard`).

    Example::

        async with Tracker(url) as tracker:
            app = create_app(tracker)  # the dashboard at /

    :param tracker: the tracker to show
    :param routes_prefix: where the page and its API live (default: the root)
    :param mark: marks an event per request; ``None``: no marking
    """
    app = web.Application()
    install(app, tracker, mark=mark, routes_prefix=routes_prefix)
    return app


async def serve_dashboard(
    tracker: Tracker,
    host: str = "127.0.0.1",
    port: int = 8040,
    *,
    on_ready: Callable[[str], object] | None = None,
) -> None:
    """Serve the dashboard of ``tracker`` over HTTP until cancelled.

    Listens on ``host:port`` (port 0: a free port), logs the URL on the ``bitlens``
    logger and passes it to ``on_ready``; on cancellation the server stops and the
    cancellation propagates. The tracker stays open.

    Example::

        async with Tracker(url) as tracker:
            await serve_dashboard(tracker, port=8040)  # open the page at that port, path /

    :param tracker: the tracker to show
    :param host: the address to listen on (default loopback only)
    :param port: the TCP port (0: any free one)
    :param on_ready: called with the page's URL once the server listens
    :raises OSError: if the address cannot be bound
    """
    runner = web.AppRunner(create_app(tracker), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in str(bound_host) else str(bound_host)
        url = f"http://{shown}:{bound_port}/"
        logger.info("bitlens dashboard serving on %s", url)
        if on_ready is not None:
            on_ready(url)
        await asyncio.Event().wait()  # until cancelled
    finally:
        await runner.cleanup()
