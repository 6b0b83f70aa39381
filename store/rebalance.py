"""Online rebalancing of a ``ShardedStore``: add or remove a shard while serving.

The journal is the shard map itself (``ShardMap.moves``/``cleanup``/``removing``), stored
durably in the root shard; ``add_shard``/``remove_shard`` commit the plan before any row
moves. ``run_rebalance`` then moves up to ``step_slots`` slots per step:

1. ``freeze`` the step's slots: new writes to them wait, running ones finish;
2. complete failed cross-shard batches and delete finished intents (``settle``), so no
   intent can be replayed onto a slot's new owner;
3. per slot: delete what the target holds in the slot (left by an interrupted copy; the
   target does not own it, so nothing there is live), copy every row from the owner;
4. flip: the new map (slots reassigned, ``(slot, old owner)`` added to ``cleanup``,
   version + 1) is committed to the root shard; ``thaw``: waiting writes go to the new
   owner;
5. ``drain`` (reads routed to the old owner finish), delete the slot from the old owner,
   commit the map without those cleanup entries.

Reads never wait: before the flip they go to the old owner, which holds every write;
after it to the new owner, which holds a full copy plus every later write. A ``kill -9``
anywhere leaves a map that is either before a flip (the copy is redone from step 3) or
after it (the cleanup is redone); ``ShardedStore.open()`` resumes the rebalance. When no
slots are left, shards in ``removing`` are dropped from the map and closed.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os

from store.api import Delete, Put, RecordStore
from store.errors import StoreError
from store.sharded import PFX, ShardedStore, pages
from store.shardmap import ShardMap

__all__ = ["add_shard", "remove_shard", "run_rebalance", "start_rebalance"]

log = logging.getLogger(__name__)


async def add_shard(store: ShardedStore, url: str) -> int:
    """Open ``url``, commit a plan moving an even share of slots to it; returns its id."""
    async with store.rebalance_lock:
        new = copy.deepcopy(store.map)
        sid = new.plan_add(url)
        await store.attach(sid, url)
        await store.commit_map(new)
    log.info("= shard %d (%s) added; %d slots to move", sid, url.split("@")[-1], len(new.moves))
    return sid


async def remove_shard(store: ShardedStore, url: str) -> int:
    """Commit a plan moving every slot off shard ``url``; returns its id."""
    async with store.rebalance_lock:
        new = copy.deepcopy(store.map)
        sid = new.plan_remove(url)
        await store.commit_map(new)
    log.info("= shard %d to be removed; %d slots to move", sid, len(new.moves))
    return sid


def start_rebalance(store: ShardedStore, **options: int) -> asyncio.Task[None]:
    """Run ``run_rebalance`` in the background (once); its error lands in ``rebalance_error``.

    ``TIMNODE_STORE_REBALANCE_STEP`` (slots per step, default 8) tunes how many slots are
    frozen at once: fewer means shorter write stalls and more map commits.
    """
    options.setdefault("step_slots", int(os.environ.get("TIMNODE_STORE_REBALANCE_STEP", "8")))
    if store.rebalancer is None or store.rebalancer.done():
        store.rebalancer = asyncio.ensure_future(_run_logged(store, **options))
    return store.rebalancer


async def _run_logged(store: ShardedStore, **options: int) -> None:
    try:
        await run_rebalance(store, **options)
    except StoreError as exc:
        store.rebalance_error = str(exc)
        log.warning("= rebalance stopped: %s (it resumes on the next start or add/remove)", exc)


async def run_rebalance(store: ShardedStore, *, step_slots: int = 8, page: int = 1000) -> None:
    """Carry out the map's journal until nothing is left to move, delete or drop."""
    async with store.rebalance_lock:
        store.rebalance_error = ""
        await _cleanup(store, page)
        while store.map.moves:
            step = sorted(store.map.moves)[:step_slots]
            await _move(store, step, page)
            await _cleanup(store, page)
        for sid in list(store.map.removing):
            new = copy.deepcopy(store.map)
            del new.shards[sid]
            new.removing.remove(sid)
            new.version += 1
            await store.commit_map(new)
            await store.detach(sid)
        log.info("= rebalance done: map version %d, fingerprint %s", store.map.version, store.fingerprint()[:16])


async def _move(store: ShardedStore, step: list[int], page: int) -> None:
    await store.freeze(step)
    try:
        await store.settle()
        current = store.map
        for slot in step:
            source, target = store.shard(current.slots[slot]), store.shard(current.moves[slot])
            await _delete_slot(target, slot, page)
            async for rows in pages(source, PFX[slot], PFX[slot + 1], page):
                await target.write([Put(k, v) for k, v in rows])
        new = copy.deepcopy(current)
        for slot in step:
            new.cleanup.append((slot, new.slots[slot]))
            new.slots[slot] = new.moves.pop(slot)
        new.version += 1
        await store.commit_map(new)
    finally:
        store.thaw(step)


async def _cleanup(store: ShardedStore, page: int) -> None:
    """Delete moved slots from their former owners, then drop them from the journal."""
    done = list(store.map.cleanup)
    if not done:
        return
    await store.drain()
    for slot, sid in done:
        if store.map.slots[slot] != sid:  # never delete from the current owner
            await _delete_slot(store.shard(sid), slot, page)
    new: ShardMap = copy.deepcopy(store.map)
    new.cleanup = [pair for pair in new.cleanup if pair not in done]
    await store.commit_map(new)


async def _delete_slot(shard: RecordStore, slot: int, page: int) -> None:
    while True:
        rows = await shard.scan(PFX[slot], PFX[slot + 1], limit=page)
        if not rows:
            return
        await shard.write([Delete(k) for k, _ in rows])
