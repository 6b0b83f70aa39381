"""Relayed links in process on 127.0.0.1 (no ICE, no namespaces): the relay sees only ciphertext."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from nat.relay import RELAY_DATA, Circuit, RelayService
from node.identity import Identity
from node.link import SUBPROTOCOL, establish
from node.manager import LinkManager, ManagerConfig
from node.server import PortServer

pytestmark = pytest.mark.slow

KEY = bytes(range(32))
SECRET = b"SECRET-PAYLOAD-the relay must never see this"


class Host:
    def __init__(self, manager: LinkManager, server: PortServer) -> None:
        self.manager = manager
        self.server = server
        self.relay = RelayService(manager, self.on_circuit)
        self.inbound: list[str] = []

    async def on_circuit(self, circuit: Circuit, direction: str) -> None:
        link = await establish(
            circuit,
            self.manager.identity,
            self.manager.network_key,
            initiator=False,
            config=self.manager.link_config(),
            handlers=self.manager.handlers,
        )
        assert self.manager.adopt(link, "inbound", "relay")
        self.inbound.append(str(link.remote_peer))

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.server.bound_port}"


@asynccontextmanager
async def hosts(n: int) -> AsyncIterator[list[Host]]:
    made: list[Host] = []
    try:
        for i in range(n):
            manager = LinkManager(Identity.generate(), KEY, ManagerConfig(keepalive=0), rng=random.Random(i))
            server = PortServer("127.0.0.1", 0, max_frame_bytes=65536)
            server.add_subprotocol(SUBPROTOCOL, manager.accept)
            await server.start()
            manager.set_listen_addrs([f"ws://127.0.0.1:{server.bound_port}"])
            await manager.start()
            made.append(Host(manager, server))
        yield made
    finally:
        for h in made:
            h.relay.close()
            await h.manager.stop()
            await h.server.stop()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_circuit_link_is_end_to_end_encrypted_and_relay_sees_only_ciphertext() -> None:
    async with hosts(3) as (a, r, b):
        # A and B are linked to R only (as two NATed nodes would be): nothing to dial them at
        a.manager.set_listen_addrs([])
        b.manager.set_listen_addrs([])
        await a.manager.connect("ws://" + r.addr)
        await b.manager.connect("ws://" + r.addr)
        assert await b.relay.reserve(r.manager.local_peer)
        assert await a.relay.list_reserved(r.manager.local_peer) == [b.manager.local_peer]

        seen_at_relay: list[bytes] = []
        forward = r.manager.handlers.get(RELAY_DATA)
        assert forward is not None

        def spy(link: object, body: bytes) -> object:
            seen_at_relay.append(body)
            return forward(link, body)  # type: ignore[arg-type]

        r.manager.handlers.add(RELAY_DATA, spy)

        received: list[bytes] = []
        b.manager.handle("/test/secret", lambda peer, body: received.append(body))
        b.manager.handle("/test/echo", lambda peer, body: body)

        circuit = await a.relay.connect(r.manager.local_peer, b.manager.local_peer)
        link = await establish(
            circuit,
            a.manager.identity,
            a.manager.network_key,
            initiator=True,
            expected_peer=b.manager.local_peer,
            config=a.manager.link_config(),
            handlers=a.manager.handlers,
        )
        assert a.manager.adopt(link, "outbound", "relay")
        await until(lambda: b.manager.is_linked(a.manager.local_peer))
        assert a.manager.transport_of(b.manager.local_peer) == "relay"
        assert b.manager.transport_of(a.manager.local_peer) == "relay"

        await a.manager.send(b.manager.local_peer, "/test/secret", SECRET)
        await until(lambda: received == [SECRET])
        assert await a.manager.request(b.manager.local_peer, "/test/echo", b"ping") == b"ping"
        assert seen_at_relay, "the traffic went through the relay"
        everything = b"".join(seen_at_relay)
        assert SECRET not in everything and b"SECRET-PAYLOAD" not in everything
        assert b"/test/secret" not in everything  # even protocol names are inside the Noise ciphertext

        # throughput through the relay: 1 MiB in 16 KiB messages, and 2,000 100-byte messages
        big = bytes(16384)
        got: list[int] = []
        b.manager.handle("/test/bulk", lambda peer, body: got.append(len(body)))
        start = time.perf_counter()
        for _ in range(64):
            await a.manager.send(b.manager.local_peer, "/test/bulk", big)
        await until(lambda: len(got) == 64, timeout=30)
        mbps = 64 * 16384 / (time.perf_counter() - start) / 1e6
        got.clear()
        start = time.perf_counter()
        for _ in range(2000):
            await a.manager.send(b.manager.local_peer, "/test/bulk", bytes(100))
        await until(lambda: len(got) == 2000, timeout=30)
        rate = 2000 / (time.perf_counter() - start)
        print(f"relay throughput: {mbps:.1f} MB/s in 16 KiB messages, {rate:.0f} msgs/s of 100 bytes")

        # closing the circuit's link ends it at the relay too
        await link.close("done")
        await until(lambda: not b.manager.is_linked(a.manager.local_peer))
        await until(lambda: not r.relay.relayed)


async def test_relay_refuses_unknown_target_and_bad_requests() -> None:
    async with hosts(2) as (a, r):
        await a.manager.connect("ws://" + r.addr)
        with pytest.raises(ValueError, match="not linked"):
            await a.relay.connect(r.manager.local_peer, Identity.generate().peer_id)
        reply = await a.manager.request(r.manager.local_peer, "/timnode/relay/1", b"\xff not json")
        assert b'"ok": false' in reply
        reply = await a.manager.request(r.manager.local_peer, "/timnode/relay/1", b'{"op":"connect","circuit":"zz"}')
        assert b'"ok": false' in reply


async def _relayed_pair(a: Host, r: Host, b: Host) -> object:
    a.manager.set_listen_addrs([])
    b.manager.set_listen_addrs([])
    await a.manager.connect("ws://" + r.addr)
    await b.manager.connect("ws://" + r.addr)
    circuit = await a.relay.connect(r.manager.local_peer, b.manager.local_peer)
    link = await establish(circuit, a.manager.identity, a.manager.network_key, initiator=True,
                           expected_peer=b.manager.local_peer, config=a.manager.link_config(),
                           handlers=a.manager.handlers)  # fmt: skip
    assert a.manager.adopt(link, "outbound", "relay")
    await until(lambda: b.manager.is_linked(a.manager.local_peer))
    return circuit


async def test_circuit_byte_limit_closes_it_with_a_reason(caplog: pytest.LogCaptureFixture) -> None:
    async with hosts(3) as (a, r, b):
        r.relay.max_circuit_bytes = 64 * 1024
        closed: list[tuple[str, str]] = []
        for h in (a, b):
            h.relay.on_closed = lambda c, why, h=h: closed.append((str(c.remote), why))
        circuit = await _relayed_pair(a, r, b)
        got: list[int] = []
        b.manager.handle("/test/bulk", lambda peer, body: got.append(len(body)))
        with caplog.at_level("INFO", logger="nat.relay"):
            for _ in range(3):
                await a.manager.send(b.manager.local_peer, "/test/bulk", bytes(16384))
            await until(lambda: len(got) == 3)  # under the limit: forwarded
            for _ in range(4):
                await a.manager.send(b.manager.local_peer, "/test/bulk", bytes(16384))
            await until(lambda: not a.manager.is_linked(b.manager.local_peer))
            await until(lambda: not b.manager.is_linked(a.manager.local_peer))
        assert len(got) < 7 and not r.relay.relayed
        assert r.relay.limited == {"bytes": 1, "duration": 0}
        assert r.relay.status()["circuits_closed_at_limit"]["bytes"] == 1
        assert any("bytes limit" in rec.getMessage() for rec in caplog.records)
        assert isinstance(circuit, Circuit) and circuit.close_reason == "limit: bytes"
        await until(lambda: len(closed) == 2)
        assert {why for _, why in closed} == {"limit: bytes"}


async def test_circuit_duration_limit_and_direct_retry() -> None:
    from nat.service import NatService

    async with hosts(3) as (a, r, b):
        r.relay.max_circuit_seconds = 0.3
        circuit = await _relayed_pair(a, r, b)
        await until(lambda: not a.manager.is_linked(b.manager.local_peer), timeout=5)
        assert isinstance(circuit, Circuit) and circuit.close_reason == "limit: duration"
        assert r.relay.limited["duration"] == 1
        # the NAT service's reaction: the next punch to that peer is due at once (not after the back-off)
        service = NatService.__new__(NatService)
        service._next_punch = {b.manager.local_peer: (1e12, 600.0)}
        service._on_circuit_closed(circuit, "limit: duration")
        assert b.manager.local_peer not in service._next_punch
