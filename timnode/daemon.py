"""The composition root: builds a running node from the layers and runs it until stopped.

Start-up order: data directory -> identity (PeerId) and network key -> data key -> store
(migrations run on open) -> IM services -> the port (WebSocket + HTTP, peer links on
``timnode.peer.v1``) -> link manager (bootstrap, peer exchange) and mDNS ->
``<data-dir>/node.json`` (the readiness file scripts wait for: url, pid, node id = PeerId).
Shutdown (SIGINT/SIGTERM) reverses it: peers are told (CLOSE "node shutting down"),
sessions are told (Kicked SHUTDOWN, close 1001), the port closes, pending cursor acks
are flushed, the store closes, node.json is removed.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import logging
import os
import pathlib
import secrets
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from google.protobuf.internal import api_implementation
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from im.accounts import Accounts
from im.codec import SUBPROTOCOLS
from im.features import FeatureOptions
from im.federation import Federation, store_fingerprint
from im.gateway import Gateway, GatewayOptions
from im.ids import MessageIdGenerator
from im.keys import KeySchema
from im.limits import LoginThrottle
from im.messaging import MessageLimits, Messenger
from im.metrics import ImMetrics
from im.service import ImService, ServiceOptions
from im.sessions import SessionRegistry
from im.spaces import SpacesOptions
from nat.service import NatConfig, NatService
from node import netkey
from node.identity import Identity
from node.link import SUBPROTOCOL as PEER_SUBPROTOCOL
from node.manager import LinkManager, ManagerConfig
from node.metrics import MetricSet
from node.peerstore import format_addr, split_host_port
from node.runtime_metrics import install_runtime_metrics
from node.server import HttpReply, PortServer, json_reply
from store.api import RecordStore
from store.crypto import Keyring, keyring_from_spec, load_or_create_data_key
from store.factory import open_store
from store.sharded import find_sharded
from timnode import __version__, store_admin
from timnode.admin_wiring import build_admin
from timnode.config import NodeConfig
from timnode.dht_wiring import PresencePublisher, add_dht_routes, build_dht, wire_nat
from timnode.metered_store import MeteredStore
from timnode.store_coordination import StoreCoordination
from web import static_routes

if TYPE_CHECKING:
    from dht.aio import DhtService
    from im.admin import AdminApi
    from node.mdns import MdnsDiscovery

__all__ = ["Node", "run_node"]

log = logging.getLogger("timnode")
disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series double the scrape


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


_STATIC_HEADERS = (("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"))
#: allocations between two young collections of the cyclic garbage collector (see ``Node.start``)
YOUNG_COLLECTION_THRESHOLD = 100_000


def _static_reply(content_type: str, body: bytes) -> Callable[[object], HttpReply]:
    reply = HttpReply(200, body, content_type, _STATIC_HEADERS)
    return lambda request: reply


class Node:
    """One running timnode: store, IM services and the port."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.data_dir = pathlib.Path(config.data_dir).expanduser()
        self.started_at = time.time()
        self.store: RecordStore | None = None
        self.store_journaled = False  # the embedded default store, acknowledged from its journal
        self.server: PortServer | None = None
        self.gateway: Gateway | None = None
        self.service: ImService | None = None
        self.node_id = ""  # the PeerId (base58)
        self.links: LinkManager | None = None
        self.mdns: MdnsDiscovery | None = None
        self.admin: AdminApi | None = None
        self.nat: NatService | None = None
        self.dht: DhtService | None = None
        self.federation: Federation | None = None
        self.store_coordination: StoreCoordination | None = None
        self.metrics_registry = CollectorRegistry()
        ProcessCollector(registry=self.metrics_registry)
        PlatformCollector(registry=self.metrics_registry)
        self.metrics = ImMetrics(self.metrics_registry)
        self._flusher: asyncio.Task[None] | None = None
        self._stop_runtime_metrics: Callable[[], None] | None = None

    def _keyring(self) -> Keyring:
        if self.config.no_store:
            return Keyring(secrets.token_bytes(32))
        if self.config.data_key:
            return keyring_from_spec(self.config.data_key)  # KEY or v2:KEY,v1:KEY[,blind:KEY]
        return Keyring(load_or_create_data_key(self.data_dir / "data.key"))

    async def start(self) -> None:
        if api_implementation.Type() != "upb":
            log.warning("protobuf runs its %s backend, ~30x slower than upb", api_implementation.Type())
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        identity = Identity.load_or_create(self.data_dir)
        self.node_id = str(identity.peer_id)
        self.links = self._build_links(identity, netkey.resolve_network_key(self.config.network_key or None))
        self.metrics_registry.register(self.links.metrics)
        self.dht = build_dht(self.config, self.links, identity, MetricSet(self.metrics_registry))
        keyring = self._keyring()
        url = self.config.resolved_store_url()
        if not self.config.no_store:  # <data-dir>/shards.json makes the store sharded
            url = store_admin.store_url(self.config.store, self.data_dir, url)
            if not self.config.store and url.startswith("sqlite://"):  # this node's own file
                url += "?writer=journal"  # acknowledged from the journal (store/sqlite_journaled.py)
                self.store_journaled = True  # and written by this node alone: send epochs
        backend = open_store(url, None if self.config.no_store else keyring)
        sharded = find_sharded(backend)
        if sharded is not None:  # register in the store as a member; StoreCoordination resumes
            sharded.member_id = str(self.links.local_peer)
            sharded.defer_resume()
        self.store = MeteredStore(backend, self.metrics_registry)
        await self.store.open()
        self.service = self._build_service(self.store, keyring)
        if self.config.resolved_admin_token():
            self.admin = build_admin(self, keyring)
        self.service.presence_hooks.append(PresencePublisher(self.dht).hook)
        durable = not self.config.no_store
        fingerprint = store_fingerprint(url, durable=durable, blind=keyring.blind, store=self.store)
        self.federation = Federation(self.service, self.links, fingerprint=fingerprint, durable=durable, dht=self.dht)
        self.federation.start()  # cross-node routing over /timnode/im/1, before the first LinkUp
        if sharded is not None:  # rebalances coordinated with the other nodes on these shards
            self.store_coordination = StoreCoordination(sharded, self.links)
            self.store_coordination.start()
        self._build_port()
        assert self.server is not None
        if not self.config.no_store and self.admin is not None:  # /admin/store/*: admin token only
            store_admin.install(self.server, self.store, self.data_dir, self.admin.authenticate)
        await self.server.start()
        await self._start_links()
        await self.dht.start()
        self._flusher = asyncio.create_task(self._flush_loop())
        gc.freeze()  # start-up objects (modules, classes, config) leave the collector's generations
        # Young collections every 100,000 allocations instead of 700. Objects of requests in
        # flight live through far fewer of them, so fewer reach the old generations and full
        # collections become rare (measured, bench chat --no-store: 2,576 young, 233 middle and
        # 20 full collections, 392 ms in all, became 154, 13 and 0, 140 ms at 10,000). With the
        # store on, the durable sends waiting for their group commit die in bursts when a group's
        # reply arrives, and the allocation count (floored at zero) still reached 10,000 every
        # 66 ms at the maximum rate: 13-15 young collections a second of ~5.4 ms each (the
        # requests in flight are the young generation), 8 % of the loop. At 100,000: none in the
        # measured windows, and 6 % less CPU per message (bench chat, interleaved runs).
        gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, 10, 10)
        runtime_metrics = MetricSet(self.metrics_registry)  # event-loop lag, collector pauses
        self._stop_runtime_metrics = install_runtime_metrics(runtime_metrics, asyncio.get_running_loop())
        self._write_ready_file()
        if self.config.no_store:
            log.warning("no-store mode: messages go to online devices only; accounts live in memory")
        log.info("timnode %s listening on %s (store: %s)", __version__, self.url, self.store.backend)

    def _build_service(self, store: RecordStore, keyring: Keyring) -> ImService:
        keys = KeySchema(keyring.blind)
        accounts = Accounts(store, keys, _now_ms, self.config.token_ttl)
        registry = SessionRegistry(self.config.max_devices, self.config.device_policy)
        node_bits = int.from_bytes(hashlib.sha256(self.node_id.encode()).digest()[:2], "big") % 1024
        messenger = Messenger(
            store=store,
            keys=keys,
            accounts=accounts,
            registry=registry,
            ids=MessageIdGenerator(node_bits),
            now_ms=_now_ms,
            durable=not self.config.no_store,
            limits=MessageLimits(self.config.max_message_bytes),
            metrics=self.metrics,
            exclusive_store=self.store_journaled,
        )
        loop = asyncio.get_running_loop()
        return ImService(
            accounts=accounts,
            registry=registry,
            messenger=messenger,
            throttle=LoginThrottle(),
            options=ServiceOptions(node_id=self.node_id, durable=not self.config.no_store),
            now=loop.time,
            now_ms=_now_ms,
            metrics=self.metrics,
            spaces_options=SpacesOptions(
                max_body=self.config.max_message_bytes,
                max_payload=self.config.max_payload_bytes,
                group_max_members=self.config.group_max_members,
                room_grace=self.config.room_grace,
            ),
            feature_options=FeatureOptions(
                recall_window=self.config.recall_window,
                edit_window=self.config.edit_window,
                stranger_policy=self.config.stranger_policy,
                offline_notice=self.config.offline_notice,
                max_body=self.config.max_message_bytes,
            ),
        )

    def _build_links(self, identity: Identity, network_key: bytes) -> LinkManager:
        c = self.config
        config = ManagerConfig(
            max_links=c.max_links,
            keepalive=c.keepalive,
            keepalive_timeout=c.keepalive_timeout,
            handshake_timeout=c.handshake_timeout,
            reconnect_max=c.reconnect_max,
            pex_interval=c.pex_interval,
            agent=f"timnode/{__version__}",
        )
        return LinkManager(identity, network_key, config)

    async def _start_links(self) -> None:
        """Announce the bound address, dial the bootstrap peers, start mDNS."""
        assert self.links is not None and self.server is not None
        host, _ = self.config.listen_host_port()
        port = self.server.bound_port
        if self.config.advertise:
            self.links.set_listen_addrs([format_addr(*split_host_port(self.config.advertise))])
        else:
            self.links.set_listen_addrs([format_addr(host, port)])
        for addr in self.config.bootstrap_addrs():
            self.links.add_bootstrap(addr)
        await self.links.start()
        nat_config = NatConfig(
            stun=not self.config.no_stun,
            traversal=not self.config.no_nat_traversal,
            max_relays=self.config.max_relays,
            relay_max_bytes=self.config.relay_max_bytes,
            relay_max_seconds=self.config.relay_max_seconds,
        )
        self.nat = NatService(self.links, nat_config)
        if self.dht is not None:
            wire_nat(self.config, self.dht, self.nat)  # reachability -> DHT mode; relays -> peer record
        await self.nat.start(host, port)  # STUN on UDP at the bound port number, reachability, relays
        if not self.config.no_mdns:
            from node.mdns import MdnsDiscovery  # zeroconf is imported only when mDNS runs

            self.mdns = MdnsDiscovery(
                self.links.local_peer,
                self.links.network_key,
                host,
                port,
                tuple(a for a in self.links.listen_addrs if "0.0.0.0" not in a),
                lambda peer, addrs: self.links.add_peer(peer, addrs, "mdns") if self.links else None,
            )
            try:
                await self.mdns.start()
            except OSError as exc:
                log.warning("mDNS disabled: %s", exc)
                self.mdns = None

    def _build_port(self) -> None:
        assert self.service is not None
        host, port = self.config.listen_host_port()
        options = GatewayOptions(
            rate_limit=self.config.rate_limit,
            rate_burst=self.config.rate_burst,
            auth_timeout=self.config.auth_timeout,
            max_connections=self.config.max_connections,
            max_conns_per_ip=self.config.max_conns_per_ip,
        )
        self.gateway = Gateway(self.service, options, asyncio.get_running_loop().time)
        self.server = PortServer(
            host, port, max_frame_bytes=self.config.max_frame_bytes, ping_interval=self.config.idle_timeout / 2
        )
        for name in SUBPROTOCOLS:
            self.server.add_subprotocol(name, self.gateway.handle)
        assert self.links is not None
        self.server.add_subprotocol(PEER_SUBPROTOCOL, self.links.accept, max_frame_bytes=65536)
        self.server.add_route("/healthz", self._healthz)
        self.server.add_route("/peers", self._peers)
        self.server.add_route("/metrics", self._metrics)
        for path, handler in (self.admin.routes() if self.admin else {}).items():
            self.server.add_route(path, handler)  # none without an admin token: /admin/... is 404
        assert self.dht is not None
        add_dht_routes(self.server, self.dht)
        for path, (content_type, body) in static_routes().items():
            self.server.add_route(path, _static_reply(content_type, body))

    @property
    def url(self) -> str:
        assert self.server is not None
        host, _ = self.config.listen_host_port()
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"ws://{shown}:{self.server.bound_port}"

    def status(self) -> dict[str, Any]:
        assert self.service is not None and self.gateway is not None and self.store is not None
        return {
            "status": "ok",
            "version": __version__,
            "node": self.node_id,
            "uptime_s": round(time.time() - self.started_at, 3),
            "store": self.store.describe() | {"durable": not self.config.no_store},
            "connections": len(self.gateway.connections),
            "online_users": self.service.registry.online_users(),
            "sessions": self.service.registry.session_count(),
            "messages": dict(self.service.messenger.stats),
            "peers": len(self.links.peers()) if self.links else 0,
            "dht": self.dht.status() if self.dht else None,
            "federation": self.federation.status() if self.federation else None,
        }

    def _healthz(self, request: object) -> HttpReply:
        return json_reply(self.status())

    def _peers(self, request: object) -> HttpReply:
        assert self.links is not None
        return json_reply(self.links.status() | (self.nat.status() if self.nat else {}))

    def _metrics(self, request: object) -> HttpReply:
        return HttpReply(200, generate_latest(self.metrics_registry), CONTENT_TYPE_LATEST)

    def _write_ready_file(self) -> None:
        info = {
            "url": self.url,
            "pid": os.getpid(),
            "node": self.node_id,
            "peer_id": self.node_id,
            "version": __version__,
        }
        tmp = self.data_dir / "node.json.tmp"
        tmp.write_text(json.dumps(info) + "\n")
        tmp.replace(self.data_dir / "node.json")

    async def _flush_loop(self) -> None:
        assert self.service is not None
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.service.messenger.flush_cursors()
            except Exception as exc:  # the store may be briefly unavailable
                log.warning("cursor flush failed: %s", exc)

    async def stop(self) -> None:
        log.info("shutting down")
        if self._flusher is not None:
            self._flusher.cancel()
        if self._stop_runtime_metrics is not None:
            self._stop_runtime_metrics()
        if self.mdns is not None:
            await self.mdns.stop()
        if self.dht is not None:
            await self.dht.stop()  # withdraws our presence entries while the links are up
        if self.federation is not None:
            await self.federation.stop()
        if self.store_coordination is not None:
            await self.store_coordination.stop()
        if self.nat is not None:
            await self.nat.stop()
        if self.links is not None:
            await self.links.stop()
        if self.gateway is not None:
            self.gateway.shutdown_sessions()
            await asyncio.sleep(0.05)
        if self.server is not None:
            await self.server.stop()
        if self.service is not None and self.store is not None:
            try:
                await self.service.messenger.flush_cursors()
            finally:
                await self.store.close()
        (self.data_dir / "node.json").unlink(missing_ok=True)
        log.info("stopped")


async def run_node(config: NodeConfig) -> None:
    """Run a node until SIGINT or SIGTERM."""
    node = Node(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await node.start()
    try:
        await stop.wait()
    finally:
        await node.stop()
