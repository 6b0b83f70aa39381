"""``RecentMap``: the newest entries of an unbounded stream, FIFO-bounded, with no pause.

The messenger remembers every recent send (idempotent retries, ``im/messaging.py``) and the
parties of every recent message (delivery acks), one insert per message. An
``OrderedDict`` that forgets its oldest entry past a limit of 200,000 pauses now and then:
the deleted slots pile up in the dict under it until it compacts, and each compaction also
rebuilds the ``OrderedDict``'s own node index, all of it in one call. Measured on the
reference box: 17 ms for that one insert in a bare loop, and 50-100 ms in a loaded node (the
new tables are fresh pages the kernel zeroes), during which the event loop serves nobody;
it came every ~20 s at 8,000 sends/s and was the largest part of the benchmark's paced p99.

``RecentMap`` spreads the entries over ``shards`` small ``OrderedDict``s by key hash, each
FIFO-bounded on its own, so a compaction touches 1/``shards`` of the entries. The shards
are unequal: shard ``i`` takes a share of the keys between 0.5 and 1.5 times the mean, and
holds the same share of ``limit``. Equal shards, filled at one rate by an even hash, would
grow and compact within a few inserts of each other, which is the one long pause again in
pieces; unequal ones reach those points at their own times. Since a shard's bound follows
its share, a key still lives for about ``limit`` later inserts (FIFO within its shard), and
the map holds at most ``limit`` entries. Keys go to shards by ``hash(key)`` modulo a prime,
so message ids, whose low bits are a per-millisecond sequence, spread evenly.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["SHARDS", "RecentMap"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

SHARDS = 61
#: hash slots shared out among the shards (a prime)
_SLOTS = 4093


class RecentMap(Generic[K, V]):
    """Remembers about the newest ``limit`` entries (FIFO per shard, see the module docstring)."""

    __slots__ = ("limit", "_bounds", "_route", "_shards")

    def __init__(self, limit: int, shards: int = SHARDS) -> None:
        if limit < 1 or shards < 1:
            raise ValueError("limit and shards must be >= 1")
        shares = _shares(min(shards, limit, _SLOTS))
        self.limit = limit
        self._route = tuple(index for index, share in enumerate(shares) for _ in range(share))
        self._bounds = tuple(max(1, limit * share // _SLOTS) for share in shares)
        self._shards: tuple[OrderedDict[K, V], ...] = tuple(OrderedDict() for _ in shares)

    def remember(self, key: K, value: V) -> None:
        """Set ``key`` (a new key counts as the newest); forget its shard's oldest past the bound."""
        index = self._route[hash(key) % _SLOTS]
        shard = self._shards[index]
        shard[key] = value
        if len(shard) > self._bounds[index]:
            shard.popitem(last=False)

    def get(self, key: K) -> V | None:
        return self._shards[self._route[hash(key) % _SLOTS]].get(key)

    def pop(self, key: K) -> V | None:
        return self._shards[self._route[hash(key) % _SLOTS]].pop(key, None)

    def clear(self) -> None:
        for shard in self._shards:
            shard.clear()

    def __contains__(self, key: object) -> bool:
        return key in self._shards[self._route[hash(key) % _SLOTS]]

    def __len__(self) -> int:
        return sum(len(shard) for shard in self._shards)


def _shares(count: int) -> list[int]:
    """``_SLOTS`` split into ``count`` shares rising evenly from 0.5x to 1.5x the mean (each >= 1)."""
    if count == 1:
        return [_SLOTS]
    weights = [0.5 + i / (count - 1) for i in range(count)]
    total = sum(weights)
    edges = [0]
    for i in range(count):
        edges.append(max(edges[-1] + 1, round(_SLOTS * sum(weights[: i + 1]) / total)))
    edges[-1] = _SLOTS
    return [b - a for a, b in zip(edges, edges[1:], strict=False)]
