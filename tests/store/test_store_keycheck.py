"""The data key check (``store.keycheck``): a store refuses a keyring that did not seal it.

Every backend records the fingerprints in its metadata, never among the records; rotation
(a new version in front, then the old one kept only for its blind key) keeps opening.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from conftest import StoreFactory
from store_helpers import PG_DSN, drop_pg_table, require_pg, with_table

from store import Keyring, MemoryStore, Put, RecordStore, SealedStore
from store.crypto import keyring_from_spec
from store.errors import WrongDataKey
from store.factory import open_raw
from store.sharded import ShardedStore, create_shards

UNSEALED = ["memory", "sqlite", "sqlite-process", "postgres", "sharded"]


async def opened(store: RecordStore) -> RecordStore:
    await store.open()
    return store


@pytest.mark.parametrize("backend", UNSEALED, indirect=True)
async def test_another_data_key_is_refused_and_the_records_stay(make_store: StoreFactory) -> None:
    key, other = secrets.token_bytes(32), secrets.token_bytes(32)
    first = await opened(SealedStore(make_store(), Keyring(key)))
    await first.write([Put(b"user/alice", b"account")])
    await first.close()

    with pytest.raises(WrongDataKey, match="blind key differs"):
        await SealedStore(make_store(), Keyring(other)).open()

    again = await opened(SealedStore(make_store(), Keyring(key)))
    assert await again.get(b"user/alice") == b"account"
    await again.close()
    raw = await opened(make_store())  # the fingerprints are not records
    assert [k for k, _ in await raw.scan(b"", b"\xff" * 8, limit=100) if not k.startswith(b"\x00")] == [b"user/alice"]
    await raw.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_rotation_keeps_opening_and_a_wrong_version_is_refused(make_store: StoreFactory) -> None:
    old, new, stray = (secrets.token_hex(32) for _ in range(3))
    for spec in (old, f"v2:{new},v1:{old}", f"v2:{new},blind:{old}"):
        store = await opened(SealedStore(make_store(), keyring_from_spec(spec)))
        await store.write([Put(b"k/" + spec[:8].encode(), b"v")])
        await store.close()

    with pytest.raises(WrongDataKey, match="blind key differs"):  # v1 dropped without keeping its blind key
        await SealedStore(make_store(), keyring_from_spec(f"v2:{new}")).open()
    with pytest.raises(WrongDataKey, match="key version 2 differs"):
        await SealedStore(make_store(), keyring_from_spec(f"v2:{stray},blind:{old}")).open()
    with pytest.raises(WrongDataKey, match="key version 2 differs"):  # no v3 recorded beside it
        await SealedStore(make_store(), keyring_from_spec(f"v3:{old},v2:{stray},blind:{old}")).open()
    recorded = await opened(make_store())
    assert await recorded.claim_meta("data_key_v3", "probe") == "probe"
    await recorded.close()


async def test_a_memory_store_keeps_its_meta_across_reopen() -> None:
    memory = MemoryStore()
    await memory.open()
    assert await memory.claim_meta("a", "1") == "1"
    assert await memory.claim_meta("a", "2") == "1"
    await memory.close()
    await memory.open()
    assert await memory.claim_meta("a", "3") == "1"
    assert await memory.scan(b"", b"\xff", limit=10) == []


@pytest.fixture
async def shard_urls(tmp_path: Path) -> list[str]:
    require_pg()
    table = f"t_{secrets.token_hex(8)}"
    yield [f"sqlite://{tmp_path}/s0.db", with_table(PG_DSN, table), f"sqlite://{tmp_path}/s2.db"]
    await drop_pg_table(PG_DSN, table)


async def test_every_shard_holds_the_check_and_a_shard_of_another_key_is_refused(shard_urls: list[str]) -> None:
    await create_shards(shard_urls[:2], open_raw)
    key = Keyring(secrets.token_bytes(32))
    store = await opened(SealedStore(ShardedStore(shard_urls[0], open_raw), key))
    await store.close()
    for url in shard_urls[:2]:  # recorded in the root and the other shard
        shard = await opened(open_raw(url))
        assert await shard.claim_meta("data_key_v1", "x") == key.key_checks()["data_key_v1"]
        await shard.close()

    foreign = await opened(SealedStore(open_raw(shard_urls[2]), Keyring(secrets.token_bytes(32))))
    await foreign.close()  # a database another key sealed
    sharded = ShardedStore(shard_urls[0], open_raw)
    store = await opened(SealedStore(sharded, key))
    with pytest.raises(Exception, match="holds another data_key_blind"):
        await sharded.attach(7, shard_urls[2])
    await store.close()
