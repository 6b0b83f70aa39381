"""One behavioural suite for every RecordStore backend (memory, sqlite, postgres, sealed)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from store import Delete, Insert, KeyExists, Put, RecordStore, StoreUnavailable, prefix_end

StoreFactory = Callable[[], RecordStore]

pytestmark = pytest.mark.asyncio


async def test_put_get_overwrite_delete(store: RecordStore) -> None:
    assert await store.get(b"k") is None
    await store.write([Put(b"k", b"v1")])
    assert await store.get(b"k") == b"v1"
    await store.write([Put(b"k", b"v2")])
    assert await store.get(b"k") == b"v2"
    await store.write([Delete(b"k")])
    assert await store.get(b"k") is None


async def test_delete_absent_and_empty_batch(store: RecordStore) -> None:
    await store.write([Delete(b"missing")])
    await store.write([])
    assert await store.get(b"missing") is None


async def test_empty_value_and_binary_keys(store: RecordStore) -> None:
    keys = [b"", b"\x00", b"\x00\x00", b"\x7f", b"\x80", b"\xff", b"\xff\xff"]
    await store.write([Put(k, b"") for k in keys])
    rows = await store.scan(b"", b"\xff" * 8, limit=100)
    assert [k for k, _ in rows] == sorted(keys)
    assert all(v == b"" for _, v in rows)


async def test_batch_ops_apply_in_order(store: RecordStore) -> None:
    await store.write([Put(b"a", b"1"), Delete(b"a"), Put(b"b", b"1"), Put(b"b", b"2"), Insert(b"a", b"3")])
    assert await store.get_many([b"a", b"b"]) == {b"a": b"3", b"b": b"2"}


async def test_insert_absent_then_conflict(store: RecordStore) -> None:
    await store.write([Insert(b"acct", b"first")])
    with pytest.raises(KeyExists) as caught:
        await store.write([Put(b"other", b"x"), Insert(b"acct", b"second"), Delete(b"keep")])
    assert caught.value.key == b"acct"
    assert await store.get(b"acct") == b"first"
    assert await store.get(b"other") is None


async def test_insert_conflict_within_batch(store: RecordStore) -> None:
    with pytest.raises(KeyExists):
        await store.write([Put(b"x", b"1"), Insert(b"x", b"2")])
    assert await store.get(b"x") is None


async def test_insert_after_delete_in_batch(store: RecordStore) -> None:
    await store.write([Put(b"x", b"1")])
    await store.write([Delete(b"x"), Insert(b"x", b"2")])
    assert await store.get(b"x") == b"2"


async def test_conflict_fails_only_its_batch_in_a_group(store: RecordStore) -> None:
    await store.write([Put(b"taken", b"old"), Put(b"keep", b"k")])
    results = await asyncio.gather(
        store.write([Put(b"a", b"1")]),
        store.write([Put(b"b", b"2"), Insert(b"taken", b"new"), Delete(b"keep")]),
        store.write([Insert(b"c", b"3")]),
        store.write([Put(b"d", b"4"), Delete(b"a")]),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [type(None), KeyExists, type(None), type(None)]
    got = await store.get_many([b"a", b"b", b"c", b"d", b"taken", b"keep"])
    assert got == {b"c": b"3", b"d": b"4", b"taken": b"old", b"keep": b"k"}


async def test_a_conflict_after_a_fresh_insert_of_the_group_leaves_that_insert_to_its_batch(
    store: RecordStore,
) -> None:
    """The SQLite writer inserts a group's Insert keys first, in order: the fresh one went in
    before the taken one failed, and must be undone so that its batch still applies alone."""
    await store.write([Put(b"taken", b"old")])
    results = await asyncio.gather(
        store.write([Insert(b"fresh", b"1"), Put(b"p", b"1")]),
        store.write([Insert(b"taken", b"new"), Put(b"q", b"2")]),
        return_exceptions=True,
    )
    assert results[0] is None and isinstance(results[1], KeyExists)
    assert await store.get_many([b"fresh", b"p", b"q", b"taken"]) == {b"fresh": b"1", b"p": b"1", b"taken": b"old"}


async def test_concurrent_inserts_of_one_key_exactly_one_wins(store: RecordStore) -> None:
    values = [b"v%d" % i for i in range(20)]
    results = await asyncio.gather(*(store.write([Insert(b"k", v)]) for v in values), return_exceptions=True)
    winners = [v for v, r in zip(values, results, strict=True) if r is None]
    assert len(winners) == 1
    assert all(isinstance(r, KeyExists) for r in results if r is not None)
    assert await store.get(b"k") == winners[0]


async def test_insert_after_put_in_earlier_batch_of_group(store: RecordStore) -> None:
    first, second = await asyncio.gather(
        store.write([Put(b"k", b"put")]), store.write([Insert(b"k", b"ins")]), return_exceptions=True
    )
    assert first is None and isinstance(second, KeyExists)
    assert await store.get(b"k") == b"put"


async def _fill(store: RecordStore, n: int) -> list[bytes]:
    keys = [b"r/%04d" % i for i in range(n)]
    await store.write([Put(k, k + b"=v") for k in keys])
    return keys


async def test_scan_range_limit_reverse(store: RecordStore) -> None:
    keys = await _fill(store, 20)
    await store.write([Put(b"q", b"before"), Put(b"s", b"after")])
    rows = await store.scan(b"r/", prefix_end(b"r/"), limit=100)
    assert [k for k, _ in rows] == keys
    assert all(v == k + b"=v" for k, v in rows)
    assert [k for k, _ in await store.scan(b"r/0005", b"r/0008", limit=100)] == keys[5:8]
    assert [k for k, _ in await store.scan(b"r/", b"r0", limit=3)] == keys[:3]
    assert [k for k, _ in await store.scan(b"r/", b"r0", limit=3, reverse=True)] == keys[::-1][:3]
    assert [k for k, _ in await store.scan(b"r/0005", b"r/0008", limit=2, reverse=True)] == [keys[7], keys[6]]


async def test_scan_empty_cases(store: RecordStore) -> None:
    await _fill(store, 5)
    assert await store.scan(b"r/", b"r0", limit=0) == []
    assert await store.scan(b"r0", b"r/", limit=10) == []
    assert await store.scan(b"r/0002", b"r/0002", limit=10) == []
    assert await store.scan(b"x", b"y", limit=10, reverse=True) == []
    with pytest.raises(ValueError):
        await store.scan(b"a", b"b", limit=-1)


async def test_large_scan_and_get_many(store: RecordStore) -> None:
    keys = await _fill(store, 2500)
    rows = await store.scan(b"r/", b"r0", limit=5000)
    assert [k for k, _ in rows] == keys
    assert len(await store.scan(b"r/", b"r0", limit=1001, reverse=True)) == 1001
    found = await store.get_many(keys + [b"nope"])
    assert found == {k: k + b"=v" for k in keys}


async def test_get_many_missing_and_duplicates(store: RecordStore) -> None:
    await store.write([Put(b"a", b"1"), Put(b"b", b"2")])
    assert await store.get_many([b"a", b"a", b"zz", b"b"]) == {b"a": b"1", b"b": b"2"}
    assert await store.get_many([]) == {}


async def test_many_concurrent_writers_all_durable(store: RecordStore) -> None:
    async def one(i: int) -> None:
        base = b"m/%05d/" % i
        await store.write([Put(base + b"%d" % j, b"x" * 200) for j in range(4)])

    await asyncio.gather(*(one(i) for i in range(2000)))
    rows = await store.scan(b"m/", prefix_end(b"m/"), limit=10_000)
    assert len(rows) == 8000
    assert rows[0][0] == b"m/00000/0" and rows[-1][0] == b"m/01999/3"


async def test_reopen_persists(make_store: StoreFactory, durable: None) -> None:
    first = make_store()
    await first.open()
    await first.write([Put(b"p", b"persisted"), Insert(b"i", b"inserted")])
    await first.close()
    second = make_store()
    await second.open()
    await second.open()  # idempotent
    try:
        assert await second.get_many([b"p", b"i"]) == {b"p": b"persisted", b"i": b"inserted"}
        with pytest.raises(KeyExists):
            await second.write([Insert(b"i", b"again")])
    finally:
        await second.close()
        await second.close()  # idempotent


async def test_closed_store_is_unavailable(make_store: StoreFactory, backend: str) -> None:
    closed = make_store()
    with pytest.raises(StoreUnavailable):
        await closed.write([Put(b"a", b"b")])
    with pytest.raises(StoreUnavailable):
        await closed.get(b"a")


async def test_bad_ops_are_type_errors(store: RecordStore) -> None:
    bad: list[Any] = [[("k", "v")], [Put("k", b"v")], [Insert(b"k", "v")], [Delete(bytearray(b"k"))]]
    for ops in bad:
        with pytest.raises(TypeError):
            await store.write(ops)


async def test_describe(store: RecordStore, backend: str) -> None:
    facts = store.describe()
    assert facts["backend"] == {"memory": "memory", "sqlite": "sqlite", "postgres": "postgresql", "sharded": "sharded"}[
        backend.split("-")[0]
    ]
    assert facts.get("sealed", False) == backend.endswith("-sealed")
