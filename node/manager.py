"""The link manager: one link per peer, dialling, reconnects, peer exchange (asyncio adapter).

``LinkManager`` is what upper layers (DHT, cross-node IM routing) use to talk to peers::

    manager = LinkManager(identity, network_key, ManagerConfig(max_links=64))
    manager.handle("/timnode/dht/1", on_dht)        # (peer, body) -> bytes | None | Awaitable
    manager.subscribe(on_event)                     # LinkUp / LinkDown
    port_server.add_subprotocol(SUBPROTOCOL, manager.accept)
    manager.set_listen_addrs(["ws://10.0.0.5:7400"]); manager.add_bootstrap("host:7400")
    await manager.start()
    reply = await manager.request(peer, "/timnode/dht/1", body)   # NotLinked / RequestTimeout / ...
    await manager.send(peer, "/timnode/dht/1", body)               # one-way
    manager.send_droppable(peer, "/timnode/im/1", body)            # one-way, may be lost (live data)
    await manager.stop()                                           # CLOSE "node shutting down" to all

Rules it enforces:

- at most one link per peer. When both sides dial at once, both keep the link *dialled by the
  smaller PeerId* (bytes order) and close the other with "duplicate link", so both agree
  without talking; a second link in the same direction replaces the first (the peer restarted);
- at most ``max_links`` links; further inbound links are closed with "too many links";
- keepalive: each link pings every ``keepalive`` seconds; no PONG in ``keepalive_timeout``
  closes it (dead-peer detection); a closed link is reported at once (``LinkDown``);
- reconnect to bootstrap and recently linked peers with full-jitter backoff (``PeerBook``);
- peer exchange ("/timnode/pex/1"): on link-up and every ``pex_interval`` seconds, ask linked
  peers for the peers they are linked to, and dial the unknown ones while under the limit.

The sans-I/O parts live in ``node/peerstore.py``; this module owns the tasks and the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError as ProtobufDecodeError
from websockets.asyncio.server import ServerConnection

from node import netkey
from node import peer_pb2 as pb
from node.errors import AbortCode, DecodeError, LinkClosed, P2PError
from node.identity import Identity, PeerId
from node.link import Handlers, Link, LinkConfig, accept, dial
from node.metrics import MetricSet
from node.peerstore import BackoffConfig, DialTarget, PeerBook, dialable_addrs, parse_addr, split_host_port

__all__ = [
    "PEX_PROTOCOL",
    "LinkDown",
    "LinkEntry",
    "LinkEvent",
    "LinkManager",
    "LinkUp",
    "ManagerConfig",
    "NotLinked",
    "PeerHandler",
]

log = logging.getLogger(__name__)

PEX_PROTOCOL = "/timnode/pex/1"
PEX_MAX_PEERS = 64
PROBE_AGENT_SUFFIX = "+probe"  # Identify agent of a dial-back probe (nat/autonat.py): never registered
_TRANSPORT_RANK = {"relay": 0}  # a direct link (ws, rtc: 1) replaces a relayed one, never the reverse

PeerHandler = Callable[[PeerId, bytes], "bytes | None | Awaitable[bytes | None]"]


class NotLinked(LinkClosed):
    """There is no link to the peer (``request``/``send``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagerConfig:
    max_links: int = 64
    keepalive: float = 15.0  # ping interval (0: off)
    keepalive_timeout: float = 10.0  # no PONG this long: the peer is dead
    handshake_timeout: float = 10.0
    request_timeout: float = 10.0
    pex_interval: float = 30.0  # 0: only on link-up
    reconnect_base: float = 0.5
    reconnect_max: float = 30.0
    coalesce: bool = True
    agent: str = "timnode"


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkUp:
    peer: PeerId
    direction: str  # "inbound" | "outbound"
    addrs: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkDown:
    peer: PeerId
    reason: str


LinkEvent = LinkUp | LinkDown


@dataclass(slots=True)
class LinkEntry:
    """A live link and what ``/peers`` shows about it."""

    link: Link
    direction: str
    since: float  # wall clock (time.time())
    addrs: tuple[str, ...]
    transport: str = "ws"

    def describe(self) -> dict[str, Any]:
        rtt = self.link.rtt
        return {
            "peer_id": str(self.link.remote_peer),
            "transport": self.transport,
            "direction": self.direction,
            "since": round(self.since, 3),
            "rtt_ms": None if rtt is None else round(rtt * 1000, 3),
            "addresses": list(self.addrs),
            "agent": self.link.remote_info.agent,
            "droppable": {
                "unordered": self.link.transport_unordered,
                "dropped": self.link.dropped,
                **self.link.unordered_stats,
            },
        }


class LinkManager:
    """Keeps this node linked to its peers (see the module docstring)."""

    def __init__(
        self,
        identity: Identity,
        network_key: bytes,
        config: ManagerConfig | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.identity = identity
        self.local_peer = identity.peer_id
        self.network_key = network_key
        self.config = config or ManagerConfig()
        backoff = BackoffConfig(base=self.config.reconnect_base, cap=self.config.reconnect_max)
        self.book = PeerBook(self.local_peer, backoff, rng)
        self.handlers = Handlers()
        self.handlers.add(PEX_PROTOCOL, self._serve_pex)
        self.listen_addrs: tuple[str, ...] = ()
        self._links: dict[PeerId, LinkEntry] = {}
        self._dialing: set[str] = set()
        self._subscribers: list[Callable[[LinkEvent], None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._running = False
        #: link traffic counters; the daemon registers this set on its /metrics registry
        self.metrics = MetricSet()
        self._link_bytes = self.metrics.counter(
            "timnode_link_bytes_total", "Peer link bytes on the wire (sealed), by transport", ["transport", "direction"]
        )
        #: droppable messages dropped on any link (queue overflow); the IM layer points this at
        #: ``timnode_stream_frames_dropped_total`` (the name is registered there, not here)
        self.on_drop: Callable[[int], None] | None = None
        self.dropped = 0
        self._link_frames = self.metrics.counter(
            "timnode_link_frames_total", "Peer link frames (before sealing), by transport", ["transport", "direction"]
        )

    # -- configuration and upper-layer API ---------------------------------------------------------

    def set_listen_addrs(self, addrs: list[str] | tuple[str, ...]) -> None:
        """Addresses (``ws://host:port``) announced in Identify and, through peers, in pex."""
        self.listen_addrs = tuple(addrs)

    def add_bootstrap(self, text: str) -> None:
        """Dial ``host:port[/p2p/<PeerId>]`` and keep redialling it whenever it is not linked."""
        url, expected = parse_addr(text)
        self.book.add_bootstrap(url, expected)
        self._wake.set()

    def add_peer(self, peer: PeerId, addrs: list[str] | tuple[str, ...], source: str) -> None:
        """A peer found by another layer (mDNS, DHT): link to it while under the limit."""
        if self.book.learn(peer, addrs, _now(), source):
            log.info("= learned %s from %s (%s)", peer.short(), source, ", ".join(addrs))
        self._wake.set()

    def handle(self, protocol: str, handler: PeerHandler) -> None:
        """Serve ``protocol`` on every link: ``handler(peer, body)`` returns the response body."""
        self.handlers.add(protocol, lambda link, body: handler(link.remote_peer, body))

    def unhandle(self, protocol: str) -> None:
        self.handlers.remove(protocol)

    def subscribe(self, callback: Callable[[LinkEvent], None]) -> Callable[[], None]:
        """Call ``callback(LinkUp | LinkDown)`` on link changes; returns an unsubscribe function."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def peers(self) -> list[PeerId]:
        return list(self._links)

    def is_linked(self, peer: PeerId) -> bool:
        return peer in self._links

    def entries(self) -> list[LinkEntry]:
        return list(self._links.values())

    def link(self, peer: PeerId) -> Link:
        entry = self._links.get(peer)
        if entry is None:
            raise NotLinked(f"not linked to {peer.short()}")
        return entry.link

    async def request(self, peer: PeerId, protocol: str, body: bytes, timeout: float | None = None) -> bytes:
        """Request/response over the link to ``peer``.

        Raises:
            NotLinked, RequestTimeout, RequestFailed, LinkClosed.
        """
        link = self.link(peer)
        try:
            return await link.request(protocol, body, timeout)
        except LinkClosed:
            replacement = self._links.get(peer)  # lost a duplicate-link race: retry once
            if replacement is None or replacement.link is link:
                raise
            return await replacement.link.request(protocol, body, timeout)

    async def send(self, peer: PeerId, protocol: str, body: bytes) -> None:
        """One-way message to ``peer``'s ``protocol`` handler. Raises ``NotLinked``, ``LinkClosed``."""
        await self.link(peer).send(protocol, body)

    def send_droppable(self, peer: PeerId, protocol: str, body: bytes) -> bool:
        """One-way message that may be lost (live data): bounded drop-oldest queue per link, and
        the unordered channel on ``rtc`` links (``Link.send_droppable``). False if not linked."""
        entry = self._links.get(peer)
        return entry is not None and entry.link.send_droppable(protocol, body)

    def _link_dropped(self, n: int) -> None:
        self.dropped += n
        if self.on_drop is not None:
            self.on_drop(n)

    def adopt(self, link: Link, direction: str, transport: str, via: str = "") -> bool:
        """Keep a link established over another transport (``nat``: "rtc", "relay").

        The same rules as for WebSocket links apply; a direct link replaces a relayed one to
        the same peer (upgrade) and a relayed one never replaces a direct one. True if kept.
        """
        return self._register(link, direction, via, transport)

    def transport_of(self, peer: PeerId) -> str | None:
        entry = self._links.get(peer)
        return None if entry is None else entry.transport

    async def connect(self, url: str, expected: PeerId | None = None) -> PeerId:
        """Dial ``ws://host:port`` now and return the linked PeerId (raises the dial's error)."""
        link = await dial(
            url,
            self.identity,
            self.network_key,
            expected,
            self.config.handshake_timeout,
            config=self._link_config(),
            handlers=self.handlers,
        )
        peer = link.remote_peer
        if not self._register(link, "outbound", url):
            raise LinkClosed(link.close_reason or "link not kept")
        return peer

    def status(self) -> dict[str, Any]:
        """The ``/peers`` document."""
        return {
            "peer_id": str(self.local_peer),
            "addresses": list(self.listen_addrs),
            "network": netkey.fingerprint(self.network_key),
            "max_links": self.config.max_links,
            "known": len(self.book),
            "peers": [e.describe() for e in sorted(self._links.values(), key=lambda e: e.since)],
        }

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        self._running = True
        self._spawn(self._maintain())
        if self.config.pex_interval > 0:
            self._spawn(self._pex_loop())

    async def stop(self, reason: str = "node shutting down") -> None:
        """Tell every peer (CLOSE with ``reason``, code SHUTDOWN) and stop dialling."""
        self._running = False
        for task in list(self._tasks):
            task.cancel()
        entries = list(self._links.values())
        self._links.clear()
        await asyncio.gather(*(e.link.close(reason, AbortCode.SHUTDOWN) for e in entries), return_exceptions=True)
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def accept(self, ws: ServerConnection) -> None:
        """``PortServer`` handler for subprotocol ``timnode.peer.v1``: runs until the link closes."""
        if not self._running:
            await ws.close(4000 + AbortCode.SHUTDOWN, "node shutting down")
            return
        try:
            link = await accept(
                ws,
                self.identity,
                self.network_key,
                self.config.handshake_timeout,
                config=self._link_config(),
                handlers=self.handlers,
            )
        except P2PError:
            return  # logged by accept(), the WebSocket is closed
        if link.remote_info.agent.endswith(PROBE_AGENT_SUFFIX):
            await link.wait_closed()  # a reachability dial-back: proven, not a peer link
            return
        self._register(link, "inbound")
        await link.wait_closed()  # the WebSocket lives as long as this handler

    # -- internals: links -----------------------------------------------------------------------------

    def link_config(self) -> LinkConfig:
        """The configuration links of this manager run with (other transports use it too)."""
        return self._link_config()

    def _link_config(self) -> LinkConfig:
        return LinkConfig(
            handshake_timeout=self.config.handshake_timeout,
            request_timeout=self.config.request_timeout,
            ping_interval=self.config.keepalive,
            ping_timeout=self.config.keepalive_timeout,
            coalesce=self.config.coalesce,
            agent=self.config.agent,
            listen_addrs=self.listen_addrs,
        )

    def _register(self, link: Link, direction: str, via: str = "", transport: str = "ws") -> bool:
        """Keep ``link`` or close it (self, duplicate, limit, shutdown); True if kept."""
        peer = link.remote_peer
        if peer == self.local_peer:
            self.book.is_self(via)
            self._spawn(link.close("dialled self"))
            return False
        if not self._running:
            self._spawn(link.close("node shutting down", AbortCode.SHUTDOWN))
            return False
        old = self._links.get(peer)
        if old is not None and not _keep_new(self.local_peer, peer, old.direction, direction, old.transport, transport):
            self._spawn(link.close("duplicate link"))
            return False
        if old is None and len(self._links) >= self.config.max_links:
            log.info("refusing link with %s: %d links already (max-links)", peer.short(), len(self._links))
            self._spawn(link.close("too many links"))
            return False
        remote_host = split_host_port(link.remote_addr)[0] if link.remote_addr else ""
        addrs = dialable_addrs(link.remote_info.listen_addrs, remote_host)
        entry = LinkEntry(link, direction, time.time(), addrs, transport)
        link.on_drop = self._link_dropped
        self._meter(link, entry.transport)
        self._links[peer] = entry
        self.book.link_up(peer, addrs, _now(), via)
        self._spawn(self._watch(entry))
        if old is not None:
            if old.transport != transport:
                log.info("= link with %s moves from %s to %s", peer.short(), old.transport, transport)
                entry.addrs = old.addrs or addrs
                entry.since = old.since
            else:
                log.info("= duplicate link with %s: keeping the %s one", peer.short(), direction)
            self._spawn(old.link.close("duplicate link" if old.transport == transport else f"moved to {transport}"))
            return True
        log.info("= linked with %s (%s, %s)", peer, direction, ", ".join(addrs) or "no address")
        self._emit(LinkUp(peer=peer, direction=direction, addrs=addrs))
        self._spawn(self._greet(peer))
        return True

    def _meter(self, link: Link, transport: str) -> None:
        """Count the link's frames and sealed bytes per transport (wraps its channel's seal/open)."""
        channel = link.channel
        seal, open_ = channel.seal, channel.open
        bytes_out, bytes_in = self._link_bytes(transport, "out"), self._link_bytes(transport, "in")
        frames_out, frames_in = self._link_frames(transport, "out"), self._link_frames(transport, "in")

        def metered_seal(messages: Iterable[bytes], *, coalesce: bool = True) -> list[bytes]:
            batch = list(messages)
            sealed = seal(batch, coalesce=coalesce)
            frames_out.inc(len(batch))
            bytes_out.inc(sum(map(len, sealed)))
            return sealed

        def metered_open(frame: bytes) -> list[bytes]:
            opened = open_(frame)
            bytes_in.inc(len(frame))
            frames_in.inc(len(opened))
            return opened

        setattr(channel, "seal", metered_seal)  # noqa: B010 - instance override, not a class change
        setattr(channel, "open", metered_open)  # noqa: B010

    async def _watch(self, entry: LinkEntry) -> None:
        await entry.link.wait_closed()
        peer = entry.link.remote_peer
        if self._links.get(peer) is not entry:
            return  # replaced by a newer link, or stop() took it
        del self._links[peer]
        self.book.link_down(peer, _now())
        log.info("= link with %s down: %s", peer, entry.link.close_reason)
        self._emit(LinkDown(peer=peer, reason=entry.link.close_reason or "closed"))
        self._wake.set()

    def _emit(self, event: LinkEvent) -> None:
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                log.exception("link event subscriber failed")

    def _spawn(self, coro: Awaitable[Any]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- internals: dialling ---------------------------------------------------------------------------

    async def _maintain(self) -> None:
        """Dial due entries while under the limit; sleep until the book's next timer or a wake-up."""
        while self._running:
            self._wake.clear()
            now = _now()
            linked = set(self._links)
            room = self.config.max_links - len(self._links) - len(self._dialing)
            for target in self.book.due(now, linked):
                if room <= 0:
                    break
                if target.key not in self._dialing and target.url not in self.listen_addrs:
                    room -= 1
                    self._dialing.add(target.key)
                    self._spawn(self._dial(target))
            timer = self.book.get_timer(linked)
            delay = 5.0 if timer is None else min(5.0, max(0.05, timer - now))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _dial(self, target: DialTarget) -> None:
        try:
            await self.connect(target.url, target.expected)
        except Exception as exc:  # OSError, websockets' InvalidHandshake, P2PError, TimeoutError ...
            failures = self.book.dial_failed(target.key, _now())
            level = logging.INFO if failures <= 1 else logging.DEBUG
            log.log(level, "dial %s failed (%d in a row): %s", target.url, failures, exc or type(exc).__name__)
        finally:
            self._dialing.discard(target.key)
            self._wake.set()

    # -- internals: peer exchange -------------------------------------------------------------------------

    def _serve_pex(self, link: Link, body: bytes) -> bytes:
        """Answer "/timnode/pex/1": the peers we are linked to (but the asker), with addresses."""
        reply = pb.PexResponse()
        for peer, entry in list(self._links.items())[:PEX_MAX_PEERS]:
            if peer != link.remote_peer and entry.addrs:
                reply.peers.add(peer_id=peer.bytes, addrs=entry.addrs)
        return reply.SerializeToString()

    async def _greet(self, peer: PeerId) -> None:
        """On link-up: measure the RTT once, then exchange peers."""
        with contextlib.suppress(P2PError):
            await self.link(peer).ping()
        await self._exchange(peer)

    async def _exchange(self, peer: PeerId) -> None:
        """Ask ``peer`` for its peers and learn them."""
        try:
            body = await self.request(peer, PEX_PROTOCOL, b"")
            reply = pb.PexResponse.FromString(body)
        except P2PError as exc:
            log.debug("pex with %s failed: %s", peer.short(), exc)
            return
        except ProtobufDecodeError:
            log.info("pex with %s: reply is not a PexResponse", peer.short())
            return
        for item in reply.peers[:PEX_MAX_PEERS]:
            try:
                found = PeerId(item.peer_id)
            except DecodeError:
                continue
            addrs = dialable_addrs(item.addrs)
            if addrs and found != self.local_peer:
                self.add_peer(found, addrs, f"pex {peer.short()}")

    async def _pex_loop(self) -> None:
        while self._running:
            await asyncio.sleep(self.config.pex_interval)
            for peer in list(self._links):
                self._spawn(self._exchange(peer))


def _keep_new(
    local: PeerId,
    remote: PeerId,
    old_direction: str,
    new_direction: str,
    old_transport: str = "ws",
    new_transport: str = "ws",
) -> bool:
    """Which of two links to one peer survives: a direct one over a relayed one, else the one
    dialled by the smaller PeerId.

    Both ends evaluate this with the roles swapped and reach the same answer. Two links in
    the same direction mean the dialler redialled (restart, or it missed the close): keep the new.
    """
    old_rank, new_rank = _TRANSPORT_RANK.get(old_transport, 1), _TRANSPORT_RANK.get(new_transport, 1)
    if old_rank != new_rank:
        return new_rank > old_rank
    if old_direction == new_direction:
        return True
    local_dialled_winner = local.bytes < remote.bytes
    return (new_direction == "outbound") == local_dialled_winner


def _now() -> float:
    return asyncio.get_running_loop().time()
