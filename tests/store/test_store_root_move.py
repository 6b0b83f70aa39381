"""Removing the root shard moves its role (the map and the members registry) to another.

In process (SQLite files or PostgreSQL tables): two members write while one removes the
root; both end up on the new root with their ``shards.json`` rewritten, nothing is lost,
and a member opening through the old root follows its forward. Real processes: the same
with two nodes under SDK load and ``timnode store remove-shard``, then a third node whose
``shards.json`` still names the old root.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from store_helpers import ShardUrls, Writers
from test_store_coordinated_rebalance import InProcess
from test_store_multinode_rebalance import Load, get_json, start_two_nodes
from test_store_node_rebalance import ADMIN_TOKEN, store_cli

from store import Put
from store.factory import open_raw, write_shards_file
from store.rebalance import remove_shard, run_rebalance
from store.sharded import MAP_KEY, ShardedStore, create_shards
from store.shardmap import ShardMap
from testnet.process import NodeProcess


@pytest.fixture(params=["sqlite", "postgres"])
async def shard_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ShardUrls]:
    urls = ShardUrls(request.param, tmp_path)
    yield urls
    await urls.drop()


def member(root: str, name: str, cache: Path) -> ShardedStore:
    store = ShardedStore(root, open_raw, cache_path=cache, resume=False)
    store.member_id = name
    store.member_ttl = 3600.0  # no heartbeat task here: the leader's lease must not run out
    return store


def cached_root(cache: Path) -> str:
    root: str = json.loads(cache.read_text())["root"]
    return root


async def test_removing_the_root_moves_map_and_members(shard_url: ShardUrls, tmp_path: Path) -> None:
    urls = [shard_url(i) for i in range(3)]
    await create_shards(urls, open_raw)
    a, b = member(urls[0], "a", tmp_path / "a.json"), member(urls[0], "b", tmp_path / "b.json")
    await a.open()
    await b.open()
    a.coordinator = InProcess(b)
    store_id = a.map.store_id
    writers = Writers()
    for i, store in enumerate([a, b] * 3):
        writers.start(store, bytes([i]))
    await asyncio.sleep(0.2)
    assert await remove_shard(a, urls[0]) == 0
    await run_rebalance(a, step_slots=256)
    await writers.stop()
    assert b.root_id == 1  # moved along during the rebalance (Coordinator.sync)
    await b.reload_map()  # a node does this every second: the old root is dropped

    for store, cache in ((a, tmp_path / "a.json"), (b, tmp_path / "b.json")):
        assert store.root_id == 1 and store.root_url == urls[1] and cached_root(cache) == urls[1]
        assert sorted(store.map.shards) == [1, 2] and store.map.slot_counts() == {1: 2048, 2: 2048}
        assert store.map.store_id == store_id and not store.map.busy
        await writers.assert_none_lost(store)
    # no heartbeat task here: both joined at open, which on a slow host is more than 10 s ago
    assert sorted(await a.live_members(a.member_ttl)) == ["a", "b"]

    old_root = open_raw(urls[0])
    await old_root.open()
    forward = ShardMap.decode(await old_root.get(MAP_KEY) or b"")
    await old_root.close()
    assert forward.root == 1 and forward.root_url == urls[1]  # the old root points to the new one
    c = member(urls[0], "c", tmp_path / "c.json")  # e.g. a node stopped during the move
    await c.open()
    assert c.root_id == 1 and c.map.version == a.map.version and cached_root(tmp_path / "c.json") == urls[1]
    assert "c" in await a.live_members(10)
    await writers.assert_none_lost(c)
    for store in (a, b, c):
        await store.close()


async def test_removing_the_root_offline_then_the_next_root(tmp_path: Path) -> None:
    urls = [f"sqlite://{tmp_path}/s{i}.db" for i in range(3)]
    await create_shards(urls, open_raw)
    write_shards_file(tmp_path / "shards.json", urls[0])
    store = ShardedStore(urls[0], open_raw, cache_path=tmp_path / "shards.json")  # one process, no members
    await store.open()
    keys = [bytes([i % 256, i // 256]) * 9 for i in range(2000)]
    await store.write([Put(k, k) for k in keys])
    for removed, root in ((0, 1), (1, 2)):  # the root twice: each time to the oldest staying shard
        await remove_shard(store, urls[removed])
        await run_rebalance(store)
        assert store.root_id == root and cached_root(tmp_path / "shards.json") == urls[root]
    with pytest.raises(ValueError, match="only shard"):
        await remove_shard(store, urls[2])
    await store.close()
    again = ShardedStore(urls[0], open_raw)  # through two forwards
    await again.open()
    assert again.root_id == 2 and again.map.slot_counts() == {2: 4096}
    assert await again.get_many(keys) == {k: k for k in keys}
    await again.close()


# ---- real processes -----------------------------------------------------------------------


async def map_reloaded(node: NodeProcess, version: int, timeout: float = 15.0) -> dict[str, Any]:
    """``node``'s store status once it routes by map ``version`` (or the last one seen)."""
    deadline = time.monotonic() + timeout
    status = get_json(node, "/admin/store/status")
    while status["map_version"] < version and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        status = get_json(node, "/admin/store/status")
    return status


@pytest.mark.slow
async def test_remove_root_shard_of_running_nodes(
    node_factory: Callable[..., NodeProcess], shard_url: ShardUrls
) -> None:
    shards = [shard_url(i) for i in range(2)]
    a, b = await start_two_nodes(node_factory, shards)
    load = Load([[(a if i % 2 else b).url] for i in range(4)])
    await load.start(a)
    await load.wait_for(300)
    before = load.total()
    done = await asyncio.to_thread(store_cli, a.data_dir, "remove-shard", shards[0])
    assert not done["rebalance"]["busy"] and done["rebalance"]["error"] == ""
    await load.wait_for(before + 200)
    await load.finish()

    for node in (a, b):
        status = await map_reloaded(node, done["map_version"])  # members reload the map every second
        assert status["root"] == 1 and [(s["id"], s["slots"]) for s in status["shards"]] == [(1, 4096)]
        assert status["map_version"] == done["map_version"]
        assert cached_root(node.data_dir / "shards.json") == shards[1]
        await load.assert_synced_exactly_once(node)

    c = node_factory("--rate-limit", "0", "--admin-token", ADMIN_TOKEN, name="c", start=False)
    c.data_dir.mkdir(parents=True)
    shutil.copy(a.data_dir / "data.key", c.data_dir / "data.key")
    write_shards_file(c.data_dir / "shards.json", shards[0])  # names the removed root
    c.start()
    assert get_json(c, "/admin/store/status")["root"] == 1
    assert cached_root(c.data_dir / "shards.json") == shards[1]
    await load.assert_synced_exactly_once(c)
