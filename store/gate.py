"""``WriteGate``: hold writes to a key range while it is rewritten in place.

``SealedStore`` passes every write through its gate (``enter``/``leave`` around the inner
write, ``admit`` first while a range is frozen). ``store.reseal`` uses it to rewrite a
single backend online, a page at a time:

1. ``freeze(start, end)``: writes touching ``[start, end)`` wait from now on, and the call
   returns once every write that started before it has finished;
2. the page is read, ``narrow(last_key + b"\\0")`` lets writes above it go on, the page is
   rewritten;
3. ``thaw()``: the waiting writes go on, after the rewrite.

So a write to a key of the page either finished before the page was read (the rewrite
keeps its value) or runs after the rewrite: none is overwritten. One range at a time.
The gate is per process: writes of other processes sharing the backend do not wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from store.epochs import InflightEpochs

__all__ = ["WriteGate"]


class WriteGate:
    """Writes touching the frozen range wait; ``freeze`` drains the writes already running."""

    def __init__(self) -> None:
        self.frozen: tuple[bytes, bytes] | None = None
        self._changed = asyncio.Event()
        self._writes = InflightEpochs()

    def enter(self) -> int:
        """A write starts; pass the result to ``leave``."""
        return self._writes.enter()

    def leave(self, epoch: int) -> None:
        """A write that started at ``epoch`` finished."""
        self._writes.leave(epoch)

    async def admit(self, keys: Iterable[bytes]) -> None:
        """Wait while any of ``keys`` lies in the frozen range."""
        keys = list(keys)
        while self.frozen is not None:
            start, end = self.frozen
            if not any(start <= key < end for key in keys):
                return
            changed = self._changed
            await changed.wait()

    async def freeze(self, start: bytes, end: bytes) -> None:
        """Hold writes to ``[start, end)``, then wait for the writes already running."""
        if self.frozen is not None:
            raise RuntimeError("a range is frozen already")
        self.frozen = (start, end)
        try:
            await self._writes.drain()
        except BaseException:  # cancelled (an admin request cut off): never stay frozen
            self.thaw()
            raise

    def narrow(self, end: bytes) -> None:
        """Shrink the frozen range to end at ``end``: writes above it go on."""
        if self.frozen is not None:
            self.frozen = (self.frozen[0], min(end, self.frozen[1]))
            self._signal()

    def thaw(self) -> None:
        """Release the frozen range."""
        self.frozen = None
        self._signal()

    def _signal(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()  # its waiters re-check the range
