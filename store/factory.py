"""Build a RecordStore from a store URL.

    sqlite:///ABS/PATH        SQLite file at an absolute path
    sqlite://REL/PATH         SQLite file relative to the working directory
    memory://                 in memory (no-store mode, tests)
    postgresql://...          PostgreSQL via asyncpg (also postgres://); ``?table=NAME``
                              picks the table (default ``records``)

With a keyring the store is wrapped in ``SealedStore``. The caller calls ``open()``.
"""

from __future__ import annotations

from store.api import RecordStore
from store.crypto import Keyring
from store.errors import BadStoreUrl
from store.memory import MemoryStore
from store.sealed import SealedStore
from store.sqlite import SqliteStore

__all__ = ["open_store", "sqlite_path"]

_SQLITE = "sqlite://"


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite://`` URL (``sqlite:///abs`` or ``sqlite://relative``)."""
    path = url[len(_SQLITE) :]
    if not path or path == "/" or "?" in path or "#" in path:
        raise BadStoreUrl(f"bad sqlite URL {url!r}: want sqlite:///ABS/PATH or sqlite://REL/PATH")
    return path


def _backend(url: str) -> RecordStore:
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite" and url.startswith(_SQLITE):
        return SqliteStore(sqlite_path(url))
    if scheme == "memory" and url.rstrip("/") in ("memory:", "memory:/"):
        return MemoryStore()
    if scheme in ("postgresql", "postgres"):
        from store.postgres import PostgresStore  # asyncpg is an optional dependency

        return PostgresStore(url)
    raise BadStoreUrl(f"unsupported store URL {url!r} (sqlite://, memory://, postgresql://)")


def open_store(url: str, keyring: Keyring | None) -> RecordStore:
    """A store for ``url``, sealed when ``keyring`` is given; not yet opened.

    Raises:
        BadStoreUrl: unknown scheme or malformed URL.
    """
    store = _backend(url)
    return store if keyring is None else SealedStore(store, keyring)
