"""``python -m testnet --sim``: the NAT scenario in-process, on modelled NATs (no root, no sockets).

The same topology as ``testnet.real``: two public hosts (``pub1``, ``pub2``) and one host behind
each NAT kind, on a simulated UDP "internet" driven by a discrete-event heap on a virtual
clock (seeded: a run replays exactly). The document has the shape of ``run_real``'s, so
``testnet.real.format_matrix`` prints it and ``--json`` gives the same keys.

NAT model (RFC 4787):

| kind | mapping (§4.1) | filtering (§5) |
|---|---|---|
| ``full-cone`` | endpoint-independent (EIM) | endpoint-independent (EIF) |
| ``address-restricted`` | EIM | address-dependent (ADF) |
| ``port-restricted`` | EIM | address-and-port-dependent (APDF) |
| ``symmetric`` | address-and-port-dependent (APDM), random ports | APDF |

A ``Nat`` keeps a mapping table (internal endpoint [+ destination for APDM] -> external port;
EIM keeps the internal port when free, as Linux does) and, per mapping, the remote endpoints
it sent to (the filter). Inbound packets without a mapping, or refused by the filter, drop.

What each host does (the node's flow, simplified):

1. STUN Binding to ``pub1`` and ``pub2`` (retransmitted, RTO 0.5 s): the two answers give the
   server-reflexive address and the mapping behaviour (equal: EIM), as ``nat.autonat``.
2. Dials every public host (a request/answer through its NAT, retransmitted like a TCP SYN):
   the ``ws`` links. Public hosts dial each other.
3. For two NATed hosts, the first opens a relay circuit through ``pub1`` (the relay forwards
   to the other's observed address: its mapping towards ``pub1`` is open), then an offer /
   answer over it carrying the server-reflexive candidates (the rendezvous). Both sides then
   run ICE-like checks at the same time: a check every 50 ms to every candidate; a check
   that arrives is answered to its source address and triggers a check back to that
   address (a peer-reflexive candidate). A side that gets an answer has a working pair;
   both sides working = ``rtc``. No working pair after ``punch_timeout``: the pair stays ``relay``.
4. Every host sends one message to every other host over the pair's link (direct: to the
   address that worked; relay: through ``pub1``), retransmitted until acknowledged (10 s).

``--delay MS`` / ``--loss PCT`` model netem on every WAN egress (one per packet on the
internet). ``seconds`` of a pair: virtual time until its final link was up.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from testnet.real import KIND, SHORT, expected_transport, format_matrix, link_class

__all__ = ["FILTERING", "Nat", "SimHost", "SimNet", "format_result", "run_nat_sim"]

Addr = tuple[str, int]
PORT = 7400
FILTERING = {"full-cone": "EIF", "address-restricted": "ADF", "port-restricted": "APDF", "symmetric": "APDF"}


@dataclass(slots=True)
class _Mapping:
    internal: Addr
    port: int
    sent_to: set[Addr] = field(default_factory=set)


class Nat:
    """One NAT box: RFC 4787 mapping and filtering for ``kind`` on public address ``wan_ip``."""

    def __init__(self, kind: str, wan_ip: str, rng: random.Random) -> None:
        if kind not in FILTERING:
            raise ValueError(f"unknown NAT kind {kind!r}")
        self.kind, self.wan_ip, self.rng = kind, wan_ip, rng
        self.endpoint_independent = kind != "symmetric"
        self.filtering = FILTERING[kind]
        self.table: dict[tuple[Addr, Addr | None], _Mapping] = {}
        self.by_port: dict[int, _Mapping] = {}
        self.dropped = 0

    def outbound(self, src: Addr, dst: Addr) -> Addr:
        """The external source address of a packet from ``src`` to ``dst`` (creating the mapping)."""
        key = (src, None if self.endpoint_independent else dst)
        mapping = self.table.get(key)
        if mapping is None:
            port = src[1] if self.endpoint_independent and src[1] not in self.by_port else self._free_port()
            mapping = self.table[key] = self.by_port[port] = _Mapping(src, port)
        mapping.sent_to.add(dst)
        return (self.wan_ip, mapping.port)

    def _free_port(self) -> int:
        while True:
            port = self.rng.randrange(1024, 65536)  # MASQUERADE --random-fully
            if port not in self.by_port:
                return port

    def inbound(self, src: Addr, port: int) -> Addr | None:
        """The internal destination of a packet from ``src`` to our ``port``, or ``None`` (dropped)."""
        mapping = self.by_port.get(port)
        allowed = mapping is not None and (
            self.filtering == "EIF"
            or (self.filtering == "ADF" and any(d[0] == src[0] for d in mapping.sent_to))
            or (self.filtering == "APDF" and src in mapping.sent_to)
        )
        if not allowed or mapping is None:
            self.dropped += 1
            return None
        return mapping.internal


Handler = Callable[["SimHost", Addr, dict[str, Any]], None]


@dataclass(eq=False)
class SimHost:
    name: str
    kind: str  # "public" or a NAT kind
    local: Addr
    nat: Nat | None = None
    handler: Handler | None = None


class SimNet:
    """Hosts, NATs and a heap of timed events; ``delay_ms`` / ``loss_pct`` per internet packet."""

    def __init__(self, seed: int = 1, delay_ms: float = 0.0, loss_pct: float = 0.0) -> None:
        self.rng = random.Random(seed)
        self.now = 0.0
        self.delay = 0.005 + delay_ms / 1000  # 5 ms base one-way latency
        self.loss = loss_pct / 100
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.by_ip: dict[str, SimHost] = {}  # public hosts by address, NATed hosts by WAN address
        self.packets = self.lost = 0

    def add(self, host: SimHost) -> SimHost:
        self.by_ip[host.nat.wan_ip if host.nat else host.local[0]] = host
        return host

    def at(self, delay: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (self.now + delay, next(self._seq), action))

    def run(self, until: float) -> None:
        while self._events and self._events[0][0] <= until:
            self.now, _, action = heapq.heappop(self._events)
            action()
        self.now = until

    def send(self, host: SimHost, dst: Addr, msg: dict[str, Any]) -> None:
        src = host.nat.outbound(host.local, dst) if host.nat else host.local
        self.packets += 1
        if self.rng.random() < self.loss:
            self.lost += 1
            return
        target = self.by_ip.get(dst[0])  # private (10.x) and unknown addresses do not route
        if target is None:
            return
        jitter = self.rng.uniform(0, 0.001)
        self.at(self.delay + jitter, lambda: self._arrive(target, src, dst, msg))

    def _arrive(self, target: SimHost, src: Addr, dst: Addr, msg: dict[str, Any]) -> None:
        if target.nat is not None and target.nat.inbound(src, dst[1]) is None:
            return
        if target.nat is None and dst != target.local:
            return
        if target.handler is not None:
            target.handler(target, src, msg)


@dataclass
class _State:
    """What one host knows: STUN answers, links, candidates, punches, messages."""

    stun: dict[str, Addr] = field(default_factory=dict)  # server name -> mapped address
    pending: dict[int, Callable[[dict[str, Any]], None]] = field(default_factory=dict)
    observed: dict[str, Addr] = field(default_factory=dict)  # (public host) peer -> address it dialled from
    route: dict[str, Addr | str] = field(default_factory=dict)  # peer -> address, or "relay"
    candidates: dict[str, set[Addr]] = field(default_factory=dict)
    punching: dict[str, float] = field(default_factory=dict)  # peer -> deadline
    works: dict[str, Addr] = field(default_factory=dict)  # peer -> address whose check was answered
    received: dict[str, float] = field(default_factory=dict)  # sender -> ms
    seen: set[tuple[str, int]] = field(default_factory=set)


class _Scenario:
    def __init__(self, net: SimNet, hosts: list[SimHost], punch_timeout: float) -> None:
        self.net, self.hosts, self.punch_timeout = net, hosts, punch_timeout
        self.by_name = {h.name: h for h in hosts}
        self.state = {h.name: _State() for h in hosts}
        self.txn = itertools.count(1)
        self.linked: dict[tuple[str, str], dict[str, float]] = {}  # pair -> {transport: virtual s}
        self.punch: dict[tuple[str, str], dict[str, Any]] = {}
        self.relay = hosts[0]
        self.circuits: set[tuple[str, str]] = set()
        for h in hosts:
            h.handler = self.on_packet

    # -- reliable request/answer (retransmitted until answered or ``give_up`` s) --------------------

    def request(self, host: SimHost, dst: Addr, msg: dict[str, Any], on_answer: Callable[[dict[str, Any]], None],
                rto: float = 0.5, give_up: float = 10.0) -> None:  # fmt: skip
        tid = next(self.txn)
        st = self.state[host.name]
        st.pending[tid] = on_answer
        deadline = self.net.now + give_up

        def attempt() -> None:
            if tid in st.pending and self.net.now <= deadline:
                self.net.send(host, dst, {**msg, "tid": tid, "from": host.name})
                self.net.at(rto, attempt)

        attempt()

    def answer(self, host: SimHost, src: Addr, msg: dict[str, Any], **body: Any) -> None:
        self.net.send(host, src, {"type": "answer", "tid": msg["tid"], **body})

    def relayed(self, host: SimHost, to: str, msg: dict[str, Any], on_answer: Callable[[dict[str, Any]], None]) -> None:
        """A request to ``to`` through the relay circuit (``pub1`` forwards both ways)."""
        self.request(host, self.relay.local, {"type": "relay", "to": to, "inner": msg}, on_answer)

    # -- packets ------------------------------------------------------------------------------------

    def on_packet(self, host: SimHost, src: Addr, msg: dict[str, Any]) -> None:
        st = self.state[host.name]
        kind = msg["type"]
        if kind == "answer":
            callback = st.pending.pop(msg["tid"], None)
            if callback is not None:
                callback(msg)
        elif kind == "stun":
            self.answer(host, src, msg, mapped=src)
        elif kind == "dial":
            st.observed[msg["from"]] = src
            st.route[msg["from"]] = src
            self.answer(host, src, msg)
        elif kind == "relay":  # at the relay: forward to the target's observed address, answer back later
            target = st.observed.get(msg["to"])
            if target is not None:
                inner = {**msg["inner"], "via": msg["from"], "relay_tid": msg["tid"], "relay_src": src}
                self.net.send(host, target, {"type": "relayed", "inner": inner})
        elif kind == "relayed-answer":  # at the relay: back to the origin
            self.net.send(host, msg["dst"], {"type": "answer", "tid": msg["tid"], **msg["body"]})
        elif kind == "relayed":
            inner = msg["inner"]
            body = self.on_relayed(host, inner)
            back = {"type": "relayed-answer", "tid": inner["relay_tid"], "dst": inner["relay_src"], "body": body}
            self.net.send(host, self.relay.local, back)
        elif kind == "check":
            self.answer(host, src, msg, seen_as=src)
            peer = msg["from"]
            if src not in st.candidates.setdefault(peer, set()):
                st.candidates[peer].add(src)  # peer-reflexive (kept if it comes before our answer)
                if peer in st.punching:
                    self.check(host, peer, src)  # a triggered check back
        elif kind == "msg":
            self.answer(host, src, msg)
            if (msg["from"], msg["tid"]) not in st.seen:
                st.seen.add((msg["from"], msg["tid"]))
                st.received[msg["from"]] = round((self.net.now - msg["sent_at"]) * 1000, 1)

    def on_relayed(self, host: SimHost, inner: dict[str, Any]) -> dict[str, Any]:
        peer = inner["via"]
        st = self.state[host.name]
        if inner["op"] == "circuit":
            st.route[peer] = "relay"
            return {"ok": True}
        if inner["op"] == "offer":
            st.candidates.setdefault(peer, set()).update(tuple(c) for c in inner["candidates"])
            self.start_checks(host, peer)
            return {"candidates": self.candidates(host)}
        if inner["op"] == "msg":
            if (peer, inner["msg_tid"]) not in st.seen:
                st.seen.add((peer, inner["msg_tid"]))
                st.received[peer] = round((self.net.now - inner["sent_at"]) * 1000, 1)
            return {"ok": True}
        return {"ok": False}

    # -- the node's steps ---------------------------------------------------------------------------

    def candidates(self, host: SimHost) -> list[Addr]:
        st = self.state[host.name]
        return sorted({host.local, *st.stun.values()})  # host candidate (private: unroutable) + srflx

    def start(self) -> None:
        public = [h for h in self.hosts if h.kind == "public"]
        for h in self.hosts:
            if h.kind != "public":
                for server in public:
                    self.request(h, server.local, {"type": "stun"}, self._stun_answer(h, server))
        for a, b in itertools.combinations(self.hosts, 2):
            if "public" in (a.kind, b.kind):
                dialer, server = (a, b) if b.kind == "public" else (b, a)
                self.request(dialer, server.local, {"type": "dial"}, self._dial_answer(dialer, server))

    def _stun_answer(self, host: SimHost, server: SimHost) -> Callable[[dict[str, Any]], None]:
        def record(msg: dict[str, Any]) -> None:
            self.state[host.name].stun[server.name] = msg["mapped"]

        return record

    def _dial_answer(self, dialer: SimHost, server: SimHost) -> Callable[[dict[str, Any]], None]:
        return lambda msg: self.dialled(dialer, server)

    def dialled(self, dialer: SimHost, server: SimHost) -> None:
        self.state[dialer.name].route[server.name] = server.local
        self.link(dialer, server, "ws")
        if server is self.relay and dialer.kind != "public":
            for other in self.hosts:  # circuits to the NATed hosts already reserved on the relay
                if other.kind != "public" and other is not dialer and other.name in self.state[server.name].observed:
                    first, second = sorted((dialer, other), key=self.hosts.index)
                    self.net.at(0.0, functools.partial(self.open_circuit, first, second))

    def open_circuit(self, a: SimHost, b: SimHost) -> None:
        if (a.name, b.name) in self.circuits:
            return
        self.circuits.add((a.name, b.name))

        def circuit_up(_: dict[str, Any]) -> None:
            self.state[a.name].route[b.name] = "relay"
            self.link(a, b, "relay")
            self.punch[a.name, b.name] = {"state": "offering", "started": self.net.now}
            self.net.at(0.0, offer)

        def offer() -> None:
            if "pub1" not in self.state[a.name].stun:  # the node offers once STUN has answered
                self.net.at(0.05, offer)
                return
            self.relayed(a, b.name, {"op": "offer", "candidates": self.candidates(a)}, answered)

        def answered(m: dict[str, Any]) -> None:
            self.state[a.name].candidates.setdefault(b.name, set()).update(tuple(c) for c in m["candidates"])
            self.start_checks(a, b.name)

        self.relayed(a, b.name, {"op": "circuit"}, circuit_up)

    def start_checks(self, host: SimHost, peer: str) -> None:
        st = self.state[host.name]
        if peer in st.punching:
            return
        st.punching[peer] = self.net.now + self.punch_timeout

        def tick() -> None:
            if peer in st.works or self.net.now > st.punching[peer]:
                return
            for cand in sorted(st.candidates.get(peer, ())):
                self.check(host, peer, cand, retransmit=False)
            self.net.at(0.05, tick)

        tick()

    def check(self, host: SimHost, peer: str, dst: Addr, retransmit: bool = True) -> None:
        st = self.state[host.name]

        def ok(_: dict[str, Any]) -> None:
            if peer in st.works:
                return
            st.works[peer] = dst
            other = self.state[peer]
            if host.name in other.works:  # both sides have a working pair: the link moves to rtc
                st.route[peer], other.route[host.name] = dst, other.works[host.name]
                self.link(host, self.by_name[peer], "rtc")

        tid = next(self.txn)
        st.pending[tid] = ok
        self.net.send(host, dst, {"type": "check", "tid": tid, "from": host.name})
        if retransmit:
            self.net.at(0.1, lambda: self.check(host, peer, dst) if peer not in st.works and tid in st.pending and
                        self.net.now <= st.punching.get(peer, 0) else None)  # fmt: skip

    def link(self, a: SimHost, b: SimHost, transport: str) -> None:
        key = (a.name, b.name) if self.hosts.index(a) < self.hosts.index(b) else (b.name, a.name)
        self.linked.setdefault(key, {}).setdefault(transport, round(self.net.now, 3))
        if transport == "rtc" and key in self.punch:
            self.punch[key].update(state="rtc", ice_s=round(self.net.now - self.punch[key]["started"], 3))

    def transport(self, a: str, b: str) -> str:
        got = self.linked.get((a, b), {})
        return next((t for t in ("rtc", "ws", "relay") if t in got), "none")

    def exchange(self) -> None:
        for a in self.hosts:
            for b in self.hosts:
                if a is b:
                    continue
                route = self.state[a.name].route.get(b.name)
                sent_at = self.net.now
                if route == "relay":
                    inner = {"op": "msg", "msg_tid": next(self.txn), "sent_at": sent_at}
                    self.relayed(a, b.name, inner, lambda m: None)
                elif route is not None:
                    assert not isinstance(route, str)
                    self.request(a, route, {"type": "msg", "sent_at": sent_at}, lambda m: None, rto=0.2)


def run_nat_sim(
    kinds: Sequence[str] = ("full-cone", "address-restricted", "port-restricted", "symmetric"),
    *,
    delay_ms: float = 0.0,
    loss_pct: float = 0.0,
    seed: int = 1,
    punch_timeout: float = 5.0,
    settle: float = 20.0,
) -> dict[str, Any]:
    """Build the modelled network, link, exchange messages; the ``run_real`` document (virtual seconds)."""
    net = SimNet(seed, delay_ms, loss_pct)
    hosts = [net.add(SimHost(f"pub{i}", "public", (f"198.51.100.{9 + i}", PORT))) for i in (1, 2)]
    counts: dict[str, int] = {}
    for index, kind in enumerate(kinds, 1):
        counts[kind] = counts.get(kind, 0) + 1
        nat = Nat(kind, f"198.51.100.{100 + index}", net.rng)
        hosts.append(net.add(SimHost(f"{SHORT.get(kind, kind)}{counts[kind]}", kind, (f"10.{index}.0.2", PORT), nat)))
    sc = _Scenario(net, hosts, punch_timeout)
    sc.start()
    net.run(settle)
    sc.exchange()
    net.run(settle + 15.0)
    pairs: list[dict[str, Any]] = []
    for a, b in itertools.combinations(hosts, 2):
        got = sc.transport(a.name, b.name)
        link = link_class(got)
        ra, rb = sc.state[b.name].received.get(a.name), sc.state[a.name].received.get(b.name)
        pairs.append({
            "a": KIND[a.kind], "b": KIND[b.kind], "link": link,
            "seconds": sc.linked.get((a.name, b.name), {}).get(got),
            "node_a": a.name, "node_b": b.name, "nat_a": a.kind, "nat_b": b.kind,
            "transport": got, "transport_b_side": got, "expected": expected_transport(a.kind, b.kind),
            "rtt_ms": None if got == "none" else round(net.delay * 2000 * (2 if got == "relay" else 1), 1),
            "punch": sc.punch.get((a.name, b.name)) or ({"state": "failed"} if got == "relay" else None),
            "delivered_ab": "not received" if ra is None else ra, "delivered_ba": "not received" if rb is None else rb,
        })  # fmt: skip
    for p in pairs:
        if p["punch"] and p["punch"].get("state") == "offering":
            p["punch"]["state"] = "failed"
    delivered: dict[str, dict[str, float | str]] = {
        a.name: {b.name: sc.state[b.name].received.get(a.name, "not received") for b in hosts if b is not a}
        for a in hosts
    }
    nodes = []
    for h in hosts:
        stun = sc.state[h.name].stun
        mapping = "no-nat" if h.nat is None else (
            "endpoint-independent" if len(set(stun.values())) == 1 and len(stun) == 2
            else "endpoint-dependent" if len(stun) == 2 else None
        )  # fmt: skip
        public_address = h.local if h.nat is None else stun.get("pub1")
        nodes.append({
            "name": h.name, "nat": h.kind, "ip": h.local[0], "wan_ip": h.nat.wan_ip if h.nat else h.local[0],
            "reachability": "public" if h.nat is None else "private", "nat_mapping": mapping,
            "public_address": f"{public_address[0]}:{public_address[1]}" if public_address else None,
            "relays": [] if h.nat is None else ["pub1"], "dht_mode": "server" if h.nat is None else "client",
            "nat_dropped": h.nat.dropped if h.nat else 0,
        })  # fmt: skip
    cells = [v for row in delivered.values() for v in row.values()]
    linked_ok = all(p["transport"] == p["expected"] for p in pairs)
    all_delivered = all(isinstance(v, float) for v in cells)
    return {
        "mode": "sim", "seed": seed, "nodes": nodes, "pairs": pairs, "sent": len(cells),
        "delivered": sum(1 for v in cells if isinstance(v, float)), "delivered_ms": delivered,
        "linked_ok": linked_ok, "all_delivered": all_delivered, "ok": linked_ok and all_delivered,
        "seconds": round(net.now, 1), "virtual": True, "packets": net.packets, "lost": net.lost,
        "netem": {"delay_ms": delay_ms, "loss_pct": loss_pct},
    }  # fmt: skip


def format_result(result: dict[str, Any]) -> str:
    """The real mode's matrix, plus the time to link per pair (virtual seconds)."""
    lines = [format_matrix(result), "", "time to link (virtual s):"]
    lines += [f"  {p['node_a']:<7} {p['node_b']:<7} {p['link']:<7} {p['seconds']}" for p in result["pairs"]]
    lines.append(f"(simulated: seed {result['seed']}, {result['packets']} packets, {result['lost']} lost; "
                 f"times are virtual)")  # fmt: skip
    return "\n".join(lines)
