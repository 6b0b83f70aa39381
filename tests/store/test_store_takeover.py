"""A rebalance survives the death of the member leading it.

In process: the leader dies (its task cancelled) with a step's slots frozen on the other
member, which takes the rebalance over (its frozen slots thaw) and finishes it; the dead
leader's late commit is fenced off; a dead member's half-applied cross-shard batch is
rolled forward by a survivor, once.

Real processes: two nodes share shards (SQLite files or PostgreSQL tables), SDK clients
write through both, the node
running ``add-shard`` is killed (``kill -9``) mid-move; the other notices the lapsed
heartbeat, takes over and finishes. Every acknowledged message is then synced exactly
once and ``timnode store status`` shows the move finished.
"""

from __future__ import annotations

import asyncio
import copy
import struct
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from store_helpers import ShardUrls, Writers
from test_store_coordinated_rebalance import InProcess, member
from test_store_multinode_rebalance import Load, get_json, start_two_nodes, wait_linked
from test_store_node_rebalance import restart, store_cli

from store import Put
from store.errors import MapConflict
from store.factory import open_raw
from store.rebalance import add_shard, start_rebalance, take_over
from store.sharded import INTENT_PREFIX, PFX, ShardedStore, create_shards, encode_ops, member_tag, scan_all
from store.shardmap import slot_of
from testnet.process import NodeProcess


class DiesAfterFreeze(InProcess):
    """Freezes the peer, then reports it; the test then kills the leader's task."""

    def __init__(self, peer: ShardedStore) -> None:
        super().__init__(peer)
        self.frozen = asyncio.Event()

    async def freeze(self, slots: list[int], lease: float) -> None:
        await super().freeze(slots, lease)
        if self.freezes == 3:
            self.frozen.set()
            await asyncio.sleep(3600)  # the leader hangs here until its task is cancelled


async def test_survivor_takes_over_a_dead_leaders_rebalance(tmp_path: Path) -> None:
    urls = [f"sqlite://{tmp_path}/s{i}.db" for i in range(3)]
    await create_shards(urls[:2], open_raw)
    a, b = member(urls[0], "a"), member(urls[0], "b")
    await a.open()
    await b.open()
    a.coordinator = dying = DiesAfterFreeze(b)
    writers = Writers()
    for i in range(8):
        writers.start(b, bytes([i]))
    await add_shard(a, urls[2])
    leader = start_rebalance(a, step_slots=64)
    await asyncio.wait_for(dying.frozen.wait(), 30)
    stale = copy.deepcopy(a.map)
    leader.cancel()  # the leader dies mid-step: b holds the step's slots frozen
    await asyncio.gather(leader, return_exceptions=True)
    await b.reload_map()
    assert b.map.frozen and b.map.leader == "a" and b.rebalance_status()["frozen"] > 0

    assert await take_over(b)
    assert b.map.leader == "b" and not b.map.frozen and b.rebalance_status()["frozen"] == 0
    assert b.rebalancer is not None
    await asyncio.wait_for(b.rebalancer, 60)
    await writers.stop()
    assert not b.map.busy and b.rebalance_error == "" and b.map.slot_counts() == {0: 1366, 1: 1365, 2: 1365}
    await writers.assert_none_lost(b)
    assert writers.slots() > 100

    stale.version += 1  # the dead leader's next commit, had it lived: fenced off
    with pytest.raises(MapConflict):
        await a.commit_map(stale)
    assert not await take_over(b)  # nothing left to take over
    await a.close()
    await b.close()


async def test_dead_members_half_applied_batch_is_rolled_forward_once(tmp_path: Path) -> None:
    urls = [f"sqlite://{tmp_path}/s{i}.db" for i in range(2)]
    await create_shards(urls, open_raw)
    b = member(urls[0], "b")
    await b.open()
    keys = [bytes([i]) * 17 for i in range(40)]
    k1 = keys[0]
    k2 = next(k for k in keys if b.map.slots[slot_of(k)] != b.map.slots[slot_of(k1)])
    anchor = b.shard(b.map.slots[slot_of(k1)])
    for owner, n in (("a", 1), ("c", 2)):  # a died after its anchor commit; c is another member
        txid = struct.pack(">QI", time.time_ns(), n) + member_tag(owner)
        remote = encode_ops([Put(k2, owner.encode())])
        await anchor.write([Put(PFX[slot_of(k1)] + k1, b"anchor"), Put(INTENT_PREFIX + txid, remote)])
    assert await b.get(k2) is None

    assert await b.recover_member("a", 1234.5) == 1
    assert await b.get(k2) == b"a"
    left = await scan_all(anchor, INTENT_PREFIX)
    assert len(left) == 1 and left[0][0].endswith(member_tag("c"))  # another member's intent is left alone
    assert await b.recover_member("a", 1234.5) == 0  # that death was handled already
    await b.close()


# ---- real processes -----------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
async def shard_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ShardUrls]:
    urls = ShardUrls(request.param, tmp_path)
    yield urls
    await urls.drop()


async def federation_compatible(node: NodeProcess) -> list[bool]:
    """Whether each linked peer uses this node's store (once every HELLO arrived)."""
    deadline = time.monotonic() + 15
    while True:
        peers = get_json(node, "/healthz")["federation"]["peers"].values()
        if (peers and all(p["compatible"] is not None for p in peers)) or time.monotonic() > deadline:
            return [bool(p["compatible"]) for p in peers]
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_killed_leader_is_taken_over_by_the_other_node(
    node_factory: Callable[..., NodeProcess], shard_url: ShardUrls
) -> None:
    shards = [shard_url(i) for i in range(3)]
    a, b = await start_two_nodes(node_factory, shards[:2])
    load = Load([[a.url, b.url] if i % 2 else [b.url, a.url] for i in range(4)])
    await load.start(a)
    await load.wait_for(300)
    await asyncio.to_thread(store_cli, a.data_dir, "add-shard", shards[2], "--no-wait")
    left = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        left = get_json(a, "/admin/store/status")["rebalance"]["slots_to_move"]
        if left < 1300:
            break
        await asyncio.sleep(0.02)
    a.kill()  # kill -9 the leader mid-move; its clients fail over to b
    assert 0 < left < 1365, "the kill did not land mid-move"
    at_kill = load.total()

    deadline = time.monotonic() + 120
    status = get_json(b, "/admin/store/status")
    while status["rebalance"]["busy"] and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        status = get_json(b, "/admin/store/status")
    await load.wait_for(at_kill + 100)  # writes went on through b
    await load.finish()
    done = await asyncio.to_thread(store_cli, b.data_dir, "status")
    assert not done["rebalance"]["busy"] and done["rebalance"]["error"] == ""
    assert done["rebalance"]["frozen"] == 0 and done["leader"] == ""
    assert [s["slots"] for s in done["shards"]] == [1366, 1365, 1365]
    assert "took over the rebalance" in (b.data_dir / "node.log").read_text()
    await load.assert_synced_exactly_once(b)

    a.extra_args += ["--bootstrap", b.url.split("//")[1]]  # else it waits for b's redial backoff (up to 30 s)
    restart(a)  # the dead leader comes back: it routes by the finished map and federates with b
    await wait_linked(a)
    again = get_json(a, "/admin/store/status")
    assert again["map_version"] == done["map_version"] and not again["rebalance"]["busy"]
    assert await federation_compatible(a), "the nodes see different stores"
    await load.assert_synced_exactly_once(a)
