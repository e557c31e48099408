"""The ``bitlens`` command line: its expression parser, then the real entry point.

Parser tests are pure. Every other test runs the real entry point as a process of its own
(``python -m bitlens``, forked after the import by ``_forkserver``, or the installed
``bitlens`` script) against a real redis-server, after marking a small, known data set
with a tracker:

* ISO week 2026-W45 (Monday 2026-11-02): users 1-10 sign up;
* week 2026-W46: users 11-15 sign up, users 1-6 are active;
* week 2026-W47: users 1, 2, 3, 11 and 12 are active;
* user 5 did ``my:event`` on 2026-11-02; user 2 is ``churned`` (unique, no time).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import shlex
import signal
import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import anyio.to_thread
import pytest

from _forkserver import arun_python
from _proxy import RoundTripProxy
from bitlens import (
    DayEvents,
    EventsBetween,
    EventTemplate,
    HourEvents,
    MonthEvents,
    Tracker,
    UniqueEvents,
    Universe,
    WeekEvents,
    YearEvents,
    last,
)
from bitlens.cli._count import print_counts
from bitlens.cli._hints import event_names, unknown_events_note
from bitlens.cli._parse import ParseError, parse_expression
from bitlens.cli._retention import criterion
from bitlens.cohort import retention
from bitlens.embedded import EmbeddedRedis

if TYPE_CHECKING:
    from collections.abc import Mapping

    import redis.asyncio
    from redis.asyncio.cluster import RedisCluster

    from bitlens import Expr
    from harness import EmbeddedCluster

MONDAY = dt.datetime(2026, 11, 2, 9)
"""Monday of ISO week 2026-W45, 09:00 UTC: when the first cohort signs up."""

WEEK = dt.timedelta(weeks=1)

NOW = "2026-11-18T12:00"
"""Wednesday of 2026-W47: W47 is under way, W48 has not started."""

TABLE = """\
signed_up -> active: weekly cohorts (recurring), returned in bucket k
cohort    size     0       1       2
2026-W45    10  0.0%   60.0%  30.0%*
2026-W46     5  0.0%  40.0%*
average         0.0%   60.0%
* not over yet: may still grow, left out of the average
"""
"""``bitlens retention`` of the data set, as the command-line guide shows it."""

CLI_GUIDE = Path(__file__).resolve().parent.parent / "docs" / "cli.md"

pytestmark = pytest.mark.anyio


# -- helpers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    """What a finished ``bitlens`` process left: exit code, stdout and stderr."""

    code: int
    out: str
    err: str


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return this process's environment without REDIS_URL or BITLENS_DEBUG, plus ``extra``.

    :param extra: variables to set
    """
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "BITLENS_DEBUG")}
    env.update(extra or {})
    return env


async def bitlens(*args: str, env: Mapping[str, str] | None = None) -> Ran:
    """Run ``python -m bitlens ARGS`` to the end and return what it left (forked: _forkserver).

    :param args: the command-line arguments
    :param env: extra environment variables (REDIS_URL is unset unless given here)
    """
    done = await arun_python(["-m", "bitlens", *args], env=_env(env), timeout=60)
    return Ran(done.returncode, done.stdout.decode(), done.stderr.decode())


def readme_example(command: str) -> tuple[list[str], str]:
    """Return the arguments and the output of the guide's ``$ bitlens COMMAND`` example.

    :param command: the subcommand whose example (a ``text`` block of docs/cli.md) to return
    """
    section = CLI_GUIDE.read_text(encoding="utf-8")
    for block in re.findall(r"```text\n(.*?)```", section, re.DOTALL):
        first, _, printed = block.partition("\n")
        if first.startswith(f"$ bitlens {command} "):
            return shlex.split(first[2:])[1:], printed
    raise AssertionError(f"no `$ bitlens {command}` example in docs/cli.md")


def _free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _get(url: str) -> tuple[int, str, str] | None:
    """GET ``url``: ``(status, content type, body)``, or ``None`` if nothing answers.

    :param url: an ``http://`` URL
    """
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            body = response.read().decode("utf-8", "replace")
            return response.status, response.headers.get("Content-Type", ""), body
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), ""
    except OSError:
        return None


async def _mark_data_set(tracker: Tracker) -> None:
    """Mark the module's data set (see the module docstring).

    :param tracker: the tracker to mark with
    """
    await tracker.mark_events(
        [("signed_up", uid, MONDAY) for uid in range(1, 11)]
        + [("signed_up", uid, MONDAY + WEEK) for uid in range(11, 16)]
        + [("active", uid, MONDAY + WEEK) for uid in range(1, 7)]
        + [("active", uid, MONDAY + 2 * WEEK) for uid in (1, 2, 3, 11, 12)]
        + [("my:event", 5, MONDAY)]
    )
    await tracker.mark_unique("churned", 2)


@pytest.fixture
async def data(client: redis.asyncio.Redis, prefix: str, redis_url: str) -> list[str]:
    """Mark the data set under the test's prefix; return ``--url URL --prefix PREFIX``.

    :param client: a client of the session server
    :param prefix: the test's key prefix
    :param redis_url: the session server's URL
    """
    async with Tracker(client, prefix=prefix) as tracker:
        await _mark_data_set(tracker)
    return ["--url", redis_url, "--prefix", prefix]


# -- the expression parser (pure) ---------------------------------------------------------------

A = MonthEvents("a", 2026, 11)
B = MonthEvents("b", 2026, 11)
C = MonthEvents("c", 2026, 11)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("month:active:2026-11", MonthEvents("active", 2026, 11)),
        ("week:active:2026-W48", WeekEvents("active", 2026, 48)),
        ("week:active:2026-w1", WeekEvents("active", 2026, 1)),
        ("day:active:2026-11-27", DayEvents("active", 2026, 11, 27)),
        ("hour:active:2026-11-27T13", HourEvents("active", 2026, 11, 27, 13)),
        ("year:active:2026", YearEvents("active", 2026)),
        ("unique:signed_up", UniqueEvents("signed_up")),
        ("last:active:7d", last("active", days=7)),
        ("last:active:24h", last("active", hours=24)),
        ("all", Universe()),
    ],
)
def test_each_leaf_kind_parses_to_its_expression(text: str, expected: Expr) -> None:
    """Every kind of leaf parses to the expression the library spells the same way."""
    assert parse_expression(text) == expected


def test_range_ends_are_inclusive_days() -> None:
    """``range:E:D1..D2`` covers D1 to D2 both included (the end is the next midnight)."""
    assert parse_expression("range:active:2026-11-01..2026-11-15") == EventsBetween(
        "active", dt.date(2026, 11, 1), dt.date(2026, 11, 16)
    )


def test_range_with_hours_ends_after_its_last_hour_and_reads_hour_bitmaps() -> None:
    """Hour bounds include the last hour and mark the range as hourly."""
    assert parse_expression("range:a:2026-11-27T10..2026-11-27T12") == EventsBetween(
        "a", dt.datetime(2026, 11, 27, 10), dt.datetime(2026, 11, 27, 13), hourly=True
    )


def test_not_binds_tighter_than_and() -> None:
    """``~a & b`` is ``(~a) & b``."""
    assert parse_expression("~month:a:2026-11 & month:b:2026-11") == (~A) & B


def test_and_binds_tighter_than_xor() -> None:
    """``a ^ b & c`` is ``a ^ (b & c)``."""
    assert parse_expression("month:a:2026-11 ^ month:b:2026-11 & month:c:2026-11") == A ^ (B & C)


def test_xor_binds_tighter_than_or() -> None:
    """``a | b ^ c`` is ``a | (b ^ c)``."""
    assert parse_expression("month:a:2026-11 | month:b:2026-11 ^ month:c:2026-11") == A | (B ^ C)


def test_or_and_minus_share_the_lowest_level_left_to_right() -> None:
    """``a | b - c`` is ``(a | b) - c`` and ``a - b | c`` is ``(a - b) | c``."""
    assert parse_expression("month:a:2026-11 | month:b:2026-11 - month:c:2026-11") == (A | B) - C
    assert parse_expression("month:a:2026-11 - month:b:2026-11 | month:c:2026-11") == (A - B) | C


def test_parentheses_override_precedence() -> None:
    """``(a | b) & ~(c)`` groups as written, with or without spaces."""
    expected = (A | B) & ~C
    assert parse_expression("(month:a:2026-11|month:b:2026-11)&~(month:c:2026-11)") == expected


@pytest.mark.parametrize(
    ("text", "event"),
    [
        ('month:"my:event":2026-11', "my:event"),
        ("month:'a&b|c':2026-11", "a&b|c"),
        (r'month:"say\"hi\"":2026-11', 'say"hi"'),
        ("month:sign-up:2026-11", "sign-up"),
    ],
)
def test_quoted_and_dashed_names(text: str, event: str) -> None:
    """Quotes hold names with syntax characters (backslash escapes); bare names may hold '-'."""
    assert parse_expression(text) == MonthEvents(event, 2026, 11)


def test_templates_take_bare_and_quoted_names() -> None:
    r"""With ``templates=True`` names are ``EventTemplate``\ s, leaves stay constants."""
    assert parse_expression("active & ('ios' | web) - unique:x", templates=True) == (
        EventTemplate("active") & (EventTemplate("ios") | EventTemplate("web"))
    ) - UniqueEvents("x")


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("", "empty expression", 0),
        ("month:active:2026-13", "month 13", 13),
        ("month:active:2026-11 &", "unexpected end", 22),
        ("(month:a:2026-11", "expected ')'", 16),
        ("month:a:2026-11)", "unmatched ')'", 15),
        ("month:a:2026-11 month:b:2026-11", "expected an operator", 16),
        ("mnth:a:2026-11", "unknown kind 'mnth'", 0),
        ('month:"a:2026-11', "unterminated", 6),
        ("week:a:2026-11", "YYYY-Www", 7),
        ("month:a:2026-11-27", "YYYY-MM, got '2026-11-27'", 8),
        ("unique:a:2026", "no period", 8),
        ("month:{a}:2026-11", "invalid event name", 6),
        ("month:a b:2026-11", "expected ':'", 7),
        ("last:a:0d", "at least one", 7),
        ("range:a:2026-11-15..2026-11-01", "ends before", 8),
        ("active & ios", "expected a leaf such as month:active:2026-11", 0),
        ("month:a:2026-11 & & month:b:2026-11", "unexpected '&'", 18),
    ],
)
def test_parse_errors_name_the_problem_and_its_position(
    text: str, message: str, position: int
) -> None:
    """Each syntax error says what is wrong and where."""
    with pytest.raises(ParseError) as caught:
        parse_expression(text)
    assert message in caught.value.message
    assert caught.value.position == position


def test_parse_error_renders_a_caret_under_the_position() -> None:
    """``render()`` shows the message, the expression, and a caret under the culprit."""
    with pytest.raises(ParseError) as caught:
        parse_expression("month:a:2026-11 & (week:a:2026-W48")
    assert caught.value.render().splitlines()[1:] == [
        "  month:a:2026-11 & (week:a:2026-W48",
        "                                    ^",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("on", "on"),
        ("on_or_after", "on_or_after"),
        ("1-3,4-7", [(1, 3), (4, 7)]),
        ("0,1,2-5", [(0, 0), (1, 1), (2, 5)]),
    ],
)
def test_criterion_argument(text: str, expected: object) -> None:
    """``--criterion`` takes the two names or comma-separated brackets."""
    assert criterion(text) == expected


# -- the entry point, without a server ----------------------------------------------------------


async def test_console_script_help_lists_every_command() -> None:
    """The installed ``bitlens`` script prints help naming each subcommand, exit code 0."""
    script = Path(sys.executable).with_name("bitlens")
    assert script.exists(), f"{script} missing: install the project (pip install -e .)"
    done = await anyio.run_process([str(script), "--help"], env=_env(), check=False)
    assert done.returncode == 0
    listed = done.stdout.decode()
    for command in ("demo", "count", "retention", "report", "events", "serve"):
        assert f"    {command}" in listed


async def test_count_without_url_is_a_usage_error() -> None:
    """With neither --url nor REDIS_URL, count prints its usage and exits 2."""
    ran = await bitlens("count", "all")
    assert ran.code == 2
    assert ran.err.startswith("usage: bitlens count")
    assert "bitlens count: error: no Redis to talk to" in ran.err


async def test_parse_error_exits_2_with_a_caret() -> None:
    """The bad expression of docs/cli.md: usage, the error and a caret on stderr, exit code 2."""
    args, printed = readme_example("count")
    ran = await bitlens(*args, env={"REDIS_URL": "redis://x", "COLUMNS": "80"})
    assert ran.code == 2
    assert ran.err == printed


async def test_retention_usage_error_speaks_in_options() -> None:
    """``--mode first_time`` without ``--history-start`` exits 2 before connecting."""
    ran = await bitlens("retention", "signed_up", "--mode", "first_time", "--url", "redis://x")
    assert ran.code == 2
    assert "--mode first_time needs --history-start DATE" in ran.err


async def test_refused_connection_is_one_line_and_exit_code_1() -> None:
    """Nothing listening: one line naming the URL (password hidden), exit code 1."""
    url = f"redis://:secret@127.0.0.1:{_free_port()}/0"
    ran = await bitlens("events", "--url", url)
    assert ran.code == 1
    assert ran.out == ""
    assert ran.err.startswith("bitlens events: cannot connect to redis://:***@127.0.0.1:")
    assert len(ran.err.splitlines()) == 1
    assert "secret" not in ran.err


async def test_demo_starts_an_embedded_server_without_url() -> None:
    """``bitlens demo`` with no URL runs on a private server and prints its answers."""
    ran = await bitlens("demo", "--users", "300", "--weeks", "2", "--today", "2026-11-27")
    assert ran.code == 0, ran.err
    assert "using an embedded" in ran.err
    assert "bitlens demo: 300 users, 2 weeks to 2026-11-27" in ran.out
    assert "signed up, ever:" in ran.out
    assert "weekly retention" in ran.out


# -- the entry point on a real server -----------------------------------------------------------


async def test_count_prints_one_number_per_expression(data: list[str]) -> None:
    """Several expressions: one count per line, in order."""
    ran = await bitlens(
        "count",
        *data,
        "month:active:2026-11",
        "week:signed_up:2026-W45 - week:active:2026-W46",
        'month:"my:event":2026-11 | unique:churned',
        "~week:active:2026-W47",
    )
    assert ran.code == 0, ran.err
    assert ran.out.splitlines() == ["8", "4", "2", "10"]


async def test_count_json_prints_one_object_per_expression(data: list[str]) -> None:
    """``--json`` prints the expression and its count as one JSON object per line."""
    ran = await bitlens("count", *data, "--json", "range:active:2026-11-09..2026-11-22", "all")
    assert ran.code == 0, ran.err
    assert [json.loads(line) for line in ran.out.splitlines()] == [
        {"expression": "range:active:2026-11-09..2026-11-22", "count": 8},
        {"expression": "all", "count": 15},
    ]


async def test_count_members_prints_ids_one_per_line(data: list[str]) -> None:
    """``--members`` prints the ids, ascending, one per line."""
    ran = await bitlens("count", *data, "--members", "week:active:2026-W46 ^ week:active:2026-W47")
    assert ran.code == 0, ran.err
    assert ran.out.splitlines() == ["4", "5", "6", "11", "12"]


async def test_count_contains_true_exits_0(data: list[str]) -> None:
    """``--contains`` prints true and exits 0 for a member."""
    ran = await bitlens("count", *data, "--contains", "11", "week:active:2026-W47")
    assert (ran.code, ran.out) == (0, "true\n")


async def test_count_contains_false_exits_1(data: list[str]) -> None:
    """``--contains`` prints false and exits 1 for a non-member."""
    ran = await bitlens("count", *data, "--contains", "4", "week:active:2026-W47")
    assert (ran.code, ran.out, ran.err) == (1, "false\n", "")


async def test_count_of_a_misspelled_event_notes_the_known_events(data: list[str]) -> None:
    """A never-marked event still prints 0 and exits 0, and stderr lists the known events."""
    ran = await bitlens("count", *data, "month:actve:2026-11", "month:active:2026-11")
    assert (ran.code, ran.out) == (0, "0\n8\n")
    assert ran.err == (
        f"bitlens count: note: event 'actve' was never marked under prefix {data[-1]!r}; "
        "known events: 'active', 'churned', 'my:event', 'signed_up'\n"
    )


async def test_count_of_a_known_event_answering_0_says_nothing(data: list[str]) -> None:
    """A zero for an event that exists elsewhere in time is a real answer: no note."""
    ran = await bitlens("count", *data, "month:active:2025-01")
    assert (ran.code, ran.out, ran.err) == (0, "0\n", "")


async def test_count_under_an_empty_prefix_suggests_another_prefix(redis_url: str) -> None:
    """Under a prefix holding nothing, the note says so and hints at --prefix."""
    empty = f"e{os.urandom(6).hex()}"
    ran = await bitlens("count", "--url", redis_url, "--prefix", empty, "month:active:2026-11")
    assert (ran.code, ran.out) == (0, "0\n")
    assert ran.err.startswith(
        f"bitlens count: note: nothing was ever marked under prefix {empty!r}"
    )
    assert "--prefix" in ran.err


async def test_members_and_contains_of_a_misspelled_event_note_it(data: list[str]) -> None:
    """--members (no ids) and --contains (false, exit 1) note the unknown event too."""
    members = await bitlens("count", *data, "--members", "week:actve:2026-W46")
    assert (members.code, members.out) == (0, "")
    assert "event 'actve' was never marked" in members.err
    contains = await bitlens("count", *data, "--contains", "1", "week:actve:2026-W46")
    assert (contains.code, contains.out) == (1, "false\n")
    assert "event 'actve' was never marked" in contains.err


async def test_retention_of_a_misspelled_returning_event_notes_it(data: list[str]) -> None:
    """A retention whose returning event was never marked notes it; the table still prints."""
    ran = await bitlens(
        "retention",
        *data,
        "signed_up",
        "actve",
        "--period",
        "week",
        "--cohorts",
        "2",
        "--buckets",
        "2",
        "--end",
        "2026-11-09",
        "--now",
        NOW,
    )
    assert ran.code == 0, ran.err
    assert ran.out.startswith("signed_up -> actve")
    assert ran.err.startswith("bitlens retention: note: event 'actve' was never marked")


async def test_unknown_event_note_costs_one_round_trip_on_a_small_keyspace() -> None:
    """Looking up the known events after an empty answer is one SCAN step, nothing more."""
    with EmbeddedRedis() as server:
        async with (
            RoundTripProxy(server.host, server.port) as proxy,
            Tracker(proxy.url, prefix="p") as tracker,
        ):
            await _mark_data_set(tracker)
            proxy.reset()
            note = await unknown_events_note(tracker, [MonthEvents("actve", 2026, 11)])
            assert proxy.round_trips == 1
    assert note is not None
    assert note.startswith("event 'actve' was never marked under prefix 'p'")


async def test_count_with_non_zero_answers_sends_nothing_more() -> None:
    """When no answer is 0, bitlens count costs its one round trip and no event lookup."""
    with EmbeddedRedis() as server:
        async with (
            RoundTripProxy(server.host, server.port) as proxy,
            Tracker(proxy.url, prefix="p") as tracker,
        ):
            await _mark_data_set(tracker)
            proxy.reset()
            expressions = [MonthEvents("active", 2026, 11), WeekEvents("signed_up", 2026, 45)]
            assert await print_counts(tracker, ["a", "b"], expressions, as_json=False) == 0
            assert proxy.round_trips == 1
            assert "SCAN" not in proxy.command_names


def test_event_names_walk_every_leaf_kind() -> None:
    """event_names finds the events of leaves, templates, ranges and windows under any operator."""
    expr = (
        (MonthEvents("a", 2026, 11) & ~EventTemplate("b"))
        - EventsBetween("c", dt.date(2026, 11, 1), dt.date(2026, 11, 3))
    ) | (last("d", days=7) ^ Universe())
    assert event_names(expr) == {"a", "b", "c", "d"}


async def test_retention_prints_the_readme_table(data: list[str]) -> None:
    """The retention example of docs/cli.md prints its aligned table ('*': not over yet)."""
    args, printed = readme_example("retention")
    ran = await bitlens(*args, *data)  # the test's --prefix comes last: it wins
    assert ran.code == 0, ran.err
    assert ran.out == TABLE == printed


async def test_retention_csv_is_the_library_table(
    data: list[str], client: redis.asyncio.Redis, prefix: str
) -> None:
    """``--format csv --values count`` prints what ``RetentionTable.to_csv`` gives."""
    ran = await bitlens(
        "retention",
        *data,
        "signed_up",
        "active",
        "--period=week",
        "--cohorts=2",
        "--criterion=0,1-2",
        "--end=2026-11-09",
        f"--now={NOW}",
        "--format=csv",
        "--values=count",
    )
    assert ran.code == 0, ran.err
    async with Tracker(client, prefix=prefix) as tracker:
        table = await retention(
            tracker,
            "signed_up",
            "active",
            period="week",
            cohorts=2,
            criterion=[(0, 0), (1, 2)],
            end=dt.date(2026, 11, 9),
            now=dt.datetime.fromisoformat(NOW).replace(tzinfo=dt.timezone.utc),
        )
    assert ran.out == table.to_csv("count")
    assert list(csv.reader(io.StringIO(ran.out)))[1] == ["2026-W45", "10", "0", "6", "1-2"]


async def test_retention_json_holds_every_cell(data: list[str]) -> None:
    """``--format json`` holds the columns, each row's cells and the averages."""
    ran = await bitlens(
        "retention",
        *data,
        "signed_up",
        "active",
        "--period=week",
        "--cohorts=2",
        "--buckets=3",
        "--end=2026-11-09",
        f"--now={NOW}",
        "--format=json",
    )
    assert ran.code == 0, ran.err
    table = json.loads(ran.out)
    assert table["columns"] == ["0", "1", "2"]
    assert [row["size"] for row in table["rows"]] == [10, 5]
    assert [cell["count"] for cell in table["rows"][0]["cells"]] == [0, 6, 3]
    assert table["averages"] == [0.0, 60.0, None]


async def test_events_lists_names_sorted(data: list[str]) -> None:
    """``events`` prints each event name once, sorted; bitlens' own keys are not events."""
    ran = await bitlens("events", *data)
    assert ran.code == 0, ran.err
    assert ran.out.splitlines() == ["active", "churned", "my:event", "signed_up"]


async def test_events_counts_keys_per_event(data: list[str]) -> None:
    """``events --counts --json`` gives each event's number of keys."""
    ran = await bitlens("events", *data, "--counts", "--json")
    assert ran.code == 0, ran.err
    # active: months 2026-11, weeks 46 and 47, two days; churned: one unique bitmap.
    assert json.loads(ran.out) == [
        {"event": "active", "keys": 5},
        {"event": "churned", "keys": 1},
        {"event": "my:event", "keys": 3},
        {"event": "signed_up", "keys": 5},
    ]


async def test_demo_marks_and_reports_on_the_given_url(redis_url: str, prefix: str) -> None:
    """``bitlens demo --url`` marks under its prefix; every simulated user signed up."""
    ran = await bitlens(
        "demo",
        "--url",
        redis_url,
        "--prefix",
        prefix,
        "--users",
        "200",
        "--weeks",
        "2",
        "--today",
        "2026-11-27",
    )
    assert ran.code == 0, ran.err
    assert "using an embedded" not in ran.err
    signed_up = next(line for line in ran.out.splitlines() if "signed up, ever:" in line)
    assert signed_up.split()[-1] == "200"
    listed = await bitlens("events", "--url", redis_url, "--prefix", prefix)
    assert listed.out.splitlines() == ["active", "purchase", "signed_up"]


def _follow_ups(out: str) -> list[list[str]]:
    """Return the ``bitlens ...`` commands the demo printed, as argument lists."""
    return [shlex.split(line)[1:] for line in out.splitlines() if line.startswith("  bitlens ")]


async def test_demo_ends_with_commands_that_read_its_data(redis_url: str, prefix: str) -> None:
    """The demo's printed count, retention and events commands (prefix included) see its data."""
    ran = await bitlens(
        "demo",
        "--url",
        redis_url,
        "--prefix",
        prefix,
        "--users",
        "300",
        "--weeks",
        "2",
        "--today",
        "2026-11-27",
    )
    assert ran.code == 0, ran.err
    commands = {args[0]: args for args in _follow_ups(ran.out)}
    assert sorted(commands) == ["count", "events", "retention", "serve"]
    for args in commands.values():
        assert args[args.index("--prefix") + 1] == prefix
        assert args[args.index("--url") + 1] == redis_url
    active = next(line for line in ran.out.splitlines() if "active in 2026-11 (so far):" in line)
    counted = await bitlens(*commands["count"])
    assert (counted.code, counted.err) == (0, "")
    assert counted.out.splitlines()[0] == active.split()[-1].replace(",", "")
    table = await bitlens(*commands["retention"])
    assert table.code == 0, table.err
    assert table.out.startswith("signed_up -> active: weekly cohorts")
    events = await bitlens(*commands["events"])
    assert [line.split()[0] for line in events.out.splitlines()] == [
        "active",
        "purchase",
        "signed_up",
    ]


async def test_demo_on_an_embedded_server_says_how_to_keep_its_data() -> None:
    """Without a URL the data goes with the server: the demo prints `bitlens demo --serve ...`."""
    ran = await bitlens("demo", "--users", "300", "--weeks", "2", "--today", "2026-11-27")
    assert ran.code == 0, ran.err
    assert "The embedded redis-server stops now" in ran.out
    assert "  bitlens demo --serve --users 300 --weeks 2 --today 2026-11-27 " in ran.out


async def test_demo_retention_marks_the_unfinished_week() -> None:
    """On a Wednesday the demo's current week carries '*' and is left out of the average."""
    ran = await bitlens("demo", "--users", "300", "--weeks", "3", "--today", "2026-11-25")
    assert ran.code == 0, ran.err
    rows = {line.split()[0]: line for line in ran.out.splitlines() if "2026-W4" in line}
    assert rows["2026-W48"].endswith("*")
    assert rows["2026-W47"].endswith("*")  # its bucket 1 is W48
    assert not rows["2026-W46"].split()[-2].endswith("*")
    assert "* not over yet" in ran.out


async def test_demo_after_a_finished_week_marks_only_the_next() -> None:
    """When --today is a past Sunday, the weeks up to it are over: only the next one is '*'."""
    ran = await bitlens("demo", "--users", "300", "--weeks", "2", "--today", "2026-11-29")
    assert ran.code == 0, ran.err
    rows = {line.split()[0]: line.split()[1:] for line in ran.out.splitlines() if "%" in line}
    assert rows["2026-W47"][1:] == [c.rstrip("*") for c in rows["2026-W47"][1:]]
    assert not rows["2026-W48"][1].endswith("*")  # bucket 0: W48 itself, over
    assert rows["2026-W48"][2].endswith("*")  # bucket 1: W49, begun when the data ends


async def test_serve_without_url_points_at_demo_serve(tmp_path: Path) -> None:
    """`serve` on an empty embedded Redis says that `demo --serve` brings data to look at."""
    out, err = tmp_path / "out", tmp_path / "err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = await anyio.open_process(
            [sys.executable, "-m", "bitlens", "serve", "--port", "0"],
            env=_env(),
            stdout=stdout,
            stderr=stderr,
        )
    try:
        with anyio.fail_after(30):
            await _dashboard_url(out, process, err)
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0
    assert "run `bitlens demo --serve`" in await anyio.Path(err).read_text()


async def test_demo_serve_keeps_the_embedded_redis_and_serves_its_data(tmp_path: Path) -> None:
    """`demo --serve` serves its prefix's data; its printed commands work until Ctrl-C, exit 0."""
    out, err = tmp_path / "out", tmp_path / "err"
    argv = ["demo", "--serve", "--port", "0", "--users", "300", "--weeks", "2"]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = await anyio.open_process(
            [sys.executable, "-m", "bitlens", *argv, "--today", "2026-11-27"],
            env=_env(),
            stdout=stdout,
            stderr=stderr,
        )
    try:
        with anyio.fail_after(60):
            page = await _dashboard_url(out, process, err)
            assert "end=2026-11-27" in page
            base = page.split("?", 1)[0]
            answer = await anyio.to_thread.run_sync(_get, base + "events")
            assert answer is not None
            assert json.loads(answer[2])["events"] == ["active", "purchase", "signed_up"]
            commands = {a[0]: a for a in _follow_ups(await anyio.Path(out).read_text())}
            assert "serve" not in commands
            counted = await bitlens(*commands["count"])
            assert counted.code == 0, counted.err
            assert int(counted.out.split()[0]) > 0
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0, await anyio.Path(err).read_text()
    gone = await bitlens(*commands["count"])
    assert gone.code == 1
    assert "cannot connect" in gone.err


async def _dashboard_url(out: Path, process: anyio.abc.Process, err: Path) -> str:
    """Wait until ``bitlens serve`` prints the URL it listens on; return it.

    :param out: the file its stdout goes to
    :param process: the process
    :param err: the file its stderr goes to (shown if it dies)
    """
    while (found := re.search(r"http://\S+/\S*", await anyio.Path(out).read_text())) is None:
        assert process.returncode is None, await anyio.Path(err).read_text()
        await anyio.sleep(0.05)
    return found.group()


async def test_serve_answers_html_and_exits_0_on_ctrl_c(redis_url: str, tmp_path: Path) -> None:
    """``serve`` prints its URL, answers a GET with HTML, and exits 0 on SIGINT."""
    out, err = tmp_path / "out", tmp_path / "err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = await anyio.open_process(
            [sys.executable, "-m", "bitlens", "serve", "--url", redis_url, "--port", "0"],
            env=_env(),
            stdout=stdout,
            stderr=stderr,
        )
    try:
        with anyio.fail_after(30):
            url = await _dashboard_url(out, process, err)
            assert url.startswith("http://127.0.0.1:")
            answer = await anyio.to_thread.run_sync(_get, url)
        assert answer is not None
        status, content_type, body = answer
        assert status == 200
        assert content_type.startswith("text/html")
        assert "<html" in body.lower()
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert code == 0, await anyio.Path(err).read_text()


# -- a cluster ------------------------------------------------------------------------------------


def _shard_per_master(cluster: EmbeddedCluster) -> list[int]:
    """Return one shard number owned by each master (a shard's keys share its hash tag).

    :param cluster: the cluster
    """
    picked: dict[str, int] = {}
    shard = 0
    while len(picked) < len(cluster.masters()):
        owner = cluster.node_for_slot(cluster.keyslot(f"x:{{{shard}}}:~all")).name
        picked.setdefault(owner, shard)
        shard += 1
    return sorted(picked.values())


@pytest.fixture
async def cluster_data(
    redis_cluster: EmbeddedCluster, cluster_client: RedisCluster, prefix: str
) -> list[str]:
    """Mark event ``e<i>`` for one id in a shard of master ``i``; return the CLI options.

    :param redis_cluster: the session cluster
    :param cluster_client: a client of it
    :param prefix: the test's key prefix
    """
    shards = _shard_per_master(redis_cluster)
    async with Tracker(cluster_client, prefix=prefix) as tracker:
        await tracker.mark_events((f"e{i}", shard << 20, MONDAY) for i, shard in enumerate(shards))
        await tracker.mark_events(("all_of_them", shard << 20, MONDAY) for shard in shards)
    return ["--cluster", "--url", redis_cluster.url, "--prefix", prefix]


async def test_events_on_a_cluster_scans_every_master(cluster_data: list[str]) -> None:
    """``events --cluster`` finds the events whose keys live on each master."""
    ran = await bitlens("events", *cluster_data)
    assert ran.code == 0, ran.err
    assert ran.out.splitlines() == ["all_of_them", "e0", "e1", "e2"]


async def test_count_on_a_cluster(cluster_data: list[str]) -> None:
    """``count --cluster`` counts across the shards of every master."""
    ran = await bitlens("count", *cluster_data, "month:all_of_them:2026-11 - month:e1:2026-11")
    assert ran.code == 0, ran.err
    assert ran.out == "2\n"


async def test_count_on_a_cluster_notes_a_misspelled_event(cluster_data: list[str]) -> None:
    """On a cluster, the lookup behind the note scans every master."""
    ran = await bitlens("count", *cluster_data, "month:e9:2026-11")
    assert (ran.code, ran.out) == (0, "0\n")
    assert ran.err.startswith("bitlens count: note: event 'e9' was never marked under prefix")
    assert "'all_of_them', 'e0', 'e1'" in ran.err
