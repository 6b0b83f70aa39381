"""The cleanup of finished cross-shard batches (see ``store.sharded``).

Once every shard of a cross-shard batch applied its part, the batch's intent (on the anchor
shard) and markers (on the others) are garbage. ``IntentCleaner`` deletes them in bulk in
one background task: intents first (a marker without its intent is harmless, an intent
without its markers would be replayed), then markers. A failed cleanup leaves them for
``ShardedStore.recover()``, which rolls intents forward idempotently; until then
``broken`` holds the error, and no slot may move (an intent could be replayed onto a slot's
new owner).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from store.api import Delete, Op, RecordStore
from store.errors import StoreError, StoreUnavailable
from store.shardkeys import APPLIED_PREFIX, INTENT_PREFIX

__all__ = ["IntentCleaner"]

log = logging.getLogger(__name__)


class IntentCleaner:
    """Deletes the intents and markers of finished cross-shard batches, in bulk."""

    def __init__(self, shard: Callable[[int], RecordStore]) -> None:
        self._shard = shard
        self._queue: list[tuple[int, bytes, list[int]]] = []
        self._task: asyncio.Task[None] | None = None
        self._queued = 0
        self._done = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.broken: StoreUnavailable | None = None

    def queue(self, anchor: int, txid: bytes, targets: list[int]) -> None:
        """Batch ``txid`` is applied everywhere: delete its intent on ``anchor``, markers on ``targets``."""
        self._queue.append((anchor, txid, targets))
        self._queued += 1
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._clean())

    async def flush(self, quiet: bool = False) -> None:
        """Wait until the intents and markers queued before this call are deleted.

        Under continuous load the cleaner never idles; this waits only for what was queued.

        Raises:
            StoreUnavailable: the cleanup failed (unless ``quiet``).
        """
        target = self._queued
        if self._done >= target:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._clean())
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        try:
            await future
        except StoreError:
            if not quiet:
                raise

    async def _clean(self) -> None:
        batch: list[tuple[int, bytes, list[int]]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                intents: dict[int, list[Op]] = {}
                markers: dict[int, list[Op]] = {}
                for anchor, txid, targets in batch:
                    intents.setdefault(anchor, []).append(Delete(INTENT_PREFIX + txid))
                    for sid in targets:
                        markers.setdefault(sid, []).append(Delete(APPLIED_PREFIX + txid))
                await asyncio.gather(*(self._shard(sid).write(ops) for sid, ops in intents.items()))
                await asyncio.gather(*(self._shard(sid).write(ops) for sid, ops in markers.items()))
                self._done += len(batch)
                self._wake(None)
        except Exception as exc:  # leftovers are rolled forward (idempotently) by recover()
            log.warning("= cross-shard cleanup failed: %s", exc)
            self._done += len(batch)
            self.broken = StoreUnavailable(f"cross-shard cleanup failed: {exc}")
            self._wake(self.broken)

    def _wake(self, exc: Exception | None) -> None:
        waiting = []
        for target, future in self._waiters:
            if future.done():
                continue
            if exc is not None:
                future.set_exception(exc)
            elif self._done >= target:
                future.set_result(None)
            else:
                waiting.append((target, future))
        self._waiters = waiting
