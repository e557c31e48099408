"""The web integrations, FastAPI and aiohttp, held to one suite: marking, the JSON API, the page.

Each test runs once per framework (the ``web`` fixture): the same app (``_web_apps``) served
through httpx's ASGI transport with its lifespan run by hand, or by aiohttp's test server over
loopback, against the session's real redis-server. What only one framework has is tested in
``test_fastapi`` and ``test_aiohttp``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
import pytest
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

import bitlens.web
from _web_apps import FRAMEWORKS, WebFramework
from _web_data import FIRST_DAY, HOSTILE, LAST_DAY, Seed
from bitlens import Tracker, UniqueEvents
from bitlens.embedded import EmbeddedRedis
from bitlens.web import MarkingStats

if TYPE_CHECKING:
    from collections.abc import Iterator

    from _web_apps import Http

pytestmark = pytest.mark.anyio


@pytest.fixture(params=sorted(FRAMEWORKS))
def web(request: pytest.FixtureRequest) -> WebFramework:
    """The framework this test runs on: ``aiohttp`` or ``fastapi``.

    :param request: the fixture request, whose ``param`` names the framework
    """
    framework: WebFramework = FRAMEWORKS[request.param]()
    return framework


async def _members(url: str, prefix: str) -> set[int]:
    async with Tracker(url, prefix=prefix) as tracker:
        return {uid async for uid in tracker.members(UniqueEvents("request"))}


async def test_middleware_marks_exactly_the_requests_it_should(
    web: WebFramework, redis_url: str, prefix: str
) -> None:
    """Users are marked once the handler has run, whatever the status; the rest is not."""
    app = web.app(redis_url, prefix)
    async with web.serving(app) as http:
        statuses = [
            (await http.get(path, headers=headers, cookies=cookies)).status
            for path, headers, cookies in [
                ("/hello", {"x-user": "1"}, {}),
                ("/hello", {"x-user": "2"}, {}),
                ("/hello?again", {"x-user": "2"}, {}),
                ("/hello", {}, {"uid": "3"}),  # the auth middleware names the user
                ("/hello", {}, {}),  # anonymous
                ("/health", {"x-user": "4"}, {}),  # excluded
                ("/health/live", {"x-user": "5"}, {}),  # excluded
                ("/healthz", {"x-user": "6"}, {}),  # not under /health
                ("/login/7", {}, {}),  # the handler names the user
                ("/missing", {"x-user": "8"}, {}),  # 404
                ("/fail", {"x-user": "9"}, {}),  # 500
                ("/bitlens/events", {"x-user": "10"}, {}),  # the dashboard's own routes
                ("/bitlens/", {"x-user": "11"}, {}),
            ]
        ]
    assert statuses == [200] * 9 + [404, 500, 200, 200]
    assert web.marker(app).stats() == MarkingStats(marked=8, anonymous=1, skipped=4)
    assert await _members(redis_url, prefix) == {1, 2, 3, 6, 7, 8, 9}


async def test_the_dashboards_bare_prefix_redirect_is_not_marked(
    web: WebFramework, redis_url: str, prefix: str
) -> None:
    """A request to ``/bitlens`` (redirected to ``/bitlens/``) is the dashboard's: skipped."""
    app = web.app(redis_url, prefix)
    async with web.serving(app) as http:
        answer = await http.get("/bitlens", headers={"x-user": "12"}, follow=False)
    assert answer.status in (307, 308)
    assert web.marker(app).stats() == MarkingStats(skipped=1)
    assert await _members(redis_url, prefix) == set()


async def test_bad_user_ids_never_fail_a_request(
    web: WebFramework, redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A getter that raises or returns an invalid id is logged and counted, not fatal."""
    app = web.app(redis_url, prefix)
    with caplog.at_level(logging.WARNING, logger="bitlens"):
        async with web.serving(app) as http:
            statuses = [
                (await http.get("/hello", headers={"x-user": user})).status
                for user in ("abc", "-5", str(2**63), "3")
            ]
    assert statuses == [200] * 4
    assert web.marker(app).stats() == MarkingStats(marked=1, failed=3)
    assert "could not mark a request (ValueError" in caplog.text
    assert await _members(redis_url, prefix) == {3}


async def test_500_concurrent_requests_are_all_marked(
    web: WebFramework, redis_url: str, prefix: str
) -> None:
    """A bounded load run: every one of 500 concurrent requests is marked after shutdown."""
    app = web.app(redis_url, prefix)
    statuses: list[int] = []

    async def one(http: Http, user: int) -> None:
        statuses.append((await http.get("/hello", headers={"x-user": str(user)})).status)

    with anyio.fail_after(30):
        async with web.serving(app) as http:
            tracker = web.tracker(app)
            async with anyio.create_task_group() as tg:
                for user in range(500):
                    tg.start_soon(one, http, user)
    assert statuses == [200] * 500
    assert web.marker(app).stats() == MarkingStats(marked=500)
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
    web: WebFramework, private_server: EmbeddedRedis, prefix: str
) -> None:
    """With Redis stopped, marked requests still answer 200; the API answers 503."""
    # No retries: a refused connection fails at once (redis-py retries 3 times by default).
    client = redis.asyncio.Redis.from_url(private_server.url, retry=Retry(NoBackoff(), 0))  # pyright: ignore[reportUnknownMemberType]
    tracker = Tracker(client, prefix=prefix)
    app = web.app(tracker, None)
    try:
        with anyio.fail_after(20):
            async with web.serving(app) as http:
                assert (await http.get("/hello", headers={"x-user": "1"})).status == 200
                private_server.stop()
                statuses = [
                    (await http.get("/hello", headers={"x-user": str(u)})).status
                    for u in range(2, 22)
                ]
                counts = await http.get("/bitlens/counts", params={"event": "request"})
            assert statuses == [200] * 20
            assert web.marker(app).stats() == MarkingStats(marked=21, skipped=1)
            assert counts.status == 503
            assert counts.json() == {"error": "Redis is unavailable; try again later"}
            assert not tracker.closed  # a ready tracker belongs to its maker
            await tracker.aclose(drain_timeout=0.5)
        assert tracker.stats().nowait_dropped >= 20
    finally:
        await client.aclose()


async def test_json_endpoints_match_the_reference(
    web: WebFramework, redis_url: str, prefix: str
) -> None:
    """/events, /counts, /contains and /retention return the numbers the sets give."""
    seed = Seed()
    async with Tracker(redis_url, prefix=prefix) as tracker:
        await tracker.mark_events(seed.marks)
    app = web.app(redis_url, prefix)
    first, last = FIRST_DAY.isoformat(), LAST_DAY.isoformat()
    async with web.serving(app) as http:
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
            assert answer.status == 200
            assert answer.headers["content-type"] == "application/json"
            assert answer.headers["x-content-type-options"] == "nosniff"
            body = answer.object()
            assert body["labels"] == seed.labels(period, FIRST_DAY, LAST_DAY)
            assert body["series"] == [
                {"event": "active", "counts": seed.counts("active", period, FIRST_DAY, LAST_DAY)},
                {"event": HOSTILE, "counts": seed.counts(HOSTILE, period, FIRST_DAY, LAST_DAY)},
            ]
        params = [("event", "signed_up"), ("event", HOSTILE), ("period", "week")]
        body = (
            await http.get("/bitlens/counts", params=[*params, ("start", first), ("end", last)])
        ).object()
        assert body["labels"] == [f"2025-W{w}" for w in range(10, 16)]
        assert body["series"] == [
            {"event": name, "counts": seed.counts(name, "week", FIRST_DAY, LAST_DAY)}
            for name in ("signed_up", HOSTILE)
        ]

        week = "2025-W11"
        actives = seed.users_in("active", "week", week)
        absent = next(u for u in range(1, 301) if u not in actives)
        for user in (min(actives), max(actives), absent):
            asked: dict[str, str | int] = {"event": "active", "period": "week"}
            asked |= {"at": "2025-03-12", "user_id": user}
            assert (await http.get("/bitlens/contains", params=asked)).json() == {
                "event": "active",
                "period": "week",
                "label": week,
                "user_id": user,
                "contains": user in actives,
            }
        signed = seed.users_in("signed_up", "month", "2025-03")
        for user in (1, 2, 3):
            asked = {"event": "signed_up", "period": "month", "at": "2025-03-31", "user_id": user}
            body = (await http.get("/bitlens/contains", params=asked)).object()
            assert body["contains"] is (user in signed)

        retention: dict[str, str | int] = {
            "start": "signed_up",
            "returning": "active",
            "period": "week",
        }
        table = (
            await http.get(
                "/bitlens/retention",
                params={**retention, "cohorts": 4, "buckets": 3, "end": "2025-04-20"},
            )
        ).object()
        on = (
            await http.get(
                "/bitlens/retention",
                params={
                    **retention,
                    "cohorts": 3,
                    "buckets": 4,
                    "end": "2025-03-17",
                    "criterion": "on",
                },
            )
        ).object()
    weeks = ["2025-W13", "2025-W14", "2025-W15", "2025-W16"]
    expected = seed.weekly_retention("signed_up", "active", weeks, 3)
    rows = table["rows"]
    assert isinstance(rows, list)
    assert table["columns"] == ["0", "1", "2"]
    assert [(r["cohort"], r["size"], [c["count"] for c in r["cells"]]) for r in rows] == [
        (label, size, cells) for label, size, cells in expected
    ]
    for row, (_, size, cells) in zip(rows, expected, strict=True):
        assert [c["percent"] for c in row["cells"]] == [
            pytest.approx(100 * n / size) if size else None for n in cells
        ]
    assert expected[3][1] == 0  # the week after the data: an empty cohort, percents None
    on_rows = on["rows"]
    assert isinstance(on_rows, list)
    assert [(r["cohort"], r["size"], [c["count"] for c in r["cells"]]) for r in on_rows] == (
        seed.weekly_retention("signed_up", "active", ["2025-W10", "2025-W11", "2025-W12"], 4)
    )


BAD_REQUESTS = [
    ("/bitlens/counts", {}, "invalid 'event': give at least one event"),
    ("/bitlens/counts", {"event": "a b"}, "invalid 'event': invalid event name 'a b'"),
    ("/bitlens/counts", {"event": "a", "period": "year"}, "must be one of day, week, month"),
    (
        "/bitlens/counts",
        {"event": "a", "period": "hour"},
        "invalid 'period': must be one of day, week, month; got 'hour'",
    ),
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
    ("/bitlens/retention", {"start": "a", "buckets": "1e3"}, "'buckets': must be an integer from"),
    ("/bitlens/retention", {"start": "a", "criterion": "x"}, "'criterion': must be one of on"),
    ("/bitlens/retention", {"start": "a", "mode": "first_time"}, "history_start"),
    ("/bitlens/retention", {"start": "~a"}, "reserved for bitlens"),
]


async def test_bad_input_is_answered_400_with_the_message(
    web: WebFramework, redis_url: str, prefix: str
) -> None:
    """Every usage error is a 400 whose JSON names the parameter; unknown paths are 404s."""
    app = web.app(redis_url, prefix)
    async with web.serving(app) as http:
        for path, params, message in BAD_REQUESTS:
            answer = await http.get(path, params=params)
            assert answer.status == 400, (path, params, answer.body)
            assert message in str(answer.object()["error"]), (path, params, answer.body)
        repeated = await http.get("/bitlens/counts?event=a&period=day&period=week")
        assert repeated.status == 400
        assert repeated.json() == {"error": "invalid 'period': given 2 times; give it once"}
        assert (await http.get("/bitlens/nothing")).status == 404


async def test_the_page_is_self_contained_and_mounted_anywhere(
    web: WebFramework, redis_url: str, prefix: str
) -> None:
    """The page needs nothing from outside, forbids inline code but its own, and redirects."""
    app = web.app(redis_url, prefix)
    async with web.serving(app) as http:
        bare = await http.get("/bitlens?event=a", follow=False)
        followed = await http.get("/bitlens?event=a")
        answer = await http.get("/bitlens/")
    assert bare.status in (307, 308)
    assert bare.headers["location"].endswith("bitlens/?event=a")
    assert followed.status == 200
    assert followed.url.endswith("/bitlens/?event=a")
    assert followed.body == bitlens.web.page().body
    assert answer.status == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    policy = answer.headers["content-security-policy"]
    assert policy == bitlens.web.page().headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'sha256-" in policy
    assert "unsafe" not in policy
    html = answer.body.decode()
    assert "http:" not in html
    assert "https:" not in html
    assert "<script src" not in html
    assert "innerHTML" not in html
    assert html == bitlens.web.page().body.decode()
