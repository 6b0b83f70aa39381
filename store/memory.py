"""An in-memory RecordStore: no-store (relay-only) mode and fast tests.

Keys are kept sorted in a list (``bisect``) beside a dict of values. Nothing is durable;
the contents live as long as the object, across ``close()``/``open()``.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from store.api import Op, RecordStore
from store.batch import check_ops, check_scan, plan_group
from store.errors import StoreUnavailable

__all__ = ["MemoryStore"]


class MemoryStore(RecordStore):
    """Ordered keys in memory with the same batch semantics as the durable backends."""

    backend = "memory"

    def __init__(self) -> None:
        self._keys: list[bytes] = []
        self._values: dict[bytes, bytes] = {}
        self._meta: dict[str, str] = {}
        self._open = False

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    async def get(self, key: bytes) -> bytes | None:
        self._check_open()
        return self._values.get(key)

    async def get_many(self, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        self._check_open()
        values = self._values
        return {k: values[k] for k in keys if k in values}

    async def scan(self, start: bytes, end: bytes, *, limit: int, reverse: bool = False) -> list[tuple[bytes, bytes]]:
        self._check_open()
        if not check_scan(start, end, limit):
            return []
        lo = bisect.bisect_left(self._keys, start)
        hi = bisect.bisect_left(self._keys, end, lo)
        keys = self._keys[max(lo, hi - limit) : hi][::-1] if reverse else self._keys[lo : min(hi, lo + limit)]
        return [(k, self._values[k]) for k in keys]

    async def claim_meta(self, name: str, value: str) -> str:
        self._check_open()
        return self._meta.setdefault(name, value)

    async def write(self, ops: Sequence[Op]) -> None:
        self._check_open()
        plan = plan_group([check_ops(ops)], self._values.__contains__)
        if plan.outcomes[0] is not None:
            raise plan.outcomes[0]
        for key, value in plan.final.items():
            self._set(key, value)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "records": len(self._values)}

    def _set(self, key: bytes, value: bytes | None) -> None:
        if value is None:
            if self._values.pop(key, None) is not None:
                del self._keys[bisect.bisect_left(self._keys, key)]
            return
        if key not in self._values:
            bisect.insort(self._keys, key)
        self._values[key] = value

    def _check_open(self) -> None:
        if not self._open:
            raise StoreUnavailable("memory store is not open")
