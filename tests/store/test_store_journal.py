"""The ``journal`` writer mode: reads through the overlay while the writer lags, a writer that
dies, and the overlay's scan merge against a model (Hypothesis)."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store import Delete, Insert, KeyExists, Keyring, Put, SealedStore, SqliteStore, StoreUnavailable, sqlite_process
from store import sqlite as sqlite_module
from store import sqlite_journaled as journaled
from store.overlay import Overlay, merge_scan


async def stopped_writer_store(tmp_path: Path) -> tuple[SqliteStore, int]:
    store = SqliteStore(tmp_path / "j.db", writer="journal")
    await store.open()
    pid = store.describe()["writer_pid"]
    return store, pid


async def test_reads_see_acknowledged_writes_while_the_writer_is_stopped(tmp_path: Path) -> None:
    store, pid = await stopped_writer_store(tmp_path)
    model = {b"k%02d" % i: b"db%d" % i for i in range(0, 40, 2)}
    await store.write([Put(k, v) for k, v in model.items()])
    assert store._front is not None and await store._front.drain(10)
    os.kill(pid, signal.SIGSTOP)
    try:
        changes = [Put(b"k%02d" % i, b"new%d" % i) for i in range(1, 40, 3)] + [Delete(b"k%02d" % i) for i in (0, 4, 8)]
        await store.write(changes)
        for op in changes:
            if isinstance(op, Delete):
                model.pop(op.key, None)
            else:
                model[op.key] = op.value
        await store.write([Insert(b"fresh", b"1")])
        model[b"fresh"] = b"1"
        with pytest.raises(KeyExists):
            await store.write([Insert(b"k02", b"x")])  # in the database only
        with pytest.raises(KeyExists):
            await store.write([Insert(b"fresh", b"x")])  # in the overlay only
        await store.write([Insert(b"k00", b"again")])  # deleted in the overlay
        model[b"k00"] = b"again"
        assert store.describe()["uncommitted_ops"] > 0
        await assert_reads(store, model)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert await store._front.drain(10)
    assert store.describe()["overlay_keys"] == 0
    await assert_reads(store, model)
    await store.close()
    assert not list(tmp_path.glob("j.db-journal.*"))  # all committed: the journal is gone


async def assert_reads(store: SqliteStore, model: dict[bytes, bytes]) -> None:
    ordered = sorted(model.items())
    assert await store.scan(b"", b"\xff", limit=1000) == ordered
    assert await store.scan(b"k", b"l", limit=5) == [kv for kv in ordered if kv[0].startswith(b"k")][:5]
    assert await store.scan(b"k", b"l", limit=7, reverse=True) == [kv for kv in ordered[::-1] if b"k" <= kv[0]][:7]
    keys = [b"k%02d" % i for i in range(42)] + [b"fresh"]
    assert await store.get_many(keys) == {k: model[k] for k in keys if k in model}
    for key in keys[:12]:
        assert await store.get(key) == model.get(key)


async def test_a_killed_writer_is_restarted_and_gets_every_uncommitted_tick_again(tmp_path: Path) -> None:
    store, pid = await stopped_writer_store(tmp_path)
    os.kill(pid, signal.SIGSTOP)
    for i in range(50):
        await store.write([Put(b"w%03d" % i, b"v%d" % i), Delete(b"w%03d" % (i - 1))])
    os.kill(pid, signal.SIGKILL)
    assert store._front is not None and await store._front.drain(20)
    assert store.describe()["writer_pid"] != pid
    await store.close()
    plain = SqliteStore(tmp_path / "j.db")  # what the database itself holds
    await plain.open()
    assert await plain.scan(b"w", b"x", limit=100) == [(b"w049", b"v49")]
    await plain.close()


_keys = st.binary(min_size=1, max_size=2)


@settings(max_examples=300, deadline=None)
@given(
    db=st.dictionaries(_keys, st.binary(max_size=2), max_size=30),
    writes=st.lists(st.tuples(_keys, st.one_of(st.none(), st.binary(max_size=2))), max_size=30),
    bounds=st.tuples(_keys, _keys),
    limit=st.integers(1, 12),
    reverse=st.booleans(),
)
def test_merge_scan_matches_a_model(
    db: dict[bytes, bytes],
    writes: list[tuple[bytes, bytes | None]],
    bounds: tuple[bytes, bytes],
    limit: int,
    reverse: bool,
) -> None:
    start, end = sorted(bounds)
    overlay = Overlay()
    model: dict[bytes, bytes | None] = dict(db)
    for tick, (key, value) in enumerate(writes):
        overlay.set(key, value, tick)
        model[key] = value
    laid = overlay.in_range(start, end)
    fetch = limit + len(laid)
    rows = sorted((kv for kv in db.items() if start <= kv[0] < end), reverse=reverse)[:fetch]
    got = merge_scan(rows, laid, limit, reverse, complete=len(rows) < fetch)
    expected = sorted(((k, v) for k, v in model.items() if v is not None and start <= k < end), reverse=reverse)
    assert got == expected[:limit]


_partitions = st.sampled_from([b"I" + bytes(16), b"I" + b"\x01" * 16, b"C" + b"\xff" * 16])
_long_keys = st.builds(lambda p, s: p + s, _partitions, st.binary(max_size=2))


@settings(max_examples=300, deadline=None)
@given(
    writes=st.lists(st.tuples(_long_keys, st.one_of(st.none(), st.binary(max_size=2)), st.booleans()), max_size=40),
    bounds=st.one_of(
        st.builds(lambda p, a, b: (p + a, p + b), _partitions, st.binary(max_size=2), st.binary(max_size=2)),
        st.tuples(_long_keys, _long_keys),
    ),
)
def test_overlay_ranges_within_and_across_partitions_match_a_model(
    writes: list[tuple[bytes, bytes | None, bool]], bounds: tuple[bytes, bytes]
) -> None:
    overlay = Overlay()
    model: dict[bytes, tuple[bytes | None, int]] = {}
    for tick, (key, value, commit_earlier) in enumerate(writes):
        if commit_earlier and model:  # the writer committed everything up to the last tick
            overlay.drop(list(model), tick - 1)
            model = {k: e for k, e in model.items() if e[1] > tick - 1}
        overlay.set(key, value, tick)
        model[key] = (value, tick)
    start, end = sorted(bounds)
    assert overlay.in_range(start, end) == sorted((k, e[0]) for k, e in model.items() if start <= k < end)
    assert len(overlay) == len(model)


# ---- review findings: each failed before its fix --------------------------------------------


async def test_reads_during_close_see_acknowledged_writes_and_new_writes_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "_STOP_TIMEOUT", 0.5)  # the drain gives up: the journal stays
    store, pid = await stopped_writer_store(tmp_path)
    os.kill(pid, signal.SIGSTOP)
    try:
        await store.write([Put(b"k", b"old")])
        closing = asyncio.ensure_future(store.close())
        await asyncio.sleep(0.05)
        assert not closing.done()
        assert await store.get(b"k") == b"old" and await store.scan(b"", b"\xff", limit=9) == [(b"k", b"old")]
        with pytest.raises(StoreUnavailable, match="closing"):
            await store.write([Delete(b"k")])  # not taken: a replay could not undo it
    finally:
        os.kill(pid, signal.SIGCONT)
    await asyncio.wait_for(closing, 40)
    reopened = SqliteStore(tmp_path / "j.db", writer="journal")
    await reopened.open()
    assert await reopened.get(b"k") == b"old"
    await reopened.close()


async def test_a_write_waiting_for_room_at_close_is_refused_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journaled, "MAX_UNCOMMITTED_OPS", 1)
    store, pid = await stopped_writer_store(tmp_path)
    os.kill(pid, signal.SIGSTOP)
    await store.write([Put(b"a", b"1"), Put(b"b", b"2")])  # over the limit: later writes wait
    late = asyncio.ensure_future(store.write([Put(b"late", b"x")]))
    await asyncio.sleep(0.05)
    assert not late.done()
    closing = asyncio.ensure_future(store.close())
    with pytest.raises(StoreUnavailable, match="closing"):
        await asyncio.wait_for(late, 5)
    os.kill(pid, signal.SIGCONT)
    await asyncio.wait_for(closing, 40)


async def test_a_failed_journal_write_fails_the_whole_tick_without_a_false_key_exists(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "j.db", writer="journal")
    await store.open()
    assert store._front is not None
    journal = store._front.journal

    def disk_full(batches: object) -> int:
        raise OSError(28, "No space left on device")

    journal.append = disk_full  # type: ignore[method-assign]
    first, second = await asyncio.gather(
        store.write([Insert(b"id", b"1")]), store.write([Insert(b"id", b"2")]), return_exceptions=True
    )
    del journal.append
    assert isinstance(first, StoreUnavailable) and isinstance(second, StoreUnavailable)
    assert await store.get(b"id") is None
    await store.write([Insert(b"id", b"3")])  # the key was never taken
    await store.close()


async def test_a_read_error_in_the_insert_check_fails_the_tick_instead_of_hanging(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "j.db", writer="journal")
    await store.open()
    front = store._front
    assert front is not None

    def broken(keys: list[bytes]) -> set[bytes]:
        raise StoreUnavailable("sqlite read failed: disk I/O error")

    front._stored = broken  # type: ignore[method-assign]
    results = await asyncio.wait_for(
        asyncio.gather(store.write([Insert(b"i", b"1")]), store.write([Put(b"p", b"1")]), return_exceptions=True), 3
    )
    assert all(isinstance(r, StoreUnavailable) for r in results)
    await store.close()


async def test_a_batch_the_writer_could_never_commit_is_refused_before_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_process, "MAX_BATCH_BYTES", 1000)
    store = SqliteStore(tmp_path / "j.db", writer="journal")
    await store.open()
    with pytest.raises(StoreUnavailable, match="over 1000"):
        await store.write([Put(b"big", b"z" * 1200)])
    for key in (b"a", b"b", b"c"):  # each fits; together they are handed over in runs that fit
        await store.write([Put(key, b"y" * 600)])
    assert store._front is not None and await store._front.drain(10)
    await store.close()


async def test_a_journal_a_crash_left_replays_after_the_key_was_rotated(tmp_path: Path) -> None:
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    db = tmp_path / "store.db"
    helper = Path(__file__).with_name("journal_crash_once.py")
    out = subprocess.run([sys.executable, str(helper), str(db), old.hex()], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
    assert list(tmp_path.glob("store.db-journal.*"))
    ring = Keyring(new, version=2)
    ring.add_version(old, 1)  # the documented rotation: v2 in front of v1
    store = SealedStore(SqliteStore(db, writer="journal"), ring)
    await store.open()
    assert await store.get(b"msg") == b"hello"
    await store.close()


async def test_a_second_process_cannot_take_a_journal_in_use(tmp_path: Path) -> None:
    store, pid = await stopped_writer_store(tmp_path)
    os.kill(pid, signal.SIGSTOP)
    try:
        await store.write([Put(b"k", b"v")])  # in the journal, not committed
        for mode in ("journal", "process"):  # both would replay and delete the live journal
            other = SqliteStore(tmp_path / "j.db", writer=mode)  # type: ignore[arg-type]
            with pytest.raises(StoreUnavailable, match="open with its journal"):
                await other.open()
    finally:
        os.kill(pid, signal.SIGCONT)
    await store.close()


async def test_a_cancelled_write_whose_insert_conflicts_does_not_strand_its_tick(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "j.db", writer="journal")
    await store.open()
    await store.write([Put(b"k", b"old")])
    a = asyncio.ensure_future(store.write([Put(b"a", b"1")]))
    b = asyncio.ensure_future(store.write([Insert(b"k", b"new")]))
    asyncio.get_running_loop().call_soon(b.cancel)  # queued, then cancelled before the tick ends
    await asyncio.wait_for(asyncio.shield(a), 3)
    assert await store.get(b"a") == b"1"
    await store.close()
