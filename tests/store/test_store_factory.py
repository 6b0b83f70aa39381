"""open_store URLs."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from store import BadStoreUrl, Keyring, MemoryStore, SealedStore, SqliteStore, open_store
from store.postgres import PostgresStore


def test_sqlite_urls(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/a.db", None)
    assert isinstance(store, SqliteStore) and store.path == f"{tmp_path}/a.db"
    relative = open_store("sqlite://data/node.db", None)
    assert isinstance(relative, SqliteStore) and relative.path == "data/node.db"


def test_memory_and_postgres_urls() -> None:
    assert isinstance(open_store("memory://", None), MemoryStore)
    pg = open_store("postgresql://postgres@127.0.0.1:5432/test?table=t_x", None)
    assert isinstance(pg, PostgresStore) and pg.table == "t_x"
    assert isinstance(open_store("postgres:///test?host=/var/run/postgresql", None), PostgresStore)


def test_keyring_wraps_in_sealed_store() -> None:
    store = open_store("memory://", Keyring(secrets.token_bytes(32)))
    assert isinstance(store, SealedStore) and isinstance(store.inner, MemoryStore)
    assert store.describe()["sealed"] is True


@pytest.mark.parametrize(
    "url", ["", "mysql://x/y", "sqlite://", "sqlite:///", "sqlite:///a.db?mode=ro", "memory://x", "file:///a"]
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(BadStoreUrl):
        open_store(url, None)
