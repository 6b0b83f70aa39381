"""``InflightEpochs``: count operations in flight per epoch; wait for those started before a point.

An operation calls ``enter()`` when it starts and ``leave(epoch)`` with the result when it
ends. ``drain()`` starts a new epoch and returns once every operation that entered before
it has left; operations entering meanwhile are not waited for. ``WriteGate`` (writes of a
``SealedStore``) and ``ShardedStore`` (its reads and writes) drain this way before they
rewrite or move data. Loop-bound: not thread-safe.
"""

from __future__ import annotations

import asyncio

__all__ = ["InflightEpochs"]


class InflightEpochs:
    """Operations in flight per epoch, and the drains waiting for older epochs to empty."""

    def __init__(self) -> None:
        self._epoch = 0
        self._running: dict[int, int] = {}
        self._drains: list[tuple[int, asyncio.Future[None]]] = []

    def enter(self) -> int:
        """An operation starts; pass the result to ``leave``."""
        epoch = self._epoch
        self._running[epoch] = self._running.get(epoch, 0) + 1
        return epoch

    def leave(self, epoch: int) -> None:
        """An operation that started at ``epoch`` finished."""
        left = self._running[epoch] - 1
        if left:
            self._running[epoch] = left
            return
        del self._running[epoch]
        if self._drains:
            self._wake()

    async def drain(self) -> None:
        """Wait for every operation that started before this call."""
        limit = self._epoch
        self._epoch += 1
        if any(epoch <= limit for epoch in self._running):
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._drains.append((limit, future))
            await future

    def _wake(self) -> None:
        oldest = min(self._running, default=None)
        waiting = []
        for limit, future in self._drains:
            if oldest is None or oldest > limit:
                if not future.done():
                    future.set_result(None)
            else:
                waiting.append((limit, future))
        self._drains = waiting
