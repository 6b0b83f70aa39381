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

With several processes serving the same shards, ``store.coordinator`` (a ``Coordinator``,
wired by the node) extends steps 1 and 4 to every member: the frozen slots are committed
in the map (``frozen``) and every other live member must acknowledge freezing them before
anything is copied, else the step is aborted (thawed everywhere) and retried; the flip
must be committed within the freeze lease; after it members reload the map and thaw, and
step 5 waits until every member routes by the new map (``sync``).

Reads never wait: before the flip they go to the old owner, which holds every write;
after it to the new owner, which holds a full copy plus every later write. A ``kill -9``
anywhere leaves a map that is either before a flip (the copy is redone from step 3) or
after it (the cleanup is redone); ``ShardedStore.open()`` resumes the rebalance. When no
slots are left, shards in ``removing`` are dropped from the map and closed; if the root is
among them, its role moves first (``store.rootmove``).

Leadership: the map names the ``leader``. When its heartbeat lapses, another member calls
``take_over``: one fenced map commit (``MapConflict`` for all but one member) names the new
leader and clears the dead one's ``frozen`` slots, then the rebalance resumes there. A
leader stops (``StepAborted``, retried) before any copy, flip or delete once its own
heartbeat is older than the member TTL minus ``LEASE_MARGIN`` (others may be taking over),
and a leader whose commit hits ``MapConflict`` stops for good if the map names another.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Protocol

from store.api import Delete, Put, RecordStore
from store.errors import MapConflict, StoreError, StoreUnavailable
from store.rootmove import move_root
from store.sharded import PFX, ShardedStore, pages
from store.shardmap import ShardMap

__all__ = [
    "add_shard", "remove_shard", "run_rebalance", "start_rebalance", "take_over", "Coordinator", "StepAborted",
]  # fmt: skip

log = logging.getLogger(__name__)

LEASE_MARGIN = 3.0  # seconds: the flip must be committed this long before members' leases end
RETRIES = 60


class StepAborted(StoreUnavailable):
    """A coordinated step could not run (a member did not acknowledge); retried later."""


class Coordinator(Protocol):
    """The other processes serving the same shards (implemented above the store layer)."""

    async def freeze(self, slots: list[int], lease: float) -> None:
        """Every other live member froze ``slots``; else raise ``StepAborted``."""

    async def release(self, slots: list[int]) -> None:
        """Best effort: members reload the map and thaw ``slots``."""

    async def sync(self, version: int) -> None:
        """Every other live member routes by map ``version`` or newer and drained older
        reads; else raise ``StepAborted``."""


async def add_shard(store: ShardedStore, url: str) -> int:
    """Open ``url``, commit a plan moving an even share of slots to it; returns its id."""
    async with store.rebalance_lock:
        await store.reload_map()  # another member may have changed it
        new = copy.deepcopy(store.map)
        sid = new.plan_add(url)
        new.leader = store.member_id
        await store.attach(sid, url)
        await store.commit_map(new)
    log.info("= shard %d (%s) added; %d slots to move", sid, url.split("@")[-1], len(new.moves))
    return sid


async def remove_shard(store: ShardedStore, url: str) -> int:
    """Commit a plan moving every slot off shard ``url``; returns its id."""
    async with store.rebalance_lock:
        await store.reload_map()
        new = copy.deepcopy(store.map)
        sid = new.plan_remove(url)
        new.leader = store.member_id
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


async def take_over(store: ShardedStore) -> bool:
    """Lead the map's rebalance in place of its (dead) leader and resume it here.

    Returns False when no rebalance is in progress, this member leads already, or another
    member committed first.
    """
    async with store.rebalance_lock:
        await store.reload_map()
        old = store.map
        if not old.busy or old.leader == store.member_id:
            return False
        new = copy.deepcopy(old)
        new.leader, new.frozen = store.member_id, []
        new.version += 1
        try:
            await store.commit_map(new, replace_leader=True)  # fenced: one member wins; its step thaws
        except MapConflict:
            return False
    log.warning("= took over the rebalance led by %s (its heartbeat lapsed)", old.leader[:16] or "nobody")
    start_rebalance(store)
    return True


async def _run_logged(store: ShardedStore, **options: int) -> None:
    try:
        await run_rebalance(store, **options)
    except MapConflict as exc:
        if await _superseded(store):
            log.warning("= rebalance taken over by %s: stopped here", store.map.leader[:16])
            return
        store.rebalance_error = str(exc)
        log.warning("= rebalance stopped: %s", exc)
    except StoreError as exc:
        store.rebalance_error = str(exc)
        log.warning("= rebalance stopped: %s (it resumes on the next start or add/remove)", exc)


async def _superseded(store: ShardedStore) -> bool:
    try:
        await store.reload_map()
    except StoreError:
        return False
    return store.map.leader not in ("", store.member_id)


async def run_rebalance(store: ShardedStore, *, step_slots: int = 8, page: int = 1000) -> None:
    """Carry out the map's journal until nothing is left to move, delete or drop."""
    async with store.rebalance_lock:
        store.rebalance_error = ""
        await _retrying(store, lambda: _cleanup(store, page))
        while store.map.moves:
            step = sorted(store.map.moves)[:step_slots]
            await _retrying(store, lambda step=step: _move(store, step, page))  # type: ignore[misc]
            await _retrying(store, lambda: _cleanup(store, page))
        for sid in list(store.map.removing):
            if sid == store.root_id:
                await _retrying(store, lambda: move_root(store))
            new = copy.deepcopy(store.map)
            del new.shards[sid]
            new.removing.remove(sid)
            new.version += 1
            if not new.busy:
                new.leader = ""
            await store.commit_map(new)
            await store.detach(sid)
        log.info("= rebalance done: map version %d, fingerprint %s", store.map.version, store.fingerprint()[:16])


async def _retrying(store: ShardedStore, run: Callable[[], Awaitable[None]]) -> None:
    """Run a step; an aborted coordinated step is retried after a pause (``rebalance_retry``)."""
    for attempt in range(RETRIES):
        try:
            await run()
        except StepAborted as exc:
            store.rebalance_retry = str(exc)
            log.warning("= rebalance step aborted (attempt %d), retrying: %s", attempt + 1, exc)
            await asyncio.sleep(min(0.2 * (attempt + 1), 2.0))
            continue
        store.rebalance_retry = ""
        return
    raise StoreUnavailable(f"rebalance step aborted {RETRIES} times: {store.rebalance_retry}")


def _check_lease(store: ShardedStore) -> None:
    """Stop before a copy, flip or delete once other members may think this one is dead."""
    if store.lease_left() < LEASE_MARGIN:
        raise StepAborted("this member's heartbeat is late: another member may take the rebalance over")


async def _move(store: ShardedStore, step: list[int], page: int) -> None:
    coordinator = store.coordinator
    loop = asyncio.get_running_loop()
    await store.freeze(step)
    released = False
    try:
        deadline = loop.time() + store.freeze_lease - LEASE_MARGIN
        if coordinator is not None:
            marked = copy.deepcopy(store.map)
            marked.frozen = list(step)
            marked.version += 1
            await store.commit_map(marked)  # members (re)opening from now on start frozen
            try:
                await coordinator.freeze(step, store.freeze_lease)
            except StepAborted:
                await _unmark(store)
                await coordinator.release(step)
                released = True
                raise
        await store.settle()
        current = store.map
        for slot in step:
            source, target = store.shard(current.slots[slot]), store.shard(current.moves[slot])
            _check_lease(store)
            await _delete_slot(target, slot, page)
            async for rows in pages(source, PFX[slot], PFX[slot + 1], page):
                await target.write([Put(k, v) for k, v in rows])
        if coordinator is not None and loop.time() > deadline:
            await _unmark(store)
            await coordinator.release(step)
            released = True
            raise StepAborted("the copy outlasted the freeze lease")
        _check_lease(store)
        new = copy.deepcopy(current)
        for slot in step:
            new.cleanup.append((slot, new.slots[slot]))
            new.slots[slot] = new.moves.pop(slot)
        new.frozen = []
        new.version += 1
        await store.commit_map(new)
    except Exception:
        if coordinator is not None and not released:  # best effort; members' leases cover the rest
            released = True
            try:
                await _unmark(store)
                await coordinator.release(step)
            except Exception as exc:  # noqa: BLE001
                log.warning("= could not release frozen slots: %s", exc)
        raise
    finally:
        store.thaw(step)
    if coordinator is not None and not released:
        await coordinator.release(step)


async def _unmark(store: ShardedStore) -> None:
    new = copy.deepcopy(store.map)
    new.frozen = []
    new.version += 1
    await store.commit_map(new)


async def _cleanup(store: ShardedStore, page: int) -> None:
    """Delete moved slots from their former owners, then drop them from the journal."""
    done = list(store.map.cleanup)
    if not done:
        return
    await store.drain()
    if store.coordinator is not None:
        await store.coordinator.sync(store.map.version)  # no member still reads the old owners
    for slot, sid in done:
        if store.map.slots[slot] != sid:  # never delete from the current owner
            _check_lease(store)
            await _delete_slot(store.shard(sid), slot, page)
    new: ShardMap = copy.deepcopy(store.map)
    new.cleanup = [pair for pair in new.cleanup if pair not in done]
    new.version += 1
    if not new.busy:
        new.leader = ""
    await store.commit_map(new)


async def _delete_slot(shard: RecordStore, slot: int, page: int) -> None:
    while True:
        rows = await shard.scan(PFX[slot], PFX[slot + 1], limit=page)
        if not rows:
            return
        await shard.write([Delete(k) for k, _ in rows])
