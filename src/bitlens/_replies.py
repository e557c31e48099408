"""Typed views of raw Redis replies: each says what it expected when a reply is not that."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["Replies", "as_bytes", "as_int", "as_iterable", "as_list", "as_text"]


def as_int(reply: object) -> int:
    """An integer reply (or one sent as a bulk string).

    :param reply: the reply
    :raises TypeError: for any other reply
    """
    if isinstance(reply, (int, bytes, str)):
        return int(reply)
    raise TypeError(f"unexpected reply {reply!r}")


def as_bytes(reply: object) -> bytes:
    """A bulk string reply; a missing key's ``None`` is empty.

    :param reply: the reply
    :raises TypeError: for any other reply
    """
    if reply is None:
        return b""
    if isinstance(reply, bytes):
        return reply
    raise TypeError(f"unexpected reply {reply!r}")


def as_text(reply: object) -> str:
    """A bulk string (or integer) reply, decoded to text.

    :param reply: the reply
    :raises TypeError: for any other reply
    """
    if isinstance(reply, bytes):
        return reply.decode()
    if isinstance(reply, (str, int)):
        return str(reply)
    raise TypeError(f"unexpected reply {reply!r}")


def as_list(reply: object) -> list[object]:
    """An array reply.

    :param reply: the reply
    :raises TypeError: for any other reply
    """
    if isinstance(reply, list):
        return cast("list[object]", reply)
    raise TypeError(f"unexpected reply {reply!r}")


def as_iterable(reply: object) -> Iterable[bytes | str | int]:
    """A set or array reply of scalars (e.g. ``SMEMBERS``).

    :param reply: the reply
    :raises TypeError: for any other reply
    """
    if isinstance(reply, (set, list, tuple, frozenset)):
        return cast("Iterable[bytes | str | int]", reply)
    raise TypeError(f"unexpected reply {reply!r}")


class Replies(list[object]):
    """One group's replies, in the order of its commands, with typed views.

    The executor answers every :class:`~bitlens._execute.Group` with one ``Replies``; a
    caller reads each reply as the type its command returns, and a reply of another type
    raises a ``TypeError`` that says what was expected (a server or proxy that answers
    out of protocol), never a wrong answer::

        replies = (await executor.run([Group(key, [("SCARD", registry), ("GETBIT", key, 7)])]))[0]
        shards, bit = replies.int_at(0), replies.int_at(1)
    """

    __slots__ = ()

    @classmethod
    def joined(cls, results: Iterable[list[object]]) -> Replies:
        """The replies of several groups, one after another (their commands' order).

        :param results: each group's replies
        """
        return cls(reply for result in results for reply in result)

    def int_at(self, index: int) -> int:
        """Reply ``index`` as an integer (:func:`as_int`)."""
        return as_int(self[index])

    def bytes_at(self, index: int) -> bytes:
        """Reply ``index`` as a bulk string, ``b""`` for a missing key (:func:`as_bytes`)."""
        return as_bytes(self[index])

    def each_bytes(self) -> list[bytes]:
        """Every reply as a bulk string, ``b""`` for a missing key (e.g. ``GETRANGE``s)."""
        return [as_bytes(reply) for reply in self]

    def list_at(self, index: int) -> list[object]:
        """Reply ``index`` as an array (:func:`as_list`)."""
        return as_list(self[index])

    def members_at(self, index: int) -> Iterable[bytes | str | int]:
        """Reply ``index`` as a set or array of scalars (:func:`as_iterable`)."""
        return as_iterable(self[index])
