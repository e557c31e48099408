"""bitlens.fastapi only: the lifespan and its dependency, OpenAPI, the guide's example.

Requests go through httpx's ASGI transport into a real FastAPI app (``_web_apps``) whose
lifespan is run by hand (``app.router.lifespan_context``), against the session's real
redis-server. Marking, the JSON API and the page are tested on both frameworks in
``test_web``.
"""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from fastapi import FastAPI

import bitlens.fastapi
import bitlens.web
from _web_apps import BASE, fastapi_user_of, serve_fastapi
from _web_apps import fastapi_app as make_app
from _web_data import FIRST_DAY, HOSTILE, LAST_DAY, Seed, readme_example
from bitlens import Tracker
from bitlens.fastapi import bitlens_lifespan, mark_requests
from bitlens.web import MarkingStats, RequestMarker

pytestmark = pytest.mark.anyio

serving = serve_fastapi


def get_tracker_of(app: FastAPI) -> Tracker:
    """The tracker the running lifespan stored in ``app.state``."""
    tracker = getattr(app.state, bitlens.fastapi.STATE_KEY)
    assert isinstance(tracker, Tracker)
    return tracker


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
        mark_requests(FastAPI(), fastapi_user_of, event="page view")


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
