"""Two ShardedStores in one process over the same SQLite shards, coordinated in process:
a rebalance on one while the other writes loses nothing; an aborted step is retried;
a member opening while slots are frozen starts with them frozen until its lease ends;
two map reloads at once never leave a member on the older map."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

from store_helpers import Writers

from store import Put, RecordStore
from store.factory import open_raw
from store.rebalance import StepAborted, add_shard, run_rebalance
from store.sharded import ShardedStore, create_shards
from store.shardmap import slot_of


class InProcess:
    """A Coordinator whose only other member is ``peer``; the first ``fail`` freezes abort."""

    def __init__(self, peer: ShardedStore, fail: int = 0) -> None:
        self.peer, self.fail, self.freezes = peer, fail, 0

    async def freeze(self, slots: list[int], lease: float) -> None:
        self.freezes += 1
        if self.fail:
            self.fail -= 1
            raise StepAborted("member b did not answer")
        await self.peer.reload_map()
        await self.peer.freeze_remote(slots, lease=lease)

    async def release(self, slots: list[int]) -> None:
        await self.peer.release_remote(slots)

    async def sync(self, version: int) -> None:
        await self.peer.reload_map()
        await self.peer.drain()
        assert self.peer.map.version >= version


def member(root: str, name: str) -> ShardedStore:
    store = ShardedStore(root, open_raw, resume=False)
    store.member_id = name
    store.member_ttl = 3600.0  # no heartbeat task in these tests: the leader's lease must not run out
    return store


async def test_rebalance_while_another_member_writes(tmp_path: Path) -> None:
    urls = [f"sqlite://{tmp_path}/s{i}.db" for i in range(3)]
    await create_shards(urls[:2], open_raw)
    a, b = member(urls[0], "a"), member(urls[0], "b")
    await a.open()
    await b.open()
    assert sorted(await a.live_members(10)) == ["a", "b"]
    a.coordinator = InProcess(b, fail=2)
    writers = Writers()
    for i in range(8):
        writers.start(b, bytes([i]))
    writers.start(a, b"\xa0")
    await asyncio.sleep(0.2)
    await add_shard(a, urls[2])
    await run_rebalance(a, step_slots=64)
    await writers.stop()
    assert a.coordinator.freezes > 2 and not a.map.busy and a.rebalance_retry == ""
    await b.reload_map()
    assert b.map.version == a.map.version and not b.map.frozen
    assert writers.slots() > 100
    for store in (a, b):
        await writers.assert_none_lost(store)
    await a.close()
    await b.close()


async def test_member_opening_while_frozen_waits_for_the_lease(tmp_path: Path) -> None:
    urls = [f"sqlite://{tmp_path}/s{i}.db" for i in range(2)]
    await create_shards(urls, open_raw)
    a = member(urls[0], "a")
    await a.open()
    marked = a.map
    key = b"k" * 17
    marked.frozen, marked.leader = [slot_of(key)], "a"
    marked.version += 1
    await a.commit_map(marked)
    b = member(urls[0], "b")
    b.freeze_lease = 0.3
    await b.open()
    write = asyncio.create_task(b.write([Put(key, b"v")]))
    await asyncio.sleep(0.1)
    assert not write.done()  # held: the map says the slot is being copied
    await asyncio.wait_for(write, 2)  # the lease ran out (the map was reloaded first)
    assert await a.get(key) == b"v"
    await a.close()
    await b.close()


async def test_overlapping_reloads_end_on_the_newest_map(tmp_path: Path) -> None:
    """A reload still opening a new shard for map v while a second reload reads v+1: the
    member ends on v+1 (before the fix the slow one finished last and put v back, so a
    rebalance's ``sync`` found the member a version behind)."""
    urls = [f"sqlite://{tmp_path}/s{i}.db" for i in range(3)]
    await create_shards(urls[:2], open_raw)
    a = member(urls[0], "a")
    await a.open()
    gate, opening = asyncio.Event(), asyncio.Event()
    opened: list[str] = []

    class SlowFirstOpen:
        """The first open of the new shard waits for ``gate``."""

        def __init__(self, url: str) -> None:
            self.inner = open_raw(url)
            self.slow = url == urls[2] and url not in opened
            opened.append(url)

        async def open(self) -> None:
            if self.slow:
                opening.set()
                await gate.wait()
            await self.inner.open()

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    def slow_opener(url: str) -> RecordStore:
        return SlowFirstOpen(url)  # type: ignore[return-value]

    b = ShardedStore(urls[0], slow_opener, resume=False)
    b.member_id, b.member_ttl = "b", 3600.0
    await b.open()
    try:
        await add_shard(a, urls[2])  # map v+1 names the new shard
        first = asyncio.ensure_future(b.reload_map())
        await opening.wait()  # b's first reload is opening the new shard
        newer = copy.deepcopy(a.map)
        newer.version += 1
        await a.commit_map(newer)
        second = asyncio.ensure_future(b.reload_map())
        await asyncio.sleep(0.2)
        gate.set()
        await asyncio.gather(first, second)
        assert b.map.version == newer.version
        assert opened.count(urls[2]) == 1, "the new shard was opened twice"
    finally:
        await b.close()
        await a.close()
