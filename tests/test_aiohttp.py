"""bitlens.aiohttp only: its redirect, ``create_app``, ``serve_dashboard``, set-up checks.

Every request is real HTTP over loopback to aiohttp's test server (or to
``serve_dashboard``), against the session's real redis-server. Marking, the JSON API and
the page are tested on both frameworks in ``test_web``.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import aiohttp
import anyio
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import bitlens.aiohttp
from _web_apps import aiohttp_app as make_app
from _web_data import readme_example
from bitlens import Tracker, UniqueEvents
from bitlens.aiohttp import create_app, serve_dashboard
from bitlens.web import MarkingStats, page

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


pytestmark = pytest.mark.anyio


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """Serve the app on a loopback port; its cleanup context runs on exit."""
    async with TestClient(TestServer(app, host="127.0.0.1")) as http:
        yield http


async def _members(url: str, prefix: str) -> set[int]:
    async with Tracker(url, prefix=prefix) as tracker:
        return {uid async for uid in tracker.members(UniqueEvents("request"))}


async def test_the_bare_prefix_redirect_is_not_marked(redis_url: str, prefix: str) -> None:
    """``/bitlens`` is the dashboard's own: neither its redirect nor the page is marked."""
    app, marker = make_app(redis_url, prefix)
    async with serving(app) as http:
        assert (await http.get("/bitlens", headers={"x-user": "12"})).status == 200
    assert marker.stats() == MarkingStats(skipped=2)
    assert await _members(redis_url, prefix) == set()


async def test_the_bare_prefix_redirects_keeping_the_query(redis_url: str, prefix: str) -> None:
    """``/bitlens?x`` redirects to ``bitlens/?x`` (relative), so the page's fetches resolve."""
    app, _ = make_app(redis_url, prefix)
    async with serving(app) as http:
        answer = await http.get("/bitlens?event=a&period=week", allow_redirects=False)
        assert answer.status == 308
        assert answer.headers["Location"] == "bitlens/?event=a&period=week"
        followed = await http.get("/bitlens?event=a")
        assert followed.status == 200
        assert str(followed.url).endswith("/bitlens/?event=a")
        assert await followed.read() == page().body
        assert (
            followed.headers["Content-Security-Policy"] == page().headers["Content-Security-Policy"]
        )


async def test_create_app_serves_a_ready_tracker_at_the_root(redis_url: str, prefix: str) -> None:
    """``create_app`` (what ``bitlens serve`` runs) serves at / and leaves the tracker open."""
    async with Tracker(redis_url, prefix=prefix) as tracker:
        await tracker.mark_event("signed_up", 7)
        async with serving(create_app(tracker)) as http:
            assert (await http.get("/")).status == 200
            body = await (await http.get("/events")).json()
            assert body == {"events": ["signed_up"], "truncated": False, "prefix": prefix}
        assert not tracker.closed


async def test_serve_dashboard_runs_until_cancelled(redis_url: str, prefix: str) -> None:
    """``serve_dashboard`` listens, reports its URL, answers, and stops when cancelled."""
    urls: list[str] = []
    ready = anyio.Event()

    def on_ready(url: str) -> None:
        urls.append(url)
        ready.set()

    async with Tracker(redis_url, prefix=prefix) as tracker:
        await tracker.mark_event("active", 1)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: serve_dashboard(tracker, port=0, on_ready=on_ready))
                await ready.wait()
                async with aiohttp.ClientSession() as session:
                    async with session.get(urls[0]) as answer:
                        assert answer.status == 200
                        assert "bitlens dashboard" in await answer.text()
                    async with session.get(urls[0] + "events") as answer:
                        body = await answer.json()
                        assert body == {"events": ["active"], "truncated": False, "prefix": prefix}
                tg.cancel_scope.cancel()
        assert urls[0].startswith("http://127.0.0.1:")
        assert not tracker.closed
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.get(urls[0])


async def test_the_readme_example_runs(
    redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The aiohttp app of docs/web-apps.md marks the users its middleware finds, and counts them."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(readme_example("aiohttp", prefix), "<web-apps.md>", "exec"), namespace)
    app = namespace["app"]
    assert isinstance(app, web.Application)
    async with serving(app) as http:
        for user in ("1", "2", "2"):
            http.session.cookie_jar.update_cookies({"uid": user})
            assert (await http.get("/users")).status == 200
        http.session.cookie_jar.clear()
        assert (await http.get("/users")).status == 200  # anonymous
        assert (await http.get("/bitlens/")).status == 200
    assert await _members(redis_url, prefix) == {1, 2}


def test_install_refuses_contradictions() -> None:
    """Options with a ready tracker, or a malformed routes prefix, fail at set-up."""
    tracker = Tracker("redis://127.0.0.1:1/0")
    with pytest.raises(TypeError, match="options"):
        bitlens.aiohttp.install(web.Application(), tracker, prefix="x")
    with pytest.raises(ValueError, match="routes_prefix"):
        bitlens.aiohttp.install(web.Application(), tracker, routes_prefix="/bitlens/")
    with pytest.raises(ValueError, match="routes_prefix"):
        bitlens.aiohttp.install(web.Application(), tracker, routes_prefix="bitlens")


def test_public_surface() -> None:
    """The public names of bitlens.aiohttp are pinned."""
    assert bitlens.aiohttp.__all__ == [
        "TRACKER_KEY",
        "MarkingStats",
        "RequestMarker",
        "add_routes",
        "create_app",
        "install",
        "middleware",
        "serve_dashboard",
        "tracker_from",
    ]
    assert bitlens.aiohttp.install.__module__ == "bitlens.aiohttp"
    assert bitlens.aiohttp.serve_dashboard.__module__ == "bitlens.aiohttp"
