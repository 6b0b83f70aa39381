"""The record store API used by every layer above ``store/``.

A store maps ordered byte keys to byte values. Writes are batches of operations that
apply atomically and are durable (survive ``kill -9`` of the process) when ``write()``
returns; concurrent ``write()`` calls are coalesced into one transaction by the backend
(group commit), each batch still atomic on its own. Reads see every write that returned.

Backends: ``sqlite:///PATH`` (embedded default), ``memory://`` (no-store mode and tests),
``postgresql://...`` (asyncpg). ``store.open_store(url, ...)`` builds one from a URL.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Put", "Insert", "Delete", "Op", "RecordStore", "prefix_end"]


@dataclass(frozen=True, slots=True)
class Put:
    """Set ``key`` to ``value`` (insert or overwrite)."""

    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class Insert:
    """Set ``key`` to ``value`` only if absent; otherwise the whole batch fails with KeyExists."""

    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove ``key`` (no error when absent)."""

    key: bytes


Op = Put | Insert | Delete


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key that starts with ``prefix``."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\xff" * (len(prefix) + 64)
    return stripped[:-1] + bytes([stripped[-1] + 1])


class RecordStore(ABC):
    """An ordered key-value store with atomic, durable, group-committed batches."""

    #: short backend name for status and metrics ("sqlite", "postgresql", "memory")
    backend: str = "abstract"

    @abstractmethod
    async def open(self) -> None:
        """Connect, create or migrate the schema. Idempotent."""

    @abstractmethod
    async def close(self) -> None:
        """Flush pending writes and release resources."""

    @abstractmethod
    async def get(self, key: bytes) -> bytes | None:
        """The value of ``key``, or None."""

    @abstractmethod
    async def get_many(self, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        """The values of those ``keys`` that exist."""

    @abstractmethod
    async def scan(
        self, start: bytes, end: bytes, *, limit: int, reverse: bool = False
    ) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` pairs with ``start <= key < end``, ascending (descending if reverse)."""

    @abstractmethod
    async def write(self, ops: Sequence[Op]) -> None:
        """Apply ``ops`` atomically and durably.

        Raises:
            KeyExists: an ``Insert`` found its key present; nothing of this batch applied.
            StoreUnavailable: the backend failed; nothing of this batch may be assumed applied.
        """

    @abstractmethod
    async def claim_meta(self, name: str, value: str) -> str:
        """Record ``value`` under ``name`` in the backend's metadata unless a value is there
        already, and return the value held (``value`` or the earlier one). Metadata lives
        beside the records (the schema version's table), never in a scan; a durable backend
        keeps it durably. ``store.keycheck`` records the data key's fingerprints so."""

    def describe(self) -> dict[str, Any]:
        """Backend facts for status pages (never secrets)."""
        return {"backend": self.backend}

    def sealing_writer(
        self, sealing: Any, unsealing: Sequence[Any] = ()
    ) -> Callable[[Sequence[Op]], Awaitable[None]] | None:
        """A ``write`` that seals every value in this backend's own writer with ``sealing`` (a
        ``store.crypto.SealingKey``), or None, and ``SealedStore`` seals before writing. The
        SQLite writer process offers one: sealing then costs the event loop nothing. The
        caller passes ops already checked (``store.batch.check_ops``), as ``SealedStore`` does.
        ``unsealing``: every key version's ``SealingKey``, for what the store sealed earlier
        under an older version (the SQLite journal, ``store.journal``)."""
        return None
