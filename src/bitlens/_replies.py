"""Typed views of raw Redis replies: each says what it expected when a reply is not that."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["as_bytes", "as_int", "as_iterable", "as_list"]


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
