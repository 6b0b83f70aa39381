"""PostgreSQL backend specifics: DSNs, migrations, the race fallback, retries, crash safety, at rest."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time

import asyncpg
import pytest
from store_helpers import PG_SOCKET_DSN, assert_all_present, drop_pg_table, require_pg, run_and_kill

import store.postgres as pg_module
from store import BadStoreUrl, Insert, KeyExists, Keyring, Put, SealedStore, StoreUnavailable
from store.postgres import _ATTEMPTS, SCHEMA_VERSION, PostgresStore, split_table


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


async def _wait_until_blocked_on_lock(conn: asyncpg.Connection, table: str) -> None:
    """Until a backend waits for a row lock in a statement naming ``table`` (``pg_stat_activity``)."""
    deadline = time.monotonic() + 10
    sql = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1"
    while not await conn.fetchval(sql, f"%{table}%"):
        assert time.monotonic() < deadline, "the store's write never waited for the blocker's row lock"
        await asyncio.sleep(0.01)


async def test_serialization_failure_is_retried_and_applied_once(pg_table_dsn: str) -> None:
    """A real SQLSTATE 40001 from the server: the group runs again and its batch lands exactly once.

    The store runs SERIALIZABLE (CockroachDB's default isolation); a second connection updates
    the row the store's group is about to upsert and commits after the store's statement has
    started waiting for it, so PostgreSQL aborts the group with "could not serialize access due
    to concurrent update" (40001, PostgreSQL docs 13.2). The batch also ``Insert``s a fresh
    key: had the aborted run left anything behind, the rerun would report ``KeyExists``.
    """
    base, table = split_table(pg_table_dsn)
    store = PostgresStore(f"{pg_table_dsn}&default_transaction_isolation=serializable")
    await store.open()
    blocker, watcher = await asyncpg.connect(base), await asyncpg.connect(base)
    try:
        await store.write([Put(b"hot", b"v0")])
        assert store.describe()["retries"] == 0
        blocking = blocker.transaction()
        await blocking.start()
        await blocker.execute(f'UPDATE "{table}" SET value = $1 WHERE key = $2', b"blocker", b"hot")
        write = asyncio.create_task(store.write([Insert(b"fresh", b"once"), Put(b"hot", b"store")]))
        await _wait_until_blocked_on_lock(watcher, table)
        assert not write.done()
        await blocking.commit()
        assert await asyncio.wait_for(write, 10) is None
        assert await store.get_many([b"hot", b"fresh"]) == {b"hot": b"store", b"fresh": b"once"}
        assert await watcher.fetchval(f'SELECT count(*) FROM "{table}"') == 2
        assert store.describe()["retries"] == 1
    finally:
        await blocker.close()
        await watcher.close()
        await store.close()


async def test_serialization_failures_give_up_after_bounded_runs(pg_table_dsn: str) -> None:
    """A group that keeps failing with 40001 is run ``_ATTEMPTS`` times, then fails with nothing applied."""
    base, table = split_table(pg_table_dsn)
    conn = await asyncpg.connect(base)
    fail, runs = f"{table}_fail", f"{table}_runs"
    await conn.execute(f'CREATE SEQUENCE "{runs}"')
    await conn.execute(
        f'CREATE FUNCTION "{fail}"(bytea[], bytea[]) RETURNS void LANGUAGE plpgsql AS $$ '
        f"BEGIN PERFORM nextval('\"{runs}\"'); RAISE EXCEPTION 'injected conflict' USING ERRCODE = '40001'; END $$"
    )
    store = PostgresStore(pg_table_dsn)
    await store.open()
    try:
        real = store._sql
        store._sql = dataclasses.replace(real, upsert_many=f'SELECT "{fail}"($1::bytea[], $2::bytea[])')
        with pytest.raises(StoreUnavailable, match="injected conflict"):
            await store.write([Insert(b"fresh", b"1"), Put(b"k", b"v")])
        assert await conn.fetchval(f'SELECT last_value FROM "{runs}"') == _ATTEMPTS  # nextval is not rolled back
        assert store.describe()["retries"] == _ATTEMPTS - 1
        assert await store.get_many([b"fresh", b"k"]) == {}
        store._sql = real
        await store.write([Insert(b"fresh", b"1"), Put(b"k", b"v")])
        assert await store.get_many([b"fresh", b"k"]) == {b"fresh": b"1", b"k": b"v"}
    finally:
        await store.close()
        await conn.execute(f'DROP FUNCTION IF EXISTS "{fail}"(bytea[], bytea[])')
        await conn.execute(f'DROP SEQUENCE IF EXISTS "{runs}"')
        await conn.close()


@pytest.mark.parametrize("server", ["undefined_function", "feature_not_supported"])
async def test_migration_without_advisory_locks(
    pg_table_dsn: str, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server without the migration lock (42883 as CockroachDB, 0A000 as YugabyteDB) still opens."""
    base, table = split_table(pg_table_dsn)
    conn = await asyncpg.connect(base)
    lock = f"{table}_lock"
    await conn.execute(
        f'CREATE FUNCTION "{lock}"(integer) RETURNS void LANGUAGE plpgsql AS $$ '
        "BEGIN RAISE EXCEPTION 'advisory locks are not yet implemented' USING ERRCODE = '0A000'; END $$"
    )
    missing = {"undefined_function": "timnode_no_such_lock", "feature_not_supported": f'"{lock}"'}[server]
    monkeypatch.setattr(pg_module, "_MIGRATION_LOCK", f"SELECT {missing}(hashtext($1))")
    try:
        for op in (Insert(b"k", b"v"), Put(b"k", b"v2")):  # the first open creates the tables, the second finds them
            store = PostgresStore(pg_table_dsn)
            await store.open()
            assert store.describe()["migration_locked"] is False
            await store.write([op])
            await store.close()
        assert await conn.fetchval(f'SELECT v FROM "{table}_meta"') == str(SCHEMA_VERSION)
        monkeypatch.undo()
        store = PostgresStore(pg_table_dsn)
        await store.open()
        assert store.describe()["migration_locked"] is True
        assert await store.get(b"k") == b"v2"
        await store.close()
    finally:
        await conn.execute(f'DROP FUNCTION IF EXISTS "{lock}"(integer)')
        await conn.close()
