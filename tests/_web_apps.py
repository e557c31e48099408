"""The same small web app in FastAPI and in aiohttp, and one HTTP adapter for both.

Each app has marked routes (``/hello``, ``/healthz``, ``/login/{id}`` whose handler names the
user, ``/fail``), excluded health checks (``/health``, ``/health/live``), ``/signups``, a
cookie authentication stand-in (cookie ``uid``) and the bitlens routes under ``/bitlens``.
:class:`WebFramework` builds and serves either; :class:`Http` sends requests and returns an
:class:`Answer`, so one test reads the same on both frameworks.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Protocol, TypeAlias, TypedDict, cast

import httpx
import redis.asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from fastapi import Depends, FastAPI, Request
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

import bitlens.aiohttp
import bitlens.fastapi
from bitlens import Tracker, UniqueEvents

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence
    from contextlib import AbstractAsyncContextManager

    from aiohttp.typedefs import Handler
    from starlette.responses import Response

    from bitlens.web import RequestMarker

    Params: TypeAlias = Mapping[str, str | int] | Sequence[tuple[str, str]] | None
    """Query parameters: a mapping, or pairs (a name may repeat)."""

__all__ = [
    "BASE",
    "FRAMEWORKS",
    "Answer",
    "Http",
    "WebFramework",
    "aiohttp_app",
    "fastapi_app",
    "fastapi_user_of",
    "serve_fastapi",
]

BASE = "http://127.0.0.1"
"""The base URL of the FastAPI app behind httpx's ASGI transport."""

Source = str | redis.asyncio.Redis | Tracker
"""What the app's bitlens set-up opens: a URL, a client, or a ready tracker."""


# -- FastAPI ------------------------------------------------------------------------------------


def fastapi_user_of(request: Request) -> int | None:
    """The user of a request: header ``x-user`` (parsed here, so junk raises) or state."""
    header = request.headers.get("x-user")
    if header is not None:
        return int(header)
    user: int | None = getattr(request.state, "user_id", None)
    return user


class _CookieAuth(BaseHTTPMiddleware):
    """A stand-in authentication middleware: the user id travels in cookie ``uid``."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        """Store the cookie's user id in the request state, then call the app.

        :param request: the request
        :param call_next: the rest of the app
        """
        if "uid" in request.cookies:
            request.state.user_id = int(request.cookies["uid"])
        return await call_next(request)


class _Options(TypedDict, total=False):
    """The tracker options both apps' set-up passes beside the source."""

    prefix: str
    track_unique: bool


def _options(prefix: str | None) -> _Options:
    """No options with a ready tracker (``prefix`` None); else the prefix and unique marks.

    :param prefix: the tracker's key prefix (``None`` with a ready tracker)
    """
    return {} if prefix is None else {"prefix": prefix, "track_unique": True}


def fastapi_app(
    source: Source, prefix: str | None, *, drain_timeout: float = 10.0
) -> tuple[FastAPI, RequestMarker[Request]]:
    """The FastAPI app: marked routes, excluded health checks, cookie auth, the bitlens router.

    :param source: what ``bitlens_lifespan`` opens
    :param prefix: the tracker's key prefix (``None`` with a ready tracker)
    :param drain_timeout: seconds the lifespan waits for queued marks at shutdown
    """
    lifespan = bitlens.fastapi.bitlens_lifespan(
        source, drain_timeout=drain_timeout, **_options(prefix)
    )
    app = FastAPI(lifespan=lifespan)
    marker = bitlens.fastapi.mark_requests(
        app, fastapi_user_of, event="request", exclude=("/health",)
    )
    app.add_middleware(_CookieAuth)
    app.include_router(bitlens.fastapi.router(), prefix="/bitlens")

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/health")
    async def health() -> str:
        return "ok"

    @app.get("/health/live")
    async def live() -> str:
        return "ok"

    @app.get("/healthz")
    async def healthz() -> str:
        return "ok"

    @app.get("/login/{user_id}")
    async def login(user_id: int, request: Request) -> int:
        request.state.user_id = user_id  # as an authentication dependency would
        return user_id

    @app.get("/fail")
    async def fail() -> None:
        raise RuntimeError("handler failed")

    @app.get("/signups")
    async def signups(
        tracker: Annotated[Tracker, Depends(bitlens.fastapi.tracker_from)],
    ) -> int:
        return await tracker.count(UniqueEvents("request"))

    return app, marker


@asynccontextmanager
async def serve_fastapi(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and yield an HTTP client of it; the lifespan ends on exit.

    :param app: the app
    """
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=BASE) as http,
    ):
        yield http


# -- aiohttp ------------------------------------------------------------------------------------

USER_KEY = web.RequestKey("user_id", int)
"""Where the aiohttp app's authentication stores the user id."""


def aiohttp_user_of(request: web.Request) -> int | None:
    """The user: header ``x-user`` (parsed here, so junk raises), else what auth stored."""
    header = request.headers.get("x-user")
    if header is not None:
        return int(header)
    return request.get(USER_KEY)


@web.middleware
async def _cookie_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A stand-in authentication middleware: the user id travels in cookie ``uid``."""
    if "uid" in request.cookies:
        request[USER_KEY] = int(request.cookies["uid"])
    return await handler(request)


async def _hello(request: web.Request) -> web.Response:
    return web.json_response({"hello": "world"})


async def _login(request: web.Request) -> web.Response:
    user_id = int(request.match_info["user_id"])
    request[USER_KEY] = user_id  # as an authentication handler would
    return web.json_response(user_id)


async def _fail(request: web.Request) -> web.Response:
    raise RuntimeError("handler failed")


async def _signups(request: web.Request) -> web.Response:
    tracker = bitlens.aiohttp.tracker_from(request)
    return web.json_response(await tracker.count(UniqueEvents("request")))


def aiohttp_app(
    source: Source, prefix: str | None, *, drain_timeout: float = 10.0
) -> tuple[web.Application, RequestMarker[web.Request]]:
    """The aiohttp app: cookie auth, marked routes, excluded health checks, the dashboard.

    :param source: what ``setup`` opens
    :param prefix: the tracker's key prefix (``None`` with a ready tracker)
    :param drain_timeout: seconds the cleanup waits for queued marks
    """
    app = web.Application(middlewares=[_cookie_auth])
    for path in ("/hello", "/health", "/health/live", "/healthz"):
        app.router.add_get(path, _hello)
    app.router.add_get("/login/{user_id}", _login)
    app.router.add_get("/fail", _fail)
    app.router.add_get("/signups", _signups)
    marker = bitlens.aiohttp.RequestMarker(aiohttp_user_of, event="request", exclude=["/health"])
    bitlens.aiohttp.install(
        app, source, mark=marker, drain_timeout=drain_timeout, **_options(prefix)
    )
    return app, marker


# -- one adapter for both ---------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, the same whichever framework gave it.

    :param status: the status code
    :param headers: the headers, names in lower case
    :param body: the body
    :param url: the URL that answered (after redirects)
    """

    status: int
    headers: dict[str, str]
    body: bytes
    url: str

    def json(self) -> object:
        """Decode the body as JSON."""
        return json.loads(self.body)

    def object(self) -> dict[str, object]:
        """Decode the body as a JSON object.

        :raises AssertionError: if it is not one
        """
        decoded = self.json()
        assert isinstance(decoded, dict)
        return cast("dict[str, object]", decoded)


class Http(Protocol):
    """Sends GET requests to a served app."""

    async def get(
        self,
        path: str,
        *,
        params: Params = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        follow: bool = True,
    ) -> Answer:
        """Send one GET and return its answer.

        :param path: the path, with a query string if any
        :param params: query parameters
        :param headers: request headers
        :param cookies: cookies of this request only
        :param follow: whether to follow redirects
        """
        ...


class _Httpx:
    """:class:`Http` over an httpx client of the FastAPI app."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def get(
        self,
        path: str,
        *,
        params: Params = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        follow: bool = True,
    ) -> Answer:
        """Send one GET through httpx (cookies as a header, so none is kept).

        :param path: the path, with a query string if any
        :param params: query parameters
        :param headers: request headers
        :param cookies: cookies of this request only
        :param follow: whether to follow redirects
        """
        sent = dict(headers or {})
        if cookies:
            sent["cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        answer = await self._http.get(
            path,
            params=cast("httpx.QueryParams", params),
            headers=sent,
            follow_redirects=follow,
        )
        return Answer(
            answer.status_code,
            {name.lower(): value for name, value in answer.headers.items()},
            answer.content,
            str(answer.url),
        )


class _Aiohttp:
    """:class:`Http` over aiohttp's test client."""

    def __init__(self, http: TestClient[web.Request, web.Application]) -> None:
        self._http = http

    async def get(
        self,
        path: str,
        *,
        params: Params = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        follow: bool = True,
    ) -> Answer:
        """Send one GET over a real socket.

        :param path: the path, with a query string if any
        :param params: query parameters
        :param headers: request headers
        :param cookies: cookies of this request only
        :param follow: whether to follow redirects
        """
        async with self._http.get(
            path,
            params=params,
            headers=headers,
            cookies=cookies,
            allow_redirects=follow,
        ) as answer:
            body = await answer.read()
            return Answer(
                answer.status,
                {name.lower(): value for name, value in answer.headers.items()},
                body,
                str(answer.url),
            )


class WebFramework(Protocol):
    """Builds the test app in one framework and serves it."""

    name: str

    def app(self, source: Source, prefix: str | None, *, drain_timeout: float = 10.0) -> object:
        """Build the app; :meth:`marker` gives its request marker.

        :param source: what the bitlens set-up opens
        :param prefix: the tracker's key prefix (``None`` with a ready tracker)
        :param drain_timeout: seconds the shutdown waits for queued marks
        """
        ...

    def marker(self, app: object) -> RequestMarker[object]:
        """Return the request marker of an app :meth:`app` built.

        :param app: the app
        """
        ...

    def serving(self, app: object) -> AbstractAsyncContextManager[Http]:
        """Serve the app (its start-up and shutdown run); yield an :class:`Http` of it.

        :param app: the app
        """
        ...

    def tracker(self, app: object) -> Tracker:
        """Return the tracker the running app's set-up stored.

        :param app: the app, while served
        """
        ...


class _Framework:
    """What both :class:`WebFramework` classes share: building an app, keeping its marker."""

    def __init__(self) -> None:
        self._markers: dict[int, RequestMarker[object]] = {}

    def _build(
        self, source: Source, prefix: str | None, drain_timeout: float
    ) -> tuple[object, object]:
        """Return the framework's app and its request marker."""
        raise NotImplementedError

    def app(self, source: Source, prefix: str | None, *, drain_timeout: float = 10.0) -> object:
        """Build the framework's app (:func:`fastapi_app` or :func:`aiohttp_app`).

        :param source: what the app's set-up opens
        :param prefix: the tracker's key prefix (``None`` with a ready tracker)
        :param drain_timeout: seconds the shutdown waits for queued marks
        """
        app, marker = self._build(source, prefix, drain_timeout)
        self._markers[id(app)] = cast("RequestMarker[object]", marker)
        return app

    def marker(self, app: object) -> RequestMarker[object]:
        """Return the app's request marker.

        :param app: the app
        """
        return self._markers[id(app)]


class _FastAPIFramework(_Framework):
    """:class:`WebFramework` for FastAPI: httpx's ASGI transport, the lifespan run by hand."""

    name = "fastapi"

    def _build(
        self, source: Source, prefix: str | None, drain_timeout: float
    ) -> tuple[object, object]:
        return fastapi_app(source, prefix, drain_timeout=drain_timeout)

    @asynccontextmanager
    async def serving(self, app: object) -> AsyncIterator[Http]:
        """Run the lifespan and yield an :class:`Http` of the app.

        :param app: the app
        """
        assert isinstance(app, FastAPI)
        async with serve_fastapi(app) as http:
            yield _Httpx(http)

    def tracker(self, app: object) -> Tracker:
        """Return the tracker the running lifespan stored in ``app.state``.

        :param app: the app
        """
        assert isinstance(app, FastAPI)
        tracker = getattr(app.state, bitlens.fastapi.STATE_KEY)
        assert isinstance(tracker, Tracker)
        return tracker


class _AiohttpFramework(_Framework):
    """:class:`WebFramework` for aiohttp: its test server on a loopback port."""

    name = "aiohttp"

    def _build(
        self, source: Source, prefix: str | None, drain_timeout: float
    ) -> tuple[object, object]:
        return aiohttp_app(source, prefix, drain_timeout=drain_timeout)

    @asynccontextmanager
    async def serving(self, app: object) -> AsyncIterator[Http]:
        """Serve the app on a loopback port; its cleanup context runs on exit.

        :param app: the app
        """
        assert isinstance(app, web.Application)
        async with TestClient(TestServer(app, host="127.0.0.1")) as http:
            yield _Aiohttp(http)

    def tracker(self, app: object) -> Tracker:
        """Return the tracker the cleanup context stored in the app.

        :param app: the app
        """
        assert isinstance(app, web.Application)
        return app[bitlens.aiohttp.TRACKER_KEY]


FRAMEWORKS: dict[str, type[_FastAPIFramework] | type[_AiohttpFramework]] = {
    "fastapi": _FastAPIFramework,
    "aiohttp": _AiohttpFramework,
}
"""Every framework the web suite runs on, by name."""
