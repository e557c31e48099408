"""bitlens.fastapi: lifespan, dependency, marking middleware and JSON API over real HTTP.

Requests go through httpx's ASGI transport into a real FastAPI app whose lifespan is run
by hand (``app.router.lifespan_context``), against the session's real redis-server.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated

import anyio
import httpx
import pytest
import redis.asyncio
from fastapi import Depends, FastAPI, Request
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

import bitlens.fastapi
import bitlens.web
from _web_data import FIRST_DAY, HOSTILE, LAST_DAY, Seed, readme_example
from bitlens import Tracker, UniqueEvents
from bitlens.embedded import EmbeddedRedis
from bitlens.fastapi import bitlens_lifespan, mark_requests, router, tracker_from
from bitlens.web import MarkingStats, RequestMarker

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

pytestmark = pytest.mark.anyio

BASE = "http://127.0.0.1"


def _user_of(request: Request) -> int | None:
    """The user of a request: header ``x-user`` (parsed here, so junk raises) or state."""
    header = request.headers.get("x-user")
    if header is not None:
        return int(header)
    user: int | None = getattr(request.state, "user_id", None)
    return user


def make_app(
    source: str | redis.asyncio.Redis | Tracker, prefix: str | None, *, drain_timeout: float = 10.0
) -> tuple[FastAPI, RequestMarker[Request]]:
    """A small app: marked routes, an excluded health check, the bitlens router.

    :param source: what ``bitlens_lifespan`` opens
    :param prefix: the tracker's key prefix (``None`` with a ready tracker)
    :param drain_timeout: seconds the lifespan waits for queued marks at shutdown
    """
    lifespan = (
        bitlens_lifespan(source, drain_timeout=drain_timeout)
        if prefix is None
        else bitlens_lifespan(source, drain_timeout=drain_timeout, prefix=prefix, track_unique=True)
    )
    app = FastAPI(lifespan=lifespan)
    marker = mark_requests(app, _user_of, event="request", exclude=("/health",))
    app.include_router(router(), prefix="/bitlens")

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
    async def signups(tracker: Annotated[Tracker, Depends(tracker_from)]) -> int:
        return await tracker.count(UniqueEvents("request"))

    return app, marker


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and yield an HTTP client of it; the lifespan ends on exit."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=BASE) as http,
    ):
        yield http


async def _members(url: str, prefix: str, expr: UniqueEvents) -> set[int]:
    async with Tracker(url, prefix=prefix) as tracker:
        return {uid async for uid in tracker.members(expr)}


async def test_middleware_marks_exactly_the_requests_it_should(redis_url: str, prefix: str) -> None:
    """Users are marked once the handler has run, whatever the status; the rest is not."""
    app, marker = make_app(redis_url, prefix)
    async with serving(app) as http:
        answers = [
            await http.get("/hello", headers={"x-user": "1"}),
            await http.get("/hello", headers={"x-user": "2"}),
            await http.get("/hello?again", headers={"x-user": "2"}),
            await http.get("/hello"),  # anonymous
            await http.get("/health", headers={"x-user": "4"}),  # excluded
            await http.get("/health/live", headers={"x-user": "5"}),  # excluded
            await http.get("/healthz", headers={"x-user": "6"}),  # not under /health
            await http.get("/login/7"),  # the handler names the user
            await http.get("/missing", headers={"x-user": "8"}),  # 404
            await http.get("/fail", headers={"x-user": "9"}),  # 500
            await http.get("/bitlens/events", headers={"x-user": "10"}),  # dashboard
            await http.get("/bitlens/", headers={"x-user": "11"}),  # dashboard
        ]
    assert [a.status_code for a in answers] == [200] * 8 + [404, 500, 200, 200]
    assert marker.stats() == MarkingStats(marked=7, anonymous=1, skipped=4)
    assert await _members(redis_url, prefix, UniqueEvents("request")) == {1, 2, 6, 7, 8, 9}


async def test_bad_user_ids_never_fail_a_request(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A getter that raises or returns an invalid id is logged and counted, not fatal."""
    app, marker = make_app(redis_url, prefix)
    with caplog.at_level(logging.WARNING, logger="bitlens"):
        async with serving(app) as http:
            statuses = [
                (await http.get("/hello", headers={"x-user": user})).status_code
                for user in ("abc", "-5", str(2**63), "3")
            ]
    assert statuses == [200] * 4
    assert marker.stats() == MarkingStats(marked=1, failed=3)
    assert "could not mark a request (ValueError" in caplog.text
    assert await _members(redis_url, prefix, UniqueEvents("request")) == {3}


async def test_500_concurrent_requests_are_all_marked(redis_url: str, prefix: str) -> None:
    """A bounded load run: every one of 500 concurrent requests is marked after shutdown."""
    app, marker = make_app(redis_url, prefix)
    statuses: list[int] = []

    async def one(http: httpx.AsyncClient, user: int) -> None:
        statuses.append((await http.get("/hello", headers={"x-user": str(user)})).status_code)

    with anyio.fail_after(30):
        async with serving(app) as http:
            tracker = get_tracker_of(app)
            async with anyio.create_task_group() as tg:
                for user in range(500):
                    tg.start_soon(one, http, user)
    assert statuses == [200] * 500
    assert marker.stats() == MarkingStats(marked=500)
    stats = tracker.stats()
    assert (stats.nowait_enqueued, stats.nowait_written, stats.nowait_dropped) == (500, 500, 0)
    assert await _members(redis_url, prefix, UniqueEvents("request")) == set(range(500))


def get_tracker_of(app: FastAPI) -> Tracker:
    """The tracker the running lifespan stored in ``app.state``."""
    tracker = getattr(app.state, bitlens.fastapi.STATE_KEY)
    assert isinstance(tracker, Tracker)
    return tracker


@pytest.fixture
def private_server(redis_binary: str) -> Iterator[EmbeddedRedis]:
    """A private server the test may stop."""
    server = EmbeddedRedis(redis_binary)
    server.start()
    yield server
    server.stop()


async def test_requests_succeed_while_redis_is_down(
    private_server: EmbeddedRedis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With Redis stopped, marked requests still answer 200; the API answers 503."""
    # No retries: a refused connection fails at once (redis-py retries 3 times by default).
    client = redis.asyncio.Redis.from_url(private_server.url, retry=Retry(NoBackoff(), 0))  # pyright: ignore[reportUnknownMemberType]
    tracker = Tracker(client, prefix=prefix)
    app, marker = make_app(tracker, None)
    try:
        with caplog.at_level(logging.ERROR, logger="bitlens"), anyio.fail_after(20):
            async with serving(app) as http:
                assert (await http.get("/hello", headers={"x-user": "1"})).status_code == 200
                private_server.stop()
                statuses = [
                    (await http.get("/hello", headers={"x-user": str(u)})).status_code
                    for u in range(2, 22)
                ]
                counts = await http.get("/bitlens/counts", params={"event": "request"})
            assert statuses == [200] * 20
            assert marker.stats() == MarkingStats(marked=21, skipped=1)
            assert counts.status_code == 503
            assert counts.json() == {"error": "Redis is unavailable; try again later"}
            await tracker.aclose(drain_timeout=0.5)  # the lifespan left it open: not its own
        assert tracker.stats().nowait_dropped >= 20
    finally:
        await client.aclose()


async def test_json_endpoints_match_the_reference(redis_url: str, prefix: str) -> None:
    """/events, /counts, /contains and /retention return the numbers the sets give."""
    seed = Seed()
    async with Tracker(redis_url, prefix=prefix) as tracker:
        await tracker.mark_events(seed.marks)
    app, _ = make_app(redis_url, prefix)
    first, last = FIRST_DAY.isoformat(), LAST_DAY.isoformat()
    async with serving(app) as http:
        events = (await http.get("/bitlens/events")).json()
        names = sorted(["active", "signed_up", HOSTILE])
        assert events == {"events": names, "truncated": False, "prefix": prefix}

        for period in ("day", "week", "month"):
            answer = await http.get(
                "/bitlens/counts",
                params=[
                    ("event", "active"),
                    ("event", HOSTILE),
                    ("period", period),
                    ("start", first),
                    ("end", last),
                ],
            )
            assert answer.status_code == 200
            assert answer.headers["content-type"] == "application/json"
            assert answer.headers["x-content-type-options"] == "nosniff"
            body = answer.json()
            assert body["labels"] == seed.labels(period, FIRST_DAY, LAST_DAY)
            assert body["series"] == [
                {"event": "active", "counts": seed.counts("active", period, FIRST_DAY, LAST_DAY)},
                {"event": HOSTILE, "counts": seed.counts(HOSTILE, period, FIRST_DAY, LAST_DAY)},
            ]

        week = "2025-W11"
        actives = seed.users_in("active", "week", week)
        absent = next(u for u in range(1, 301) if u not in actives)
        for user in (min(actives), max(actives), absent):
            params: dict[str, str | int] = {"event": "active", "period": "week"}
            params |= {"at": "2025-03-12", "user_id": user}
            body = (await http.get("/bitlens/contains", params=params)).json()
            assert body == {
                "event": "active",
                "period": "week",
                "label": week,
                "user_id": user,
                "contains": user in actives,
            }

        body = (
            await http.get(
                "/bitlens/retention",
                params={
                    "start": "signed_up",
                    "returning": "active",
                    "period": "week",
                    "cohorts": 4,
                    "buckets": 3,
                    "end": "2025-04-20",
                },
            )
        ).json()
    weeks = ["2025-W13", "2025-W14", "2025-W15", "2025-W16"]
    expected = seed.weekly_retention("signed_up", "active", weeks, 3)
    assert body["columns"] == ["0", "1", "2"]
    assert [(r["cohort"], r["size"], [c["count"] for c in r["cells"]]) for r in body["rows"]] == [
        (label, size, cells) for label, size, cells in expected
    ]
    for row, (_, size, cells) in zip(body["rows"], expected, strict=True):
        assert [c["percent"] for c in row["cells"]] == [
            pytest.approx(100 * n / size) if size else None for n in cells
        ]
    assert expected[3][1] == 0  # the week after the data: an empty cohort, percents None


BAD_REQUESTS = [
    ("/bitlens/counts", {}, "invalid 'event': give at least one event"),
    ("/bitlens/counts", {"event": "a b"}, "invalid 'event': invalid event name 'a b'"),
    ("/bitlens/counts", {"event": "a", "period": "year"}, "must be one of day, week, month"),
    ("/bitlens/counts", {"event": "a", "start": "2025-02-30"}, "'2025-02-30' is not a date"),
    ("/bitlens/counts", {"event": "a", "end": "yesterday"}, "must be a date like 2026-11-27"),
    (
        "/bitlens/counts",
        {"event": "a", "start": "2025-03-02", "end": "2025-03-01"},
        "2025-03-02 is after end 2025-03-01",
    ),
    ("/bitlens/counts", {"event": "a", "start": "2020-01-01", "end": "2025-01-01"}, "at most 1000"),
    ("/bitlens/contains", {"event": "a", "user_id": "-1"}, "invalid 'user_id'"),
    ("/bitlens/contains", {"event": "a"}, "invalid 'user_id': required"),
    ("/bitlens/retention", {"start": "a", "cohorts": "0"}, "from 1 to 120; got 0"),
    ("/bitlens/retention", {"start": "a", "criterion": "x"}, "'criterion': must be one of on"),
    ("/bitlens/retention", {"start": "a", "mode": "first_time"}, "history_start"),
    ("/bitlens/retention", {"start": "~a"}, "reserved for bitlens"),
]


async def test_bad_input_is_answered_400_with_the_message(redis_url: str, prefix: str) -> None:
    """Every usage error is a 400 whose JSON names the parameter and the problem."""
    app, _ = make_app(redis_url, prefix)
    async with serving(app) as http:
        for path, params, message in BAD_REQUESTS:
            answer = await http.get(path, params=params)
            assert answer.status_code == 400, (path, params, answer.text)
            assert message in answer.json()["error"], (path, params, answer.text)
        repeated = await http.get("/bitlens/counts?event=a&period=day&period=week")
        assert repeated.status_code == 400
        assert repeated.json() == {"error": "invalid 'period': given 2 times; give it once"}


async def test_the_page_is_self_contained_and_mounted_anywhere(redis_url: str, prefix: str) -> None:
    """The page needs nothing from outside, forbids inline code but its own, and redirects."""
    app, _ = make_app(redis_url, prefix)
    async with serving(app) as http:
        bare = await http.get("/bitlens?event=a")
        answer = await http.get("/bitlens/")
    assert bare.status_code in (307, 308)
    assert bare.headers["location"].endswith("/bitlens/?event=a")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'sha256-" in policy
    assert "unsafe" not in policy
    html = answer.text
    assert "http:" not in html
    assert "https:" not in html
    assert "<script src" not in html
    assert "innerHTML" not in html
    assert html == bitlens.web.page().body.decode()


async def test_tracker_from_is_the_lifespans_tracker(redis_url: str, prefix: str) -> None:
    """The dependency hands routes the tracker the lifespan opened, and only while it runs."""
    app, _ = make_app(redis_url, prefix)
    async with serving(app) as http:
        await http.get("/hello", headers={"x-user": "5"})
        tracker = get_tracker_of(app)
    assert tracker.closed
    async with serving(app) as http:
        assert (await http.get("/signups")).json() == 1
    assert not hasattr(app.state, bitlens.fastapi.STATE_KEY)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        with pytest.raises(RuntimeError, match="bitlens_lifespan"):
            await http.get("/signups")


async def test_a_ready_tracker_is_left_open(redis_url: str, prefix: str) -> None:
    """The lifespan closes only a tracker it made; options with a ready tracker are refused."""
    async with Tracker(redis_url, prefix=prefix) as tracker:
        app, _ = make_app(tracker, None)
        async with serving(app) as http:
            assert (await http.get("/hello", headers={"x-user": "1"})).status_code == 200
        assert not tracker.closed
        with pytest.raises(TypeError, match="options"):
            bitlens_lifespan(tracker, prefix="other")


async def test_the_readme_example_runs(
    redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The FastAPI app of docs/web-apps.md marks its users and serves the dashboard, as it says."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(readme_example("fastapi", prefix), "<web-apps.md>", "exec"), namespace)
    app, marker = namespace["app"], namespace["marker"]
    assert isinstance(app, FastAPI)
    assert isinstance(marker, RequestMarker)
    async with serving(app) as http:
        for user in (1, 2, 2):
            assert (await http.get(f"/hello/{user}")).text == '"hello"'
        assert (await http.get("/health")).status_code == 404  # excluded all the same
        assert (await http.get("/bitlens/")).status_code == 200
    assert marker.stats() == MarkingStats(marked=3, skipped=2)
    async with serving(app) as http:  # the first run drained its marks at shutdown
        assert (await http.get("/users")).json() == 2


async def test_openapi_documents_the_json_api() -> None:
    """The app's OpenAPI schema lists the endpoints and their query parameters, not the page."""
    app, _ = make_app("redis://127.0.0.1:1/0", "unused")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        schema = (await http.get("/openapi.json")).json()
    paths = {path: spec["get"] for path, spec in schema["paths"].items() if "bitlens" in path}
    assert sorted(paths) == [f"/bitlens/{name}" for name in sorted(bitlens.web.ENDPOINTS)]
    counts = {p["name"]: p["required"] for p in paths["/bitlens/counts"]["parameters"]}
    assert counts == {"event": True, "period": False, "start": False, "end": False}


def test_the_event_name_is_checked_when_the_middleware_is_made() -> None:
    """A bad constant event name is a bug in the app: it fails at start-up, not per request."""
    with pytest.raises(ValueError, match="whitespace"):
        mark_requests(FastAPI(), _user_of, event="page view")


def test_import_bitlens_imports_no_web_framework() -> None:
    """bitlens itself never imports FastAPI, Starlette or aiohttp."""
    code = (
        "import sys, bitlens, bitlens.cohort; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('fastapi', 'starlette', 'aiohttp') or m.startswith('bitlens.web')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_public_surface() -> None:
    """The public names of bitlens.fastapi and bitlens.web are pinned."""
    assert bitlens.fastapi.__all__ == [
        "STATE_KEY",
        "BitlensMiddleware",
        "MarkingStats",
        "RequestMarker",
        "bitlens_lifespan",
        "install",
        "mark_requests",
        "router",
        "tracker_from",
    ]
    assert bitlens.web.__all__ == [
        "ENDPOINTS",
        "JSON_HEADERS",
        "MAX_BUCKETS",
        "MAX_COHORTS",
        "MAX_EVENTS",
        "MAX_POINTS",
        "SKIP_MARK",
        "ContainsReply",
        "CountsReply",
        "EventsReply",
        "InvalidParameter",
        "MarkingStats",
        "Page",
        "Query",
        "Reply",
        "RequestMarker",
        "RetentionReply",
        "SeriesDict",
        "UserIdGetter",
        "contains",
        "counts",
        "handle",
        "list_events",
        "page",
        "retention",
    ]
    assert bitlens.fastapi.BitlensMiddleware.__module__ == "bitlens.fastapi"
    assert bitlens.web.RequestMarker.__module__ == "bitlens.web"
    assert issubclass(bitlens.web.InvalidParameter, bitlens.BitlensError)
    assert issubclass(bitlens.web.InvalidParameter, ValueError)


def test_seed_is_what_the_tests_expect() -> None:
    """The seeded data fills six weeks, and its hostile name is one bitlens accepts."""
    seed = Seed()
    assert bitlens._keys.validate_event_name(HOSTILE) == HOSTILE
    for event in ("signed_up", "active"):
        assert min(seed.counts(event, "week", FIRST_DAY, LAST_DAY)) > 0
    assert seed.users_in("signed_up", "week", "2025-W16") == set()
    assert FIRST_DAY.isocalendar()[1:] == (10, 1)
    assert (LAST_DAY - FIRST_DAY).days == 41
