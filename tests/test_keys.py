"""Tests for ``bitlens._keys``: the key schema builds every key name and reads it back."""

from __future__ import annotations

import ast
import datetime as dt
import itertools
import re
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from _helpers import examples
from bitlens import (
    EventKey,
    IdMapKey,
    KeySchema,
    ParsedKey,
    RegistryKey,
    ShardedSchema,
    TempKey,
    UniverseKey,
)
from bitlens._keys import event_name_problem, is_safe_name
from bitlens._periods import Day, Hour, Month, Period, Week

PROPERTY = settings(
    max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
REFUSED_CATEGORIES = ("Cc", "Cf", "Cs", "Zs", "Zl", "Zp")
SRC = Path(__file__).resolve().parents[1] / "src" / "bitlens"

# -- strategies -------------------------------------------------------------------------------

# Names mix the characters a key's structure is made of with any other safe character.
STRUCTURE = ":~{}0123456789MUWDHT-_/.*?[]\\"
name_chars = st.sampled_from(STRUCTURE) | st.characters(
    exclude_categories=cast("Any", REFUSED_CATEGORIES)
)
prefixes = st.text(name_chars, min_size=1, max_size=12).filter(is_safe_name)
event_names = st.text(name_chars, min_size=1, max_size=24).filter(
    lambda name: event_name_problem(name) is None
)
tokens = st.text(st.sampled_from("0123456789abcdefp"), min_size=1, max_size=17)
numbers = st.integers(0, 2**43) | st.integers(0, 20)
moments = st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23))
period_types: st.SearchStrategy[type[Hour] | type[Day] | type[Week] | type[Month]] = (
    st.sampled_from([Hour, Day, Week, Month])
)


@st.composite
def periods(draw: st.DrawFn) -> Period | None:
    """Draw an Hour, Day, Week or Month of years 1..9999, or ``None`` (UniqueEvents)."""
    if draw(st.booleans()) and draw(st.booleans()):
        return None
    moment = draw(moments)
    cls = draw(period_types)
    assume(not (cls is Week and moment.date() >= dt.date(9999, 12, 27)))  # past date.max
    return cls.from_datetime(moment)


parsed_keys: st.SearchStrategy[ParsedKey] = st.one_of(
    st.builds(EventKey, event_names, periods(), numbers),
    st.builds(UniverseKey, numbers),
    st.builds(TempKey, numbers, tokens, numbers),
    st.just(RegistryKey()),
    st.builds(
        IdMapKey,
        st.text(name_chars, min_size=1, max_size=64).filter(is_safe_name),
        numbers,
        st.sampled_from(["forward", "reverse"]),
    ),
)
schemas = st.builds(ShardedSchema, prefixes, st.integers(8, 32))


@st.composite
def other_prefixes(draw: st.DrawFn, prefix: str) -> str:
    """Draw a prefix other than ``prefix``, often nested in it or holding it."""
    other: str = draw(
        st.one_of(
            prefixes,
            prefixes.map(lambda tail: f"{prefix}:{tail}"),
            prefixes.map(lambda head: f"{head}:{prefix}"),
            prefixes.map(lambda tail: prefix + tail),
            st.just(prefix[:-1]),
            st.just(prefix.rpartition(":")[0]),
        )
    )
    assume(other != prefix and is_safe_name(other))
    return other


def glob(pattern: str) -> re.Pattern[str]:
    """Compile a Redis ``MATCH`` glob (``*``, ``?``, ``[...]``, ``\\`` escapes) to a regex.

    :param pattern: a SCAN MATCH pattern
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            end = pattern.index("]", i + 1)
            out.append(f"[{re.escape(pattern[i + 1 : end])}]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out), re.DOTALL)


SCHEMA = ShardedSchema(prefix="bl", shard_bits=20)

# -- round trips ------------------------------------------------------------------------------


@PROPERTY
@given(schemas, parsed_keys)
def test_every_key_parses_back_to_what_built_it(schema: KeySchema, key: ParsedKey) -> None:
    """parse(build(k)) == k for every kind of key, prefix and shard size."""
    assert schema.parse(schema.build(key)) == key


@PROPERTY
@given(schemas, st.data())
def test_a_key_parses_only_if_the_schema_builds_exactly_it(
    schema: KeySchema, data: st.DataObject
) -> None:
    """Any name under the prefix that parses is rebuilt character for character."""
    built = schema.build(data.draw(parsed_keys))
    # Mutate a built key: drop, double or replace one character, or splice in text.
    at = data.draw(st.integers(0, len(built)))
    piece = data.draw(st.text(name_chars, max_size=3))
    cut = data.draw(st.integers(0, 2))
    key = built[:at] + piece + built[at + cut :]
    parsed = schema.parse(key)
    if parsed is not None:
        assert schema.build(parsed) == key


@PROPERTY
@given(schemas, st.text(name_chars, max_size=30))
def test_arbitrary_text_under_the_prefix_parses_only_to_itself(
    schema: KeySchema, tail: str
) -> None:
    """A name made of key-like characters under the prefix parses only if canonical."""
    key = f"{schema.prefix}:{tail}"
    parsed = schema.parse(key)
    if parsed is not None:
        assert schema.build(parsed) == key


@PROPERTY
@given(st.data(), parsed_keys)
def test_a_key_of_another_prefix_never_parses(data: st.DataObject, key: ParsedKey) -> None:
    """No key of prefix Q parses under prefix P, nested prefixes included (bl, bl:x)."""
    prefix = data.draw(prefixes)
    other = ShardedSchema(prefix=data.draw(other_prefixes(prefix)))
    assert ShardedSchema(prefix=prefix).parse(other.build(key)) is None


def test_the_shard_size_does_not_change_key_names() -> None:
    """shard_bits moves ids between shards; the names of a shard's keys stay the same."""
    key = EventKey("active", Month(2026, 11), 7)
    assert ShardedSchema("bl", 8).build(key) == ShardedSchema("bl", 32).build(key)


# -- what the default layout's keys look like ------------------------------------------------


@pytest.mark.parametrize(
    ("key", "parsed"),
    [
        ("bl:{7}:active:M2026-11", EventKey("active", Month(2026, 11), 7)),
        ("bl:{7}:active:W2026-07", EventKey("active", Week(2026, 7), 7)),
        ("bl:{7}:active:D2026-01-05", EventKey("active", Day(2026, 1, 5), 7)),
        ("bl:{7}:active:H2026-01-05T13", EventKey("active", Hour(2026, 1, 5, 13), 7)),
        ("bl:{0}:my:event:U", EventKey("my:event", None, 0)),
        ("bl:{0}:a:M2026-11:U", EventKey("a:M2026-11", None, 0)),
        ("bl:{7}:~all", UniverseKey(7)),
        ("bl:{7}:~tmp:abc:1", TempKey(7, "abc", 1)),
        ("bl:~shards", RegistryKey()),
        ("bl:{~idmap:ids:5}:fwd", IdMapKey("ids", 5, "forward")),
        ("bl:{~idmap:a:b:0}:rev", IdMapKey("a:b", 0, "reverse")),
    ],
)
def test_keys_of_the_default_layout_parse(key: str, parsed: ParsedKey) -> None:
    """Each kind of key of the default layout gives what it holds."""
    assert SCHEMA.parse(key) == parsed


@pytest.mark.parametrize(
    "key",
    [
        "bl:x:{7}:active:M2026-11",  # another prefix's event key
        "bl:x:~shards",  # another prefix's registry
        "bl:{7}:active",  # no period
        "bl:{7}:active:M2026-13",  # no such month
        "bl:{7}:active:W2026-54",  # no such ISO week
        "bl:{7}:active:D2026-02-29",  # not a leap year
        "bl:{7}:active:H2026-01-05T24",  # no such hour
        "bl:{7}:active:M0000-01",  # year 0
        "bl:{7}:active:M2026-1",  # not zero-padded
        "bl:{7}:active:Y2026",  # a year has no key of its own
        "bl:{7}:active:M\u0662\u0660\u0662\u0666-11",  # Arabic-Indic digits
        "bl:{7}:active:U\n",  # a trailing newline
        "bl:{07}:active:U",  # a padded shard
        "bl:{\u0667}:active:U",  # a non-ASCII digit shard
        "bl:{x}:active:U",  # not a shard
        "bl:{7}:a b:U",  # not an event name
        "bl:{7}::U",  # an empty event name
        "bl:{7}:~foo:U",  # a reserved event name
        "bl:{7}:~tmp:abc",  # a temp key without its index
        "bl:{7}:~tmp::1",  # a temp key without its token
        "bl:{7}:~allx",
        "bl:{~idmap:ids}:fwd",  # no bucket
        "bl:{~idmap:ids:5}:other",
        "bl:~shardsx",
        "bl:",
        "bl",
        "active",
    ],
)
def test_foreign_keys_under_the_prefix_parse_to_none(key: str) -> None:
    """A name the schema would never build parses to None."""
    assert SCHEMA.parse(key) is None


def test_a_key_holding_a_surrogate_parses_to_none() -> None:
    """A name that cannot be UTF-8 (a lone surrogate) is never a key of the schema."""
    assert SCHEMA.parse("bl:{7}:a\ud800:U") is None


def test_a_scanned_key_that_is_not_utf8_parses_to_none() -> None:
    """Bytes that are not UTF-8 never parse (no replacement character stands in)."""
    assert SCHEMA.parse_scanned(b"bl:{7}:\xff:U") is None


def test_a_scanned_key_parses_as_its_text() -> None:
    """parse_scanned reads the UTF-8 bytes SCAN returns as parse reads the text."""
    key = SCHEMA.event_key("caf\u00e9", None, 7)
    assert SCHEMA.parse_scanned(key.encode()) == EventKey("caf\u00e9", None, 7)


def test_id_map_names_are_checked_by_the_schema() -> None:
    """validate_idmap_name returns a safe name unchanged."""
    assert SCHEMA.validate_idmap_name("a:b") == "a:b"


# -- patterns ---------------------------------------------------------------------------------


@PROPERTY
@given(schemas, parsed_keys)
def test_scan_patterns_find_every_key_of_the_schema(schema: KeySchema, key: ParsedKey) -> None:
    """Each key built matches one of scan_patterns: the registry's, or scan_pattern."""
    name = schema.build(key)
    wanted = schema.scan_patterns[1] if key == RegistryKey() else schema.scan_pattern
    assert glob(wanted).fullmatch(name)


@PROPERTY
@given(schemas, event_names, st.sampled_from([None, Month(2026, 11)]), numbers)
def test_event_scan_pattern_finds_month_and_unique_bitmaps(
    schema: KeySchema, event: str, period: Period | None, shard: int
) -> None:
    """event_scan_pattern matches the bitmaps every mark writes (a month's, the Unique one)."""
    assert glob(schema.event_scan_pattern).fullmatch(schema.event_key(event, period, shard))


@PROPERTY
@given(st.data(), parsed_keys)
def test_scan_patterns_never_match_another_prefixs_keys(
    data: st.DataObject, key: ParsedKey
) -> None:
    """No pattern of prefix P matches a key of prefix Q, nested prefixes included."""
    prefix = data.draw(prefixes)
    other = ShardedSchema(prefix=data.draw(other_prefixes(prefix)))
    name = other.build(key)
    for pattern in ShardedSchema(prefix=prefix).scan_patterns:
        assert not glob(pattern).fullmatch(name)


@PROPERTY
@given(schemas, parsed_keys)
def test_the_acl_pattern_grants_every_key(schema: KeySchema, key: ParsedKey) -> None:
    """acl_pattern matches every key the schema builds, the registry included."""
    assert glob(schema.acl_pattern).fullmatch(schema.build(key))


def test_a_shards_keys_share_one_hash_tag() -> None:
    """A shard's event bitmaps, universe and temp keys carry the same hash tag."""
    names = [
        SCHEMA.event_key("a", Month(2026, 11), 7),
        SCHEMA.event_key("b:c", None, 7),
        SCHEMA.universe_key(7),
        SCHEMA.temp_key(7, "f3a9", 2),
    ]
    # Redis hashes the text between the first "{" and the next "}" (an event holds neither).
    assert {name[name.index("{") : name.index("}") + 1] for name in names} == {"{7}"}


# -- no other module knows the key layout -----------------------------------------------------

# What only the schema may write: bitlens' reserved key segments, a hash tag glued to a
# separator, and a prefix followed by the separator.
_LAYOUT = re.compile(r"~all|~tmp|~shards|~idmap|:\{|\}:|\[MU\]")


def _layout_literals(tree: ast.AST) -> list[tuple[int, str]]:
    """Find string literals (docstrings aside) that spell a piece of the key layout.

    :param tree: a parsed module
    """
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = node.values
            for before, after in itertools.pairwise(parts):
                if (
                    isinstance(before, ast.FormattedValue)
                    and before.conversion == -1  # "{prefix!r}: ..." is a message
                    and ast.unparse(before.value).endswith("prefix")
                    and isinstance(after, ast.Constant)
                    and str(after.value).startswith(":")
                ):
                    found.append((node.lineno, ast.unparse(node)))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and _LAYOUT.search(node.value)
        ):
            found.append((node.lineno, node.value))
    return found


@pytest.mark.parametrize(
    "path",
    sorted(p for p in SRC.rglob("*.py") if p.name != "_keys.py"),
    ids=lambda p: str(p.relative_to(SRC)),
)
def test_no_module_but_the_schema_spells_a_key(path: Path) -> None:
    """Outside _keys.py no string literal builds or matches a key name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert _layout_literals(tree) == []


def test_the_layout_check_sees_a_key_built_by_hand() -> None:
    """The check above flags an f-string that glues a prefix to a hash tag."""
    tree = ast.parse('key = f"{schema.prefix}:{{{shard}}}:~all"\n')
    assert _layout_literals(tree) != []
