"""The DHT protocol object: routing table, RPCs, lookups, records and their timers (sans-I/O).

Kademlia as in Maymounkov & Mazières 2002 with libp2p's client/server split:

- §2.2 every message from a *server* updates its k-bucket; a full bucket pings its
  least-recently seen contact and keeps the newcomer in the replacement cache (§4.1).
- §2.3 PING, FIND_NODE, GET (the paper's FIND_VALUE) and PUT (STORE); iterative lookups with
  ``alpha`` requests in flight (``dht.lookup``); joining = a lookup of our own id, then a
  refresh of the buckets farther than our closest neighbour; buckets not looked up for
  ``bucket_refresh_interval`` are refreshed with a random id.
- §2.5 storers push each key to the current k closest every ``replicate_interval`` (a PUT
  received for the key postpones this, so about one storer per interval does it); the
  publisher re-signs its own entries (higher seq, new expiry) every ``republish_interval``,
  before they expire; every node drops entries at their expiry.
- Client mode (libp2p kad-dht): a node others cannot reach sends requests with
  ``server=False``, is never added to routing tables and answers no request.
- Lookup results are cached for ``cache_ttl`` (``get(..., fresh=True)`` bypasses the cache).

Contract (STYLE §3.2): after ``receive_message()``, ``request_failed()``, ``handle_timer()``
or any API call, drain ``messages_to_send()`` (``SendRequest`` / ``SendResponse`` commands to
peers addressed by PeerId bytes), then ``next_event()`` until ``None``, then re-arm one timer
at ``get_timer()``. ``now`` is wall-clock seconds: record expiries are compared across nodes.
Remote input never raises; it is dropped and counted in ``stats``.
"""

from __future__ import annotations

import enum
import heapq
import logging
import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from dht.cache import LookupCache
from dht.errors import DecodeError, LocalProtocolError
from dht.ids import KEY_BYTES, bucket_index, distance, node_id, peer_record_key, presence_key, random_id_in_bucket
from dht.lookup import Candidate, Lookup
from dht.messages import (
    FindNode,
    FindNodeResult,
    Get,
    GetResult,
    Message,
    PeerInfo,
    Ping,
    Pong,
    Put,
    PutResult,
    decode_message,
)
from dht.records import (
    Device,
    RecordEntry,
    RecordKind,
    RecordLimits,
    RecordStore,
    Rejection,
    Signer,
    Verifier,
    decode_presence_value,
    encode_peer_value,
    encode_presence_value,
    merge_entries,
    sign_entry,
)
from dht.routing import RoutingTable
from dht.rpc import Command, PendingRequest, RpcManager

__all__ = [
    "BootstrapCompleted",
    "DhtConfig",
    "DhtEvent",
    "DhtProtocol",
    "DhtStats",
    "FindNodeCompleted",
    "GetCompleted",
    "PutCompleted",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class DhtConfig:
    """Parameters; times in seconds. Defaults follow the paper (k=20, alpha=3, hourly refresh)."""

    k: int = 20
    alpha: int = 3
    rpc_timeout: float = 5.0
    server: bool = True
    record_ttl: float = 3600.0  # lifetime of the entries we publish
    republish_interval: float = 1800.0  # publisher re-signs and re-puts, before record_ttl
    replicate_interval: float = 900.0  # storers push keys to the current k closest (§2.5)
    replicate_jitter: float = 0.5  # fraction of replicate_interval added at random
    bucket_refresh_interval: float = 3600.0  # §2.3
    refresh_on_join: bool = True  # §2.3: refresh buckets farther than the closest neighbour
    get_quorum: int = 0  # a GET ends once this many peers returned entries; 0 = walk to the k closest
    cache_ttl: float = 30.0
    cache_size: int = 1024
    max_failures: int = 2  # failed RPCs in a row before a contact is evicted
    limits: RecordLimits = field(default_factory=RecordLimits)


# -- events -----------------------------------------------------------------------------------


class DhtEvent:
    """Base of the events the core reports through ``next_event()``."""

    __slots__ = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class GetCompleted(DhtEvent):
    """``get()`` finished: the merged live entries (newest per publisher, no tombstones)."""

    handle: int
    key: bytes
    entries: tuple[RecordEntry, ...]
    closest: tuple[PeerInfo, ...] = ()
    hops: int = 0  # lookup depth at which the first entry was found (else of the closest peer)
    queried: int = 0
    cached: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PutCompleted(DhtEvent):
    """A put (or withdraw) reached ``stored`` of the ``attempted`` closest servers."""

    handle: int
    key: bytes
    stored: int
    attempted: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FindNodeCompleted(DhtEvent):
    handle: int
    target: bytes
    closest: tuple[PeerInfo, ...]
    hops: int
    queried: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BootstrapCompleted(DhtEvent):
    handle: int
    table_size: int


DhtEventType = GetCompleted | PutCompleted | FindNodeCompleted | BootstrapCompleted


@dataclass(slots=True)
class DhtStats:
    """Counters; everything dropped is counted here."""

    requests_received: int = 0
    responses_received: int = 0
    requests_sent: int = 0
    responses_sent: int = 0
    decode_errors: int = 0
    stray_responses: int = 0
    unexpected_responses: int = 0
    refused_client_mode: int = 0
    timeouts: int = 0
    transport_failures: int = 0
    records_stored: int = 0
    rejected: dict[Rejection, int] = field(default_factory=dict)

    def reject(self, reason: Rejection) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


# -- internal state ---------------------------------------------------------------------------


class Purpose(enum.Enum):
    GET = "get"
    FIND_NODE = "find_node"
    BOOTSTRAP = "bootstrap"
    REFRESH = "refresh"
    PUT = "put"
    REPLICATE = "replicate"


@dataclass(slots=True, eq=False)
class Task:
    """A lookup and what to do with its result."""

    handle: int
    purpose: Purpose
    lookup: Lookup
    to_put: tuple[RecordEntry, ...] = ()
    collected: list[RecordEntry] = field(default_factory=list)
    found_hops: int = 0
    holders: int = 0  # GET: responders that returned valid entries
    put_pending: int = 0
    put_stored: int = 0
    put_attempted: int = 0
    finished: bool = False


@dataclass(slots=True, eq=False)
class EvictionCheck:
    """A PING to a bucket's least-recently seen contact (§2.2)."""

    peer: bytes


@dataclass(slots=True, eq=False)
class Probe:
    """A PING to a newly linked peer: if it answers as a server, ``_saw_server`` adds it."""

    peer: bytes


class DhtProtocol:
    """One node's Kademlia state machine. See the module docstring for the I/O contract."""

    def __init__(
        self,
        signer: Signer,
        *,
        config: DhtConfig | None = None,
        rng: random.Random | None = None,
        addrs: Sequence[str] = (),
    ) -> None:
        self.config = config or DhtConfig()
        self.signer = signer
        self.peer = signer.peer_id.bytes
        self.id = peer_record_key(self.peer)
        self.addrs = tuple(addrs)
        self.server = self.config.server
        self.rng = rng or random.Random()
        self.table = RoutingTable(self.id, self.config.k, max_failures=self.config.max_failures)
        self.rpc = RpcManager(self.rng, self.config.rpc_timeout)
        self.store = RecordStore(self.config.limits)
        self.verifier = Verifier(self.config.limits)
        self.cache: LookupCache[GetCompleted] = LookupCache(self.config.cache_ttl, self.config.cache_size)
        self.stats = DhtStats()
        self.tasks: dict[int, Task] = {}
        self._events: deque[DhtEvent] = deque()
        self._next_handle = 1
        self._own: dict[bytes, RecordEntry] = {}  # entries we publish and refresh, by key
        self._republish_at: dict[bytes, float] = {}
        self._republish: list[tuple[float, bytes]] = []  # (due, key), lazy
        self._replicate_at: dict[bytes, float] = {}
        self._replicate: list[tuple[float, bytes]] = []  # (due, key), lazy
        self._next_bucket_refresh: float | None = None
        self.debug = log.isEnabledFor(logging.DEBUG)

    # -- transport side ---------------------------------------------------------------------

    def receive_message(self, peer: bytes, data: bytes, now: float) -> None:
        """Feed one message that ``peer`` (PeerId bytes, authenticated by the link) sent us."""
        try:
            msg = decode_message(data)
        except DecodeError as exc:
            self.stats.decode_errors += 1
            if self.debug:
                log.debug("< %s undecodable: %s", peer.hex()[-8:], exc)
            return
        if msg.is_request:
            self._handle_request(peer, msg, now)
        else:
            self._handle_response(peer, msg, now)

    def request_failed(self, peer: bytes, request_id: int, now: float) -> None:
        """The transport could not deliver request ``request_id`` to ``peer`` (or lost its link)."""
        req = self.rpc.fail(peer, request_id)
        if req is not None:
            self.stats.transport_failures += 1
            self._on_failure(req, now)

    def messages_to_send(self) -> list[Command]:
        """Commands for the transport (``SendRequest`` / ``SendResponse``), oldest first."""
        return self.rpc.commands_to_send()

    def next_event(self) -> DhtEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """The earliest time at which ``handle_timer`` has work to do."""
        times = [self.rpc.get_timer(), self.store.next_expiry(), self._next_bucket_refresh]
        times += [_peek(self._republish, self._republish_at), _peek(self._replicate, self._replicate_at)]
        return min((t for t in times if t is not None), default=None)

    def handle_timer(self, now: float) -> None:
        """Run everything due at ``now``: RPC timeouts, expiry, republish, replication, refresh."""
        for req in self.rpc.expire(now):
            self.stats.timeouts += 1
            self._on_failure(req, now)
        for key in self.store.expire(now):
            self._replicate_at.pop(key, None)
        self._run_republish(now)
        self._run_replication(now)
        if self._next_bucket_refresh is not None and self._next_bucket_refresh <= now:
            self._refresh_buckets(now)

    # -- API ---------------------------------------------------------------------------------

    def set_server(self, server: bool) -> None:
        """Switch between server mode (reachable: answer queries) and client mode."""
        self.server = server

    def ping(self, peer: bytes, now: float) -> None:
        """PING ``peer`` (a new link): a server's answer enters the routing table (§2.2); no event."""
        if peer != self.peer:
            self.stats.requests_sent += 1
            self.rpc.send_request(peer, Ping(), now, owner=Probe(peer), server=self.server, addrs=self._my_addrs())

    def addrs_of(self, peer: bytes) -> tuple[str, ...]:
        """Addresses known for ``peer``: its routing-table contact, else a running lookup's candidate."""
        contact = self.table.get(peer)
        if contact is not None and contact.addrs:
            return contact.addrs
        for task in self.tasks.values():
            cand = task.lookup.candidates.get(peer)
            if cand is not None and cand.addrs:
                return tuple(cand.addrs)
        return ()

    def bootstrap(self, peers: Iterable[PeerInfo], now: float) -> int:
        """Join through ``peers`` (§2.3): look up our own id; emits ``BootstrapCompleted``."""
        seeds = {p.peer: p for p in self._seeds(self.id)}
        seeds.update((p.peer, p) for p in peers if p.peer != self.peer)
        if self._next_bucket_refresh is None:
            self._next_bucket_refresh = now + self.config.bucket_refresh_interval
        return self._start(Purpose.BOOTSTRAP, self.id, now, seeds=seeds.values())

    def find_node(self, target: bytes, now: float) -> int:
        """Look up the k closest servers to ``target``; emits ``FindNodeCompleted``."""
        return self._start(Purpose.FIND_NODE, target, now)

    def get(self, key: bytes, now: float, *, fresh: bool = False) -> int:
        """Look up the entries under ``key``; emits ``GetCompleted`` (at once when cached)."""
        if not fresh:
            cached = self.cache.get(key, now)
            if cached is not None:
                handle = self._new_handle()
                live = tuple(e for e in cached.entries if e.expires > now)
                self._events.append(GetCompleted(handle=handle, key=key, entries=live, cached=True))
                return handle
        return self._start(Purpose.GET, key, now)

    def get_presence(self, user: str, now: float, *, fresh: bool = False) -> int:
        return self.get(presence_key(user), now, fresh=fresh)

    def find_peer_record(self, peer: bytes, now: float, *, fresh: bool = False) -> int:
        return self.get(peer_record_key(peer), now, fresh=fresh)

    def invalidate(self, key: bytes) -> None:
        """Drop the cached lookup of ``key`` (a delivery found the user gone)."""
        self.cache.invalidate(key)

    def put_presence(self, user: str, devices: Sequence[Device], now: float) -> int:
        """Publish (or replace) this node's devices of ``user``; refreshed until withdrawn."""
        return self._publish(RecordKind.PRESENCE, presence_key(user), encode_presence_value(user, devices), now)

    def withdraw_presence(self, user: str, now: float) -> int:
        """Withdraw this node's devices of ``user`` (logout): a signed empty entry, not refreshed."""
        key = presence_key(user)
        held = self._own.get(key)
        expires = max(held.expires if held else 0.0, now + self.config.republish_interval)
        return self._publish(RecordKind.PRESENCE, key, encode_presence_value(user, ()), now, until=expires)

    def withdraw_all_presence(self, now: float) -> list[int]:
        """Withdraw every presence entry we publish (shutdown)."""
        users = [decode_presence_value(e.value)[0] for e in self._own.values() if e.kind == RecordKind.PRESENCE]
        return [self.withdraw_presence(user, now) for user in users]

    def put_peer_record(self, addrs: Sequence[str], relays: Sequence[bytes], now: float) -> int:
        """Publish our peer record (addresses and relays), refreshed before it expires."""
        return self._publish(RecordKind.PEER, self.id, encode_peer_value(addrs, relays), now)

    # -- requests ----------------------------------------------------------------------------

    def _handle_request(self, peer: bytes, msg: Message, now: float) -> None:
        self.stats.requests_received += 1
        if not self.server:
            self.stats.refused_client_mode += 1  # clients answer nothing (libp2p kad-dht)
            return
        if msg.server:
            self._saw_server(peer, msg.sender_addrs, now)
        match msg.body:
            case Ping():
                reply: Pong | FindNodeResult | GetResult | PutResult = Pong()
            case FindNode(key=key):
                reply = FindNodeResult(self._closer(key, peer))
            case Get(key=key):
                reply = GetResult(tuple(self.store.get(key, now)), self._closer(key, peer))
            case Put(entries=entries):
                reply = PutResult(self._accept_put(entries, now))
            case _:  # pragma: no cover - is_request covers the four request bodies
                return
        self.stats.responses_sent += 1
        self.rpc.send_response(peer, msg.request_id, reply, server=self.server, addrs=self.addrs)

    def _closer(self, key: bytes, exclude: bytes) -> tuple[PeerInfo, ...]:
        return tuple(c.info() for c in self.table.closest(key, self.config.k, exclude=exclude))

    def _accept_put(self, entries: Iterable[RecordEntry], now: float) -> int:
        stored = 0
        for entry in entries:
            if not self._valid(entry, now):
                continue
            if self.store.put(entry):
                stored += 1
                self.stats.records_stored += 1
            self._schedule_replication(entry.key, now)  # §2.5: someone else just pushed this key
        return stored

    def _valid(self, entry: RecordEntry, now: float, key: bytes | None = None) -> bool:
        reason = Rejection.WRONG_KEY if key is not None and entry.key != key else self.verifier.validate(entry, now)
        if reason is None:
            return True
        self.stats.reject(reason)
        if self.debug:
            log.debug("= dropped entry from %s: %s", entry.publisher.hex()[-8:], reason.value)
        return False

    # -- responses ---------------------------------------------------------------------------

    def _handle_response(self, peer: bytes, msg: Message, now: float) -> None:
        self.stats.responses_received += 1
        req = self.rpc.match(peer, msg.request_id)
        if req is None:
            self.stats.stray_responses += 1
            return
        if msg.server:
            self._saw_server(peer, msg.sender_addrs, now)
        owner = req.owner
        if isinstance(owner, EvictionCheck | Probe):
            return  # the LRS contact answered: _saw_server moved it to the tail (§2.2)
        if not isinstance(owner, Task):  # pragma: no cover - every request has one of two owners
            return
        match (req.body, msg.body):
            case (FindNode(), FindNodeResult(closer=closer)):
                owner.lookup.on_success(peer, closer)
            case (Get(), GetResult(entries=entries, closer=closer)):
                self._collect(owner, peer, entries, now)
                owner.lookup.on_success(peer, closer)
            case (Put(), PutResult(stored=stored)):
                owner.put_pending -= 1
                owner.put_stored += stored > 0
            case _:
                self.stats.unexpected_responses += 1
                self._on_failure(req, now)
                return
        self._advance(owner, now)

    def _collect(self, task: Task, peer: bytes, entries: Iterable[RecordEntry], now: float) -> None:
        good = [e for e in entries if self._valid(e, now, key=task.lookup.target)]
        if not good:
            return
        task.holders += 1
        if not task.found_hops:
            cand = task.lookup.candidates.get(peer)
            task.found_hops = cand.hops if cand else 1
        task.collected += good

    def _on_failure(self, req: PendingRequest, now: float) -> None:
        owner = req.owner
        if isinstance(owner, EvictionCheck):
            self.table.remove(owner.peer)  # §2.2: the LRS contact is gone; promote a replacement
            return
        if isinstance(owner, Probe):
            return  # not a server (or gone): nothing to forget
        self.table.record_failure(req.peer)
        if not isinstance(owner, Task):  # pragma: no cover
            return
        if isinstance(req.body, Put):
            owner.put_pending -= 1
        else:
            owner.lookup.on_failure(req.peer)
        self._advance(owner, now)

    def _saw_server(self, peer: bytes, addrs: tuple[str, ...], now: float) -> None:
        lrs = self.table.update(peer, addrs, now)
        if lrs is not None:
            self.stats.requests_sent += 1
            self.rpc.send_request(lrs.peer, Ping(), now, owner=EvictionCheck(lrs.peer), server=self.server,
                                  addrs=self._my_addrs())

    def _my_addrs(self) -> tuple[str, ...]:
        return self.addrs if self.server else ()

    # -- lookups -----------------------------------------------------------------------------

    def _new_handle(self) -> int:
        handle, self._next_handle = self._next_handle, self._next_handle + 1
        return handle

    def _seeds(self, target: bytes) -> list[PeerInfo]:
        return [c.info() for c in self.table.closest(target, self.config.k)]

    def _start(
        self,
        purpose: Purpose,
        target: bytes,
        now: float,
        *,
        seeds: Iterable[PeerInfo] | None = None,
        to_put: tuple[RecordEntry, ...] = (),
    ) -> int:
        if len(target) != KEY_BYTES:
            raise LocalProtocolError(f"a DHT key is {KEY_BYTES} bytes")
        seeds = self._seeds(target) if seeds is None else seeds
        lookup = Lookup(target, seeds, k=self.config.k, alpha=self.config.alpha, own_peer=self.peer)
        task = Task(self._new_handle(), purpose, lookup, to_put=to_put)
        self.tasks[task.handle] = task
        self.table.touch(target, now)
        self._advance(task, now)
        return task.handle

    def _advance(self, task: Task, now: float) -> None:
        """Send the next queries of ``task``; finish it when its lookup (and puts) are done."""
        if task.finished:
            return
        if task.put_attempted:
            if task.put_pending <= 0:
                self._complete_put(task)
            return
        lookup = task.lookup
        if task.purpose is Purpose.GET and 0 < self.config.get_quorum <= task.holders:
            self._lookup_done(task, now)  # enough holders answered with entries
            return
        body = Get(lookup.target) if task.purpose is Purpose.GET else FindNode(lookup.target)
        for cand in lookup.next_queries():
            self.stats.requests_sent += 1
            self.rpc.send_request(cand.peer, body, now, owner=task, server=self.server, addrs=self._my_addrs())
        if lookup.finished:
            self._lookup_done(task, now)

    def _lookup_done(self, task: Task, now: float) -> None:
        closest = task.lookup.closest()
        infos = tuple(PeerInfo(c.peer, c.addrs) for c in closest)
        hops = closest[0].hops if closest else 0
        match task.purpose:
            case Purpose.PUT:
                self._send_puts(task, infos, now)
                return
            case Purpose.REPLICATE:
                self._stop_replicating_if_far(task.lookup.target, closest)
                self._send_puts(task, infos, now)
                return
            case Purpose.GET:
                self._complete_get(task, infos, hops, now)
            case Purpose.FIND_NODE:
                self._events.append(FindNodeCompleted(handle=task.handle, target=task.lookup.target,
                                                      closest=infos, hops=hops, queried=task.lookup.queried))
            case Purpose.BOOTSTRAP:
                self._events.append(BootstrapCompleted(handle=task.handle, table_size=len(self.table)))
                if self.config.refresh_on_join and closest:
                    self._refresh_far_buckets(closest[0].peer, now)
            case Purpose.REFRESH:
                pass
        self._finish(task)

    def _finish(self, task: Task) -> None:
        task.finished = True
        self.tasks.pop(task.handle, None)

    def _complete_get(self, task: Task, infos: tuple[PeerInfo, ...], hops: int, now: float) -> None:
        key = task.lookup.target
        local = self.store.get(key, now) if self.server else []
        merged = merge_entries([*task.collected, *local], now)
        live = tuple(e for e in merged if not e.is_tombstone())
        event = GetCompleted(handle=task.handle, key=key, entries=live, closest=infos,
                             hops=task.found_hops or hops, queried=task.lookup.queried)
        if live:
            self.cache.put(key, event, now)
        self._events.append(event)

    def _send_puts(self, task: Task, targets: tuple[PeerInfo, ...], now: float) -> None:
        task.put_attempted = len(targets)
        task.put_pending = len(targets)
        body = Put(task.to_put)
        for info in targets:
            self.stats.requests_sent += 1
            self.rpc.send_request(info.peer, body, now, owner=task, server=self.server, addrs=self._my_addrs())
        if not targets:
            self._complete_put(task)

    def _complete_put(self, task: Task) -> None:
        if task.purpose is Purpose.PUT:
            self._events.append(PutCompleted(handle=task.handle, key=task.lookup.target,
                                             stored=task.put_stored, attempted=task.put_attempted))
        self._finish(task)

    # -- publishing (§2.5: the publisher republishes before expiry) ---------------------------

    def _publish(self, kind: RecordKind, key: bytes, value: bytes, now: float, *, until: float | None = None) -> int:
        held = self._own.get(key)
        seq = max(held.seq + 1 if held else 0, int(now * 1000))
        expires = now + self.config.record_ttl if until is None else until
        entry = sign_entry(self.signer, kind, key, value, seq=seq, expires_ms=int(expires * 1000))
        if entry.is_tombstone():
            self._own.pop(key, None)
            self._republish_at.pop(key, None)
        else:
            self._own[key] = entry
            _schedule(self._republish, self._republish_at, key, now + self.config.republish_interval)
        if self.server:
            self.store.put(entry)
            self._schedule_replication(key, now)
        self.cache.invalidate(key)
        return self._start(Purpose.PUT, key, now, to_put=(entry,))

    def _run_republish(self, now: float) -> None:
        while (due := _peek(self._republish, self._republish_at)) is not None and due <= now:
            _, key = heapq.heappop(self._republish)
            del self._republish_at[key]
            entry = self._own[key]
            self._publish(RecordKind(entry.kind), key, entry.value, now)

    # -- replication (§2.5) ------------------------------------------------------------------

    def _schedule_replication(self, key: bytes, now: float) -> None:
        interval = self.config.replicate_interval
        due = now + interval * (1 + self.config.replicate_jitter * self.rng.random())
        _schedule(self._replicate, self._replicate_at, key, due)

    def _stop_replicating_if_far(self, key: bytes, closest: Sequence[Candidate]) -> None:
        """Leave replication of ``key`` to its k closest once we are not one of them (§2.5)."""
        if len(closest) >= self.config.k and distance(self.id, key) > closest[-1].distance:
            self._replicate_at.pop(key, None)

    def _run_replication(self, now: float) -> None:
        while (due := _peek(self._replicate, self._replicate_at)) is not None and due <= now:
            _, key = heapq.heappop(self._replicate)
            del self._replicate_at[key]
            entries = tuple(self.store.get(key, now))
            if not entries or not self.server:
                continue
            self._schedule_replication(key, now)
            self._start(Purpose.REPLICATE, key, now, to_put=entries)

    # -- bucket refresh (§2.3) ---------------------------------------------------------------

    def _refresh_far_buckets(self, closest_peer: bytes, now: float) -> None:
        nearest = bucket_index(self.id, node_id(closest_peer))
        for index in range(nearest):
            self._start(Purpose.REFRESH, random_id_in_bucket(self.id, index, self.rng), now)

    def _refresh_buckets(self, now: float) -> None:
        interval = self.config.bucket_refresh_interval
        self._next_bucket_refresh = now + interval
        if len(self.table) == 0:
            return
        for index in self.table.stale_buckets(now, interval):
            self._start(Purpose.REFRESH, random_id_in_bucket(self.id, index, self.rng), now)


def _schedule(heap: list[tuple[float, bytes]], due_by_key: dict[bytes, float], key: bytes, due: float) -> None:
    """(Re)schedule ``key`` at ``due``; an older heap item for it becomes stale."""
    due_by_key[key] = due
    heapq.heappush(heap, (due, key))


def _peek(heap: list[tuple[float, bytes]], due_by_key: dict[bytes, float]) -> float | None:
    """The earliest live due time, dropping stale heap items."""
    while heap and due_by_key.get(heap[0][1]) != heap[0][0]:
        heapq.heappop(heap)
    return heap[0][0] if heap else None
