"""State one tracker's write side and query side share: its lifecycle and its shards.

Both are plain objects without I/O: the write side notes the shards it wrote, the query
side reads and repairs the registry through the executor and records what it learned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._exceptions import TrackerClosed

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["Lifecycle", "ShardRegistry"]


class Lifecycle:
    """Whether a tracker is open, draining (inside ``aclose()``) or closed."""

    __slots__ = ("closed", "draining")

    def __init__(self) -> None:
        self.closed = False
        self.draining = False

    def check_open(self) -> None:
        """Raise :class:`~bitlens.TrackerClosed` once ``aclose()`` was called."""
        if self.closed:
            raise TrackerClosed

    def check_sending(self) -> None:
        """Like :meth:`check_open`, but marks accepted before ``aclose()`` may still go.

        ``aclose()`` drains the coalesced batches and the fire-and-forget queue, whose
        marks were accepted while the tracker was open.
        """
        if self.closed and not self.draining:
            raise TrackerClosed


class ShardRegistry:
    """The shards a tracker knows to hold data, and whether it has read the registry.

    Shards are only ever added: every write re-asserts its shards in the server's
    registry set, and every count checks that set's size against what it covered. A
    layout with fixed shards (:attr:`KeySchema.shards <bitlens.KeySchema.shards>`) has no
    registry: they are known from the start, and nothing is read or written for them.

    :param fixed: the layout's fixed shards, or ``None`` to read the registry
    """

    __slots__ = ("fixed", "known", "loaded")

    def __init__(self, fixed: Iterable[int] | None = None) -> None:
        self.fixed = fixed is not None
        self.known: set[int] = set(fixed or ())
        self.loaded = self.fixed

    def forget(self) -> None:
        """Forget every shard read from the registry (its keys were deleted)."""
        if not self.fixed:
            self.known.clear()
            self.loaded = False

    def note(self, shards: Iterable[int]) -> None:
        """Record shards this tracker has written to.

        :param shards: shard numbers
        """
        self.known.update(shards)

    def learn(self, stored: Iterable[bytes | str | int]) -> list[int]:
        """Merge the members of the server's registry; return the known shards it lacks.

        :param stored: the registry's members as Redis returned them
        """
        found = {int(s) for s in stored}
        self.known |= found
        self.loaded = True
        return sorted(self.known - found)

    def sorted(self) -> list[int]:
        """Every known shard, ascending."""
        return sorted(self.known)
