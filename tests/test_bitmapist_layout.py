"""bitlens reads and writes bitmapist's layout in place, checked against bitmapist 3.119.

bitmapist (in a venv of its own: it needs redis-py < 6) marks a workload at every
granularity, across ISO-week and year boundaries; a tracker with :class:`BitmapistSchema`
answers the same questions on the same server. Then bitlens marks the workload and
bitmapist answers. Both are also checked against a model of plain Python sets.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import anyio
import pytest

from _helpers import connect
from bitlens import (
    BitmapistSchema,
    BitOpAnd,
    BitOpDiff,
    BitOpOr,
    BitOpXor,
    DayEvents,
    Expr,
    HourEvents,
    MonthEvents,
    Tracker,
    UniqueEvents,
    WeekEvents,
    YearEvents,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import redis.asyncio

    from bitlens.embedded import EmbeddedRedis

pytestmark = pytest.mark.anyio

UTC = dt.timezone.utc
SIDE = Path(__file__).resolve().parent / "harness" / "bitmapist_side.py"
Json: TypeAlias = list[Any]
Question: TypeAlias = tuple[str, Json, list[int]]
KINDS = ("count", "has", "members", "contains")

# Days around two ISO years of 53 weeks (2020 and 2026) and their new years, and November.
DAYS = [
    *(dt.date(2020, 12, 27) + dt.timedelta(days=n) for n in range(11)),
    *(dt.date(2026, 11, 28) + dt.timedelta(days=n) for n in range(5)),
    *(dt.date(2026, 12, 26) + dt.timedelta(days=n) for n in range(12)),
]


def workload(tag: str, seed: int = 14) -> list[tuple[str, int, dt.datetime, bool, bool]]:
    """``(event, id, at, hourly, unique)`` marks of three events; ``big`` has far ids."""
    rng = random.Random(seed)
    marks = []
    for event, ids in (("active", 400), ("paid", 120), ("big", 40)):
        for _ in range(ids * 3):
            uid = rng.randrange(600)
            if event == "big" and rng.random() < 0.3:
                uid = rng.choice((70_001, 200_003, 2**20 + 5))
            day = rng.choice(DAYS)
            at = dt.datetime(day.year, day.month, day.day, rng.randrange(24), tzinfo=UTC)
            marks.append((f"{tag}.{event}", uid, at, rng.random() < 0.5, rng.random() < 0.3))
    return marks


def _leaves(tag: str) -> list[Json]:
    """A bitmap of every granularity of every event, the year boundaries included."""
    out: list[Json] = []
    for name in ("active", "paid", "big"):
        event = f"{tag}.{name}"
        out += [["month", event, 2020, 12], ["month", event, 2026, 12], ["month", event, 2027, 1]]
        out += [["week", event, 2020, 53], ["week", event, 2021, 1], ["week", event, 2026, 53]]
        out += [["week", event, 2026, 48], ["day", event, 2027, 1, 1], ["day", event, 2021, 1, 3]]
        out += [["hour", event, 2026, 12, 31, 23], ["hour", event, 2021, 1, 1, 0]]
        out += [["year", event, 2026], ["year", event, 2021], ["unique", event]]
    return out


def questions(tag: str) -> list[Question]:
    """Every kind of question over every leaf, pairs, and trees three deep."""
    leaves = _leaves(tag)
    active, paid, big = (f"{tag}.{name}" for name in ("active", "paid", "big"))
    m_active, m_paid, m_big = (["month", e, 2026, 12] for e in (active, paid, big))
    w53 = ["week", active, 2026, 53]
    trees: list[Json] = [
        ["and", m_active, m_paid],
        ["or", m_active, m_big],
        ["xor", m_paid, m_big],
        ["diff", m_big, m_active],  # big is longer than active: bitmapist's a & ~b drops its end
        ["diff", ["year", active, 2026], ["unique", paid], m_big],
        ["and", ["or", m_active, ["xor", w53, ["day", paid, 2026, 12, 28]]], ["unique", active]],
        ["xor", ["and", ["or", m_active, m_big], ["year", paid, 2026]], ["week", big, 2020, 53]],
    ]
    ids = [0, 1, 7, 599, 70_001, 200_003, 2**20 + 5, 2**20 + 6]
    return [
        (kind, expr, ids if kind == "contains" else []) for expr in leaves + trees for kind in KINDS
    ]


def to_expr(j: Json) -> Expr:
    """The bitlens expression of a question's JSON expression."""
    kind, *args = j
    leaf: dict[str, Any] = {
        "month": MonthEvents,
        "week": WeekEvents,
        "day": DayEvents,
        "hour": HourEvents,
        "year": YearEvents,
        "unique": UniqueEvents,
    }
    if kind in leaf:
        built: Expr = leaf[kind](*args)
        return built
    parts = [to_expr(a) for a in args]
    if kind == "diff":
        return BitOpDiff(parts[0], *parts[1:])
    return {"and": BitOpAnd, "or": BitOpOr, "xor": BitOpXor}[kind](*parts)


def model(marks: list[tuple[str, int, dt.datetime, bool, bool]], j: Json) -> set[int]:
    """The members of a JSON expression, from the marks with plain sets."""
    kind, *args = j
    if kind in ("and", "or", "xor", "diff"):
        sets = [model(marks, a) for a in args]
        out = sets[0]
        for s in sets[1:]:
            out = {"and": out & s, "or": out | s, "xor": out ^ s, "diff": out - s}[kind]
        return out
    event, *when = args
    found = set()
    for name, uid, at, hourly, unique in marks:
        if name != event:
            continue
        iso = at.isocalendar()
        hit = {
            "month": [at.year, at.month],
            "week": [iso[0], iso[1]],
            "day": [at.year, at.month, at.day],
            "hour": [at.year, at.month, at.day, at.hour] if hourly else None,
            "year": [at.year],
            "unique": [] if unique else None,
        }[kind]
        if hit == when:
            found.add(uid)
    return found


def model_answer(marks: list[tuple[str, int, dt.datetime, bool, bool]], q: Question) -> Any:
    """What a question's answer must be, by :func:`model`."""
    kind, expr, ids = q
    members = model(marks, expr)
    if kind == "count":
        return len(members)
    if kind == "has":
        return bool(members)
    if kind == "members":
        return sorted(members)
    return [uid in members for uid in ids]


async def ask(tracker: Tracker, q: Question) -> Any:
    """bitlens' answer to a question."""
    kind, j, ids = q
    expr = to_expr(j)
    if kind == "count":
        return await tracker.count(expr)
    if kind == "has":
        return await tracker.has_events(expr)
    if kind == "members":
        return [uid async for uid in tracker.members(expr)]
    return await tracker.contains_many(expr, ids)


async def run_bitmapist(python: Path, server: EmbeddedRedis, job: dict[str, Any]) -> list[Any]:
    """Run the bitmapist side on ``job``; return its answers."""
    done = await anyio.run_process(
        [str(python), str(SIDE), "--host", server.host, "--port", str(server.port)],
        input=json.dumps(job).encode(),
    )
    report = json.loads(done.stdout)
    assert report["bitmapist"] == "3.119"
    answers: list[Any] = report["answers"]
    return answers


@dataclass(frozen=True)
class Side:
    """A workload marked by one library, and the other library's answers about it."""

    tag: str
    marks: list[tuple[str, int, dt.datetime, bool, bool]]
    questions: list[Question]
    answers: list[Any]
    keys: dict[str, bytes]


async def _keys_of(connection: redis.asyncio.Redis, tag: str) -> dict[str, bytes]:
    """Every key of a workload's events (the tag replaced by ``T``) and its bytes."""
    names = [k async for k in connection.scan_iter(match=f"trackist_{tag}.*", count=1000)]
    values = [await connection.get(name) for name in names]
    return {
        name.decode().replace(tag, "T"): value
        for name, value in zip(names, values, strict=True)
        if isinstance(value, bytes)
    }


async def _delete(connection: redis.asyncio.Redis, tag: str) -> None:
    keys = [k async for k in connection.scan_iter(match=f"trackist_{tag}.*", count=1000)]
    if keys:
        await connection.delete(*keys)


@pytest.fixture(scope="module")
async def by_bitmapist(
    redis_server: EmbeddedRedis, redis_url: str, bitmapist_python: Path
) -> AsyncIterator[Side]:
    """bitmapist marks the workload; bitlens answers every question about it."""
    tag = f"bm{random.randrange(10**9)}"
    marks = workload(tag)
    qs = questions(tag)
    job = {"marks": [[e, u, at.isoformat(), h, q] for e, u, at, h, q in marks]}
    await run_bitmapist(bitmapist_python, redis_server, job)
    connection = connect(redis_url)
    async with Tracker(connection, schema=BitmapistSchema()) as tracker:
        answers = [await ask(tracker, q) for q in qs]
    yield Side(tag, marks, qs, answers, await _keys_of(connection, tag))
    await _delete(connection, tag)
    await connection.aclose()


@pytest.fixture(scope="module")
async def by_bitlens(
    redis_server: EmbeddedRedis, redis_url: str, bitmapist_python: Path
) -> AsyncIterator[Side]:
    """bitlens marks the workload (one mark at a time and in batches); bitmapist answers."""
    tag = f"bl{random.randrange(10**9)}"
    marks = workload(tag)
    qs = questions(tag)
    connection = connect(redis_url)
    async with Tracker(connection, schema=BitmapistSchema()) as tracker:
        for event, uid, at, hourly, unique in marks[:200]:
            await tracker.mark_event(event, uid, at, track_hourly=hourly, track_unique=unique)
        for hourly in (False, True):
            for unique in (False, True):
                batch = [(e, u, at) for e, u, at, h, q in marks[200:] if (h, q) == (hourly, unique)]
                await tracker.mark_events(batch, track_hourly=hourly, track_unique=unique)
    answers = await run_bitmapist(bitmapist_python, redis_server, {"questions": qs})
    yield Side(tag, marks, qs, answers, await _keys_of(connection, tag))
    await _delete(connection, tag)
    await connection.aclose()


def _differences(side: Side, kind: str) -> list[tuple[Json, Any, Any]]:
    return [
        (q[1], got, model_answer(side.marks, q))
        for q, got in zip(side.questions, side.answers, strict=True)
        if q[0] == kind and got != model_answer(side.marks, q)
    ]


@pytest.mark.parametrize("kind", KINDS)
async def test_bitlens_answers_about_bitmapists_marks(by_bitmapist: Side, kind: str) -> None:
    """On bitmapist's keys, bitlens answers each question as a model of Python sets does."""
    assert _differences(by_bitmapist, kind) == []


@pytest.mark.parametrize("kind", KINDS)
async def test_bitmapist_answers_about_bitlens_marks(by_bitlens: Side, kind: str) -> None:
    """On keys bitlens wrote, bitmapist 3.119 answers each question as the set model does."""
    assert _differences(by_bitlens, kind) == []


async def test_both_write_the_same_keys_and_bytes(by_bitmapist: Side, by_bitlens: Side) -> None:
    """The same marks give the same key names holding the same bytes, whoever wrote them."""
    assert len(by_bitlens.keys) > 100
    assert by_bitlens.keys == by_bitmapist.keys


async def test_the_workload_answers_are_not_trivial(by_bitmapist: Side) -> None:
    """The questions have varied answers: non-empty and empty sets, true and false."""
    counts = {
        a
        for q, a in zip(by_bitmapist.questions, by_bitmapist.answers, strict=True)
        if q[0] == "count"
    }
    assert 0 in counts
    assert len(counts) > 20
