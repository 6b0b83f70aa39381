"""Recall, edit and burn after reading (im/amend.py), in process."""

from __future__ import annotations

from im import client_pb2 as pb
from im.features import FeatureOptions
from tests.im.harness import FakeConnection, Harness


async def _pair(h: Harness) -> tuple[FakeConnection, FakeConnection, FakeConnection]:
    alice = await h.register("alice")
    alice2 = await h.login("alice", "d2")
    bob = await h.register("bob")
    return alice, alice2, bob


async def _sync(h: Harness, conn: FakeConnection, after: int = 0) -> list[pb.Message]:
    return list((await h.call(conn, sync=pb.Sync(after=after))).page.messages)


async def _history(h: Harness, conn: FakeConnection, peer: str) -> list[pb.Message]:
    return list((await h.call(conn, history=pb.History(peer=peer))).page.messages)


async def test_recall_blanks_every_copy_and_reaches_all_devices() -> None:
    h = await Harness.create()
    alice, alice2, bob = await _pair(h)
    sent = await h.send(alice, "bob", "oops", cmid="c1")
    bob.pushes.clear()
    alice2.pushes.clear()
    reply = await h.call(alice, recall=pb.Recall(message_id=sent.message_id))
    assert reply.sent.message_id > sent.message_id
    for conn in (bob, alice2):
        [event] = conn.messages()
        assert (event.type, event.ref, getattr(event, "from"), event.to) == (
            pb.TYPE_RECALL,
            sent.message_id,
            "alice",
            "bob",
        )
    assert alice.messages() == []  # the acting device has its response
    [kept] = await _history(h, bob, "alice")
    assert kept.recalled and kept.WhichOneof("body") is None and kept.id == sent.message_id
    # a device syncing later replays message (blank) then the recall event, in order
    late = await h.login("bob", "late")
    synced = await _sync(h, late)
    assert [(m.id, m.type, m.recalled) for m in synced] == [
        (sent.message_id, 1, True),
        (reply.sent.message_id, pb.TYPE_RECALL, False),
    ]
    again = await h.call(alice, recall=pb.Recall(message_id=sent.message_id))
    assert again.sent.duplicate


async def test_recall_rules_window_sender_only_and_unknown() -> None:
    h = await Harness.create(features=FeatureOptions(recall_window=120))
    alice, _, bob = await _pair(h)
    sent = await h.send(alice, "bob", "hello")
    assert (await h.error(bob, recall=pb.Recall(message_id=sent.message_id))).code == pb.NOT_FOUND
    assert (await h.error(alice, recall=pb.Recall(message_id=12345))).code == pb.NOT_FOUND
    h.clock.t += 121
    err = await h.error(alice, recall=pb.Recall(message_id=sent.message_id))
    assert err.code == pb.RECALL_WINDOW_EXPIRED


async def test_recall_window_zero_means_no_limit() -> None:
    h = await Harness.create(features=FeatureOptions(recall_window=0))
    alice, _, _ = await _pair(h)
    sent = await h.send(alice, "bob", "old")
    h.clock.t += 10 * 86400
    assert (await h.call(alice, recall=pb.Recall(message_id=sent.message_id))).sent.message_id


async def test_edit_replaces_text_everywhere_and_history_has_latest() -> None:
    h = await Harness.create()
    alice, alice2, bob = await _pair(h)
    sent = await h.send(alice, "bob", "helo")
    bob.pushes.clear()
    h.clock.t += 5
    reply = await h.call(alice, edit=pb.Edit(message_id=sent.message_id, text="hello"))
    [event] = bob.messages()
    assert (event.type, event.ref, event.text) == (pb.TYPE_EDIT, sent.message_id, "hello") and event.edited_at
    assert alice2.messages()[-1].id == reply.sent.message_id
    for conn, peer in ((bob, "alice"), (alice, "bob")):
        [latest] = await _history(h, conn, peer)
        assert (latest.text, latest.id, latest.edited_at) == ("hello", sent.message_id, event.edited_at)
    synced = await _sync(h, bob)
    assert [m.text for m in synced] == ["hello", "hello"] and synced[1].type == pb.TYPE_EDIT


async def test_edit_rules() -> None:
    h = await Harness.create(features=FeatureOptions(edit_window=60, max_body=10))
    alice, _, bob = await _pair(h)
    sent = await h.send(alice, "bob", "text")
    data = (await h.call(alice, send=pb.Send(to="bob", data=b"\x00"))).sent
    assert (await h.error(bob, edit=pb.Edit(message_id=sent.message_id, text="x"))).code == pb.NOT_FOUND
    assert (await h.error(alice, edit=pb.Edit(message_id=data.message_id, text="x"))).code == pb.BAD_REQUEST
    assert (await h.error(alice, edit=pb.Edit(message_id=sent.message_id, text="x" * 11))).code == pb.TOO_LARGE
    h.clock.t += 61
    assert (await h.error(alice, edit=pb.Edit(message_id=sent.message_id, text="x"))).code == pb.EDIT_WINDOW_EXPIRED


async def test_edit_of_a_recalled_message_is_refused() -> None:
    h = await Harness.create()
    alice, _, _ = await _pair(h)
    sent = await h.send(alice, "bob", "gone")
    await h.call(alice, recall=pb.Recall(message_id=sent.message_id))
    assert (await h.error(alice, edit=pb.Edit(message_id=sent.message_id, text="x"))).code == pb.NOT_FOUND


async def test_burn_at_once_deletes_everywhere_and_tells_the_sender() -> None:
    h = await Harness.create()
    alice, _, bob = await _pair(h)
    sent = (await h.call(alice, send=pb.Send(to="bob", text="secret", burn=True))).sent
    [pushed] = bob.messages()
    assert pushed.burn and pushed.text == "secret"
    alice.pushes.clear()
    reply = await h.call(bob, burn=pb.Burn(message_id=sent.message_id))
    [event] = alice.messages()
    assert (event.type, event.ref, getattr(event, "from"), event.to) == (pb.TYPE_BURN, sent.message_id, "bob", "alice")
    assert event.burn_at == event.timestamp and reply.sent.message_id == event.id
    assert await _history(h, alice, "bob") == [] and await _history(h, bob, "alice") == []
    assert [m.type for m in await _sync(h, bob)] == [pb.TYPE_BURN]
    assert (await h.error(bob, burn=pb.Burn(message_id=sent.message_id))).code == pb.NOT_FOUND


async def test_burn_with_timer_hides_after_the_time_and_deletes() -> None:
    h = await Harness.create()
    alice, _, bob = await _pair(h)
    sent = (await h.call(alice, send=pb.Send(to="bob", text="10 s", burn=True, burn_seconds=10))).sent
    reply = await h.call(bob, burn=pb.Burn(message_id=sent.message_id))
    assert reply.sent.message_id
    assert (await h.call(bob, burn=pb.Burn(message_id=sent.message_id))).sent.duplicate
    [still] = await _history(h, alice, "bob")
    assert still.burn_at == h.clock.now_ms() + 10_000
    h.clock.t += 10
    assert await _history(h, alice, "bob") == []  # hidden once due, even before deletion
    assert await h.features.amend.expire_due() == 1
    assert h.features.amend.next_due() is None
    assert [m.type for m in await _sync(h, bob)] == [pb.TYPE_BURN]


async def test_burn_rules() -> None:
    h = await Harness.create()
    alice, _, bob = await _pair(h)
    plain = await h.send(alice, "bob", "plain")
    assert (await h.error(bob, burn=pb.Burn(message_id=plain.message_id))).code == pb.BAD_REQUEST
    burn = (await h.call(alice, send=pb.Send(to="bob", text="x", burn=True))).sent
    assert (await h.error(alice, burn=pb.Burn(message_id=burn.message_id))).code == pb.NOT_FOUND  # sender
    err = await h.error(alice, send=pb.Send(to="bob", text="x", burn_seconds=5))
    assert err.code == pb.BAD_REQUEST


async def test_clients_cannot_send_engine_types_and_events_are_not_acked_as_messages() -> None:
    h = await Harness.create()
    alice, _, bob = await _pair(h)
    assert (await h.error(alice, send=pb.Send(to="bob", type=pb.TYPE_RECALL, text="x"))).code == pb.BAD_REQUEST
    sent = await h.send(alice, "bob", "hi")
    recall = (await h.call(alice, recall=pb.Recall(message_id=sent.message_id))).sent
    alice.pushes.clear()
    await h.call(bob, delivery_ack=pb.DeliveryAck(ids=[recall.message_id]))
    assert alice.of_kind("delivered") == []
