"""ShardedStore: placement, routing, cross-shard atomicity under kill -9, rebalancing, reseal.

The shared behavioural suite runs over a mixed SQLite + PostgreSQL sharded store too (the
``sharded`` backends in ``conftest.py``); this module covers what is specific to sharding.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shard_crash_writer import batch_keys
from store_helpers import PG_DSN, REPO, drop_pg_table, require_pg, run_and_kill, with_table

from store import Delete, Insert, KeyExists, Keyring, Put, RecordStore, SealedStore, StoreUnavailable, prefix_end
from store.factory import open_raw, open_store, write_shards_file
from store.gate import WriteGate
from store.postgres import split_table
from store.rebalance import add_shard, remove_shard, run_rebalance
from store.reseal import reseal
from store.sharded import APPLIED_PREFIX, INTENT_PREFIX, MAP_KEY, ShardedStore, create_shards, decode_ops, encode_ops
from store.shardmap import SLOT_COUNT, ShardMap, partition_of, slot_of

CRASH_HELPER = Path(__file__).with_name("shard_crash_writer.py")


# ---- placement (pure) --------------------------------------------------------------------


@settings(max_examples=200)
@given(st.binary(min_size=17, max_size=60), st.binary(max_size=30))
def test_keys_of_one_partition_share_a_slot(key: bytes, suffix: bytes) -> None:
    assert partition_of(key + suffix) == key[:17]
    assert slot_of(key + suffix) == slot_of(key[:17])
    assert 0 <= slot_of(key) < SLOT_COUNT


def test_slots_are_stable_across_processes() -> None:
    keys = [os.urandom(n) for n in (0, 1, 5, 16, 17, 18, 33, 41) for _ in range(50)]
    code = "import sys; from store.shardmap import slot_of; print(*[slot_of(bytes.fromhex(h)) for h in sys.argv[1:]])"
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code, *(k.hex() for k in keys)], capture_output=True, text=True,
                         cwd=REPO, env=env, check=True)  # fmt: skip
    assert [int(x) for x in out.stdout.split()] == [slot_of(k) for k in keys]
    assert slot_of(b"A" + bytes(16)) == 2316  # pinned: changing the hash would strand every record


def test_slots_spread_evenly() -> None:
    counts = [0] * SLOT_COUNT
    for i in range(SLOT_COUNT * 20):
        counts[slot_of(b"I" + i.to_bytes(16, "big"))] += 1
    assert max(counts) < 60 and min(counts) > 0


def test_map_round_trip_plans_and_fingerprint() -> None:
    m = ShardMap.single("sqlite:///a.db")
    assert ShardMap.decode(m.encode()) == m
    sid = m.plan_add("postgresql://u:secret@h/db")
    assert sid == 1 and len(m.moves) == SLOT_COUNT // 2 and m.busy
    assert "secret" not in json.dumps(m.describe())
    with pytest.raises(ValueError):
        m.plan_add("sqlite:///c.db")  # one rebalance at a time
    back = ShardMap.decode(m.encode())
    assert back == m and back.fingerprint() == m.fingerprint()
    for slot, target in list(m.moves.items()):
        m.slots[slot] = target
    m.moves.clear()
    assert m.slot_counts() == {0: 2048, 1: 2048}
    assert m.fingerprint() != back.fingerprint()
    m.plan_remove("postgresql://u:secret@h/db")
    assert len(m.moves) == 2048 and set(m.moves.values()) == {0} and m.removing == [1]
    only = ShardMap.single("sqlite:///a.db")
    with pytest.raises(ValueError, match="only shard"):
        only.plan_remove("sqlite:///a.db")
    assert back.identity() == m.identity() == only.identity()  # the store, whatever its placement
    assert ShardMap.single("sqlite:///b.db").identity() != m.identity()


def test_intent_codec_round_trip() -> None:
    ops = [Put(b"a", b"1"), Insert(b"", b""), Delete(b"\xff" * 40), Put(b"k" * 17, os.urandom(300))]
    assert decode_ops(encode_ops(ops)) == ops


# ---- a mixed sharded store ---------------------------------------------------------------


class CountingOpener:
    """open_raw, remembering every backend so tests can count their calls."""

    def __init__(self) -> None:
        self.stores: dict[str, RecordStore] = {}

    def __call__(self, url: str) -> RecordStore:
        store = open_raw(url)
        self.stores[url] = store
        return store


@pytest.fixture
async def urls(tmp_path: Path) -> AsyncIterator[list[str]]:
    """A SQLite root, a PostgreSQL table and a spare SQLite file (for add-shard)."""
    require_pg()
    table = f"t_{secrets.token_hex(8)}"
    yield [f"sqlite://{tmp_path}/s0.db", with_table(PG_DSN, table), f"sqlite://{tmp_path}/s2.db"]
    await drop_pg_table(PG_DSN, table)


def ikey(kind: bytes, user: int, n: int) -> bytes:
    return kind + user.to_bytes(16, "big") + n.to_bytes(8, "big")


async def test_prefix_scans_stay_on_one_shard(urls: list[str]) -> None:
    await create_shards(urls[:2], open_raw)
    opener = CountingOpener()
    store = ShardedStore(urls[0], opener)
    await store.open()
    try:
        users = range(40)
        await asyncio.gather(*(store.write([Put(ikey(b"I", u, n), b"m%d" % n) for n in range(10)]) for u in users))
        calls: list[str] = []
        for url, backend in opener.stores.items():
            original = backend.scan

            async def spy(*args: object, _url: str = url, _orig: object = original, **kw: object) -> object:
                calls.append(_url)
                return await _orig(*args, **kw)  # type: ignore[operator]

            backend.scan = spy  # type: ignore[method-assign]
        for u in users:
            prefix = b"I" + u.to_bytes(16, "big")
            calls.clear()
            rows = await store.scan(prefix + (3).to_bytes(8, "big"), prefix_end(prefix), limit=100, reverse=True)
            assert [k[-1] for k, _ in rows] == list(range(9, 2, -1))
            assert len(calls) == 1
        assert {store.map.slots[slot_of(ikey(b"I", u, 0))] for u in users} == {0, 1}
    finally:
        await store.close()


async def test_cross_shard_batch_rolls_forward_after_a_failed_shard(urls: list[str]) -> None:
    await create_shards(urls[:2], open_raw)
    store = ShardedStore(urls[0], open_raw)
    await store.open()
    keys = [ikey(b"X", u, 0) for u in range(64)]
    by_shard = {store.map.slots[slot_of(k)]: k for k in keys}
    a, b = by_shard[0], by_shard[1]
    real_write = store.shard(1).write

    async def broken(ops: object) -> None:
        raise StoreUnavailable("shard 1 down")

    store.shard(1).write = broken  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        await store.write([Insert(a, b"A"), Put(b, b"B")])  # anchor (the Insert) on shard 0 commits
    assert await store.get(a) == b"A" and await store.get(b) is None  # half applied, not acknowledged
    store.shard(1).write = real_write  # type: ignore[method-assign]
    await store.write([Put(b"other", b"x")])  # the next write rolls the failed batch forward first
    assert await store.get(b) == b"B"
    await store.flush_cleanups()
    for sid in (0, 1):
        assert await store.shard(sid).scan(INTENT_PREFIX, prefix_end(APPLIED_PREFIX), limit=10) == []
    with pytest.raises(KeyExists):
        await store.write([Put(b, b"B2"), Insert(a, b"again")])
    assert await store.get(b) == b"B"
    with pytest.raises(ValueError):
        await store.write([Insert(a + b"1", b""), Insert(b + b"1", b"")])  # Inserts on two shards
    await store.close()


async def test_cross_shard_batches_are_atomic_under_kill_9(urls: list[str], tmp_path: Path) -> None:
    await create_shards(urls[:2], open_raw)
    shards_file = tmp_path / "shards.json"
    write_shards_file(shards_file, urls[0])
    url = f"shards://{shards_file}"
    key = secrets.token_bytes(32)
    acked = run_and_kill(url, key, acks_before_kill=2000, helper=CRASH_HELPER)
    intents = 0
    for u in urls[:2]:  # before recovery: batches caught between their per-shard commits
        shard = open_raw(u)
        await shard.open()
        intents += len(await shard.scan(INTENT_PREFIX, prefix_end(INTENT_PREFIX), limit=100_000))
        await shard.close()
    store = open_store(url, Keyring(key))
    await store.open()
    try:
        last: dict[int, int] = {}
        for w, s in acked:
            last[w] = max(last.get(w, -1), s)
        partial = []
        for w in range(50):
            for s in range(last.get(w, -1) + 60):
                keys = batch_keys(w, s)
                found = await store.get_many(keys)
                if 0 < len(found) < 4:
                    partial.append((w, s, len(found)))
                if (w, s) in set(acked) and len(found) != 4:
                    partial.append((w, s, -1))
        assert partial == [], f"non-atomic or lost batches: {partial[:5]}"
        print(f"{len(acked)} acked cross-shard batches; {intents} intents rolled forward on open")
    finally:
        await store.close()


async def _fill_users(store: RecordStore, users: int, per_user: int) -> dict[bytes, bytes]:
    expected: dict[bytes, bytes] = {}
    for u in range(users):
        ops = [Put(ikey(b"I", u, n), b"v%d-%d" % (u, n)) for n in range(per_user)]
        expected.update((op.key, op.value) for op in ops)
        await store.write(ops)
    return expected


async def _assert_contents(store: RecordStore, expected: dict[bytes, bytes]) -> None:
    rows = await store.scan(b"I", b"J", limit=len(expected) + 10)
    assert dict(rows) == expected and len(rows) == len(expected)


async def test_add_and_remove_shard_offline_keeps_everything(urls: list[str]) -> None:
    store = ShardedStore(urls[0], open_raw)
    await store.open()
    expected = await _fill_users(store, 300, 5)
    await add_shard(store, urls[1])
    await run_rebalance(store, step_slots=64)
    assert store.map.slot_counts() == {0: 2048, 1: 2048} and not store.map.busy
    await add_shard(store, urls[2])
    await run_rebalance(store, step_slots=64)
    assert sorted(store.map.slot_counts().values()) == [1365, 1365, 1366]
    await _assert_contents(store, expected)
    counts = await store.record_counts()
    assert sum(counts.values()) == len(expected) and all(counts.values())
    await remove_shard(store, urls[1])
    await run_rebalance(store, step_slots=64)
    assert set(store.map.shards) == {0, 2} and sum(store.map.slot_counts().values()) == SLOT_COUNT
    await _assert_contents(store, expected)
    pg = open_raw(urls[1])
    await pg.open()
    assert await pg.scan(b"", b"\xff\xfe", limit=10) == []  # nothing left behind on the removed shard
    await pg.close()
    fingerprint = store.fingerprint()
    await store.close()
    again = ShardedStore(urls[0], open_raw)
    await again.open()
    assert again.fingerprint() == fingerprint
    await _assert_contents(again, expected)
    await again.close()


async def test_writes_during_rebalance_are_kept_exactly(urls: list[str]) -> None:
    store = ShardedStore(urls[0], open_raw)
    await store.open()
    expected = await _fill_users(store, 200, 3)
    await add_shard(store, urls[1])
    rebalance = asyncio.ensure_future(run_rebalance(store, step_slots=4))
    n = 0
    while not rebalance.done():
        u = n % 500
        ops = [Put(ikey(b"I", u, 100 + n), b"live%d" % n), Delete(ikey(b"I", (u + 7) % 200, 0))]
        await store.write(ops)
        expected[ops[0].key] = b"live%d" % n
        expected.pop(ops[1].key, None)
        got = await store.get(ikey(b"I", (u + 1) % 200, 1))  # reads go on during the move
        assert got in (None, b"v%d-1" % ((u + 1) % 200))
        n += 1
    await rebalance
    assert n > 50
    await _assert_contents(store, expected)
    await store.close()


def _map_progress(shards_file: Path) -> int | None:
    try:
        doc = json.loads(shards_file.read_text())
    except (OSError, ValueError):
        return None
    return len(doc.get("map", {}).get("moves", {})) if "map" in doc else None


async def test_interrupted_rebalance_resumes_after_kill_9(urls: list[str], tmp_path: Path) -> None:
    shards_file = tmp_path / "shards.json"
    write_shards_file(shards_file, urls[0])
    url = f"shards://{shards_file}"
    store = open_store(url, None)
    await store.open()
    expected = await _fill_users(store, 4000, 4)
    await store.close()
    cmd = [sys.executable, "-m", "timnode", "store", "add-shard", urls[2], "--store", url, "--data-dir", str(tmp_path)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        left = _map_progress(shards_file)
        if left is not None and 0 < left < 1900:
            break
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        await asyncio.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    left = _map_progress(shards_file)
    assert left is not None and 0 < left < 2048, "the kill did not land mid-move"
    resumed = open_store(url, None)
    await resumed.open()  # resumes the rebalance in the background
    sharded = resumed
    assert isinstance(sharded, ShardedStore) and sharded.rebalancer is not None
    await _assert_contents(resumed, expected)  # consistent while it is still moving
    await sharded.rebalancer
    assert sharded.rebalance_error == "" and not sharded.map.busy
    assert sharded.map.slot_counts() == {0: 2048, 1: 2048}
    await _assert_contents(resumed, expected)
    assert sum((await sharded.record_counts()).values()) == len(expected)
    await resumed.close()


# ---- sealing over shards: raw scans, rotation, reseal ------------------------------------


async def test_no_plaintext_in_sharded_postgres_tables_and_rotation_reseal(urls: list[str]) -> None:
    await create_shards(urls[:2], open_raw)
    old_key, new_key = secrets.token_bytes(32), secrets.token_bytes(32)
    v1 = Keyring(old_key, 1, legacy_gcm=True)  # data written before GCM-SIV, too
    store = SealedStore(ShardedStore(urls[0], open_raw), v1)
    await store.open()
    secret = b"PLAINTEXT-body-alice-profile"
    rows = {ikey(b"I", u, 1): secret + b"%d" % u for u in range(200)}
    await store.write([Put(k, v) for k, v in list(rows.items())[:100]])
    await asyncio.gather(*(store.write([Put(k, v)]) for k, v in list(rows.items())[100:]))
    await store.close()
    dsn, table = split_table(urls[1])
    conn = await asyncpg.connect(dsn)
    try:
        raw = await conn.fetch(f'SELECT key, value FROM "{table}"')
        assert len(raw) > 20 and not any(secret in bytes(r["value"]) or b"alice" in bytes(r["key"]) for r in raw)
    finally:
        await conn.close()
    assert b"PLAINTEXT" not in Path(urls[0][len("sqlite://") :]).read_bytes()

    v2 = Keyring(new_key, 2)
    v2.add_version(old_key, 1)
    rotated = SealedStore(ShardedStore(urls[0], open_raw), v2)
    await rotated.open()
    assert await rotated.get_many(list(rows)) == rows  # old records readable after rotation
    await rotated.write([Put(ikey(b"I", 999, 1), b"new")])
    report = await reseal(rotated)
    assert (report.records, report.resealed) == (201, 200)
    assert (await reseal(rotated)).resealed == 0  # idempotent
    await rotated.close()
    only_v2 = Keyring(new_key, 2)
    only_v2.keep_blind_key(old_key)  # v1 dropped: its blind key stays (record keys are its HMACs)
    assert only_v2.blind(b"user", b"alice") == Keyring(old_key).blind(b"user", b"alice")
    final = SealedStore(ShardedStore(urls[0], open_raw), only_v2)
    await final.open()
    assert await final.get_many(list(rows)) == rows
    await final.close()


async def test_map_record_lives_in_the_root(urls: list[str]) -> None:
    await create_shards(urls[:2], open_raw)
    root = open_raw(urls[0])
    await root.open()
    stored = ShardMap.decode(await root.get(MAP_KEY) or b"")
    await root.close()
    assert stored.shards == {0: urls[0], 1: urls[1]} and stored.slot_counts() == {0: 2048, 1: 2048}
    with pytest.raises(Exception, match="already holds"):
        await create_shards(urls[:2], open_raw)


def test_public_url_drops_passwords_in_the_user_part_and_the_query() -> None:
    from store.shardmap import public_url

    assert public_url("postgresql://app:s3cret@db:5432/im?table=records") == "postgresql://app@db:5432/im?table=records"
    stripped = public_url("postgresql://app@db.internal/im?password=s3cret&table=records")
    assert "s3cret" not in stripped and stripped.endswith("?table=records")
    plain = "postgresql:///im?host=/var/run/postgresql&table=records"
    assert public_url(plain) == plain  # unchanged: fingerprints of existing maps stay the same


async def test_a_reseal_neither_replaces_nor_releases_a_rebalance_freeze(urls: list[str]) -> None:
    """A reseal waits for a slot a rebalance holds, and its thaw only releases its own freeze:
    a write to a slot being copied must wait until the rebalance thaws it."""
    await create_shards(urls[:2], open_raw)
    raw = ShardedStore(urls[0], open_raw)
    store = SealedStore(raw, Keyring(secrets.token_bytes(32)))
    await store.open()
    try:
        key = ikey(b"X", 1, 0)
        slot = slot_of(key)
        await store.write([Put(key, b"old")])
        rebalance = await raw.freeze([slot])  # as run_rebalance does while it copies the slot
        resealing = asyncio.ensure_future(reseal(store, page=50))
        await asyncio.sleep(0.2)
        assert raw._frozen.get(slot) is rebalance and not resealing.done()  # the reseal waits
        raw.thaw([slot], rebalance)
        await asyncio.wait_for(resealing, 30)
        assert slot not in raw._frozen
        theirs = await raw.freeze([slot])  # tokens: a stale thaw leaves a newer freeze alone
        mine = await raw.freeze([slot])
        raw.thaw([slot], theirs)
        assert raw._frozen.get(slot) is mine
        raw.thaw([slot], mine)
        assert slot not in raw._frozen
    finally:
        await store.close()


async def test_a_freeze_cancelled_while_it_drains_leaves_nothing_frozen(urls: list[str]) -> None:
    await create_shards(urls[:2], open_raw)
    raw = ShardedStore(urls[0], open_raw)
    await raw.open()
    try:
        epoch = raw._inflight.enter()  # a write that is still running
        freezing = asyncio.ensure_future(raw.freeze([7]))
        await asyncio.sleep(0.05)
        assert 7 in raw._frozen
        freezing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await freezing
        assert 7 not in raw._frozen
        raw._inflight.leave(epoch)
    finally:
        await raw.close()
    gate = WriteGate()
    epoch = gate.enter()
    freezing = asyncio.ensure_future(gate.freeze(b"a", b"z"))
    await asyncio.sleep(0.05)
    freezing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await freezing
    assert gate.frozen is None
    gate.leave(epoch)
