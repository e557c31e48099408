"""A tiny blocking RESP2 client for administrative commands (cluster building, probes).

Test and benchmark tooling only: it sends one command at a time over a plain socket and
reads the reply, with no dependency on redis-py.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import io
    from collections.abc import Sequence

__all__ = ["AdminClient", "ReplyError", "pack", "read_reply"]

CALL_TIMEOUT = 2.0
"""How long one administrative call may take, in seconds."""


class ReplyError(RuntimeError):
    """An error reply (``-ERR ...``) from a Redis server."""


def pack(args: Sequence[str | int]) -> bytes:
    """Encode one command as a RESP array of bulk strings.

    :param args: the command name and its arguments
    """
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def read_reply(stream: io.BufferedReader) -> object:
    """Read one RESP2 reply: ``str``, ``bytes``, ``int``, ``None``, a list, or an error.

    An error reply is returned as a :class:`ReplyError`, not raised, so that errors nested
    in arrays keep their place.

    :param stream: the buffered socket reader
    :raises ConnectionError: if the connection closes mid-reply or the reply is not RESP2
    """
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed before a complete reply")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        return ReplyError(body.decode(errors="replace"))
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        if size < 0:
            return None
        data = stream.read(size + 2)
        if len(data) != size + 2:
            raise ConnectionError("connection closed inside a bulk reply")
        return data[:-2]
    if kind == b"*":
        count = int(body)
        return None if count < 0 else [read_reply(stream) for _ in range(count)]
    raise ConnectionError(f"unexpected reply line {line!r}")


class AdminClient:
    """A tiny blocking RESP2 client for administrative commands on one server.

    It keeps one connection open, and reconnects once when a reused connection fails (the
    server may have been restarted since).

    :param host: the server address
    :param port: the server port
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._sock: socket.socket | None = None
        self._stream: io.BufferedReader | None = None

    def call(self, *args: str | int) -> object:
        """Send one command and return its reply.

        :param args: the command name and its arguments
        :raises ReplyError: if the server answers with an error
        :raises OSError: if the server cannot be reached
        """
        reused = self._sock is not None
        try:
            return self._exchange(args)
        except OSError:
            if not reused:
                raise
        return self._exchange(args)

    def text(self, *args: str | int) -> str:
        """Send one command whose reply is a string (e.g. ``CLUSTER NODES``) and decode it.

        :param args: the command name and its arguments
        :raises ReplyError: if the server answers with an error
        :raises OSError: if the server cannot be reached
        """
        reply = self.call(*args)
        if isinstance(reply, bytes):
            return reply.decode()
        if isinstance(reply, str):
            return reply
        raise ReplyError(f"expected a string reply to {args[0]}, got {reply!r}")

    def _exchange(self, args: Sequence[str | int]) -> object:
        """Send ``args`` and read the reply, connecting first if needed; close on failure.

        :param args: the command name and its arguments
        """
        try:
            if self._sock is None or self._stream is None:
                self._sock = socket.create_connection((self.host, self.port), timeout=CALL_TIMEOUT)
                self._stream = self._sock.makefile("rb")
            self._sock.sendall(pack(args))
            reply = read_reply(self._stream)
        except OSError:
            self.close()
            raise
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    def close(self) -> None:
        """Close the connection, if open; the next call reconnects."""
        stream, self._stream = self._stream, None
        sock, self._sock = self._sock, None
        if stream is not None:
            stream.close()
        if sock is not None:
            sock.close()
