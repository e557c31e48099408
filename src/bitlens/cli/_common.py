"""What the subcommands share: connection options, a tracker to talk through, errors."""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import re
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .._exceptions import BitlensError
from .._keys import BitmapistSchema, KeySchema, ShardedSchema
from .._periods import resolve_tz
from .._tracker import Tracker
from .._transport import close_cluster_nodes

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = [
    "CONNECT_TIMEOUT",
    "SCHEMAS",
    "CommandError",
    "HelpFormatter",
    "UsageError",
    "add_connection_options",
    "day",
    "moment",
    "non_negative_int",
    "open_tracker",
    "positive_int",
    "prefix_type",
    "redact",
    "require_url",
    "resolve_url",
    "schema_of",
]

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a TCP connection before reporting the server unreachable."""


class HelpFormatter(argparse.HelpFormatter):
    """Wraps one-paragraph descriptions; keeps multi-line texts (epilogs) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        """Keep a multi-line text as written; wrap a paragraph as usual."""
        if "\n" in text.rstrip("\n"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class CommandError(Exception):
    """A failure to report in one line, without a traceback: exit code 1.

    :param message: the error
    """


class UsageError(Exception):
    """Bad input found after argument parsing: printed with the usage line, exit code 2.

    :param message: the error, possibly several lines (a parse error with its caret)
    """


def positive_int(text: str) -> int:
    """Return ``text`` as an int >= 1 (an ``argparse`` type).

    :param text: the argument
    :raises argparse.ArgumentTypeError: otherwise
    """
    value = non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """Return ``text`` as an int >= 0 (an ``argparse`` type).

    :param text: the argument
    :raises argparse.ArgumentTypeError: otherwise
    """
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def prefix_type(text: str) -> str:
    """Return ``text`` if it is a valid key prefix (an ``argparse`` type)."""
    try:
        ShardedSchema(prefix=text)
    except BitlensError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


SCHEMAS = ("bitlens", "bitmapist")
"""The key layouts ``--schema`` names."""


def schema_of(args: argparse.Namespace) -> KeySchema:
    """The key schema of ``--schema``, ``--prefix`` and ``--universe``.

    :param args: the parsed arguments
    :raises UsageError: for a ``--universe`` that is no event name, or one without
        ``--schema bitmapist``
    """
    universe: str | None = getattr(args, "universe", None)
    if getattr(args, "schema", "bitlens") == "bitmapist":
        try:
            return BitmapistSchema(args.prefix or "trackist_", universe=universe)
        except BitlensError as exc:
            raise UsageError(f"invalid --universe {universe!r}: {exc}") from None
    if universe is not None:
        raise UsageError(
            "--universe is for --schema bitmapist (bitlens' own layout keeps its universe)"
        )
    return ShardedSchema(prefix=args.prefix or "bl")


def _tz(text: str) -> str:
    """Return ``text`` if it names a known time zone (an ``argparse`` type)."""
    try:
        resolve_tz(text)
    except BitlensError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


_WEEK = re.compile(r"(\d{4})-[Ww](\d{1,2})")
_MONTH = re.compile(r"(\d{4})-(\d{1,2})")


def day(text: str) -> _dt.date:
    """Return a ``YYYY-MM-DD`` date (an ``argparse`` type).

    :param text: the argument
    :raises argparse.ArgumentTypeError: for anything else
    """
    try:
        return _dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def moment(text: str) -> _dt.date | _dt.datetime:
    """Return a date or local time given as an ``argparse`` type.

    Accepts ``2026-11-27``, ``2026-11-27T13:30`` (ISO 8601), ``2026-W48`` (the Monday of
    that ISO week) and ``2026-11`` (the first of the month).

    :param text: the argument
    :raises argparse.ArgumentTypeError: for anything else
    """
    try:
        if match := _WEEK.fullmatch(text):
            return _dt.date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
        if match := _MONTH.fullmatch(text):
            return _dt.date(int(match.group(1)), int(match.group(2)), 1)
        if "T" in text.upper() or " " in text:
            return _dt.datetime.fromisoformat(text)
        return _dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date such as 2026-11-27, 2026-W48, 2026-11 or 2026-11-27T13:00; "
            f"got {text!r}"
        ) from None


def add_connection_options(
    parser: argparse.ArgumentParser, *, url_help: str, tz: bool = True
) -> None:
    """Add ``--url``, ``--prefix``, ``--tz`` and ``--cluster`` to a subcommand.

    :param parser: the subcommand's parser
    :param url_help: what happens when neither ``--url`` nor ``REDIS_URL`` is given
    :param tz: whether the command has a use for ``--tz``
    """
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--url",
        metavar="URL",
        default=None,
        help=f"redis://, rediss:// or unix:// URL (default: $REDIS_URL; {url_help})",
    )
    group.add_argument(
        "--prefix",
        type=prefix_type,
        default=None,
        help="the key prefix the data was marked with (default: bl; with --schema "
        "bitmapist: trackist_, bitmapist 3's; bitmapist4's is bitmapist_)",
    )
    group.add_argument(
        "--schema",
        choices=SCHEMAS,
        default="bitlens",
        help="the key layout: bitlens' sharded one, or bitmapist's (read and written in "
        "place; see 'Coming from bitmapist' in the docs)",
    )
    group.add_argument(
        "--universe",
        metavar="EVENT",
        default=None,
        help="with --schema bitmapist: the event whose unique bitmap holds every id, "
        "the universe of ~x (without it ~x is refused)",
    )
    if tz:
        group.add_argument(
            "--tz",
            type=_tz,
            default="UTC",
            metavar="ZONE",
            help="time zone of days, weeks, months and windows, e.g. Europe/Berlin (default: UTC)",
        )
    group.add_argument(
        "--cluster", action="store_true", help="URL is a node of a Redis Cluster (all are used)"
    )


def resolve_url(args: argparse.Namespace) -> str | None:
    """Return ``--url``, else ``$REDIS_URL``, else ``None`` (an empty value counts as unset).

    :param args: the parsed arguments
    """
    url: str | None = args.url or os.environ.get("REDIS_URL") or None
    return url


def require_url(args: argparse.Namespace) -> str:
    """Return the URL to connect to, or fail with a usage error.

    :param args: the parsed arguments
    :raises UsageError: if neither ``--url`` nor ``REDIS_URL`` is given
    """
    url = resolve_url(args)
    if url is None:
        raise UsageError("no Redis to talk to: give --url redis://HOST:PORT/DB or set REDIS_URL")
    return url


def redact(url: str) -> str:
    """Return ``url`` with its password replaced by ``***``, for messages.

    :param url: a Redis URL
    """
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port is not None else ""
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))
    except ValueError:
        return "the given URL"


def _client(url: str, cluster: bool) -> Redis | RedisCluster:
    """Make a client for one command: fail fast when nothing listens, retry brief outages."""
    try:
        if cluster:
            return RedisCluster.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT)
        return Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
            url,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=2),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            socket_connect_timeout=CONNECT_TIMEOUT,
        )
    except ValueError as exc:  # a bad scheme, port or database number
        raise UsageError(f"invalid --url {redact(url)!r}: {exc}") from None


async def _close(client: Redis | RedisCluster) -> None:
    """Close a client this module made, every node of a cluster client included."""
    await client.aclose()
    if isinstance(client, RedisCluster):
        await close_cluster_nodes(client)


@asynccontextmanager
async def open_tracker(args: argparse.Namespace, url: str) -> AsyncIterator[Tracker]:
    """Yield a tracker of ``url`` with the command's ``--prefix``, ``--tz`` and ``--cluster``.

    The URL is kept on ``args.connected_url`` so that a connection error names it.

    :param args: the parsed arguments
    :param url: the server's URL
    :raises UsageError: for a malformed URL
    """
    args.connected_url = url
    schema = schema_of(args)  # a bad --universe fails before a client is made
    args.prefix = schema.prefix
    client = _client(url, bool(args.cluster))
    try:
        tz: str = getattr(args, "tz", "UTC")
        async with Tracker(client, schema=schema, tz=tz) as tracker:
            yield tracker
    finally:
        await _close(client)
