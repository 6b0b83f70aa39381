"""SQLite backend specifics: schema migrations, group commit, crash safety, sealing at rest."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from pathlib import Path

import pytest
from store_helpers import assert_all_present, run_and_kill

from store import Insert, KeyExists, Keyring, Put, SealedStore, SqliteStore, StoreUnavailable
from store import sqlite as sqlite_module
from store.sqlite import MIGRATIONS, SCHEMA_VERSION, WriterMode
from store.sqlite_wal import WalUpkeep


def _meta(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT k, v FROM meta").fetchall())


async def test_schema_created_and_migrations_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    for _ in range(2):
        store = SqliteStore(path)
        await store.open()
        assert store.describe()["schema_version"] == SCHEMA_VERSION
        await store.close()
    assert _meta(path) == {"schema_version": str(SCHEMA_VERSION)}
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'records'").fetchone()[0]
    assert "WITHOUT ROWID" not in sql and "UNIQUE" in sql  # schema 2: rowid table, unique key index


@pytest.mark.parametrize("writer", ["process", "inline"])
async def test_a_schema_1_database_is_migrated_with_its_records(tmp_path: Path, writer: WriterMode) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # what a build with schema 1 left behind
        conn.execute("CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        conn.execute(MIGRATIONS[0][0])
        conn.executemany("INSERT INTO records VALUES (?, ?)", [(b"k%04d" % i, b"v%d" % i) for i in range(500)])
    store = SqliteStore(path, writer=writer)
    await store.open()
    try:
        assert store.describe()["schema_version"] == SCHEMA_VERSION == 2
        rows = await store.scan(b"k", b"l", limit=1000)
        assert rows == [(b"k%04d" % i, b"v%d" % i) for i in range(500)]
        await store.write([Put(b"k0001", b"new"), Put(b"z", b"1")])
        with pytest.raises(KeyExists):
            await store.write([Insert(b"k0002", b"dup")])
        assert await store.get(b"k0001") == b"new" and await store.get(b"k0002") == b"v2"
    finally:
        await store.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET v = '999' WHERE k = 'schema_version'")
    with pytest.raises(StoreUnavailable, match="newer"):
        await SqliteStore(path).open()


async def test_unopenable_path_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable):
        await SqliteStore(tmp_path / "missing-dir" / "s.db").open()


async def test_concurrent_writes_share_transactions(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    try:
        await asyncio.gather(*(store.write([Put(b"g%d" % i, b"v")]) for i in range(200)))
        facts = store.describe()
        assert facts["batches"] == 200
        assert facts["groups"] < 200 and facts["largest_group"] > 1
    finally:
        await store.close()


async def test_close_commits_queued_writes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    writes = [asyncio.ensure_future(store.write([Put(b"q%d" % i, b"v")])) for i in range(100)]
    await asyncio.sleep(0)  # let every write enqueue
    await store.close()
    await asyncio.gather(*writes)
    reopened = SqliteStore(tmp_path / "s.db")
    await reopened.open()
    try:
        assert len(await reopened.scan(b"q", b"r", limit=1000)) == 100
    finally:
        await reopened.close()


@pytest.mark.slow
@pytest.mark.parametrize(("writer", "reopen"), [("process", "process"), ("inline", "inline"), ("journal", "journal"),
                                                ("journal", "process")])  # fmt: skip
async def test_acknowledged_writes_survive_sigkill(tmp_path: Path, writer: str, reopen: str) -> None:
    url = f"sqlite://{tmp_path}/crash.db?writer={writer}"
    data_key = secrets.token_bytes(32)
    acked = run_and_kill(url, data_key)
    assert len(acked) >= 3000
    assert (writer == "journal") == bool(list(tmp_path.glob("crash.db-journal.*")))  # left by the kill
    await assert_all_present(url.replace(f"writer={writer}", f"writer={reopen}"), data_key, acked)
    assert not list(tmp_path.glob("crash.db-journal.*"))  # replayed, then deleted


@pytest.mark.parametrize("writer", ["process", "inline", "journal"])
async def test_sealed_values_are_not_on_disk(tmp_path: Path, writer: WriterMode) -> None:
    secret = b"alice-secret-body"
    for sealed, db in ((True, tmp_path / "sealed"), (False, tmp_path / "plain")):
        db.mkdir()
        inner = SqliteStore(db / "s.db", writer=writer)
        store = SealedStore(inner, Keyring(secrets.token_bytes(32))) if sealed else inner
        await store.open()
        await store.write([Put(b"msg/1", b"hdr:" + secret + b":end")])
        raw = b"".join(p.read_bytes() for p in db.iterdir())  # db, -wal and -shm while open
        await store.close()
        raw += b"".join(p.read_bytes() for p in db.iterdir())
        assert (secret in raw) is not sealed  # the unsealed control proves the probe works
        assert b"msg/1" in raw


class _CommitsBetweenChunks:
    """A reader connection that lets another connection commit after its first statement."""

    def __init__(self, conn: sqlite3.Connection, commit: object) -> None:
        self._conn, self._commit, self._statements = conn, commit, 0

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def execute(self, sql: str, params: object = ()) -> sqlite3.Cursor:
        cursor = self._conn.execute(sql, params)  # type: ignore[arg-type]
        if sql.startswith("SELECT"):
            self._statements += 1
            if self._statements == 1:
                self._commit()  # type: ignore[operator]
        return cursor


async def test_get_many_in_chunks_reads_one_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_module, "_IN_CHUNK", 2)
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    await store.open()
    try:
        await store.write([Put(b"k%d" % i, b"old") for i in range(6)])
        other = sqlite3.connect(path, isolation_level=None)

        def commit() -> None:
            other.execute("UPDATE records SET value = ? WHERE key IN (?, ?)", (b"new", b"k0", b"k5"))

        reader = sqlite3.connect(path, isolation_level=None)
        found = SqliteStore._get_many(_CommitsBetweenChunks(reader, commit), [b"k%d" % i for i in range(6)])  # type: ignore[arg-type]
        assert set(found.values()) == {b"old"}  # not k0 old and k5 new: one snapshot
        assert not reader.in_transaction
        assert SqliteStore._get_many(reader, [b"k0", b"k5"]) == {b"k0": b"new", b"k5": b"new"}
        reader.close()
        other.close()
    finally:
        await store.close()


async def test_groups_queued_behind_a_failing_wal_upkeep_are_still_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: object, conn: object, rows: int) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(WalUpkeep, "note", broken)
    store = SqliteStore(tmp_path / "s.db", max_group_ops=2)
    await store.open()
    try:
        writes = [store.write([Put(b"k%d" % i, b"v")]) for i in range(6)]  # three groups in one flush
        await asyncio.wait_for(asyncio.gather(*writes), 5)
        assert len(await store.get_many([b"k%d" % i for i in range(6)])) == 6
    finally:
        await store.close()
