"""PostgreSQL backend specifics: DSNs, migrations, the race fallback, crash safety, at rest."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets

import asyncpg
import pytest
from store_helpers import PG_SOCKET_DSN, assert_all_present, drop_pg_table, require_pg, run_and_kill

from store import BadStoreUrl, Insert, KeyExists, Keyring, Put, SealedStore, StoreUnavailable
from store.postgres import SCHEMA_VERSION, PostgresStore, split_table


def test_split_table() -> None:
    assert split_table("postgresql://u@h/db") == ("postgresql://u@h/db", None)
    assert split_table("postgresql://u@h/db?table=t1") == ("postgresql://u@h/db", "t1")
    assert split_table("postgresql:///db?host=/run/pg&table=t2&user=x") == (
        "postgresql:///db?host=/run/pg&user=x",
        "t2",
    )


def test_table_name_is_validated() -> None:
    assert PostgresStore("postgresql://h/db?table=ok_1").table == "ok_1"
    assert PostgresStore("postgresql://h/db", table="mine").table == "mine"
    for bad in ["x;drop", "Upper", "1abc", "a" * 59, ""]:
        with pytest.raises(BadStoreUrl):
            PostgresStore(f"postgresql://h/db?table={bad}" if bad else "postgresql://h/db", table=bad)


async def test_unreachable_server_is_unavailable() -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/test")
    with pytest.raises(StoreUnavailable):
        await store.open()


async def test_unix_socket_dsn() -> None:
    require_pg(PG_SOCKET_DSN)
    table = f"t_{secrets.token_hex(8)}"
    store = PostgresStore(f"{PG_SOCKET_DSN}&table={table}")
    try:
        await store.open()
        await store.write([Put(b"k", b"v")])
        assert await store.get(b"k") == b"v"
        assert store.describe()["table"] == table
        await store.close()
    finally:
        await drop_pg_table(PG_SOCKET_DSN, table)


async def test_concurrent_opens_and_newer_schema(pg_table_dsn: str) -> None:
    stores = [PostgresStore(pg_table_dsn) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    await asyncio.gather(*(s.close() for s in stores))
    dsn, table = split_table(pg_table_dsn)
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval(f'SELECT v FROM "{table}_meta"') == str(SCHEMA_VERSION)
        await conn.execute(f"UPDATE \"{table}_meta\" SET v = '999'")
    finally:
        await conn.close()
    with pytest.raises(StoreUnavailable, match="newer"):
        await PostgresStore(pg_table_dsn).open()


async def test_insert_race_falls_back_to_savepoints(pg_table_dsn: str) -> None:
    store = PostgresStore(pg_table_dsn)
    await store.open()
    try:
        await store.write([Put(b"taken", b"old")])
        # Blind the existence check, as if another node inserted the keys right after it.
        blind = store._sql.existing.replace("WHERE", "WHERE false AND")
        store._sql = dataclasses.replace(store._sql, existing=blind)
        results = await asyncio.gather(
            store.write([Put(b"a", b"1")]),
            store.write([Put(b"b", b"2"), Insert(b"taken", b"new")]),
            store.write([Insert(b"c", b"3")]),
            return_exceptions=True,
        )
        assert [type(r) for r in results] == [type(None), KeyExists, type(None)]
        got = await store.get_many([b"a", b"b", b"c", b"taken"])
        assert got == {b"a": b"1", b"c": b"3", b"taken": b"old"}
        assert store.describe()["slow_groups"] >= 1
    finally:
        await store.close()


async def test_two_nodes_insert_the_same_keys(pg_table_dsn: str) -> None:
    a, b = PostgresStore(pg_table_dsn), PostgresStore(pg_table_dsn)
    await a.open()
    await b.open()
    try:
        writes = [s.write([Insert(b"u%03d" % i, tag)]) for i in range(100) for s, tag in ((a, b"a"), (b, b"b"))]
        results = await asyncio.gather(*writes, return_exceptions=True)
        for i in range(100):
            pair = results[2 * i : 2 * i + 2]
            assert sorted(type(r).__name__ for r in pair) == ["KeyExists", "NoneType"]
            winner = b"a" if pair[0] is None else b"b"
            assert await a.get(b"u%03d" % i) == winner
    finally:
        await a.close()
        await b.close()


@pytest.mark.slow
async def test_acknowledged_writes_survive_sigkill(pg_table_dsn: str) -> None:
    data_key = secrets.token_bytes(32)
    acked = run_and_kill(pg_table_dsn, data_key)
    assert len(acked) >= 3000
    await assert_all_present(pg_table_dsn, data_key, acked)


async def test_sealed_values_are_not_in_the_table(pg_table_dsn: str) -> None:
    secret = b"alice-secret-body"
    store = SealedStore(PostgresStore(pg_table_dsn), Keyring(secrets.token_bytes(32)))
    await store.open()
    await store.write([Put(b"msg/1", b"hdr:" + secret + b":end")])
    assert await store.get(b"msg/1") == b"hdr:" + secret + b":end"
    await store.close()
    dsn, table = split_table(pg_table_dsn)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(f'SELECT key, value FROM "{table}"')
        dump = await conn.fetchval(f"SELECT string_agg(encode(value, 'escape'), '') FROM \"{table}\"")
    finally:
        await conn.close()
    assert [bytes(r["key"]) for r in rows] == [b"msg/1"]
    assert secret not in bytes(rows[0]["value"])
    assert "alice-secret-body" not in dump
