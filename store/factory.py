"""Build a RecordStore from a store URL.

    sqlite:///ABS/PATH        SQLite file at an absolute path (``?writer=inline`` commits on
                              the event loop instead of in a writer process; ``?writer=journal``
                              acknowledges from a journal, ``store.sqlite_journaled``)
    sqlite://REL/PATH         SQLite file relative to the working directory
    memory://                 in memory (no-store mode, tests)
    postgresql://...          PostgreSQL via asyncpg (also postgres://); ``?table=NAME``
                              picks the table (default ``records``)
    shards:///ABS/shards.json a ShardedStore whose root shard that file names
                              (``{"root": URL, ...}``, see ``store.sharded``)

With a keyring the store is wrapped in ``SealedStore``. The caller calls ``open()``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import cast
from urllib.parse import parse_qsl

from store.api import RecordStore
from store.crypto import Keyring
from store.errors import BadStoreUrl
from store.memory import MemoryStore
from store.sealed import SealedStore
from store.sqlite import SqliteStore, WriterMode

__all__ = ["open_store", "open_raw", "sqlite_path", "SHARDS_SCHEME", "read_shards_file", "write_shards_file"]

_SQLITE = "sqlite://"
SHARDS_SCHEME = "shards://"


def read_shards_file(path: str | os.PathLike[str]) -> str:
    """The root shard URL that a ``shards.json`` names."""
    try:
        root = json.loads(Path(path).read_text())["root"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadStoreUrl(f"cannot read shard file {os.fspath(path)!r}: {exc}") from exc
    if not isinstance(root, str) or root.startswith(SHARDS_SCHEME):
        raise BadStoreUrl(f"shard file {os.fspath(path)!r} names no root store URL")
    return root


def write_shards_file(path: str | os.PathLike[str], root_url: str) -> None:
    """Create ``shards.json`` naming ``root_url`` (the store adds the map cache on open)."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps({"root": root_url}) + "\n")
    tmp.replace(target)


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite://`` URL (``sqlite:///abs`` or ``sqlite://relative``)."""
    return _sqlite_parts(url)[0]


def _sqlite_parts(url: str) -> tuple[str, WriterMode]:
    """Path and writer of ``sqlite://PATH[?writer=process|inline|journal]``."""
    path, _, query = url[len(_SQLITE) :].partition("?")
    if not path or path == "/" or "#" in url:
        raise BadStoreUrl(f"bad sqlite URL {url!r}: want sqlite:///ABS/PATH or sqlite://REL/PATH")
    writer = "process"
    for name, value in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
        if name != "writer" or value not in ("process", "inline", "journal"):
            raise BadStoreUrl(f"bad sqlite URL {url!r}: the only option is writer=process|inline|journal")
        writer = value
    return path, cast(WriterMode, writer)


def open_raw(url: str) -> RecordStore:
    """An unsealed, unopened backend for a plain (not ``shards://``) URL."""
    return _backend(url)


def _backend(url: str) -> RecordStore:
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite" and url.startswith(_SQLITE):
        path, writer = _sqlite_parts(url)
        return SqliteStore(path, writer=writer)
    if scheme == "memory" and url.rstrip("/") in ("memory:", "memory:/"):
        return MemoryStore()
    if scheme in ("postgresql", "postgres"):
        from store.postgres import PostgresStore  # asyncpg is an optional dependency

        return PostgresStore(url)
    if url.startswith(SHARDS_SCHEME):
        from store.sharded import ShardedStore

        path = url[len(SHARDS_SCHEME) :]
        root = read_shards_file(path)
        if root.startswith(SHARDS_SCHEME):
            raise BadStoreUrl("a shard cannot itself be sharded")
        return ShardedStore(root, _plain_backend, cache_path=path)
    raise BadStoreUrl(f"unsupported store URL {url!r} (sqlite://, memory://, postgresql://, shards://)")


def _plain_backend(url: str) -> RecordStore:
    if url.startswith(SHARDS_SCHEME):
        raise BadStoreUrl("a shard cannot itself be sharded")
    return _backend(url)


def open_store(url: str, keyring: Keyring | None) -> RecordStore:
    """A store for ``url``, sealed when ``keyring`` is given; not yet opened.

    Raises:
        BadStoreUrl: unknown scheme or malformed URL.
    """
    store = _backend(url)
    return store if keyring is None else SealedStore(store, keyring)
