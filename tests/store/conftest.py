"""Fixtures for the store tests: one behavioural suite over every backend.

PostgreSQL: DSN from ``TIMNODE_TEST_PG_DSN`` (default a local trust-auth server). Each test
gets its own random table (``?table=``) and drops it. An unreachable server skips the
PostgreSQL tests, except under ``CI`` where it fails them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest

from store import Keyring, MemoryStore, RecordStore, SealedStore, SqliteStore
from store.postgres import PostgresStore, split_table

PG_DSN = os.environ.get("TIMNODE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
PG_SOCKET_DSN = "postgresql:///test?host=/var/run/postgresql&user=postgres"
BACKENDS = ["memory", "memory-sealed", "sqlite", "sqlite-sealed", "postgres", "postgres-sealed"]

_pg_reachable: dict[str, str | None] = {}

StoreFactory = Callable[[], RecordStore]


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


def _with_table(dsn: str, table: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}table={table}"


@pytest.fixture
async def pg_table_dsn() -> AsyncIterator[str]:
    """A DSN naming a fresh table, dropped afterwards."""
    require_pg()
    table = f"t_{secrets.token_hex(8)}"
    yield _with_table(PG_DSN, table)
    await drop_pg_table(PG_DSN, table)


@pytest.fixture
def keyring() -> Keyring:
    return Keyring(secrets.token_bytes(32))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name.startswith("postgres"):
        require_pg()
    return name


@pytest.fixture
async def make_store(
    backend: str, tmp_path: Path, keyring: Keyring
) -> AsyncIterator[StoreFactory]:
    """Builds (unopened) stores over the same storage; reopening sees earlier writes."""
    table = f"t_{secrets.token_hex(8)}"
    memory = MemoryStore()

    def build() -> RecordStore:
        inner: RecordStore
        if backend.startswith("memory"):
            inner = memory
        elif backend.startswith("sqlite"):
            inner = SqliteStore(tmp_path / "store.db")
        else:
            inner = PostgresStore(PG_DSN, table=table)
        return SealedStore(inner, keyring) if backend.endswith("-sealed") else inner

    yield build
    if backend.startswith("postgres"):
        await drop_pg_table(PG_DSN, table)


@pytest.fixture
async def store(make_store: StoreFactory) -> AsyncIterator[RecordStore]:
    """An opened store of each backend, closed afterwards."""
    opened = make_store()
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
def durable(backend: str) -> Iterator[None]:
    """Skip for backends that do not persist across instances."""
    if backend.startswith("memory"):
        pytest.skip("memory store is not durable")
    yield
