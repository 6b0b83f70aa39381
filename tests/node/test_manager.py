"""LinkManager in process over real loopback WebSockets (node/server.py PortServer). Marked slow."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from node.errors import RequestFailed
from node.identity import Identity, PeerId
from node.link import SUBPROTOCOL
from node.manager import LinkDown, LinkEvent, LinkManager, LinkUp, ManagerConfig, NotLinked
from node.server import PortServer

pytestmark = pytest.mark.slow

KEY = bytes(range(32))


class Host:
    def __init__(self, manager: LinkManager, server: PortServer) -> None:
        self.manager = manager
        self.server = server
        self.events: list[LinkEvent] = []
        manager.subscribe(self.events.append)

    @property
    def peer(self) -> PeerId:
        return self.manager.local_peer

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.server.bound_port}"


@asynccontextmanager
async def hosts(n: int, **config: object) -> AsyncIterator[list[Host]]:
    made: list[Host] = []
    try:
        for i in range(n):
            manager = LinkManager(
                Identity.generate(),
                KEY,
                ManagerConfig(reconnect_base=0.05, reconnect_max=0.5, **config),  # type: ignore[arg-type]
                rng=random.Random(i),
            )
            server = PortServer("127.0.0.1", 0, max_frame_bytes=65536)
            server.add_subprotocol(SUBPROTOCOL, manager.accept)
            await server.start()
            manager.set_listen_addrs([f"ws://127.0.0.1:{server.bound_port}"])
            await manager.start()
            made.append(Host(manager, server))
        yield made
    finally:
        for h in made:
            await h.manager.stop()
            await h.server.stop()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_bootstrap_link_events_request_send_and_not_linked() -> None:
    async with hosts(2) as (a, b):
        got: list[tuple[PeerId, bytes]] = []
        b.manager.handle("/echo/1", lambda peer, body: body[::-1])
        b.manager.handle("/note/1", lambda peer, body: got.append((peer, body)))

        async def slow(peer: PeerId, body: bytes) -> bytes:
            await asyncio.sleep(0.01)
            return b"slow " + body

        b.manager.handle("/slow/1", slow)
        a.manager.add_bootstrap(b.addr)
        await until(lambda: a.manager.is_linked(b.peer) and b.manager.is_linked(a.peer))
        assert a.events == [LinkUp(peer=b.peer, direction="outbound", addrs=(f"ws://{b.addr}",))]
        assert b.events == [LinkUp(peer=a.peer, direction="inbound", addrs=(f"ws://{a.addr}",))]
        assert await a.manager.request(b.peer, "/echo/1", b"abc") == b"cba"
        assert await a.manager.request(b.peer, "/slow/1", b"x") == b"slow x"
        await a.manager.send(b.peer, "/note/1", b"hi")
        await until(lambda: got == [(a.peer, b"hi")])
        with pytest.raises(RequestFailed) as info:
            await a.manager.request(b.peer, "/missing/1", b"")
        assert info.value.code == RequestFailed.NO_HANDLER
        with pytest.raises(NotLinked):
            await a.manager.request(Identity.generate().peer_id, "/echo/1", b"")
        await until(lambda: a.manager.entries()[0].link.rtt is not None)  # measured on link-up
        doc = a.manager.status()
        assert doc["peers"][0]["peer_id"] == str(b.peer) and doc["peers"][0]["transport"] == "ws"


async def test_simultaneous_dials_leave_one_link_that_both_sides_agree_on() -> None:
    for _ in range(5):
        async with hosts(2) as (a, b):
            await asyncio.gather(
                a.manager.connect(f"ws://{b.addr}", b.peer),
                b.manager.connect(f"ws://{a.addr}", a.peer),
                return_exceptions=True,
            )
            await asyncio.sleep(0.2)
            assert a.manager.peers() == [b.peer] and b.manager.peers() == [a.peer]
            [ea], [eb] = a.manager.entries(), b.manager.entries()
            assert {ea.direction, eb.direction} == {"inbound", "outbound"}
            dialler = a if ea.direction == "outbound" else b
            assert dialler.peer.bytes == min(a.peer.bytes, b.peer.bytes)
            assert not ea.link.closed and not eb.link.closed
            assert [type(e) for e in a.events] == [LinkUp]  # the loser is invisible to upper layers


async def test_peer_exchange_makes_a_full_mesh() -> None:
    async with hosts(4, pex_interval=0.3) as hs:
        for h in hs[1:]:
            h.manager.add_bootstrap(hs[0].addr)
        await until(lambda: all(len(h.manager.peers()) == 3 for h in hs))


async def test_max_links_refuses_more() -> None:
    async with hosts(3, max_links=1) as (a, b, c):
        b.manager.add_bootstrap(a.addr)
        await until(lambda: a.manager.is_linked(b.peer))
        c.manager.add_bootstrap(a.addr)
        await asyncio.sleep(0.5)
        assert a.manager.peers() == [b.peer] and c.manager.peers() == []


async def test_stop_tells_peers_at_once_and_they_redial_after_restart() -> None:
    async with hosts(2) as (a, b):
        a.manager.add_bootstrap(b.addr)
        await until(lambda: b.manager.is_linked(a.peer))
        await b.manager.stop()
        await until(lambda: not a.manager.is_linked(b.peer), timeout=1.0)
        down = [e for e in a.events if isinstance(e, LinkDown)]
        assert "node shutting down" in down[0].reason
        await b.manager.start()  # same port still served: the bootstrap entry redials
        await until(lambda: a.manager.is_linked(b.peer), timeout=5.0)


async def test_dialling_self_is_dropped() -> None:
    async with hosts(1) as (a,):
        a.manager.add_bootstrap(a.addr.replace("127.0.0.1", "localhost"))
        await asyncio.sleep(0.5)
        assert a.manager.peers() == [] and a.manager.book.due(1e9, set()) == []
