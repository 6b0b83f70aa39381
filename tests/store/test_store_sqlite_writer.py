"""The SQLite writer process (``store.sqlite_writer``): what happens around the process.

The store behaviour itself runs through the shared suite (``sqlite-process`` backends in
conftest) and the kill -9 test in ``test_store_sqlite.py``; these tests cover the process:
a dying writer, signals aimed at the process group, a dying parent, sealing in the writer.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from store import Keyring, Put, SealedStore, SqliteStore, StoreUnavailable, sqlite_process
from store.errors import BadStoreUrl
from store.factory import open_raw

REPO = Path(__file__).resolve().parents[2]


def writer_pid(store: SqliteStore) -> int:
    pid = store.describe()["writer_pid"]
    assert isinstance(pid, int)
    return pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")


async def wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_killed_writer_fails_what_it_held_and_is_restarted(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db", writer="process")
    await store.open()
    try:
        await store.write([Put(b"before", b"1")])
        first = writer_pid(store)
        os.kill(first, signal.SIGKILL)
        await wait_for(lambda: not store._writer.running)  # type: ignore[union-attr]
        await store.write([Put(b"after", b"2")])  # a new writer process takes over
        second = writer_pid(store)
        assert second != first
        assert await store.get(b"before") == b"1" and await store.get(b"after") == b"2"
    finally:
        await store.close()
    assert not alive(second)


async def test_writes_waiting_on_a_dying_writer_fail_cleanly(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db", writer="process")
    await store.open()
    try:
        pid = writer_pid(store)
        writes = [asyncio.ensure_future(store.write([Put(b"k%d" % i, b"v" * 100)])) for i in range(2000)]
        await asyncio.sleep(0)
        os.kill(pid, signal.SIGKILL)
        results = await asyncio.gather(*writes, return_exceptions=True)
        failed = [r for r in results if r is not None]
        assert all(isinstance(r, StoreUnavailable) for r in failed)
        acked = [b"k%d" % i for i, r in enumerate(results) if r is None]
        found = await store.get_many(acked)
        assert len(found) == len(acked)  # whatever was acknowledged is there
    finally:
        await store.close()


async def test_the_writer_ignores_sigint_and_sigterm_sent_to_the_group(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db", writer="process")
    await store.open()
    try:
        pid = writer_pid(store)
        os.kill(pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole foreground group
        os.kill(pid, signal.SIGTERM)  # so does a service manager's stop
        await asyncio.sleep(0.2)
        await store.write([Put(b"still", b"here")])
        assert writer_pid(store) == pid and await store.get(b"still") == b"here"
    finally:
        await store.close()
    assert not alive(pid)  # close() ends it


def test_the_writer_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        sys.path.insert(0, {str(REPO)!r})
        from store import Put, SqliteStore
        async def main():
            store = SqliteStore({str(tmp_path / "s.db")!r}, writer="process")
            await store.open()
            await store.write([Put(b"k", b"v")])
            print(store.describe()["writer_pid"], flush=True)
            await asyncio.sleep(60)
        asyncio.run(main())
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert alive(child)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child), "the writer outlived its parent"
    finally:
        parent.kill()
        parent.wait()


async def test_values_sealed_in_the_writer_open_with_the_keyring_and_are_not_on_disk(tmp_path: Path) -> None:
    keyring = Keyring(secrets.token_bytes(32))
    secret = b"a-secret-message-body"
    store = SealedStore(SqliteStore(tmp_path / "s.db", writer="process"), keyring)
    await store.open()
    try:
        await store.write([Put(b"m/%d" % i, secret + b"%d" % i) for i in range(50)])
        assert await store.get(b"m/7") == secret + b"7"
    finally:
        await store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert secret not in raw and b"m/7" in raw
    inline = SealedStore(SqliteStore(tmp_path / "s.db", writer="inline"), keyring)  # same format both ways
    await inline.open()
    try:
        values = await inline.get_many([b"m/%d" % i for i in range(50)])
        assert values[b"m/49"] == secret + b"49" and len(values) == 50
    finally:
        await inline.close()


async def test_raw_writes_beside_sealed_ones_are_not_sealed_again(tmp_path: Path) -> None:
    keyring = Keyring(secrets.token_bytes(32))
    raw = SqliteStore(tmp_path / "s.db", writer="process")
    sealed = SealedStore(raw, keyring)
    await sealed.open()
    try:
        presealed = keyring.seal(b"k", b"value")  # as reseal writes: sealed already, through the raw store
        await raw.write([Put(b"k", presealed)])
        await sealed.write([Put(b"j", b"other")])
        assert await sealed.get(b"k") == b"value" and await sealed.get(b"j") == b"other"
    finally:
        await sealed.close()


def test_the_url_chooses_the_writer() -> None:
    for url, mode in (("sqlite:///x/s.db", "process"), ("sqlite:///x/s.db?writer=inline", "inline")):
        store = open_raw(url)
        assert isinstance(store, SqliteStore) and store.writer_mode == mode and store.path == "/x/s.db"
    for bad in ("sqlite:///x/s.db?writer=thread", "sqlite:///x/s.db?cache=big"):
        with pytest.raises(BadStoreUrl):
            open_raw(bad)


async def test_close_commits_batches_queued_behind_the_frame_in_flight(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db", writer="process")
    await store.open()
    writes = [asyncio.ensure_future(store.write([Put(b"q%d" % i, b"v")])) for i in range(500)]
    await asyncio.sleep(0)  # the first frame leaves; the rest wait for its reply
    for i in range(500, 1000):
        writes.append(asyncio.ensure_future(store.write([Put(b"q%d" % i, b"v")])))
    await asyncio.sleep(0)
    await store.close()
    assert all(w.done() and w.exception() is None for w in writes)
    reopened = SqliteStore(tmp_path / "s.db", writer="inline")
    await reopened.open()
    try:
        assert len(await reopened.get_many([b"q%d" % i for i in range(1000)])) == 1000
    finally:
        await reopened.close()


def writer_children() -> list[int]:
    """Live writer processes started by this process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat, cmdline = (entry / "stat").read_text(), (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(") ", 1)[1].split()
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"store.sqlite_writer" in cmdline:
            found.append(int(entry.name))
    return found


async def kill_writer(store: SqliteStore) -> None:
    os.kill(writer_pid(store), signal.SIGKILL)
    await wait_for(lambda: not store._writer.running)  # type: ignore[union-attr]


async def test_writes_racing_into_a_restart_start_one_writer(tmp_path: Path) -> None:
    """Both writes wait for the same restart (it is recorded before anything awaits)."""
    store = SqliteStore(tmp_path / "s.db", writer="process")
    await store.open()
    try:
        await store.write([Put(b"a", b"1")])
        await kill_writer(store)
        writes = [store.write([Put(b"k%d" % i, b"v")]) for i in range(5)]
        await asyncio.wait_for(asyncio.gather(*writes), 20)
        assert writer_children() == [writer_pid(store)]
    finally:
        await store.close()
    await wait_for(lambda: writer_children() == [])


async def test_close_during_a_restart_leaves_no_writer_running(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db", writer="process")
    await store.open()
    await store.write([Put(b"a", b"1")])
    await kill_writer(store)
    write = asyncio.ensure_future(store.write([Put(b"b", b"2")]))  # starts the restart
    await asyncio.sleep(0)
    await store.close()
    await wait_for(lambda: write.done())
    await wait_for(lambda: writer_children() == [])
    with pytest.raises(StoreUnavailable):
        await store.write([Put(b"c", b"3")])


async def test_writes_during_a_restart_follow_the_sealing_key(tmp_path: Path) -> None:
    """Batches wait until the new child has the key: sealed and raw ones alike succeed."""
    raw = SqliteStore(tmp_path / "s.db", writer="process")
    store = SealedStore(raw, Keyring(secrets.token_bytes(32)))
    await store.open()
    try:
        await store.write([Put(b"a", b"1")])
        await kill_writer(raw)
        first = asyncio.ensure_future(store.write([Put(b"b", b"2")]))  # starts the restart
        later = []
        for _ in range(200):  # submit all through the restart window
            later.append(asyncio.ensure_future(store.write([Put(b"c", b"3")])))
            later.append(asyncio.ensure_future(raw.write([Put(b"d", b"4")])))
            await asyncio.sleep(0.002)
        await asyncio.wait_for(asyncio.gather(first, *later), 20)
        assert await store.get(b"b") == b"2" and await raw.get(b"d") == b"4"
    finally:
        await store.close()


async def test_an_oversized_batch_is_refused_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It would kill the child (frame limit) or never be sent (marshal limit): refused at
    submit, and the writes beside it go on."""
    monkeypatch.setattr(sqlite_process, "MAX_BATCH_BYTES", 10_000)
    monkeypatch.setattr(sqlite_process, "_FRAME_BUDGET", 25_000)  # frames split by bytes
    store = SqliteStore(tmp_path / "s.db", writer="process")
    await store.open()
    try:
        writes = [asyncio.ensure_future(store.write([Put(b"k%d" % i, b"v" * 9_000)])) for i in range(20)]
        huge = asyncio.ensure_future(store.write([Put(b"huge", b"x" * 20_000)]))
        await asyncio.gather(*writes)
        with pytest.raises(StoreUnavailable, match="over 10000"):
            await huge
        assert len(await store.get_many([b"k%d" % i for i in range(20)])) == 20
        groups = store.describe()["groups"]
        assert groups >= 7  # 20 batches of 9 KB in frames of at most ~25 KB
    finally:
        await store.close()
