"""``DhtService``: the asyncio adapter that runs a ``DhtProtocol`` over the node's peer links.

The core (``dht.node``) addresses peers by PeerId bytes and never does I/O; this module maps
its commands onto ``node.manager.LinkManager`` (the only place in ``dht/`` with asyncio):

- ``SendRequest`` -> ``links.request(peer, "/timnode/kad/1", data)``, dialling the peer first
  (``links.connect`` with the addresses the core knows, ``DhtProtocol.addrs_of``) when it is
  not linked. The reply goes to ``receive_message``; a dial failure, a closed link or a peer
  without the protocol (``RequestFailed`` 404: a client-mode node) goes to ``request_failed``.
  A ``RequestTimeout`` is left to the core, whose own deadline is the same instant.
- An inbound request on ``/timnode/kad/1`` -> ``receive_message``; the core answers a request
  synchronously, so the one ``SendResponse`` the same call queues for that peer is the link
  reply. The handler is registered only in server mode (libp2p kad-dht): a client answers
  nothing, and asking it fails fast with "no handler".
- ``LinkUp``: the first one starts the join (``bootstrap`` through that peer, then our peer
  record is published); later ones ``ping`` the peer, whose answer as a server enters the table.
- Time: ``now`` is wall-clock seconds (record expiries are compared across nodes), read as
  ``loop.time() + offset`` with the offset fixed at start, so the one timer re-armed from
  ``get_timer()`` after every call is ``loop.call_at(timer_at - offset)``, exact.

Reachability (``nat``) plugs in at ``set_server(bool)`` (``--dht-mode auto``: server until
reachability says "private"); our relay reservations at ``set_relays`` (republished in the peer
record), and ``relay_dialer`` reaches a peer whose record lists relays but no dialable address.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from dht import dht_pb2
from dht.ids import presence_key
from dht.messages import PeerInfo
from dht.node import BootstrapCompleted, DhtConfig, DhtEvent, DhtProtocol, GetCompleted, PutCompleted
from dht.records import Device, decode_peer_value
from dht.rpc import SendRequest, SendResponse
from dht.status import describe_status, describe_table
from node.errors import P2PError, RequestFailed, RequestTimeout
from node.identity import Identity, PeerId
from node.manager import LinkDown, LinkEvent, LinkManager, LinkUp
from node.metrics import MetricSet

__all__ = ["PROTOCOL", "DhtService"]

PROTOCOL = "/timnode/kad/1"

log = logging.getLogger(__name__)
E = TypeVar("E", bound=DhtEvent)


_QUERY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _kind(data: bytes) -> str:
    """The DHT message kind (ping, find_node, get, put...) for metric labels."""
    try:
        return dht_pb2.DhtMessage.FromString(data).WhichOneof("body") or "unknown"
    except Exception:  # noqa: BLE001 - DecodeError: the core drops and counts it
        return "undecodable"


class _DhtMetrics:
    """``timnode_dht_queries_total{type,result}``, ``timnode_dht_query_duration_seconds{type}``,
    ``timnode_dht_requests_served_total{type}``."""

    def __init__(self, metrics: MetricSet) -> None:
        self._queries = metrics.counter(
            "timnode_dht_queries_total", "DHT requests this node sent, by type and result", ["type", "result"]
        )
        self._seconds = metrics.histogram(
            "timnode_dht_query_duration_seconds", "DHT request round trips", _QUERY_BUCKETS, ["type"]
        )
        self.served = metrics.counter("timnode_dht_requests_served_total", "DHT requests answered", ["type"])

    def done(self, kind: str, result: str, seconds: float) -> None:
        self._queries(kind, result).inc()
        self._seconds(kind).observe(seconds)


class DhtService:
    """One node's DHT over its links. Awaitable API; see the module docstring for the mapping."""

    def __init__(
        self,
        links: LinkManager,
        identity: Identity,
        config: DhtConfig | None = None,
        *,
        rng: random.Random | None = None,
        metrics: MetricSet | None = None,
    ) -> None:
        self.links = links
        self._metrics = _DhtMetrics(metrics or MetricSet())
        self.proto = DhtProtocol(identity, config=config, rng=rng or random.Random(), addrs=links.listen_addrs)
        self.running = False
        self.bootstrapped = False  # a join found at least one DHT server
        self._joining = False
        self._record_published = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._offset = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._waiters: dict[int, asyncio.Future[DhtEvent]] = {}
        self._dials: dict[bytes, asyncio.Future[bool]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self.relays: tuple[PeerId, ...] = ()  # our relays, published in our peer record (set_relays)
        # (peer, its advertised relays) -> linked? ; set by the daemon to NatService.dial_via_relays
        self.relay_dialer: Callable[[PeerId, tuple[PeerId, ...]], Awaitable[bool]] | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def now(self) -> float:
        """Wall-clock seconds, on the loop's monotonic clock."""
        assert self._loop is not None
        return self._loop.time() + self._offset

    async def start(self) -> None:
        """Listen for link events; join as soon as a link is up (at once if some already are)."""
        self._loop = asyncio.get_running_loop()
        self._offset = time.time() - self._loop.time()
        self.proto.addrs = tuple(self.links.listen_addrs)
        self.running = True
        self._unsubscribe = self.links.subscribe(self._on_link_event)
        self.set_server(self.proto.server)
        seeds = [PeerInfo(e.link.remote_peer.bytes, e.addrs) for e in self.links.entries()]
        if seeds:
            self._bootstrap(seeds)

    async def stop(self, timeout: float = 2.0) -> None:
        """Withdraw our presence entries (waiting at most ``timeout``), then stop everything."""
        if not self.running:
            return
        pending = [self._waiter(h) for h in self.proto.withdraw_all_presence(self.now())]
        self._pump()
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        self.running = False
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.links.unhandle(PROTOCOL)
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for fut in self._waiters.values():
            fut.cancel()
        self._waiters.clear()

    def set_server(self, server: bool) -> None:
        """Server mode (reachable: answer queries, enter others' tables) or client mode."""
        self.proto.set_server(server)
        if server and self.running:
            self.links.handle(PROTOCOL, self._serve)
        else:
            self.links.unhandle(PROTOCOL)
        log.info("= DHT %s mode", "server" if server else "client")

    # -- awaitable API --------------------------------------------------------------------------

    async def get_presence(self, user: str, fresh: bool = False) -> GetCompleted:
        """The live presence entries of ``user`` (``dht.records.live_devices`` flattens them)."""
        return await self._run(GetCompleted, lambda now: self.proto.get_presence(user, now, fresh=fresh))

    async def publish_presence(self, user: str, devices: Sequence[str | Device]) -> PutCompleted:
        """Publish this node's devices of ``user``; the core republishes them before expiry."""
        if not devices:
            return await self.withdraw_presence(user)
        listed = [d if isinstance(d, Device) else Device(d) for d in devices]
        return await self._run(PutCompleted, lambda now: self.proto.put_presence(user, listed, now))

    async def withdraw_presence(self, user: str) -> PutCompleted:
        return await self._run(PutCompleted, lambda now: self.proto.withdraw_presence(user, now))

    def invalidate_presence(self, user: str) -> None:
        """Forget the cached lookup of ``user`` (a delivery found the user gone)."""
        self.proto.invalidate(presence_key(user))

    async def publish_peer_record(self, relays: Sequence[PeerId] = ()) -> PutCompleted:
        """Publish our addresses (and relays); refreshed by the core until the node stops."""
        addrs, relay_ids = self.links.listen_addrs, [r.bytes for r in relays]
        return await self._run(PutCompleted, lambda now: self.proto.put_peer_record(addrs, relay_ids, now))

    def set_relays(self, relays: Sequence[PeerId]) -> None:
        """Our relay reservations changed (``nat``): republish our peer record with them."""
        self.relays = tuple(relays)
        if self._record_published and self.running:
            self._spawn(self._publish_own_record())

    async def find_peer(self, peer: PeerId, fresh: bool = False) -> tuple[tuple[str, ...], tuple[PeerId, ...]] | None:
        """``peer``'s signed (addresses, relays), or None when no record is found."""
        event = await self._run(GetCompleted, lambda now: self.proto.find_peer_record(peer.bytes, now, fresh=fresh))
        newest = max(event.entries, key=lambda e: e.seq, default=None)
        if newest is None:
            return None
        addrs, relays = decode_peer_value(newest.value)
        return addrs, tuple(PeerId(r) for r in relays)

    async def dial(self, peer: PeerId) -> bool:
        """Make sure a link to ``peer`` exists (addresses from the routing table or its peer record)."""
        return self.links.is_linked(peer) or await self._dial(peer.bytes, lookup=True)

    # -- status ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The ``dht`` section of ``/healthz``."""
        return describe_status(self.proto) | {"bootstrapped": self.bootstrapped}

    def table_size(self) -> int:
        """Contacts in the routing table (cheaper than ``status()``)."""
        return len(self.proto.table)

    def table_summary(self) -> dict[str, Any]:
        """``GET /dht``: the non-empty k-buckets and their contacts."""
        return describe_table(self.proto)

    # -- driving the core -----------------------------------------------------------------------

    async def _run(self, kind: type[E], call: Callable[[float], int]) -> E:
        if not self.running:
            raise P2PError("the DHT is not running")
        fut = self._waiter(call(self.now()))
        self._pump()
        event = await fut
        assert isinstance(event, kind)
        return event

    def _waiter(self, handle: int) -> asyncio.Future[DhtEvent]:
        assert self._loop is not None
        fut = self._waiters[handle] = self._loop.create_future()
        return fut

    def _pump(self, reply_to: bytes | None = None) -> bytes | None:
        """Send the core's commands, deliver its events, re-arm the timer; the reply for ``reply_to``."""
        reply = None
        for cmd in self.proto.messages_to_send():
            if isinstance(cmd, SendRequest):
                self._spawn(self._request(cmd))
            elif isinstance(cmd, SendResponse) and cmd.peer == reply_to and reply is None:
                reply = cmd.data
        while (event := self.proto.next_event()) is not None:
            self._on_event(event)
        self._arm_timer()
        return reply

    def _on_event(self, event: DhtEvent) -> None:
        if isinstance(event, BootstrapCompleted):
            self._joining, self.bootstrapped = False, event.table_size > 0
            log.info("= DHT join done: %d peers in the routing table", event.table_size)
            if self.bootstrapped and not self._record_published:
                self._record_published = True
                self._spawn(self._publish_own_record())
        fut = self._waiters.pop(getattr(event, "handle", -1), None)
        if fut is not None and not fut.done():
            fut.set_result(event)

    def _arm_timer(self) -> None:
        timer_at = self.proto.get_timer() if self.running else None
        if self._timer is not None and self._timer_at != timer_at:
            self._timer.cancel()
            self._timer = None
        if self._timer is None and timer_at is not None and self._loop is not None:
            self._timer_at = timer_at
            self._timer = self._loop.call_at(timer_at - self._offset, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = self.now()
        if self._timer_at is not None:  # call_at may fire up to one clock resolution early
            self.proto.handle_timer(max(now, self._timer_at))
        self._pump()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- links ------------------------------------------------------------------------------------

    def _serve(self, peer: PeerId, body: bytes) -> bytes | None:
        """``/timnode/kad/1`` handler: the core answers synchronously (see the module docstring)."""
        self._metrics.served(_kind(body)).inc()
        self.proto.receive_message(peer.bytes, body, self.now())
        return self._pump(reply_to=peer.bytes)

    async def _request(self, cmd: SendRequest) -> None:
        kind, started = _kind(cmd.data), time.perf_counter()
        try:
            peer = PeerId(cmd.peer)
            if not self.links.is_linked(peer) and not await self._dial(cmd.peer):
                raise P2PError("no address reachable")
            reply = await self.links.request(peer, PROTOCOL, cmd.data, max(0.01, cmd.deadline - self.now()))
            self._metrics.done(kind, "ok", time.perf_counter() - started)
        except RequestTimeout:
            self._metrics.done(kind, "timeout", time.perf_counter() - started)
            return  # the core's deadline (the same instant) counts it as a timeout
        except (P2PError, OSError) as exc:
            self._metrics.done(kind, "failed", time.perf_counter() - started)
            if self.running:
                if not isinstance(exc, RequestFailed):
                    log.debug("> %s failed: %s", cmd.peer.hex()[-8:], exc)
                self.proto.request_failed(cmd.peer, cmd.request_id, self.now())
                self._pump()
            return
        if self.running:
            self.proto.receive_message(cmd.peer, reply, self.now())
            self._pump()

    async def _dial(self, peer: bytes, *, lookup: bool = False) -> bool:
        """One dial per peer at a time; True once linked."""
        pending = self._dials.get(peer)
        if pending is None:
            assert self._loop is not None
            pending = self._dials[peer] = self._loop.create_future()
            self._spawn(self._dial_addrs(peer, pending, lookup))
        return await asyncio.shield(pending)

    async def _dial_addrs(self, peer: bytes, done: asyncio.Future[bool], lookup: bool) -> None:
        target = PeerId(peer)
        try:
            relays: tuple[PeerId, ...] = ()
            addrs = self.proto.addrs_of(peer)
            if not addrs and lookup:
                found = await self.find_peer(target)
                addrs, relays = found if found else ((), ())
            for addr in addrs:
                try:
                    await self.links.connect(addr, target)
                except Exception as exc:  # OSError, InvalidHandshake, P2PError, TimeoutError ...
                    log.debug("dial %s at %s failed: %s", target.short(), addr, exc or type(exc).__name__)
                if self.links.is_linked(target):
                    break
            if relays and not self.links.is_linked(target) and self.relay_dialer is not None:
                await self.relay_dialer(target, relays)  # a private peer: through its relays, then punch
        finally:
            self._dials.pop(peer, None)
            done.set_result(self.links.is_linked(target))

    def _on_link_event(self, event: LinkEvent) -> None:
        if not self.running or isinstance(event, LinkDown):
            return  # a lost link fails its pending requests (LinkClosed); the contact stays dialable
        assert isinstance(event, LinkUp)
        if self.bootstrapped or self._joining:
            self.proto.ping(event.peer.bytes, self.now())
            self._pump()
        else:
            self._bootstrap([PeerInfo(event.peer.bytes, event.addrs)])

    def _bootstrap(self, seeds: list[PeerInfo]) -> None:
        log.info("= DHT joining through %s", ", ".join(PeerId(s.peer).short() for s in seeds))
        self._joining = True
        self.proto.bootstrap(seeds, self.now())
        self._pump()

    async def _publish_own_record(self) -> None:
        if self.links.listen_addrs and self.running:
            event = await self.publish_peer_record(self.relays)
            log.info("= peer record stored on %d of %d peers", event.stored, event.attempted)
