"""Online reseal of a single (not sharded) store: the node keeps serving while old values
are rewritten under the newest key version.

In process: updates racing the reseal of their keys are never overwritten (the
``WriteGate`` holds them while their page is rewritten). Real node (SQLite, or a
PostgreSQL table): under SDK load, restarted with a new data key, ``timnode store reseal``
goes through the node's admin route; afterwards nothing is left to reseal, and the node
restarted without the old value key syncs every acknowledged message exactly once.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from store_helpers import ShardUrls
from test_store_multinode_rebalance import Load
from test_store_node_rebalance import ADMIN_TOKEN, restart, store_cli

from store import Keyring, Put, SealedStore
from store.factory import open_raw
from store.reseal import reseal
from testnet.process import NodeProcess


@pytest.fixture(params=["sqlite", "postgres"])
async def shard_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ShardUrls]:
    urls = ShardUrls(request.param, tmp_path)
    yield urls
    await urls.drop()


async def test_reseal_never_overwrites_a_racing_write(shard_url: ShardUrls) -> None:
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    keys = [b"k%05d" % i for i in range(3000)]
    first = SealedStore(open_raw(shard_url(0)), Keyring(old))
    await first.open()
    await first.write([Put(k, b"original") for k in keys])
    await first.close()
    ring = Keyring(new, 2)
    ring.add_version(old, 1)
    store = SealedStore(open_raw(shard_url(0)), ring)
    await store.open()
    latest: dict[bytes, bytes] = {}
    stop = asyncio.Event()

    async def update(rng: random.Random) -> None:
        n = 0
        while not stop.is_set():
            key, value = rng.choice(keys), b"update %d" % n
            await store.write([Put(key, value)])
            latest[key] = value
            n += 1

    tasks = [asyncio.create_task(update(random.Random(i))) for i in range(8)]
    report = await reseal(store, page=100)
    stop.set()
    await asyncio.gather(*tasks)
    assert report.records >= len(keys) and report.resealed > 0
    assert len(latest) > 100, "too few updates raced the reseal"
    found = await store.get_many(keys)
    assert {k: v for k, v in found.items() if v != latest.get(k, b"original")} == {}, "an update was overwritten"
    assert (await reseal(store)).resealed == 0
    await store.close()


@pytest.mark.slow
async def test_online_reseal_of_a_single_store_under_load(
    node_factory: Callable[..., NodeProcess], shard_url: ShardUrls, tmp_path: Path
) -> None:
    store_args = ("--store", shard_url(0)) if shard_url.backend == "postgres" else ()
    node = node_factory("--rate-limit", "0", "--admin-token", ADMIN_TOKEN, *store_args, name="n")
    load = Load([[node.url] for _ in range(4)])
    await load.start(node)
    await load.wait_for(300)  # sealed under the first key (version 1)
    old_key = node.data_dir / "data.key"
    new_key = tmp_path / "data-v2.key"
    new_key.write_text(secrets.token_hex(32) + "\n")
    node.stop()
    node.extra_args += ["--data-key", f"v2:{new_key},v1:{old_key}"]
    restart(node)  # the senders reconnect and go on writing, now under version 2
    await load.wait_for(load.total() + 200)

    report = await asyncio.to_thread(store_cli, node.data_dir, "reseal")  # node.json exists: online
    assert report["records"] > 1000 and report["resealed"] > 1000
    await load.wait_for(load.total() + 200)
    assert (await asyncio.to_thread(store_cli, node.data_dir, "reseal"))["resealed"] == 0
    await load.finish()
    assert node.proc is not None and node.proc.poll() is None, "the node stopped"

    node.stop()
    node.extra_args[-1] = f"v2:{new_key},blind:{old_key}"  # the old value key is gone
    restart(node)
    await load.assert_synced_exactly_once(node)
