"""``NatService``: the node's NAT traversal, wired onto the ``LinkManager`` (asyncio adapter).

- STUN responder (+ client) on UDP at the node's port number (``nat/stun_server.py``);
- reachability: asks linked peers to dial it back (``/timnode/autonat/1``, ``nat/autonat.py``)
  and serves their dial-back requests; NAT mapping from the STUN answers of linked peers;
- relays (``nat/relay.py``): a private node reserves its publicly reachable peers as relays;
  a public node relays circuits; a private node lists the peers reserved at its relays and,
  for each it is not linked to, the smaller PeerId opens a circuit (link transport ``relay``);
- hole punching (``nat/rtc.py``): over a relay link, the circuit opener offers ICE through
  ``/timnode/signal/1``; on success the link moves to ``rtc``, otherwise it stays ``relay``
  and the punch is retried after ``punch_retry`` seconds (doubling, at most 10 min).

``status()`` is merged into ``/peers``: ``reachability``, ``nat_mapping``, ``public_address``,
``relays``... ``subscribe(cb)`` calls ``cb(reachability)`` on every change (the DHT's
server/client mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from nat import autonat
from nat.autonat import (
    AUTONAT_PROTOCOL,
    DialBackRequest,
    DialBackResponse,
    MappingObservations,
    NatDecodeError,
    Reachability,
)
from nat.relay import MAX_CIRCUIT_BYTES, MAX_CIRCUIT_SECONDS, Circuit, RelayService
from nat.rtc import SIGNAL_PROTOCOL, RtcStream, accept_answer, answer_offer, make_offer
from nat.stun import Address
from nat.stun_server import StunEndpoint, start_stun_endpoint
from node.errors import P2PError
from node.identity import PeerId
from node.link import Handlers, Link, LinkConfig, MessageStream, dial, establish
from node.manager import PROBE_AGENT_SUFFIX, LinkManager, LinkUp
from node.peerstore import split_host_port

__all__ = ["NatConfig", "NatService"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class NatConfig:
    stun: bool = True  # answer STUN on UDP at the node's port
    traversal: bool = True  # relays and ICE hole punching (False: reachability only)
    probe_interval: float = 60.0  # re-check reachability / mapping
    first_probe: float = 1.0  # after the first link-up
    dialback_timeout: float = 3.0
    rtc_timeout: float = 20.0
    punch_retry: float = 30.0
    relay_interval: float = 2.0  # look for peers behind our relays
    max_relays: int = 0  # relays to reserve at most (0: every outbound-linked public peer)
    relay_max_bytes: int = MAX_CIRCUIT_BYTES  # per relayed circuit, both directions (0: no limit)
    relay_max_seconds: float = MAX_CIRCUIT_SECONDS  # per relayed circuit (0: no limit)


class NatService:
    def __init__(self, links: LinkManager, config: NatConfig | None = None) -> None:
        self.links = links
        self.config = config or NatConfig()
        self.stun: StunEndpoint | None = None
        self.reachability = Reachability()
        self.mapping = MappingObservations()
        self.relay = RelayService(
            links,
            self._on_circuit,
            allow_relaying=lambda: self.status_now() != autonat.PRIVATE,
            max_circuit_bytes=self.config.relay_max_bytes,
            max_circuit_seconds=self.config.relay_max_seconds,
            on_closed=self._on_circuit_closed,
        )
        self.punches: dict[PeerId, dict[str, Any]] = {}
        self._subscribers: list[Callable[[str], None]] = []
        self._relay_subscribers: list[Callable[[tuple[PeerId, ...]], None]] = []
        self._published_relays: frozenset[PeerId] = frozenset()
        self._last_reachability = autonat.UNKNOWN
        self._tasks: set[asyncio.Task[Any]] = set()
        self._kick = asyncio.Event()
        self._punching: set[PeerId] = set()
        self._next_punch: dict[PeerId, tuple[float, float]] = {}
        links.handle(AUTONAT_PROTOCOL, self._serve_dialback)
        links.handle(SIGNAL_PROTOCOL, self._serve_signal)
        self._unsubscribe = links.subscribe(self._on_link_event)

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> None:
        if self.config.stun:
            try:
                self.stun = await start_stun_endpoint(host, port)
            except OSError as exc:
                log.warning("STUN responder disabled: cannot bind udp %s:%d: %s", host, port, exc)
        self._spawn(self._probe_loop())
        if self.config.traversal:
            self._spawn(self._relay_loop())

    async def stop(self) -> None:
        self._unsubscribe()
        self.relay.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.stun is not None:
            self.stun.close()

    def subscribe(self, callback: Callable[[str], None]) -> None:
        """``callback(reachability)`` on every change ("public", "private", "unknown")."""
        self._subscribers.append(callback)

    def subscribe_relays(self, callback: Callable[[tuple[PeerId, ...]], None]) -> None:
        """``callback(relays)`` whenever the set of relays we hold a reservation at changes."""
        self._relay_subscribers.append(callback)

    async def dial_via_relays(
        self, peer: PeerId, relays: Sequence[PeerId], reach: Callable[[PeerId], Awaitable[bool]]
    ) -> bool:
        """Link to ``peer`` through one of its advertised ``relays`` (its DHT peer record).

        ``reach(relay)`` makes sure we are linked to the relay (``DhtService.dial``). The link
        comes up as ``relay``; the relay loop then punches it to ``rtc`` like any relayed link.
        """
        if not self.config.traversal or peer in self._punching:
            return self.links.is_linked(peer)
        self._punching.add(peer)
        try:
            for relay in relays:
                if self.links.is_linked(peer):
                    break
                if relay in (peer, self.links.local_peer):
                    continue
                try:
                    if not (self.links.is_linked(relay) or await reach(relay)):
                        continue
                    circuit = await self.relay.connect(relay, peer)
                    await self._link_over(circuit, "outbound", "relay", peer, f"relay via {relay.short()}")
                    log.info("= linked to %s through its advertised relay %s", peer.short(), relay.short())
                except Exception as exc:  # P2PError, ValueError, TimeoutError, handshake errors
                    log.info("relay dial to %s via %s failed: %s", peer.short(), relay.short(), exc)
        finally:
            self._punching.discard(peer)
        return self.links.is_linked(peer)

    def status_now(self) -> str:
        return self.reachability.status(_now())

    def status(self) -> dict[str, Any]:
        now = _now()
        ok, failed = self.reachability.counts(now)
        public = self.mapping.public_address()
        return {
            "reachability": self.reachability.status(now),
            "nat_mapping": self.mapping.behaviour(),
            "public_address": f"{public[0]}:{public[1]}" if public else None,
            "dialbacks": {"ok": ok, "failed": failed},
            "stun": None if self.stun is None else f"udp {self.stun.local_address[0]}:{self.stun.local_address[1]}",
            "punches": {str(p): v for p, v in self.punches.items()},
        } | self.relay.status()

    # -- reachability ---------------------------------------------------------------------------------

    def _on_link_event(self, event: Any) -> None:
        if isinstance(event, LinkUp):
            self._kick.set()

    async def _probe_loop(self) -> None:
        asked: dict[PeerId, float] = {}
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.config.probe_interval)
            self._kick.clear()
            await asyncio.sleep(self.config.first_probe)
            now = _now()
            todo = [
                e for e in self.links.entries()
                if e.transport == "ws" and now - asked.get(e.link.remote_peer, -1e9) > self.config.probe_interval
            ][:8]  # fmt: skip
            for entry in todo:
                asked[entry.link.remote_peer] = now
            await asyncio.gather(*(self._probe(e.link, e.addrs) for e in todo), return_exceptions=True)
            self._notify()

    async def _probe(self, link: Link, addrs: tuple[str, ...]) -> None:
        await asyncio.gather(self._ask_dialback(link.remote_peer), self._stun_peer(addrs))

    async def _ask_dialback(self, peer: PeerId) -> None:
        port = 0
        for addr in self.links.listen_addrs:
            with contextlib.suppress(P2PError, ValueError):
                port = split_host_port(addr.removeprefix("ws://"))[1]
                break
        if not port:
            return
        try:
            body = await self.links.request(
                peer, AUTONAT_PROTOCOL, DialBackRequest(port).encode(), timeout=self.config.dialback_timeout + 3
            )
            reply = DialBackResponse.decode(body)
        except (P2PError, NatDecodeError) as exc:
            log.debug("dial-back by %s: no answer (%s)", peer.short(), exc)
            return
        self.reachability.record(str(peer), reply.ok, _now())
        log.info("= dial-back by %s: %s%s", peer.short(), "ok" if reply.ok else "failed ", reply.error)

    async def _serve_dialback(self, peer: PeerId, body: bytes) -> bytes:
        request = DialBackRequest.decode(body)
        link = self.links.link(peer)
        if not link.remote_addr:
            return DialBackResponse(False, "no address").encode()
        host = split_host_port(link.remote_addr)[0]
        url = f"ws://[{host}]:{request.port}" if ":" in host else f"ws://{host}:{request.port}"
        config = LinkConfig(
            handshake_timeout=self.config.dialback_timeout,
            ping_interval=0,
            agent=self.links.config.agent + PROBE_AGENT_SUFFIX,
        )
        try:
            probe = await asyncio.wait_for(
                dial(url, self.links.identity, self.links.network_key, peer, self.config.dialback_timeout,
                     config=config, handlers=Handlers()),
                self.config.dialback_timeout + 1,
            )  # fmt: skip
        except Exception as exc:  # OSError, TimeoutError, websockets errors, P2PError
            return DialBackResponse(False, f"{type(exc).__name__}: {exc}"[:200], host).encode()
        await probe.close("dial-back probe done")
        return DialBackResponse(True, "", host).encode()

    async def _stun_peer(self, addrs: tuple[str, ...]) -> None:
        if self.stun is None or not addrs:
            return
        try:
            server = split_host_port(addrs[0].removeprefix("ws://"))
        except P2PError:
            return
        try:
            mapped = await self.stun.query(server)
        except (TimeoutError, ValueError, OSError, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.debug("STUN %s:%d: %s", server[0], server[1], exc)
            return
        self.mapping.local_hosts.add(_source_ip(server))
        self.mapping.record(server, mapped)
        log.info("= STUN %s:%d sees us as %s:%d", server[0], server[1], mapped[0], mapped[1])

    def _notify(self) -> None:
        now_status = self.status_now()
        if now_status != self._last_reachability:
            log.info("= reachability %s -> %s (mapping %s)", self._last_reachability, now_status,
                     self.mapping.behaviour())  # fmt: skip
            self._last_reachability = now_status
            for callback in list(self._subscribers):
                try:
                    callback(now_status)
                except Exception:
                    log.exception("reachability subscriber failed")

    # -- relays and punching --------------------------------------------------------------------------

    def _stun_server_text(self) -> str | None:
        """A peer's STUN responder for server-reflexive candidates: one that answered us."""
        for server in self.mapping.mapped:
            return f"{server[0]}:{server[1]}"
        return None

    async def _relay_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.relay_interval)
            self._notify_relays()
            if self.status_now() != autonat.PRIVATE:
                self._maybe_punch()  # a reachable node that was dialled through a relay punches too
                continue
            for entry in self.links.entries():
                peer = entry.link.remote_peer
                full = 0 < self.config.max_relays <= len(self.relay.relays)
                if entry.transport == "ws" and peer not in self.relay.relays and entry.direction == "outbound":
                    if not full:
                        await self.relay.reserve(peer)
            self._notify_relays()
            for relay in list(self.relay.relays):
                for target in await self.relay.list_reserved(relay):
                    self._maybe_link(relay, target)
            self._maybe_punch()

    def _notify_relays(self) -> None:
        relays = frozenset(self.relay.relays)
        if relays == self._published_relays:
            return
        self._published_relays = relays
        log.info("= relays: %s", ", ".join(sorted(p.short() for p in relays)) or "none")
        for callback in list(self._relay_subscribers):
            try:
                callback(tuple(sorted(relays, key=lambda p: p.bytes)))
            except Exception:
                log.exception("relay subscriber failed")

    def _maybe_link(self, relay: PeerId, target: PeerId) -> None:
        me = self.links.local_peer
        if target == me or self.links.is_linked(target) or me.bytes > target.bytes or target in self._punching:
            return
        self._punching.add(target)
        self._spawn(self._open_relay_link(relay, target))

    async def _open_relay_link(self, relay: PeerId, target: PeerId) -> None:
        try:
            circuit = await self.relay.connect(relay, target)
            await self._link_over(circuit, "outbound", "relay", target, f"relay via {relay.short()}")
        except Exception as exc:
            log.info("relay link to %s via %s failed: %s", target.short(), relay.short(), exc)
        finally:
            self._punching.discard(target)

    async def _on_circuit(self, circuit: Circuit, direction: str) -> None:
        try:
            await self._link_over(circuit, "inbound", "relay", None, f"relay from {circuit.remote.short()}")
        except Exception as exc:
            log.info("relayed link from %s failed: %s", circuit.remote.short(), exc)
            await circuit.close()

    async def _link_over(
        self, stream: MessageStream, direction: str, transport: str, expected: PeerId | None, what: str
    ) -> Link:
        link = await establish(
            stream,
            self.links.identity,
            self.links.network_key,
            initiator=direction == "outbound",
            expected_peer=expected,
            config=self.links.link_config(),
            handlers=self.links.handlers,
            what=what,
        )
        if not self.links.adopt(link, direction, transport):
            raise P2PError(link.close_reason or "link not kept")
        return link

    def _on_circuit_closed(self, circuit: Circuit, reason: str) -> None:
        """The relay closed our circuit (a limit): the relay loop re-links, and the punch is due at once."""
        self._next_punch.pop(circuit.remote, None)
        log.info("relay %s closed the circuit to %s (%s): direct link retried on the next relay link",
                 circuit.relay.short(), circuit.remote.short(), reason)  # fmt: skip

    def _maybe_punch(self) -> None:
        now = _now()
        me = self.links.local_peer
        for entry in self.links.entries():
            peer = entry.link.remote_peer
            if entry.transport != "relay" or me.bytes > peer.bytes or peer in self._punching:
                continue
            due, _ = self._next_punch.get(peer, (0.0, self.config.punch_retry))
            if now >= due:
                self._punching.add(peer)
                self._spawn(self._punch(peer))

    async def _punch(self, peer: PeerId) -> None:
        start = _now()
        record: dict[str, Any] = {"state": "trying", "started": round(time.time(), 3)}
        self.punches[peer] = record
        stream: RtcStream | None = None
        try:
            stream, offer = await make_offer(self._stun_server_text())
            answer = await self.links.request(peer, SIGNAL_PROTOCOL, offer, timeout=self.config.rtc_timeout)
            await accept_answer(stream, answer)
            async with asyncio.timeout(self.config.rtc_timeout):
                await stream.opened.wait()
            if stream.closed:
                raise ConnectionError("ICE failed")
            ice_s = _now() - start
            await self._link_over(stream, "outbound", "rtc", peer, f"rtc to {peer.short()}")
            record.update(state="rtc", ice_s=round(ice_s, 3), total_s=round(_now() - start, 3),
                          pair=stream.selected_pair())  # fmt: skip
            log.info("= hole punched to %s in %.2fs (%s)", peer.short(), ice_s, stream.selected_pair())
            self._next_punch.pop(peer, None)
        except Exception as exc:
            _, wait = self._next_punch.get(peer, (0.0, self.config.punch_retry))
            self._next_punch[peer] = (_now() + wait, min(wait * 2, 600.0))
            record.update(state="failed", error=f"{type(exc).__name__}: {exc}"[:200], retry_in_s=round(wait, 1))
            log.info("hole punch to %s failed (%s); stays relayed, retry in %.0fs", peer.short(), exc, wait)
            if stream is not None:
                await stream.close()
        finally:
            self._punching.discard(peer)

    async def _serve_signal(self, peer: PeerId, body: bytes) -> bytes:
        start = _now()
        stream, answer = await answer_offer(body, self._stun_server_text())
        self._spawn(self._finish_answer(peer, stream, start))
        return answer

    async def _finish_answer(self, peer: PeerId, stream: RtcStream, start: float) -> None:
        record: dict[str, Any] = {"state": "answering", "started": round(time.time(), 3)}
        self.punches[peer] = record
        try:
            async with asyncio.timeout(self.config.rtc_timeout + 5):
                await stream.opened.wait()
            if stream.closed:
                raise ConnectionError("ICE failed")
            await self._link_over(stream, "inbound", "rtc", peer, f"rtc from {peer.short()}")
            record.update(state="rtc", ice_s=round(_now() - start, 3), pair=stream.selected_pair())
        except Exception as exc:
            record.update(state="failed", error=f"{type(exc).__name__}: {exc}"[:200])
            await stream.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _source_ip(server: Address) -> str:
    """The local address the kernel would use towards ``server`` (no packet is sent)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(server)
        return str(s.getsockname()[0])
    return ""


def _now() -> float:
    return asyncio.get_running_loop().time()
