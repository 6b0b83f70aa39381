"""A short-lived cache of lookup results at the asking node (issue 4, item 4).

``DhtProtocol.get(key, now)`` answers from here while an entry is younger than ``ttl``;
``get(key, now, fresh=True)`` bypasses it (and replaces the entry when the new lookup
completes). The cache is bounded (LRU) and reads no clock: every call takes ``now``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["LookupCache"]

T = TypeVar("T")


class LookupCache(Generic[T]):
    """Results by key, each valid until ``stored_at + ttl``; at most ``max_entries`` kept."""

    def __init__(self, ttl: float, max_entries: int = 1024) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._items: OrderedDict[bytes, tuple[float, T]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: bytes, now: float) -> T | None:
        """The cached result for ``key`` if it has not expired at ``now``."""
        item = self._items.get(key)
        if item is None or item[0] <= now:
            if item is not None:
                del self._items[key]
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item[1]

    def put(self, key: bytes, value: T, now: float) -> None:
        if self.ttl <= 0:
            return
        self._items[key] = (now + self.ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def invalidate(self, key: bytes) -> None:
        """Forget ``key`` (for example after a delivery found the user gone)."""
        self._items.pop(key, None)
