"""Test and benchmark tooling that does not ship with bitlens.

* :mod:`harness.cluster`: :class:`EmbeddedCluster`, a real Redis Cluster of private
  servers that can be killed, failed over and restarted;
* :mod:`harness.servers`: every server binary of the test matrix, and which kind each is;
* :mod:`harness.resp`: a tiny blocking RESP2 client for administrative commands.

The single embedded server itself is public: :class:`bitlens.embedded.EmbeddedRedis`.
Tests import this package as ``harness`` (``tests/`` is on ``sys.path``); the benchmarks
import it from the checkout (``benchmarks/common.py`` puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

from bitlens.embedded import ENV_VAR, EmbeddedRedis, find_redis_server, server_version

from .cluster import EmbeddedCluster, EmbeddedClusterNode, NodeRole
from .resp import AdminClient, ReplyError
from .servers import find_redis_servers, find_valkey_servers, free_port, server_kind

__all__ = [
    "ENV_VAR",
    "AdminClient",
    "EmbeddedCluster",
    "EmbeddedClusterNode",
    "EmbeddedRedis",
    "NodeRole",
    "ReplyError",
    "find_redis_server",
    "find_redis_servers",
    "find_valkey_servers",
    "free_port",
    "server_kind",
    "server_version",
]
