"""The IM features across nodes, in process (im/fed_routing.py): harnesses sharing one memory
store, wired by the fake links of tests/im/test_cross_node_unit.py."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest import mock

from im import client_pb2 as pb
from im import federation_pb2 as fed
from im.fed_routing import closest, group_key, room_key
from im.federation import Federation, store_fingerprint
from im.ids import MessageIdGenerator
from node.identity import PeerId
from store.memory import MemoryStore
from tests.im.harness import Harness
from tests.im.test_cross_node_unit import FakeLinks, FakeNet


async def shared_network(n: int, **kwargs: Any) -> tuple[list[Harness], list[FakeLinks], list[Federation]]:
    """``n`` nodes on ONE store (as nodes sharing SQLite or PostgreSQL), each with its own ids."""
    net, store = FakeNet(), MemoryStore()
    await store.open()
    harnesses, links, feds = [], [], []
    for i in range(n):
        with (
            mock.patch("tests.im.harness.MemoryStore", lambda: store),
            mock.patch("tests.im.harness.MessageIdGenerator", lambda _n, i=i: MessageIdGenerator(10 + i)),
        ):
            h = Harness(**kwargs)
        fl = FakeLinks(net)
        fp = store_fingerprint("memory://shared", durable=False, blind=None)
        f = Federation(h.service, fl, fingerprint=fp, durable=True)  # type: ignore[arg-type]
        f.start()
        harnesses.append(h)
        links.append(fl)
        feds.append(f)
    net.connect_all()
    await asyncio.sleep(0.01)
    return harnesses, links, feds


def sent_ops(fl: FakeLinks, op: str, kind: str = "") -> list[PeerId]:
    return [p for p, r in fl.requests if r.WhichOneof("op") == op and (not kind or r.push.kind == kind)]


async def settle() -> None:
    await asyncio.sleep(0.01)


async def test_recall_and_edit_reach_the_recipient_on_another_node() -> None:
    (a, b), (la, lb), (fa, fb) = await shared_network(2)
    alice = await a.register("alice", "a1")
    bob = await b.register("bob", "b1")
    await settle()
    sent = await a.send(alice, "bob", "typo")
    await settle()
    assert [m.text for m in bob.messages()] == ["typo"]
    await a.call(alice, edit=pb.Edit(message_id=sent.message_id, text="fixed"))
    await a.call(alice, recall=pb.Recall(message_id=sent.message_id))
    await settle()
    events = [(m.type, m.ref, m.text) for m in bob.messages()[1:]]
    assert events == [(pb.TYPE_EDIT, sent.message_id, "fixed"), (pb.TYPE_RECALL, sent.message_id, "")]
    assert sent_ops(la, "push", "event") == [lb.local_peer, lb.local_peer]
    # the read marker travels back: alice's device on A sees bob's READ event
    await b.call(bob, read=pb.Read(conversation="alice", up_to=sent.message_id))
    await settle()
    assert [m.type for m in alice.messages()] == [pb.TYPE_READ]


async def test_typing_crosses_nodes_only_to_nodes_holding_the_recipient() -> None:
    (a, b, c), (la, lb, lc), _ = await shared_network(3)
    alice = await a.register("alice", "a1")
    bob = await b.register("bob", "b1")
    await settle()
    await a.call(alice, typing=pb.Typing(to="bob", active=True))
    await settle()
    (notice,) = [f.typing for f in bob.of_kind("typing")]
    assert notice.user == "alice" and notice.active
    assert sent_ops(la, "push", "typing") == [lb.local_peer]  # C holds no device of bob


async def test_rich_presence_text_status_and_fields_cross_nodes() -> None:
    (a, b), _, (fa, fb) = await shared_network(2)
    alice = await a.register("alice", "a1")
    carol = await b.register("carol", "c1")
    await b.call(carol, subscribe=pb.Subscribe(users=["alice"]))
    await settle()
    reply = await a.call(alice, set_presence=pb.SetPresence(status=pb.BUSY, text="in a meeting", fields={"mood": "ok"}))
    assert reply.presences.presences[0].text == "in a meeting"
    await settle()
    last = carol.of_kind("presence")[-1].presence
    assert (last.online, last.status, last.text, dict(last.fields)) == (True, pb.BUSY, "in a meeting", {"mood": "ok"})
    (view,) = (await b.call(carol, subscribe=pb.Subscribe(users=["alice"]))).presences.presences
    assert view.status == pb.BUSY and dict(view.fields) == {"mood": "ok"}
    await a.call(alice, set_presence=pb.SetPresence(status=pb.INVISIBLE))
    await settle()
    assert not carol.of_kind("presence")[-1].presence.online


async def test_block_invalidates_roster_caches_on_other_nodes() -> None:
    (a, b), (la, _), _ = await shared_network(2)
    alice = await a.register("alice", "a1")
    bob = await b.register("bob", "b1")
    await settle()
    await a.send(alice, "bob", "hi")  # node A caches bob's relations (none)
    await b.call(bob, block=pb.Block(user="alice"))
    await settle()
    err = await a.error(alice, send=pb.Send(to="bob", text="still there?"))
    assert err.code == pb.BLOCKED


def owner_index(links: list[FakeLinks], key: bytes) -> int:
    peers = [fl.local_peer for fl in links]
    return peers.index(closest(key, peers))


async def test_group_one_copy_per_node_and_one_sequence() -> None:
    (a, b), (la, lb), (fa, fb) = await shared_network(2)
    alice = await a.register("alice", "a1")
    bob = await b.register("bob", "b1")
    carol = await b.register("carol", "c1")
    await settle()
    info = (await a.call(alice, group_create=pb.GroupCreate(name="g", members=["bob", "carol"]))).group
    await settle()
    for conn in (alice, bob, carol):
        assert [m.type for m in (f.group_message for f in conn.of_kind("group_message"))] == [pb.TYPE_GROUP_CREATED]
    seqs = []
    for h, conn, text in ((b, bob, "from B"), (a, alice, "from A"), (b, carol, "from B again")):
        seqs.append((await h.call(conn, group_send=pb.GroupSend(group=info.group, text=text))).sent.seq)
        await settle()
    assert seqs == [2, 3, 4]  # one sequence: the owner assigned them all
    for conn in (alice, bob, carol):
        texts = [f.group_message.text for f in conn.of_kind("group_message")][1:]
        assert texts == ["from B", "from A", "from B again"]
    owner = owner_index([la, lb], group_key(info.group))
    owner_links, other_links = (la, lb) if owner == 0 else (lb, la)
    # every push from the owner to node B is ONE copy for bob and carol (create + 3 messages)
    pushes = [r.push for p, r in owner_links.requests if r.WhichOneof("op") == "push" and r.push.kind == "group"]
    if owner == 0:
        assert len(pushes) == 4 and all(sorted(t.user for t in p.targets) == ["bob", "carol"] for p in pushes)
    assert len(sent_ops(other_links, "forward")) == (2 if owner == 0 else 1)  # the other node's sends
    page = (await b.call(bob, group_sync=pb.GroupSync(group=info.group))).group_page
    assert [m.seq for m in page.messages] == [1, 2, 3, 4]


async def test_room_members_on_two_nodes() -> None:
    (a, b), (la, lb), (fa, fb) = await shared_network(2)
    alice = await a.register("alice", "a1")
    bob = await b.register("bob", "b1")
    carol = await b.register("carol", "c1")
    await settle()
    await a.call(alice, room_create=pb.RoomCreate(room="lobby"))
    await b.call(bob, room_join=pb.RoomJoin(room="lobby"))
    await b.call(carol, room_join=pb.RoomJoin(room="lobby"))
    await settle()
    before = [len(sent_ops(fl, "push", "room")) for fl in (la, lb)]
    sent = (await a.call(alice, room_send=pb.RoomSend(room="lobby", text="hello room"))).sent
    await settle()
    assert sent.delivered_devices == 2
    for conn in (bob, carol):
        assert [f.room_message.text for f in conn.of_kind("room_message") if f.room_message.type == 1] == ["hello room"]
    home = owner_index([la, lb], room_key("lobby"))
    after = [len(sent_ops(fl, "push", "room")) for fl in (la, lb)]
    if home == 0:
        assert after[0] - before[0] == 1  # one copy to node B for bob and carol
    await b.call(bob, room_send=pb.RoomSend(room="lobby", text="hi from B"))
    await settle()
    assert [f.room_message.text for f in alice.of_kind("room_message") if f.room_message.type == 1] == ["hi from B"]
    members = (await a.call(alice, room_members=pb.RoomMembers(room="lobby"))).room
    assert sorted(members.members) == ["alice", "bob", "carol"]
    await b.service.end_session(carol.session)  # type: ignore[arg-type]
    await settle()
    members = (await a.call(alice, room_members=pb.RoomMembers(room="lobby"))).room
    assert sorted(members.members) == ["alice", "bob"]


async def test_admin_broadcast_reaches_sessions_on_other_nodes() -> None:
    (a, b), (la, lb), (fa, fb) = await shared_network(2)
    await b.register("bob", "b1")
    bob = await b.login("bob", "b2")
    await settle()
    template = pb.Message(id=99, timestamp=1, type=2, text="maintenance at noon")
    setattr(template, "from", "system")
    assert await fa.routing.broadcast(template) == 2
    (got,) = bob.messages()
    assert got.to == "bob" and got.text == "maintenance at noon"
    assert fa.stats["push_out_broadcast"] == 1 and fb.stats["push_in_broadcast"] == 1


async def test_forward_of_unknown_op_is_refused() -> None:
    (a, b), (la, lb), (fa, fb) = await shared_network(2)
    frame = pb.ClientFrame(send=pb.Send(to="x", text="y"))
    forward = fed.Forward(user="u", device="d", frame=frame.SerializeToString())
    reply = await fb.routing.serve_forward(la.local_peer, forward)
    assert reply.status == fed.FedReply.BAD_REQUEST
