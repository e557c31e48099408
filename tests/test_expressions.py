"""Expressions and the planner, without Redis: values, operators, resolution and plans."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from redis.exceptions import ResponseError

from bitlens import (
    BitOpAnd,
    BitOpDiff,
    BitOpNot,
    BitOpOr,
    BitOpXor,
    DayEvents,
    EventsBetween,
    GranularityNotTracked,
    HourEvents,
    InvalidEventName,
    InvalidExpression,
    MonthEvents,
    ShardedSchema,
    UniqueEvents,
    Universe,
    UnsupportedOperation,
    WeekEvents,
    YearEvents,
    last,
)
from bitlens._periods import Month
from bitlens._plan import (
    UNIVERSE,
    Capabilities,
    CountPlan,
    KeyRef,
    Op,
    ResolveContext,
    evaluate,
    iter_set_bits,
    leaves_of,
    resolve,
)

A = MonthEvents("a", 2026, 11)
B = MonthEvents("b", 2026, 11)
C = WeekEvents("c", 2026, 47)
SCHEMA = ShardedSchema(prefix="p", shard_bits=20)


def test_and_flattens_same_operator_children() -> None:
    """(a & b) & c is one AND of three operands."""
    assert BitOpAnd(A, B, C) == (A & B) & C
    assert len(((A & B) & C).operands) == 3  # type: ignore[attr-defined]


def test_or_flattens_and_dedupes() -> None:
    """a | (b | a) keeps each operand once."""
    assert BitOpOr(A, B) == (A | (B | A))


def test_xor_keeps_duplicates() -> None:
    """XOR is not idempotent, so a ^ a keeps both operands."""
    assert len(BitOpXor(A, A).operands) == 2


def test_operators_build_bitmapist_nodes() -> None:
    """Each operator maps to its bitmapist-named node."""
    assert isinstance(A & B, BitOpAnd)
    assert isinstance(A | B, BitOpOr)
    assert isinstance(A ^ B, BitOpXor)
    assert isinstance(A - B, BitOpDiff)
    assert isinstance(~A, BitOpNot)


def test_difference_chains_flatten() -> None:
    """(a - b) - c is a minus (b or c), one node."""
    diff = (A - B) - C
    assert isinstance(diff, BitOpDiff)
    assert diff.base == A
    assert diff.subtract == (B, C)


def test_not_defaults_to_universe() -> None:
    """~a is the complement within every marked id."""
    node = ~A
    assert isinstance(node, BitOpNot)
    assert node.universe == Universe()


def test_bool_raises_teaching_error() -> None:
    """`a and b` cannot silently return b."""
    with pytest.raises(TypeError, match=r"use & \| \^ - ~"):
        bool(A)


def test_len_and_in_raise_teaching_errors() -> None:
    """len() and `in` point at the async API."""
    with pytest.raises(TypeError, match=r"tracker\.count"):
        len(A)
    with pytest.raises(TypeError, match=r"tracker\.contains"):
        _ = 3 in A


def test_foreign_operand_is_rejected() -> None:
    """An int operand gives TypeError (operators return NotImplemented)."""
    with pytest.raises(TypeError):
        _ = A & 1


def test_constructor_rejects_foreign_operand() -> None:
    """BitOpAnd(a, set()) raises InvalidExpression, also a TypeError."""
    with pytest.raises(InvalidExpression):
        BitOpAnd(A, set())  # type: ignore[arg-type]


def test_equal_trees_are_equal_and_hashable() -> None:
    """Trees are values: equal trees hash alike."""
    assert hash((A & B) | C) == hash((A & B) | C)
    assert {(A & B) | C, (A & B) | C} == {(A & B) | C}


def test_repr_shows_tree() -> None:
    """repr names every node."""
    assert (
        repr(A & ~B) == "BitOpAnd(MonthEvents('a', 2026-11), BitOpNot(MonthEvents('b', 2026-11)))"
    )


def test_delta_shifts_every_leaf() -> None:
    """A composite expression moves in time as a whole."""
    assert (A & C).delta(-1) == MonthEvents("a", 2026, 10) & WeekEvents("c", 2026, 46)


def test_next_crosses_iso_year() -> None:
    """WeekEvents 2026-W53 is followed by 2027-W01."""
    assert WeekEvents("a", 2026, 53).next() == WeekEvents("a", 2027, 1)


def test_delta_of_unique_raises() -> None:
    """UniqueEvents has no period to shift."""
    with pytest.raises(UnsupportedOperation):
        (A & UniqueEvents("u")).delta(1)


def test_event_name_is_validated_at_construction() -> None:
    """A name that would break the hash tag is refused before any I/O."""
    with pytest.raises(InvalidEventName):
        MonthEvents("a{b}", 2026, 1)


def test_from_date_uses_time_zone() -> None:
    """from_date converts an aware datetime to the given zone first."""
    at = dt.datetime(2026, 11, 30, 23, 30, tzinfo=dt.timezone.utc)
    assert MonthEvents.from_date("a", at, tz="Europe/Berlin") == MonthEvents("a", 2026, 12)


BERLIN_CTX = ResolveContext(tz=ZoneInfo("Europe/Berlin"))
LATE_UTC = dt.datetime(2026, 11, 27, 23, 30, tzinfo=dt.timezone.utc)


def test_from_date_places_an_aware_instant_in_the_evaluating_zone() -> None:
    """An aware instant without tz= reads Berlin's next day on a Berlin tracker, UTC's on UTC."""
    leaf = DayEvents.from_date("a", LATE_UTC)
    assert resolve(leaf, BERLIN_CTX) == resolve(DayEvents("a", 2026, 11, 28))
    assert resolve(leaf) == resolve(DayEvents("a", 2026, 11, 27))


def test_from_date_of_every_period_type_follows_the_tracker_zone() -> None:
    """Hour, week, month and year leaves from an aware instant follow the evaluating zone too."""
    new_year = dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.timezone.utc)
    assert resolve(HourEvents.from_date("a", new_year), BERLIN_CTX) == resolve(
        HourEvents("a", 2027, 1, 1, 0)
    )
    assert resolve(WeekEvents.from_date("a", new_year), BERLIN_CTX) == resolve(
        WeekEvents("a", 2026, 53)
    )
    sunday = dt.datetime(2026, 11, 29, 23, 30, tzinfo=dt.timezone.utc)
    assert resolve(WeekEvents.from_date("a", sunday), BERLIN_CTX) == resolve(
        WeekEvents("a", 2026, 49)
    )
    assert resolve(MonthEvents.from_date("a", new_year), BERLIN_CTX) == resolve(
        MonthEvents("a", 2027, 1)
    )
    assert resolve(YearEvents.from_date("a", new_year), BERLIN_CTX) == resolve(
        YearEvents("a", 2027)
    )


def test_from_date_leaf_shifted_keeps_following_the_zone() -> None:
    """delta() and with_event() of a from_date leaf still follow the tracker's zone."""
    leaf = DayEvents.from_date("a", LATE_UTC).delta(-1).with_event("b")
    assert resolve(leaf, BERLIN_CTX) == resolve(DayEvents("b", 2026, 11, 27))
    assert repr(leaf) == "DayEvents.from_date('b', 2026-11-27T23:30:00+00:00).delta(-1)"


def test_from_date_with_tz_pins_the_period() -> None:
    """With tz= the period is fixed: a UTC tracker reads the Berlin date it names."""
    leaf = DayEvents.from_date("a", LATE_UTC, tz="Europe/Berlin")
    assert leaf == DayEvents("a", 2026, 11, 28)
    assert resolve(leaf) == resolve(DayEvents("a", 2026, 11, 28))


def test_from_date_of_a_naive_datetime_is_its_wall_clock_date() -> None:
    """A naive datetime names the same calendar day on any tracker."""
    leaf = DayEvents.from_date("a", dt.datetime(2026, 11, 27, 23, 30))
    assert leaf == DayEvents("a", 2026, 11, 27)
    assert resolve(leaf, BERLIN_CTX) == resolve(DayEvents("a", 2026, 11, 27))


def test_in_zone_reads_the_period_start_in_that_zone() -> None:
    """in_zone(tz) pins a from_date leaf to the period of that zone, with its local start."""
    leaf = DayEvents.from_date("a", LATE_UTC).in_zone("Europe/Berlin")
    assert leaf == DayEvents("a", 2026, 11, 28, tz="Europe/Berlin")
    assert leaf.period_start() == dt.datetime(2026, 11, 28, tzinfo=ZoneInfo("Europe/Berlin"))


def test_year_resolves_to_or_of_months() -> None:
    """YearEvents reads its twelve month bitmaps; no year key exists."""
    node = resolve(YearEvents("a", 2026))
    assert isinstance(node, Op)
    assert node.op == "OR"
    assert {leaf.period for leaf in leaves_of(node)} == set(Month(2026, 1).as_year().months())


def test_not_resolves_to_xor_with_universe() -> None:
    """~a is U ^ a (exact: every bitmap is inside the universe), never a bare BITOP NOT."""
    assert resolve(~A) == Op("XOR", (UNIVERSE, KeyRef("a", Month(2026, 11))))


def test_double_complement_cancels() -> None:
    """~~a resolves back to a."""
    assert resolve(~~A) == resolve(A)


def test_difference_merges_into_enclosing_and() -> None:
    """(a - b) & c is one AND of a, c and U ^ b."""
    node = resolve((A - B) & C)
    assert isinstance(node, Op)
    assert node.op == "AND"
    assert set(node.children) == {resolve(A), resolve(C), resolve(~B)}


def test_not_within_named_universe_resolves_to_and() -> None:
    """BitOpNot(a, universe=v) is v & (U ^ a)."""
    v = UniqueEvents("v")
    assert resolve(BitOpNot(A, universe=v)) == resolve(v & ~A)


def _bitops(plan: CountPlan) -> list[tuple[str | int, ...]]:
    """Decode the BITOP instructions of a plan as (op, dest, *sources)."""
    argv, out, i = plan.argv, [], 2
    while i < len(argv):
        if argv[i] == "B":
            n = int(argv[i + 3])
            out.append((argv[i + 1], argv[i + 2], *argv[i + 4 : i + 4 + n]))
            i += 4 + n
        elif argv[i] == "C":
            i += 2
        else:
            i += 2 + int(argv[i + 1])
    return out


def test_plan_without_extensions_never_sends_not() -> None:
    """a - b is XOR U b then AND: two BITOPs, the same server work as bitmapist's NOT+AND."""
    plan = CountPlan.compile([resolve(A - B)])
    assert [op[0] for op in _bitops(plan)] == ["XOR", "AND"]


def test_plan_uses_diff_when_server_has_it() -> None:
    """With BITOP DIFF (Redis >= 8.2) a difference is one command."""
    plan = CountPlan.compile([resolve(A - B - C)], Capabilities(diff=True, andor=True))
    ops = _bitops(plan)
    assert [op[0] for op in ops] == ["OR", "DIFF"]


def test_plan_uses_andor_when_server_has_it() -> None:
    """a & (b | c) becomes one BITOP ANDOR with the extension."""
    plan = CountPlan.compile([resolve(A & (B | C))], Capabilities(diff=True, andor=True))
    assert [op[0] for op in _bitops(plan)] == ["ANDOR"]


def test_equal_subtrees_share_one_temp_key_across_a_batch() -> None:
    """Two questions sharing a & b compute it once."""
    plan = CountPlan.compile([resolve((A & B) | C), resolve((B & A) - C)])
    ands = [op for op in _bitops(plan) if op[0] == "AND" and len(op) == 4]
    assert len(ands) == 1


def test_leaf_count_needs_no_temp_key() -> None:
    """Counting one bitmap is a bare BITCOUNT of its slot: no temp key, no DEL."""
    plan = CountPlan.compile([resolve(A)])
    assert plan.argv == [1, 0, "C", 1]
    assert plan.temp_count == 0


def test_temp_keys_share_the_shard_hash_tag() -> None:
    """Every key of shard 9's slots, temp keys included, lives in shard 9's slot."""
    plan = CountPlan.compile([resolve((A & B) ^ (C | ~A))])
    keys = plan.keys(SCHEMA, 9, "t")
    assert plan.temp_count > 0
    assert all(key.startswith("p:{9}:") for key in keys)
    assert sum("~tmp:t:" in key for key in keys) == plan.temp_count + 1  # and the void key


def test_plan_deletes_every_temp_slot() -> None:
    """Every temp slot is deleted exactly once, right after the instruction reading it last."""
    plan = CountPlan.compile([resolve((A & B) | ~C), resolve(A & B)])
    argv, i = plan.argv, 2
    deleted: list[str | int] = []
    last_read: dict[str | int, int] = {}
    steps: list[list[str | int]] = []
    while i < len(argv):
        n = (
            int(argv[i + 3]) + 4
            if argv[i] == "B"
            else 2
            if argv[i] == "C"
            else int(argv[i + 1]) + 2
        )
        steps.append(argv[i : i + n])
        i += n
    for at, step in enumerate(steps):
        if step[0] == "D":
            deleted += step[2:]
            assert all(last_read[slot] == at - 1 for slot in step[2:])
        else:
            for slot in step[1:] if step[0] == "C" else step[4:]:
                last_read[slot] = at
    temps = list(range(len(plan.leaves) + 1, len(plan.leaves) + plan.temp_count + 1))
    assert sorted(deleted) == temps


def test_evaluate_matches_set_algebra() -> None:
    """The client-side evaluator agrees with Python sets on bit vectors."""
    a, b, u = KeyRef("a", None), KeyRef("b", None), UNIVERSE
    values = {a: 0b1100, b: 0b1010, u: 0b1111}
    assert evaluate(Op("AND", (a, b)), values) == 0b1000
    assert evaluate(Op("OR", (a, b)), values) == 0b1110
    assert evaluate(Op("XOR", (a, b)), values) == 0b0110
    assert (
        evaluate(
            resolve(~MonthEvents("x", 2026, 1)), {u: 0b1111, KeyRef("x", Month(2026, 1)): 0b1100}
        )
        == 0b0011
    )


def test_iter_set_bits_is_msb_first() -> None:
    """Bit 0 is 0x80 of byte 0, as in Redis."""
    assert list(iter_set_bits(b"\x80\x00\x01", 100)) == [100, 123]


def test_probe_commands_read_only_the_probe_key() -> None:
    """The probe sends BITOP DIFF and ANDOR with the probe key as destination and sources."""
    assert Capabilities.probe_commands("p:{0}:~tmp:x:0") == [
        ("BITOP", "DIFF", "p:{0}:~tmp:x:0", "p:{0}:~tmp:x:0", "p:{0}:~tmp:x:0"),
        ("BITOP", "ANDOR", "p:{0}:~tmp:x:0", "p:{0}:~tmp:x:0", "p:{0}:~tmp:x:0"),
    ]


def test_probe_length_replies_mean_supported() -> None:
    """An integer reply (the result's byte length) means the operation exists."""
    assert Capabilities.from_probe([0, 0]) == Capabilities(diff=True, andor=True)


def test_probe_syntax_error_means_unsupported() -> None:
    """``ERR syntax error`` (Redis < 8.2, Valkey) means the operation is missing."""
    assert Capabilities.from_probe([ResponseError("syntax error"), 0]) == Capabilities(andor=True)


def test_probe_acl_refusal_means_unsupported() -> None:
    """A user who may not run BITOP does without the extensions."""
    refused = ResponseError("NOPERM User u has no permissions to run the 'bitop' command")
    assert Capabilities.from_probe([refused, refused]) == Capabilities()


def test_probe_transient_error_settles_nothing() -> None:
    """OOM or LOADING says nothing about the server: the probe is sent again later."""
    oom = ResponseError("OOM command not allowed when used memory > 'maxmemory'.")
    assert Capabilities.from_probe([oom, oom]) is None


def test_probe_missing_replies_settle_nothing() -> None:
    """A probe whose replies did not all arrive leaves the capabilities unknown."""
    assert Capabilities.from_probe([]) is None


def test_range_resolves_to_fewest_bitmaps() -> None:
    """November 1..15 2026 is Sunday the 1st plus ISO weeks 45 and 46."""
    node = resolve(EventsBetween("a", dt.date(2026, 11, 1), dt.date(2026, 11, 16)))
    assert sorted(str(leaf.period) for leaf in leaves_of(node)) == [
        "2026-11-01",
        "2026-W45",
        "2026-W46",
    ]


def test_range_with_hours_needs_hourly_tracking() -> None:
    """A range starting at 13:00 raises before anything is sent when hours are not kept."""
    start = dt.datetime(2026, 11, 2, 13)
    with pytest.raises(GranularityNotTracked, match="hourly"):
        resolve(EventsBetween("a", start, dt.datetime(2026, 11, 5)))


def test_range_with_hours_uses_hour_bitmaps_when_tracked() -> None:
    """With hourly tracking the ragged edge is covered by hours."""
    ctx = ResolveContext(hourly=True)
    node = resolve(EventsBetween("a", dt.datetime(2026, 11, 2, 22), dt.datetime(2026, 11, 4)), ctx)
    assert sorted(str(leaf.period) for leaf in leaves_of(node)) == [
        "2026-11-02T22",
        "2026-11-02T23",
        "2026-11-03",
    ]


def test_range_delta_moves_by_its_length() -> None:
    """The previous range of a one-week range is the week before."""
    week = EventsBetween("a", dt.date(2026, 11, 9), dt.date(2026, 11, 16))
    assert week.prev() == EventsBetween("a", dt.date(2026, 11, 2), dt.date(2026, 11, 9))


def test_last_days_window_ends_today() -> None:
    """last(days=7) is today and the six days before, in the tracker's zone."""
    ctx = ResolveContext(now=dt.datetime(2026, 11, 27, 15, tzinfo=dt.timezone.utc))
    node = resolve(last("a", days=7), ctx)
    # Nov 21..27: neither ISO week 47 (16..22) nor 48 (23..29) fits inside, so seven days.
    assert sorted(str(leaf.period) for leaf in leaves_of(node)) == [
        f"2026-11-{d}" for d in range(21, 28)
    ]


def test_last_hours_window_covers_the_current_hour_and_before() -> None:
    """last(hours=3) covers the current hour and the two before."""
    ctx = ResolveContext(hourly=True, now=dt.datetime(2026, 11, 27, 15, 40, tzinfo=dt.timezone.utc))
    node = resolve(last("a", hours=3), ctx)
    assert sorted(str(leaf.period) for leaf in leaves_of(node)) == [
        "2026-11-27T13",
        "2026-11-27T14",
        "2026-11-27T15",
    ]


def test_last_hours_without_hourly_tracking_raises() -> None:
    """An hours window on a tracker without hour bitmaps raises instead of counting 0."""
    now = dt.datetime(2026, 11, 27, 15, 40, tzinfo=dt.timezone.utc)
    with pytest.raises(GranularityNotTracked):
        resolve(last("a", hours=3), ResolveContext(hourly=False, now=now))


def test_last_hours_without_hourly_raises_even_on_midnights() -> None:
    """A 24-hour window that falls on midnights is refused too: no answer depends on the clock."""
    now = dt.datetime(2026, 11, 27, 23, 40, tzinfo=dt.timezone.utc)
    with pytest.raises(GranularityNotTracked, match=r"track_hourly=True"):
        resolve(last("a", hours=24), ResolveContext(hourly=False, now=now))


def test_last_hours_error_names_the_window_and_the_fix() -> None:
    """The error of last(hours=24) on a daily tracker names the window and track_hourly=True."""
    now = dt.datetime(2026, 11, 27, 15, 40, tzinfo=dt.timezone.utc)
    with pytest.raises(GranularityNotTracked) as caught:
        resolve(last("active", hours=24), ResolveContext(hourly=False, now=now))
    assert "last('active', hours=24)" in str(caught.value)
    assert "Tracker(..., track_hourly=True)" in str(caught.value)


def test_last_hourly_override_beats_the_tracker_setting() -> None:
    """last(..., hourly=True) reads hour bitmaps on a daily tracker (per-call hourly marks)."""
    now = dt.datetime(2026, 11, 27, 15, 40, tzinfo=dt.timezone.utc)
    node = resolve(last("a", hours=2, hourly=True), ResolveContext(hourly=False, now=now))
    assert len(leaves_of(node)) == 2


def test_last_prev_is_the_window_before() -> None:
    """last(days=7).prev() is the seven days before the current window."""
    ctx = ResolveContext(now=dt.datetime(2026, 11, 27, tzinfo=dt.timezone.utc))
    assert resolve(last("a", days=7).prev(), ctx) == resolve(
        EventsBetween("a", dt.date(2026, 11, 14), dt.date(2026, 11, 21)), ctx
    )


def test_last_needs_exactly_one_length() -> None:
    """last() with both or neither of days/hours is refused."""
    with pytest.raises(UnsupportedOperation):
        last("a", days=1, hours=1)
    with pytest.raises(UnsupportedOperation):
        last("a")


def test_hour_events_key_suffix() -> None:
    """Hour keys are zero-padded and sort chronologically."""
    leaf = resolve(HourEvents("a", 2026, 1, 5, 3))
    assert isinstance(leaf, KeyRef)
    assert leaf.key(SCHEMA, 0) == "p:{0}:a:H2026-01-05T03"


def test_day_events_key_suffix() -> None:
    """Day keys are zero-padded."""
    leaf = resolve(DayEvents("a", 2026, 1, 5))
    assert isinstance(leaf, KeyRef)
    assert leaf.key(SCHEMA, 7) == "p:{7}:a:D2026-01-05"
