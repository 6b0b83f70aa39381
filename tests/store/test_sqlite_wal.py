"""WAL upkeep (``store.sqlite_wal``): under a steady stream of writes, with readers reading
meanwhile, the WAL is restarted again and again instead of growing with everything written;
and every acknowledged write is still there after the store is reopened."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from store import Put, SqliteStore
from store.sqlite_wal import CHECKPOINT_ROWS

ROWS = 15 * CHECKPOINT_ROWS
BATCH = 40
VALUE = os.urandom(400)


def wal_bytes(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


async def write_steadily(store: SqliteStore, path: Path) -> tuple[int, int]:
    """Write ROWS rows in batches, 8 batches in flight, reading between rounds; returns
    (largest WAL seen, bytes written)."""
    largest = 0
    written = 0
    for round_start in range(0, ROWS, BATCH * 8):
        batches = [
            [Put(b"k%09d" % (start + i), VALUE) for i in range(BATCH)]
            for start in range(round_start, min(ROWS, round_start + BATCH * 8), BATCH)
        ]
        await asyncio.gather(*(store.write(ops) for ops in batches))
        written += sum(len(ops) for ops in batches) * len(VALUE)
        assert await store.get(b"k%09d" % round_start) == VALUE  # a reader in the WAL meanwhile
        largest = max(largest, wal_bytes(path))
    return largest, written


@pytest.mark.parametrize("writer", ["process", "inline"])
async def test_wal_stays_short_under_steady_writes(tmp_path: Path, writer: str) -> None:
    path = tmp_path / "wal.db"
    store = SqliteStore(path, writer=writer)  # type: ignore[arg-type]
    await store.open()
    try:
        largest, written = await write_steadily(store, path)
    finally:
        await store.close()
    print(f"{writer}: wrote {written >> 20} MiB, largest WAL {largest >> 20} MiB")
    # everything written goes through the WAL; without restarts the WAL holds all of it
    assert written > 20 << 20
    assert largest < written / 4
    reopened = SqliteStore(path)
    await reopened.open()
    try:
        rows = await reopened.scan(b"k", b"l", limit=ROWS + 1)
    finally:
        await reopened.close()
    assert len(rows) == ROWS
    assert all(value == VALUE for _, value in rows)
