"""A RecordStore wrapper that times every call into a Prometheus histogram by backend and op.

Lives in the composition root so that ``store/`` stays free of metrics plumbing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from im.metrics import LATENCY_BUCKETS
from node.metrics import MetricSet
from store.api import Op, RecordStore

__all__ = ["MeteredStore"]


class MeteredStore(RecordStore):
    """Delegates to ``inner``; observes ``timnode_store_operation_duration_seconds{backend,op}``."""

    def __init__(self, inner: RecordStore, registry: CollectorRegistry) -> None:
        self.inner = inner
        self.backend = inner.backend
        metrics = MetricSet(registry)
        seconds = metrics.histogram(
            "timnode_store_operation_duration_seconds",
            "Store call latency (a write includes waiting for its group commit)",
            LATENCY_BUCKETS,
            ["backend", "op"],
        )
        failures = metrics.counter("timnode_store_errors_total", "Store calls that raised", ["backend", "op"])
        ops = ("get", "get_many", "scan", "write")
        self._seconds = {op: seconds(self.backend, op) for op in ops}
        self._failures = {op: failures(self.backend, op) for op in ops}

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def claim_meta(self, name: str, value: str) -> str:
        return await self.inner.claim_meta(name, value)

    async def get(self, key: bytes) -> bytes | None:
        started = time.perf_counter()
        try:
            return await self.inner.get(key)
        except Exception:
            self._failures["get"].inc()
            raise
        finally:
            self._seconds["get"].observe(time.perf_counter() - started)

    async def get_many(self, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        started = time.perf_counter()
        try:
            return await self.inner.get_many(keys)
        except Exception:
            self._failures["get_many"].inc()
            raise
        finally:
            self._seconds["get_many"].observe(time.perf_counter() - started)

    async def scan(self, start: bytes, end: bytes, *, limit: int, reverse: bool = False) -> list[tuple[bytes, bytes]]:
        started = time.perf_counter()
        try:
            return await self.inner.scan(start, end, limit=limit, reverse=reverse)
        except Exception:
            self._failures["scan"].inc()
            raise
        finally:
            self._seconds["scan"].observe(time.perf_counter() - started)

    async def write(self, ops: Sequence[Op]) -> None:
        started = time.perf_counter()
        try:
            await self.inner.write(ops)
        except Exception:
            self._failures["write"].inc()
            raise
        finally:
            self._seconds["write"].observe(time.perf_counter() - started)

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()
