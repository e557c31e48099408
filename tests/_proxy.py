"""A loopback TCP proxy that counts the Redis round trips and commands passing through it.

Tests put :class:`RoundTripProxy` between a ``redis.asyncio`` client and a real server to
assert how many request/response exchanges an operation costs. Bytes are forwarded unchanged
and at once; both directions are parsed incrementally on the side, so any TCP segmentation
(a command split over reads, several replies in one read) is counted exactly.

A *round trip* starts whenever a client connection sends data while it has no reply
outstanding and no half-sent command. Every command gets exactly one reply (``MULTI`` gets
``+OK``, queued commands ``+QUEUED``, ``EXEC`` one array), so outstanding replies are simply
commands sent minus replies received. RESP3 push messages (``>``) are not replies; pub/sub
in RESP2 is not supported (its messages would look like replies).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["RoundTripProxy"]

_CHUNK = 1 << 18
_CAPTURE_LIMIT = 1 << 16
"""A request's first bulk string up to this size is buffered to read the command name."""
_BULK = frozenset(b"$!=")
_AGGREGATE = frozenset(b"*%~>|")
_PAIRED = frozenset(b"%|")
_CRLF = b"\r\n"


@dataclass(slots=True)
class _Frame:
    """An aggregate being parsed: how many elements it still expects.

    :param total: the number of elements, ``None`` for a RESP3 streamed aggregate
    :param attribute: whether this is a RESP3 attribute, which precedes a value and is not one
    """

    total: int | None
    attribute: bool
    remaining: int | None = field(init=False)

    def __post_init__(self) -> None:
        """Start with every element still expected."""
        self.remaining = self.total


@dataclass(frozen=True, slots=True)
class _Message:
    """A complete top-level RESP value.

    :param kind: its type byte as a character, e.g. ``"*"`` or ``">"`` for a push
    :param name: for a request, the upper-cased command name; else ``""``
    """

    kind: str
    name: str


class _RespReader:
    """An incremental RESP2/RESP3 parser that reports each complete top-level value.

    Long bulk strings are skipped as they arrive instead of being buffered, so large values
    cost no memory and no quadratic re-parsing.

    :param requests: parse client requests (arrays of bulk strings, or inline commands) and
        capture command names, instead of server replies
    """

    def __init__(self, *, requests: bool) -> None:
        self._requests = requests
        self._buf = bytearray()
        self._pos: int = 0
        self._skip: int = 0
        self._streamed_string = False
        self._stack: list[_Frame] = []
        self._kind = ""
        self._name = ""

    @property
    def idle(self) -> bool:
        """Whether the parser sits between two top-level values, with nothing half-read."""
        return (
            self._pos == len(self._buf)
            and not self._stack
            and not self._skip
            and not self._streamed_string
        )

    def feed(self, data: bytes) -> list[_Message]:
        """Parse more bytes and return the top-level values they complete, in order.

        :param data: the bytes just read from the socket
        """
        self._buf += data
        out: list[_Message] = []
        while self._step(out):
            pass
        del self._buf[: self._pos]
        self._pos = 0
        return out

    def _step(self, out: list[_Message]) -> bool:
        """Parse one element, appending to ``out`` any top-level value it completes.

        Returns ``False`` when more bytes are needed.

        :param out: where complete values go
        """
        buf, pos = self._buf, self._pos
        if self._skip:
            taken = min(self._skip, len(buf) - pos)
            self._pos += taken
            self._skip -= taken
            if self._skip:
                return False
            if not self._streamed_string:
                self._complete(out)
            return True
        if pos >= len(buf):
            return False
        top = not self._stack and not self._streamed_string
        if top:
            self._kind = chr(buf[pos])
        if top and self._requests and buf[pos] != ord("*"):
            return self._inline(out)
        end = buf.find(_CRLF, pos)
        if end < 0:
            return False
        kind, header = buf[pos], bytes(buf[pos + 1 : end])
        after = end + 2
        if self._streamed_string:
            self._pos = after
            size = int(header)
            if size == 0:
                self._streamed_string = False
                self._complete(out)
            else:
                self._skip = size + 2
            return True
        if kind in _BULK:
            return self._bulk(header, after, out)
        if kind in _AGGREGATE:
            self._pos = after
            self._aggregate(kind, header, top, out)
            return True
        self._pos = after
        if kind == ord(".") and self._stack:
            self._stack.pop()
        # Simple types, and anything unknown, are one line each.
        self._complete(out)
        return True

    def _inline(self, out: list[_Message]) -> bool:
        """Parse an inline command (a plain line of words), as telnet would send.

        :param out: where the command goes
        """
        end = self._buf.find(b"\n", self._pos)
        if end < 0:
            return False
        words = bytes(self._buf[self._pos : end]).split()
        self._pos = end + 1
        if words:
            self._name = words[0].decode(errors="replace").upper()
            self._complete(out)
        return True

    def _bulk(self, header: bytes, after: int, out: list[_Message]) -> bool:
        """Parse a bulk string header at the current position.

        :param header: the header line after the type byte: a length, or ``?`` (streamed)
        :param after: the offset just past the header line
        :param out: where complete values go
        """
        if header == b"?":
            self._pos = after
            self._streamed_string = True
            return True
        size = int(header)
        if size < 0:
            self._pos = after
            self._complete(out)
            return True
        frame = self._stack[-1] if len(self._stack) == 1 else None
        capture = (
            self._requests
            and frame is not None
            and frame.remaining == frame.total
            and size <= _CAPTURE_LIMIT
        )
        if capture:
            if len(self._buf) < after + size + 2:
                return False
            self._name = bytes(self._buf[after : after + size]).decode(errors="replace").upper()
            self._pos = after + size + 2
            self._complete(out)
            return True
        self._pos = after
        self._skip = size + 2
        return True

    def _aggregate(self, kind: int, header: bytes, top: bool, out: list[_Message]) -> None:
        """Open an aggregate (array, map, set, push or attribute) from its header.

        :param kind: the type byte
        :param header: the header line after the type byte: a count, or ``?`` (streamed)
        :param top: whether this aggregate is a top-level value
        :param out: where complete values go
        """
        attribute = kind == ord("|")
        if header == b"?":
            self._stack.append(_Frame(None, attribute))
            return
        count = int(header) * (2 if kind in _PAIRED else 1)
        if count > 0:
            self._stack.append(_Frame(count, attribute))
        elif top and self._requests:
            pass  # Redis ignores an empty multibulk request and does not reply.
        elif not attribute:
            self._complete(out)

    def _complete(self, out: list[_Message]) -> None:
        """Account for one complete value at the current depth, closing finished aggregates.

        :param out: where a complete top-level value goes
        """
        while self._stack:
            frame = self._stack[-1]
            if frame.remaining is None:
                return
            frame.remaining -= 1
            if frame.remaining > 0:
                return
            self._stack.pop()
            if frame.attribute:
                return
        out.append(_Message(self._kind, self._name))
        self._name = ""


class _Link:
    """One proxied client connection and its server connection, with their parsers.

    :param client: the writer towards the client
    :param server: the writer towards the server
    """

    def __init__(self, client: asyncio.StreamWriter, server: asyncio.StreamWriter) -> None:
        self.client = client
        self.server = server
        self.requests = _RespReader(requests=True)
        self.replies = _RespReader(requests=False)
        self.outstanding = 0
        self.closed = asyncio.Event()

    def abort(self) -> None:
        """Close both sockets at once, discarding any unsent bytes."""
        self.client.transport.abort()
        self.server.transport.abort()


class RoundTripProxy:
    """A loopback TCP proxy in front of one Redis server that counts request/response exchanges.

    Use it as an async context manager inside the test's event loop; point clients at
    :attr:`url`.

    :param target_host: the Redis server's host
    :param target_port: the Redis server's port
    """

    host: str
    round_trips: int
    commands: int
    command_names: list[str]

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = "127.0.0.1"
        self._port: int | None = None
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._errors: list[BaseException] = []
        self.round_trips = 0
        self.commands = 0
        self.command_names = []

    @property
    def port(self) -> int:
        """The port the proxy listens on.

        :raises RuntimeError: before the proxy is entered
        """
        if self._port is None:
            raise RuntimeError("the proxy is not running; use `async with RoundTripProxy(...)`")
        return self._port

    @property
    def url(self) -> str:
        """A ``redis://`` URL for database 0 through the proxy."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def connections(self) -> int:
        """How many client connections are open through the proxy right now."""
        return len(self._links)

    def reset(self) -> None:
        """Zero the counters and forget the command names; open connections are kept."""
        self.round_trips = 0
        self.commands = 0
        self.command_names.clear()

    async def drop_connections(self) -> None:
        """Abruptly close every open client and server connection, as a network fault would.

        The proxy keeps listening: new connections work as before.
        """
        links = list(self._links)
        for link in links:
            link.abort()
        for link in links:
            await link.closed.wait()

    async def __aenter__(self) -> RoundTripProxy:
        """Start listening on a free loopback port."""
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop listening and close every connection.

        :param exc_type: the exception type, if the block raised
        :param exc: the exception, if the block raised
        :param tb: the traceback, if the block raised
        :raises RuntimeError: if the proxy itself failed, e.g. on bytes it could not parse
        """
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await self.drop_connections()
        if server is not None:
            await server.wait_closed()
        if self._errors and exc is None:
            raise RuntimeError(f"the proxy failed: {self._errors[0]!r}") from self._errors[0]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Connect a new client to the server and pump bytes both ways until either side ends.

        :param reader: the client's reader
        :param writer: the client's writer
        """
        try:
            server_reader, server_writer = await asyncio.open_connection(
                self.target_host, self.target_port
            )
        except OSError:
            writer.transport.abort()
            return
        link = _Link(writer, server_writer)
        self._links.add(link)
        try:
            pumps = [
                asyncio.ensure_future(self._pump_requests(link, reader)),
                asyncio.ensure_future(self._pump_replies(link, server_reader)),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                results = await asyncio.gather(*pumps, return_exceptions=True)
            self._errors.extend(
                result
                for result in results
                if isinstance(result, BaseException)
                and not isinstance(result, asyncio.CancelledError)
            )
        finally:
            self._links.discard(link)
            link.abort()
            link.closed.set()

    async def _pump_requests(self, link: _Link, reader: asyncio.StreamReader) -> None:
        """Forward client bytes to the server, counting round trips and commands.

        :param link: the connection pair
        :param reader: the client's reader
        """
        with contextlib.suppress(OSError):
            while data := await reader.read(_CHUNK):
                if link.outstanding == 0 and link.requests.idle:
                    self.round_trips += 1
                link.server.write(data)
                # Parse before yielding to the loop, so the reply cannot be seen first.
                for message in link.requests.feed(data):
                    self.commands += 1
                    self.command_names.append(message.name)
                    link.outstanding += 1
                await link.server.drain()

    async def _pump_replies(self, link: _Link, reader: asyncio.StreamReader) -> None:
        """Forward server bytes to the client, counting replies against outstanding commands.

        :param link: the connection pair
        :param reader: the server's reader
        """
        with contextlib.suppress(OSError):
            while data := await reader.read(_CHUNK):
                link.client.write(data)
                for message in link.replies.feed(data):
                    if message.kind != ">":
                        link.outstanding -= 1
                await link.client.drain()
