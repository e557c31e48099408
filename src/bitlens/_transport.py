"""The transport: the only code below redis-py's public API.

Everything bitlens puts on the wire passes through :class:`Transport`, which owns:

* the one RESP encoder (:func:`pack`), which honours the client's ``encoding`` and
  ``encoding_errors`` and formats runs of ``BITFIELD SET u1`` from pre-encoded templates
  (:class:`~bitlens._writes.BitfieldSets`), the hottest loop of a mark;
* the raw pooled sends: one packed write on a pooled connection, the replies read straight
  from its parser under one timeout (about half the client CPU of a redis-py ``Pipeline``);
* scripts: an ``EVAL`` is sent as ``EVALSHA`` once the node has the script (the first
  ``EVAL`` caches it there); a ``NOSCRIPT`` reply (a restart, ``SCRIPT FLUSH``) sends the
  affected commands again with the body, one extra round trip only then;
* typed :class:`~typing.Protocol` views of each redis-py internal it uses, and a fallback to
  the client's public ``pipeline()`` whenever one of them is missing (feature-detected once
  per client), so a redis-py upgrade costs speed, never correctness. Setting the
  environment variable ``BITLENS_TRANSPORT=pipeline`` forces the fallback (the test suite
  runs through it with ``--transport=pipeline``).

Replies come back in wire order with error replies in place (as exceptions); the executor
decides what to raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import weakref
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn, Protocol, TypeAlias, cast

import anyio
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import ConnectionPool
from redis.exceptions import (
    AuthenticationError,
    ClusterDownError,
    MovedError,
    NoPermissionError,
    NoScriptError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ._writes import BitfieldSets

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from contextlib import AbstractContextManager

    from redis.asyncio import Redis

    from ._writes import Command

__all__ = [
    "TRANSPORT_ENV",
    "close_cluster_nodes",
    "Endpoint",
    "HOLE",
    "Node",
    "Prepared",
    "RoundTripObserver",
    "Template",
    "Transport",
    "bulk_int",
    "connection_kwargs",
    "pack",
    "pack_template",
]

TRANSPORT_ENV = "BITLENS_TRANSPORT"
"""Set to ``pipeline`` to send everything through the client's public ``pipeline()``."""


# -- the RESP encoder ---------------------------------------------------------------------


def _templates(digits: int, value: int) -> bytes:
    return b"$3\r\nSET\r\n$2\r\nu1\r\n$%d\r\n%%d\r\n$1\r\n%d\r\n" % (digits, value)


_SET_U1_TEMPLATES = tuple(tuple(_templates(d, v) for v in (0, 1)) for d in range(1, 21))
"""``SET u1 <offset> <value>`` as RESP, per digit count of the offset and per value."""


def _bitfield_sets(sets: BitfieldSets) -> bytes:
    """Encode ``SET u1 o v`` for every offset (ascending): one ``template * n % offsets``
    per digit count, formatted at C speed."""
    ordered = sets.offsets
    blocks: list[bytes] = []
    start, total = 0, len(ordered)
    for digits, templates in enumerate(_SET_U1_TEMPLATES, 1):
        end = bisect_left(ordered, 10**digits, start)
        if end > start:
            blocks.append((templates[sets.value] * (end - start)) % ordered[start:end])
            start = end
        if start == total:
            break
    return b"".join(blocks)


_SMALL_INTS = tuple(b"$%d\r\n%d\r\n" % (len(str(n)), n) for n in range(1024))
"""The bulk string of each int in [0, 1024): shard numbers, key counts, plan opcodes."""

_HEADERS = tuple(b"*%d\r\n" % n for n in range(64))
"""The array header of each argument count below 64."""

PIECES: dict[str, bytes] = {}
"""Bulk strings of recently sent ``str`` arguments (UTF-8, strict): keys and names repeat
from call to call. Emptied when it reaches :data:`PIECES_LIMIT` entries."""

PIECES_LIMIT = 4096


def _piece(arg: str, encoding: str, errors: str) -> bytes:
    data = arg.encode(encoding, errors)
    return b"$%d\r\n%b\r\n" % (len(data), data)


def pack(commands: Sequence[Command], encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Encode commands as one RESP request (arrays of bulk strings), ready to write.

    A leaner twin of redis-py's ``pack_commands``: one bytes object, no per-argument
    encoder objects, small ints and recently sent strings taken ready-made, and
    :class:`~bitlens._writes.BitfieldSets` runs formatted from templates.

    :param commands: the commands, each a tuple of ``str``, ``int``, ``bytes`` or
        ``BitfieldSets``
    :param encoding: how ``str`` arguments are encoded (the client's ``encoding``)
    :param errors: the codec's error handler (the client's ``encoding_errors``)
    :raises TypeError: for another argument type
    """
    out: list[bytes] = []
    append = out.append
    pieces = PIECES if encoding == "utf-8" and errors == "strict" else None
    for command in commands:
        argc = len(command)
        at = len(out)
        append(b"")  # the array header, once the argument count is known
        for arg in command:
            kind = type(arg)
            if kind is str:  # exact-type checks first: this is the hottest loop of a mark
                text = cast("str", arg)
                if pieces is None:
                    append(_piece(text, encoding, errors))
                    continue
                piece = pieces.get(text)
                if piece is None:
                    piece = _piece(text, encoding, errors)
                    if len(pieces) >= PIECES_LIMIT:
                        pieces.clear()
                    pieces[text] = piece
                append(piece)
                continue
            if kind is int:
                number = cast("int", arg)
                if 0 <= number < 1024:
                    append(_SMALL_INTS[number])
                    continue
                data = b"%d" % number
            elif kind is bytes:
                data = cast("bytes", arg)
            elif isinstance(arg, BitfieldSets):
                append(_bitfield_sets(arg))
                argc += 4 * len(arg.offsets) - 1
                continue
            elif isinstance(arg, str):
                data = arg.encode(encoding, errors)
            elif isinstance(arg, int) and not isinstance(arg, bool) and arg is not HOLE:
                data = b"%d" % arg
            elif isinstance(arg, bytes):
                data = arg
            else:
                raise TypeError(f"cannot send {arg!r} to Redis")
            append(b"$%d\r\n%b\r\n" % (len(data), data))
        out[at] = _HEADERS[argc] if argc < 64 else b"*%d\r\n" % argc
    return b"".join(out)


class _Hole(int):
    """The type of :data:`HOLE`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "HOLE"


HOLE: int = _Hole(0)
"""An argument left open in a :class:`Template`, filled in each time it is sent."""


def bulk_int(number: int) -> bytes:
    """The RESP bulk string of a non-negative int (as :func:`pack` encodes it).

    :param number: the int
    """
    if number < 1024:
        return _SMALL_INTS[number]
    data = b"%d" % number
    return b"$%d\r\n%b\r\n" % (len(data), data)


def pack_template(
    commands: Sequence[Command], encoding: str = "utf-8", errors: str = "strict"
) -> tuple[bytes, ...]:
    """Encode commands as :func:`pack` does, cut at every :data:`HOLE` argument.

    ``bulk_int(n).join(pieces)`` is then ``pack`` of the commands with ``n`` in every hole.

    :param commands: the commands; :class:`~bitlens._writes.BitfieldSets` are not allowed
    :param encoding: as for :func:`pack`
    :param errors: as for :func:`pack`
    """
    pieces: list[bytes] = []
    current: list[bytes] = []
    for command in commands:
        current.append(_HEADERS[len(command)] if len(command) < 64 else b"*%d\r\n" % len(command))
        for arg in command:
            if arg is HOLE:
                pieces.append(b"".join(current))
                current = []
            elif isinstance(arg, BitfieldSets):
                raise TypeError("a template cannot hold BITFIELD runs")
            else:
                current.append(pack([(arg,)], encoding, errors)[len(_HEADERS[1]) :])
    pieces.append(b"".join(current))
    return tuple(pieces)


def _public_args(command: Command, encoding: str, errors: str) -> list[str | int | bytes]:
    """A command's arguments for redis-py's public ``execute_command``.

    The name goes as ``bytes``, so no response callback of redis-py reshapes the reply (its
    callbacks are looked up by ``str`` name): every reply stays as the server sent it.
    """
    name = command[0]
    head = name if isinstance(name, bytes) else str(name).encode(encoding, errors)
    out: list[str | int | bytes] = [head]
    for arg in command[1:]:
        if isinstance(arg, BitfieldSets):
            for offset in arg.offsets:
                out += ("SET", "u1", offset, arg.value)
        else:
            out.append(arg)
    return out


# -- typed views of the redis-py internals used by the fast path ---------------------------


class _Parser(Protocol):
    async def read_response(self) -> object: ...


class _Backoff(Protocol):
    def compute(self, failures: int) -> float: ...


class _Retry(Protocol):
    _retries: int
    _backoff: _Backoff


class _Connection(Protocol):
    host: str
    port: int
    socket_timeout: float | None

    async def send_packed_command(self, command: bytes, check_health: bool = True) -> None: ...

    async def read_response(self) -> object: ...

    async def disconnect(self, nowait: bool = False) -> None: ...


class _Pool(Protocol):
    connection_kwargs: dict[str, object]
    max_connections: int

    async def get_connection(self) -> _Connection: ...

    async def release(self, connection: _Connection) -> None: ...


class _QuickPool(Protocol):
    _available_connections: list[_Connection]
    _in_use_connections: set[_Connection]
    _lock: asyncio.Lock


class Node(Protocol):
    """A cluster node as the executor sees it (redis-py's ``ClusterNode``)."""

    name: str
    host: str
    port: int


class _FastNode(Node, Protocol):
    def acquire_connection(self) -> _Connection: ...

    def release(self, connection: _Connection) -> None: ...


class _NodesManager(Protocol):
    slots_cache: dict[int, list[Node]]

    async def initialize(self) -> None: ...

    def remap_host_port(self, host: str, port: int) -> tuple[str, int]: ...


class _ClusterInternals(Protocol):
    nodes_manager: _NodesManager


class _PublicPipeline(Protocol):
    def execute_command(self, *args: object, **kwargs: object) -> object: ...


class _PublicRedisPipeline(_PublicPipeline, Protocol):
    async def execute(self, raise_on_error: bool = True) -> list[object]: ...

    async def reset(self) -> None: ...


class _PublicClusterPipeline(_PublicPipeline, Protocol):
    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[object]: ...


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a round trip of the fallback went (what an observer reads off a connection).

    :param host: the server's host
    :param port: the server's port
    :param db: the database number, if known
    """

    host: str
    port: int
    db: int | None = None


class RoundTripObserver(Protocol):
    """Watches every round trip the executor makes (e.g. ``bitlens.otel``'s spans).

    Set as :attr:`Executor.observer`; while it is ``None`` (the default) nothing is observed
    and a round trip costs one attribute check more.
    """

    def round_trip(
        self, wire: Sequence[Command], connection: object
    ) -> AbstractContextManager[object]:
        """Return a context manager that is open while ``wire`` is sent and answered.

        :param wire: the commands on the wire, ``MULTI``/``EXEC`` included
        :param connection: the redis-py connection they travel on (or an :class:`Endpoint`)
        """
        ...


def connection_kwargs(client: Redis | RedisCluster) -> Mapping[str, object]:
    """The keyword arguments the client makes its connections with.

    :param client: a ``Redis`` or ``RedisCluster`` client
    """
    if isinstance(client, RedisCluster):
        return cast("Mapping[str, object]", client.get_connection_kwargs())
    return cast("_Pool", client.connection_pool).connection_kwargs


class _ClosableNodes(Protocol):
    async def aclose(self, attr: str = "nodes_cache") -> None: ...


async def close_cluster_nodes(client: RedisCluster) -> None:
    """Close every node connection of a cluster client this process made.

    After a connection error the cluster client's ``aclose()`` skips its nodes.

    :param client: a cluster client, already closed with ``aclose()``
    """
    manager = cast("_ClosableNodes | None", getattr(client, "nodes_manager", None))
    if manager is not None and callable(getattr(manager, "aclose", None)):
        await manager.aclose()
        await manager.aclose("startup_nodes")


def _fast_pool(client: Redis) -> bool:
    pool = getattr(client, "connection_pool", None)
    connection_class = getattr(pool, "connection_class", None)
    return (
        callable(getattr(pool, "get_connection", None))
        and callable(getattr(pool, "release", None))
        and callable(getattr(connection_class, "send_packed_command", None))
        and callable(getattr(connection_class, "disconnect", None))
    )


def _quick_pool(pool: object) -> bool:
    """Whether an idle connection of ``pool`` may be taken and given back without its lock.

    Only redis-py's own ``ConnectionPool`` (a ``BlockingConnectionPool`` wakes its waiters
    on release; a subclass may count), with the lists this module reads, and no
    credential provider (whose re-authentication listens to redis-py's release events).
    """
    kwargs = getattr(pool, "connection_kwargs", None)
    return (
        type(pool) is ConnectionPool
        and isinstance(getattr(pool, "_available_connections", None), list)
        and isinstance(getattr(pool, "_in_use_connections", None), set)
        and isinstance(getattr(pool, "_lock", None), asyncio.Lock)
        and isinstance(kwargs, dict)
        and kwargs.get("credential_provider") is None
    )


def _take_idle(pool: _Pool) -> _Connection | None:
    """Check out the pool's most recent idle connection at once.

    What ``get_connection()`` would pick (the last one released), moved from the idle list
    to the in-use set as it would, without its lock (nothing awaits between the two), its
    metrics or its events: :func:`_give_back` mirrors it. ``None`` when no connection is
    idle (``get_connection()`` makes one) or the pool's lock is held. The caller closes a
    :func:`_stale` one before sending; the write opens it again.
    """
    quick = cast("_QuickPool", pool)
    available = quick._available_connections
    if not available or quick._lock.locked():
        return None
    conn = available.pop()
    quick._in_use_connections.add(conn)
    return conn


def _stale(conn: _Connection) -> bool:
    """Whether ``conn`` must be opened afresh before a request is sent on it.

    It is not open, the server closed it (its end of stream has reached the event loop),
    it holds received bytes nobody read, or redis-py marked it for reconnection. This is
    the check ``get_connection()`` makes, made here whatever redis-py version is installed
    (some skip it when maintenance notifications may be on, and write to a closed socket).
    """
    reader = getattr(conn, "_reader", None)
    if not isinstance(reader, asyncio.StreamReader) or reader.at_eof() or _buffered(reader):
        return True
    should_reconnect = getattr(conn, "should_reconnect", None)
    return callable(should_reconnect) and bool(should_reconnect())


def _buffered(reader: asyncio.StreamReader) -> int:
    """How many received bytes ``reader`` holds unread (a reply nobody waited for)."""
    return len(getattr(reader, "_buffer", b""))


async def _give_back(pool: _Pool, conn: _Connection) -> None:
    """Return a connection :func:`_take_idle` checked out, as ``release()`` would.

    A connection marked for reconnection is closed first, as ``release()`` does.
    """
    quick = cast("_QuickPool", pool)
    should_reconnect = getattr(conn, "should_reconnect", None)
    if callable(should_reconnect) and should_reconnect():
        with anyio.CancelScope(shield=True):
            await conn.disconnect()
    quick._in_use_connections.discard(conn)
    quick._available_connections.append(conn)


def _fast_cluster(client: RedisCluster) -> bool:
    manager = getattr(client, "nodes_manager", None)
    return (
        isinstance(getattr(manager, "slots_cache", None), dict)
        and callable(getattr(manager, "initialize", None))
        and callable(getattr(manager, "remap_host_port", None))
        and callable(getattr(ClusterNode, "acquire_connection", None))
        and callable(getattr(ClusterNode, "release", None))
    )


# -- scripts ------------------------------------------------------------------------------

_SHAS: dict[str, str] = {}
"""The SHA1 of each script body sent so far."""


@dataclass(slots=True)
class _Scripts:
    """What the servers behind one pool (or cluster client) hold of bitlens' scripts.

    :param loaded: per node name (``""`` on a single server), the SHA1s it holds
    :param refused: the user may run ``EVAL`` but not ``EVALSHA`` (an ACL without
        ``+evalsha``): send bodies
    """

    loaded: dict[str, set[str]] = field(default_factory=lambda: dict[str, set[str]]())
    refused: bool = False


_SCRIPTS: weakref.WeakKeyDictionary[object, _Scripts] = weakref.WeakKeyDictionary()
"""Per connection pool (a cluster client: per cluster): the scripts its servers hold."""


def _sha(body: str, encoding: str, errors: str) -> str:
    sha = _SHAS.get(body)
    if sha is None:
        sha = _SHAS[body] = hashlib.sha1(body.encode(encoding, errors)).hexdigest()
    return sha


def _units(wire: Sequence[Command]) -> list[tuple[int, int]]:
    """Cut a wire into units sent again as a whole: a command, or ``MULTI`` … ``EXEC``,
    each with the ``ASKING`` before it."""
    units: list[tuple[int, int]] = []
    at = 0
    while at < len(wire):
        start = at
        if wire[at][0] == "ASKING":
            at += 1
        if at < len(wire) and wire[at][0] == "MULTI":
            while at < len(wire) and wire[at][0] != "EXEC":
                at += 1
        units.append((start, min(at + 1, len(wire))))
        at += 1
    return units


def _refused(reply: object) -> bool:
    return isinstance(reply, NoPermissionError) and "evalsha" in str(reply).lower()


def _no_script(reply: object) -> bool:
    """Whether an ``EVALSHA`` was answered ``NOSCRIPT`` (or refused by the ACL)."""
    if isinstance(reply, NoScriptError) or _refused(reply):
        return True
    if isinstance(reply, list):
        return any(
            isinstance(item, NoScriptError) or _refused(item)
            for item in cast("list[object]", reply)
        )
    return False


def _lost_script(prepared: Prepared, replies: list[object]) -> bool:
    """Whether a prepared request's ``EVALSHA`` was answered ``NOSCRIPT`` (or refused)."""
    for at in prepared.answers:
        reply = replies[at]
        scripted = isinstance(reply, ResponseError) or prepared.wire[at][0] == "EXEC"
        if scripted and _no_script(reply):
            return True
    return False


def _any_refused(replies: list[object]) -> bool:
    for reply in replies:
        if _refused(reply):
            return True
        if isinstance(reply, list) and any(map(_refused, cast("list[object]", reply))):
            return True
    return False


@dataclass(slots=True)
class _Topology:
    """What the fallback knows of a cluster client's slot map (the fast path reads its own).

    :param epoch: how many times the fallback made the client read the slot map again
    :param stale: a round trip sent under the current ``epoch`` failed in a way that says
        the map is wrong (a dead node, ``MOVED``, ``CLUSTERDOWN``): the next
        :meth:`Transport.refresh` reads it again
    :param lock: serializes those re-reads (made on first use, inside the event loop)
    """

    epoch: int = 0
    stale: bool = False
    lock: anyio.Lock | None = None


_TOPOLOGY: weakref.WeakKeyDictionary[object, _Topology] = weakref.WeakKeyDictionary()
"""Per cluster client: the fallback's view of its slot map."""

_STALE_MAP = (RedisConnectionError, MovedError, ClusterDownError, SlotNotCoveredError)
"""Replies of the fallback that say the slot map it routed by is out of date."""


def _network_error(replies: list[object]) -> BaseException | None:
    """The first reply that is a failure of the connection (not a server's error reply)."""
    for reply in replies:
        if isinstance(reply, (RedisConnectionError, RedisTimeoutError)):
            return reply
    return None


Target: TypeAlias = "Node | None"


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request packed once, to be sent again as it is (see :meth:`Transport.prepare`).

    :param wire: the commands as they go on the wire (scripts as ``EVALSHA``)
    :param packed: their RESP encoding
    :param scripts: the SHA1 of every script the request calls
    :param answers: where a ``NOSCRIPT`` may come back: the replies of the ``EVALSHA`` s
        outside a transaction, and the ``EXEC`` of each transaction holding one
    """

    wire: tuple[Command, ...]
    packed: bytes
    scripts: frozenset[str]
    answers: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Template:
    """A request packed once with :data:`HOLE` arguments (see :meth:`Transport.template`).

    :param wire: the commands, holes in place
    :param pieces: their encoding, cut at every hole (:func:`pack_template`)
    """

    wire: tuple[Command, ...]
    pieces: tuple[bytes, ...]

    def fill(self, number: int) -> Prepared:
        """The request with ``number`` in every hole, ready for :meth:`Transport.send_prepared`.

        :param number: a non-negative int
        """
        return Prepared(self.wire, bulk_int(number).join(self.pieces), _NO_SCRIPTS)


_NO_SCRIPTS: frozenset[str] = frozenset()


class Transport:
    """Sends a list of commands in one round trip and returns every reply, errors in place.

    :param client: a ``Redis`` or ``RedisCluster`` client (never closed here)
    :param mode: ``"auto"`` (the raw fast path when redis-py has what it needs, else the
        public ``pipeline()``) or ``"pipeline"``; ``None`` reads ``BITLENS_TRANSPORT``
    """

    __slots__ = (
        "_client",
        "_cluster",
        "_encoding",
        "_errors",
        "_fast",
        "_quick_pool",
        "_scripts",
        "_topology",
        "owner",
    )

    def __init__(self, client: Redis | RedisCluster, mode: str | None = None) -> None:
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        kwargs = connection_kwargs(client)
        self._encoding = str(kwargs.get("encoding") or "utf-8")
        self._errors = str(kwargs.get("encoding_errors") or "strict")
        chosen = mode if mode is not None else os.environ.get(TRANSPORT_ENV, "auto")
        if isinstance(client, RedisCluster):
            self._fast = chosen != "pipeline" and _fast_cluster(client)
            owner: object = client
        else:
            self._fast = chosen != "pipeline" and _fast_pool(client)
            owner = client.connection_pool
        self._quick_pool = (
            not isinstance(client, RedisCluster)
            and self._fast
            and _quick_pool(client.connection_pool)
        )
        self.owner: object = owner
        """What state learnt from the server is kept per: the pool (a cluster: the client)."""
        scripts = _SCRIPTS.get(owner)
        if scripts is None:
            scripts = _SCRIPTS[owner] = _Scripts()
        self._scripts = scripts
        topology = _TOPOLOGY.get(owner)
        if topology is None:
            topology = _TOPOLOGY[owner] = _Topology()
        self._topology = topology

    @property
    def fast(self) -> bool:
        """Whether the raw fast path is used (else the client's public ``pipeline()``)."""
        return self._fast

    @property
    def is_cluster(self) -> bool:
        """Whether the client is a ``RedisCluster``."""
        return self._cluster

    @property
    def encoding(self) -> str:
        """The client's encoding for text."""
        return self._encoding

    def decode(self, data: bytes) -> str:
        """Decode a bulk reply with the client's encoding.

        :param data: the reply
        """
        return data.decode(self._encoding, self._errors)

    def max_connections(self) -> int | None:
        """The client's connection limit, if it states one."""
        if isinstance(self._client, RedisCluster):
            limit: object = getattr(self._client, "max_connections", None)
        else:
            limit = getattr(self._client.connection_pool, "max_connections", None)
        return limit if isinstance(limit, int) else None

    # -- cluster topology (public redis-py API, plus the slot map on the fast path) --

    def _internals(self) -> _ClusterInternals | None:
        if not self._fast:
            return None
        return cast("_ClusterInternals", self._client)

    @property
    def slots_known(self) -> bool:
        """Whether the cluster's slot map was read."""
        internals = self._internals()
        if internals is not None:
            return bool(internals.nodes_manager.slots_cache)
        client = cast("RedisCluster", self._client)
        return bool(client.get_nodes())

    async def load_slots(self) -> None:
        """Read the cluster's slot map if it was never read."""
        if not self.slots_known:
            await cast("RedisCluster", self._client).initialize()

    async def refresh(self) -> None:
        """Read the cluster's slot map again (after a redirection or a failed node).

        The fast path re-reads it in place. The fallback has only the public API, where
        ``aclose()`` then ``initialize()`` is the one way to re-read it (what redis-py itself
        does on ``CLUSTERDOWN``); ``aclose()`` also drops the connections other calls have
        in flight, which then fail and retry, so the map is read again only when a round
        trip sent under the latest map found it wrong (else just once for many callers
        failing together, and never because of an earlier re-read's own closing).
        """
        internals = self._internals()
        if internals is not None:
            await internals.nodes_manager.initialize()
            return
        client = cast("RedisCluster", self._client)
        topology = self._topology
        if topology.lock is None:
            topology.lock = anyio.Lock()
        async with topology.lock:
            if topology.stale:
                topology.stale = False
                topology.epoch += 1
                await client.aclose()
            await client.initialize()  # does nothing while the client holds a map

    def node_for(self, key: str) -> Node:
        """The node owning ``key``'s slot now.

        :param key: a key
        :raises redis.exceptions.SlotNotCoveredError: if no node covers it
        """
        return cast("Node", cast("RedisCluster", self._client).get_node_from_key(key))

    def node_at(self, host: str, port: int) -> Node | None:
        """The node at ``host:port`` as a redirection names it, if known.

        :param host: the host of the redirection
        :param port: its port
        """
        client = cast("RedisCluster", self._client)
        internals = self._internals()
        if internals is not None:
            host, port = internals.nodes_manager.remap_host_port(host, port)
        return cast("Node | None", client.get_node(host, port))

    # -- round trips --

    def prepare(self, wire: Sequence[Command]) -> Prepared | None:
        """Pack ``wire`` once for a single server, its scripts as ``EVALSHA``.

        A question asked again and again (a dashboard's, a handler's) sends the same
        bytes each time: :meth:`send_prepared` writes them as they are, with no planning,
        encoding or script lookup. ``None`` when that cannot be done: a cluster, the
        public ``pipeline()`` fallback, a script the server is not known to hold yet (the
        first ``EVAL`` loads it), or a user who may not run ``EVALSHA``.

        :param wire: the commands of one round trip
        """
        if self._cluster or not self._fast or self._scripts.refused:
            return None
        loaded = self._scripts.loaded.get("", set())
        sent, scripts = self._scripted(wire, loaded)
        if any(sha not in loaded for sha in scripts):
            return None
        answers: list[int] = []
        in_multi = holds_script = False
        for at, command in enumerate(sent):
            name = command[0]
            if name == "MULTI":
                in_multi, holds_script = True, False
            elif name == "EXEC":
                if holds_script:
                    answers.append(at)
                in_multi = False
            elif name == "EVALSHA":
                if in_multi:
                    holds_script = True
                else:
                    answers.append(at)
        return Prepared(
            tuple(sent),
            pack(sent, self._encoding, self._errors),
            frozenset(scripts),
            tuple(answers),
        )

    def template(self, wire: Sequence[Command]) -> Template | None:
        """Pack ``wire`` once for a single server, leaving every :data:`HOLE` open.

        ``None`` on a cluster, on the public ``pipeline()`` fallback, and for a wire that
        calls a script (whose ``EVALSHA`` depends on what the server holds).

        :param wire: the commands of one round trip, holes in place
        """
        if self._cluster or not self._fast or any(c[0] in ("EVAL", "EVALSHA") for c in wire):
            return None
        return Template(tuple(wire), pack_template(wire, self._encoding, self._errors))

    async def send_prepared(
        self,
        prepared: Prepared,
        observer: RoundTripObserver | None,
        *,
        check: int | None = None,
    ) -> list[object] | None:
        """Send a request made by :meth:`prepare` in one round trip; return every reply.

        ``None`` when the server no longer holds one of its scripts (a restart,
        ``SCRIPT FLUSH``: nothing of those commands ran) or the user may no longer run
        ``EVALSHA``: send the commands the ordinary way then, which loads the scripts again.
        The connection handling is :meth:`exchange`'s: retries of connection errors under
        the client's ``Retry``, a timeout raised at once, the connection closed on any
        failure or cancellation.

        :param prepared: the request
        :param observer: watches the round trip
        :param check: as for :meth:`exchange`
        :raises redis.exceptions.ResponseError: with ``check``, the first error reply
        """
        if not prepared.scripts:
            return _check(
                await self._send_pool(prepared.packed, prepared.wire, observer, check), check
            )
        state = self._scripts
        loaded = state.loaded.get("", set())
        if state.refused or not prepared.scripts <= loaded:
            return None
        replies = await self._send_pool(prepared.packed, prepared.wire, observer, check)
        if _lost_script(prepared, replies):
            if _any_refused(replies):
                state.refused = True
            loaded.clear()
            return None
        return _check(replies, check)

    async def exchange(
        self,
        target: Target,
        wire: Sequence[Command],
        observer: RoundTripObserver | None,
        *,
        check: int | None = None,
    ) -> list[object]:
        """Send ``wire`` in one round trip; return every reply in order, errors in place.

        Scripts the node holds go as ``EVALSHA``; if it answers ``NOSCRIPT``, the units
        (a command or a whole ``MULTI``/``EXEC``) holding those commands are sent again with
        the body in one more round trip.

        :param target: the cluster node, or ``None`` on a single server
        :param wire: the commands
        :param observer: watches the round trip(s)
        :param check: raise the first error reply after the first ``check`` commands (while
            the round trip is still observed); ``None``: return errors in place
        :raises redis.exceptions.ResponseError: with ``check``, the first error reply
        :raises redis.exceptions.ConnectionError: when the connection fails (after the
            client's retries on a single server)
        :raises redis.exceptions.TimeoutError: when the server does not answer in time
        """
        state = self._scripts
        loaded = state.loaded.setdefault(target.name if target is not None else "", set())
        sent, scripts = self._scripted(wire, set() if state.refused else loaded)
        replies = await self._send(target, sent, observer, check)
        if sent is not wire and any(_no_script(reply) for reply in replies):
            if _any_refused(replies):
                state.refused = True  # this user may not run EVALSHA: bodies from now on
            loaded.clear()  # the node lost its scripts: send bodies until it has them again
            replies = await self._resend(target, wire, replies, observer, check)
        loaded.update(scripts)
        _check(replies, check)
        return replies

    def _scripted(
        self, wire: Sequence[Command], loaded: set[str]
    ) -> tuple[Sequence[Command], list[str]]:
        """Return the wire with held scripts as ``EVALSHA``, and the scripts it sends."""
        scripts: list[str] = []
        out: list[Command] | None = None
        for at, command in enumerate(wire):
            if command[0] != "EVAL" or not isinstance(command[1], str):
                continue
            sha = _sha(command[1], self._encoding, self._errors)
            scripts.append(sha)
            if sha in loaded:
                if out is None:
                    out = list(wire)
                out[at] = ("EVALSHA", sha, *command[2:])
        return (wire if out is None else out), scripts

    async def _resend(
        self,
        target: Target,
        wire: Sequence[Command],
        replies: list[object],
        observer: RoundTripObserver | None,
        check: int | None,
    ) -> list[object]:
        again: list[tuple[int, int]] = [
            (start, end)
            for start, end in _units(wire)
            if any(_no_script(reply) for reply in replies[start:end])
        ]
        resent: list[Command] = [command for start, end in again for command in wire[start:end]]
        waited = wire[-1][0] == "WAIT" and (len(wire) - 1, len(wire)) not in again
        if waited and any(wire[start][0] in ("MULTI", "ASKING") for start, _ in again):
            again.append((len(wire) - 1, len(wire)))
            resent.append(wire[-1])
        fresh = await self._send(target, resent, observer, None)
        merged = list(replies)
        at = 0
        for start, end in again:
            merged[start:end] = fresh[at : at + end - start]
            at += end - start
        return merged

    async def _send(
        self,
        target: Target,
        wire: Sequence[Command],
        observer: RoundTripObserver | None,
        check: int | None,
    ) -> list[object]:
        if not self._fast:
            return await self._send_public(target, wire, observer, check)
        packed = pack(wire, self._encoding, self._errors)
        if target is None:
            return await self._send_pool(packed, wire, observer, check)
        return await self._send_node(cast("_FastNode", target), packed, wire, observer)

    async def _send_pool(
        self,
        packed: bytes,
        wire: Sequence[Command],
        observer: RoundTripObserver | None,
        check: int | None,
    ) -> list[object]:
        pool = cast("_Pool", cast("Redis", self._client).connection_pool)
        conn = _take_idle(pool) if self._quick_pool else None
        if conn is None:
            conn = await pool.get_connection()
            try:
                if observer is None:
                    return await _attempts(conn, packed, len(wire))
                with observer.round_trip(wire, conn):
                    return _check(await _attempts(conn, packed, len(wire)), check)
            finally:
                with anyio.CancelScope(shield=True):
                    await pool.release(conn)
        try:
            if _stale(conn):
                with anyio.CancelScope(shield=True):
                    await conn.disconnect()  # _write opens it again
            if observer is None:
                return await _attempts(conn, packed, len(wire))
            with observer.round_trip(wire, conn):
                return _check(await _attempts(conn, packed, len(wire)), check)
        except ResponseError:
            raise  # every reply was read: the connection is ready for the next request
        except BaseException:
            with anyio.CancelScope(shield=True):
                await conn.disconnect()  # the next request opens it again
            raise
        finally:
            await _give_back(pool, conn)

    async def _send_node(
        self,
        node: _FastNode,
        packed: bytes,
        wire: Sequence[Command],
        observer: RoundTripObserver | None,
    ) -> list[object]:
        conn = node.acquire_connection()
        try:
            if observer is None:
                await _write(conn, packed)
                return await _read_all(conn, len(wire))
            with observer.round_trip(wire, conn):
                await _write(conn, packed)
                return await _read_all(conn, len(wire))
        except BaseException:
            with anyio.CancelScope(shield=True):
                await conn.disconnect()
            raise
        finally:
            node.release(conn)

    async def _send_public(
        self,
        target: Target,
        wire: Sequence[Command],
        observer: RoundTripObserver | None,
        check: int | None,
    ) -> list[object]:
        """The fallback: one round trip through the client's public ``pipeline()``.

        ``MULTI``/``EXEC`` travel as commands of a non-transactional pipeline (one round
        trip, atomic on the server as ever); nothing reshapes the replies.
        """
        encoding, errors = self._encoding, self._errors
        if target is None:
            client = cast("Redis", self._client)
            pipe = cast("_PublicRedisPipeline", client.pipeline(transaction=False))
            for command in wire:
                pipe.execute_command(*_public_args(command, encoding, errors))
            kwargs = connection_kwargs(client)
            host, port, db = kwargs.get("host"), kwargs.get("port"), kwargs.get("db")
            where = Endpoint(
                host if isinstance(host, str) else "",
                port if isinstance(port, int) else 0,
                db if isinstance(db, int) else None,
            )
            with observer.round_trip(wire, where) if observer else contextlib.nullcontext():
                return _check(await pipe.execute(raise_on_error=False), check)
        cluster = cast("RedisCluster", self._client)
        # The node as the client's map holds it now: a re-read by another call since this
        # target was picked may have dropped it (a dead master), and a connection opened on
        # a dropped node object would never be closed by the client.
        current = cast("Node | None", cluster.get_node(node_name=target.name))
        if current is None:
            raise RedisConnectionError(f"{target.name} is no longer in the cluster's slot map")
        target = current
        cpipe = cast("_PublicClusterPipeline", cluster.pipeline())
        for command in wire:
            # A cluster pipeline routes by a str name, so redis-py's callbacks run here:
            # the only one that reshapes a reply bitlens reads outside MULTI is SMEMBERS'.
            args = _public_args(command, encoding, errors)
            args[0] = str(command[0])
            cpipe.execute_command(*args, target_nodes=target)
        where = Endpoint(target.host, target.port)
        topology = self._topology
        epoch = topology.epoch
        with observer.round_trip(wire, where) if observer else contextlib.nullcontext():
            try:
                replies = await cpipe.execute(raise_on_error=False, allow_redirections=False)
            except _STALE_MAP:
                topology.stale = topology.stale or epoch == topology.epoch
                raise
            except RedisClusterException as error:
                # When the write itself fails, redis-py's pipeline closes the client, sleeps
                # and sends once more, but by then it has dropped the commands' target_nodes,
                # so MULTI/EXEC (no key) cannot be routed: the node was not reached.
                topology.stale = topology.stale or epoch == topology.epoch
                raise RedisConnectionError(f"pipeline to {target.name} failed: {error}") from error
            # As on the fast path, a failed connection is raised (the executor retries the
            # node's groups after a refresh), never returned as replies.
            if epoch == topology.epoch and any(isinstance(r, _STALE_MAP) for r in replies):
                topology.stale = True
            failure = _network_error(replies)
            if failure is not None:
                raise failure
        return [
            list(cast("set[object]", r)) if isinstance(r, (set, frozenset)) else r for r in replies
        ]


def _check(replies: list[object], check: int | None) -> list[object]:
    """Raise the first error reply after the first ``check`` (unless a ``NOSCRIPT`` is
    among them: the transport sends those again first); return ``replies``."""
    if check is None:
        return replies
    for reply in replies[check:]:
        if isinstance(reply, ResponseError):  # rare: only then look for a NOSCRIPT
            if any(_no_script(other) for other in replies):
                return replies
            raise reply
    return replies


async def _attempts(conn: _Connection, packed: bytes, count: int) -> list[object]:
    """Send and read, retrying only connection errors under the client's ``Retry``.

    A timeout is raised at once (the server may still be running the request, so sending
    it again would multiply its work), and so is an authentication failure.
    """
    retry = cast("_Retry | None", getattr(conn, "retry", None))
    retries: int = getattr(retry, "_retries", 0) if retry is not None else 0
    backoff = cast("_Backoff | None", getattr(retry, "_backoff", None))
    failures = 0
    while True:
        try:
            await _write(conn, packed)
            return await _read_all(conn, count)
        except RedisConnectionError as error:
            await conn.disconnect()
            if _is_auth(error) or failures >= retries:
                raise
            failures += 1
            if backoff is not None:
                await anyio.sleep(backoff.compute(failures))
        except (RedisTimeoutError, TimeoutError):
            await conn.disconnect()
            raise


_AUTH_MARKERS = ("NOAUTH", "WRONGPASS", "must be called with the client already authenticated")


def _is_auth(error: RedisConnectionError) -> bool:
    return isinstance(error, AuthenticationError) or any(m in str(error) for m in _AUTH_MARKERS)


async def _write(conn: _Connection, packed: bytes) -> None:
    """Send ``packed`` on ``conn``: straight onto its transport when it is open.

    The same bytes redis-py's ``send_packed_command`` sends, without its ``wait_for`` per
    write (a task of its own before Python 3.12; a timeout scope after): the transport
    takes the bytes at once, and only a write buffer the kernel has not taken is drained,
    under the socket timeout. A connection that is not open goes the redis-py way, which
    connects it.
    """
    writer = getattr(conn, "_writer", None)
    transport = getattr(writer, "transport", None)
    if (
        not isinstance(writer, asyncio.StreamWriter)
        or not isinstance(transport, asyncio.WriteTransport)
        or transport.is_closing()
        or getattr(conn, "_reader", None) is None
    ):
        await conn.send_packed_command(packed, check_health=False)
        return
    try:
        transport.write(packed)
        if transport.get_write_buffer_size():
            timeout = conn.socket_timeout
            with anyio.fail_after(timeout) if timeout else contextlib.nullcontext():
                await writer.drain()
    except BaseException as exc:
        await _failed(conn, exc, "writing to")


async def _failed(conn: _Connection, exc: BaseException, doing: str) -> NoReturn:
    """Close ``conn`` after a failed write or read, then raise ``exc`` as redis-py would.

    The connection is closed whatever the failure, cancellation included (shielded), so no
    half-written request or half-read reply reaches its next user. Its socket is aborted
    first: a plain close would wait for the unsent part of the request to go out, and a
    peer that stopped reading would keep the socket open for ever. A timeout is raised as
    redis-py's ``TimeoutError`` and an ``OSError`` as its ``ConnectionError`` (both healing
    ones: the caller may retry); anything else, such as a cancellation, as it came.

    :param doing: ``"writing to"`` or ``"reading from"``, for the message
    """
    transport = getattr(getattr(conn, "_writer", None), "transport", None)
    if isinstance(transport, asyncio.WriteTransport):
        transport.abort()
    with anyio.CancelScope(shield=True):
        await conn.disconnect(nowait=True)
    where = f"{conn.host}:{conn.port}"
    if isinstance(exc, TimeoutError):
        raise RedisTimeoutError(f"Timeout {doing} {where}") from exc
    if isinstance(exc, OSError):
        raise RedisConnectionError(f"Error {doing} {where}: {exc}") from exc
    raise exc


READ_STRIDE = 1024
"""Replies read under one socket timeout: a stall of that long, not the batch, times out."""


_timeout = getattr(asyncio, "timeout", None)
"""``asyncio.timeout`` (Python 3.11+); on 3.10 replies are read under anyio's ``fail_after``."""


async def _read_into(parser: _Parser, count: int, replies: list[object]) -> None:
    for _ in range(count):
        replies.append(await parser.read_response())


async def _read_all(conn: _Connection, count: int) -> list[object]:
    """Read ``count`` replies, error replies in place (as exceptions).

    The replies are read straight from the connection's parser, :data:`READ_STRIDE` replies
    under one timeout (redis-py's ``read_response`` arms a timeout per reply, which costs
    more than parsing a small reply). So the socket timeout bounds a stall, as it does in
    redis-py, not the whole batch: a pipeline of 200,000 commands that the server answers
    steadily is read however long it takes. On any failure, cancellation included, the
    connection is closed, so no half-read reply can reach its next user.
    """
    parser = cast("_Parser | None", getattr(conn, "_parser", None))
    if parser is None or not callable(getattr(parser, "read_response", None)):
        return await _read_all_slowly(conn, count)  # an unknown connection class
    timeout = conn.socket_timeout
    replies: list[object] = []
    try:
        for lo in range(0, count, READ_STRIDE):
            stride = min(READ_STRIDE, count - lo)
            if not timeout:
                await _read_into(parser, stride, replies)
            elif _timeout is not None:  # asyncio's own: a third of anyio's scope's cost
                async with _timeout(timeout):
                    await _read_into(parser, stride, replies)
            else:
                with anyio.fail_after(timeout):
                    await _read_into(parser, stride, replies)
    except BaseException as exc:
        await _failed(conn, exc, "reading from")
    return replies


async def _read_all_slowly(conn: _Connection, count: int) -> list[object]:
    replies: list[object] = []
    for _ in range(count):
        try:
            replies.append(await conn.read_response())
        except ResponseError as error:
            replies.append(error)
    return replies
