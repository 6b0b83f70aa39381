"""WAL upkeep (``store.sqlite_wal``): under a steady stream of writes, with readers reading
meanwhile, the WAL is restarted again and again instead of growing with everything written;
and every acknowledged write is still there after the store is reopened."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from store import Put, SqliteStore, sqlite_wal
from store.sqlite_commit import connect_writer, migrate
from store.sqlite_wal import CHECKPOINT_ROWS, WalUpkeep

ROWS = 15 * CHECKPOINT_ROWS
BATCH = 40
VALUE = os.urandom(400)


def wal_bytes(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def wal_restarts(path: Path) -> int:
    """The WAL header's checkpoint sequence number (``sqlite_wal.wal_sequence``; 0 without a
    WAL): SQLite adds one each time the WAL starts over."""
    return sqlite_wal.wal_sequence(str(path)) or 0


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


@pytest.mark.parametrize("refused", [False, True], ids=["allowed", "refused"])
def test_the_copy_yields_the_cpu_until_it_falls_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused: bool
) -> None:
    """A checkpoint's copy runs ``COPY_NICE`` nicer than the writer (the commit path gets the
    CPU first) until ``BEHIND_ROWS`` times ``every`` rows were committed meanwhile: then it
    is set back to the writer's nice value; where the system refuses that, so is every later
    copy."""
    calls: list[tuple[threading.Thread, int]] = []
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    real_checkpoint, real_set_nice = sqlite_wal.passive_checkpoint, sqlite_wal._set_nice
    slow = False

    def recording_checkpoint(conn: sqlite3.Connection) -> int | None:
        thread = threading.current_thread()
        first = all(seen is not thread for seen, _ in calls)
        calls.append((thread, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        if slow and first and thread is not threading.main_thread():
            time.sleep(0.05)  # the writer commits meanwhile: this copy falls behind
        return real_checkpoint(conn)

    def set_nice(thread_id: int, nice: int) -> bool:
        if refused and nice < os.getpriority(os.PRIO_PROCESS, thread_id):
            return False  # lowering it, as for a user without CAP_SYS_NICE or RLIMIT_NICE
        return real_set_nice(thread_id, nice)

    monkeypatch.setattr(sqlite_wal, "passive_checkpoint", recording_checkpoint)
    monkeypatch.setattr(sqlite_wal, "_set_nice", set_nice)
    if os.geteuid() != 0 and not refused:
        pytest.skip("lowering a nice value takes root, CAP_SYS_NICE or RLIMIT_NICE; the refused case runs")
    path = tmp_path / "nice-copy.db"
    conn = connect_writer(str(path), 5.0)
    migrate(conn)
    upkeep = WalUpkeep(conn, str(path), 5.0, every=400, sync_database=True)
    row = 0

    def copies(count: int, rows: int) -> list[list[int]]:
        """Commit ``rows`` rows at a time until ``count`` copies ended: each one's nice values."""
        nonlocal row
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            seen: dict[threading.Thread, list[int]] = {}
            for thread, nice in list(calls):
                if thread is not threading.main_thread():
                    seen.setdefault(thread, []).append(nice)
            ended = [nices for thread, nices in seen.items() if not thread.is_alive()]
            if len(ended) >= count:
                return ended
            conn.executemany(
                "INSERT INTO records (key, value) VALUES (?, ?)", [(b"k%09d" % (row + i), VALUE) for i in range(rows)]
            )
            row += rows
            upkeep.note(conn, rows)
            time.sleep(0.005)
        raise AssertionError(f"fewer than {count} copies ended: {calls}")

    try:
        monkeypatch.setattr(sqlite_wal, "BEHIND_ROWS", 1e9)  # on a busy machine a copy could fall behind here
        for nices in copies(2, 50):
            assert set(nices) == {min(19, base + sqlite_wal.COPY_NICE)}, nices
        calls.clear()
        monkeypatch.setattr(sqlite_wal, "BEHIND_ROWS", 0.0)  # every copy is now behind
        slow = True
        ended = copies(3, 50)
        if refused:
            assert set(ended[-1]) == {base}, ended  # a later copy was never niced
        else:
            assert all(nices[-1] == base for nices in ended), ended
    finally:
        upkeep.close(conn)
        conn.close()
        upkeep.release()
    assert conn_rows(path) == row


@pytest.mark.parametrize("copied", [True, False], ids=["copy-reached-the-end", "copy-left-frames"])
def test_the_writer_finishes_a_copy_only_if_the_wal_did_not_start_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, copied: bool
) -> None:
    """When a copy reached the WAL's end in a gap between commits, the next transaction
    started the WAL over and the writer's connection has nothing to finish (it used to copy
    the new WAL's first frames, with two syncs, for nothing); otherwise it copies what the
    copy left, between two commits, so that the transaction after starts the WAL over."""
    writer_parts = 0
    real_checkpoint = sqlite_wal.passive_checkpoint

    def checkpoint(conn: sqlite3.Connection) -> int | None:
        nonlocal writer_parts
        if threading.current_thread() is threading.main_thread():
            writer_parts += 1
        elif not copied:
            return 0  # a copy that copied nothing (as if a reader had held it back)
        return real_checkpoint(conn)

    monkeypatch.setattr(sqlite_wal, "passive_checkpoint", checkpoint)
    path = tmp_path / "end.db"
    conn = connect_writer(str(path), 5.0)
    migrate(conn)
    upkeep = WalUpkeep(conn, str(path), 5.0, every=100, sync_database=True)
    try:
        conn.executemany("INSERT INTO records (key, value) VALUES (?, ?)", [(b"a%03d" % i, VALUE) for i in range(100)])
        upkeep.note(conn, 100)  # a copy starts; nothing is committed while it runs
        deadline = time.monotonic() + 10
        while upkeep._copier.running and time.monotonic() < deadline:
            time.sleep(0.01)
        restarts = wal_restarts(path)
        conn.execute("INSERT INTO records (key, value) VALUES (?, ?)", (b"b", VALUE))
        assert wal_restarts(path) == restarts + copied  # a fully copied WAL starts over
        upkeep.note(conn, 1)
        assert writer_parts == (0 if copied else 1)
        conn.execute("INSERT INTO records (key, value) VALUES (?, ?)", (b"c", VALUE))
        assert wal_restarts(path) == restarts + 1
    finally:
        upkeep.close(conn)
        conn.close()
        upkeep.release()
    assert conn_rows(path) == 102
