"""Cross-node routing in process: three ``ImService`` harnesses wired by fake links (im/federation.py)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from im import client_pb2 as pb
from im import federation_pb2 as fed
from im.federation import Federation, store_fingerprint
from node.identity import Identity, PeerId
from node.manager import LinkDown, LinkEvent, LinkUp, NotLinked
from tests.im.harness import Harness

Handler = Callable[[PeerId, bytes], "bytes | None | Awaitable[bytes | None]"]


class FakeNet:
    def __init__(self) -> None:
        self.links: dict[PeerId, FakeLinks] = {}

    def connect_all(self) -> None:
        for a in self.links.values():
            for b in self.links.values():
                if a is not b and b.local_peer not in a.linked:
                    a.linked.add(b.local_peer)
                    a.emit(LinkUp(peer=b.local_peer, direction="outbound", addrs=()))


class FakeLinks:
    """The slice of ``LinkManager`` that ``Federation`` uses."""

    def __init__(self, net: FakeNet) -> None:
        self.local_peer = Identity.generate().peer_id
        self.net = net
        net.links[self.local_peer] = self
        self.handlers: dict[str, Handler] = {}
        self.subscribers: list[Callable[[LinkEvent], None]] = []
        self.linked: set[PeerId] = set()
        self.requests: list[tuple[PeerId, fed.FedRequest]] = []

    def handle(self, protocol: str, handler: Handler) -> None:
        self.handlers[protocol] = handler

    def unhandle(self, protocol: str) -> None:
        self.handlers.pop(protocol, None)

    def subscribe(self, cb: Callable[[LinkEvent], None]) -> Callable[[], None]:
        self.subscribers.append(cb)
        return lambda: self.subscribers.remove(cb)

    def emit(self, event: LinkEvent) -> None:
        for cb in list(self.subscribers):
            cb(event)

    def peers(self) -> list[PeerId]:
        return sorted(self.linked, key=lambda p: p.bytes)

    def is_linked(self, peer: PeerId) -> bool:
        return peer in self.linked

    async def request(self, peer: PeerId, protocol: str, body: bytes, timeout: float | None = None) -> bytes:
        if peer not in self.linked:
            raise NotLinked("not linked")
        self.requests.append((peer, fed.FedRequest.FromString(body)))
        result: Any = self.net.links[peer].handlers[protocol](self.local_peer, body)
        if inspect.isawaitable(result):
            result = await result
        return result or b""

    async def send(self, peer: PeerId, protocol: str, body: bytes) -> None:
        await self.request(peer, protocol, body)

    def unlink(self, peer: PeerId) -> None:
        self.linked.discard(peer)
        self.emit(LinkDown(peer=peer, reason="test"))


async def network(n: int, **kwargs: Any) -> tuple[list[Harness], list[FakeLinks], list[Federation]]:
    net = FakeNet()
    harnesses, links, feds = [], [], []
    for _ in range(n):
        h = await Harness.create(**kwargs)
        fl = FakeLinks(net)
        f = Federation(h.service, fl, fingerprint=store_fingerprint("memory://", durable=False, blind=None),  # type: ignore[arg-type]
                       durable=False)  # fmt: skip
        f.start()
        harnesses.append(h)
        links.append(fl)
        feds.append(f)
    net.connect_all()
    await asyncio.sleep(0.01)
    return harnesses, links, feds


def delivers(fl: FakeLinks) -> list[PeerId]:
    return [p for p, r in fl.requests if r.WhichOneof("op") == "deliver"]


async def test_one_copy_per_node_and_sender_devices() -> None:
    (a, b, c), (la, lb, lc), (fa, fb, fc) = await network(3, durable=False)
    alice = await a.register("alice", "a1")
    alice_c = await c.register("alice", "a2")
    bob1 = await b.register("bob", "b1")
    bob2 = await b.login("bob", "b2")
    await asyncio.sleep(0.01)
    sent = await a.send(alice, "bob", "hi")
    assert sent.delivered_devices == 2
    assert sorted(delivers(la), key=lambda p: p.bytes) == sorted([lb.local_peer, lc.local_peer], key=lambda p: p.bytes)
    assert [m.text for m in bob1.messages()] == ["hi"] and [m.text for m in bob2.messages()] == ["hi"]
    assert [m.text for m in alice_c.messages()] == ["hi"]
    # bob's ack on B flows back to alice's devices on A and C
    await b.call(bob1, delivery_ack=pb.DeliveryAck(ids=[sent.message_id]))
    await asyncio.sleep(0.01)
    for conn in (alice, alice_c):
        assert [list(f.delivered.message_ids) for f in conn.of_kind("delivered")] == [[sent.message_id]]


async def test_user_gone_triggers_fresh_lookup() -> None:
    (a, b, c), (la, lb, lc), (fa, fb, fc) = await network(3, durable=False)
    alice = await a.register("alice", "a1")
    await c.register("bob", "b1")
    await asyncio.sleep(0.01)
    # A's table is stale: it believes bob is on B only (as if C's PRESENCE were late)
    fa.directory.drop_peer(lc.local_peer)
    fa.directory.apply(lb.local_peer, fed.UserDevices(user="bob", devices=[fed.DeviceInfo(device="old")], seq=1))
    sent = await a.send(alice, "bob", "where are you")
    assert sent.delivered_devices == 1
    assert fa.stats["gone"] == 1 and fa.stats["fresh_lookups"] == 1
    assert delivers(la) == [lb.local_peer, lc.local_peer]
    assert [r.peer for r in fa.directory.cached("bob")] == [lc.local_peer]


async def test_link_down_drops_entries_and_tells_watchers() -> None:
    (a, b), (la, lb), (fa, fb) = await network(2, durable=False)
    carol = await a.register("carol", "c1")
    (initial,) = (await a.call(carol, subscribe=pb.Subscribe(users=["dave"]))).presences.presences
    assert not initial.online
    await b.register("dave", "d1")
    await asyncio.sleep(0.01)
    assert [p.presence.online for p in carol.of_kind("presence")] == [True]
    la.unlink(lb.local_peer)  # node B crashed
    await asyncio.sleep(0.01)
    assert [p.presence.online for p in carol.of_kind("presence")] == [True, False]
    assert fa.remote_devices("dave") == 0


async def test_device_limit_kicks_oldest_network_wide() -> None:
    (a, b), _, (fa, fb) = await network(2, durable=False, max_devices=2)
    await b.register("erin", "e1")
    b.clock.t += 1
    a.clock.t += 1
    await b.login("erin", "e2")
    await asyncio.sleep(0.01)
    await a.register("erin", "e3")  # no-store: accounts are per node
    await asyncio.sleep(0.01)
    assert fb.stats["kicks_in"] == 1
    assert sorted(s.device for s in b.registry.sessions_of("erin")) == ["e2"]


async def test_mismatched_store_refuses_delivery() -> None:
    (a, b), (la, lb), (fa, fb) = await network(2, durable=False)
    fb.fingerprint = "other"
    la.emit(LinkUp(peer=lb.local_peer, direction="outbound", addrs=()))  # hello again
    await asyncio.sleep(0.01)
    assert fa.status()["peers"][str(lb.local_peer)]["compatible"] is False
    alice = await a.register("alice", "a1")
    await b.register("bob", "b1")
    await asyncio.sleep(0.01)
    err = await a.error(alice, send=pb.Send(to="bob", text="x"))
    assert err.code == pb.STORE_UNAVAILABLE


def test_fingerprint_is_stable_and_secret_free() -> None:
    def blind(label: bytes, value: bytes) -> bytes:
        return b"k" * 16

    pg = "postgresql://user:secret@db:5432/im?table=t1"
    assert store_fingerprint(pg, durable=True, blind=blind) == store_fingerprint(
        "postgresql://other:pw@db/im?table=t1", durable=True, blind=blind
    )
    assert store_fingerprint(pg, durable=True, blind=blind) != store_fingerprint(
        "postgresql://user:secret@db:5432/im?table=t2", durable=True, blind=blind
    )
    assert store_fingerprint(pg, durable=True, blind=blind) != store_fingerprint(pg, durable=True, blind=None)
    assert store_fingerprint("memory://", durable=False, blind=None) == "no-store"
