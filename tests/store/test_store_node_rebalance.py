"""A real node converted to a sharded store, then rebalanced online under SDK write load.

The node is SIGKILLed in the middle of ``timnode store add-shard``; restarted, it resumes
the move and finishes. Every acknowledged message must then be in the recipient's sync
exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from store_helpers import PG_DSN, REPO, drop_pg_table, require_pg, with_table

from im import client_pb2 as pb
from im.client import Client
from testnet.process import NodeProcess

pytestmark = pytest.mark.slow

ADMIN_TOKEN = secrets.token_hex(16)  # /admin/store/* is part of the admin API: the node needs --admin-token


def store_cli(data_dir: Path, *args: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "timnode", "store", *args, "--data-dir", str(data_dir), "--json"]
    env = os.environ | {"TIMNODE_ADMIN_TOKEN": ADMIN_TOKEN}
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def node_status(node: NodeProcess) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    request = urllib.request.Request(node.http_url + "/admin/store/status", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as reply:
        doc: dict[str, Any] = json.loads(reply.read())
    return doc


def restart(node: NodeProcess) -> None:
    port = node.url.rsplit(":", 1)[1]
    node.listen = f"127.0.0.1:{port}"
    node.start()


async def sync_all(node: NodeProcess) -> list[int]:
    bob = Client(node.url, "bob", "bob-password", device="phone")
    await bob.connect()
    ids: list[int] = []
    after = 0
    while True:
        page = (await bob.request(pb.ClientFrame(sync=pb.Sync(after=after, limit=1000)))).page
        ids.extend(m.id for m in page.messages)
        after = page.cursor
        if not page.more:
            break
    await bob.close()
    return ids


@pytest.fixture
async def pg_shard() -> AsyncIterator[str]:
    require_pg()
    table = f"t_{secrets.token_hex(8)}"
    yield with_table(PG_DSN, table)
    await drop_pg_table(PG_DSN, table)


async def test_add_shard_under_load_with_kill_9_mid_move(
    node_factory: Callable[..., NodeProcess], pg_shard: str
) -> None:
    node = node_factory("--rate-limit", "0", "--admin-token", ADMIN_TOKEN, name="n")
    async with Client(node.url, "bob", "bob-password", register=True, device="phone"):
        pass
    acked: list[int] = []
    async with Client(node.url, "alice", "alice-password", register=True) as alice:
        acked += [(await alice.send("bob", f"before sharding {i}")).message_id for i in range(20)]
    node.stop()
    init = store_cli(node.data_dir, "init")
    assert init["copied_records"] >= 40
    restart(node)
    assert sorted(await sync_all(node)) == sorted(acked)  # the converted store serves the old messages

    stop = asyncio.Event()
    senders = [Client(node.url, f"s{i}", "sender-password", register=True, backoff=(0.05, 0.5)) for i in range(4)]
    for sender in senders:
        await sender.connect()

    async def keep_sending(client: Client) -> None:
        n = 0
        while not stop.is_set():
            acked.append((await client.send("bob", f"{client.user} {n}")).message_id)
            n += 1

    tasks = [asyncio.create_task(keep_sending(c)) for c in senders]
    while len(acked) < 1500:
        await asyncio.sleep(0.05)
    await asyncio.to_thread(store_cli, node.data_dir, "add-shard", pg_shard, "--no-wait")
    deadline = time.monotonic() + 60
    left = 2048
    while time.monotonic() < deadline:
        left = (await asyncio.to_thread(node_status, node))["rebalance"]["slots_to_move"]
        if left < 1900:
            break
        await asyncio.sleep(0.02)
    node.kill()  # kill -9 mid-move, while the senders keep retrying
    assert 0 < left < 2048, "the kill did not land mid-move"
    at_kill = len(acked)
    restart(node)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = await asyncio.to_thread(node_status, node)
        if not status["rebalance"]["busy"]:
            break
        await asyncio.sleep(0.1)
    assert not status["rebalance"]["busy"] and status["rebalance"]["error"] == ""
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*tasks)
    for sender in senders:
        await sender.close()
    assert len(acked) > at_kill  # writes went on after the restart, during the resumed move

    ids = await sync_all(node)
    assert len(ids) == len(set(ids)), "sync returned duplicates"
    missing = set(acked) - set(ids)
    assert not missing, f"{len(missing)} acknowledged messages lost"
    assert len(ids) == len(acked)
    counts = store_cli(node.data_dir, "status", "--counts")
    assert [s["slots"] for s in counts["shards"]] == [2048, 2048]
    assert all(s["records"] > 0 for s in counts["shards"])
