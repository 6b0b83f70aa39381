"""Friend requests, blocks and the stranger policy (im/roster.py), in process."""

from __future__ import annotations

from im import client_pb2 as pb
from im.features import FeatureOptions
from tests.im.harness import FakeConnection, Harness


async def _friend(h: Harness, conn: FakeConnection, user: str, action: int, text: str = "") -> pb.ServerFrame:
    return await h.call(conn, friend=pb.Friend(user=user, action=action, text=text))


async def _roster(h: Harness, conn: FakeConnection) -> pb.Roster:
    return (await h.call(conn, roster=pb.GetRoster())).roster


async def test_request_accept_is_mutual_and_told_to_both() -> None:
    h = await Harness.create()
    alice, bob = await h.register("alice"), await h.register("bob")
    await _friend(h, alice, "bob", pb.FRIEND_REQUEST, "hi, it's alice")
    [request] = bob.messages()
    assert (request.type, request.text, getattr(request, "from")) == (pb.TYPE_FRIEND_REQUEST, "hi, it's alice", "alice")
    [contact] = (await _roster(h, alice)).contacts
    assert (contact.user, contact.state) == ("bob", pb.REQUEST_SENT)
    [contact] = (await _roster(h, bob)).contacts
    assert (contact.user, contact.state, contact.text) == ("alice", pb.REQUEST_RECEIVED, "hi, it's alice")
    await _friend(h, bob, "alice", pb.FRIEND_ACCEPT)
    assert alice.messages()[-1].type == pb.TYPE_FRIEND_ACCEPTED
    for conn, peer in ((alice, "bob"), (bob, "alice")):
        [contact] = (await _roster(h, conn)).contacts
        assert (contact.user, contact.state) == (peer, pb.FRIEND)
    # a device syncing later sees the request and the acceptance
    late = await h.login("bob", "late")
    synced = (await h.call(late, sync=pb.Sync())).page.messages
    assert [m.type for m in synced] == [pb.TYPE_FRIEND_REQUEST, pb.TYPE_FRIEND_ACCEPTED]


async def test_asking_back_accepts_reject_and_remove() -> None:
    h = await Harness.create()
    alice, bob = await h.register("alice"), await h.register("bob")
    await _friend(h, alice, "bob", pb.FRIEND_REQUEST)
    await _friend(h, bob, "alice", pb.FRIEND_REQUEST)
    assert [c.state for c in (await _roster(h, alice)).contacts] == [pb.FRIEND]
    await _friend(h, alice, "bob", pb.FRIEND_REMOVE)
    assert bob.messages()[-1].type == pb.TYPE_FRIEND_REMOVED
    assert not (await _roster(h, bob)).contacts
    await _friend(h, alice, "bob", pb.FRIEND_REQUEST)
    await _friend(h, bob, "alice", pb.FRIEND_REJECT)
    assert alice.messages()[-1].type == pb.TYPE_FRIEND_REJECTED
    assert not (await _roster(h, alice)).contacts
    err = await h.error(bob, friend=pb.Friend(user="alice", action=pb.FRIEND_ACCEPT))
    assert err.code == pb.NOT_FOUND


async def test_friend_request_errors() -> None:
    h = await Harness.create()
    alice = await h.register("alice")
    assert (await h.error(alice, friend=pb.Friend(user="nobody", action=pb.FRIEND_REQUEST))).code == pb.NOT_FOUND
    assert (await h.error(alice, friend=pb.Friend(user="alice", action=pb.FRIEND_REQUEST))).code == pb.BAD_REQUEST
    await h.register("bob")
    assert (await h.error(alice, friend=pb.Friend(user="bob"))).code == pb.BAD_REQUEST
    err = await h.error(alice, friend=pb.Friend(user="bob", action=pb.FRIEND_REQUEST, text="x" * 300))
    assert err.code == pb.TOO_LARGE


async def test_block_stops_messages_requests_and_typing_until_unblock() -> None:
    h = await Harness.create()
    alice, bob = await h.register("alice"), await h.register("bob")
    await _friend(h, alice, "bob", pb.FRIEND_REQUEST)
    await _friend(h, bob, "alice", pb.FRIEND_ACCEPT)
    bob.pushes.clear()
    await h.call(alice, block=pb.Block(user="bob"))
    assert bob.messages() == []  # the blocked user is not told
    assert (await _roster(h, alice)).blocked == ["bob"] and not (await _roster(h, alice)).contacts
    assert not (await _roster(h, bob)).contacts  # the friendship ended
    for conn, to in ((bob, "alice"), (alice, "bob")):
        assert (await h.error(conn, send=pb.Send(to=to, text="hi"))).code == pb.BLOCKED
    assert (await h.error(bob, friend=pb.Friend(user="alice", action=pb.FRIEND_REQUEST))).code == pb.BLOCKED
    assert (await h.error(bob, typing=pb.Typing(to="alice", active=True))).code == pb.BLOCKED
    await h.call(alice, unblock=pb.Unblock(user="bob"))
    assert (await h.send(bob, "alice", "friends again?")).message_id
    assert not (await _roster(h, alice)).blocked


async def test_friends_only_policy() -> None:
    h = await Harness.create(features=FeatureOptions(stranger_policy="friends-only"))
    alice, bob = await h.register("alice"), await h.register("bob")
    assert (await h.error(alice, send=pb.Send(to="bob", text="hi"))).code == pb.NOT_FRIENDS
    assert (await h.error(alice, send=pb.Send(to="ghost", text="hi"))).code == pb.NOT_FOUND
    assert (await h.send(alice, "alice", "note to self")).message_id
    await _friend(h, alice, "bob", pb.FRIEND_REQUEST, "may I?")
    await _friend(h, bob, "alice", pb.FRIEND_ACCEPT)
    assert (await h.send(alice, "bob", "hi")).message_id


async def test_send_check_reads_the_store_once_per_user() -> None:
    h = await Harness.create()
    alice, _ = await h.register("alice"), await h.register("bob")
    await h.send(alice, "bob", "first")  # relations are loaded (at login or on this first send)
    scans = 0
    real_scan = h.store.scan

    async def counting_scan(*args: object, **kwargs: object) -> list[tuple[bytes, bytes]]:
        nonlocal scans
        scans += 1
        return await real_scan(*args, **kwargs)  # type: ignore[arg-type]

    h.store.scan = counting_scan  # type: ignore[method-assign]
    for i in range(5):
        await h.send(alice, "bob", f"m{i}")
    assert scans == 0  # cached: no store read on the send path
