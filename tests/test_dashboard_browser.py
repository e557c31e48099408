"""The dashboard page in a real headless Chromium, against seeded data on a real server.

The aiohttp integration serves the page on a loopback port; playwright drives the
``chromium`` found on ``PATH`` or named by ``$BITLENS_CHROMIUM`` (``playwright install``
is not used). The tests read the numbers the page
shows — the chart's points and labels, the heatmap's cells — and compare them with
answers computed from Python sets, and save ``artifacts/dashboard.png``.

These tests are independent of the redis-server binary, so they run once, on a private
server of their own. Without playwright or Chromium they are skipped with a one-line reason
before anything starts, unless ``BITLENS_REQUIRE_BROWSER=1`` (``.ci/run`` sets it), which
makes that a failure.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import re
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode
from uuid import uuid4

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import bitlens.aiohttp
from _optional import NO_CHROMIUM, NO_PLAYWRIGHT, REQUIRE_BROWSER, find_chromium, missing
from _web_data import FIRST_DAY, HOSTILE, LAST_DAY, Seed
from bitlens import Tracker
from bitlens.embedded import EmbeddedRedis

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from playwright.async_api import Browser, ConsoleMessage, Dialog, Page

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
WEEKS = [f"2025-W{w}" for w in range(10, 16)]


def _chromium() -> str:
    """The Chromium executable to drive; skips (or fails, if required) when there is none."""
    if importlib.util.find_spec("playwright") is None:
        missing(REQUIRE_BROWSER, NO_PLAYWRIGHT)
    chromium = find_chromium()
    if chromium is None:
        missing(REQUIRE_BROWSER, NO_CHROMIUM)
    return chromium


@pytest.fixture(scope="module", autouse=True)
def chromium() -> str:
    """The Chromium to drive, checked before any server starts (autouse: skip fast)."""
    return _chromium()


@pytest.fixture(scope="module")
def seed() -> Seed:
    """The seeded activity and its reference answers."""
    return Seed()


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedRedis]:
    """A private redis-server for this module (any binary: the page is what is tested)."""
    with EmbeddedRedis() as running:
        yield running


@pytest.fixture(scope="module")
async def base_url(server: EmbeddedRedis, seed: Seed) -> AsyncIterator[str]:
    """Seed the data and serve an aiohttp app with the dashboard at ``/bitlens/``."""
    prefix = f"t{uuid4().hex[:12]}"
    async with Tracker(server.url, prefix=prefix) as tracker:
        await tracker.mark_events(seed.marks)
    app = web.Application()
    bitlens.aiohttp.install(app, server.url, prefix=prefix)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    try:
        yield str(test_server.make_url("/bitlens/"))
    finally:
        await test_server.close()


@pytest.fixture(scope="module")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """A headless Chromium driven by playwright."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


class Watched:
    """A page plus every dialog, console error and failed request it produced."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("requestfailed", lambda request: self.errors.append(f"failed: {request.url}"))

    async def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(message.text)


async def _open(browser: Browser, url: str) -> Watched:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    watched = Watched(page)
    await page.goto(url)
    await page.wait_for_selector("body[data-state=ready], body[data-state=error]", timeout=15_000)
    return watched


def _query(**params: str | list[str]) -> str:
    return "?" + urlencode(params, doseq=True)


async def test_chart_and_heatmap_show_the_reference_numbers(
    browser: Browser, base_url: str, seed: Seed
) -> None:
    """Weekly counts of two events and a 6 x 6 weekly retention heatmap, number by number."""
    first, last = FIRST_DAY.isoformat(), LAST_DAY.isoformat()
    url = base_url + _query(
        event=["active", "signed_up"],
        period="week",
        start=first,
        end=last,
        rstart="signed_up",
        rreturn="active",
        cohorts="6",
        buckets="6",
    )
    watched = await _open(browser, url)
    page = watched.page
    assert await page.get_attribute("body", "data-state") == "ready"

    points = await page.eval_on_selector_all(
        "#chart circle.point",
        "nodes => nodes.map(n => [n.getAttribute('data-event'), n.getAttribute('data-label'),"
        " Number(n.getAttribute('data-count'))])",
    )
    expected_points = [
        [event, label, count]
        for event in ("active", "signed_up")
        for label, count in zip(WEEKS, seed.counts(event, "week", FIRST_DAY, LAST_DAY), strict=True)
    ]
    assert points == expected_points
    shown = await page.eval_on_selector_all(
        "#chart text.value", "nodes => nodes.map(n => n.textContent)"
    )
    assert shown == [str(count) for _, _, count in expected_points]
    x_labels = await page.eval_on_selector_all(
        "#chart text.x-tick", "nodes => nodes.map(n => n.textContent)"
    )
    assert x_labels == WEEKS
    assert await page.locator("#legend .event-name").all_text_contents() == ["active", "signed_up"]

    rows = await page.eval_on_selector_all(
        "#heatmap tbody tr",
        "rows => rows.map(r => [r.querySelector('th').textContent,"
        " r.querySelector('td.size').textContent,"
        " Array.from(r.querySelectorAll('td.cell'), c => [c.getAttribute('data-count'),"
        " c.textContent])])",
    )
    expected = seed.weekly_retention("signed_up", "active", WEEKS, 6)
    assert [(label, int(size)) for label, size, _ in rows] == [(w, n) for w, n, _ in expected]
    for (label, _, cells), (_, size, counts) in zip(rows, expected, strict=True):
        assert [int(count) for count, _ in cells] == counts, label
        percents = [float(text.rstrip("%")) for _, text in cells]
        assert percents == pytest.approx([100 * c / size for c in counts], abs=0.051), label
    averages = await page.eval_on_selector_all(
        "#heatmap tfoot td[data-percent]", "cells => cells.map(c => Number(c.dataset.percent))"
    )
    total = sum(size for _, size, _ in expected)
    assert averages == pytest.approx(
        [100 * sum(counts[k] for _, _, counts in expected) / total for k in range(6)]
    )

    # The look-up form: one user active in the last week, one not.
    active = seed.users_in("active", "week", WEEKS[-1])
    for user in (min(active), next(u for u in range(1, 301) if u not in active)):
        await page.fill("#lookup-user", str(user))
        await page.select_option("#lookup-event", "active")
        await page.click("#lookup button")
        result = await page.wait_for_selector("#lookup-result[data-contains]")
        assert result is not None
        assert await result.get_attribute("data-contains") == str(user in active).lower()
        assert f"user {user} did" in (await result.text_content() or "")
        assert WEEKS[-1] in (await result.text_content() or "")
        await result.evaluate("node => node.removeAttribute('data-contains')")

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "dashboard.png", full_page=True)
    assert watched.dialogs == []
    assert watched.errors == []
    await page.close()


async def test_event_names_are_shown_as_text(browser: Browser, base_url: str, seed: Seed) -> None:
    """A name made of HTML is displayed verbatim everywhere and never becomes markup."""
    url = base_url + _query(
        event=HOSTILE, period="day", start="2025-03-03", end="2025-03-16", rstart=HOSTILE
    )
    watched = await _open(browser, url)
    page = watched.page
    assert await page.get_attribute("body", "data-state") == "ready"
    checkbox_names = await page.locator("#event-list .event-name").all_text_contents()
    assert HOSTILE in checkbox_names
    assert await page.locator("#legend .event-name").all_text_contents() == [HOSTILE]
    assert await page.text_content("#retention-start") == HOSTILE
    assert await page.text_content("#retention-returning") == HOSTILE
    options = await page.eval_on_selector_all(
        "#rstart option", "nodes => nodes.map(n => [n.value, n.textContent])"
    )
    assert [HOSTILE, HOSTILE] in options
    header = await page.eval_on_selector_all(
        "#counts-table thead th", "nodes => nodes.map(n => n.textContent)"
    )
    assert header == ["day", HOSTILE]
    counts = await page.eval_on_selector_all(
        "#chart circle.point",
        "nodes => nodes.map(n => [n.getAttribute('data-event'),"
        " Number(n.getAttribute('data-count'))])",
    )
    days = seed.counts(HOSTILE, "day", FIRST_DAY, FIRST_DAY.replace(day=16))
    assert counts == [[HOSTILE, n] for n in days]
    assert sum(days) > 0
    # Nothing of the name was parsed as HTML: no image, no handler ran, no CSP report.
    assert await page.locator("img").count() == 0
    assert watched.dialogs == []
    assert watched.errors == []
    await page.close()


async def test_the_bare_prefix_works_and_errors_are_shown(browser: Browser, base_url: str) -> None:
    """``/bitlens`` (no slash) redirects and still reaches the API; a 400 shows its message."""
    url = base_url.rstrip("/") + _query(event="active", start="2025-04-13", end="2025-03-03")
    watched = await _open(browser, url)
    page = watched.page
    assert page.url.startswith(base_url)
    assert await page.get_attribute("body", "data-state") == "error"
    assert await page.text_content("#error") == (
        "counts: invalid 'start': 2025-04-13 is after end 2025-03-03"
    )
    assert await page.locator("#event-list .event-name").count() == 3  # /events was reached
    assert watched.dialogs == []
    # The browser reports the 400 itself, as a console error; nothing else went wrong.
    assert [e for e in watched.errors if "400" not in e] == []
    await page.close()


@asynccontextmanager
async def _app_of(server: EmbeddedRedis, prefix: str) -> AsyncIterator[str]:
    """Serve the dashboard of ``prefix`` on ``server``; yield the page's URL."""
    app = web.Application()
    bitlens.aiohttp.install(app, server.url, prefix=prefix)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    try:
        yield str(test_server.make_url("/bitlens/"))
    finally:
        await test_server.close()


async def test_the_unfinished_period_is_hollow_dashed_and_starred(
    browser: Browser, server: EmbeddedRedis
) -> None:
    """This week's point is hollow with a dashed line into it; its heatmap cell carries '*'."""
    prefix = f"t{uuid4().hex[:12]}"
    now = dt.datetime.now(dt.timezone.utc)
    async with Tracker(server.url, prefix=prefix) as tracker:
        await tracker.mark_events(
            [("active", uid, now - dt.timedelta(weeks=w)) for w in range(3) for uid in range(5)]
        )
    async with _app_of(server, prefix) as url:
        watched = await _open(browser, url + _query(event="active", period="week", rstart="active"))
        page = watched.page
        assert await page.get_attribute("body", "data-state") == "ready"
        flags = await page.eval_on_selector_all(
            "#chart circle.point", "nodes => nodes.map(n => n.getAttribute('data-complete'))"
        )
        assert flags == ["true"] * (len(flags) - 1) + ["false"]
        assert await page.locator("#chart circle.partial").count() == 1
        assert await page.locator("#chart polyline.partial").count() == 1
        this_week = dt.date.today().isocalendar()
        label = f"{this_week.year}-W{this_week.week:02d}"
        assert label in (await page.text_content("#chart-note") or "")
        own = page.locator(f"#heatmap tr[data-cohort='{label}'] td.cell[data-bucket='0']")
        assert (await own.text_content() or "").endswith("%*")
        assert await own.get_attribute("class") == "cell incomplete"
        assert watched.errors == []
        await page.close()


async def test_an_empty_prefix_says_what_to_do_next(
    browser: Browser, server: EmbeddedRedis
) -> None:
    """With nothing under the prefix, the page names it and offers mark_event, --prefix, demo."""
    prefix = f"t{uuid4().hex[:12]}"
    async with _app_of(server, prefix) as url:
        page = await browser.new_page()
        watched = Watched(page)
        await page.goto(url)
        await page.wait_for_selector("body[data-state=empty]", timeout=15_000)
        assert await page.is_visible("#empty")
        assert await page.text_content("#empty-prefix") == prefix
        text = await page.text_content("#empty") or ""
        assert "tracker.mark_event" in text
        assert "bitlens serve --prefix NAME" in text
        assert "bitlens demo --serve" in text
        assert watched.errors == []
        await page.close()


async def test_retention_defaults_to_another_cohort_event_and_dates_are_iso(
    browser: Browser, base_url: str
) -> None:
    """Without parameters: signed_up -> active, not active -> active; dates read YYYY-MM-DD."""
    watched = await _open(browser, base_url)
    page = watched.page
    assert await page.input_value("#rstart") == "signed_up"
    assert await page.input_value("#rreturn") == "active"
    assert await page.text_content("#retention-start") == "signed_up"
    iso = re.compile(r"\d{4}-\d{2}-\d{2}")
    for field in ("#start", "#end", "#lookup-at"):
        assert iso.fullmatch(await page.input_value(field)), field
        assert await page.get_attribute(field, "type") == "text"
        assert await page.get_attribute(field, "placeholder") == "YYYY-MM-DD"
    status = await page.text_content("#status") or ""
    assert re.fullmatch(r"updated \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", status), status
    assert watched.errors == []
    await page.close()


PRO = {user for user in range(1, 301) if user % 3 == 0}


@pytest.fixture(scope="module")
async def reports_url(server: EmbeddedRedis, seed: Seed) -> AsyncIterator[str]:
    """The seeded data plus a ``pro`` segment (every third user), served at ``/bitlens/``."""
    prefix = f"t{uuid4().hex[:12]}"
    async with Tracker(server.url, prefix=prefix) as tracker:
        await tracker.mark_events(seed.marks)
        for user in sorted(PRO):
            await tracker.mark_unique("pro", user)
    async with _app_of(server, prefix) as url:
        yield url + _query(
            event="active",
            period="week",
            start=FIRST_DAY.isoformat(),
            end=LAST_DAY.isoformat(),
            rstart="signed_up",
            rreturn="active",
            rev="active",
            steps="signed_up, active",
            segments="pro",
        )


def _sunday(week: int) -> dt.date:
    return FIRST_DAY + dt.timedelta(weeks=week, days=6)


def _week(seed: Seed, event: str, week: int) -> set[int]:
    if week < 0:
        return set()
    return seed.active_between(event, _sunday(week) - dt.timedelta(days=6), _sunday(week))


def _cut(users: set[int], segment: set[int] | None) -> set[int]:
    return users if segment is None else users & segment


async def _pick(page: Page, kind: str, segment: str) -> None:
    await page.select_option(f"#{kind}-segment", label=segment)


async def test_engagement_chart_shows_rolling_windows_and_ratios(
    browser: Browser, reports_url: str, seed: Seed
) -> None:
    """DAU, WAU and MAU at each week's Sunday and DAU/MAU, for all users and for ``pro``."""
    watched = await _open(browser, reports_url)
    page = watched.page
    assert await page.get_attribute("body", "data-state") == "ready"
    for segment, users in (("all users", None), ("pro", PRO)):
        await _pick(page, "engagement", segment)
        shown = await page.eval_on_selector_all(
            "#engagement-chart circle.point",
            "nodes => nodes.map(n => [n.dataset.window, n.dataset.label, Number(n.dataset.count)])",
        )
        expected: list[tuple[str, str, int]] = []
        for window, width in (("day", 1), ("week", 7), ("month", 30)):
            for i, label in enumerate(WEEKS):
                last = _sunday(i)
                found = seed.active_between("active", last - dt.timedelta(days=width - 1), last)
                expected.append((window, label, len(_cut(found, users))))
        assert shown == [list(row) for row in expected], segment
        ratios = await page.eval_on_selector_all(
            "#ratio-chart circle.ratio[data-name='DAU/MAU']",
            "nodes => nodes.map(n => Number(n.dataset.value))",
        )
        by = {(w, label): n for w, label, n in expected}
        assert ratios == pytest.approx(
            [by["day", label] / by["month", label] for label in WEEKS if by["month", label]]
        )
    assert await page.locator("#engagement-legend .series-name").all_text_contents() == [
        "DAU",
        "WAU",
        "MAU",
    ]
    assert watched.errors == []
    await page.close()


async def test_lifecycle_bars_put_the_dormant_below_the_axis(
    browser: Browser, reports_url: str, seed: Seed
) -> None:
    """New, returning, resurrecting and (negative) dormant per week, total and ``pro``."""
    watched = await _open(browser, reports_url)
    page = watched.page
    for segment, users in (("all users", None), ("pro", PRO)):
        await _pick(page, "lifecycle", segment)
        bars = await page.eval_on_selector_all(
            "#lifecycle-chart rect.bar",
            "nodes => nodes.map(n => [n.dataset.label, n.dataset.part, Number(n.dataset.count),"
            " Number(n.getAttribute('y')), Number(n.getAttribute('height'))])",
        )
        expected = []
        for i, label in enumerate(WEEKS):
            active = _cut(_week(seed, "active", i), users)
            previous = _cut(_week(seed, "active", i - 1), users)
            new = active & _week(seed, "signed_up", i)
            parts = {
                "new": len(new),
                "returning": len((active & previous) - new),
                "resurrecting": len(active - previous - new),
                "dormant": -len(previous - active),
            }
            expected += [[label, part, n] for part, n in parts.items()]
        assert [bar[:3] for bar in bars] == expected, segment
        axis = float(await page.get_attribute("#lifecycle-chart line.axis", "y1") or "nan")
        for label, part, count, y, height in bars:
            if part == "dormant" and count:
                assert y == pytest.approx(axis), label  # hangs from the axis
            elif count:
                assert y + height <= axis + 1e-6, (label, part)
    assert watched.errors == []
    await page.close()


async def test_stickiness_histogram_counts_weeks_active(
    browser: Browser, reports_url: str, seed: Seed
) -> None:
    """Bars k = 1..6: users active in exactly k of the six weeks, total and ``pro``."""
    watched = await _open(browser, reports_url)
    page = watched.page
    for segment, users in (("all users", None), ("pro", PRO)):
        await _pick(page, "stickiness", segment)
        bars = await page.eval_on_selector_all(
            "#stickiness-chart rect.bar",
            "nodes => nodes.map(n => [Number(n.dataset.k), Number(n.dataset.count),"
            " Number(n.dataset.atLeast)])",
        )
        weeks = dict.fromkeys(range(1, 301), 0)
        for i in range(len(WEEKS)):
            for user in _week(seed, "active", i):
                weeks[user] += 1
        exactly = [
            sum(1 for u, n in weeks.items() if n == k and (users is None or u in users))
            for k in range(1, 7)
        ]
        assert bars == [[k, exactly[k - 1], sum(exactly[k - 1 :])] for k in range(1, 7)]
    assert watched.errors == []
    await page.close()


async def test_funnel_shows_each_step_and_its_conversion(
    browser: Browser, reports_url: str, seed: Seed
) -> None:
    """signed_up -> active by week: users at each step and the share kept, total and ``pro``."""
    watched = await _open(browser, reports_url)
    page = watched.page
    for segment, users in (("all users", None), ("pro", PRO)):
        await _pick(page, "funnel", segment)
        bars = await page.eval_on_selector_all(
            "#funnel-chart rect.bar",
            "nodes => nodes.map(n => [n.dataset.event, Number(n.dataset.count)])",
        )
        signed = {u for i in range(6) for u in _week(seed, "signed_up", i)}
        signed = _cut(signed, users)
        converted = {
            u
            for u in signed
            for i in range(6)
            if u in _week(seed, "signed_up", i)
            and any(u in _week(seed, "active", j) for j in range(i, 6))
        }
        assert bars == [["signed_up", len(signed)], ["active", len(converted)]], segment
        shares = await page.eval_on_selector_all(
            "#funnel-chart text.value[data-step='2']", "nodes => nodes.map(n => n.textContent)"
        )
        assert shares == [f"{len(converted)} · {100 * len(converted) / len(signed):.1f}%"]
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "dashboard-reports.png", full_page=True)
    assert watched.errors == []
    await page.close()
