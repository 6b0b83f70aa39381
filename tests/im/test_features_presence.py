"""Rich presence, invisibility, offline notices, blocks and typing (im/presence.py), in process."""

from __future__ import annotations

from im import client_pb2 as pb
from im.features import FeatureOptions
from tests.im.harness import FakeConnection, Harness


def _presences(conn: FakeConnection) -> list[pb.Presence]:
    return [p.presence for p in conn.of_kind("presence")]


async def _befriend(h: Harness, a: FakeConnection, b: FakeConnection, b_name: str, a_name: str) -> None:
    await h.call(a, friend=pb.Friend(user=b_name, action=pb.FRIEND_REQUEST))
    await h.call(b, friend=pb.Friend(user=a_name, action=pb.FRIEND_ACCEPT))


async def test_status_text_and_fields_are_broadcast_to_watchers_and_friends() -> None:
    h = await Harness.create()
    alice, bob, carol = await h.register("alice"), await h.register("bob"), await h.register("carol")
    await _befriend(h, alice, bob, "bob", "alice")
    await h.call(carol, subscribe=pb.Subscribe(users=["alice"]))
    req = pb.SetPresence(status=pb.AWAY, text="lunch", fields={"mood": "hungry"})
    reply = await h.call(alice, set_presence=req)
    [own] = reply.presences.presences
    assert (own.status, own.text, dict(own.fields), own.online) == (pb.AWAY, "lunch", {"mood": "hungry"}, True)
    for conn in (bob, carol):  # a friend without subscribing, and a watcher
        seen = _presences(conn)[-1]
        assert (seen.user, seen.online, seen.status, seen.text) == ("alice", True, pb.AWAY, "lunch")
    # kept across logins
    await h.service.end_session(alice.session)  # type: ignore[arg-type]
    again = await h.login("alice", "d9")
    [p] = (await h.call(bob, subscribe=pb.Subscribe(users=["alice"]))).presences.presences
    assert (p.status, p.text) == (pb.AWAY, "lunch") and again.session is not None


async def test_invisible_appears_offline_but_still_receives() -> None:
    h = await Harness.create()
    alice, bob = await h.register("alice"), await h.register("bob")
    await h.call(bob, subscribe=pb.Subscribe(users=["alice"]))
    await h.call(alice, set_presence=pb.SetPresence(status=pb.INVISIBLE))
    assert not _presences(bob)[-1].online
    [p] = (await h.call(bob, subscribe=pb.Subscribe(users=["alice"]))).presences.presences
    assert p == pb.Presence(user="alice")
    await h.send(bob, "alice", "are you there?")
    assert alice.messages()[-1].text == "are you there?"
    # logging in again while invisible announces nothing
    bob.pushes.clear()
    await h.login("alice", "d2")
    assert _presences(bob) == []
    await h.call(alice, set_presence=pb.SetPresence(status=pb.AVAILABLE))
    assert _presences(bob)[-1].online and _presences(bob)[-1].devices == 2


async def test_offline_notice_can_be_turned_off() -> None:
    for notice, expected in ((True, 1), (False, 0)):
        h = await Harness.create(features=FeatureOptions(offline_notice=notice))
        alice, bob = await h.register("alice"), await h.register("bob")
        await h.call(bob, subscribe=pb.Subscribe(users=["alice"]))
        await h.service.end_session(alice.session)  # type: ignore[arg-type]
        assert len([p for p in _presences(bob) if not p.online]) == expected


async def test_blocked_users_see_offline_and_cannot_subscribe() -> None:
    h = await Harness.create()
    alice, bob = await h.register("alice"), await h.register("bob")
    await h.call(bob, subscribe=pb.Subscribe(users=["alice"]))
    await h.call(alice, block=pb.Block(user="bob"))
    assert _presences(bob)[-1] == pb.Presence(user="alice")
    [p] = (await h.call(bob, subscribe=pb.Subscribe(users=["alice"]))).presences.presences
    assert p == pb.Presence(user="alice")
    bob.pushes.clear()
    await h.call(alice, set_presence=pb.SetPresence(status=pb.BUSY))
    await h.login("alice", "d2")
    assert _presences(bob) == []


async def test_typing_is_pushed_not_stored() -> None:
    h = await Harness.create()
    alice, bob = await h.register("alice"), await h.register("bob")
    assert (await h.call(alice, typing=pb.Typing(to="bob", active=True))).WhichOneof("body") == "ok"
    [notice] = [p.typing for p in bob.of_kind("typing")]
    assert (notice.user, notice.to, notice.active, notice.ttl_ms) == ("alice", "bob", True, 10_000)
    await h.call(alice, typing=pb.Typing(to="bob", active=False))
    assert not bob.of_kind("typing")[-1].typing.active
    assert (await h.call(bob, sync=pb.Sync())).page.messages == []
    assert (await h.error(alice, typing=pb.Typing(to="", active=True))).code == pb.BAD_REQUEST


async def test_presence_validation() -> None:
    h = await Harness.create()
    alice = await h.register("alice")
    assert (await h.error(alice, set_presence=pb.SetPresence(text="x" * 257))).code == pb.TOO_LARGE
    assert (await h.error(alice, set_presence=pb.SetPresence(status=9))).code == pb.BAD_REQUEST  # type: ignore[arg-type]
