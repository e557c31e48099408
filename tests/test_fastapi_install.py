"""bitlens.fastapi.install: the one call that gives a FastAPI app a tracker, as aiohttp's does.

The app's lifespan is run by hand (``app.router.lifespan_context``) and requests go through
httpx's ASGI transport, against the session's real redis-server.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI

import bitlens.fastapi
from bitlens import Tracker, UniqueEvents
from bitlens.fastapi import install, tracker_from

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.anyio

BASE = "http://127.0.0.1"


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and yield an HTTP client of it; the lifespan ends on exit."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=BASE) as http,
    ):
        yield http


async def test_the_apps_own_lifespan_runs_inside_the_trackers(redis_url: str, prefix: str) -> None:
    """The app's lifespan sees the tracker open at startup and at shutdown; then it is closed."""
    seen: list[bool] = []

    @asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[None]:
        tracker = getattr(app.state, bitlens.fastapi.STATE_KEY)
        assert isinstance(tracker, Tracker)
        await tracker.mark_unique("started", 7)
        seen.append(tracker.closed)
        yield
        seen.append(tracker.closed)

    app = FastAPI(lifespan=own)
    install(app, redis_url, prefix=prefix, track_unique=True)

    @app.get("/started")
    async def started(tracker: Annotated[Tracker, Depends(tracker_from)]) -> int:
        return await tracker.count(UniqueEvents("started"))

    async with serving(app) as http:
        assert (await http.get("/started")).json() == 1
        tracker = getattr(app.state, bitlens.fastapi.STATE_KEY)
    assert seen == [False, False]
    assert tracker.closed


async def test_routes_prefix_places_or_omits_the_dashboard(redis_url: str, prefix: str) -> None:
    """routes_prefix="" serves the page and API at the root; None serves neither."""
    at_root, bare = FastAPI(), FastAPI()
    install(at_root, redis_url, prefix=prefix, routes_prefix="")
    install(bare, redis_url, prefix=prefix, routes_prefix=None)
    async with serving(at_root) as http:
        assert (await http.get("/")).status_code == 200
        assert (await http.get("/events")).json()["events"] == []
    async with serving(bare) as http:
        assert [(await http.get(p)).status_code for p in ("/", "/bitlens/")] == [404, 404]


async def test_a_ready_tracker_is_left_open(redis_url: str, prefix: str) -> None:
    """install() with a ready tracker hands it to handlers and does not close it."""
    async with Tracker(redis_url, prefix=prefix) as tracker:
        app = FastAPI()
        install(app, tracker)
        async with serving(app) as http:
            assert (await http.get("/bitlens/events")).status_code == 200
            assert getattr(app.state, bitlens.fastapi.STATE_KEY) is tracker
        assert not tracker.closed


def test_install_refuses_contradictions() -> None:
    """Options with a ready tracker, or a malformed routes prefix, fail at install time."""
    tracker = Tracker("redis://127.0.0.1:1/0")
    with pytest.raises(TypeError, match="options"):
        install(FastAPI(), tracker, prefix="x")
    with pytest.raises(ValueError, match="routes_prefix"):
        install(FastAPI(), tracker, routes_prefix="/bitlens/")
    with pytest.raises(ValueError, match="routes_prefix"):
        install(FastAPI(), tracker, routes_prefix="bitlens")
