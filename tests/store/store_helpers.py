"""Helpers for the store tests: PostgreSQL reachability and tables, the SIGKILL crash run,
in-process writers racing a rebalance.

PostgreSQL: DSN from ``TIMNODE_TEST_PG_DSN`` (default a local trust-auth server). An
unreachable server skips the PostgreSQL tests, except under ``CI`` where it fails them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest

from store import Keyring, Put, RecordStore, open_store
from store.postgres import split_table
from store.shardmap import slot_of

HELPER = Path(__file__).with_name("crash_writer.py")
REPO = Path(__file__).resolve().parents[2]
PG_DSN = os.environ.get("TIMNODE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
PG_SOCKET_DSN = "postgresql:///test?host=/var/run/postgresql&user=postgres"

_pg_reachable: dict[str, str | None] = {}


async def _probe(dsn: str) -> str | None:
    try:
        conn = await asyncpg.connect(split_table(dsn)[0], timeout=5)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        return f"PostgreSQL at {dsn} unreachable: {exc!r}"
    await conn.close()
    return None


def require_pg(dsn: str = PG_DSN) -> None:
    """Skip (fail under CI) when the PostgreSQL server at ``dsn`` cannot be reached."""
    if dsn not in _pg_reachable:
        with ThreadPoolExecutor(1) as pool:  # works with or without a running event loop
            _pg_reachable[dsn] = pool.submit(asyncio.run, _probe(dsn)).result()
    reason = _pg_reachable[dsn]
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(reason)
    print(reason)
    pytest.skip(reason)


async def drop_pg_table(dsn: str, table: str) -> None:
    conn = await asyncpg.connect(split_table(dsn)[0])
    try:
        await conn.execute(f'DROP TABLE IF EXISTS "{table}", "{table}_meta"')
    finally:
        await conn.close()


def with_table(dsn: str, table: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}table={table}"


class ShardUrls:
    """Shard URLs for one test: SQLite files under ``directory``, or fresh PostgreSQL tables
    (``postgres``; ``drop()`` removes the ones handed out)."""

    def __init__(self, backend: str, directory: Path) -> None:
        if backend == "postgres":
            require_pg()
        self.backend = backend
        self.directory = directory
        self.prefix = f"t_{secrets.token_hex(6)}"
        self.used: set[int] = set()

    def __call__(self, i: int) -> str:
        self.used.add(i)
        if self.backend == "sqlite":
            return f"sqlite://{self.directory}/s{i}.db"
        return with_table(PG_DSN, f"{self.prefix}_s{i}")

    async def drop(self) -> None:
        if self.backend == "postgres":
            for i in sorted(self.used):
                await drop_pg_table(PG_DSN, f"{self.prefix}_s{i}")


def run_and_kill(
    url: str, data_key: bytes, acks_before_kill: int = 3000, helper: Path = HELPER
) -> list[tuple[int, int]]:
    """Start the writer, SIGKILL it after ``acks_before_kill`` acks; every acked (writer, seq)."""
    proc = subprocess.Popen(
        [sys.executable, str(helper), url, data_key.hex()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[bytes] = []
    try:
        while len(lines) < acks_before_kill + 1:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"writer exited early: {proc.stderr.read().decode()[-2000:]}")
            lines.append(line)
        os.kill(proc.pid, signal.SIGKILL)
        lines.extend(proc.stdout.read().splitlines(keepends=True))
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert lines[0] == b"ready\n"
    return [_parse(line) for line in lines[1:] if line.endswith(b"\n")]


def _parse(line: bytes) -> tuple[int, int]:
    wid, seq = line.split()
    return int(wid), int(seq)


async def assert_all_present(url: str, data_key: bytes, acked: list[tuple[int, int]]) -> None:
    """Reopen ``url`` and check every key of every acked batch."""
    store: RecordStore = open_store(url, Keyring(data_key))
    await store.open()
    try:
        keys = [b"crash/%03d/%08d/%d" % (w, s, i) for w, s in acked for i in range(4)]
        found = await store.get_many(keys)
        missing = [k for k in keys if k not in found]
        assert not missing, f"{len(missing)} acknowledged keys lost, e.g. {missing[:3]}"
    finally:
        await store.close()


class Writers:
    """In-process writers: each writes ``Put(key, key)`` with ``key = tag + counter (4 bytes)``
    padded to 17 bytes (one partition per key), one batch at a time, until ``stop()``;
    ``written`` holds every acknowledged key."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, store: RecordStore, tag: bytes) -> None:
        self._tasks.append(asyncio.create_task(self._write(store, tag)))

    async def _write(self, store: RecordStore, tag: bytes) -> None:
        n = 0
        while not self._stop.is_set():
            key = tag + n.to_bytes(4, "big") + bytes(13)
            await store.write([Put(key, key)])
            self.written.append(key)
            n += 1
            await asyncio.sleep(0)

    async def stop(self) -> None:
        """Stop every writer and wait for it (its error, if any, is raised here)."""
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def slots(self) -> int:
        """How many slots the written keys fall into."""
        return len({slot_of(k) for k in self.written})

    async def assert_none_lost(self, store: RecordStore) -> None:
        """Every written key is readable through ``store``."""
        found = await store.get_many(self.written)
        assert len(found) == len(self.written), f"{len(self.written) - len(found)} writes lost"
