"""bitlens.compat.bitmapist against bitmapist 3.119: the same calls, the same answers.

The sequence of :mod:`harness.bitmapist_calls` runs twice on one private server per binary:
first through bitmapist 3.119 itself (in its own venv, as a script), then, after a
``FLUSHALL``, through ``bitlens.compat.bitmapist`` in this process. Every answer must be
equal, as JSON, label by label (so ``0`` is not ``0.0``), except the labels under a prefix
of :data:`~harness.bitmapist_calls.ALLOWED_DIFFERENCES`, which must all differ.
"""

from __future__ import annotations

import importlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bitlens.embedded import EmbeddedRedis
from harness import AdminClient
from harness.bitmapist_calls import ALLOWED_DIFFERENCES, FAMILIES, family_of, run_calls

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import ModuleType

CALLS_SCRIPT = Path(__file__).resolve().parent / "harness" / "bitmapist_calls.py"
"""The sequence, run as a script by bitmapist's venv."""

PUBLIC_NAMES = (
    "setup_redis",
    "mark_event",
    "unmark_event",
    "mark_unique",
    "unmark_unique",
    "MonthEvents",
    "WeekEvents",
    "DayEvents",
    "HourEvents",
    "YearEvents",
    "UniqueEvents",
    "from_date",
    "len",
    "in",
    "iter",
    "get_uuids",
    "get_count",
    "has_events_marked",
    "delta",
    "next",
    "prev",
    "period_start",
    "period_end",
    "BitOpAnd",
    "BitOpOr",
    "BitOpXor",
    "BitOpNot",
    "get_event_names",
    "delete_temporary_bitop_keys",
    "delete_runtime_bitop_keys",
    "get_dates_data",
    "delete_all_events",
)
"""bitmapist's public names (and protocols) the sequence must exercise."""

OPERATOR_FAMILIES = {"&": "operator_and", "|": "operator_or", "^": "operator_xor"}
"""The family of each binary operator's steps."""

COMPARED = [family for family in FAMILIES if f"{family}:" not in ALLOWED_DIFFERENCES]
"""The families whose every answer must be equal."""

NOT_CALLABLE = {"TRACK_HOURLY", "TRACK_UNIQUE"}
"""Names in the compat module's ``__all__`` that are settings, not calls."""


@dataclass(frozen=True)
class Answers:
    """Both libraries' answers to the sequence, in order, as ``[label, answer]`` pairs."""

    bitmapist: list[list[Any]]
    compat: list[list[Any]]

    def by_label(self) -> dict[str, tuple[str, str]]:
        """``label -> (bitmapist's JSON, compat's JSON)`` for the labels both answered."""
        ours = {str(label): json.dumps(answer) for label, answer in self.compat}
        return {
            str(label): (json.dumps(answer), ours[str(label)])
            for label, answer in self.bitmapist
            if label in ours
        }


def compat_modules() -> tuple[ModuleType, ModuleType]:
    """``bitlens.compat.bitmapist`` and its ``cohort``, imported when first needed."""
    bm = importlib.import_module("bitlens.compat.bitmapist")
    cohort = importlib.import_module("bitlens.compat.bitmapist.cohort")
    return bm, cohort


def run_bitmapist(python: Path, server: EmbeddedRedis) -> list[list[Any]]:
    """Run the sequence through bitmapist 3.119 in its venv; return its ``[label, answer]``s."""
    done = subprocess.run(
        [str(python), str(CALLS_SCRIPT), "--host", server.host, "--port", str(server.port)],
        capture_output=True,
        check=False,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:]
    report = json.loads(done.stdout)
    assert report["bitmapist"] == "3.119"
    calls: list[list[Any]] = report["calls"]
    return calls


def flushall(server: EmbeddedRedis) -> None:
    """Delete every key of ``server``."""
    admin = AdminClient(server.host, server.port)
    try:
        assert admin.call("FLUSHALL") == "OK"
    finally:
        admin.close()


@pytest.fixture(scope="module")
def compat_server(redis_binary: str) -> Iterator[EmbeddedRedis]:
    """A server of this module's own: the sequence ends with ``delete_all_events()``."""
    with EmbeddedRedis(redis_binary) as server:
        yield server


@pytest.fixture(scope="module")
def answers(compat_server: EmbeddedRedis, bitmapist_python: Path) -> Answers:
    """bitmapist answers the sequence, the server is flushed, then the compat module does.

    The compat module is sync (it waits on its own loop thread), so this fixture is sync;
    afterwards its default system points back at bitmapist's default, closing the tracker
    that used this server.
    """
    theirs = run_bitmapist(bitmapist_python, compat_server)
    flushall(compat_server)
    bm, cohort = compat_modules()
    try:
        ours = run_calls(bm, cohort, compat_server.host, compat_server.port)
    finally:
        bm.setup_redis("default", "localhost", 6379)
    return Answers(theirs, ours)


@pytest.mark.parametrize("family", COMPARED)
def test_answers_equal_bitmapists(answers: Answers, family: str) -> None:
    """Every answer of one family equals bitmapist 3.119's, as JSON."""
    pairs = answers.by_label()
    labels = [label for label in pairs if family_of(label) == family]
    assert labels, f"no step of family {family!r}"
    differing = {
        label: {"bitmapist": pairs[label][0][:600], "compat": pairs[label][1][:600]}
        for label in labels
        if not any(label.startswith(prefix) for prefix in ALLOWED_DIFFERENCES)
        and pairs[label][0] != pairs[label][1]
    }
    assert not differing, json.dumps(differing, indent=1)


def test_both_answer_the_same_labels_in_order(answers: Answers) -> None:
    """Both runs recorded the same labels in the same order."""
    assert [label for label, _ in answers.compat] == [label for label, _ in answers.bitmapist]


@pytest.mark.parametrize("prefix", list(ALLOWED_DIFFERENCES))
def test_every_allowed_difference_differs(answers: Answers, prefix: str) -> None:
    """Each allowed prefix labels some steps, and every one of them really differs."""
    pairs = answers.by_label()
    labels = [label for label in pairs if label.startswith(prefix)]
    assert labels, f"no step is labelled {prefix!r}"
    same = [label for label in labels if pairs[label][0] == pairs[label][1]]
    assert not same, f"allowed to differ but equal (a stale allowance): {same}"


def test_complement_is_refused_without_a_universe(answers: Answers) -> None:
    """Every ``not:`` step raises UniverseUnavailable in bitlens, as the allowance says."""
    got = {label: answer for label, answer in answers.compat if str(label).startswith("not:")}
    assert got
    assert all(answer == {"error": "UniverseUnavailable"} for answer in got.values()), got


def test_snapshot_steps_count_the_later_mark_in_bitlens(answers: Answers) -> None:
    """A mark made after a ``snapshot:`` object was built counts in bitlens, not in bitmapist."""
    for label, answer in answers.compat:
        if str(label).startswith("snapshot:"):
            assert answer == {"before": 0, "after": 1, "in": True}, label
    for label, answer in answers.bitmapist:
        if str(label).startswith("snapshot:"):
            assert answer == {"before": 0, "after": 0, "in": False}, label


def test_sequence_covers_every_public_name(answers: Answers) -> None:
    """Some step exercises each public name, each operator, and each label family."""
    families = {family_of(str(label)) for label, _ in answers.bitmapist}
    names = {str(label) for label, _ in answers.bitmapist}
    missing = [name for name in PUBLIC_NAMES if name not in families | {"BitOpNot"}]
    missing += [op for op, family in OPERATOR_FAMILIES.items() if family not in families]
    missing += [family for family in FAMILIES if family not in families]
    assert any(label.startswith("not:BitOpNot:") for label in names) is not False
    assert any(label.startswith("not:invert:") for label in names)
    assert not missing, missing


def test_every_compat_call_is_in_the_sequence() -> None:
    """Each callable in the compat module's ``__all__`` (and its cohort's data call) is covered."""
    bm, _ = compat_modules()
    exported: list[str] = [name for name in bm.__all__ if name not in NOT_CALLABLE]
    uncovered = [name for name in exported if name not in PUBLIC_NAMES]
    assert not uncovered, uncovered


def test_bitmapist_side_is_deterministic(
    answers: Answers, compat_server: EmbeddedRedis, bitmapist_python: Path
) -> None:
    """A second run of the sequence through bitmapist, on an empty server, answers the same."""
    flushall(compat_server)
    try:
        again = run_bitmapist(bitmapist_python, compat_server)
    finally:
        flushall(compat_server)
    assert json.dumps(again) == json.dumps(answers.bitmapist)
