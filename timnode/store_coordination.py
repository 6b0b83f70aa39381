"""Online rebalancing when several nodes serve the same sharded store (``/timnode/store/1``).

Every node with a sharded store registers in the root shard (``ShardedStore.member_id`` =
its PeerId, a heartbeat every ``heartbeat`` s) before it reads the map, and is a *member*
while its heartbeat is younger than ``member_ttl`` (``TIMNODE_STORE_MEMBER_TTL``, 10 s).
The node running a rebalance is the ``store.rebalance.Coordinator`` here: per step it
commits the frozen slots in the map, then asks every other live member over its link to
freeze them (writes wait, running ones finish); a member that is not linked or does not
acknowledge within ``timeout`` aborts the step (unfrozen everywhere, retried). After the
flip members reload the map and thaw; before old copies are deleted every member must
route by the new map (``sync``). A node that registers after the frozen slots were
committed reads them when it opens the store, one that registered before is asked; every
node also reloads the map at link-up and every ``poll`` s.

Dead members: every ``poll`` s the first live member (the smallest id) looks for members
whose heartbeat lapsed. If one of them leads the map's rebalance, it takes the rebalance
over (``store.rebalance.take_over``: the dead leader's frozen slots thaw everywhere, the
rebalance resumes here); then it rolls forward the cross-shard batches each dead member
left half applied (``ShardedStore.recover_member``).

Requests and replies are JSON: ``{"op": "freeze", "slots": [...], "lease": s}``,
``{"op": "release", "slots": [...]}``, ``{"op": "sync", "version": n}`` -> ``{"ok": true,
"version": n}`` or ``{"error": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable
from typing import Any

from node.manager import LinkManager, LinkUp
from store.errors import StoreError
from store.rebalance import StepAborted, start_rebalance, take_over
from store.sharded import ShardedStore

__all__ = ["PROTOCOL", "StoreCoordination"]

PROTOCOL = "/timnode/store/1"
log = logging.getLogger(__name__)


class StoreCoordination:
    """Freezes, releases and map reloads across the nodes sharing one sharded store."""

    def __init__(
        self,
        store: ShardedStore,
        links: LinkManager,
        *,
        timeout: float = 3.0,
        heartbeat: float = 2.0,
        member_ttl: float | None = None,
        poll: float = 1.0,
    ) -> None:
        self.store = store
        self.links = links
        self.me = store.member_id
        self.timeout = timeout
        self.heartbeat = heartbeat
        self.member_ttl = store.member_ttl if member_ttl is None else member_ttl
        self.poll = poll
        self._reaped: set[tuple[str, float]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: Any = None

    def start(self) -> None:
        self.store.coordinator = self
        self.links.handle(PROTOCOL, self._serve)
        self._unsubscribe = self.links.subscribe(self._on_link)
        self._spawn(self._heartbeats())
        self._spawn(self._polls())
        self._spawn(self._watch())
        self._spawn(self._resume())

    async def stop(self) -> None:
        self.links.unhandle(PROTOCOL)
        if self._unsubscribe is not None:
            self._unsubscribe()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_link(self, event: object) -> None:
        if isinstance(event, LinkUp):
            self._spawn(self._reload())

    async def _reload(self) -> None:
        try:
            await self.store.reload_map()
        except (StoreError, OSError) as exc:
            log.warning("= shard map reload failed: %s", exc)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await self.store.heartbeat()
            except (StoreError, OSError) as exc:
                log.warning("= store heartbeat failed: %s", exc)

    async def _polls(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            await self._reload()

    async def _resume(self) -> None:
        """Resume an interrupted rebalance unless its leader (another member) is alive."""
        if not self.store.map.busy:
            return
        leader = self.store.map.leader
        if leader == self.me:
            start_rebalance(self.store)
        elif leader in await self.store.live_members(self.member_ttl):
            log.info("= rebalance in progress, run by %s", leader[:16])
        else:
            await take_over(self.store)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            try:
                await self.check_members()
            except (StoreError, OSError) as exc:
                log.warning("= store member check failed: %s", exc)

    async def check_members(self) -> None:
        """On the first live member: take over a dead leader's rebalance, reap dead members."""
        store = self.store
        members = await store.members()
        now = time.time()
        live = sorted(m for m, at in members.items() if now - at < self.member_ttl)
        if not live or live[0] != self.me:
            return
        leader = store.map.leader
        running = store.rebalancer is not None and not store.rebalancer.done()
        if store.map.busy and leader not in ("", self.me, *live) and not running:
            await take_over(store)
        for member, at in members.items():
            if member not in live and (member, at) not in self._reaped:
                await store.recover_member(member, at)
                self._reaped.add((member, at))

    # ---- the Coordinator (store.rebalance) ---------------------------------------------

    async def _others(self) -> list[str]:
        return [m for m in await self.store.live_members(self.member_ttl) if m != self.me]

    async def _ask(self, member: str, doc: dict[str, Any], timeout: float) -> dict[str, Any]:
        peer = next((p for p in self.links.peers() if str(p) == member), None)
        if peer is None:
            raise StepAborted(f"store member {member[:16]} is not linked")
        try:
            raw = await self.links.request(peer, PROTOCOL, json.dumps(doc).encode(), timeout)
        except Exception as exc:  # noqa: BLE001 - RequestTimeout, RequestFailed, LinkClosed, ...
            raise StepAborted(f"store member {member[:16]} did not answer {doc['op']}: {exc!r}") from exc
        reply: dict[str, Any] = json.loads(raw)
        if not reply.get("ok"):
            raise StepAborted(f"store member {member[:16]} refused {doc['op']}: {reply.get('error')}")
        return reply

    async def _all(self, doc: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
        others = await self._others()
        results = await asyncio.gather(*(self._ask(m, doc, timeout) for m in others), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [r for r in results if isinstance(r, dict)]

    async def freeze(self, slots: list[int], lease: float) -> None:
        await self._all({"op": "freeze", "slots": slots, "lease": lease}, self.timeout)

    async def release(self, slots: list[int]) -> None:
        try:
            await self._all({"op": "release", "slots": slots}, self.timeout)
        except StepAborted as exc:  # their leases and polls thaw them; sync() checks before deletes
            log.warning("= release not acknowledged: %s", exc)

    async def sync(self, version: int) -> None:
        for reply in await self._all({"op": "sync", "version": version}, self.timeout):
            if int(reply.get("version", 0)) < version:
                raise StepAborted(f"a store member is at map version {reply.get('version')} < {version}")

    # ---- serving --------------------------------------------------------------------------

    async def _serve(self, peer: object, body: bytes) -> bytes:
        try:
            doc = json.loads(body)
            op = doc["op"]
            store = self.store
            if op == "freeze":
                await store.reload_map()
                await store.freeze_remote([int(s) for s in doc["slots"]], lease=float(doc["lease"]))
                reply: dict[str, Any] = {"ok": True, "version": store.map.version}
            elif op == "release":
                reply = {"ok": True, "version": await store.release_remote([int(s) for s in doc["slots"]])}
            elif op == "sync":
                await store.reload_map()
                await store.drain()
                reply = {"ok": True, "version": store.map.version}
            else:
                reply = {"error": f"unknown op {op!r}"}
        except (StoreError, OSError, ValueError, KeyError, TypeError) as exc:
            reply = {"error": str(exc)}
        return json.dumps(reply).encode()
