"""The asyncio adapter between WebSocket client connections and :class:`ImService`.

Per connection: decode each frame (the subprotocol picks the codec), take a token from
the connection's bucket, run the operation as a task (so a slow store write never stops
the connection from reading), and answer with exactly one frame per request id. Server
pushes go through a bounded outbox drained by one writer task.

Close codes (documented in docs/protocol.md):
    1000 logged out · 1001 node shutting down · 1008 too many connections / slow consumer
    1009 frame too big (websockets) · 1013 node at its connection limit
    4001 replaced by the same device · 4002 signed out by the device limit
    4003 no login within auth_timeout · 4004 request flood · 4005 closed by an admin
    4006 the password changed (tokens revoked)
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from im import client_pb2 as pb
from im.codec import codec_for
from im.errors import DecodeError, ImError
from im.limits import TokenBucket, address_key
from im.service import ImService
from im.sessions import Push, Session, SessionSink
from im.streams import StreamQueue
from im.wsframe import frame as ws_frame
from node.metrics import Counter, Histogram
from node.server import PortConnection
from store.errors import StoreError

__all__ = ["Gateway", "GatewayOptions", "ClientConnection", "KICK_CLOSE_CODES", "REQUEST_ID"]

log = logging.getLogger(__name__)

KICK_CLOSE_CODES: dict[int, int] = {
    pb.REPLACED: 4001,
    pb.DEVICE_LIMIT_KICK: 4002,
    pb.AUTH_TIMEOUT: 4003,
    pb.FLOOD: 4004,
    pb.ADMIN: 4005,
    pb.CREDENTIALS_CHANGED: 4006,
    pb.SHUTDOWN: 1001,
}
#: "c<connection>/r<request id>" while a client request is served (log records carry it: timnode/logs.py)
REQUEST_ID: ContextVar[str] = ContextVar("timnode_request_id", default="")
_FLOOD_STREAK = 200  # consecutive rate-limited requests before the connection is closed


@dataclass(frozen=True, slots=True)
class GatewayOptions:
    rate_limit: float
    rate_burst: int
    auth_timeout: float
    max_connections: int
    max_conns_per_ip: int
    max_outbox: int = 10_000
    #: bytes queued for a client that does not read (one frame, however large, always fits)
    max_outbox_bytes: int = 16 << 20


class Outbox:
    """A connection's bounded queue of complete WebSocket frames, written once per loop tick.

    Frames queued during one tick (a group commit resolves many sends at once) are handed
    to the transport in ONE write, after whatever control frames the connection's sans-I/O
    protocol has queued: a syscall per tick instead of per frame. The frames are built by
    ``im.wsframe`` (a push once for all its recipients), not by the protocol: it is only
    told about closing. When the transport's buffer is over its high-water mark
    (websockets' ``paused``), flushing waits for ``drain()``.

    Stream frames (``put_stream``) wait in a separate small queue that drops its OLDEST
    frame when full (im/streams.py): while the transport is paused they never grow memory
    and never displace the reliable frames; dropped frames are counted in ``dropped``.
    """

    def __init__(
        self,
        ws: ServerConnection,
        limit: int,
        sent: Counter,
        stream_limit: int = 64,
        dropped: Counter | None = None,
        limit_bytes: int = 16 << 20,
    ) -> None:
        self.ws = ws
        self.limit = limit
        self.limit_bytes = limit_bytes
        self._queued_bytes = 0
        self._sent = sent
        self._queue: deque[bytes] = deque()
        self._streams: StreamQueue[bytes] = StreamQueue(stream_limit)
        self._dropped = dropped
        self._closing: tuple[int, str] | None = None
        self._scheduled = False
        self._draining = False
        self._close_task: asyncio.Future[None] | None = None  # the closing handshake, kept referenced
        self._drain_task: asyncio.Future[None] | None = None

    def put(self, data: bytes, *, last: bool = False) -> bool:
        """Queue a frame; False when the outbox is full, by frames or by bytes (the caller
        closes the connection). A frame alone always fits: one large sync page must go; so
        does the ``last`` one before a close (``Kicked``), which the client must see."""
        if self._closing is not None:
            return True
        full = len(self._queue) >= self.limit or (self._queue and self._queued_bytes + len(data) > self.limit_bytes)
        if full and not last:
            return False
        self._queue.append(data)
        self._queued_bytes += len(data)
        self._schedule()
        return True

    def put_stream(self, data: bytes) -> None:
        """Queue a stream frame; when the stream queue is full the oldest one is dropped."""
        if self._closing is not None:
            return
        if self._streams.offer(data) and self._dropped is not None:
            self._dropped.inc()
        self._schedule()

    def close(self, code: int, reason: str) -> None:
        """Flush what is queued, then run the closing handshake."""
        self._closing = (code, reason)
        self._schedule()

    def clear(self) -> None:
        self._queue.clear()
        self._queued_bytes = 0
        self._streams.clear()

    def _schedule(self) -> None:
        if not self._scheduled and not self._draining:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        ws = self.ws
        if ws.protocol.state is not State.OPEN:
            self.clear()
            return
        if ws.paused:
            self._draining = True
            self._drain_task = asyncio.ensure_future(self._drain_then_flush())
            return
        chunks = ws.protocol.data_to_send()  # control frames the protocol queued go first
        count = len(self._queue)
        chunks.extend(self._queue)
        self._queue.clear()
        self._queued_bytes = 0
        if self._streams:
            streams = self._streams.take_all()
            count += len(streams)
            chunks.extend(streams)
        if chunks:
            ws.transport.write(b"".join(chunks))
        self._sent.inc(count)
        if self._closing is not None and self._close_task is None:
            code, reason = self._closing
            self._close_task = asyncio.ensure_future(ws.close(code, reason))

    async def _drain_then_flush(self) -> None:
        try:
            await self.ws.drain()
        finally:
            self._draining = False
        self._flush()


class ClientConnection:
    """One client WebSocket: request dispatch, pushes, kicks, limits."""

    def __init__(self, ws: ServerConnection, gateway: Gateway) -> None:
        self.ws = ws
        self.gateway = gateway
        self.codec = codec_for(ws.subprotocol)
        remote = ws.remote_address
        self.address = address_key(str(remote[0])) if remote else "?"  # an IPv6 client by its /64
        self.conn_id = next(gateway.conn_ids)
        self.session: Session | None = None
        self.sink: SessionSink = self
        now = gateway.now()
        self._bucket = TokenBucket(gateway.options.rate_limit, gateway.options.rate_burst, now)
        self._limited_streak = 0
        options = gateway.options
        self._outbox = Outbox(
            ws, options.max_outbox, gateway.frames_out, gateway.stream_queue, gateway.stream_dropped,
            options.max_outbox_bytes,
        )  # fmt: skip
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._close_after: tuple[int, str] | None = None

    # ------------------------------------------------------------------ inbound

    async def run(self) -> None:
        timer = asyncio.get_running_loop().call_later(self.gateway.options.auth_timeout, self._auth_timeout)
        try:
            if isinstance(self.ws, PortConnection):  # frames arrive from data_received, no reader task
                self.ws.attach_sink(self._receive_safely)
                await self.ws.wait_closed()
            else:
                async for data in self.ws:
                    self._receive(data)
        except ConnectionClosed:
            pass
        finally:
            timer.cancel()
            self._closing = True
            self._outbox.clear()
            if self.session is not None:
                session, self.session = self.session, None
                await self.gateway.service.end_session(session)

    def _receive_safely(self, data: bytes | str) -> None:
        """``_receive`` called from the transport's ``data_received``: nothing may escape into websockets."""
        try:
            self._receive(data)
        except Exception:
            log.exception("client frame handling failed")

    def _receive(self, data: bytes | str) -> None:
        if self._closing:
            return
        self.gateway.frames_in.inc()
        wait = self._bucket.take(self.gateway.now())
        try:
            frame = self.codec.decode_client(data)
        except DecodeError as exc:
            if wait > 0:  # a flood of garbage is a flood too
                self._rate_limited(0, wait)
            else:
                self._reply_error(0, exc)
            return
        if wait > 0:
            self._rate_limited(frame.id, wait)
            return
        self._limited_streak = 0
        if frame.id == 0:
            self._reply_error(0, ImError(pb.BAD_REQUEST, "request id must be > 0"))
            return
        # A task per request, even for the many that never wait: running the first step
        # eagerly without one (as 3.12's eager tasks do) was measured +6 % msgs/s --no-store,
        # but asyncpg's pool (asyncio.timeout) needs a current task: PostgreSQL requests failed.
        task = asyncio.create_task(self._serve(frame, self.gateway.now()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _rate_limited(self, request_id: int, wait: float) -> None:
        self._limited_streak += 1
        self.gateway.stats["rate_limited"] += 1
        self.gateway.metrics.rate_limited_total("requests").inc()
        if self._limited_streak >= _FLOOD_STREAK:
            self.kick(pb.FLOOD, "request flood")
            return
        self._reply_error(request_id, ImError(pb.RATE_LIMITED, "request rate over the limit", retry_after=wait))

    async def _serve(self, frame: pb.ClientFrame, started: float) -> None:
        REQUEST_ID.set(f"c{self.conn_id}/r{frame.id}")  # this task's context only
        op = frame.WhichOneof("op") or "unknown"
        try:
            reply = await self.gateway.service.handle(self, frame)
        except ImError as exc:
            self._reply_error(frame.id, exc)
        except StoreError as exc:
            log.warning("store failed during %s: %s", op, exc)
            self._reply_error(frame.id, ImError(pb.STORE_UNAVAILABLE, "store unavailable; nothing was acknowledged"))
        except Exception:
            log.exception("operation %s failed", op)
            self._reply_error(frame.id, ImError(pb.INTERNAL, "internal error"))
        else:
            reply.id = frame.id
            self._enqueue(self.codec.encode(reply))
            if self._close_after is not None:
                self._close(*self._close_after)
        self.gateway.observe(op, self.gateway.now() - started)

    def _reply_error(self, request_id: int, exc: ImError) -> None:
        self.gateway.stats["errors"] += 1
        self.gateway.count_error(exc.code)
        error = pb.Error(code=exc.code, message=exc.message, retry_after=exc.retry_after)  # type: ignore[arg-type]
        self._enqueue(self.codec.encode(pb.ServerFrame(id=request_id, error=error)))

    def _auth_timeout(self) -> None:
        if self.session is None and not self._closing:
            self.kick(pb.AUTH_TIMEOUT, "no login within the allowed time")

    # ------------------------------------------------------------------ outbound

    def push(self, push: Push) -> None:
        self._enqueue_frame(push.framed(self.codec.binary))

    def push_stream(self, push: Push) -> None:
        """A droppable push (stream data): the oldest queued stream frame goes when full."""
        if not self._closing:
            self._outbox.put_stream(push.framed(self.codec.binary))

    def kick(self, reason: int, message: str) -> None:
        """Tell the client why, end its session, then close with the reason's close code."""
        session, self.session = self.session, None
        name = pb.KickReason.Name(reason) if reason in pb.KickReason.values() else "unknown"
        self.gateway.metrics.kicks_total(name.lower()).inc()
        if session is not None:
            task = asyncio.ensure_future(self.gateway.service.end_session(session))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        kicked = pb.Kicked(reason=reason, message=message)  # type: ignore[arg-type]
        self._enqueue(self.codec.encode(pb.ServerFrame(kicked=kicked)), last=True)
        self._close(KICK_CLOSE_CODES.get(reason, 1008), message)

    def is_open(self) -> bool:
        return not self._closing

    def close_after_response(self, code: int, reason: str) -> None:
        """Close once the response to the current request has been queued."""
        self._close_after = (code, reason)

    def _close(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self._close_after = None
        self._closing = True
        self._outbox.close(code, reason)

    def _enqueue(self, data: bytes | str, *, last: bool = False) -> None:
        """Queue an encoded reply (``codec.encode``) as one frame; ``last``: the frame before
        a close, queued even into a full outbox."""
        text = isinstance(data, str)
        self._enqueue_frame(ws_frame(data.encode() if isinstance(data, str) else data, text=text), last=last)

    def _enqueue_frame(self, framed: bytes, *, last: bool = False) -> None:
        if not self._outbox.put(framed, last=last) and not self._closing:
            log.warning("closing slow consumer %s (outbox full)", self.address)
            self._outbox.clear()
            self._close(1008, "slow consumer: outbox full, reconnect and sync")


class Gateway:
    """Accepts client connections for the service, enforcing connection limits."""

    def __init__(self, service: ImService, options: GatewayOptions, now: Callable[[], float]) -> None:
        self.service = service
        self.options = options
        self.now = now
        self.metrics = service.metrics
        self.frames_out = self.metrics.frames_total("out")
        self.stream_dropped = service.spaces.streams.dropped  # timnode_stream_frames_dropped_total
        self.stream_queue = service.spaces.options.stream_queue
        self.frames_in = self.metrics.frames_total("in")
        self.metrics.gauge("timnode_client_connections_open", "Open client connections", lambda: len(self.connections))
        self._latency: dict[str, Histogram] = {}
        self._errors: dict[int, Counter] = {}
        self.connections: set[ClientConnection] = set()
        self.conn_ids = itertools.count(1)
        self._per_address: dict[str, int] = {}
        self.stats = {"connections_total": 0, "rate_limited": 0, "errors": 0, "refused": 0}

    def observe(self, op: str, seconds: float) -> None:
        """Record one request's latency (children cached: labels() is not free on the hot path)."""
        child = self._latency.get(op)
        if child is None:
            child = self._latency[op] = self.metrics.request_seconds(op)
        child.observe(seconds)

    def count_error(self, code: int) -> None:
        child = self._errors.get(code)
        if child is None:
            name = pb.ErrorCode.Name(code) if code in pb.ErrorCode.values() else str(code)
            child = self._errors[code] = self.metrics.errors_total(name.lower())
        child.inc()

    def _admit(self, address: str) -> tuple[int, str] | None:
        if len(self.connections) >= self.options.max_connections:
            return 1013, "node at its connection limit; try later"
        limit = self.options.max_conns_per_ip
        if limit and self._per_address.get(address, 0) >= limit:
            return 1008, "too many connections from this address"
        return None

    async def handle(self, ws: ServerConnection) -> None:
        conn = ClientConnection(ws, self)
        refusal = self._admit(conn.address)
        if refusal is not None:
            self.stats["refused"] += 1
            self.metrics.connections_total("refused").inc()
            self.metrics.rate_limited_total("connections").inc()
            await ws.close(*refusal)
            return
        self.connections.add(conn)
        self._per_address[conn.address] = self._per_address.get(conn.address, 0) + 1
        self.stats["connections_total"] += 1
        self.metrics.connections_total("accepted").inc()
        try:
            await conn.run()
        finally:
            self.connections.discard(conn)
            left = self._per_address[conn.address] - 1
            if left:
                self._per_address[conn.address] = left
            else:
                del self._per_address[conn.address]

    def shutdown_sessions(self) -> None:
        for conn in list(self.connections):
            conn.kick(pb.SHUTDOWN, "node shutting down")
