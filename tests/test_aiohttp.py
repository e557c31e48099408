"""bitlens.aiohttp: cleanup context, marking middleware, routes and the dashboard server.

Every request is real HTTP over loopback to aiohttp's test server (or to
``serve_dashboard``), against the session's real redis-server.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import aiohttp
import anyio
import pytest
import redis.asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

import bitlens.aiohttp
from _web_data import FIRST_DAY, HOSTILE, LAST_DAY, Seed, readme_example
from bitlens import Tracker, UniqueEvents
from bitlens.aiohttp import TRACKER_KEY, RequestMarker, create_app, serve_dashboard, tracker_from
from bitlens.embedded import EmbeddedRedis
from bitlens.web import MarkingStats, page

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from aiohttp.typedefs import Handler

pytestmark = pytest.mark.anyio

USER_KEY = web.RequestKey("user_id", int)


def _user_of(request: web.Request) -> int | None:
    """The user: header ``x-user`` (parsed here, so junk raises), else what auth stored."""
    header = request.headers.get("x-user")
    if header is not None:
        return int(header)
    return request.get(USER_KEY)


@web.middleware
async def cookie_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A stand-in authentication middleware: the user id travels in a cookie."""
    if "uid" in request.cookies:
        request[USER_KEY] = int(request.cookies["uid"])
    return await handler(request)


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"hello": "world"})


async def fail(request: web.Request) -> web.Response:
    raise RuntimeError("handler failed")


async def signups(request: web.Request) -> web.Response:
    return web.json_response(await tracker_from(request).count(UniqueEvents("request")))


def make_app(
    source: str | Tracker, prefix: str | None, *, drain_timeout: float = 10.0
) -> tuple[web.Application, RequestMarker[web.Request]]:
    """A small app: authentication, marked routes, an excluded health check, the dashboard.

    :param source: what ``setup`` opens
    :param prefix: the tracker's key prefix (``None`` with a ready tracker)
    :param drain_timeout: seconds the cleanup waits for queued marks
    """
    app = web.Application(middlewares=[cookie_auth])
    for path, handler in [("/hello", hello), ("/health", hello), ("/healthz", hello)]:
        app.router.add_get(path, handler)
    app.router.add_get("/fail", fail)
    app.router.add_get("/signups", signups)
    marker = RequestMarker(_user_of, event="request", exclude=["/health"])
    if prefix is None:
        bitlens.aiohttp.install(app, source, mark=marker, drain_timeout=drain_timeout)
    else:
        bitlens.aiohttp.install(
            app, source, mark=marker, drain_timeout=drain_timeout, prefix=prefix, track_unique=True
        )
    return app, marker


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """Serve the app on a loopback port; its cleanup context runs on exit."""
    async with TestClient(TestServer(app, host="127.0.0.1")) as http:
        yield http


async def _members(url: str, prefix: str) -> set[int]:
    async with Tracker(url, prefix=prefix) as tracker:
        return {uid async for uid in tracker.members(UniqueEvents("request"))}


async def test_middleware_marks_exactly_the_requests_it_should(redis_url: str, prefix: str) -> None:
    """Users are marked after the handler whatever the status; the rest is not."""
    app, marker = make_app(redis_url, prefix)
    async with serving(app) as http:
        statuses = [
            (await http.get(path, headers=headers, cookies=cookies)).status
            for path, headers, cookies in [
                ("/hello", {"x-user": "1"}, {}),
                ("/hello", {}, {"uid": "2"}),  # the auth middleware names the user
                ("/hello", {}, {}),  # anonymous
                ("/health", {"x-user": "4"}, {}),  # excluded
                ("/healthz", {"x-user": "6"}, {}),
                ("/missing", {"x-user": "8"}, {}),  # 404
                ("/fail", {"x-user": "9"}, {}),  # 500
                ("/bitlens/events", {"x-user": "10"}, {}),  # the dashboard's own routes
                ("/bitlens/", {"x-user": "11"}, {}),
                ("/bitlens", {"x-user": "12"}, {}),  # redirected, then the page
            ]
        ]
    assert statuses == [200, 200, 200, 200, 200, 404, 500, 200, 200, 200]
    assert marker.stats() == MarkingStats(marked=5, anonymous=1, skipped=5)
    assert await _members(redis_url, prefix) == {1, 2, 6, 8, 9}


async def test_bad_user_ids_never_fail_a_request(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A getter that raises or returns an invalid id is logged and counted, not fatal."""
    app, marker = make_app(redis_url, prefix)
    with caplog.at_level(logging.WARNING, logger="bitlens"):
        async with serving(app) as http:
            statuses = [
                (await http.get("/hello", headers={"x-user": user})).status
                for user in ("abc", "-5", "3")
            ]
    assert statuses == [200] * 3
    assert marker.stats() == MarkingStats(marked=1, failed=2)
    assert "could not mark a request (ValueError" in caplog.text


async def test_500_concurrent_requests_are_all_marked(redis_url: str, prefix: str) -> None:
    """A bounded load run over real sockets: all 500 concurrent requests are marked."""
    app, marker = make_app(redis_url, prefix)
    statuses: list[int] = []

    async def one(http: TestClient[web.Request, web.Application], user: int) -> None:
        async with http.get("/hello", headers={"x-user": str(user)}) as answer:
            statuses.append(answer.status)

    with anyio.fail_after(30):
        async with serving(app) as http:
            tracker = http.app[TRACKER_KEY] if http.app is not None else None
            async with anyio.create_task_group() as tg:
                for user in range(500):
                    tg.start_soon(one, http, user)
    assert statuses == [200] * 500
    assert marker.stats() == MarkingStats(marked=500)
    assert tracker is not None
    assert tracker.closed
    stats = tracker.stats()
    assert (stats.nowait_enqueued, stats.nowait_written, stats.nowait_dropped) == (500, 500, 0)
    assert await _members(redis_url, prefix) == set(range(500))


@pytest.fixture
def private_server(redis_binary: str) -> Iterator[EmbeddedRedis]:
    """A private server the test may stop."""
    server = EmbeddedRedis(redis_binary)
    server.start()
    yield server
    server.stop()


async def test_requests_succeed_while_redis_is_down(
    private_server: EmbeddedRedis, prefix: str
) -> None:
    """With Redis stopped, marked requests still answer 200 at once; the API answers 503."""
    client = redis.asyncio.Redis.from_url(private_server.url, retry=Retry(NoBackoff(), 0))  # pyright: ignore[reportUnknownMemberType]
    tracker = Tracker(client, prefix=prefix)
    app, marker = make_app(tracker, None)
    try:
        with anyio.fail_after(20):
            async with serving(app) as http:
                assert (await http.get("/hello", headers={"x-user": "1"})).status == 200
                private_server.stop()
                statuses = [
                    (await http.get("/hello", headers={"x-user": str(u)})).status
                    for u in range(2, 22)
                ]
                counts = await http.get("/bitlens/counts", params={"event": "request"})
                assert counts.status == 503
                assert await counts.json() == {"error": "Redis is unavailable; try again later"}
            assert statuses == [200] * 20
            assert marker.stats() == MarkingStats(marked=21, skipped=1)
            assert not tracker.closed  # a ready tracker belongs to its maker
            await tracker.aclose(drain_timeout=0.5)
        assert tracker.stats().nowait_dropped >= 20
    finally:
        await client.aclose()


async def test_json_endpoints_match_the_reference(redis_url: str, prefix: str) -> None:
    """The API answers with the numbers the sets give (weeks, contains, retention)."""
    seed = Seed()
    async with Tracker(redis_url, prefix=prefix) as tracker:
        await tracker.mark_events(seed.marks)
    app, _ = make_app(redis_url, prefix)
    async with serving(app) as http:
        events = await (await http.get("/bitlens/events")).json()
        names = sorted(["active", "signed_up", HOSTILE])
        assert events == {"events": names, "truncated": False, "prefix": prefix}
        answer = await http.get(
            "/bitlens/counts",
            params=[
                ("event", "signed_up"),
                ("event", HOSTILE),
                ("period", "week"),
                ("start", FIRST_DAY.isoformat()),
                ("end", LAST_DAY.isoformat()),
            ],
        )
        assert answer.headers["Content-Type"] == "application/json"
        body = await answer.json()
        assert body["labels"] == [f"2025-W{w}" for w in range(10, 16)]
        assert body["series"] == [
            {"event": name, "counts": seed.counts(name, "week", FIRST_DAY, LAST_DAY)}
            for name in ("signed_up", HOSTILE)
        ]
        signed = seed.users_in("signed_up", "month", "2025-03")
        for user in (1, 2, 3):
            params = {"event": "signed_up", "period": "month", "at": "2025-03-31", "user_id": user}
            body = await (await http.get("/bitlens/contains", params=params)).json()
            assert body["contains"] is (user in signed)
        params = {"start": "signed_up", "returning": "active", "period": "week", "cohorts": 3}
        params |= {"buckets": 4, "end": "2025-03-17", "criterion": "on"}
        body = await (await http.get("/bitlens/retention", params=params)).json()
    weeks = ["2025-W10", "2025-W11", "2025-W12"]
    assert [(r["cohort"], r["size"], [c["count"] for c in r["cells"]]) for r in body["rows"]] == (
        seed.weekly_retention("signed_up", "active", weeks, 4)
    )


async def test_bad_input_is_answered_400(redis_url: str, prefix: str) -> None:
    """Usage errors are 400s with the message; unknown paths under the prefix are 404s."""
    app, _ = make_app(redis_url, prefix)
    async with serving(app) as http:
        bad = await http.get("/bitlens/counts", params={"event": "a", "period": "hour"})
        assert bad.status == 400
        assert await bad.json() == {
            "error": "invalid 'period': must be one of day, week, month; got 'hour'"
        }
        bad = await http.get("/bitlens/retention", params={"start": "a", "buckets": "1e3"})
        assert bad.status == 400
        assert "'buckets': must be an integer from 1 to 120" in (await bad.json())["error"]
        assert (await http.get("/bitlens/nothing")).status == 404


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
