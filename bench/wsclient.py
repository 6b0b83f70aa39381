"""A lean WebSocket client for load generation: websockets' sans-I/O core on asyncio.

``websockets.asyncio.client`` queues every message through futures and a recv
loop; a load generator that shares two cores with the server under test cannot
afford that. Here the sans-I/O :class:`websockets.client.ClientProtocol` is driven
straight from ``asyncio.Protocol`` callbacks: bytes in through ``receive_data()``,
frames out through ``data_to_send()``, and every complete data frame goes to a
plain callback, synchronously. Pings are answered by the core. Compression is
never offered (the relay and the node are measured on the same uncompressed frames).
Once the handshake is done, data frames and pings are handled by :mod:`bench.wsfast`
until the server sends anything else; from that frame on the core parses again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from bench.wsfast import PONG, FrameSplitter, client_frame

__all__ = ["FrameHandler", "WsClient", "connect"]

FrameHandler = Callable[[bytes], None]


class WsClient(asyncio.Protocol):
    """One client connection; ``on_frame`` gets each binary or text message's payload."""

    def __init__(self, core: ClientProtocol, on_frame: FrameHandler) -> None:
        loop = asyncio.get_running_loop()
        self.core = core
        self.on_frame = on_frame
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.dropped_frames = 0
        self._splitter: FrameSplitter | None = None  # set once the handshake is done
        self._may_split = True  # False once the core owns the stream for good

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.core.send_request(self.core.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        splitter = self._splitter
        if splitter is not None:
            payloads, rest = splitter.feed(data)
            for payload in payloads:
                self.on_frame(payload)
            if splitter.pings:
                self._pong(splitter.pings)
            if rest is None:
                return
            self._splitter = None  # a control frame or a fragment: the core parses from here on
            data = rest
        self.core.receive_data(data)
        for event in self.core.events_received():
            if isinstance(event, Frame):
                self._frame_received(event)
            elif isinstance(event, Response):
                self._handshake_done()
        self._flush()
        if self._may_split and self.core.state is State.OPEN and not self.core.reader.buffer:
            self._may_split = False  # the core holds no partial frame: split from the next byte on
            self._splitter = FrameSplitter()

    def _pong(self, pings: list[bytes]) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(b"".join(client_frame(payload, PONG) for payload in pings))
        pings.clear()

    def _frame_received(self, frame: Frame) -> None:
        if frame.opcode in (Opcode.BINARY, Opcode.TEXT) and frame.fin:
            self.on_frame(bytes(frame.data))
        elif frame.opcode in (Opcode.BINARY, Opcode.TEXT, Opcode.CONT):
            self.dropped_frames += 1  # fragmented messages are not used by the servers measured

    def _handshake_done(self) -> None:
        if self.opened.done():
            return
        if self.core.handshake_exc is not None:
            self.opened.set_exception(self.core.handshake_exc)
        else:
            self.opened.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.core.receive_eof()
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    def _flush(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        for chunk in self.core.data_to_send():
            if chunk:
                transport.write(chunk)
            else:
                transport.close()
                return

    @property
    def is_open(self) -> bool:
        """True while messages can be sent."""
        return self.core.state is State.OPEN

    def send(self, payload: bytes) -> None:
        """Send one binary message (no await: the transport buffers it)."""
        if self.core.state is not State.OPEN:
            return
        transport = self.transport
        if self._splitter is not None and transport is not None and not transport.is_closing():
            transport.write(client_frame(payload))
        else:
            self.core.send_binary(payload)
            self._flush()

    async def close(self, timeout: float = 2.0) -> None:
        """Start the closing handshake and wait for the TCP connection to end."""
        if self.core.state is State.OPEN:
            self.core.send_close()
            self._flush()
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            if self.transport is not None:
                self.transport.abort()


async def connect(
    url: str, on_frame: FrameHandler, subprotocol: str | None = None, timeout: float = 10.0
) -> WsClient:
    """Open a WebSocket to ``url`` (ws:// only) and wait for the handshake.

    Raises:
        OSError: the TCP connection failed.
        websockets.exceptions.InvalidHandshake: the server refused the upgrade.
        TimeoutError: no handshake within ``timeout`` seconds.
    """
    parts = urlsplit(url)
    protocols = [Subprotocol(subprotocol)] if subprotocol else None
    core = ClientProtocol(parse_uri(url), subprotocols=protocols, max_size=None)
    loop = asyncio.get_running_loop()
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    _, client = await asyncio.wait_for(
        loop.create_connection(lambda: WsClient(core, on_frame), host, port), timeout
    )
    await asyncio.wait_for(asyncio.shield(client.opened), timeout)
    return client
