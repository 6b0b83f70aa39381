"""Relayed links: circuits through a third node (``/timnode/relay/1``), transport ``relay``.

A node behind a NAT keeps a link to a reachable node and *reserves* it as its relay. To link
to it, a peer linked to the same relay asks the relay to ``connect`` a circuit; the relay
asks the target (``incoming``) and both ends get a ``Circuit``: a reliable, ordered message
stream made of ``/timnode/relay-data/1`` messages over their links to the relay. The full
timnode handshake (Noise XX, PeerIds, network key) then runs *inside* the circuit, end to end,
so the relay forwards only Noise ciphertext it cannot read or forge, and the resulting
``Link`` is handed to the ``LinkManager`` as transport ``relay``.

Control requests (JSON): ``{"op": "reserve"}``, ``{"op": "list"}`` -> ``{"peers": [...]}``,
``{"op": "connect", "target": PEERID, "circuit": HEX16}``, and relay -> target
``{"op": "incoming", "from": PEERID, "circuit": HEX16}``. Data messages (binary):
``<circuit id: 8 bytes> <kind: 0 data | 1 close> <payload>`` (a close's payload: the reason, UTF-8,
may be empty). Order is kept by one pump task per circuit direction at the relay. Limits:
``max_circuits`` per relay, ``max_queued`` messages per direction (a circuit that falls that far
behind is closed), and per circuit ``max_circuit_bytes`` relayed (both directions, default
128 MiB) and ``max_circuit_seconds`` (default 30 min); 0 disables a limit. A circuit over a
limit is closed at the relay with a logged reason sent to both ends (``"limit: bytes"``,
``"limit: duration"``); an endpoint learns it through ``on_closed(circuit, reason)`` (the NAT
service then retries a direct link at once) and in ``Circuit.close_reason``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed

from nat.autonat import NatDecodeError, decode_json
from node.errors import DecodeError, P2PError
from node.identity import PeerId
from node.link import QueuedStream
from node.manager import LinkDown, LinkEvent, LinkManager

__all__ = ["RELAY_DATA", "RELAY_PROTOCOL", "Circuit", "RelayService"]

log = logging.getLogger(__name__)

RELAY_PROTOCOL = "/timnode/relay/1"
RELAY_DATA = "/timnode/relay-data/1"
DATA, CLOSE = 0, 1


class Circuit(QueuedStream):
    """One end of a relayed circuit: a ``node.link.MessageStream``."""

    def __init__(self, links: LinkManager, relay: PeerId, cid: bytes, remote: PeerId) -> None:
        super().__init__()
        self.links = links
        self.relay = relay
        self.cid = cid
        self.remote = remote
        self.bytes_sent = 0
        self.close_reason = ""

    async def send(self, message: bytes) -> None:
        if self.closed:
            raise ConnectionClosed(None, None)
        try:
            await self.links.send(self.relay, RELAY_DATA, self.cid + bytes([DATA]) + message)
        except P2PError as exc:
            self.feed_close()
            raise ConnectionClosed(None, None) from exc
        self.bytes_sent += len(message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.closed:
            with contextlib.suppress(P2PError):
                await self.links.send(self.relay, RELAY_DATA, self.cid + bytes([CLOSE]))
        self.feed_close()

    def abort(self) -> None:
        if not self.closed:
            asyncio.ensure_future(self.close())


@dataclass(slots=True)
class _Pump:
    """Forwards one direction of a circuit at the relay, in order."""

    dest: PeerId
    queue: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class _RelayedCircuit:
    a: PeerId
    b: PeerId
    pumps: dict[PeerId, _Pump] = field(default_factory=dict)  # keyed by the *source* peer
    forwarded: int = 0
    received: int = 0  # payload bytes accepted for forwarding, both directions (the byte limit)
    expiry: asyncio.TimerHandle | None = None


OnCircuit = Callable[[Circuit, str], Awaitable[None]]  # (circuit, "inbound" | "outbound")
OnClosed = Callable[[Circuit, str], None]  # (circuit, reason) when the relay closed it with a reason

MAX_CIRCUIT_BYTES = 128 * 1024 * 1024
MAX_CIRCUIT_SECONDS = 30 * 60.0


class RelayService:
    """Both roles: serve circuits as a relay, and open/accept circuits as an endpoint."""

    def __init__(
        self,
        links: LinkManager,
        on_circuit: OnCircuit,
        *,
        allow_relaying: Callable[[], bool] = lambda: True,
        max_circuits: int = 256,
        max_queued: int = 4096,
        max_circuit_bytes: int = MAX_CIRCUIT_BYTES,
        max_circuit_seconds: float = MAX_CIRCUIT_SECONDS,
        on_closed: OnClosed | None = None,
    ) -> None:
        self.links = links
        self.on_circuit = on_circuit
        self.allow_relaying = allow_relaying
        self.max_circuits = max_circuits
        self.max_queued = max_queued
        self.max_circuit_bytes = max_circuit_bytes
        self.max_circuit_seconds = max_circuit_seconds
        self.on_closed = on_closed
        self.limited: dict[str, int] = {"bytes": 0, "duration": 0}  # circuits we closed at a limit (relay role)
        self.reservations: set[PeerId] = set()  # peers that reserved us (relay role)
        self.relays: set[PeerId] = set()  # relays we reserved (endpoint role)
        self.relayed: dict[bytes, _RelayedCircuit] = {}
        self.circuits: dict[bytes, Circuit] = {}
        links.handle(RELAY_PROTOCOL, self._serve)
        links.handlers.add(RELAY_DATA, self._on_data)
        self._unsubscribe = links.subscribe(self._on_link_event)

    def close(self) -> None:
        self._unsubscribe()
        for circuit in list(self.relayed.values()):
            for pump in circuit.pumps.values():
                if pump.task is not None:
                    pump.task.cancel()
        for c in list(self.circuits.values()):
            c.feed_close()

    def status(self) -> dict[str, Any]:
        return {
            "relays": sorted(str(p) for p in self.relays),
            "reserved_by": sorted(str(p) for p in self.reservations),
            "relayed_circuits": len(self.relayed),
            "relay_limits": {"bytes": self.max_circuit_bytes, "seconds": self.max_circuit_seconds},
            "circuits_closed_at_limit": dict(self.limited),
        }

    # -- endpoint role -------------------------------------------------------------------------------

    async def reserve(self, relay: PeerId) -> bool:
        try:
            reply = json.loads(await self.links.request(relay, RELAY_PROTOCOL, b'{"op":"reserve"}', timeout=5))
        except (P2PError, ValueError):
            return False
        if isinstance(reply, dict) and reply.get("ok") is True:
            self.relays.add(relay)
            return True
        return False

    async def list_reserved(self, relay: PeerId) -> list[PeerId]:
        """Peers that reserved ``relay`` (they are reachable through it)."""
        try:
            obj = decode_json(
                await self.links.request(relay, RELAY_PROTOCOL, b'{"op":"list"}', timeout=5), {"peers": list}
            )
        except (P2PError, NatDecodeError):
            return []
        out = []
        peers = obj.get("peers", [])
        assert isinstance(peers, list)
        for text in peers[:256]:
            with contextlib.suppress(DecodeError, TypeError, ValueError):
                out.append(PeerId.from_base58(str(text)))
        return out

    async def connect(self, relay: PeerId, target: PeerId) -> Circuit:
        """Open a circuit to ``target`` through ``relay``. Raises ``P2PError`` / ``ValueError``."""
        cid = os.urandom(8)
        circuit = Circuit(self.links, relay, cid, target)
        self.circuits[cid] = circuit
        body = json.dumps({"op": "connect", "target": str(target), "circuit": cid.hex()}).encode()
        try:
            reply = json.loads(await self.links.request(relay, RELAY_PROTOCOL, body, timeout=10))
        except BaseException:
            self.circuits.pop(cid, None)
            raise
        if not (isinstance(reply, dict) and reply.get("ok") is True):
            self.circuits.pop(cid, None)
            raise ValueError(f"relay refused the circuit: {reply.get('error') if isinstance(reply, dict) else reply}")
        return circuit

    # -- protocol handlers ---------------------------------------------------------------------------

    async def _serve(self, peer: PeerId, body: bytes) -> bytes:
        try:
            obj = decode_json(body, {"op": str, "target": str, "from": str, "circuit": str})
            op = obj.get("op")
            if op == "reserve":
                return self._reserve(peer)
            if op == "list":
                peers = [str(p) for p in self.reservations if p != peer and self.links.is_linked(p)]
                return json.dumps({"peers": peers}).encode()
            cid = bytes.fromhex(str(obj.get("circuit", "")))
            if len(cid) != 8:
                raise NatDecodeError("circuit id is 8 bytes")
            if op == "connect":
                return await self._relay_connect(peer, PeerId.from_base58(str(obj.get("target"))), cid)
            if op == "incoming":
                return self._incoming(peer, PeerId.from_base58(str(obj.get("from"))), cid)
        except (NatDecodeError, DecodeError, ValueError) as exc:
            return _error(f"bad request: {exc}")
        return _error("unknown op")

    def _reserve(self, peer: PeerId) -> bytes:
        if not self.allow_relaying():
            return _error("not relaying (not publicly reachable)")
        self.reservations.add(peer)
        log.info("= %s reserved us as its relay", peer.short())
        return b'{"ok":true}'

    async def _relay_connect(self, source: PeerId, target: PeerId, cid: bytes) -> bytes:
        if not self.allow_relaying():
            return _error("not relaying")
        if not self.links.is_linked(target) or target == source:
            return _error("target not linked here")
        if len(self.relayed) >= self.max_circuits or cid in self.relayed:
            return _error("too many circuits")
        relayed = _RelayedCircuit(source, target)
        for src, dst in ((source, target), (target, source)):
            pump = _Pump(dst)
            pump.task = asyncio.ensure_future(self._pump(cid, pump))
            relayed.pumps[src] = pump
        self.relayed[cid] = relayed
        if self.max_circuit_seconds > 0:
            relayed.expiry = asyncio.get_running_loop().call_later(
                self.max_circuit_seconds, self._limit, cid, "duration", f"{self.max_circuit_seconds:g} s"
            )
        body = json.dumps({"op": "incoming", "from": str(source), "circuit": cid.hex()}).encode()
        try:
            reply = json.loads(await self.links.request(target, RELAY_PROTOCOL, body, timeout=5))
            ok = isinstance(reply, dict) and reply.get("ok") is True
        except (P2PError, ValueError) as exc:
            ok, reply = False, {"error": str(exc)}
        if not ok:
            self._drop(cid)
            return _error(f"target refused: {reply.get('error') if isinstance(reply, dict) else reply}")
        log.info("= relaying circuit %s: %s <-> %s", cid.hex(), source.short(), target.short())
        return b'{"ok":true}'

    def _incoming(self, relay: PeerId, source: PeerId, cid: bytes) -> bytes:
        if cid in self.circuits:
            return _error("duplicate circuit")
        if len(self.circuits) >= self.max_circuits:  # a peer must not open endpoint circuits without bound
            return _error("too many circuits")
        circuit = Circuit(self.links, relay, cid, source)
        self.circuits[cid] = circuit
        task = asyncio.ensure_future(self.on_circuit(circuit, "inbound"))
        task.add_done_callback(lambda t: self.circuits.pop(cid, None) if circuit.closed else None)
        return b'{"ok":true}'

    def _on_data(self, link: Any, body: bytes) -> None:
        """``/timnode/relay-data/1``: forward (relay role) or deliver (endpoint role), in order."""
        if len(body) < 9:
            return
        cid, kind, payload = body[:8], body[8], body[9:]
        peer: PeerId = link.remote_peer
        relayed = self.relayed.get(cid)
        if relayed is not None and peer in relayed.pumps:
            pump = relayed.pumps[peer]
            relayed.received += len(payload)
            if 0 < self.max_circuit_bytes < relayed.received:
                self._limit(cid, "bytes", f"{relayed.received} > {self.max_circuit_bytes} bytes")
                return
            if pump.queue.qsize() >= self.max_queued:
                log.info("circuit %s falls behind: closed", cid.hex())
                self._drop(cid, notify=True)
                return
            pump.queue.put_nowait(body)
            if kind == CLOSE:
                asyncio.get_running_loop().call_later(5, self._drop, cid)
            return
        circuit = self.circuits.get(cid)
        if circuit is None or circuit.relay != peer:
            return
        if kind == DATA:
            if circuit.queued() >= self.max_queued:  # the local handshake/link is not reading: drop it
                log.info("circuit %s: inbound queue full, closed", cid.hex())
                circuit.feed_close()
                self.circuits.pop(cid, None)
                return
            circuit.feed(payload)
        else:
            circuit.close_reason = payload[:200].decode("utf-8", "replace")
            circuit.feed_close()
            self.circuits.pop(cid, None)
            if circuit.close_reason and self.on_closed is not None:
                self.on_closed(circuit, circuit.close_reason)

    def _limit(self, cid: bytes, which: str, detail: str) -> None:
        """Close relayed circuit ``cid`` at a limit: log it, tell both ends why."""
        relayed = self.relayed.get(cid)
        if relayed is None:
            return
        self.limited[which] += 1
        log.info("circuit %s (%s <-> %s) closed at the relay: %s limit (%s)", cid.hex(), relayed.a.short(),
                 relayed.b.short(), which, detail)  # fmt: skip
        self._drop(cid, notify=True, reason=f"limit: {which}")

    async def _pump(self, cid: bytes, pump: _Pump) -> None:
        while True:
            body = await pump.queue.get()
            try:
                await self.links.send(pump.dest, RELAY_DATA, body)
            except P2PError:
                self._drop(cid, notify=True)
                return
            circuit = self.relayed.get(cid)
            if circuit is not None:
                circuit.forwarded += len(body)
            if body[8] == CLOSE:
                self._drop(cid)
                return

    def _drop(self, cid: bytes, notify: bool = False, reason: str = "") -> None:
        relayed = self.relayed.pop(cid, None)
        if relayed is None:
            return
        if relayed.expiry is not None:
            relayed.expiry.cancel()
        current = asyncio.current_task()
        for src, pump in relayed.pumps.items():
            if pump.task is not None and pump.task is not current:
                pump.task.cancel()
            if notify and self.links.is_linked(pump.dest):
                asyncio.ensure_future(self._notify_close(pump.dest, cid, reason))
            del src

    async def _notify_close(self, peer: PeerId, cid: bytes, reason: str = "") -> None:
        with contextlib.suppress(P2PError):
            await self.links.send(peer, RELAY_DATA, cid + bytes([CLOSE]) + reason.encode())

    def _on_link_event(self, event: LinkEvent) -> None:
        if not isinstance(event, LinkDown):
            return
        self.reservations.discard(event.peer)
        self.relays.discard(event.peer)
        for cid, relayed in list(self.relayed.items()):
            if event.peer in (relayed.a, relayed.b):
                self._drop(cid, notify=True)
        for cid, circuit in list(self.circuits.items()):
            if circuit.relay == event.peer:
                circuit.feed_close()
                self.circuits.pop(cid, None)


def _error(text: str) -> bytes:
    return json.dumps({"ok": False, "error": text}).encode()
