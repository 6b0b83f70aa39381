"""The DHT's place in the daemon: building ``DhtService``, presence publishing, HTTP routes.

Kept out of ``daemon.py`` so that the composition root only calls three things:
``build_dht(config, links, identity)``, ``PresencePublisher(dht).hook`` (appended to
``ImService.presence_hooks``), ``add_dht_routes(server, dht)`` and ``wire_nat(config, dht, nat)``.

Routes (read-only, no admin token: they show what any network member can look up anyway):

- ``GET /dht``: the routing table (non-empty k-buckets and their contacts).
- ``GET /dht/presence?user=U[&fresh=1]``: the merged live presence entries of ``U``, as this
  node's DHT finds them (``fresh=1`` bypasses the lookup cache). Used by the tests and for
  debugging cross-node routing.
- ``GET /dht/peer?id=PEERID[&fresh=1]``: a peer's signed addresses and relays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from dht.aio import DhtService
from dht.node import DhtConfig
from dht.records import decode_presence_value
from nat.service import NatService
from node.errors import DecodeError, P2PError
from node.identity import Identity, PeerId
from node.manager import LinkManager
from node.metrics import MetricSet
from node.server import HttpReply, PortServer, json_reply
from timnode.config import NodeConfig

__all__ = ["PresencePublisher", "add_dht_routes", "build_dht", "wire_nat"]

log = logging.getLogger(__name__)


def build_dht(
    config: NodeConfig, links: LinkManager, identity: Identity, metrics: MetricSet | None = None
) -> DhtService:
    """``--dht-mode`` auto|server -> server, client -> client; ``wire_nat`` makes auto follow reachability."""
    ttl = config.presence_ttl
    dht_config = DhtConfig(server=config.dht_mode != "client", record_ttl=ttl, republish_interval=ttl / 2)
    return DhtService(links, identity, dht_config, metrics=metrics)


def wire_nat(config: NodeConfig, dht: DhtService, nat: NatService) -> None:
    """Reachability drives the DHT mode (``auto``); relays go into the signed peer record.

    * ``--dht-mode auto``: client mode once reachability is "private" (nobody can dial us, so we
      must not enter routing tables), server mode otherwise ("public", or "unknown" again).
    * Every change of our relay reservations republishes our peer record with them, and a
      ``DhtService.dial`` that finds only relays in a peer's record links through one of them
      (``NatService.dial_via_relays``); the relayed link is then punched to ``rtc`` when possible.
    """
    if config.dht_mode == "auto":
        nat.subscribe(lambda reachability: dht.set_server(reachability != "private"))
    nat.subscribe_relays(dht.set_relays)

    async def via_relays(peer: PeerId, relays: tuple[PeerId, ...]) -> bool:
        return await nat.dial_via_relays(peer, relays, dht.dial)

    dht.relay_dialer = via_relays


class PresencePublisher:
    """``ImService`` presence hook: publishes a user's devices here, one burst at a time.

    A login storm or a reconnecting device calls the hook many times; only the latest device
    set per user is published, ``delay`` after the first change, and never two puts for one
    user at once. An empty set withdraws. Refreshing before expiry is the DHT core's job.
    """

    def __init__(self, dht: DhtService, delay: float = 0.05) -> None:
        self.dht = dht
        self.delay = delay
        self._latest: dict[str, tuple[str, ...]] = {}
        self._busy: set[str] = set()
        self._published: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def hook(self, user: str, devices: tuple[str, ...]) -> None:
        if not self.dht.running:
            return  # shutting down: DhtService.stop withdraws everything
        self._latest[user] = devices
        if user not in self._busy:
            self._busy.add(user)
            task = asyncio.ensure_future(self._drain(user))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self, user: str) -> None:
        try:
            await asyncio.sleep(self.delay)
            while user in self._latest and self.dht.running:
                devices = self._latest.pop(user)
                if not devices and user not in self._published:
                    continue
                try:
                    event = await self.dht.publish_presence(user, devices)
                except P2PError as exc:
                    log.warning("presence of %s not published: %s", user, exc)
                    continue
                (self._published.add if devices else self._published.discard)(user)
                log.info(
                    "= presence %s (%d devices) stored on %d of %d", user, len(devices), event.stored, event.attempted
                )
        finally:
            self._busy.discard(user)


def _query(request: Any) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(request.path).query).items()}


def add_dht_routes(server: PortServer, dht: DhtService) -> None:
    async def presence(request: Any) -> HttpReply:
        q = _query(request)
        if not q.get("user"):
            return json_reply({"error": "user= is required"}, 400)
        event = await dht.get_presence(q["user"], fresh=q.get("fresh") == "1")
        return json_reply({"user": q["user"], "cached": event.cached, "hops": event.hops, "entries": [
            {"node": str(PeerId(e.publisher)), "seq": e.seq, "expires": e.expires,
             "devices": [{"device_id": d.device_id, "status": d.status} for d in decode_presence_value(e.value)[1]]}
            for e in event.entries
        ]})  # fmt: skip

    async def peer(request: Any) -> HttpReply:
        q = _query(request)
        try:
            target = PeerId.from_base58(q.get("id", ""))
        except DecodeError:
            return json_reply({"error": "id= must be a PeerId"}, 400)
        found = await dht.find_peer(target, fresh=q.get("fresh") == "1")
        addrs: Sequence[str] = found[0] if found else ()
        relays = [str(r) for r in found[1]] if found else []
        return json_reply({"peer_id": str(target), "found": found is not None, "addrs": list(addrs), "relays": relays})

    server.add_route("/dht", lambda request: json_reply(dht.table_summary()))
    server.add_route("/dht/presence", presence)
    server.add_route("/dht/peer", peer)
