"""Links over real WebSockets on 127.0.0.1 (node/link.py). Adapter tests: few, marked slow."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from node.errors import (
    AbortCode,
    HandshakeTimeout,
    LinkClosed,
    NetworkKeyMismatch,
    P2PError,
    PeerIdMismatch,
    RequestFailed,
)
from node.handshake import ABORT
from node.identity import Identity
from node.link import SUBPROTOCOL, Handlers, Link, LinkConfig, accept, dial

pytestmark = pytest.mark.slow

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


async def drain(ws: ClientConnection) -> list[bytes]:
    """Every message until the peer closes."""
    out: list[bytes] = []
    with pytest.raises(ConnectionClosed):
        while True:
            message = await asyncio.wait_for(ws.recv(), 3)
            assert isinstance(message, bytes)
            out.append(message)
    return out


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(300):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in 3 s")


@dataclass
class Peer:
    identity: Identity
    server: Server
    url: str
    links: list[Link] = field(default_factory=list)
    errors: list[P2PError] = field(default_factory=list)
    handlers: Handlers = field(default_factory=Handlers)
    got: list[bytes] = field(default_factory=list)


@pytest.fixture
async def make_peer() -> AsyncIterator[Callable[..., asyncio.Future[Peer]]]:
    peers: list[Peer] = []

    async def make(key: bytes = KEY, timeout: float = 5.0, identity: Identity | None = None) -> Peer:
        ident = identity or Identity.generate()
        holder: list[Peer] = []

        async def handler(ws: ServerConnection) -> None:
            peer = holder[0]
            try:
                link = await accept(
                    ws,
                    ident,
                    key,
                    timeout,
                    handlers=peer.handlers,
                    config=LinkConfig(handshake_timeout=timeout, agent="test-server"),
                )
            except P2PError as exc:
                peer.errors.append(exc)
                return
            peer.links.append(link)
            await link.wait_closed()

        server = await serve(
            handler, "127.0.0.1", 0, subprotocols=[Subprotocol(SUBPROTOCOL)], compression=None, max_size=65536
        )
        port = server.sockets[0].getsockname()[1]
        peer = Peer(ident, server, f"ws://127.0.0.1:{port}")
        holder.append(peer)
        peers.append(peer)

        async def echo(link: Link, body: bytes) -> bytes:
            return b"echo:" + body

        def note(link: Link, body: bytes) -> None:
            peer.got.append(body)

        peer.handlers.add("/test/echo/1", echo)
        peer.handlers.add("/test/note/1", note)
        return peer

    yield make  # type: ignore[misc]
    for p in peers:
        for link in p.links:
            await link.close("test over")
        p.server.close()
        await p.server.wait_closed()


async def test_dial_identify_request_oneway(make_peer: Callable[..., asyncio.Future[Peer]]) -> None:
    server = await make_peer()
    me = Identity.generate()
    link = await dial(server.url, me, KEY, server.identity.peer_id, timeout=5.0)
    try:
        assert link.remote_peer == server.identity.peer_id
        assert link.remote_info.agent == "test-server"
        assert "/test/echo/1" in link.remote_info.protocols
        assert link.remote_info.observed_addr.startswith("127.0.0.1:")
        assert await link.request("/test/echo/1", b"hi") == b"echo:hi"
        for i in range(50):
            await link.send("/test/note/1", b"%d" % i)
        assert await link.request("/test/echo/1", b"sync") == b"echo:sync"  # ordered after the notes
        assert server.got == [b"%d" % i for i in range(50)]
        with pytest.raises(RequestFailed) as info:
            await link.request("/nope/1", b"")
        assert info.value.code == RequestFailed.NO_HANDLER
        assert await link.ping() >= 0 and link.rtt is not None
        big = bytes(300_000)
        assert await link.request("/test/echo/1", big) == b"echo:" + big  # chunked over many frames
        server_link = server.links[0]
        assert server_link.remote_peer == me.peer_id
        assert server_link.remote_info.observed_addr == link.ws.remote_address[0] + ":" + str(link.ws.remote_address[1])
    finally:
        await link.close("done")
    await asyncio.wait_for(server.links[0].wait_closed(), 5)
    assert "done" in (server.links[0].close_reason or "")
    with pytest.raises(LinkClosed):
        await link.send("/test/note/1", b"late")


async def test_wrong_network_key_refused_both_sides(
    make_peer: Callable[..., asyncio.Future[Peer]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    server = await make_peer(key=OTHER_KEY)
    with pytest.raises(NetworkKeyMismatch):
        await dial(server.url, Identity.generate(), KEY, timeout=5.0)
    await until(lambda: bool(server.errors))
    assert isinstance(server.errors[0], NetworkKeyMismatch)
    lines = [r.getMessage() for r in caplog.records if "network key mismatch" in r.getMessage()]
    assert any(line.startswith("dial ") for line in lines) and any(line.startswith("link from") for line in lines)


async def test_expected_peer_mismatch(make_peer: Callable[..., asyncio.Future[Peer]]) -> None:
    server = await make_peer()
    with pytest.raises(PeerIdMismatch):
        await dial(server.url, Identity.generate(), KEY, Identity.generate().peer_id, timeout=5.0)


async def test_slow_handshake_times_out_and_server_keeps_serving(
    make_peer: Callable[..., asyncio.Future[Peer]],
) -> None:
    server = await make_peer(timeout=0.3)
    async with connect(server.url, subprotocols=[Subprotocol(SUBPROTOCOL)], proxy=None) as ws:
        messages = await drain(ws)  # the handshake ABORT(TIMEOUT), then the close
        assert messages[0][:2] == bytes([ABORT, AbortCode.TIMEOUT])
        assert ws.close_code == 4000 + AbortCode.TIMEOUT
    await until(lambda: bool(server.errors))
    assert isinstance(server.errors[0], HandshakeTimeout)
    link = await dial(server.url, Identity.generate(), KEY, timeout=5.0)
    assert await link.request("/test/echo/1", b"ok") == b"echo:ok"
    await link.close()


async def test_garbage_closes_link_and_node_keeps_serving(make_peer: Callable[..., asyncio.Future[Peer]]) -> None:
    server = await make_peer()
    async with connect(server.url, subprotocols=[Subprotocol(SUBPROTOCOL)], proxy=None) as ws:
        await ws.send(b"\x00garbage")
        messages = await drain(ws)
        assert messages[0][:2] == bytes([ABORT, AbortCode.HANDSHAKE_FAILED])
        assert ws.close_code == 4000 + AbortCode.HANDSHAKE_FAILED
    link = await dial(server.url, Identity.generate(), KEY, timeout=5.0)
    await link.ws.send(b"not a noise message")  # raw garbage after the handshake
    await asyncio.wait_for(link.wait_closed(), 5)
    await until(lambda: bool(server.links) and server.links[-1].closed)
    assert "bad frame" in (server.links[-1].close_reason or "")
    link2 = await dial(server.url, Identity.generate(), KEY, timeout=5.0)
    assert await link2.request("/test/echo/1", b"still") == b"echo:still"
    await link2.close()


async def test_replayed_transport_frame_closes_link(make_peer: Callable[..., asyncio.Future[Peer]]) -> None:
    server = await make_peer()
    link = await dial(server.url, Identity.generate(), KEY, timeout=5.0)
    sent: list[bytes] = []
    original = link.ws.send

    async def recording_send(data: bytes) -> None:  # type: ignore[override]
        sent.append(data)
        await original(data)

    link.ws.send = recording_send  # type: ignore[method-assign,assignment]
    await link.send("/test/note/1", b"once")
    await link.request("/test/echo/1", b"x")
    await original(sent[0])  # replay
    await until(lambda: server.links[-1].closed)
    assert "decryption failed" in (server.links[-1].close_reason or "")
    assert server.got == [b"once"]
