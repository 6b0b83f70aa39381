"""What a journaled SQLite store acknowledged and its writer has not committed yet.

``store.sqlite`` in ``journal`` mode acknowledges a batch once it is in the journal
(``store.journal``) and commits it to SQLite later, so reads consult this overlay first:
a key's newest acknowledged value, or ``None`` for a delete. An entry leaves when the
writer committed the write that made it (``drop``), unless a later write of the key
replaced it meanwhile. For scans the keys are kept sorted per partition
(``store.shardmap.partition_of``: the first 17 bytes, a user's inbox or a conversation),
where the layers above keep their scans; a short list per partition takes an insert or a
removal in a few hundred nanoseconds, where one sorted list of every key cost ~15 % of the
loop at the maximum rate (tens of thousands of keys, each ``insort`` and ``del`` moving
its tail). A scan across partitions sorts the keys in its range. ``Unsealed`` marks a
value the writer process is to seal (``SealedStore`` returns it as it is).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from store.api import prefix_end
from store.shardmap import PARTITION_BYTES

__all__ = ["Overlay", "Unsealed", "MISSING", "merge_scan"]


class Unsealed(bytes):
    """A plaintext value still in the overlay of a store whose writer seals (not yet sealed)."""

    __slots__ = ()


#: ``Overlay.lookup``: the overlay says nothing about the key (read the database)
MISSING = object()


class Overlay:
    """Newest acknowledged value per key (``None``: deleted), tagged with the tick that wrote it."""

    def __init__(self) -> None:
        self._entries: dict[bytes, tuple[bytes | None, int]] = {}
        self._parts: dict[bytes, list[bytes]] = {}  # partition -> its keys, sorted

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, key: bytes) -> bytes | None | object:
        """The key's value, ``None`` if deleted, or ``MISSING``."""
        entry = self._entries.get(key)
        return MISSING if entry is None else entry[0]

    def set(self, key: bytes, value: bytes | None, tick: int) -> tuple[bytes | None, int] | None:
        """Record a write; the entry it replaced (for ``restore``), or None."""
        previous = self._entries.get(key)
        if previous is None:
            part = self._parts.get(key[:PARTITION_BYTES])
            if part is None:
                self._parts[key[:PARTITION_BYTES]] = [key]
            else:
                bisect.insort(part, key)
        self._entries[key] = (value, tick)
        return previous

    def restore(self, key: bytes, previous: tuple[bytes | None, int] | None) -> None:
        """Undo ``set`` (a journal write failed)."""
        if previous is not None:
            self._entries[key] = previous
        elif self._entries.pop(key, None) is not None:
            self._forget(key)

    def drop(self, keys: Iterable[bytes], tick: int) -> None:
        """The writer committed tick ``tick``: forget its entries not rewritten since."""
        entries = self._entries
        for key in keys:
            entry = entries.get(key)
            if entry is not None and entry[1] <= tick:
                del entries[key]
                self._forget(key)

    def in_range(self, start: bytes, end: bytes) -> list[tuple[bytes, bytes | None]]:
        """Entries with ``start <= key < end``, ascending."""
        entries = self._entries
        if not entries:
            return []
        partition = start[:PARTITION_BYTES]
        if len(partition) == PARTITION_BYTES and end <= prefix_end(partition):
            keys = self._parts.get(partition, [])
            lo = bisect.bisect_left(keys, start)
            chosen = keys[lo : bisect.bisect_left(keys, end, lo)]
        else:
            chosen = sorted(k for k in entries if start <= k < end)
        return [(k, entries[k][0]) for k in chosen]

    def _forget(self, key: bytes) -> None:
        partition = key[:PARTITION_BYTES]
        keys = self._parts[partition]
        if len(keys) == 1:
            del self._parts[partition]
            return
        del keys[bisect.bisect_left(keys, key)]


def merge_scan(
    rows: list[tuple[bytes, bytes]],
    overlay: list[tuple[bytes, bytes | None]],
    limit: int,
    reverse: bool,
    complete: bool,
) -> list[tuple[bytes, bytes]]:
    """Database ``rows`` of a scan with the overlay's entries of the same range laid over
    them, at most ``limit`` pairs in scan order. ``complete``: the rows are all the range
    holds; else they were cut at their last key, and overlay keys past it wait for a later
    page (the caller fetched ``limit`` + len(overlay) rows, so deletes cannot starve it)."""
    merged: dict[bytes, bytes | None] = dict(rows)
    if not complete and rows:
        bound = rows[-1][0]
        overlay = [(k, v) for k, v in overlay if (k >= bound if reverse else k <= bound)]
    merged.update(overlay)
    keys = sorted(merged, reverse=reverse)
    out: list[tuple[bytes, bytes]] = []
    for key in keys:
        value = merged[key]
        if value is not None:
            out.append((key, value))
            if len(out) >= limit:
                break
    return out
