"""Direct links after hole punching: ICE (aioice via aiortc) + WebRTC data channels, transport ``rtc``.

Signalling (``/timnode/signal/1``, request/response over whatever link the two peers already
share, usually a ``relay`` circuit, so it is authenticated end to end): the initiator gathers
its candidates (host + server-reflexive from a peer's STUN responder) into an SDP offer; the
responder answers with its own; both then run ICE checks at once (RFC 8445), which opens the
NAT mappings from both sides; DTLS and SCTP follow (aiortc).

Two negotiated data channels: ``ctl`` (id 0, reliable, ordered) carries the timnode link and
``data`` (id 1, unordered, no retransmissions) carries the link's *droppable* messages (live
stream data, ``Link.send_droppable``) as self-contained datagrams sealed under keys derived
from the link's Noise session, with explicit nonces and a replay window
(``node/droppable.py``; ``RtcStream`` is a ``node.link.UnorderedStream``). The timnode
handshake (Noise XX, PeerIds, network key) runs over ``ctl`` exactly as over a WebSocket, and
the ``Link`` is handed to the ``LinkManager`` as transport ``rtc``. aiortc's SCTP is pure
Python and slow per message (hundreds to ~1,400 messages/s), so the link layer's coalescing
(all frames queued in one loop tick sealed into one Noise message = one channel message) is
what keeps small-frame throughput up.

aiortc is imported lazily: nodes that never punch never load it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from websockets.exceptions import ConnectionClosed

from nat.autonat import NatDecodeError, decode_json
from node.link import QueuedStream

if TYPE_CHECKING:
    from aiortc import RTCDataChannel, RTCPeerConnection

__all__ = ["SIGNAL_PROTOCOL", "RtcStream", "answer_offer", "make_offer"]

log = logging.getLogger(__name__)

SIGNAL_PROTOCOL = "/timnode/signal/1"
HIGH_WATER = 1 << 20  # bytes buffered in SCTP before send() waits
DATA_HIGH_WATER = 256 << 10  # bytes buffered on ``data`` before droppable messages wait (and drop)


class RtcStream(QueuedStream):
    """The ``ctl`` data channel as a ``node.link.MessageStream``."""

    def __init__(self, pc: RTCPeerConnection, ctl: RTCDataChannel, data: RTCDataChannel) -> None:
        super().__init__()
        self.pc = pc
        self.ctl = ctl
        self.data = data
        self.opened = asyncio.Event()
        self._low = asyncio.Event()
        ctl.bufferedAmountLowThreshold = HIGH_WATER // 4
        ctl.on("message", self._on_message)
        ctl.on("open", self.opened.set)
        ctl.on("close", self._on_close)
        ctl.on("bufferedamountlow", self._low.set)
        pc.on("connectionstatechange", self._on_state)
        if ctl.readyState == "open":
            self.opened.set()
        self._on_unordered: Callable[[bytes], None] | None = None
        self._on_writable: Callable[[], None] | None = None
        data.bufferedAmountLowThreshold = DATA_HIGH_WATER // 4
        data.on("message", self._on_data)
        data.on("bufferedamountlow", self._data_low)
        data.on("open", self._data_low)

    # -- the unordered ``data`` channel (node.link.UnorderedStream) ----------------------------

    def set_unordered_handler(self, on_message: Callable[[bytes], None], on_writable: Callable[[], None]) -> None:
        self._on_unordered, self._on_writable = on_message, on_writable

    def unordered_ready(self) -> bool:
        return not self.closed and self.data.readyState == "open" and self.data.bufferedAmount <= DATA_HIGH_WATER

    def send_unordered(self, datagram: bytes) -> None:
        if self.closed or self.data.readyState != "open":
            return
        with contextlib.suppress(Exception):  # lost like any datagram
            self.data.send(datagram)

    def _on_data(self, message: bytes | str) -> None:
        if isinstance(message, bytes) and not self.closed and self._on_unordered is not None:
            self._on_unordered(message)

    def _data_low(self) -> None:
        if self._on_writable is not None:
            self._on_writable()

    def _on_message(self, message: bytes | str) -> None:
        if isinstance(message, bytes):
            self.feed(message)

    def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self._on_close()

    def _on_close(self) -> None:
        self.feed_close()
        self.opened.set()

    def selected_pair(self) -> str:
        """``local -> remote`` of the nominated ICE pair ("" if unknown)."""
        with contextlib.suppress(Exception):
            for transceiver in [self.pc.sctp]:
                ice = transceiver.transport.transport  # type: ignore[union-attr]
                pair = ice._connection._nominated.get(1)
                if pair is not None:
                    return (
                        f"{pair.local_candidate.host}:{pair.local_candidate.port} -> "
                        f"{pair.remote_candidate.host}:{pair.remote_candidate.port}"
                    )
        return ""

    async def send(self, message: bytes) -> None:
        if self.closed:
            raise ConnectionClosed(None, None)
        self.ctl.send(message)
        while self.ctl.bufferedAmount > HIGH_WATER and not self.closed:
            self._low.clear()
            await self._low.wait()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self._on_close()
        with contextlib.suppress(Exception):
            await self.pc.close()

    def abort(self) -> None:
        self._on_close()
        asyncio.ensure_future(self.close())


def _peer_connection(stun: str | None) -> tuple[RTCPeerConnection, RtcStream]:
    from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

    servers = [RTCIceServer(urls=f"stun:{stun}")] if stun else []
    pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
    ctl = pc.createDataChannel("ctl", ordered=True, negotiated=True, id=0)
    data = pc.createDataChannel("data", ordered=False, maxRetransmits=0, negotiated=True, id=1)
    return pc, RtcStream(pc, ctl, data)


async def make_offer(stun: str | None) -> tuple[RtcStream, bytes]:
    """Initiator: a peer connection and the offer body for ``/timnode/signal/1``."""
    pc, stream = _peer_connection(stun)
    await pc.setLocalDescription(await pc.createOffer())  # gathers all candidates (no trickle)
    return stream, json.dumps({"op": "offer", "sdp": pc.localDescription.sdp}).encode()


async def accept_answer(stream: RtcStream, body: bytes) -> None:
    from aiortc import RTCSessionDescription

    sdp = decode_json(body, {"sdp": str}).get("sdp")
    if not isinstance(sdp, str):
        raise NatDecodeError("answer without sdp")
    await stream.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))


async def answer_offer(body: bytes, stun: str | None) -> tuple[RtcStream, bytes]:
    """Responder: apply the offer, return the stream (opening) and the answer body."""
    from aiortc import RTCSessionDescription

    obj = decode_json(body, {"op": str, "sdp": str})
    if obj.get("op") != "offer" or not isinstance(obj.get("sdp"), str):
        raise NatDecodeError("not an offer")
    pc, stream = _peer_connection(stun)
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=str(obj["sdp"]), type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
    except Exception:
        await pc.close()
        raise
    return stream, json.dumps({"sdp": pc.localDescription.sdp}).encode()
