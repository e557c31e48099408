"""A real Redis Cluster of private redis-server processes, for the tests and benchmarks.

:class:`EmbeddedCluster` runs a cluster of :class:`bitlens.embedded.EmbeddedRedis` processes
(by default 3 masters with 1 replica each), built over plain sockets with ``CLUSTER
ADDSLOTS``, ``CLUSTER MEET`` and ``CLUSTER REPLICATE`` (no ``redis-cli`` needed), for Redis
6.2 and later::

    with EmbeddedCluster() as cluster:
        client = redis.asyncio.cluster.RedisCluster.from_url(cluster.url)
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from bitlens.embedded import EmbeddedRedis, _on_a_free_port, find_redis_server, server_version

from .resp import AdminClient, ReplyError
from .servers import check_cpu, tail

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType

__all__ = ["EmbeddedCluster", "EmbeddedClusterNode", "NodeRole"]

_CLUSTER_SLOTS = 16384
_BUS_PORT_OFFSET = 10000
"""A cluster node's bus port is its port plus this (the Redis default)."""
_CLUSTER_PORT_RANGE = (10000, 22767)
"""Node ports are drawn from here: with their bus ports (up to 32767) they stay below both
Linux's ephemeral range (32768 and up), so no client socket can hold them, and 55000."""
_CLUSTER_START_TIMEOUT = 30.0
_FAILOVER_TIMEOUT = 15.0
_POLL_INTERVAL = 0.025
_ADDSLOTS_CHUNK = 2048
_CLUSTER_LOG_TAIL_LINES = 8
_NODE_TIMEOUT_MS = 1000
_FAILING_FLAGS = frozenset({"fail", "fail?", "handshake", "noaddr"})

NodeRole = Literal["master", "replica", "down"]
"""A cluster node's role as the node itself reports it (``ROLE``), or ``"down"``."""


@dataclass(frozen=True, slots=True)
class _NodeView:
    """One line of ``CLUSTER NODES``: how one node sees another.

    :param node_id: the node's id
    :param port: the node's client port
    :param flags: e.g. ``{"myself", "master"}`` or ``{"slave", "fail"}``
    :param master_id: for a replica, its master's id
    :param slots: the slot ranges it serves, inclusive, in the order listed
    """

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    slots: tuple[tuple[int, int], ...]

    @property
    def master(self) -> bool:
        """Whether the node is flagged as a master."""
        return "master" in self.flags

    @property
    def failing(self) -> bool:
        """Whether the node is flagged as failed, suspected, unreachable or unknown."""
        return bool(self.flags & _FAILING_FLAGS)

    @property
    def slot_count(self) -> int:
        """How many slots the node serves."""
        return sum(last - first + 1 for first, last in self.slots)

    def topology(self) -> tuple[bool, str | None, tuple[tuple[int, int], ...]]:
        """Return what every node must agree on: master flag, master id and slots."""
        return self.master, self.master_id, self.slots


def _parse_cluster_nodes(text: str) -> dict[str, _NodeView]:
    """Parse a ``CLUSTER NODES`` reply into views keyed by node id.

    Migrating and importing slots (``[slot->-id]``) are ignored.

    :param text: the reply
    """
    views: dict[str, _NodeView] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        node_id, address, flags, master = fields[:4]
        port_text = address.split("@", 1)[0].rsplit(":", 1)[-1]
        slots: list[tuple[int, int]] = []
        for item in fields[8:]:
            if item.startswith("["):
                continue
            first, _, last = item.partition("-")
            slots.append((int(first), int(last or first)))
        views[node_id] = _NodeView(
            node_id=node_id,
            port=int(port_text) if port_text.isdigit() else 0,
            flags=frozenset(flags.split(",")),
            master_id=None if master == "-" else master,
            slots=tuple(slots),
        )
    return views


def _parse_info(text: str) -> dict[str, str]:
    """Parse an ``INFO`` or ``CLUSTER INFO`` reply into a dict of its fields.

    :param text: the reply
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not key.startswith("#"):
            fields[key.strip()] = value.strip()
    return fields


def _slots_replicas(reply: object) -> dict[int, set[int]]:
    """Return the replica ports a ``CLUSTER SLOTS`` reply lists under each master port.

    :param reply: the reply: ``[[first, last, [host, port, id, ...], replica, ...], ...]``
    :raises ReplyError: if the reply does not have that shape
    """
    if not isinstance(reply, list):
        raise ReplyError(f"unexpected CLUSTER SLOTS reply {reply!r}")
    listed: dict[int, set[int]] = {}
    for entry in reply:
        if not isinstance(entry, list) or len(entry) < 3:
            raise ReplyError(f"unexpected CLUSTER SLOTS entry {entry!r}")
        ports = [node[1] for node in entry[2:] if isinstance(node, list) and len(node) > 1]
        if len(ports) != len(entry) - 2 or not all(isinstance(port, int) for port in ports):
            raise ReplyError(f"unexpected CLUSTER SLOTS entry {entry!r}")
        listed.setdefault(ports[0], set()).update(ports[1:])
    return listed


def _can_bind(host: str, port: int) -> bool:
    """Tell whether a TCP listener could bind ``host:port`` right now.

    :param host: the address to bind
    :param port: the port to try
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _free_cluster_port(host: str, avoid: set[int]) -> int:
    """Return a port from the cluster range that is free, and whose bus port is free too.

    :param host: the address to bind
    :param avoid: ports already handed out (client or bus ports), not to be reused
    :raises RuntimeError: if no free pair is found after many random draws
    """
    low, high = _CLUSTER_PORT_RANGE
    for _ in range(500):
        port = random.randint(low, high)
        bus = port + _BUS_PORT_OFFSET
        if avoid & {port, bus}:
            continue
        if _can_bind(host, port) and _can_bind(host, bus):
            return port
    raise RuntimeError(f"no free port pair (port, port + 10000) found in {low}..{high}")


class EmbeddedClusterNode:
    """One redis-server process of an :class:`EmbeddedCluster`.

    Its cluster node id lives in its ``nodes.conf`` and survives
    :meth:`EmbeddedCluster.restart_node`; its role can change (a replica is promoted when
    its master fails), so :attr:`role` asks the process each time.

    :param server: the redis-server process
    :param node_id: its cluster node id (40 hex characters)
    """

    def __init__(self, server: EmbeddedRedis, node_id: str) -> None:
        self.server = server
        self.node_id = node_id
        self._admin = AdminClient(server.host, server.port)

    def __repr__(self) -> str:
        """Return a short description with the address, node id and state."""
        state = f"pid={self.pid}" if self.running else "down"
        return f"<EmbeddedClusterNode {self.name} id={self.node_id[:8]} {state}>"

    @property
    def host(self) -> str:
        """The address the node listens on."""
        return self.server.host

    @property
    def port(self) -> int:
        """The node's client port; its bus port is this plus 10,000."""
        return self.server.port

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``, as ``startup_nodes`` and ``address_remap`` take them."""
        return self.server.host, self.server.port

    @property
    def name(self) -> str:
        """``host:port``, the name redis-py's ``ClusterNode`` gives this node."""
        return f"{self.server.host}:{self.server.port}"

    @property
    def url(self) -> str:
        """A ``redis://`` URL of this node alone."""
        return f"redis://{self.server.host}:{self.server.port}"

    @property
    def pid(self) -> int | None:
        """The process id, or ``None`` when the node is not running."""
        return self.server.pid

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.server.running

    @property
    def role(self) -> NodeRole:
        """``"master"`` or ``"replica"`` as the node reports (``ROLE``), or ``"down"``."""
        reply = self._role()
        if reply is None:
            return "down"
        return "master" if reply[0] == b"master" else "replica"

    def _role(self) -> list[object] | None:
        """Return the node's ``ROLE`` reply, or ``None`` if it is not running or answering."""
        if not self.running:
            return None
        try:
            reply = self.call("ROLE")
        except (OSError, ReplyError):
            return None
        return reply if isinstance(reply, list) and reply else None

    def master_port(self) -> int | None:
        """Return the port of the master this node replicates, or ``None`` if it is none's."""
        reply = self._role()
        if reply is None or reply[0] != b"slave" or len(reply) < 3:
            return None
        port = reply[2]
        return port if isinstance(port, int) else None

    def call(self, *args: str | int) -> object:
        """Send one command to this node over a plain socket and return the RESP2 reply.

        Strings come back as ``bytes`` (bulk) or ``str`` (status), errors are raised.

        :param args: the command name and its arguments
        :raises RuntimeError: if the node answers with an error
        :raises OSError: if the node cannot be reached
        """
        return self._admin.call(*args)

    def text(self, *args: str | int) -> str:
        """Send one command whose reply is text (``CLUSTER NODES``, ``INFO``) and decode it.

        :param args: the command name and its arguments
        :raises RuntimeError: if the node answers with an error or not with a string
        :raises OSError: if the node cannot be reached
        """
        return self._admin.text(*args)

    def log_tail(self, lines: int = _CLUSTER_LOG_TAIL_LINES) -> str:
        """Return the last lines of the node's log, or an empty string.

        :param lines: how many lines to keep
        """
        directory = self.server.directory
        return tail(Path(directory, "redis.log"), lines) if directory else ""

    def close(self) -> None:
        """Close the administrative connection; the process is left alone."""
        self._admin.close()


class EmbeddedCluster:
    """A real Redis Cluster of private redis-server processes on loopback.

    ``masters * (1 + replicas)`` servers start with ``--cluster-enabled yes``, each in its
    own temporary directory, on random ports whose bus ports (port + 10,000) are free too,
    all below 32,768. The cluster is then built over plain sockets, as ``redis-cli --cluster
    create`` would (``CLUSTER SET-CONFIG-EPOCH``, ``ADDSLOTS`` in chunks, ``MEET``,
    ``REPLICATE``), which works from Redis 6.2 on, and :meth:`start` returns once every node
    reports ``cluster_state:ok``, all nodes agree on the topology and every replica's link
    to its master is up. Masters split the 16,384 slots evenly in order; replica ``j``
    follows master ``j % masters``.

    The node timeout is 1 second and replicas may always fail over
    (``cluster-replica-validity-factor 0``), so a killed master is replaced in about 2-3 s.
    Nothing is persisted: a node brought back with :meth:`restart_node` resyncs from its
    master. Use it as a context manager, or call :meth:`start` and :meth:`stop`.

    :param binary: path of the redis-server executable; found with :func:`find_redis_server`
        when ``None``
    :param masters: how many masters share the slots
    :param replicas: how many replicas each master gets
    :param cpu: pin every server process to this CPU (for benchmarks)
    :param args: extra command-line arguments for every redis-server
    :raises RedisServerNotFound: if ``binary`` is ``None`` and no binary is found
    :raises ValueError: if ``masters < 1``, ``replicas < 0`` or ``cpu`` is not usable
    """

    host: str
    binary: str
    version: tuple[int, int, int]
    master_count: int
    replicas_per_master: int
    startup_seconds: float | None
    """How long the last :meth:`start` took, from spawning to a healthy cluster."""

    def __init__(
        self,
        binary: str | None = None,
        *,
        masters: int = 3,
        replicas: int = 1,
        cpu: int | None = None,
        args: Sequence[str] = (),
    ) -> None:
        if masters < 1:
            raise ValueError(f"a cluster needs at least one master, not {masters}")
        if replicas < 0:
            raise ValueError(f"replicas must be 0 or more, not {replicas}")
        check_cpu(cpu)
        self.host = "127.0.0.1"
        self.binary = binary if binary is not None else find_redis_server()
        self.version = server_version(self.binary)
        self.master_count = masters
        self.replicas_per_master = replicas
        self.startup_seconds = None
        self._cpu = cpu
        self._args = tuple(args)
        self._nodes: list[EmbeddedClusterNode] = []
        self._layout: dict[str, tuple[tuple[int, int], ...]] = {}

    def __repr__(self) -> str:
        """Return a short description with the version, shape, URL and state."""
        version = ".".join(map(str, self.version))
        shape = f"{self.master_count}x(1+{self.replicas_per_master})"
        where = self.url if self._nodes else "stopped"
        return f"<EmbeddedCluster {version} {shape} {where}>"

    @property
    def nodes(self) -> list[EmbeddedClusterNode]:
        """Every node, running or not: the first ``masters`` were created as masters."""
        return list(self._nodes)

    @property
    def url(self) -> str:
        """A ``redis://`` URL of the first running node, for ``RedisCluster.from_url``.

        :raises RuntimeError: if the cluster is not started
        """
        if not self._nodes:
            raise RuntimeError("the cluster is not running; call start() first")
        node = next((node for node in self._nodes if node.running), self._nodes[0])
        return node.url

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every node, running or not."""
        return [node.address for node in self._nodes]

    def masters(self) -> list[EmbeddedClusterNode]:
        """Return the running nodes that report themselves masters, in creation order."""
        return [node for node in self._nodes if node.role == "master"]

    def replicas_of(self, master: EmbeddedClusterNode) -> list[EmbeddedClusterNode]:
        """Return the running nodes that replicate ``master`` (even if it is down).

        :param master: the master whose replicas to find
        """
        return [
            node for node in self._nodes if node is not master and node.master_port() == master.port
        ]

    def node_for_slot(self, slot: int) -> EmbeddedClusterNode:
        """Return the master serving ``slot``, as the first running node sees it.

        :param slot: a slot number, 0 to 16383
        :raises LookupError: if no running node knows a master for the slot
        """
        for node in self._nodes:
            if not node.running:
                continue
            for view in _parse_cluster_nodes(node.text("CLUSTER", "NODES")).values():
                if view.master and any(first <= slot <= last for first, last in view.slots):
                    return self._node_by_id(view.node_id)
        raise LookupError(f"no master serves slot {slot}")

    def keyslot(self, key: str | bytes) -> int:
        """Return the slot of ``key``, computed by the server (``CLUSTER KEYSLOT``).

        :param key: the key, whose hash tag (if any) decides the slot
        :raises LookupError: if no node is running
        """
        text = key.decode() if isinstance(key, bytes) else key
        for node in self._nodes:
            if node.running:
                reply = node.call("CLUSTER", "KEYSLOT", text)
                if isinstance(reply, int):
                    return reply
        raise LookupError("no node is running")

    def start(self) -> None:
        """Start every node and build the cluster; do nothing if it is already started.

        :raises RuntimeError: if a node does not start, or the cluster is not healthy
            within 30 seconds; the message carries the last problem seen and each node's
            log tail, and every process started is stopped again
        """
        if self._nodes:
            return
        began = time.monotonic()
        try:
            self._launch()
            self._build()
        except (OSError, ReplyError) as exc:
            message = f"building the cluster failed: {exc}\n{self._log_tails()}"
            self.stop()
            raise RuntimeError(message) from exc
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Stop every node and remove its directory; safe to call repeatedly."""
        nodes, self._nodes = self._nodes, []
        self._layout = {}
        for node in nodes:
            node.close()
            pid = node.server.pid  # SIGTERM to all first: they shut down side by side
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        for node in nodes:
            node.server.stop()

    def kill(self, node: EmbeddedClusterNode) -> None:
        """Kill ``node`` with SIGKILL at once, as a crash would.

        :param node: one of :attr:`nodes`
        :raises ValueError: if ``node`` is not a node of this cluster
        """
        self._check_member(node)
        node.close()
        node.server.kill()

    def wait_for_failover(
        self, old_master: EmbeddedClusterNode, timeout: float = _FAILOVER_TIMEOUT
    ) -> EmbeddedClusterNode:
        """Wait until a replica of the killed ``old_master`` serves its slots; return it.

        Returns once every running node reports ``cluster_state:ok``, they all agree on the
        topology, and the slots ``old_master`` served when the cluster was last healthy
        belong to another running master.

        :param old_master: a master killed with :meth:`kill`
        :param timeout: how long to wait, in seconds
        :raises ValueError: if ``old_master`` still runs or served no slots
        :raises RuntimeError: if no failover completes in time (with the nodes' log tails)
        """
        self._check_member(old_master)
        if old_master.running:
            raise ValueError(f"{old_master.name} is still running; kill() it first")
        slots = self._layout.get(old_master.node_id)
        if not slots:
            raise ValueError(f"{old_master.name} served no slots when last healthy")
        slot = slots[0][0]
        promoted: list[EmbeddedClusterNode] = []

        def check() -> str | None:
            """Return why the failover is not done yet, or ``None`` once it is."""
            survey = self._survey(require_replicas=False)
            if isinstance(survey, str):
                return survey
            for view in survey.values():
                if view.master and any(first <= slot <= last for first, last in view.slots):
                    promoted[:] = [self._node_by_id(view.node_id)]
                    return None
            return f"no running master serves slot {slot} yet"

        self._wait(check, timeout, f"no replica of {old_master.name} took over")
        return promoted[0]

    def restart_node(self, node: EmbeddedClusterNode, timeout: float = _FAILOVER_TIMEOUT) -> None:
        """Start a killed node again, on its port with its ``nodes.conf``, and wait for it.

        A master whose replica took over rejoins as a replica of its successor; a replica
        rejoins its master. Its data is lost and resynced from its master. Returns once the
        cluster is healthy again with the node in it (its replication link up if a replica).

        :param node: a node stopped with :meth:`kill`
        :param timeout: how long to wait, in seconds
        :raises ValueError: if ``node`` is not of this cluster or still runs
        :raises RuntimeError: if it does not start or rejoin in time (with the log tails)
        """
        self._check_member(node)
        if node.running:
            raise ValueError(f"{node.name} is still running")
        node.close()
        node.server.start()

        def check() -> str | None:
            """Return why the node has not rejoined yet, or ``None`` once it has."""
            survey = self._survey(require_replicas=False)
            return survey if isinstance(survey, str) else None

        self._wait(check, timeout, f"{node.name} did not rejoin the cluster")

    def __enter__(self) -> EmbeddedCluster:
        """Start the cluster and return it.

        :raises RuntimeError: if the cluster does not start
        """
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop every node and remove their directories.

        :param exc_type: the exception type, if the block raised
        :param exc: the exception, if the block raised
        :param tb: the traceback, if the block raised
        """
        self.stop()

    # -- building ------------------------------------------------------------------------

    def _server_args(self) -> list[str]:
        """Return the redis-server arguments every node gets."""
        args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(_NODE_TIMEOUT_MS),
            "--cluster-replica-validity-factor",
            "0",
            # Replicas sync at once: 7.0 waits 5 s for more replicas by default.
            "--repl-diskless-sync",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
            # Redis 7 leaves a replica out of CLUSTER SLOTS (so clients never see it) until
            # its replication offset moves; the master's pings to replicas move it.
            "--repl-ping-replica-period",
            "1",
        ]
        if self.version >= (7, 0, 0):
            # 7.0 waits up to 10 s on SIGTERM for lagging replicas; stop() ends them all.
            args += ["--shutdown-timeout", "0"]
        return [*args, *self._args]

    def _launch(self) -> None:
        """Start every server process and learn its node id."""
        used: set[int] = set()
        total = self.master_count * (1 + self.replicas_per_master)
        for _ in range(total):
            server = self._spawn(used)
            node = EmbeddedClusterNode(server, "")
            self._nodes.append(node)
            node.node_id = node.text("CLUSTER", "MYID")

    def _spawn(self, used: set[int]) -> EmbeddedRedis:
        """Start one server on a free port pair, retrying on a port taken meanwhile.

        :param used: ports already handed out; the new pair is added
        :raises RuntimeError: if the server does not start
        """

        def attempt(_: int) -> EmbeddedRedis:
            port = _free_cluster_port(self.host, used)
            used.update((port, port + _BUS_PORT_OFFSET))
            server = EmbeddedRedis(self.binary, port=port, cpu=self._cpu, args=self._server_args())
            try:
                server.start()
            except RuntimeError:  # its port taken meanwhile (retried), or it failed to start
                server.stop()
                raise
            return server

        return _on_a_free_port(attempt)

    def _build(self) -> None:
        """Assign slots, join the nodes, attach the replicas and wait for a healthy cluster."""
        masters = self._nodes[: self.master_count]
        replicas = self._nodes[self.master_count :]
        for epoch, node in enumerate(self._nodes, start=1):
            node.call("CLUSTER", "SET-CONFIG-EPOCH", epoch)
        for index, master in enumerate(masters):
            first = index * _CLUSTER_SLOTS // self.master_count
            end = (index + 1) * _CLUSTER_SLOTS // self.master_count
            for chunk in range(first, end, _ADDSLOTS_CHUNK):
                master.call("CLUSTER", "ADDSLOTS", *range(chunk, min(chunk + _ADDSLOTS_CHUNK, end)))
        seed = self._nodes[0]
        for node in self._nodes[1:]:
            seed.call("CLUSTER", "MEET", node.host, node.port)
        self._wait(self._unmet, _CLUSTER_START_TIMEOUT, "the nodes did not all meet")
        for index, replica in enumerate(replicas):
            replica.call("CLUSTER", "REPLICATE", masters[index % self.master_count].node_id)

        def check() -> str | None:
            """Return why the new cluster is not healthy yet, or ``None`` once it is."""
            survey = self._survey(require_replicas=True)
            return survey if isinstance(survey, str) else None

        self._wait(check, _CLUSTER_START_TIMEOUT, "the cluster did not become healthy")

    def _unmet(self) -> str | None:
        """Return a node that does not know every other node yet, or ``None``."""
        ids = {node.node_id for node in self._nodes}
        for node in self._nodes:
            views = _parse_cluster_nodes(node.text("CLUSTER", "NODES"))
            if set(views) != ids:
                return f"{node.name} knows {len(set(views) & ids)} of {len(ids)} nodes"
            for view in views.values():
                if view.flags & {"handshake", "noaddr"}:
                    return f"{node.name} is still in handshake with :{view.port}"
        return None

    # -- health --------------------------------------------------------------------------

    def _survey(self, *, require_replicas: bool) -> dict[str, _NodeView] | str:
        """Check the cluster's health; return the agreed views of running nodes, or a problem.

        Healthy means: every running node reports ``cluster_state:ok`` with every slot ok;
        every running node sees every other running node without failure flags, and they
        all agree on who is master, who replicates whom and which slots each master serves;
        the running masters serve all 16,384 slots; every running replica's link to its
        master is up, and every node's ``CLUSTER SLOTS`` (what clients read) lists exactly
        the running replicas; with ``require_replicas``, every master has all its replicas.

        :param require_replicas: also require ``replicas`` replicas per master
        """
        running = [node for node in self._nodes if node.running]
        if not running:
            return "no node is running"
        ids = {node.node_id for node in running}
        agreed: dict[str, _NodeView] | None = None
        for node in running:
            info = _parse_info(node.text("CLUSTER", "INFO"))
            if info.get("cluster_state") != "ok":
                return f"{node.name} reports cluster_state:{info.get('cluster_state')}"
            if info.get("cluster_slots_ok") != str(_CLUSTER_SLOTS):
                return f"{node.name} reports cluster_slots_ok:{info.get('cluster_slots_ok')}"
            views = _parse_cluster_nodes(node.text("CLUSTER", "NODES"))
            missing = ids - set(views)
            if missing:
                return f"{node.name} does not know {len(missing)} running node(s)"
            mine = {node_id: views[node_id] for node_id in ids}
            for view in mine.values():
                if view.failing:
                    return f"{node.name} flags :{view.port} {','.join(sorted(view.flags))}"
            served = sum(view.slot_count for view in mine.values() if view.master)
            if served != _CLUSTER_SLOTS:
                return f"{node.name} sees running masters serve {served} slots"
            if agreed is None:
                agreed = mine
            elif {k: v.topology() for k, v in mine.items()} != {
                k: v.topology() for k, v in agreed.items()
            }:
                return f"{node.name} and {running[0].name} disagree about the topology"
        assert agreed is not None
        replicas_of: dict[str, int] = {}
        for node in running:
            view = agreed[node.node_id]
            if view.master:
                if not view.slots:
                    return f"{node.name} is a master without slots"
                continue
            if view.master_id not in ids or not agreed[view.master_id].master:
                return f"{node.name} replicates no running master"
            link = _parse_info(node.text("INFO", "replication")).get("master_link_status")
            if link != "up":
                return f"{node.name} has master_link_status:{link}"
            replicas_of[view.master_id] = replicas_of.get(view.master_id, 0) + 1
        expected = {
            view.port: {agreed[k].port for k, v in agreed.items() if v.master_id == node_id}
            for node_id, view in agreed.items()
            if view.master
        }
        for node in running:
            listed = _slots_replicas(node.call("CLUSTER", "SLOTS"))
            if listed != expected:
                return f"{node.name} lists {listed} in CLUSTER SLOTS, not {expected}"
        if require_replicas:
            for node_id, view in agreed.items():
                count = replicas_of.get(node_id, 0)
                if view.master and count != self.replicas_per_master:
                    return f":{view.port} has {count} of {self.replicas_per_master} replicas"
        self._layout = {k: v.slots for k, v in agreed.items() if v.master and v.slots}
        return agreed

    def _wait(self, check: Callable[[], str | None], timeout: float, what: str) -> None:
        """Poll ``check`` until it returns ``None``; raise with the last problem on timeout.

        Connection failures and error replies during a poll count as problems, not errors.

        :param check: returns a description of what is still wrong, or ``None`` when done
        :param timeout: how long to wait, in seconds
        :param what: the failure, for the error message
        :raises RuntimeError: on timeout, with the last problem and every node's log tail
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                problem = check()
            except (OSError, ReplyError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if problem is None:
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(_POLL_INTERVAL)
        raise RuntimeError(f"{what} within {timeout:g} s: {problem}\n{self._log_tails()}")

    def _log_tails(self) -> str:
        """Return each node's state and log tail, for error messages."""
        parts = []
        for node in self._nodes:
            state = "running" if node.running else "down"
            parts.append(f"--- {node.name} ({state}) log tail:\n{node.log_tail() or '(empty)'}")
        return "\n".join(parts)

    def _node_by_id(self, node_id: str) -> EmbeddedClusterNode:
        """Return the node with this cluster id.

        :param node_id: a cluster node id
        :raises LookupError: if no node of this cluster has it
        """
        for node in self._nodes:
            if node.node_id == node_id:
                return node
        raise LookupError(f"no node has id {node_id}")

    def _check_member(self, node: EmbeddedClusterNode) -> None:
        """Check that ``node`` belongs to this cluster.

        :param node: the node to check
        :raises ValueError: if it does not
        """
        if not any(node is member for member in self._nodes):
            raise ValueError(f"{node!r} is not a node of this cluster")
