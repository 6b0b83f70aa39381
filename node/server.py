"""The node's one TCP port: WebSocket for clients and peers, plus small HTTP routes.

Everything that arrives on the port is told apart here, before any layer sees it:
a WebSocket upgrade is dispatched by its negotiated subprotocol (``timnode.v1.proto``
and ``timnode.v1.json`` for clients; peer links register their own), and a plain HTTP
GET is answered by a registered route (``/healthz`` ...) or 404. An upgrade offering no
subprotocol we speak is refused with HTTP 400 before the handshake completes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response

__all__ = ["PortServer", "PortConnection", "HttpReply", "json_reply", "ConnectionHandler", "RouteHandler"]

log = logging.getLogger(__name__)

ConnectionHandler = Callable[[ServerConnection], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


RouteHandler = Callable[[Request], HttpReply | Awaitable[HttpReply]]


_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)
#: fragments of one message a client may send (RFC 6455 section 5.4 sets no limit)
MAX_FRAGMENTS = 1024


class PortConnection(ServerConnection):
    """A server connection that can hand whole data messages to a callback as they are parsed.

    With ``message_sink`` set (the IM gateway sets it), each complete text or binary message
    goes straight to the sink from ``data_received`` instead of through websockets' message
    queue and a reader coroutine: one event-loop wake-up less per frame. Fragmented messages
    are reassembled here (the protocol already enforces the size limit across fragments).
    Without a sink the connection behaves exactly like websockets' own.
    """

    message_sink: Callable[[bytes | str], None] | None = None
    _fragments: list[bytes] | None = None
    _fragment_text = False

    def pause_writing(self) -> None:
        """The transport's buffer is over its high-water mark: stop reading too, so that a
        peer that does not read what it is sent cannot make the node queue more for it
        (pongs to a ping flood, replies to requests) without bound: TCP pushes back."""
        super().pause_writing()
        if self.message_sink is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.message_sink is not None and not self.recv_messages.paused:
            self.transport.resume_reading()

    def attach_sink(self, sink: Callable[[bytes | str], None]) -> None:
        """Send data messages to ``sink`` from now on, starting with those websockets queued
        before (frames that came in the same read as the upgrade request, or before the
        handler started): nothing else reads that queue, and once it passed its high-water
        mark websockets stopped reading the socket."""
        self.message_sink = sink
        assembler = self.recv_messages
        queued = assembler.frames.queue
        while queued and self.message_sink is sink:
            self.process_event(queued.popleft())
        assembler.maybe_resume()

    def process_event(self, event: Any) -> None:
        sink = self.message_sink
        if sink is None or not isinstance(event, Frame) or event.opcode not in _DATA:
            super().process_event(event)
            return
        if event.opcode is not Opcode.CONT:
            self._fragments, self._fragment_text = [], event.opcode is Opcode.TEXT
        if self._fragments is None:  # a continuation without a start: the protocol rejects it
            return
        if len(self._fragments) >= MAX_FRAGMENTS:  # empty pieces would grow the list for free
            self._fragments = None
            self.protocol.fail(1009, f"a message in more than {MAX_FRAGMENTS} fragments")
            self.send_data()
            return
        self._fragments.append(bytes(event.data))
        if not event.fin:
            return
        payload, self._fragments = b"".join(self._fragments), None
        if self._fragment_text:
            try:
                sink(payload.decode())
            except UnicodeDecodeError:
                self.protocol.fail(1007, "invalid UTF-8 in a text frame")
                self.send_data()
            return
        sink(payload)


def json_reply(value: Any, status: int = 200) -> HttpReply:
    return HttpReply(status, json.dumps(value, sort_keys=True).encode() + b"\n", "application/json")


class PortServer:
    """Serves WebSocket subprotocols and HTTP routes on one host:port."""

    def __init__(self, host: str, port: int, *, max_frame_bytes: int, ping_interval: float = 20.0) -> None:
        self.host = host
        self.port = port
        self.max_frame_bytes = max_frame_bytes
        self.ping_interval = ping_interval
        self._subprotocols: dict[str, tuple[ConnectionHandler, int]] = {}
        self._routes: dict[str, RouteHandler] = {}
        self._server: Server | None = None

    def add_subprotocol(self, name: str, handler: ConnectionHandler, *, max_frame_bytes: int | None = None) -> None:
        self._subprotocols[name] = (handler, max_frame_bytes or self.max_frame_bytes)

    def add_route(self, path: str, handler: RouteHandler) -> None:
        self._routes[path] = handler

    @property
    def bound_port(self) -> int:
        if self._server is None:
            raise RuntimeError("server not started")
        sockets = self._server.sockets
        return int(sockets[0].getsockname()[1]) if sockets else self.port

    async def start(self) -> None:
        largest = max([size for _, size in self._subprotocols.values()] + [self.max_frame_bytes])
        self._server = await serve(
            self._dispatch,
            self.host,
            self.port,
            subprotocols=list(self._subprotocols),  # type: ignore[arg-type]
            process_request=self._process_request,
            max_size=largest,
            compression=None,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_interval,
            close_timeout=5,
            server_header="timnode",
            create_connection=PortConnection,
        )

    async def stop(self, code: int = 1001, reason: str = "node shutting down") -> None:
        if self._server is not None:
            self._server.close(close_connections=True, code=code, reason=reason)
            await self._server.wait_closed()
            self._server = None

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            offered = [p.strip() for h in request.headers.get_all("Sec-WebSocket-Protocol") for p in h.split(",")]
            if not any(p in self._subprotocols for p in offered):
                supported = ", ".join(self._subprotocols)
                return _response(HTTPStatus.BAD_REQUEST, f"offer one of these subprotocols: {supported}\n")
            return None
        path = request.path.split("?", 1)[0]
        handler = self._routes.get(path)
        if handler is None:
            return _response(HTTPStatus.NOT_FOUND, "not found\n")
        try:
            reply = handler(request)
            if asyncio.iscoroutine(reply) or isinstance(reply, Awaitable):
                reply = await reply
        except Exception:
            log.exception("route %s failed", path)
            return _response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n")
        assert isinstance(reply, HttpReply)
        return _build(reply)

    async def _dispatch(self, connection: ServerConnection) -> None:
        entry = self._subprotocols.get(connection.subprotocol or "")
        if entry is None:
            await connection.close(1002, "unsupported subprotocol")
            return
        handler, max_size = entry
        connection.protocol.max_message_size = max_size
        await handler(connection)


def _build(reply: HttpReply) -> Response:
    status = HTTPStatus(reply.status)
    headers = Headers([("Content-Type", reply.content_type), ("Content-Length", str(len(reply.body)))])
    for name, value in reply.headers:
        headers[name] = value
    headers["Cache-Control"] = "no-store"
    return Response(status.value, status.phrase, headers, reply.body)


def _response(status: HTTPStatus, text: str) -> Response:
    return _build(HttpReply(status.value, text.encode()))
