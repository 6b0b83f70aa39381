"""Re-seal stored values under the keyring's newest key version (and the GCM-SIV format).

``reseal(store)`` walks every record of a ``SealedStore`` and rewrites each value that is
not sealed under the newest version in the current format. It reads the raw (sealed)
rows of the inner store, so it never touches the IM layer.

Concurrency: over a ``ShardedStore`` the walk goes slot by slot, each slot frozen while it
is rewritten (writes to it wait a moment, reads go on), so a node may keep serving. Over a
single backend there is no freeze: run it with the node stopped (``timnode store reseal``
checks), or a write racing the rewrite of the same key could be overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass

from store.api import Put, RecordStore
from store.sealed import SealedStore
from store.sharded import PFX, ShardedStore, pages
from store.shardmap import SLOT_COUNT

__all__ = ["ResealReport", "reseal", "END"]

END = b"\xff" * 1024  # above every key a layer of timnode writes


@dataclass
class ResealReport:
    records: int = 0
    resealed: int = 0


async def reseal(store: SealedStore, *, page: int = 500) -> ResealReport:
    """Rewrite every value not sealed under the newest key version; returns counts."""
    report = ResealReport()
    inner = store.inner
    if isinstance(inner, ShardedStore):
        for slot in range(SLOT_COUNT):
            await inner.freeze([slot])
            try:
                shard = inner.shard(inner.map.slots[slot])
                await _reseal_range(store, shard, PFX[slot], PFX[slot + 1], 2, page, report)
            finally:
                inner.thaw([slot])
    else:
        await _reseal_range(store, inner, b"", END, 0, page, report)
    return report


async def _reseal_range(
    store: SealedStore, raw: RecordStore, start: bytes, end: bytes, strip: int, page: int, report: ResealReport
) -> None:
    ring = store.keyring
    async for rows in pages(raw, start, end, page):
        report.records += len(rows)
        stale = [(k, v) for k, v in rows if not ring.is_current(v)]
        if stale:
            await raw.write([Put(k, ring.seal(k[strip:], ring.unseal(k[strip:], v))) for k, v in stale])
            report.resealed += len(stale)
