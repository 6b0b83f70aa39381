"""WAL upkeep (``store.sqlite_wal``): under a steady stream of writes, with readers reading
meanwhile, the WAL is restarted again and again instead of growing with everything written;
and every acknowledged write is still there after the store is reopened."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from pathlib import Path

import pytest

from store import Put, SqliteStore
from store.sqlite_commit import connect_writer, migrate
from store.sqlite_wal import CHECKPOINT_ROWS, WalUpkeep

ROWS = 15 * CHECKPOINT_ROWS
BATCH = 40
VALUE = os.urandom(400)


def wal_bytes(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def wal_restarts(path: Path) -> int:
    """The WAL header's checkpoint sequence number: SQLite adds one each time the WAL starts
    over (https://sqlite.org/fileformat2.html, section 4.1, "WAL File Format")."""
    with contextlib.suppress(FileNotFoundError), open(f"{path}-wal", "rb") as wal:
        header = wal.read(16)
        if len(header) == 16:
            return int.from_bytes(header[12:16], "big")
    return 0


async def write_steadily(store: SqliteStore, path: Path) -> tuple[int, int, int]:
    """Write ROWS rows in batches, 8 batches in flight, reading between rounds; returns
    (largest WAL seen, bytes written, WAL restarts seen)."""
    largest = 0
    written = 0
    first = wal_restarts(path)
    for round_start in range(0, ROWS, BATCH * 8):
        batches = [
            [Put(b"k%09d" % (start + i), VALUE) for i in range(BATCH)]
            for start in range(round_start, min(ROWS, round_start + BATCH * 8), BATCH)
        ]
        await asyncio.gather(*(store.write(ops) for ops in batches))
        written += sum(len(ops) for ops in batches) * len(VALUE)
        assert await store.get(b"k%09d" % round_start) == VALUE  # a reader in the WAL meanwhile
        largest = max(largest, wal_bytes(path))
    return largest, written, wal_restarts(path) - first


@pytest.mark.parametrize("writer", ["process", "inline"])
async def test_wal_stays_short_under_steady_writes(tmp_path: Path, writer: str) -> None:
    path = tmp_path / "wal.db"
    store = SqliteStore(path, writer=writer)  # type: ignore[arg-type]
    await store.open()
    try:
        largest, written, restarts = await write_steadily(store, path)
    finally:
        await store.close()
    print(f"{writer}: wrote {written >> 20} MiB, largest WAL {largest >> 20} MiB, {restarts} restarts")
    # Everything written goes through the WAL; without restarts the WAL holds all of it.
    # A checkpoint is due every CHECKPOINT_ROWS rows (15 in this test); on a busy machine
    # the copy thread may fall a few behind, so the bounds leave room for that.
    assert written > 20 << 20
    assert restarts >= 5
    assert largest < written / 2
    reopened = SqliteStore(path)
    await reopened.open()
    try:
        rows = await reopened.scan(b"k", b"l", limit=ROWS + 1)
    finally:
        await reopened.close()
    assert len(rows) == ROWS
    assert all(value == VALUE for _, value in rows)


def test_the_copy_thread_syncs_the_database_through_a_descriptor_kept_until_release(tmp_path: Path) -> None:
    """``sync_database``: the copy thread fdatasyncs the database through a descriptor of its
    own, which must outlive every connection of the process (closing it drops SQLite's POSIX
    locks), so it is closed by ``release()`` only."""
    path = tmp_path / "sync.db"

    def database_fds(read_only: bool = False) -> list[str]:
        """This process's descriptors of the database file (SQLite's own are read-write)."""
        found = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.path.realpath(f"/proc/self/fd/{fd}") != str(path.resolve()):
                    continue
                flags = int(Path(f"/proc/self/fdinfo/{fd}").read_text().split("flags:")[1].split()[0], 8)
            except (OSError, IndexError):
                continue  # closed meanwhile
            if not read_only or flags & os.O_ACCMODE == os.O_RDONLY:
                found.append(fd)
        return found

    conn = connect_writer(str(path), 5.0)
    migrate(conn)
    upkeep = WalUpkeep(conn, str(path), 5.0, every=200, sync_database=True)
    deadline = time.monotonic() + 20
    row = 0
    while not database_fds(read_only=True) and time.monotonic() < deadline:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO records (key, value) VALUES (?, ?)", [(b"k%09d" % (row + i), VALUE) for i in range(50)]
        )
        conn.execute("COMMIT")
        row += 50
        upkeep.note(conn, 50)
        time.sleep(0.01)
    assert database_fds(read_only=True), "the copy thread never synced the database"
    upkeep.close(conn)
    assert database_fds(read_only=True)  # kept while the writer's connection is open
    conn.close()
    upkeep.release()
    assert database_fds() == []
    assert conn_rows(path) == row


def conn_rows(path: Path) -> int:
    check = sqlite3.connect(path)
    try:
        return int(check.execute("SELECT count(*) FROM records").fetchone()[0])
    finally:
        check.close()


def test_write_back_syncs_the_wal_after_commits_and_never_while_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write-back thread fdatasyncs the WAL soon after a commit, at most once per pause,
    and makes no call at all while nothing is committed (an idle node stays idle)."""
    path = tmp_path / "idle.db"
    wal = os.path.realpath(f"{path}-wal")
    synced: list[float] = []
    real_fdatasync = os.fdatasync

    def counting_fdatasync(fd: int) -> None:
        if os.path.realpath(f"/proc/self/fd/{fd}") == wal:
            synced.append(time.monotonic())
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", counting_fdatasync)
    conn = connect_writer(str(path), 5.0)
    migrate(conn)
    upkeep = WalUpkeep(conn, str(path), 5.0, pause=0.02)
    try:
        time.sleep(0.3)
        assert synced == []  # idle: no sync
        started = time.monotonic()
        for row in range(40):  # 40 commits, 10 ms apart
            time.sleep(0.01)
            conn.execute("INSERT INTO records (key, value) VALUES (?, ?)", (b"k%03d" % row, VALUE))
            last_commit = time.monotonic()
            upkeep.note(conn, 1)
        time.sleep(0.2)  # ten pauses: the write-back has caught up
        during = len(synced)
        assert synced and synced[-1] >= last_commit  # a sync began after the last commit
        assert 2 <= during <= (synced[-1] - started) / 0.02 + 1, synced  # at most once per pause
        time.sleep(0.3)
        assert len(synced) == during  # idle again: no more syncs
    finally:
        upkeep.close(conn)
        conn.close()
    assert conn_rows(path) == 40
