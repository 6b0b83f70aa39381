"""In-process DHT simulator: the real ``dht`` cores on a virtual clock (STYLE §3.8).

A discrete-event heap of ``(time, seq, action)`` drives ``dht.node.DhtProtocol`` objects
directly: no event loop, no sockets, no real time. Every random choice (identities, loss,
latency jitter, workload, churn) comes from one seeded ``random.Random``, so a run is
replayable: the same seed gives the same statistics.

- ``SimNetwork(seed, latency)`` carries each ``SendRequest`` / ``SendResponse`` through
  ``route_packet`` (trio ``FakeNet`` style), which applies seeded loss, duplication and delay.
  A message to a node that is down is lost; the sender's RPC times out.
- Churn (crash a node, join a new one) is a scheduled action like any other.
- ``run_scenario()`` is the issue-4 workload: join N nodes, put presence records, get them
  from random nodes, churn, let republication run, get them again; it returns statistics.

Time in the simulation starts at ``EPOCH`` (a fixed wall-clock second) because record
expiries in the DHT are wall-clock values.
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dht.ids import presence_key
from dht.messages import PeerInfo
from dht.node import BootstrapCompleted, DhtConfig, DhtEvent, DhtProtocol, GetCompleted, PutCompleted
from dht.records import Device, RecordLimits
from dht.rpc import SendRequest, SendResponse
from node.identity import Identity

__all__ = ["EPOCH", "Packet", "SimNetwork", "SimNode", "run_scenario", "sim_config"]

Addr = bytes  # a node is addressed by its PeerId bytes, as the DHT core addresses peers
EPOCH = 1_800_000_000.0  # virtual time zero, in wall-clock seconds


@dataclass(frozen=True, slots=True)
class Packet:
    """One DHT message in flight."""

    src: Addr
    dst: Addr
    data: bytes


@dataclass(slots=True, eq=False)
class SimNode:
    """A ``DhtProtocol`` in the simulation, with its armed timer and liveness."""

    proto: DhtProtocol
    index: int
    alive: bool = True
    timer_at: float | None = None
    events: list[DhtEvent] = field(default_factory=list)

    @property
    def addr(self) -> Addr:
        return self.proto.peer

    @property
    def info(self) -> PeerInfo:
        return PeerInfo(self.proto.peer, self.proto.addrs)


def default_latency(src: Addr, dst: Addr) -> float:
    """A fixed one-way delay per node pair: 10..90 ms, symmetric, from the ids' last bytes."""
    return 0.010 + ((src[-1] ^ dst[-1]) % 81) / 1000


class SimNetwork:
    """Discrete-event scheduler plus message delivery between ``SimNode``s."""

    def __init__(
        self,
        seed: int,
        latency: Callable[[Addr, Addr], float] = default_latency,
        *,
        loss: float = 0.0,
        duplicate: float = 0.0,
        jitter: float = 0.0,
        on_event: Callable[[SimNode, DhtEvent], None] | None = None,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.latency = latency
        self.loss = loss
        self.duplicate = duplicate
        self.jitter = jitter
        self.on_event = on_event
        self.now = EPOCH
        self.nodes: dict[Addr, SimNode] = {}
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.sent = 0
        self.delivered = 0
        self.lost = 0
        self.duplicated = 0
        self.to_dead = 0
        self.bytes_sent = 0

    # -- scheduler ---------------------------------------------------------------------------

    def schedule(self, at: float, action: Callable[[], None]) -> None:
        """Run ``action`` at virtual time ``at`` (ties run in scheduling order)."""
        heapq.heappush(self._heap, (max(at, self.now), next(self._seq), action))

    def run_until(self, t: float) -> None:
        """Run every action due at or before ``t``; the clock ends at ``t``."""
        while self._heap and self._heap[0][0] <= t:
            at, _, action = heapq.heappop(self._heap)
            self.now = at
            action()
        self.now = max(self.now, t)

    def run_while(self, busy: Callable[[], bool], limit: float) -> None:
        """Run until ``busy()`` is false or the clock passes ``limit``."""
        while self._heap and busy() and self._heap[0][0] <= limit:
            at, _, action = heapq.heappop(self._heap)
            self.now = at
            action()

    # -- nodes -------------------------------------------------------------------------------

    def add_node(self, proto: DhtProtocol) -> SimNode:
        node = SimNode(proto, len(self.nodes))
        self.nodes[node.addr] = node
        return node

    def crash(self, node: SimNode) -> None:
        """The node stops at once (no withdrawal): its messages and timers are dropped."""
        node.alive = False

    def pump(self, node: SimNode) -> None:
        """Carry out what the core asked for: send its messages, collect events, re-arm its timer."""
        proto = node.proto
        for cmd in proto.messages_to_send():
            if isinstance(cmd, SendRequest | SendResponse):
                self.send(node.addr, cmd.peer, cmd.data)
        while (event := proto.next_event()) is not None:
            node.events.append(event)
            if self.on_event is not None:
                self.on_event(node, event)
        at = proto.get_timer()
        if at is not None and (node.timer_at is None or at < node.timer_at):
            node.timer_at = at
            self.schedule(at, lambda: self._fire(node, at))

    def _fire(self, node: SimNode, at: float) -> None:
        if not node.alive or node.timer_at != at:
            return  # stale: re-armed earlier, or the node is gone
        node.timer_at = None
        node.proto.handle_timer(self.now)
        self.pump(node)

    def call(self, node: SimNode, fn: Callable[[DhtProtocol], object]) -> None:
        """Invoke an API method on ``node``'s core now, then pump it."""
        if node.alive:
            fn(node.proto)
            self.pump(node)

    # -- packets -----------------------------------------------------------------------------

    def route_packet(self, packet: Packet) -> list[float]:
        """Delays at which ``packet`` arrives: ``[]`` = lost, two = duplicated (seeded)."""
        if self.loss and self.rng.random() < self.loss:
            return []
        delay = self.latency(packet.src, packet.dst)
        if self.jitter:
            delay += self.rng.random() * self.jitter
        if self.duplicate and self.rng.random() < self.duplicate:
            return [delay, delay + self.rng.random() * 0.01]
        return [delay]

    def send(self, src: Addr, dst: Addr, data: bytes) -> None:
        self.sent += 1
        self.bytes_sent += len(data)
        packet = Packet(src, dst, data)
        delays = self.route_packet(packet)
        if not delays:
            self.lost += 1
        self.duplicated += max(0, len(delays) - 1)
        for delay in delays:
            self.schedule(self.now + delay, lambda: self._deliver(packet))

    def _deliver(self, packet: Packet) -> None:
        node = self.nodes.get(packet.dst)
        if node is None or not node.alive:
            self.to_dead += 1
            return
        self.delivered += 1
        node.proto.receive_message(packet.src, packet.data, self.now)
        self.pump(node)


# -- the issue-4 scenario ---------------------------------------------------------------------


def sim_config(**overrides: Any) -> DhtConfig:
    """The DHT configuration the scenario uses: paper defaults, timers scaled to minutes.

    ``refresh_on_join`` is off: 1,000 joins each refreshing ~10 far buckets cost about 5x the
    messages of the joins themselves, and the tables fill from lookup traffic anyway.
    """
    base: dict[str, Any] = dict(
        rpc_timeout=2.0,
        refresh_on_join=False,
        record_ttl=3600.0,
        republish_interval=1800.0,
        replicate_interval=60.0,
        bucket_refresh_interval=3600.0,
        limits=RecordLimits(),
    )
    base.update(overrides)
    return DhtConfig(**base)


@dataclass(slots=True)
class _Workload:
    gets: dict[tuple[bytes, int], tuple[str, bytes]] = field(default_factory=dict)  # (node, handle) -> (user, pub)
    results: list[tuple[bool, int]] = field(default_factory=list)  # (found, hops)
    puts: list[PutCompleted] = field(default_factory=list)
    bootstraps: int = 0
    cached: int = 0

    def on_event(self, node: SimNode, event: DhtEvent) -> None:
        if isinstance(event, GetCompleted):
            want = self.gets.pop((node.addr, event.handle), None)
            if want is None:
                return
            user, publisher = want
            found = any(e.publisher == publisher for e in event.entries)
            self.results.append((found, event.hops))
            self.cached += event.cached
        elif isinstance(event, PutCompleted):
            self.puts.append(event)
        elif isinstance(event, BootstrapCompleted):
            self.bootstraps += 1


def _make_node(net: SimNetwork, rng: random.Random, config: DhtConfig) -> SimNode:
    identity = Identity.from_seed(rng.randbytes(32))
    index = len(net.nodes)
    proto = DhtProtocol(identity, config=config, rng=random.Random(rng.getrandbits(64)), addrs=(f"sim:{index}",))
    return net.add_node(proto)


def _get_phase(
    net: SimNetwork,
    w: _Workload,
    rng: random.Random,
    published: list[tuple[str, bytes]],
    count: int,
    spread: float,
    fresh: bool,
) -> dict[str, Any]:
    w.results.clear()
    w.cached = 0
    live = [n for n in net.nodes.values() if n.alive]
    start = net.now
    for i in range(count):
        node = rng.choice(live)
        user, publisher = rng.choice(published)

        def act(node: SimNode = node, user: str = user, publisher: bytes = publisher) -> None:
            if node.alive:
                handle = node.proto.get(presence_key(user), net.now, fresh=fresh)
                w.gets[(node.addr, handle)] = (user, publisher)
                net.pump(node)

        net.schedule(start + spread * i / count, act)
    net.run_while(lambda: len(w.results) < count, start + spread + 120)
    found = [h for ok, h in w.results if ok]
    return {
        "lookups": count,
        "completed": len(w.results),
        "found": len(found),
        "success_rate": round(len(found) / count, 4),
        "hops_mean": round(sum(found) / len(found), 3) if found else 0.0,
        "hops_max": max(found, default=0),
        "cache_hits": w.cached,
    }


def _replicas(net: SimNetwork, published: list[tuple[str, bytes]], k: int) -> float:
    """Mean number of the k closest live servers to each key that hold its record."""
    live = [n for n in net.nodes.values() if n.alive]
    total = 0
    for user, _ in published:
        key = presence_key(user)
        t = int.from_bytes(key, "big")
        closest = heapq.nsmallest(k, live, key=lambda n: int.from_bytes(n.proto.id, "big") ^ t)
        total += sum(1 for n in closest if key in n.proto.store)
    return round(total / max(1, len(published)), 3)


def run_scenario(
    nodes: int = 1000,
    seed: int = 1,
    churn: float = 0.3,
    loss: float = 0.01,
    *,
    duplicate: float = 0.0,
    puts: int = 200,
    gets: int = 1000,
    join_spacing: float = 0.02,
    config: DhtConfig | None = None,
) -> dict[str, Any]:
    """Run the issue-4 workload and return statistics (``timings`` holds wall-clock seconds).

    Phases: ``join`` (nodes bootstrap one after another from three random earlier nodes),
    ``put`` (``puts`` users, each published by a random node), ``get`` (``gets`` lookups of a
    random user from a random node), ``churn`` (a ``churn`` fraction of nodes crash and as
    many new ones join; then one replication interval passes), ``get_after_churn`` (fresh
    lookups from random live nodes). Everything except ``timings`` is a function of the seed.
    """
    config = config or sim_config()
    rng = random.Random(seed)
    w = _Workload()
    net = SimNetwork(rng.getrandbits(64), loss=loss, duplicate=duplicate, on_event=w.on_event)
    timings: dict[str, float] = {}
    stats: dict[str, Any] = {"seed": seed, "nodes": nodes, "churn": churn, "loss": loss, "duplicate": duplicate}

    t0 = time.perf_counter()
    members: list[SimNode] = []
    for i in range(nodes):
        node = _make_node(net, rng, config)
        seeds = [m.info for m in rng.sample(members, min(3, len(members)))]
        members.append(node)
        net.schedule(
            net.now + i * join_spacing,
            lambda node=node, seeds=seeds: net.call(  # type: ignore[misc]
                node, lambda p: p.bootstrap(seeds, net.now)
            ),
        )
    timings["identities"] = time.perf_counter() - t0
    net.run_while(lambda: w.bootstraps < nodes, net.now + nodes * join_spacing + 300)
    net.run_until(net.now + 10)
    tables = [len(n.proto.table) for n in members]
    stats["join"] = {
        "bootstrapped": w.bootstraps,
        "table_mean": round(sum(tables) / nodes, 1),
        "table_min": min(tables),
        "virtual_s": round(net.now - EPOCH, 1),
        "messages": net.sent,
    }
    timings["join"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    publishers = rng.sample(members, min(puts, nodes))
    published: list[tuple[str, bytes]] = []
    for j, pub in enumerate(publishers):
        user = f"user{j}"
        published.append((user, pub.addr))
        net.schedule(
            net.now + j * 0.05,
            lambda pub=pub, user=user, j=j: net.call(  # type: ignore[misc]
                pub, lambda p: p.put_presence(user, [Device(f"dev{j}")], net.now)
            ),
        )
    net.run_while(lambda: len(w.puts) < len(publishers), net.now + len(publishers) * 0.05 + 120)
    stored = [e.stored for e in w.puts]
    stats["put"] = {
        "puts": len(publishers),
        "completed": len(w.puts),
        "stored_mean": round(sum(stored) / max(1, len(stored)), 2),
        "stored_min": min(stored, default=0),
        "replicas_mean": _replicas(net, published, config.k),
    }
    timings["put"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    msgs = net.sent
    stats["get"] = _get_phase(net, w, rng, published, gets, 20.0, fresh=False)
    stats["get"]["messages"] = net.sent - msgs
    timings["get"] = time.perf_counter() - t2

    t3 = time.perf_counter()
    crashed = rng.sample(members, round(churn * nodes))
    for node in crashed:
        net.crash(node)
    joiners = []
    live = [m for m in members if m.alive]
    for i in range(len(crashed)):
        node = _make_node(net, rng, config)
        seeds = [m.info for m in rng.sample(live, 3)]
        joiners.append(node)
        net.schedule(
            net.now + i * join_spacing,
            lambda node=node, seeds=seeds: net.call(  # type: ignore[misc]
                node, lambda p: p.bootstrap(seeds, net.now)
            ),
        )
    msgs = net.sent
    net.run_until(net.now + config.replicate_interval * (1 + config.replicate_jitter) + 30)
    stats["churn"] = {
        "crashed": len(crashed),
        "joined": len(joiners),
        "messages": net.sent - msgs,
        "replicas_mean": _replicas(net, published, config.k),
    }
    timings["churn"] = time.perf_counter() - t3

    t4 = time.perf_counter()
    msgs = net.sent
    stats["get_after_churn"] = _get_phase(net, w, rng, published, gets, 20.0, fresh=True)
    stats["get_after_churn"]["messages"] = net.sent - msgs
    timings["get_after_churn"] = time.perf_counter() - t4

    totals = [n.proto.stats for n in net.nodes.values()]
    stats["network"] = {
        "messages": net.sent,
        "delivered": net.delivered,
        "lost": net.lost,
        "to_dead": net.to_dead,
        "bytes": net.bytes_sent,
        "virtual_s": round(net.now - EPOCH, 1),
        "timeouts": sum(s.timeouts for s in totals),
        "rejected": sum(sum(s.rejected.values()) for s in totals),
    }
    timings["total"] = time.perf_counter() - t0
    stats["timings"] = {k: round(v, 2) for k, v in timings.items()}
    return stats
