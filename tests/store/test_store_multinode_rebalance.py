"""Two real nodes share one sharded store; ``timnode store add-shard`` runs against one of
them while SDK clients write through both. The shards are SQLite files on this host or
PostgreSQL tables (``TIMNODE_TEST_PG_DSN``, one fresh ``?table=`` each, dropped afterwards).
The rebalancing node makes the other freeze each step's slots (``/timnode/store/1``), so
every acknowledged message must afterwards be synced exactly once from either node.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from store_helpers import ShardUrls
from test_store_node_rebalance import ADMIN_TOKEN, store_cli

from im import client_pb2 as pb
from im.client import Client
from store.factory import write_shards_file
from testnet.process import NodeProcess

pytestmark = pytest.mark.slow

def get_json(node: NodeProcess, path: str) -> dict[str, Any]:
    request = urllib.request.Request(node.http_url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        doc: dict[str, Any] = json.loads(reply.read())
    return doc


@pytest.fixture(params=["sqlite", "postgres"])
async def shard_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ShardUrls]:
    """``shard_url(i)``: the URL of shard ``i`` (SQLite files, or fresh PostgreSQL tables)."""
    urls = ShardUrls(request.param, tmp_path)
    yield urls
    await urls.drop()


RECIPIENTS = [f"r{i}" for i in range(16)]  # inboxes spread over slots, several of them moving


async def sync_all(node: NodeProcess, user: str) -> list[int]:
    async with Client(node.url, user, "recipient-password", device="phone") as client:
        ids: list[int] = []
        after = 0
        while True:
            page = (await client.request(pb.ClientFrame(sync=pb.Sync(after=after, limit=1000)))).page
            ids.extend(m.id for m in page.messages)
            after = page.cursor
            if not page.more:
                return ids


async def start_two_nodes(node_factory: Callable[..., NodeProcess], shards: list[str]) -> list[NodeProcess]:
    """Node a makes the store sharded over ``shards``; node b joins it (same data key, linked)."""
    args = ("--rate-limit", "0", "--admin-token", ADMIN_TOKEN)
    a = node_factory(*args, name="a", start=False)
    a.data_dir.mkdir(parents=True)
    store_cli(a.data_dir, "init", *(arg for url in shards for arg in ("--shard", url)))
    a.start()
    b = node_factory(*args, name="b", start=False)
    b.data_dir.mkdir(parents=True)
    shutil.copy(a.data_dir / "data.key", b.data_dir / "data.key")
    write_shards_file(b.data_dir / "shards.json", shards[0])
    b.extra_args += ["--bootstrap", a.url.split("//")[1]]
    b.start()
    await wait_linked(b)
    return [a, b]


async def wait_linked(node: NodeProcess) -> None:
    deadline = time.monotonic() + 15
    while not get_json(node, "/healthz")["peers"] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert get_json(node, "/healthz")["peers"], "the nodes did not link"


class Load:
    """SDK senders writing to ``RECIPIENTS`` through the given nodes until stopped."""

    def __init__(self, urls: list[list[str]]) -> None:
        self.acked: dict[str, list[int]] = {user: [] for user in RECIPIENTS}
        self.stop = asyncio.Event()
        self.senders = [
            Client(url, f"s{i}", "sender-password", register=True, backoff=(0.05, 0.5)) for i, url in enumerate(urls)
        ]
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self, first: NodeProcess) -> None:
        for user in RECIPIENTS:
            async with Client(first.url, user, "recipient-password", register=True, device="phone"):
                pass
        for sender in self.senders:
            await sender.connect()
        self.tasks = [asyncio.create_task(self._keep_sending(c)) for c in self.senders]

    async def _keep_sending(self, client: Client) -> None:
        n = 0
        while not self.stop.is_set():
            to = RECIPIENTS[n % len(RECIPIENTS)]
            self.acked[to].append((await client.send(to, f"{client.user} {n}", timeout=120)).message_id)
            n += 1

    def total(self) -> int:
        return sum(map(len, self.acked.values()))

    async def wait_for(self, count: int) -> None:
        while self.total() < count:
            await asyncio.sleep(0.05)

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)
        for sender in self.senders:
            await sender.close()

    async def assert_synced_exactly_once(self, node: NodeProcess) -> None:
        lost = 0
        for user in RECIPIENTS:
            ids = await sync_all(node, user)
            assert len(ids) == len(set(ids)), "sync returned duplicates"
            lost += len(set(self.acked[user]) - set(ids))
            assert len(set(ids) - set(self.acked[user])) == 0
        assert not lost, f"{lost} acknowledged messages lost (synced from {node.data_dir.name})"


async def test_add_shard_with_two_nodes_writing(node_factory: Callable[..., NodeProcess], shard_url: ShardUrls) -> None:
    a, b = await start_two_nodes(node_factory, [shard_url(0), shard_url(1)])
    load = Load([[(a if i % 2 else b).url] for i in range(4)])
    await load.start(a)
    await load.wait_for(400)
    before = load.total()
    done = await asyncio.to_thread(store_cli, a.data_dir, "add-shard", shard_url(2))
    assert not done["rebalance"]["busy"] and done["rebalance"]["error"] == ""
    during = load.total() - before
    await asyncio.sleep(1.5)  # b reloads the map (poll) and writes on
    await load.finish()
    assert during > 100, "too few writes during the rebalance"

    for node in (a, b):
        await load.assert_synced_exactly_once(node)
    status_a = get_json(a, "/admin/store/status")
    status_b = get_json(b, "/admin/store/status")
    assert status_a["map_version"] == status_b["map_version"]
    assert status_a["fingerprint"] == status_b["fingerprint"]
    assert [s["slots"] for s in status_a["shards"]] == [1366, 1365, 1365]
    assert "store member" not in (a.data_dir / "node.log").read_text()  # no step had to be aborted
