"""Re-seal stored values under the keyring's newest key version (and the GCM-SIV format).

``reseal(store)`` walks every record of a ``SealedStore`` and rewrites each value that is
not sealed under the newest version in the current format. It reads the raw (sealed)
rows of the inner store, so it never touches the IM layer.

Concurrency: the node keeps serving. Over a ``ShardedStore`` the walk goes slot by slot,
each slot frozen while it is rewritten (writes to it wait a moment, reads go on). Over a
single backend it goes page by page through the store's ``WriteGate`` (``store.gate``):
writes to the page's keys wait while it is read and rewritten. Either way a write racing
the rewrite of its key runs after it, so no write is overwritten. Both freezes hold the
writes of this process only: with several nodes sharing the store, the others' writes
are not held (run the reseal where no other node writes, or accept that a value written
elsewhere during its page's rewrite may be replaced by the value it had just before).
"""

from __future__ import annotations

from dataclasses import dataclass

from store.api import Put, RecordStore
from store.overlay import Unsealed
from store.sealed import SealedStore
from store.sharded import PFX, ShardedStore, pages
from store.shardmap import SLOT_COUNT

__all__ = ["ResealReport", "reseal", "END"]

END = b"\xff" * 1024  # above every key a layer of timnode writes


@dataclass
class ResealReport:
    records: int = 0
    resealed: int = 0


async def reseal(store: SealedStore, *, page: int = 500, report: ResealReport | None = None) -> ResealReport:
    """Rewrite every value not sealed under the newest key version; returns counts
    (``report``, when given, counts as the reseal goes: progress for a watcher)."""
    report = ResealReport() if report is None else report
    inner = store.inner
    if isinstance(inner, ShardedStore):
        for slot in range(SLOT_COUNT):
            token = await inner.freeze_when_free([slot])  # a rebalance's freeze is never replaced
            try:
                shard = inner.shard(inner.map.slots[slot])
                async for rows in pages(shard, PFX[slot], PFX[slot + 1], page):
                    await _reseal_rows(store, shard, rows, 2, report)
            finally:
                inner.thaw([slot], token)  # and never released by the reseal
    else:
        await _reseal_single(store, page, report)
    return report


async def _reseal_single(store: SealedStore, page: int, report: ResealReport) -> None:
    """Page by page, each page's keys held by the store's gate while it is rewritten."""
    gate, start = store.gate, b""
    while True:
        await gate.freeze(start, END)  # thaws itself if cancelled while it drains
        try:
            rows = await store.inner.scan(start, END, limit=page)
            if rows:
                gate.narrow(rows[-1][0] + b"\x00")  # writes above this page go on
            await _reseal_rows(store, store.inner, rows, 0, report)
        finally:
            gate.thaw()
        if len(rows) < page:
            return
        start = rows[-1][0] + b"\x00"


async def _reseal_rows(
    store: SealedStore, raw: RecordStore, rows: list[tuple[bytes, bytes]], strip: int, report: ResealReport
) -> None:
    """Rewrite the stale ones of ``rows`` (physical keys; ``strip`` bytes of slot prefix)."""
    ring = store.keyring
    report.records += len(rows)
    stale = [(k, v) for k, v in rows if type(v) is not Unsealed and not ring.is_current(v)]  # Unsealed: sealed soon
    if stale:
        await raw.write([Put(k, ring.seal(k[strip:], ring.unseal(k[strip:], v))) for k, v in stale])
        report.resealed += len(stale)
