"""Two real nodes share one sharded store (SQLite shards on this host); ``timnode store
add-shard`` runs against one of them while SDK clients write through both. The rebalancing
node makes the other freeze each step's slots (``/timnode/store/1``), so every acknowledged
message must afterwards be synced exactly once from either node.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
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


async def test_add_shard_with_two_nodes_writing(node_factory: Callable[..., NodeProcess], tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    args = ("--rate-limit", "0", "--admin-token", ADMIN_TOKEN)
    a = node_factory(*args, name="a", start=False)
    a.data_dir.mkdir(parents=True)
    store_cli(a.data_dir, "init", "--shard", f"sqlite://{shards}/s0.db", "--shard", f"sqlite://{shards}/s1.db")
    a.start()
    b = node_factory(*args, name="b", start=False)
    b.data_dir.mkdir(parents=True)
    shutil.copy(a.data_dir / "data.key", b.data_dir / "data.key")
    write_shards_file(b.data_dir / "shards.json", f"sqlite://{shards}/s0.db")
    b.extra_args += ["--bootstrap", a.url.split("//")[1]]
    b.start()
    deadline = time.monotonic() + 15
    while not get_json(b, "/healthz")["peers"] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert get_json(b, "/healthz")["peers"], "the nodes did not link"

    for user in RECIPIENTS:
        async with Client(a.url, user, "recipient-password", register=True, device="phone"):
            pass
    acked: dict[str, list[int]] = {user: [] for user in RECIPIENTS}
    stop = asyncio.Event()
    senders = [
        Client((a if i % 2 else b).url, f"s{i}", "sender-password", register=True, backoff=(0.05, 0.5))
        for i in range(4)
    ]
    for sender in senders:
        await sender.connect()

    async def keep_sending(client: Client) -> None:
        n = 0
        while not stop.is_set():
            to = RECIPIENTS[n % len(RECIPIENTS)]
            acked[to].append((await client.send(to, f"{client.user} {n}")).message_id)
            n += 1

    tasks = [asyncio.create_task(keep_sending(c)) for c in senders]

    def total() -> int:
        return sum(map(len, acked.values()))

    while total() < 400:
        await asyncio.sleep(0.05)
    before = total()
    done = await asyncio.to_thread(store_cli, a.data_dir, "add-shard", f"sqlite://{shards}/s2.db")
    assert not done["rebalance"]["busy"] and done["rebalance"]["error"] == ""
    during = total() - before
    await asyncio.sleep(1.5)  # b reloads the map (poll) and writes on
    stop.set()
    await asyncio.gather(*tasks)
    for sender in senders:
        await sender.close()
    assert during > 100, "too few writes during the rebalance"

    for node in (a, b):
        lost = 0
        for user in RECIPIENTS:
            ids = await sync_all(node, user)
            assert len(ids) == len(set(ids)), "sync returned duplicates"
            lost += len(set(acked[user]) - set(ids))
            assert len(set(ids) - set(acked[user])) == 0
        assert not lost, f"{lost} acknowledged messages lost (synced from {node.data_dir.name})"
    status_a = get_json(a, "/admin/store/status")
    status_b = get_json(b, "/admin/store/status")
    assert status_a["map_version"] == status_b["map_version"]
    assert status_a["fingerprint"] == status_b["fingerprint"]
    assert [s["slots"] for s in status_a["shards"]] == [1366, 1365, 1365]
    assert "store member" not in (a.data_dir / "node.log").read_text()  # no step had to be aborted
