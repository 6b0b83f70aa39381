"""Read markers, read receipts and unread counts (im/receipts.py), in process."""

from __future__ import annotations

from im import client_pb2 as pb
from tests.im.harness import Harness


async def test_read_marker_moves_forward_only_and_reaches_both_parties() -> None:
    h = await Harness.create()
    alice, bob = await h.register("alice"), await h.register("bob")
    bob2 = await h.login("bob", "d2")
    ids = [(await h.send(alice, "bob", f"m{i}")).message_id for i in range(3)]
    alice.pushes.clear()
    bob2.pushes.clear()
    reply = await h.call(bob, read=pb.Read(conversation="alice", up_to=ids[1]))
    assert reply.sent.message_id and not reply.sent.duplicate
    for conn in (alice, bob2):
        [event] = conn.messages()
        assert (event.type, event.ref, getattr(event, "from"), event.to) == (pb.TYPE_READ, ids[1], "bob", "alice")
    assert (await h.call(bob, read=pb.Read(conversation="alice", up_to=ids[0]))).sent.duplicate
    assert (await h.call(bob, read=pb.Read(conversation="alice", up_to=ids[1]))).sent.duplicate
    assert (await h.error(bob, read=pb.Read(conversation="#group", up_to=1))).code == pb.BAD_REQUEST
    assert (await h.error(bob, read=pb.Read(conversation="alice"))).code == pb.BAD_REQUEST


async def test_unread_counts_per_conversation_on_sync() -> None:
    h = await Harness.create()
    alice, bob, carol = await h.register("alice"), await h.register("bob"), await h.register("carol")
    a = [(await h.send(alice, "bob", f"a{i}")).message_id for i in range(3)]
    c = [(await h.send(carol, "bob", f"c{i}")).message_id for i in range(2)]
    await h.send(bob, "alice", "mine do not count")
    await h.call(bob, read=pb.Read(conversation="alice", up_to=a[0]))
    recalled = (await h.call(carol, recall=pb.Recall(message_id=c[0]))).sent
    page = (await h.call(bob, sync=pb.Sync(unread=True))).page
    counts = {u.conversation: (u.count, u.read_up_to, u.last_id) for u in page.unread}
    assert counts == {"alice": (2, a[0], a[2]), "carol": (1, 0, c[1])}
    assert recalled.message_id
    assert not (await h.call(bob, sync=pb.Sync())).page.unread  # only when asked
    await h.call(bob, read=pb.Read(conversation="carol", up_to=c[1]))
    page = (await h.call(bob, sync=pb.Sync(after=2**64 - 1, unread=True))).page
    assert [u.conversation for u in page.unread] == ["alice"] and not page.messages
