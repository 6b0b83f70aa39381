"""Hostile and broken clients against a real node: clear errors, close codes, no crash."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from im import client_pb2 as pb
from im.client import Client
from node.server import MAX_FRAGMENTS
from testnet.process import NodeProcess

pytestmark = pytest.mark.slow


async def open_proto(node: NodeProcess) -> ClientConnection:
    return await connect(node.url, subprotocols=["timnode.v1.proto"], max_size=2**24)  # type: ignore[list-item]


async def request(ws: ClientConnection, frame: pb.ClientFrame) -> pb.ServerFrame:
    await ws.send(frame.SerializeToString())
    return pb.ServerFrame.FromString(await asyncio.wait_for(ws.recv(), 10))  # type: ignore[arg-type]


async def login(ws: ClientConnection, user: str) -> None:
    reply = await request(ws, pb.ClientFrame(id=1, register=pb.Register(user=user, password="password-x")))
    assert reply.WhichOneof("body") == "session", reply


async def assert_node_serves(node: NodeProcess) -> None:
    async with Client(node.url, "prober", "prober-password", register=True) as client:
        assert await client.ping() > 0


async def test_malformed_frames_get_bad_request_and_connection_survives(node: NodeProcess) -> None:
    async with await open_proto(node) as ws:
        for garbage in (b"\xff\xff\xff", b"\x0a\x05abc", b"\x08"):
            await ws.send(garbage)
            reply = pb.ServerFrame.FromString(await ws.recv())  # type: ignore[arg-type]
            assert reply.error.code == pb.BAD_REQUEST and reply.id == 0
        await ws.send("a text frame on the binary subprotocol")
        assert pb.ServerFrame.FromString(await ws.recv()).error.code == pb.BAD_REQUEST  # type: ignore[arg-type]
        reply = await request(ws, pb.ClientFrame(id=0, ping=pb.Ping()))
        assert reply.error.code == pb.BAD_REQUEST  # request ids must be > 0
        reply = await request(ws, pb.ClientFrame(id=9))
        assert (reply.id, reply.error.code) == (9, pb.UNKNOWN_OPERATION)
        assert (await request(ws, pb.ClientFrame(id=10, ping=pb.Ping()))).pong.server_time > 0
    async with connect(node.url, subprotocols=["timnode.v1.json"]) as ws:  # type: ignore[list-item]
        for bad in ("{not json", "[]", '{"id": "x"}', '{"id": "1", "zap": {}}', "[" * 50_000):
            await ws.send(bad)
            reply = json.loads(await ws.recv())
            assert reply["error"]["code"] in ("BAD_REQUEST", "UNKNOWN_OPERATION"), (bad[:20], reply)
    await assert_node_serves(node)


async def test_unauthenticated_operations_are_refused(node: NodeProcess) -> None:
    async with await open_proto(node) as ws:
        reply = await request(ws, pb.ClientFrame(id=1, send=pb.Send(to="x", text="y")))
        assert reply.error.code == pb.UNAUTHENTICATED


async def test_oversized_frame_closes_with_1009(node_factory: Callable[..., NodeProcess]) -> None:
    node = node_factory("--max-frame-bytes", "4096", "--max-message-bytes", "1024")
    async with await open_proto(node) as ws:
        await login(ws, "big")
        reply = await request(ws, pb.ClientFrame(id=2, send=pb.Send(to="big", text="x" * 2000)))
        assert reply.error.code == pb.TOO_LARGE  # fits a frame, over the body limit
        await ws.send(b"\x00" * 10_000)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 1009
    await assert_node_serves(node)


async def test_request_flood_is_rate_limited_then_closed(node_factory: Callable[..., NodeProcess]) -> None:
    node = node_factory("--rate-limit", "20", "--rate-burst", "20")
    async with Client(node.url, "calm", "calm-password", register=True) as calm:
        async with await open_proto(node) as ws:
            frames = [pb.ClientFrame(id=i + 1, ping=pb.Ping()).SerializeToString() for i in range(400)]
            for data in frames:
                await ws.send(data)
            codes = []
            with pytest.raises(ConnectionClosed):
                while True:
                    frame = pb.ServerFrame.FromString(await asyncio.wait_for(ws.recv(), 10))  # type: ignore[arg-type]
                    codes.append(frame.WhichOneof("body"))
                    if frame.WhichOneof("body") == "error":
                        assert frame.error.code == pb.RATE_LIMITED and frame.error.retry_after > 0
            assert ws.close_code == 4004
            assert codes.count("pong") <= 25 and codes.count("error") >= 100 and codes[-1] == "kicked"
        assert await calm.ping() > 0  # the other client was not disturbed


async def test_too_many_connections_per_address(node_factory: Callable[..., NodeProcess]) -> None:
    node = node_factory("--max-conns-per-ip", "3")
    conns = [await open_proto(node) for _ in range(3)]
    extra = await open_proto(node)
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(extra.recv(), 10)
    assert extra.close_code == 1008
    await conns[0].close()
    await asyncio.sleep(0.2)
    again = await open_proto(node)
    assert (await request(again, pb.ClientFrame(id=1, ping=pb.Ping()))).pong.server_time > 0
    for ws in [*conns[1:], again]:
        await ws.close()


async def test_repeated_wrong_passwords_are_slowed_down(node: NodeProcess) -> None:
    async with Client(node.url, "victim", "victim-password", register=True):
        pass
    async with await open_proto(node) as ws:
        waits = []
        for i in range(5):
            reply = await request(ws, pb.ClientFrame(id=i + 1, login=pb.Login(user="victim", password="guess-guess")))
            assert reply.error.code == pb.AUTH_FAILED
            waits.append(reply.error.retry_after)
        assert waits[0] == 0 and waits[-1] > 0
        reply = await request(ws, pb.ClientFrame(id=9, login=pb.Login(user="victim", password="victim-password")))
        assert reply.error.code == pb.AUTH_FAILED and reply.error.retry_after > 0  # not even checked


async def test_wrong_old_passwords_are_slowed_down_like_logins(node: NodeProcess) -> None:
    """A session (a stolen token, say) may not guess the password through change_password."""
    async with Client(node.url, "victim2", "victim-password", register=True):
        pass
    async with await open_proto(node) as ws:
        reply = await request(ws, pb.ClientFrame(id=1, login=pb.Login(user="victim2", password="victim-password")))
        assert reply.WhichOneof("body") == "session"
        waits = []
        for i in range(5):
            change = pb.ChangePassword(old_password=f"guess-{i:04d}", new_password="attacker-pw")
            reply = await request(ws, pb.ClientFrame(id=10 + i, change_password=change))
            assert reply.error.code == pb.AUTH_FAILED
            waits.append(reply.error.retry_after)
        assert waits[0] == 0 and waits[-1] > 0
        right = pb.ChangePassword(old_password="victim-password", new_password="attacker-pw")
        reply = await request(ws, pb.ClientFrame(id=20, change_password=right))
        assert reply.error.code == pb.AUTH_FAILED and reply.error.retry_after > 0  # not even checked
        too_short = pb.ChangePassword(old_password="victim-password", new_password="short")
        assert (await request(ws, pb.ClientFrame(id=21, change_password=too_short))).error.code == pb.BAD_REQUEST


async def test_frames_sent_with_the_upgrade_request_are_answered(node: NodeProcess) -> None:
    """Requests in the same TCP write as the HTTP upgrade (or queued before the gateway took
    the connection) are served, and past websockets' queue limit the socket is read again."""
    host, port = node.url.removeprefix("ws://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    upgrade = upgrade_request(host, port)
    early = [pb.ClientFrame(id=i, ping=pb.Ping()).SerializeToString() for i in range(1, 41)]
    writer.write(upgrade + b"".join(masked_binary_frame(data) for data in early))
    assert b" 101 " in await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.write(masked_binary_frame(pb.ClientFrame(id=999, ping=pb.Ping()).SerializeToString()))
    answered: list[int] = []
    buffer = b""
    while 999 not in answered:
        buffer += await asyncio.wait_for(reader.read(65536), 10)
        payloads, buffer = split_server_frames(buffer)
        answered += [pb.ServerFrame.FromString(data).id for data in payloads]
    writer.close()
    assert sorted(answered) == [*range(1, 41), 999]


def masked_binary_frame(payload: bytes) -> bytes:
    """A client's binary frame (RFC 6455 section 5.2), payload under 126 bytes."""
    key = os.urandom(4)
    return bytes((0x82, 0x80 | len(payload))) + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def split_server_frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Complete unmasked binary frames from the start of ``buffer``, and the rest."""
    payloads: list[bytes] = []
    while len(buffer) >= 2:
        size, offset = buffer[1] & 0x7F, 2
        if size == 126:
            size, offset = int.from_bytes(buffer[2:4], "big"), 4
        if len(buffer) < offset + size:
            break
        if buffer[0] & 0x0F == 2:
            payloads.append(buffer[offset : offset + size])
        buffer = buffer[offset + size :]
    return payloads, buffer


async def test_a_client_that_does_not_read_is_closed_before_its_replies_pile_up(node: NodeProcess) -> None:
    """The outbox is bounded by bytes too (16 MiB): 100 sync pages of ~650 KB, unread, would
    hold ~65 MB; the connection is closed as a slow consumer (1008) instead."""
    async with await open_proto(node) as ws:
        await login(ws, "hoarder")
        for i in range(40):
            sent = await request(ws, pb.ClientFrame(id=10 + i, send=pb.Send(to="hoarder", text="x" * 16_000)))
            assert sent.WhichOneof("body") == "sent", sent
        await asyncio.sleep(0.2)
        while True:  # the pushes of those sends
            try:
                await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                break
        ws.transport.pause_reading()  # a client that stops reading
        for i in range(100):
            await ws.send(pb.ClientFrame(id=100 + i, sync=pb.Sync(after=0, limit=1000)).SerializeToString())
        await asyncio.sleep(2)
        ws.transport.resume_reading()
        pages = 0
        with pytest.raises(ConnectionClosed):
            while True:
                frame = pb.ServerFrame.FromString(await asyncio.wait_for(ws.recv(), 10))  # type: ignore[arg-type]
                pages += frame.WhichOneof("body") == "page"
        assert ws.close_code == 1008 and pages < 100
    await assert_node_serves(node)


async def test_a_ping_flood_from_a_client_that_does_not_read_is_pushed_back(node: NodeProcess) -> None:
    """Pongs queue in the transport while the client does not read; once over the high-water
    mark the node stops reading that socket, so TCP stops the flood and memory stays flat."""
    host, port = node.url.removeprefix("ws://").rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(upgrade_request(host, port))
    assert b" 101 " in await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    before = resident_mib(node.pid)
    key = os.urandom(4)
    ping = bytes((0x89, 0x80 | 125)) + key + bytes(b ^ key[i % 4] for i, b in enumerate(b"p" * 125))
    sent = 0
    with contextlib.suppress(TimeoutError):
        for _ in range(200):  # up to ~52 MB of pings, never reading a pong
            writer.write(ping * 2000)
            await asyncio.wait_for(writer.drain(), 2)
            sent += 2000 * len(ping)
    await asyncio.sleep(0.5)
    grown = resident_mib(node.pid) - before
    writer.transport.abort()
    assert sent < 20 << 20 and grown < 20, (sent, grown)
    await assert_node_serves(node)


def upgrade_request(host: str, port: str) -> bytes:
    return (
        f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: timnode.v1.proto\r\n\r\n"
    ).encode()


def resident_mib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS"))


async def test_a_message_in_endless_fragments_is_refused(node: NodeProcess) -> None:
    """Empty continuation frames cost the client 6 bytes each and the node a list entry: past
    MAX_FRAGMENTS pieces of one message the connection is closed with 1009."""
    host, port = node.url.removeprefix("ws://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(upgrade_request(host, port))
    assert b" 101 " in await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    key = os.urandom(4)
    start = bytes((0x02, 0x81)) + key + bytes((ord("x") ^ key[0],))  # binary, not final, 1 byte
    empty_continuation = bytes((0x00, 0x80)) + key
    writer.write(start + empty_continuation * (MAX_FRAGMENTS + 10))
    received = b""
    with contextlib.suppress(ConnectionError):
        while chunk := await asyncio.wait_for(reader.read(4096), 10):
            received += chunk
    writer.close()
    close = received[received.index(b"\x88") :]  # the server's close frame
    assert int.from_bytes(close[2:4], "big") == 1009
    await assert_node_serves(node)


async def test_login_timeout_closes_idle_anonymous_connections(node_factory: Callable[..., NodeProcess]) -> None:
    node = node_factory("--auth-timeout", "0.5")
    async with await open_proto(node) as ws:
        kicked = pb.ServerFrame.FromString(await asyncio.wait_for(ws.recv(), 10))  # type: ignore[arg-type]
        assert kicked.kicked.reason == pb.AUTH_TIMEOUT
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 4003


async def test_unknown_subprotocol_and_plain_http(node: NodeProcess) -> None:
    with pytest.raises(InvalidStatus) as info:
        await connect(node.url, subprotocols=["chat.v9"])  # type: ignore[list-item]
    assert info.value.response.status_code == 400
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(node.http_url + "/nope", timeout=5)
    assert http.value.code == 404
    await assert_node_serves(node)


async def test_half_open_and_abrupt_disconnects_do_not_leak_sessions(node: NodeProcess) -> None:
    for i in range(20):
        ws = await open_proto(node)
        await login(ws, f"ghost{i}")
        ws.transport.abort()  # no close frame
    await asyncio.sleep(0.5)
    with urllib.request.urlopen(node.http_url + "/healthz", timeout=5) as resp:
        health = json.load(resp)
    assert health["sessions"] == 0 and health["connections"] == 0


async def test_garbage_flood_is_closed_as_a_flood(node_factory: Callable[..., NodeProcess]) -> None:
    node = node_factory("--rate-limit", "20", "--rate-burst", "20")
    async with await open_proto(node) as ws:
        for _ in range(400):
            await ws.send(b"\xff\xff\xff")
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 4004
    await assert_node_serves(node)
