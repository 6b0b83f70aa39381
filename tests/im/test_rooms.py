"""Rooms (N:N, ephemeral), in process: create/join/leave/members, pushes, expiry, floods."""

from __future__ import annotations

from im import client_pb2 as pb
from tests.im.spaces_helpers import code, make, users


def room_pushes(conn: object) -> list[pb.Message]:
    return [p.room_message for p in conn.of_kind("room_message")]  # type: ignore[attr-defined]


async def test_create_join_send_leave() -> None:
    h = await make()
    alice, bob, carol = await users(h, "alice", "bob", "carol")
    info = (await h.call(alice, room_create=pb.RoomCreate(room="live-1"))).room
    assert (info.room, info.owner, list(info.members)) == ("live-1", "alice", ["alice"])
    assert await code(h, bob, room_create=pb.RoomCreate(room="live-1")) == "CONFLICT"
    info = (await h.call(bob, room_join=pb.RoomJoin(room="live-1"))).room
    assert info.member_count == 2
    assert [(m.type, m.ext["user"]) for m in room_pushes(alice)] == [(pb.TYPE_ROOM_JOINED, "bob")]
    sent = (await h.call(alice, room_send=pb.RoomSend(room="live-1", text="hi room"))).sent
    assert sent.delivered_devices == 1 and sent.message_id
    assert [m.text for m in room_pushes(bob)] == ["hi room"] and room_pushes(bob)[0].room == "live-1"
    # not stored anywhere: no group log, no inbox rows for room messages
    rows = await h.store.scan(b"", b"\xff" * 64, limit=10**6)
    assert not [v for _, v in rows if b"hi room" in v]
    # non-members: no messages, no member list, nothing pushed
    assert await code(h, carol, room_send=pb.RoomSend(room="live-1", text="x")) == "NOT_A_MEMBER"
    assert await code(h, carol, room_members=pb.RoomMembers(room="live-1")) == "NOT_A_MEMBER"
    assert await code(h, carol, room_leave=pb.RoomLeave(room="live-1")) == "NOT_A_MEMBER"
    assert carol.pushes == []
    await h.call(bob, room_leave=pb.RoomLeave(room="live-1"))
    assert room_pushes(alice)[-1].ext["left"] == "1"
    assert list((await h.call(alice, room_members=pb.RoomMembers(room="live-1"))).room.members) == ["alice"]


async def test_members_on_several_devices_count_once() -> None:
    h = await make()
    alice, bob = await users(h, "alice", "bob")
    bob2 = await h.login("bob", "d2")
    await h.call(alice, room_create=pb.RoomCreate(room="r"))
    await h.call(bob, room_join=pb.RoomJoin(room="r"))
    await h.call(bob2, room_join=pb.RoomJoin(room="r"))
    assert len(room_pushes(alice)) == 1  # bob joined once
    info = (await h.call(alice, room_members=pb.RoomMembers(room="r"))).room
    assert info.member_count == 2
    sent = (await h.call(alice, room_send=pb.RoomSend(room="r", text="x"))).sent
    assert sent.delivered_devices == 2


async def test_empty_room_expires_after_grace_and_closed_sessions_leave() -> None:
    h = await make(room_grace=30.0)
    alice, bob = await users(h, "alice", "bob")
    rooms = h.service.spaces.rooms
    await h.call(alice, room_create=pb.RoomCreate(room="r", publish=pb.PUBLISH_LISTED, publishers=["bob"]))
    await h.service.end_session(alice.session)  # type: ignore[arg-type]
    assert "r" in rooms.rooms and rooms.next_expiry() == h.clock.t + 30.0
    h.clock.t += 10
    await h.call(bob, room_join=pb.RoomJoin(room="r"))  # rejoined within the grace: kept
    assert rooms.expire_due(h.clock.t + 100) == []
    assert (await h.call(bob, room_members=pb.RoomMembers(room="r"))).room.publishers == ["bob"]
    await h.call(bob, room_leave=pb.RoomLeave(room="r"))
    assert rooms.expire_due(h.clock.t + 29.9) == []
    assert rooms.expire_due(h.clock.t + 30.0) == ["r"]
    assert await code(h, bob, room_join=pb.RoomJoin(room="r")) == "NOT_FOUND"
    assert rooms.next_expiry() is None


async def test_room_flood_is_rate_limited() -> None:
    h = await make()
    alice, bob = await users(h, "alice", "bob")
    await h.call(alice, room_create=pb.RoomCreate(room="r"))
    await h.call(bob, room_join=pb.RoomJoin(room="r"))
    results = [await code(h, alice, room_send=pb.RoomSend(room="r", text="spam")) for _ in range(60)]
    assert results.count("OK") == 40 and results[-1] == "RATE_LIMITED"
    err = await h.error(alice, room_send=pb.RoomSend(room="r", text="spam"))
    assert err.retry_after > 0
    h.clock.t += 1.0
    assert await code(h, alice, room_send=pb.RoomSend(room="r", text="later")) == "OK"
    assert len(room_pushes(bob)) == 41


async def test_bad_room_input() -> None:
    h = await make()
    (alice,) = await users(h, "alice")
    assert await code(h, alice, room_create=pb.RoomCreate(room="bad name")) == "BAD_REQUEST"
    assert await code(h, alice, room_join=pb.RoomJoin(room="nope")) == "NOT_FOUND"
    assert await code(h, alice, room_join=pb.RoomJoin(room="")) == "BAD_REQUEST"
    info = (await h.call(alice, room_create=pb.RoomCreate())).room
    assert info.room.startswith("r")
    assert await code(h, alice, room_send=pb.RoomSend(room=info.room, text="x" * 20000)) == "TOO_LARGE"
    assert await code(h, alice, room_send=pb.RoomSend(room=info.room, text="x", type=3)) == "BAD_REQUEST"
    (bob,) = await users(h, "bob")
    await h.call(bob, room_join=pb.RoomJoin(room=info.room))
    assert await code(h, bob, room_publishers=pb.RoomPublishers(room=info.room, add=["bob"])) == "FORBIDDEN"
