"""Fixtures for the store tests: one behavioural suite over every backend.

PostgreSQL tests get their own random table (``?table=``) and drop it; see ``store_helpers``
for the DSN and the skip / fail-under-CI rule.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from store_helpers import PG_DSN, drop_pg_table, require_pg, with_table

from store import Keyring, MemoryStore, RecordStore, SealedStore, SqliteStore
from store.factory import open_raw
from store.postgres import PostgresStore
from store.sharded import ShardedStore, create_shards

BACKENDS = [
    "memory", "memory-sealed", "sqlite", "sqlite-sealed", "sqlite-process", "sqlite-process-sealed", "sqlite-journal",
    "sqlite-journal-sealed", "postgres",
    "postgres-sealed",
    "sharded", "sharded-sealed",
]  # fmt: skip

StoreFactory = Callable[[], RecordStore]


@pytest.fixture
async def pg_table_dsn() -> AsyncIterator[str]:
    """A DSN naming a fresh table, dropped afterwards."""
    require_pg()
    table = f"t_{secrets.token_hex(8)}"
    yield with_table(PG_DSN, table)
    await drop_pg_table(PG_DSN, table)


def mixed_shard_urls(tmp_path: Path, table: str) -> list[str]:
    """Three shards: two SQLite files (the first is the root) and one PostgreSQL table."""
    return [f"sqlite://{tmp_path}/shard0.db", f"sqlite://{tmp_path}/shard1.db", with_table(PG_DSN, table)]


@pytest.fixture
def keyring() -> Keyring:
    return Keyring(secrets.token_bytes(32))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name.startswith(("postgres", "sharded")):
        require_pg()
    return name


@pytest.fixture
async def make_store(backend: str, tmp_path: Path, keyring: Keyring) -> AsyncIterator[StoreFactory]:
    """Builds (unopened) stores over the same storage; reopening sees earlier writes."""
    table = f"t_{secrets.token_hex(8)}"
    memory = MemoryStore()
    shard_urls = mixed_shard_urls(tmp_path, table)
    if backend.startswith("sharded"):
        await create_shards(shard_urls, open_raw)

    def build() -> RecordStore:
        inner: RecordStore
        if backend.startswith("memory"):
            inner = memory
        elif backend.startswith("sharded"):
            inner = ShardedStore(shard_urls[0], open_raw)
        elif backend.startswith("sqlite"):
            mode = "process" if "process" in backend else "journal" if "journal" in backend else "inline"
            inner = SqliteStore(tmp_path / "store.db", writer=mode)
        else:
            inner = PostgresStore(PG_DSN, table=table)
        return SealedStore(inner, keyring) if backend.endswith("-sealed") else inner

    yield build
    if backend.startswith(("postgres", "sharded")):
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
