"""A Redis Cluster loses a master under marking load: every acknowledged mark survives.

With ``replicas_ack=1`` a mark is acknowledged only once a replica holds it, so a failover
loses none; every write re-asserts its shards, so none hides from a fresh reader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from _helpers import close_cluster_client, connect_cluster
from bitlens import Tracker
from faults._invariants import Ledger, check_invariants
from faults._load import Load, WritePath, run_writer

if TYPE_CHECKING:
    from bitlens._embedded import EmbeddedCluster

pytestmark = pytest.mark.anyio

WRITERS = 6
SHARD_BITS = 8


@pytest.mark.parametrize("path", ["plain", "coalesced", "mark_events"])
async def test_registry_master_killed_under_load_loses_no_acknowledged_mark(
    own_cluster: EmbeddedCluster, prefix: str, path: WritePath
) -> None:
    """SIGKILL the registry's master mid-stream: after failover every acked mark is seen."""
    ledger, load = Ledger(), Load()
    client = connect_cluster(own_cluster.url)
    tracker = Tracker(
        client,
        prefix=prefix,
        shard_bits=SHARD_BITS,
        replicas_ack=1,
        coalesce=path == "coalesced",
    )
    slot = own_cluster.keyslot(tracker.schema.registry_key)
    victim = own_cluster.node_for_slot(slot)
    try:
        async with anyio.create_task_group() as tg:
            # Ids spread over many shards, so every master takes writes.
            for writer in range(WRITERS):
                tg.start_soon(run_writer, tracker, ledger, load, path, writer * 97, WRITERS * 97)
            await load.under_way.wait()
            own_cluster.kill(victim)
            await anyio.to_thread.run_sync(own_cluster.wait_for_failover, victim)
            # With replicas_ack=1 the promoted master acknowledges nothing until it has a
            # replica again: the killed node comes back as one.
            await anyio.to_thread.run_sync(own_cluster.restart_node, victim)
            await load.more(50)
            tg.cancel_scope.cancel()
        await check_invariants(
            own_cluster.url, prefix, ledger, tracker, shard_bits=SHARD_BITS, cluster=True
        )
    finally:
        await tracker.aclose()
        await close_cluster_client(client)
