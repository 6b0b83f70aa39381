"""Peer links over WebSocket (subprotocol ``timnode.peer.v1``): the asyncio adapter.

``dial()`` and ``accept()`` drive the sans-I/O ``HandshakeProtocol`` (``node/handshake.py``)
over one WebSocket, one binary message per handshake message, under one deadline; on failure
they send the handshake ABORT, close the WebSocket with code ``4000 + AbortCode`` and raise the
``node.errors`` exception, after logging the reason (so both ends log "network key mismatch").
Then both sides send an ``Identify`` frame and wait for the peer's (libp2p identify, one frame).

A ``Link`` then carries ``LinkFrame``s (``proto/peer.proto``) inside the ``SecureChannel``
records (``node/secure.py``): one-way messages, requests/responses matched by id, pings
(RTT) and a final CLOSE. Frames queued within one loop tick are sealed together, so many small
frames become one Noise message and one WebSocket message (``LinkConfig.coalesce``).
Any bad frame (decrypt failure, replay, malformed record, oversized, text message) closes the
link with a logged reason; frames that arrive after close are ignored.

*Droppable* one-way messages (``send_droppable``: live stream data) wait in a bounded
drop-oldest queue (``LinkConfig.droppable_queue`` / ``droppable_bytes``, ``node/droppable.py``)
instead of the reliable queue: while the transport is slow (a send awaiting), new ones push
out the oldest, counted in ``dropped`` and reported to ``on_drop``. Over a transport with an
unordered channel (an ``UnorderedStream``: ``rtc``'s ``data`` channel) they are sealed as
self-contained datagrams (``SecureChannel.datagram``: explicit nonces, replay window) and sent
there; a datagram that does not open is dropped and counted, never fatal. Elsewhere (ws,
relay) they ride the reliable channel with everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from google.protobuf.message import DecodeError as ProtobufDecodeError
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from node import peer_pb2 as pb
from node.droppable import DropQueue
from node.errors import (
    AbortCode,
    HandshakeError,
    HandshakeTimeout,
    LinkClosed,
    P2PError,
    RemoteProtocolError,
    RequestFailed,
    RequestTimeout,
)
from node.handshake import HandshakeComplete, HandshakeFailed, HandshakeProtocol
from node.identity import Identity, PeerId
from node.secure import ChannelConfig, SecureChannel

__all__ = [
    "SUBPROTOCOL",
    "Handler",
    "Handlers",
    "IdentifyInfo",
    "Link",
    "LinkConfig",
    "MessageStream",
    "UnorderedStream",
    "accept",
    "dial",
    "establish",
]

log = logging.getLogger(__name__)

SUBPROTOCOL = "timnode.peer.v1"
PROTOCOL_VERSION = "timnode.peer/1"
CLOSE_BASE = 4000

Handler = Callable[["Link", bytes], "bytes | None | Awaitable[bytes | None]"]


class MessageStream(Protocol):
    """A message-oriented, reliable, ordered transport other than WebSocket (``nat``'s ``rtc``
    data channel, ``relay`` circuit) that a ``Link`` can run over, exactly as over a WebSocket.

    ``recv()`` raises ``websockets.exceptions.ConnectionClosed`` once closed; iteration ends
    at close; ``remote_address`` is a ``(host, port)`` tuple or ``None``.
    """

    remote_address: Any

    async def send(self, message: bytes) -> None: ...

    async def recv(self) -> bytes | str: ...

    def __aiter__(self) -> AsyncIterator[bytes | str]: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...

    def abort(self) -> None: ...


class QueuedStream:
    """The receiving half shared by ``MessageStream`` implementations that are fed by callbacks
    (relay circuits, rtc data channels): a queue of messages ended by ``None`` at close."""

    def __init__(self) -> None:
        self.remote_address: Any = None
        self.closed = False
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def queued(self) -> int:
        return self._queue.qsize()

    def feed(self, data: bytes) -> None:
        if not self.closed:
            self._queue.put_nowait(data)

    def feed_close(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(None)

    async def recv(self) -> bytes:
        item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)
            raise ConnectionClosed(None, None)
        return item

    async def _iterate(self) -> AsyncIterator[bytes]:
        while True:
            try:
                yield await self.recv()
            except ConnectionClosed:
                return

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()


@runtime_checkable
class UnorderedStream(Protocol):
    """A transport that also has an unordered, partial-reliability channel (``rtc``'s ``data``).

    ``set_unordered_handler(on_message, on_writable)``: ``on_message(datagram)`` for each
    datagram received, ``on_writable()`` when ``unordered_ready()`` may have become true;
    ``send_unordered`` never waits (the datagram may be lost).
    """

    def set_unordered_handler(self, on_message: Callable[[bytes], None], on_writable: Callable[[], None]) -> None: ...

    def unordered_ready(self) -> bool: ...

    def send_unordered(self, datagram: bytes) -> None: ...


Stream = Connection | MessageStream


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkConfig:
    handshake_timeout: float = 10.0
    request_timeout: float = 10.0
    ping_interval: float = 20.0  # 0 disables keepalive pings
    ping_timeout: float = 0.0  # a ping unanswered this long closes the link (0: request_timeout)
    coalesce: bool = True
    max_queued_bytes: int = 1 << 20  # send() waits above this
    max_inflight: int = 1024  # inbound requests handled at once; more are answered "busy"
    hard_queued_bytes: int = 16 << 20  # a peer that lets replies pile up past this is closed
    droppable_queue: int = 256  # droppable messages queued at most (the oldest go first)
    droppable_bytes: int = 1 << 20  # ... and bytes
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    agent: str = "timnode"
    listen_addrs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentifyInfo:
    protocol_version: str = PROTOCOL_VERSION
    agent: str = ""
    listen_addrs: tuple[str, ...] = ()
    observed_addr: str = ""
    protocols: tuple[str, ...] = ()

    def encode(self) -> bytes:
        return pb.Identify(
            protocol_version=self.protocol_version,
            agent=self.agent,
            listen_addrs=self.listen_addrs,
            observed_addr=self.observed_addr,
            protocols=self.protocols,
        ).SerializeToString()

    @classmethod
    def decode(cls, data: bytes) -> IdentifyInfo:
        m = pb.Identify.FromString(data)
        return cls(
            protocol_version=m.protocol_version,
            agent=m.agent,
            listen_addrs=tuple(m.listen_addrs),
            observed_addr=m.observed_addr,
            protocols=tuple(m.protocols),
        )


class Handlers:
    """Protocol name -> handler. A handler returns the response body (``None`` = empty)."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def add(self, protocol: str, handler: Handler) -> None:
        self._handlers[protocol] = handler

    def remove(self, protocol: str) -> None:
        self._handlers.pop(protocol, None)

    def get(self, protocol: str) -> Handler | None:
        return self._handlers.get(protocol)

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._handlers))


def _addr(ws: Stream) -> str:
    try:
        host, port = ws.remote_address[:2]
    except (TypeError, ValueError):
        return ""
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


async def dial(
    url: str,
    identity: Identity,
    network_key: bytes,
    expected_peer: PeerId | None = None,
    timeout: float = 10.0,
    *,
    config: LinkConfig | None = None,
    handlers: Handlers | None = None,
) -> Link:
    """Open a link to ``url`` (``ws://host:port``), proving the peer is ``expected_peer`` if given."""
    config = config or LinkConfig(handshake_timeout=timeout)
    ws: ClientConnection = await connect(
        url,
        subprotocols=[Subprotocol(SUBPROTOCOL)],
        open_timeout=timeout,
        compression=None,
        proxy=None,
        max_size=config.channel.max_frame_size + 1,
        ping_interval=None,
        close_timeout=2,
    )
    if ws.subprotocol != SUBPROTOCOL:
        await ws.close(1002, "peer subprotocol not negotiated")
        raise HandshakeError(f"{url} did not accept subprotocol {SUBPROTOCOL}")
    hs = HandshakeProtocol(
        initiator=True,
        identity=identity,
        network_key=network_key,
        now=_now(),
        expected_peer=expected_peer,
        timeout=timeout,
        channel_config=config.channel,
    )
    return await _establish(ws, hs, identity, config, handlers or Handlers(), f"dial {url}")


async def accept(
    ws: Connection,
    identity: Identity,
    network_key: bytes,
    timeout: float = 10.0,
    *,
    config: LinkConfig | None = None,
    handlers: Handlers | None = None,
) -> Link:
    """Run the responder side on an accepted WebSocket (subprotocol ``timnode.peer.v1``)."""
    config = config or LinkConfig(handshake_timeout=timeout)
    hs = HandshakeProtocol(
        initiator=False,
        identity=identity,
        network_key=network_key,
        now=_now(),
        timeout=timeout,
        channel_config=config.channel,
    )
    return await _establish(ws, hs, identity, config, handlers or Handlers(), f"link from {_addr(ws)}")


async def establish(
    stream: MessageStream,
    identity: Identity,
    network_key: bytes,
    *,
    initiator: bool,
    expected_peer: PeerId | None = None,
    config: LinkConfig | None = None,
    handlers: Handlers | None = None,
    what: str = "link",
) -> Link:
    """Run the same handshake and Identify as ``dial``/``accept`` over another transport."""
    config = config or LinkConfig()
    hs = HandshakeProtocol(
        initiator=initiator,
        identity=identity,
        network_key=network_key,
        now=_now(),
        expected_peer=expected_peer if initiator else None,
        timeout=config.handshake_timeout,
        channel_config=config.channel,
    )
    link = await _establish(stream, hs, identity, config, handlers or Handlers(), what)
    if expected_peer is not None and link.remote_peer != expected_peer:
        await link.close("unexpected peer", AbortCode.PEER_ID_MISMATCH)
        message = f"{what}: peer is {link.remote_peer}, not {expected_peer}"
        raise HandshakeError(message, code=AbortCode.PEER_ID_MISMATCH)
    return link


def _now() -> float:
    return asyncio.get_running_loop().time()


async def _establish(
    ws: Stream, hs: HandshakeProtocol, identity: Identity, config: LinkConfig, handlers: Handlers, what: str
) -> Link:
    timeout = hs.get_timer()
    assert timeout is not None
    try:
        async with asyncio.timeout_at(timeout):
            done = await _handshake(ws, hs)
            link = Link(ws, done.channel, identity, done.remote_peer, config, handlers)
            await link._identify()
    except TimeoutError:
        hs.handle_timer(timeout)
        await _refuse(ws, hs, what)
        raise HandshakeTimeout(f"{what}: handshake timed out") from None
    except P2PError as exc:
        await _refuse(ws, hs, what, exc)
        raise
    except ConnectionClosed as exc:
        log.warning("%s failed: connection closed during the handshake (%s)", what, exc)
        raise HandshakeError(f"{what}: connection closed during the handshake: {exc}") from exc
    log.info("%s: link up with %s (%s)", what, link.remote_peer, link.remote_info.agent)
    link._start()
    return link


async def _handshake(ws: Stream, hs: HandshakeProtocol) -> HandshakeComplete:
    while True:
        for data in hs.data_to_send():
            await ws.send(data)
        event = hs.next_event()
        if isinstance(event, HandshakeComplete):
            return event
        if isinstance(event, HandshakeFailed):
            raise event.error
        message = await ws.recv()
        if isinstance(message, str):
            raise HandshakeError("text message during the handshake", code=AbortCode.PROTOCOL_ERROR)
        hs.receive_data(message, _now())


async def _refuse(ws: Stream, hs: HandshakeProtocol, what: str, exc: P2PError | None = None) -> None:
    code = exc.code if isinstance(exc, HandshakeError) else AbortCode.TIMEOUT
    reason = str(exc) if exc else "handshake timed out"
    log.warning("%s refused: %s", what, reason)
    with contextlib.suppress(ConnectionClosed, OSError):
        for data in hs.data_to_send():
            await ws.send(data)
    await ws.close(CLOSE_BASE + code, reason[:120])


class Link:
    """An authenticated, encrypted link to one peer. Built by ``dial()`` / ``accept()``."""

    def __init__(
        self,
        ws: Stream,
        channel: SecureChannel,
        identity: Identity,
        remote_peer: PeerId,
        config: LinkConfig,
        handlers: Handlers,
    ) -> None:
        self.ws = ws
        self.channel = channel
        self.local_peer = identity.peer_id
        self.remote_peer = remote_peer
        self.config = config
        self.handlers = handlers
        self.remote_info = IdentifyInfo()
        self.rtt: float | None = None
        self.close_reason: str | None = None
        self.log = logging.LoggerAdapter(log, {"peer": remote_peer.short()})
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[pb.LinkFrame]] = {}
        self._queue: list[bytes] = []
        self._queued_bytes = 0
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._inflight = 0
        self._overflowing = False
        self._closed = asyncio.Event()
        self._droppable: DropQueue[bytes] = DropQueue(config.droppable_queue, config.droppable_bytes)
        #: droppable messages lost here (queue overflow); ``on_drop(n)`` hears of each loss
        self.dropped = 0
        self.on_drop: Callable[[int], None] | None = None
        #: droppable messages sent / received on the unordered channel, datagrams refused
        self.unordered_stats = {"sent": 0, "received": 0, "rejected": 0}
        self._unordered: UnorderedStream | None = None
        if isinstance(ws, UnorderedStream) and channel.datagram is not None:
            self._unordered = ws
            ws.set_unordered_handler(self._on_datagram, self._wake.set)

    @property
    def transport_unordered(self) -> bool:
        """True if droppable messages go on an unordered channel (``rtc``)."""
        return self._unordered is not None

    @property
    def closed(self) -> bool:
        return self.close_reason is not None

    @property
    def remote_addr(self) -> str:
        """``host:port`` of the other end of the WebSocket ("" when unknown)."""
        return _addr(self.ws)

    # -- public API ---------------------------------------------------------------------------

    async def send(self, protocol: str, body: bytes) -> None:
        """Send a one-way message to the peer's ``protocol`` handler."""
        await self._put(pb.LinkFrame(kind=pb.LinkFrame.MESSAGE, protocol=protocol, body=body))

    def send_droppable(self, protocol: str, body: bytes) -> bool:
        """Queue a one-way message that may be lost (live data); never waits.

        Under backpressure the oldest droppable messages are dropped (``dropped``, ``on_drop``).
        False if the link is closed.
        """
        if self.closed:
            return False
        data = pb.LinkFrame(kind=pb.LinkFrame.MESSAGE, protocol=protocol, body=body).SerializeToString()
        lost = self._droppable.offer(data, len(data))
        if lost:
            self._count_drop(lost)
        self._wake.set()
        return True

    def _count_drop(self, n: int) -> None:
        self.dropped += n
        if self.on_drop is not None:
            self.on_drop(n)

    async def request(self, protocol: str, body: bytes, timeout: float | None = None) -> bytes:
        """Send a request and return the response body.

        Raises:
            RequestTimeout, RequestFailed (the peer's handler failed or is missing), LinkClosed.
        """
        frame = pb.LinkFrame(kind=pb.LinkFrame.REQUEST, id=next(self._ids), protocol=protocol, body=body)
        reply = await self._call(frame, timeout or self.config.request_timeout)
        if reply.HasField("error"):
            raise RequestFailed(reply.error.code, reply.error.message)
        return reply.body

    async def ping(self, timeout: float | None = None) -> float:
        """Round-trip a PING; return (and remember in ``rtt``) the RTT in seconds."""
        start = _now()
        timeout = timeout or self.config.ping_timeout or self.config.request_timeout
        await self._call(pb.LinkFrame(kind=pb.LinkFrame.PING, id=next(self._ids)), timeout)
        self.rtt = _now() - start
        return self.rtt

    async def close(self, reason: str = "closed", code: AbortCode = AbortCode.NORMAL) -> None:
        """Send CLOSE with ``reason`` and close the WebSocket. Idempotent."""
        if self.closed:
            await self._closed.wait()
            return
        self._put_nowait(pb.LinkFrame(kind=pb.LinkFrame.CLOSE, error=pb.ErrorInfo(code=code, message=reason)))
        with contextlib.suppress(ConnectionClosed, OSError, P2PError):
            await self._flush()
        await self._shutdown(reason, code)

    async def wait_closed(self) -> None:
        await self._closed.wait()

    # -- internals ------------------------------------------------------------------------------

    async def _identify(self) -> None:
        info = IdentifyInfo(
            agent=self.config.agent,
            listen_addrs=self.config.listen_addrs,
            observed_addr=_addr(self.ws),
            protocols=self.handlers.names(),
        )
        self._put_nowait(pb.LinkFrame(kind=pb.LinkFrame.IDENTIFY, body=info.encode()))
        await self._flush()
        while True:  # the first frame must be the peer's IDENTIFY
            message = await self.ws.recv()
            if isinstance(message, str):
                raise HandshakeError("text message on a peer link", code=AbortCode.PROTOCOL_ERROR)
            frames = [_decode_frame(m) for m in self.channel.open(message)]
            if frames:
                break
        if frames[0].kind != pb.LinkFrame.IDENTIFY:
            raise HandshakeError("first frame is not IDENTIFY", code=AbortCode.PROTOCOL_ERROR)
        self.remote_info = _decode_identify(frames[0].body)
        for frame in frames[1:]:
            self._dispatch(frame)

    def _start(self) -> None:
        self._spawn(self._reader())
        self._spawn(self._writer())
        if self.config.ping_interval > 0:
            self._spawn(self._keepalive())

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _put_nowait(self, frame: pb.LinkFrame) -> None:
        if self.closed:
            raise LinkClosed(self.close_reason or "closed")
        data = frame.SerializeToString()
        self._queue.append(data)
        self._queued_bytes += len(data)
        self._drained.clear()
        self._wake.set()
        if self._queued_bytes > self.config.hard_queued_bytes and not self._overflowing:
            self._overflowing = True  # replies and pongs have no backpressure: bound them here
            self._spawn(self.close("send queue over its hard limit (peer not reading)", AbortCode.PROTOCOL_ERROR))

    async def _put(self, frame: pb.LinkFrame) -> None:
        self._put_nowait(frame)
        if self._queued_bytes > self.config.max_queued_bytes:
            await self._drained.wait()

    async def _flush(self) -> None:
        batch, self._queue, self._queued_bytes = self._queue, [], 0
        datagrams: list[bytes] = []
        unordered = self._unordered
        if self._droppable:
            if unordered is None:
                batch += self._droppable.take_all()
            elif unordered.unordered_ready():
                assert self.channel.datagram is not None
                limit = self.channel.datagram.max_message
                small: list[bytes] = []
                for data in self._droppable.take_all():
                    (small if len(data) <= limit else batch).append(data)
                datagrams = self.channel.datagram.seal(small)
                self.unordered_stats["sent"] += len(small)
            # else: the unordered channel is congested; they wait (drop-oldest) for on_writable
        if unordered is not None:
            for datagram in datagrams:
                unordered.send_unordered(datagram)
        for data in self.channel.seal(batch, coalesce=self.config.coalesce):
            await self.ws.send(data)
        self._drained.set()

    def _on_datagram(self, datagram: bytes) -> None:
        """A datagram on the unordered channel: droppable MESSAGEs only; bad ones are dropped."""
        if self.closed or self.channel.datagram is None:
            return
        try:
            messages = self.channel.datagram.open(datagram)
            frames = [_decode_frame(m) for m in messages]
        except P2PError as exc:
            self.unordered_stats["rejected"] += 1
            self.log.debug("unordered datagram dropped: %s", exc)
            return
        for frame in frames:
            if frame.kind == pb.LinkFrame.MESSAGE:
                self.unordered_stats["received"] += 1
                self._handle(frame, respond=False)
            else:
                self.unordered_stats["rejected"] += 1

    async def _writer(self) -> None:
        try:
            while not self.closed:
                await self._wake.wait()
                self._wake.clear()
                await self._flush()
        except (ConnectionClosed, OSError) as exc:
            await self._shutdown(f"write failed: {exc}", AbortCode.PROTOCOL_ERROR)

    async def _reader(self) -> None:
        reason, code = "connection closed by peer", AbortCode.NORMAL
        try:
            async for message in self.ws:
                if self.closed:
                    self.log.debug("< frame after close ignored")
                    continue
                if isinstance(message, str):
                    raise RemoteProtocolError("text message on a peer link")
                for data in self.channel.open(message):
                    self._dispatch(_decode_frame(data))
        except P2PError as exc:
            reason, code = f"bad frame: {exc}", AbortCode.PROTOCOL_ERROR
            self.log.warning("closing link to %s: %s", self.remote_peer, reason)
            await self.close(reason, code)
        except ConnectionClosed as exc:
            reason = f"connection closed: {exc}"
        await self._shutdown(reason, code)

    def _dispatch(self, frame: pb.LinkFrame) -> None:
        kind = frame.kind
        if kind == pb.LinkFrame.MESSAGE:
            self._handle(frame, respond=False)
        elif kind == pb.LinkFrame.REQUEST:
            self._handle(frame, respond=True)
        elif kind in (pb.LinkFrame.RESPONSE, pb.LinkFrame.PONG):
            future = self._pending.pop(frame.id, None)
            if future is not None and not future.done():
                future.set_result(frame)
        elif kind == pb.LinkFrame.PING:
            self._put_nowait(pb.LinkFrame(kind=pb.LinkFrame.PONG, id=frame.id))
        elif kind == pb.LinkFrame.IDENTIFY:
            self.remote_info = _decode_identify(frame.body)
        elif kind == pb.LinkFrame.CLOSE:
            reason = frame.error.message or "no reason"
            self.log.info("link to %s closed by peer: %s", self.remote_peer, reason)
            self._spawn(
                self._shutdown(
                    f"closed by peer: {reason}",
                    AbortCode(frame.error.code)
                    if frame.error.code in AbortCode._value2member_map_
                    else AbortCode.NORMAL,
                )
            )

    def _handle(self, frame: pb.LinkFrame, *, respond: bool) -> None:
        """Run the handler; a plain function runs inline, a coroutine in its own task."""
        handler = self.handlers.get(frame.protocol)
        if handler is None:
            self.log.debug("no handler for %r", frame.protocol)
            self._reply(frame, respond, error=(RequestFailed.NO_HANDLER, f"no handler: {frame.protocol}"))
            return
        try:
            result = handler(self, frame.body)
        except Exception as exc:
            self.log.exception("handler for %r failed", frame.protocol)
            self._reply(frame, respond, error=(RequestFailed.HANDLER_ERROR, type(exc).__name__))
            return
        if inspect.isawaitable(result):
            if self._inflight >= self.config.max_inflight:
                if inspect.iscoroutine(result):
                    result.close()
                self._reply(frame, respond, error=(RequestFailed.HANDLER_ERROR, "busy: too many requests in flight"))
                return
            self._inflight += 1
            self._spawn(self._finish(frame, result, respond))
        else:
            self._reply(frame, respond, body=result)

    async def _finish(self, frame: pb.LinkFrame, result: Awaitable[bytes | None], respond: bool) -> None:
        try:
            body = await result
        except Exception as exc:
            self.log.exception("handler for %r failed", frame.protocol)
            self._reply(frame, respond, error=(RequestFailed.HANDLER_ERROR, type(exc).__name__))
        else:
            self._reply(frame, respond, body=body)
        finally:
            self._inflight -= 1

    def _reply(
        self, frame: pb.LinkFrame, respond: bool, *, body: bytes | None = None, error: tuple[int, str] | None = None
    ) -> None:
        if not respond or self.closed:
            return
        reply = pb.LinkFrame(kind=pb.LinkFrame.RESPONSE, id=frame.id, body=body or b"")
        if error is not None:
            reply.error.CopyFrom(pb.ErrorInfo(code=error[0], message=error[1]))
        self._put_nowait(reply)

    async def _call(self, frame: pb.LinkFrame, timeout: float) -> pb.LinkFrame:
        future: asyncio.Future[pb.LinkFrame] = asyncio.get_running_loop().create_future()
        self._pending[frame.id] = future
        try:
            await self._put(frame)
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise RequestTimeout(f"no answer to {frame.protocol or 'ping'} #{frame.id} in {timeout}s") from None
        finally:
            self._pending.pop(frame.id, None)

    async def _keepalive(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.config.ping_interval)
            try:
                await self.ping()
            except RequestTimeout:
                await self.close("keepalive timeout", AbortCode.TIMEOUT)
            except LinkClosed:
                return

    async def _shutdown(self, reason: str, code: AbortCode) -> None:
        if self.close_reason is None:
            self.close_reason = reason
            self.log.debug("= link closed: %s", reason)
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(LinkClosed(reason))
            self._pending.clear()
            self._wake.set()
            self._drained.set()
            self._droppable.clear()
            ws_code = 1000 if code is AbortCode.NORMAL else CLOSE_BASE + code
            if code is AbortCode.TIMEOUT:  # the peer is unresponsive: no closing handshake to wait for
                if isinstance(self.ws, Connection):
                    self.ws.transport.abort()
                else:
                    self.ws.abort()
            else:
                with contextlib.suppress(ConnectionClosed, OSError):
                    await self.ws.close(ws_code, reason[:120])
            current = asyncio.current_task()
            for task in list(self._tasks):
                if task is not current:
                    task.cancel()
            self._closed.set()
        await self._closed.wait()


def _decode_frame(data: bytes) -> pb.LinkFrame:
    try:
        return pb.LinkFrame.FromString(data)
    except ProtobufDecodeError as exc:
        raise RemoteProtocolError("frame is not a LinkFrame") from exc


def _decode_identify(data: bytes) -> IdentifyInfo:
    try:
        return IdentifyInfo.decode(data)
    except ProtobufDecodeError as exc:
        raise RemoteProtocolError("IDENTIFY body is not an Identify") from exc
