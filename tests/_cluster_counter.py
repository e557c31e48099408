"""Count Redis round trips per cluster node, two independent ways.

**Real sockets** (:class:`ClusterProxies`): one :class:`~_proxy.RoundTripProxy` per cluster
node, and redis-py's ``address_remap`` hook, which ``RedisCluster`` applies to every address
it learns from ``CLUSTER SLOTS`` (on ``initialize()`` and on every topology refresh), so all
its connections go through the proxy of the node they are meant for, and each proxy counts
exactly what crosses the wire. Redirects are the one blind spot: redis-py 8.1 does not remap
the address in a ``MOVED`` or ``ASK`` error, so a command redirected that way goes to the
real port, uncounted (nothing in the tests migrates slots; a failover is seen as a
connection error, after which redis-py re-reads ``CLUSTER SLOTS`` and remaps again).

**redis-py writes** (:func:`count_writes`): wraps
``redis.asyncio.connection.AbstractConnection.send_packed_command`` and bitlens' own
``bitlens._transport._write`` (which writes onto an open connection's transport directly)
for the duration of a ``with`` block and records every call: the connection's ``host:port``
and the names of the commands written. redis-py reads every reply of a write before the
connection writes again, so each write is one round trip. Writes made while a connection is
being opened (``HELLO``, ``CLIENT SETINFO``, ``READONLY`` ...) are flagged as handshake and
left out of the counts, so no warm-up is needed. It sees any client built on redis-py's
connections, whatever addresses it uses, but not bytes written to a socket by other means.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.asyncio.connection import AbstractConnection

import bitlens._transport
from _proxy import RoundTripProxy, _RespReader

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence
    from types import TracebackType

__all__ = ["ClusterProxies", "Write", "WriteCounter", "count_writes"]


@dataclass(frozen=True, slots=True)
class Write:
    """One ``send_packed_command`` call: one round trip on one connection.

    :param node: the ``host:port`` the connection talks to
    :param commands: the upper-cased names of the commands written, in order
    :param handshake: whether the write was part of opening the connection
    """

    node: str
    commands: tuple[str, ...]
    handshake: bool


@dataclass(slots=True)
class WriteCounter:
    """The writes recorded by :func:`count_writes`, in the order they completed.

    :param writes: every write, handshakes included
    """

    writes: list[Write] = field(default_factory=list)

    @property
    def round_trips(self) -> list[Write]:
        """The writes that were not part of opening a connection."""
        return [write for write in self.writes if not write.handshake]

    def per_node(self) -> dict[str, int]:
        """Return how many round trips (handshakes excluded) went to each ``host:port``."""
        return dict(Counter(write.node for write in self.round_trips))

    def commands(self, node: str | None = None) -> list[str]:
        """Return the command names sent in round trips, optionally to one node only.

        :param node: a ``host:port``, or ``None`` for every node
        """
        return [
            name
            for write in self.round_trips
            if node is None or write.node == node
            for name in write.commands
        ]

    def reset(self) -> None:
        """Forget every write recorded so far."""
        self.writes.clear()


def _command_names(chunks: Sequence[bytes | memoryview]) -> tuple[str, ...]:
    """Return the names of the RESP commands packed in ``chunks``.

    :param chunks: the packed bytes, as redis-py hands them to the socket
    """
    reader = _RespReader(requests=True)
    names: list[str] = []
    for chunk in chunks:
        names += [message.name for message in reader.feed(bytes(chunk))]
    return tuple(names)


@contextlib.contextmanager
def count_writes() -> Iterator[WriteCounter]:
    """Record every redis-py write inside the block, per node; restore redis-py after.

    Patches ``AbstractConnection.send_packed_command`` and ``bitlens._transport._write``
    (each write, recorded once it completed; a ``_write`` that falls back to redis-py is
    recorded once) and ``AbstractConnection.connect_check_health`` (to flag the handshake
    writes of a connection being opened). Not reentrant.
    """
    counter = WriteCounter()
    opening: set[int] = set()
    in_write: contextvars.ContextVar[bool] = contextvars.ContextVar("in_write", default=False)
    original_send = AbstractConnection.send_packed_command
    original_write = bitlens._transport._write
    original_connect = AbstractConnection.connect_check_health

    async def write(conn: Any, packed: bytes) -> None:
        """Write as bitlens would, then record the write.

        :param conn: the connection
        :param packed: the packed commands
        """
        token = in_write.set(True)
        try:
            await original_write(conn, packed)
        finally:
            in_write.reset(token)
        node = f"{conn.host}:{conn.port}"
        counter.writes.append(Write(node, _command_names([packed]), id(conn) in opening))

    async def send_packed_command(
        self: AbstractConnection,
        command: bytes | str | Iterable[bytes],
        check_health: bool = True,
    ) -> None:
        """Write as redis-py would, then record the write.

        :param self: the connection
        :param command: the packed command(s)
        :param check_health: passed on
        """
        if isinstance(command, str):
            command = command.encode()
        chunks: list[bytes] = [command] if isinstance(command, bytes) else list(command)
        handshake = id(self) in opening
        await original_send(self, chunks, check_health)
        if in_write.get() and not handshake:
            return  # bitlens' _write fell back to redis-py: recorded there
        connection: Any = self
        node = f"{connection.host}:{connection.port}"
        counter.writes.append(Write(node, _command_names(chunks), handshake))

    async def connect_check_health(
        self: AbstractConnection, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        """Open the connection as redis-py would, flagging its writes as handshake.

        :param self: the connection
        :param check_health: passed on
        :param retry_socket_connect: passed on
        """
        opening.add(id(self))
        try:
            await original_connect(self, check_health, retry_socket_connect)
        finally:
            opening.discard(id(self))

    setattr(AbstractConnection, "send_packed_command", send_packed_command)  # noqa: B010
    setattr(AbstractConnection, "connect_check_health", connect_check_health)  # noqa: B010
    setattr(bitlens._transport, "_write", write)  # noqa: B010
    try:
        yield counter
    finally:
        setattr(AbstractConnection, "send_packed_command", original_send)  # noqa: B010
        setattr(bitlens._transport, "_write", original_write)  # noqa: B010
        setattr(AbstractConnection, "connect_check_health", original_connect)  # noqa: B010


class ClusterProxies:
    """One round-trip counting proxy per cluster node, and the remap that routes through them.

    Build the client with ``startup_nodes`` at :meth:`proxied` addresses and
    ``address_remap=proxies.remap``. Use it as an async context manager in the test's loop.

    :param addresses: ``(host, port)`` of every cluster node
    """

    def __init__(self, addresses: Iterable[tuple[str, int]]) -> None:
        self._proxies = {address: RoundTripProxy(*address) for address in addresses}
        self._remap: dict[tuple[str, int], tuple[str, int]] = {}
        self._stack: contextlib.AsyncExitStack | None = None

    def remap(self, address: tuple[str, int]) -> tuple[str, int]:
        """Return the proxy address for a node address; other addresses pass unchanged.

        :param address: ``(host, port)`` as the cluster announces it
        """
        return self._remap.get(address, address)

    def proxied(self) -> list[tuple[str, int]]:
        """Return the proxy address of every node, in the order given."""
        return [self.remap(address) for address in self._proxies]

    def proxy(self, node: str) -> RoundTripProxy:
        """Return the proxy in front of a node.

        :param node: the node's real ``host:port``
        """
        host, _, port = node.rpartition(":")
        return self._proxies[host, int(port)]

    def per_node(self) -> dict[str, int]:
        """Return the round trips through each proxy, keyed by real ``host:port``; no zeros."""
        return {
            f"{host}:{port}": proxy.round_trips
            for (host, port), proxy in self._proxies.items()
            if proxy.round_trips
        }

    def reset(self) -> None:
        """Zero every proxy's counters."""
        for proxy in self._proxies.values():
            proxy.reset()

    async def __aenter__(self) -> ClusterProxies:
        """Start every proxy on a free loopback port."""
        async with contextlib.AsyncExitStack() as stack:
            for address, proxy in self._proxies.items():
                await stack.enter_async_context(proxy)
                self._remap[address] = (proxy.host, proxy.port)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop every proxy and close every connection through them.

        :param exc_type: the exception type, if the block raised
        :param exc: the exception, if the block raised
        :param tb: the traceback, if the block raised
        """
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(exc_type, exc, tb)
