"""timnode's record store: ordered byte keys to byte values, in atomic, durable batches.

The package owns the store API (``RecordStore``, ``Put``/``Insert``/``Delete``), its
backends (SQLite embedded default, PostgreSQL via asyncpg, memory for no-store mode and
tests), group commit, and encryption at rest (``Keyring``, ``SealedStore``). It imports no
other timnode layer. ``ShardedStore`` spreads records over several backends by a slot map
and rebalances online (``store.rebalance``). See ``store/README.md``.
"""

from __future__ import annotations

from store.api import Delete, Insert, Op, Put, RecordStore, prefix_end
from store.crypto import Keyring, keyring_from_spec, load_or_create_data_key, parse_data_key
from store.errors import BadDataKey, BadStoreUrl, KeyExists, MapConflict, SealError, StoreError, StoreUnavailable
from store.factory import open_store
from store.memory import MemoryStore
from store.sealed import SealedStore
from store.sharded import ShardedStore
from store.shardmap import SLOT_COUNT, ShardMap, partition_of, slot_of
from store.sqlite import SqliteStore

__all__ = [
    "RecordStore",
    "Put",
    "Insert",
    "Delete",
    "Op",
    "prefix_end",
    "open_store",
    "Keyring",
    "load_or_create_data_key",
    "parse_data_key",
    "keyring_from_spec",
    "ShardedStore",
    "ShardMap",
    "SLOT_COUNT",
    "partition_of",
    "slot_of",
    "SealedStore",
    "MemoryStore",
    "SqliteStore",
    "StoreError",
    "KeyExists",
    "StoreUnavailable",
    "MapConflict",
    "SealError",
    "BadStoreUrl",
    "BadDataKey",
]
