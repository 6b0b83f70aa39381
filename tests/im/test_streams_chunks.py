"""Chunked payloads: reassembly for 1:1, group and room sends; limits; timeouts; memory."""

from __future__ import annotations

from im import client_pb2 as pb
from tests.im.harness import FakeConnection, Harness
from tests.im.spaces_helpers import code, create, group_pushes, gsync, make, users


async def upload(h: Harness, conn: FakeConnection, start: pb.ChunkStart, body: bytes, piece: int) -> pb.ServerFrame:
    start.size = len(body)
    await h.call(conn, chunk_start=start)
    for offset in range(0, len(body), piece):
        await h.call(conn, chunk=pb.Chunk(upload=start.upload, offset=offset, data=body[offset : offset + piece]))
    return await h.call(conn, chunk_end=pb.ChunkEnd(upload=start.upload))


async def test_a_large_text_message_is_reassembled_and_delivered_whole() -> None:
    h = await make(max_payload=200_000)
    alice, bob = await users(h, "alice", "bob")
    text = "ü" * 50_000  # 100,000 bytes: far over the one-frame body limit
    start = pb.ChunkStart(upload="u1", text=True, send=pb.Send(to="bob", client_msg_id="big-1"))
    sent = (await upload(h, alice, start, text.encode(), 16_000)).sent
    assert sent.message_id and not sent.duplicate
    [message] = bob.messages()
    assert message.text == text
    page = (await h.call(bob, sync=pb.Sync())).page
    assert page.messages[-1].text == text
    assert h.service.spaces.chunks.reserved == 0 and h.service.spaces.chunks.open_uploads() == 0


async def test_group_and_room_uploads() -> None:
    h = await make(max_payload=100_000)
    alice, bob = await users(h, "alice", "bob")
    g = await create(h, alice, "bob")
    blob = bytes(range(256)) * 200
    sent = (await upload(h, alice, pb.ChunkStart(upload="g", group_send=pb.GroupSend(group=g)), blob, 10_000)).sent
    assert sent.seq == 2 and group_pushes(bob)[-1].data == blob
    assert (await gsync(h, bob, g, 1)).messages[0].data == blob
    await h.call(alice, room_create=pb.RoomCreate(room="r"))
    await h.call(bob, room_join=pb.RoomJoin(room="r"))
    await upload(h, alice, pb.ChunkStart(upload="r", room_send=pb.RoomSend(room="r")), blob, 10_000)
    assert bob.of_kind("room_message")[-1].room_message.data == blob


async def test_limits_and_bad_uploads() -> None:
    h = await make(max_payload=50_000)
    alice, bob = await users(h, "alice", "bob")
    send = pb.Send(to="bob")
    assert await code(h, alice, chunk_start=pb.ChunkStart(upload="a", size=50_001, send=send)) == "TOO_LARGE"
    assert await code(h, alice, chunk_start=pb.ChunkStart(upload="a", size=10)) == "BAD_REQUEST"  # no template
    assert await code(h, alice, chunk_start=pb.ChunkStart(upload="bad id!", size=10, send=send)) == "BAD_REQUEST"
    assert await code(h, alice, chunk=pb.Chunk(upload="nope", data=b"x")) == "UPLOAD_UNKNOWN"
    assert await code(h, alice, chunk_end=pb.ChunkEnd(upload="nope")) == "UPLOAD_UNKNOWN"
    await h.call(alice, chunk_start=pb.ChunkStart(upload="a", size=10, send=send))
    assert await code(h, alice, chunk_start=pb.ChunkStart(upload="a", size=10, send=send)) == "CONFLICT"
    assert await code(h, alice, chunk=pb.Chunk(upload="a", offset=5, data=b"x")) == "BAD_REQUEST"
    await h.call(alice, chunk=pb.Chunk(upload="a", data=b"12345"))
    assert await code(h, alice, chunk_end=pb.ChunkEnd(upload="a")) == "BAD_REQUEST"  # incomplete
    assert await code(h, alice, chunk=pb.Chunk(upload="a", offset=5, data=b"x" * 6)) == "TOO_LARGE"  # over declared
    assert await code(h, alice, chunk=pb.Chunk(upload="a", offset=5, data=b"x")) == "UPLOAD_UNKNOWN"  # dropped
    # bob's uploads are his: he cannot finish alice's
    await h.call(alice, chunk_start=pb.ChunkStart(upload="b", size=1, send=send))
    assert await code(h, bob, chunk_end=pb.ChunkEnd(upload="b")) == "UPLOAD_UNKNOWN"
    # text that is not UTF-8
    start = pb.ChunkStart(upload="t", size=2, text=True, send=send)
    await h.call(alice, chunk_start=start)
    await h.call(alice, chunk=pb.Chunk(upload="t", data=b"\xff\xfe"))
    assert await code(h, alice, chunk_end=pb.ChunkEnd(upload="t")) == "BAD_REQUEST"
    assert bob.messages() == []


async def test_idle_uploads_time_out_and_closed_sessions_free_memory() -> None:
    h = await make(max_payload=50_000)
    alice, bob = await users(h, "alice", "bob")
    chunks = h.service.spaces.chunks
    await h.call(alice, chunk_start=pb.ChunkStart(upload="a", size=40_000, send=pb.Send(to="bob")))
    await h.call(alice, chunk=pb.Chunk(upload="a", data=b"x" * 1000))
    assert chunks.reserved == 40_000
    h.clock.t += 31
    assert chunks.expire_due(h.clock.t) == 1 and chunks.reserved == 0
    assert await code(h, alice, chunk=pb.Chunk(upload="a", offset=1000, data=b"x")) == "UPLOAD_UNKNOWN"
    await h.call(bob, chunk_start=pb.ChunkStart(upload="b", size=40_000, send=pb.Send(to="alice")))
    await h.service.end_session(bob.session)  # type: ignore[arg-type]
    assert chunks.reserved == 0 and chunks.open_uploads() == 0
    for i in range(4):
        await h.call(alice, chunk_start=pb.ChunkStart(upload=f"m{i}", size=10, send=pb.Send(to="bob")))
    assert await code(h, alice, chunk_start=pb.ChunkStart(upload="m4", size=10, send=pb.Send(to="bob"))) == "TOO_LARGE"
