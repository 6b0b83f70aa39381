"""``ShardedStore``: one RecordStore over N backends (any mix of SQLite and PostgreSQL).

Placement (``store.shardmap``): ``slot_of(key)`` hashes the key's 17-byte partition prefix
to one of 4096 slots; the ``ShardMap`` assigns slots to shards. On a shard a record lives
at ``slot (2 bytes) || key`` (``store.shardkeys``). The map is stored durably in the *root*
shard (shard 0 unless the root moved) at the physical key ``0xFFFF "map"``; ``shards.json``
in the data directory names the root and caches the map for humans and tools.

Reads: ``get``/``get_many`` go to the owner of each key's slot. A scan whose range lies
inside one partition (``len(start) >= 17`` and ``end <= prefix_end(start[:17])``, as every
IM scan) goes to one shard; any other scan visits every shard's non-empty slots and merges.

Writes: a batch whose keys all live on one shard is passed through (that backend's group
commit, unchanged guarantees). A batch spanning shards is committed by roll-forward:

1. the *anchor* shard (the one holding the batch's ``Insert``s, else the first key's)
   commits its ops plus an intent record ``0xFFFF "i/" txid`` holding the other ops, in
   one atomic batch: a ``KeyExists`` there fails the whole batch, nothing applied;
2. every other shard commits its ops plus a marker ``0xFFFF "a/" txid``, atomically;
3. ``write()`` returns; later (batched) the intent, then the markers are deleted.

Recovery (on ``open()``, and before the next write after a failed step 2) replays every
intent on the shards whose marker is absent, so after a crash a batch is applied on all
shards or on none. A marker makes replay idempotent and never re-applies stale values over
newer writes. ``Insert``s must all fall on one shard (IM's send batch has one); a batch
with ``Insert``s on two shards raises ``ValueError``. Isolation: a concurrent reader may
see a cross-shard batch half applied while its ``write()`` is still running (each shard is
read-committed, there is no global snapshot); once ``write()`` returned, all of it is
visible.

Rebalancing (``store.rebalance``) uses ``freeze()``/``thaw()``: writes touching a frozen
slot wait; ``drain()`` waits for every read and write that started before it.

Several processes (members) may serve the same shards. Each registers in the root before
reading the map. Map commits are fenced: a commit ``Insert``s ``0xFFFF "v/" version`` with
the map in one batch, so of two members committing from the same map one fails with
``MapConflict``. An intent's txid ends with a tag of the member that wrote it, so a
surviving member can roll forward the intents of a dead one (``recover_member``). When the
root shard is removed its role moves to another shard (``store.rootmove``); the old root
keeps the map naming the new one, which ``open()`` and ``reload_map()`` follow.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import logging
import math
import os
import secrets
import struct
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from store.api import Delete, Insert, Op, Put, RecordStore, prefix_end
from store.batch import check_ops, check_scan
from store.epochs import InflightEpochs
from store.errors import KeyExists, MapConflict, StoreError, StoreUnavailable
from store.intents import IntentCleaner
from store.shardkeys import (
    APPLIED_PREFIX,
    INTENT_PREFIX,
    MAP_KEY,
    MEMBER_PREFIX,
    PFX,
    REAPED_PREFIX,
    SYSTEM_PREFIX,
    VERSION_PREFIX,
    decode_ops,
    encode_ops,
    member_tag,
    pages,
    scan_all,
    version_key,
)
from store.shardmap import PARTITION_BYTES, SLOT_COUNT, ShardMap, public_url, slot_of

__all__ = [
    "ShardedStore",
    "create_shards",
    "find_sharded",
    "encode_ops",
    "decode_ops",
    "pages",
    "member_tag",
    "scan_all",
    "version_key",
    "SYSTEM_PREFIX",
    "MAP_KEY",
    "INTENT_PREFIX",
    "APPLIED_PREFIX",
    "MEMBER_PREFIX",
    "VERSION_PREFIX",
    "REAPED_PREFIX",
    "PFX",
]  # the layout names are re-exported from store.shardkeys

log = logging.getLogger(__name__)

KEPT_VERSIONS = 1000  # version keys older than this many commits are deleted
MAX_FORWARDS = 8  # moved roots followed from the URL in shards.json

Opener = Callable[[str], RecordStore]


def _physical(op: Op, prefix: bytes) -> Op:
    kind = type(op)
    if kind is Delete:
        return Delete(prefix + op.key)
    return kind(prefix + op.key, op.value)  # type: ignore[call-arg, union-attr]


def _single_partition(start: bytes, end: bytes) -> bool:
    return len(start) >= PARTITION_BYTES and end <= prefix_end(start[:PARTITION_BYTES])


async def create_shards(urls: list[str], opener: Opener) -> ShardMap:
    """Store a fresh even map over ``urls`` in the root ``urls[0]`` (which must have none).

    For a new store only: rows already in the shards are not moved (use ``add_shard``).
    """
    new = ShardMap.even(urls)
    root = opener(urls[0])
    await root.open()
    try:
        if await root.get(MAP_KEY) is not None:
            raise StoreError("the root shard already holds a shard map")
        await root.write([Insert(MAP_KEY, new.encode())])
    finally:
        await root.close()
    return new


def find_sharded(store: RecordStore) -> ShardedStore | None:
    """The ShardedStore inside wrappers (``.inner`` chains), if any."""
    seen: RecordStore | None = store
    while seen is not None:
        if isinstance(seen, ShardedStore):
            return seen
        seen = getattr(seen, "inner", None)
    return None


class ShardedStore(RecordStore):
    """Routes every key to the shard owning its slot; cross-shard batches roll forward."""

    backend = "sharded"

    def __init__(
        self, root_url: str, opener: Opener, *, cache_path: str | os.PathLike[str] | None = None, resume: bool = True
    ) -> None:
        self.root_url = root_url
        self._opener = opener
        self._cache_path = Path(cache_path) if cache_path is not None else None
        self._resume = resume
        self.map = ShardMap.single(root_url)
        self._committed = 0  # the version of the map last read or committed (the fence)
        self._root_sid = 0
        self._tag = b""
        self._shards: dict[int, RecordStore] = {}
        self._meta_claims: dict[str, str] = {}  # claim_meta's, claimed again on every shard attached
        self._attach_lock = asyncio.Lock()  # one open per shard, however many callers ask
        self._reload_lock = asyncio.Lock()  # one reload at a time: a slow one never lands last
        self._owner: list[int] = list(self.map.slots)
        self._opened = False
        self._frozen: dict[int, asyncio.Event] = {}
        self._inflight = InflightEpochs()  # reads and writes, for drain()
        self._failed: list[tuple[int, bytes, list[Op]]] = []
        self._cleaner = IntentCleaner(self.shard)
        self._recovering = asyncio.Lock()
        self._counter = itertools.count()
        self.rebalance_lock = asyncio.Lock()
        self.rebalancer: asyncio.Task[None] | None = None
        self.rebalance_error = ""
        self.rebalance_retry = ""  # why the last coordinated step was aborted (it is retried)
        self.cross_shard_batches = 0
        # Several processes serving the same shards: ``member_id`` (set before open) registers
        # this process in the root shard; ``coordinator`` (store.rebalance.Coordinator) makes
        # the other members freeze a step's slots; slots frozen on a member's behalf thaw on
        # release or when their lease runs out (after reloading the map).
        self.member_id = ""
        self.coordinator: Any = None
        self.freeze_lease = float(os.environ.get("TIMNODE_STORE_FREEZE_LEASE", "20"))
        self.member_ttl = float(os.environ.get("TIMNODE_STORE_MEMBER_TTL", "10"))  # then a member is dead
        self._registered_at = -math.inf  # loop time at which the last successful heartbeat started
        self._remote_frozen: dict[int, asyncio.Event] = {}

    # ---- life cycle -------------------------------------------------------------------

    async def open(self) -> None:
        if self._opened:
            return
        self._tag = member_tag(self.member_id) if self.member_id else b""
        try:
            await self._open_root()
            for sid, url in self.map.shards.items():
                await self.attach(sid, url)
            self._owner = list(self.map.slots)
            self._opened = True
            if self.map.frozen and self.member_id:
                await self.freeze_remote(self.map.frozen, drain=False)
            await self.recover()
        except BaseException:
            await self._close_shards()
            self._opened = False
            raise
        self._write_cache()
        if self._resume and self.map.busy:
            from store.rebalance import start_rebalance

            start_rebalance(self)

    async def _open_root(self) -> None:
        """Open the root (following the maps of moved roots), register, then read the map."""
        url = self.root_url
        for _ in range(MAX_FORWARDS):
            root = self._opener(url)
            await root.open()
            try:
                if self.member_id:  # register first, then read the map (a coordinator's fence)
                    await self._register(root)
                raw = await root.get(MAP_KEY)
                found = ShardMap.single(url) if raw is None else ShardMap.decode(raw)
                if raw is None:  # a new store
                    await root.write([Put(MAP_KEY, found.encode())])
            except BaseException:
                await root.close()
                raise
            if found.root == 0 or found.root_url == url:
                self.root_url, self.map, self._committed, self._root_sid = url, found, found.version, found.root
                self._shards = {found.root: root}
                return
            log.info("= the root shard moved: following the map to shard %d", found.root)
            await root.close()
            url = found.root_url
        raise StoreUnavailable(f"the shard map was forwarded more than {MAX_FORWARDS} times")

    def _root(self) -> RecordStore:
        return self._shards[self._root_sid]

    @property
    def root_id(self) -> int:
        """The id of the shard holding the map and the members registry."""
        return self._root_sid

    def defer_resume(self) -> None:
        """``open()`` will not resume an interrupted rebalance (the caller decides when)."""
        self._resume = False

    async def close(self) -> None:
        if not self._opened:
            return
        if self.rebalancer is not None and not self.rebalancer.done():
            self.rebalancer.cancel()
            await asyncio.gather(self.rebalancer, return_exceptions=True)
        await self.flush_cleanups(quiet=True)
        if self.member_id:
            try:
                await self._root().write([Delete(MEMBER_PREFIX + self.member_id.encode())])
            except StoreError as exc:
                log.warning("= could not unregister from the store: %s", exc)
        self._opened = False
        await self._close_shards()

    async def _close_shards(self) -> None:
        shards, self._shards = self._shards, {}
        for shard in shards.values():
            await shard.close()

    async def attach(self, sid: int, url: str) -> None:
        """Open shard ``sid`` (a new rebalance target, or one of the map's on open)."""
        if sid in self._shards:
            return
        async with self._attach_lock:
            if sid in self._shards:  # opened while this call waited
                return
            shard = self._opener(url)
            await shard.open()
            try:
                await self._claim_on(shard, sid)
            except BaseException:
                await shard.close()
                raise
            self._shards[sid] = shard

    async def claim_meta(self, name: str, value: str) -> str:
        """Claimed on every shard, now and when attached later; the value held where one
        differs (the root's first), else ``value``."""
        held = value
        for sid in sorted(self._shards, key=lambda s: s != self._root_sid):
            found = await self._shards[sid].claim_meta(name, value)
            if found != value and held == value:
                held = found
        if held == value:
            self._meta_claims[name] = value
        return held

    async def _claim_on(self, shard: RecordStore, sid: int) -> None:
        for name, value in self._meta_claims.items():
            held = await shard.claim_meta(name, value)
            if held != value:
                raise StoreUnavailable(f"shard {sid} holds another {name} than the store's other shards")

    async def detach(self, sid: int) -> None:
        shard = self._shards.pop(sid, None)
        if shard is not None:
            await shard.close()

    def shard(self, sid: int) -> RecordStore:
        return self._shards[sid]

    # ---- reads --------------------------------------------------------------------------

    async def get(self, key: bytes) -> bytes | None:
        slot = slot_of(key)
        epoch = self._enter()
        try:
            return await self._shards[self._owner[slot]].get(PFX[slot] + key)
        finally:
            self._inflight.leave(epoch)

    async def get_many(self, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        self._require_open()
        owner = self._owner
        by_shard: dict[int, list[bytes]] = {}
        for key in dict.fromkeys(keys):
            slot = slot_of(key)
            by_shard.setdefault(owner[slot], []).append(PFX[slot] + key)
        epoch = self._enter()
        try:
            found = await asyncio.gather(*(self._shards[sid].get_many(pk) for sid, pk in by_shard.items()))
        finally:
            self._inflight.leave(epoch)
        return {k[2:]: v for part in found for k, v in part.items()}

    async def scan(self, start: bytes, end: bytes, *, limit: int, reverse: bool = False) -> list[tuple[bytes, bytes]]:
        self._require_open()
        if not check_scan(start, end, limit):
            return []
        epoch = self._enter()
        try:
            if _single_partition(start, end):
                slot = slot_of(start)
                pfx = PFX[slot]
                rows = await self._shards[self._owner[slot]].scan(pfx + start, pfx + end, limit=limit, reverse=reverse)
                return [(k[2:], v) for k, v in rows]
            owner = self._owner
            parts = await asyncio.gather(
                *(self._scan_shard(sid, owner, start, end, limit, reverse) for sid in list(self._shards))
            )
        finally:
            self._inflight.leave(epoch)
        merged = heapq.merge(*(rows for part in parts for rows in part), key=lambda kv: kv[0], reverse=reverse)
        return list(itertools.islice(merged, limit))

    async def _scan_shard(
        self, sid: int, owner: list[int], start: bytes, end: bytes, limit: int, reverse: bool
    ) -> list[list[tuple[bytes, bytes]]]:
        """Per non-empty owned slot of shard ``sid``: its rows in ``[start, end)``."""
        owned = [slot for slot in range(SLOT_COUNT) if owner[slot] == sid]
        shard = self._shards[sid]
        out: list[list[tuple[bytes, bytes]]] = []
        i = 0
        while i < len(owned):
            probe = await shard.scan(PFX[owned[i]], PFX[SLOT_COUNT], limit=1)
            if not probe:
                break
            i = bisect_left(owned, int.from_bytes(probe[0][0][:2], "big"), i)
            if i >= len(owned):
                break
            slot = owned[i]
            if PFX[slot] != probe[0][0][:2]:
                continue  # rows of a slot this shard does not own (mid-rebalance): skip
            rows = await shard.scan(PFX[slot] + start, PFX[slot] + end, limit=limit, reverse=reverse)
            if rows:
                out.append([(k[2:], v) for k, v in rows])
            i += 1
        return out

    # ---- writes -------------------------------------------------------------------------

    async def write(self, ops: Sequence[Op]) -> None:
        checked = check_ops(ops)
        self._require_open()
        if self._failed:
            await self._retry_failed()
        if not checked:
            return
        slots = [slot_of(op.key) for op in checked]
        if self._frozen:
            await self._unfrozen(slots)
        epoch = self._enter()
        try:
            owner = self._owner
            parts: dict[int, list[Op]] = {}
            for op, slot in zip(checked, slots, strict=True):
                parts.setdefault(owner[slot], []).append(_physical(op, PFX[slot]))
            if len(parts) == 1:
                sid, phys = parts.popitem()
                await self._shards[sid].write(phys)
            else:
                await self._write_across(checked, slots, parts)
        except KeyExists as exc:
            raise KeyExists(exc.key[2:]) from None
        finally:
            self._inflight.leave(epoch)

    async def _unfrozen(self, slots: Sequence[int]) -> None:
        """Wait until none of ``slots`` is frozen."""
        while self._frozen:
            event = next((self._frozen[s] for s in slots if s in self._frozen), None)
            if event is None:
                return
            await event.wait()

    async def _write_across(self, ops: tuple[Op, ...], slots: list[int], parts: dict[int, list[Op]]) -> None:
        owner = self._owner
        anchors = {owner[s] for op, s in zip(ops, slots, strict=True) if type(op) is Insert}
        if len(anchors) > 1:
            raise ValueError("a batch spanning shards may hold Inserts on one shard only")
        anchor = anchors.pop() if anchors else owner[slots[0]]
        remote = [op for op, s in zip(ops, slots, strict=True) if owner[s] != anchor]
        tag = self._tag or secrets.token_bytes(4)
        txid = struct.pack(">QI", time.time_ns(), next(self._counter) & 0xFFFFFFFF) + tag
        await self._shards[anchor].write([*parts[anchor], Put(INTENT_PREFIX + txid, encode_ops(remote))])
        self.cross_shard_batches += 1
        targets = [sid for sid in parts if sid != anchor]
        try:
            results = await asyncio.gather(
                *(self._shards[sid].write([*parts[sid], Put(APPLIED_PREFIX + txid, b"")]) for sid in targets),
                return_exceptions=True,
            )
        except BaseException:  # cancelled: the anchor committed, finish it before the next write
            self._failed.append((anchor, txid, remote))
            raise
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            self._failed.append((anchor, txid, remote))
            raise StoreUnavailable(f"cross-shard batch half applied, will roll forward: {errors[0]}") from errors[0]
        self._cleaner.queue(anchor, txid, targets)

    # ---- intents: roll forward and clean up ---------------------------------------------

    async def recover(self) -> int:
        """Roll forward every intent left on any shard, delete orphan markers; returns count."""
        async with self._recovering:
            await self.flush_cleanups(quiet=True)
            intents: list[tuple[int, bytes, list[Op]]] = []
            for sid, shard in list(self._shards.items()):
                for key, raw in await scan_all(shard, INTENT_PREFIX):
                    intents.append((sid, key[len(INTENT_PREFIX) :], decode_ops(raw)))
            intents.sort(key=lambda item: item[1])  # txids start with a timestamp: replay in order
            for anchor, txid, remote in intents:
                await self._roll_forward(anchor, txid, remote)
            await self.flush_cleanups()
            for shard in list(self._shards.values()):
                orphans = [Delete(k) for k, _ in await scan_all(shard, APPLIED_PREFIX)]
                if orphans:
                    await shard.write(orphans)
            self._failed.clear()
            self._cleaner.broken = None
            if intents:
                log.info("= rolled forward %d cross-shard batches", len(intents))
            return len(intents)

    async def recover_member(self, member_id: str, at: float) -> int:
        """Roll forward the intents a dead member left (txids tagged ``member_tag(member_id)``),
        each once its slots are not frozen, like a write; returns how many.

        ``at`` is its last heartbeat: the death is claimed in the root with an ``Insert``, so
        of several members handling it one does (the others return 0); a failure releases
        the claim.
        """
        claim = REAPED_PREFIX + f"{member_id}/{at!r}".encode()
        try:
            await self._root().write([Insert(claim, b"")])
        except KeyExists:
            return 0
        try:
            return await self._roll_forward_member(member_id)
        except BaseException:
            try:
                await asyncio.shield(self._root().write([Delete(claim)]))
            except StoreError as exc:
                log.warning("= could not release the claim on member %s: %s", member_id[:16], exc)
            raise

    async def _roll_forward_member(self, member_id: str) -> int:
        tag = member_tag(member_id)
        found: list[tuple[int, bytes, list[Op]]] = []
        for sid, shard in list(self._shards.items()):
            for key, raw in await scan_all(shard, INTENT_PREFIX):
                if key.endswith(tag):
                    found.append((sid, key[len(INTENT_PREFIX) :], decode_ops(raw)))
        found.sort(key=lambda item: item[1])
        for anchor, txid, remote in found:
            await self._unfrozen([slot_of(op.key) for op in remote])
            epoch = self._enter()
            try:
                await self._roll_forward(anchor, txid, remote)
            finally:
                self._inflight.leave(epoch)
        if found:
            await self.flush_cleanups()
            log.info("= rolled forward %d cross-shard batches of member %s", len(found), member_id[:16])
        return len(found)

    async def _roll_forward(self, anchor: int, txid: bytes, remote: list[Op]) -> None:
        owner = self._owner
        parts: dict[int, list[Op]] = {}
        for op in remote:
            slot = slot_of(op.key)
            parts.setdefault(owner[slot], []).append(_physical(op, PFX[slot]))
        marker = APPLIED_PREFIX + txid
        for sid, phys in parts.items():
            if await self._shards[sid].get(marker) is None:
                await self._shards[sid].write([*phys, Put(marker, b"")])
        self._cleaner.queue(anchor, txid, list(parts))

    async def _retry_failed(self) -> None:
        async with self._recovering:
            while self._failed:
                anchor, txid, remote = self._failed[0]
                try:
                    await self._roll_forward(anchor, txid, remote)
                except StoreError as exc:
                    raise StoreUnavailable(f"an earlier cross-shard batch cannot be completed yet: {exc}") from exc
                self._failed.pop(0)

    async def flush_cleanups(self, quiet: bool = False) -> None:
        """Wait until the intents and markers of batches finished before this call are deleted."""
        await self._cleaner.flush(quiet)

    @property
    def cleanup_broken(self) -> StoreUnavailable | None:
        """The error of a failed cleanup, until ``recover()``: no slot may move meanwhile."""
        return self._cleaner.broken

    # ---- freeze / drain (for the rebalancer) -------------------------------------------

    def _enter(self) -> int:
        if not self._opened:
            raise StoreUnavailable("sharded store is not open")
        return self._inflight.enter()

    async def drain(self) -> None:
        """Wait for every read and write that started before this call."""
        await self._inflight.drain()

    async def freeze(self, slots: Sequence[int]) -> asyncio.Event:
        """Hold new writes to ``slots``, then wait for writes already running to finish; the
        freeze's token for ``thaw``. Cancelled while it waits, it thaws what it froze."""
        event = asyncio.Event()
        for slot in slots:
            old = self._frozen.get(slot)
            if old is not None:
                old.set()  # its waiters re-check and wait on the new event
            self._frozen[slot] = event
        try:
            await self.drain()
        except BaseException:
            self.thaw(slots, event)
            raise
        return event

    async def freeze_when_free(self, slots: Sequence[int]) -> asyncio.Event:
        """``freeze``, once no other freeze (a rebalance's) holds any of ``slots``."""
        while busy := next((self._frozen[s] for s in slots if s in self._frozen), None):
            await busy.wait()
        return await self.freeze(slots)

    def thaw(self, slots: Sequence[int], token: asyncio.Event | None = None) -> None:
        """Release ``slots``; with a ``token``, only those still frozen by that freeze."""
        for slot in slots:
            event = self._frozen.get(slot)
            if event is not None and (token is None or event is token):
                del self._frozen[slot]
                event.set()

    async def settle(self) -> None:
        """Complete failed cross-shard batches and delete finished intents (before a flip)."""
        if self._failed:
            await self._retry_failed()
        await self.flush_cleanups()
        if self.cleanup_broken is not None:
            raise self.cleanup_broken

    async def commit_map(self, new: ShardMap, *, replace_leader: bool = False) -> None:
        """Store ``new`` durably in the root shard, then route by it.

        Fenced: ``new.version`` must follow the map this process last read or committed, and
        is claimed by an ``Insert`` in the same batch as the map. During a rebalance a member
        may commit only if the map names it (or nobody) leader (``replace_leader``: a takeover).

        Raises:
            MapConflict: another member committed a newer map, or leads the rebalance.
        """
        if new.version != self._committed + 1:
            raise MapConflict(f"shard map version {new.version} does not follow {self._committed}")
        leader = self.map.leader
        if self.member_id and not replace_leader and self.map.busy and leader not in ("", self.member_id):
            raise MapConflict(f"member {leader[:16]} leads the rebalance")
        ops: list[Op] = [Insert(version_key(new.version), b""), Put(MAP_KEY, new.encode())]
        if new.version > KEPT_VERSIONS:
            ops.append(Delete(version_key(new.version - KEPT_VERSIONS)))
        try:
            await self._root().write(ops)
        except KeyExists:
            raise MapConflict(f"shard map version {new.version} was committed by another member") from None
        await self._adopt(new)

    async def _adopt(self, new: ShardMap) -> bool:
        """Route by ``new``: open its shards, take its root, thaw slots it no longer freezes.
        False (and nothing changed) if a newer map was adopted while the shards opened."""
        for sid, url in new.shards.items():
            await self.attach(sid, url)
        if new.version < self._committed:
            return False
        self.map, self._committed, self._owner = new, new.version, list(new.slots)
        self._root_sid, self.root_url = new.root, new.root_url
        self._write_cache()
        self._thaw_remote([slot for slot in self._remote_frozen if slot not in new.frozen])
        return True

    # ---- several processes: members, remote freezes, map reloads ---------------------

    async def heartbeat(self) -> None:
        """Record (refresh) this process as a member serving the store."""
        await self._register(self._root())

    async def _register(self, root: RecordStore) -> None:
        started = asyncio.get_running_loop().time()
        doc = json.dumps({"at": time.time()}).encode()
        await root.write([Put(MEMBER_PREFIX + self.member_id.encode(), doc)])
        self._registered_at = started

    def lease_left(self) -> float:
        """Seconds until other members may take this one for dead (``member_ttl`` after its
        last heartbeat); infinite for a process that is not a member."""
        if not self.member_id:
            return math.inf
        return self._registered_at + self.member_ttl - asyncio.get_running_loop().time()

    async def members(self) -> dict[str, float]:
        """Every registered member id and the wall-clock time of its last heartbeat."""
        found: dict[str, float] = {}
        for key, raw in await scan_all(self._root(), MEMBER_PREFIX):
            try:
                found[key[len(MEMBER_PREFIX) :].decode()] = float(json.loads(raw)["at"])
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                continue
        return found

    async def live_members(self, ttl: float) -> list[str]:
        """Member ids whose heartbeat is younger than ``ttl`` seconds (this one included)."""
        now = time.time()
        return [member for member, at in (await self.members()).items() if now - at < ttl]

    async def reload_map(self) -> bool:
        """Route by the root shard's map if it is newer (following a moved root); apply its
        frozen set; close shards it dropped. True if newer.

        Reloads run one at a time: two at once (a poll and a rebalance's ``sync``) could
        otherwise finish out of order and leave the older map in place."""
        async with self._reload_lock:
            return await self._reload_map()

    async def _reload_map(self) -> bool:
        raw = await self._root().get(MAP_KEY)
        if raw is None:
            return False
        new = ShardMap.decode(raw)
        if new.version <= self._committed:
            return False
        if new.root != self._root_sid:
            new = await self._follow_root(new)
        if not await self._adopt(new):
            return False  # a newer map came meanwhile: its shards and freezes stand
        gone = [sid for sid in self._shards if sid not in new.shards and sid != self._root_sid]
        if gone:
            await self.drain()  # reads that started before still use them
            for sid in gone:
                await self.detach(sid)
        if new.frozen and new.leader != self.member_id:
            await self.freeze_remote([s for s in new.frozen if s not in self._remote_frozen])
        return True

    async def _follow_root(self, new: ShardMap) -> ShardMap:
        """The root moved to shard ``new.root``: register there, then read its map (newer, or
        moved again)."""
        for _ in range(MAX_FORWARDS):
            await self.attach(new.root, new.root_url)
            root = self._shards[new.root]
            if self.member_id:
                await self._register(root)
            raw = await root.get(MAP_KEY)
            there = ShardMap.decode(raw) if raw is not None else new
            if there.version < new.version or there.root == new.root:
                log.info("= the root shard moved to shard %d", new.root)
                return new if there.version < new.version else there
            new = there
        raise StoreUnavailable(f"the shard map was forwarded more than {MAX_FORWARDS} times")

    async def freeze_remote(self, slots: Sequence[int], *, drain: bool = True, lease: float = 0.0) -> None:
        """Freeze ``slots`` for another member's rebalance step (writes wait); running writes
        finish and finished cross-shard batches are cleaned up before this returns. The slots
        thaw on ``release_remote`` or, after ``freeze_lease`` seconds, once the map is reloaded."""
        event = asyncio.Event()
        for slot in slots:
            old = self._frozen.get(slot)
            if old is not None and old is not event:
                old.set()  # its waiters re-check and wait on the new event
            self._frozen[slot] = event
            self._remote_frozen[slot] = event
        lease = max(lease, self.freeze_lease)
        asyncio.get_running_loop().call_later(lease, self._lease_over, list(slots), event)
        if drain:
            await self.drain()
            await self.settle()

    def _lease_over(self, slots: list[int], event: asyncio.Event) -> None:
        mine = [slot for slot in slots if self._remote_frozen.get(slot) is event]
        if mine and self._opened:
            asyncio.ensure_future(self._expire(mine, event))

    async def _expire(self, slots: list[int], event: asyncio.Event) -> None:
        while self._opened and any(self._remote_frozen.get(slot) is event for slot in slots):
            try:
                await self.reload_map()  # a flip committed before the lease ran out routes the thawed writes
            except (StoreError, OSError) as exc:
                log.warning("= frozen slots stay frozen, cannot reload the shard map: %s", exc)
                await asyncio.sleep(1.0)
                continue
            log.warning("= freeze lease of %d slots ran out without a release: thawed", len(slots))
            self._thaw_remote([slot for slot in slots if self._remote_frozen.get(slot) is event])
            return

    async def release_remote(self, slots: Sequence[int]) -> int:
        """Reload the map, thaw ``slots``, wait for reads routed by the old map; the map version."""
        await self.reload_map()
        self._thaw_remote([slot for slot in slots if slot in self._remote_frozen])
        await self.drain()
        return self.map.version

    def _thaw_remote(self, slots: Sequence[int]) -> None:
        for slot in slots:
            event = self._remote_frozen.pop(slot, None)
            if event is not None and self._frozen.get(slot) is event:
                del self._frozen[slot]
            if event is not None:
                event.set()

    def _write_cache(self) -> None:
        if self._cache_path is None:
            return
        doc = {"root": self.root_url, "map": json.loads(self.map.encode())}
        tmp = self._cache_path.with_name(self._cache_path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        tmp.replace(self._cache_path)

    # ---- status -------------------------------------------------------------------------

    def fingerprint(self) -> str:
        """The store's identity (``ShardMap.identity``): equal on every node serving these
        shards whatever the placement, so a rebalance does not split federation."""
        return self.map.identity()

    def describe(self) -> dict[str, Any]:
        counts = self.map.slot_counts()
        shards = []
        for sid, url in sorted(self.map.shards.items()):
            store = self._shards.get(sid)
            shards.append({"id": sid, "url": public_url(url), "backend": store.backend if store else "?",
                           "slots": counts.get(sid, 0)})  # fmt: skip
        return {
            "backend": self.backend,
            "map_version": self.map.version,
            "fingerprint": self.map.fingerprint(),
            "store_id": self.map.store_id,
            "root": self._root_sid,
            "leader": self.map.leader,
            "shards": shards,
            "rebalance": self.rebalance_status(),
            "cross_shard_batches": self.cross_shard_batches,
        }

    def rebalance_status(self) -> dict[str, Any]:
        running = self.rebalancer is not None and not self.rebalancer.done()
        return {
            "busy": self.map.busy,
            "running": running,
            "slots_to_move": len(self.map.moves),
            "cleanup": len(self.map.cleanup),
            "removing": self.map.removing,
            "error": self.rebalance_error,
            "retrying": self.rebalance_retry,
            "frozen": len(self._frozen),
        }

    async def record_counts(self) -> dict[int, int]:
        """Records per shard in the slots it owns (a full scan: for status, not hot paths)."""
        counts: dict[int, int] = {}
        owner = self._owner
        for sid, shard in list(self._shards.items()):
            total = 0
            async for chunk in pages(shard, b"", PFX[SLOT_COUNT], 5000):
                total += sum(1 for key, _ in chunk if owner[int.from_bytes(key[:2], "big")] == sid)
            counts[sid] = total
        return counts

    def _require_open(self) -> None:
        if not self._opened:
            raise StoreUnavailable("sharded store is not open")
