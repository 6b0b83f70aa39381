"""The node's UDP port: a STUN responder and STUN client on one socket (asyncio adapter).

Every node answers RFC 5389 Binding requests on UDP at its port number (the same number as
its TCP port), so a timnode network needs no outside STUN server: the response carries
XOR-MAPPED-ADDRESS (and MAPPED-ADDRESS for RFC 3489-era clients) and FINGERPRINT. Requests
with unknown comprehension-required attributes get a 420 (RFC 5389 §7.3.1); anything that is
not a STUN request is dropped and counted.

The same socket sends our own Binding requests (``query``), so the mapped address a node
learns is the NAT mapping of its port, and comparing the answers of two peers tells the
mapping behaviour (RFC 4787 §4.1, RFC 5780 §4.3). Transactions are ``StunTransaction`` cores
(``nat/stun_client.py``); this adapter reads ``loop.time()`` and re-arms one timer each.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any

from nat.stun import (
    BINDING,
    Address,
    StunClass,
    StunDecodeError,
    StunMessage,
    decode_message,
    encode_message,
    is_stun,
)
from nat.stun_client import StunConfig, StunTransaction

__all__ = ["SOFTWARE", "StunEndpoint", "StunStats", "start_stun_endpoint"]

log = logging.getLogger(__name__)

SOFTWARE = "timnode"


@dataclass(slots=True)
class StunStats:
    requests: int = 0
    responses_sent: int = 0
    dropped: int = 0
    queries: int = 0


class StunEndpoint(asyncio.DatagramProtocol):
    """STUN responder + client on one UDP socket."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.stats = StunStats()
        self._rng = rng or random.Random()
        self._pending: dict[bytes, tuple[StunTransaction, asyncio.Future[Address]]] = {}
        self._timers: dict[bytes, asyncio.TimerHandle] = {}

    @property
    def local_address(self) -> Address:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    # -- asyncio.DatagramProtocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's UDPTransport is no subclass

    def datagram_received(self, data: bytes, addr: tuple[str | Any, ...]) -> None:
        peer: Address = (str(addr[0]), int(addr[1]))
        if not is_stun(data):
            self.stats.dropped += 1
            return
        try:
            msg = decode_message(data)
        except StunDecodeError as exc:
            self.stats.dropped += 1
            log.debug("< bad STUN from %s:%d: %s", peer[0], peer[1], exc)
            return
        if msg.message_class == StunClass.REQUEST:
            self._answer(msg, peer)
        elif msg.transaction_id in self._pending:
            self._receive_response(data, peer)
        else:
            self.stats.dropped += 1

    def error_received(self, exc: Exception) -> None:
        log.debug("STUN socket error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        for tid in list(self._pending):
            self._finish(tid)

    # -- server ---------------------------------------------------------------------------------------

    def _answer(self, msg: StunMessage, peer: Address) -> None:
        self.stats.requests += 1
        if msg.method != BINDING:
            reply = StunMessage(
                method=msg.method,
                message_class=StunClass.ERROR,
                transaction_id=msg.transaction_id,
                error_code=(400, "only Binding is served"),
            )
        elif msg.unknown_required():
            unknown = b"".join(t.to_bytes(2, "big") for t in msg.unknown_required()[:16])
            reply = StunMessage(
                message_class=StunClass.ERROR,
                transaction_id=msg.transaction_id,
                error_code=(420, "unknown attribute"),
                unknown=((0x000A, unknown),),
            )
        else:
            reply = StunMessage(
                message_class=StunClass.SUCCESS,
                transaction_id=msg.transaction_id,
                xor_mapped_address=peer,
                mapped_address=peer,
                software=SOFTWARE,
            )
        self._sendto(encode_message(reply), peer)
        self.stats.responses_sent += 1

    # -- client ---------------------------------------------------------------------------------------

    async def query(self, server: Address, config: StunConfig | None = None) -> Address:
        """Send a Binding request to ``server``; return our mapped address as it sees it.

        Raises:
            StunTimeout: no answer after the retransmissions; ValueError: an error response.
        """
        loop = asyncio.get_running_loop()
        tx = StunTransaction(server, self._rng, config or StunConfig(rto=0.25, rc=4, rm=8))
        future: asyncio.Future[Address] = loop.create_future()
        self._pending[tx.transaction_id] = (tx, future)
        self.stats.queries += 1
        tx.start(loop.time())
        self._service(tx)
        try:
            return await future
        finally:
            self._finish(tx.transaction_id)

    def _receive_response(self, data: bytes, peer: Address) -> None:
        loop = asyncio.get_running_loop()
        for tx, _ in list(self._pending.values()):
            if tx.receive_datagram(data, peer, loop.time()):
                self._service(tx)
                return

    def _on_timer(self, tid: bytes) -> None:
        entry = self._pending.get(tid)
        if entry is not None:
            entry[0].handle_timer(asyncio.get_running_loop().time())
            self._service(entry[0])

    def _service(self, tx: StunTransaction) -> None:
        for data, addr in tx.datagrams_to_send():
            self._sendto(data, addr)
        _, future = self._pending[tx.transaction_id]
        old = self._timers.pop(tx.transaction_id, None)
        if old is not None:
            old.cancel()
        if tx.result is not None and not future.done():
            future.set_result(tx.result)
        elif tx.error is not None and not future.done():
            future.set_exception(tx.error)
        timer = tx.get_timer()
        if timer is not None:
            loop = asyncio.get_running_loop()
            self._timers[tx.transaction_id] = loop.call_at(timer, self._on_timer, tx.transaction_id)

    def _finish(self, tid: bytes) -> None:
        timer = self._timers.pop(tid, None)
        if timer is not None:
            timer.cancel()
        entry = self._pending.pop(tid, None)
        if entry is not None and not entry[1].done():
            entry[1].cancel()

    def _sendto(self, data: bytes, addr: Address) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def start_stun_endpoint(host: str, port: int) -> StunEndpoint:
    """Bind UDP ``host:port`` (``0.0.0.0``/``""``: all IPv4 interfaces) and serve STUN."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(StunEndpoint, local_addr=(host or "0.0.0.0", port))
    protocol.transport = transport  # uvloop calls connection_made() only on the next loop turn
    log.info("STUN responder on udp %s:%d", *protocol.local_address)
    return protocol
