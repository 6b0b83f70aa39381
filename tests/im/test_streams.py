"""Stream data: to users and rooms, publish rights, and drop-oldest under backpressure."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest
from websockets.protocol import State

from im import client_pb2 as pb
from im.gateway import Outbox
from im.metrics import ImMetrics
from im.spaces import Spaces
from im.streams import StreamQueue
from node.metrics import Counter
from tests.im.spaces_helpers import code, make, users


def streams(conn: object) -> list[pb.StreamFrame]:
    return [p.stream for p in conn.of_kind("stream")]  # type: ignore[attr-defined]


async def test_stream_to_a_user_and_to_a_room() -> None:
    h = await make()
    alice, bob, carol = await users(h, "alice", "bob", "carol")
    sent = (await h.call(alice, stream_send=pb.StreamSend(to="bob", seq=1, data=b"\x00\x01", channel=2))).sent
    assert sent.delivered_devices == 1 and sent.message_id == 0
    [frame] = streams(bob)
    assert (getattr(frame, "from"), frame.to, frame.seq, frame.data, frame.channel) == (
        "alice",
        "bob",
        1,
        b"\x00\x01",
        2,
    )
    await h.call(alice, room_create=pb.RoomCreate(room="tv"))
    await h.call(bob, room_join=pb.RoomJoin(room="tv"))
    await h.call(carol, room_join=pb.RoomJoin(room="tv"))
    sent = (await h.call(alice, stream_send=pb.StreamSend(room="tv", seq=7, data=b"frame"))).sent
    assert sent.delivered_devices == 2
    assert [f.room for f in streams(carol)] == ["tv"]
    rows = await h.store.scan(b"", b"\xff" * 64, limit=10**6)
    assert not [v for _, v in rows if b"frame" in v]  # never stored


async def test_publish_rights_per_room() -> None:
    h = await make()
    alice, bob, carol, dave = await users(h, "alice", "bob", "carol", "dave")
    await h.call(alice, room_create=pb.RoomCreate(room="show", publish=pb.PUBLISH_OWNER))
    for c in (bob, carol):
        await h.call(c, room_join=pb.RoomJoin(room="show"))
    assert await code(h, bob, stream_send=pb.StreamSend(room="show", data=b"x")) == "FORBIDDEN"
    assert await code(h, alice, stream_send=pb.StreamSend(room="show", data=b"x")) == "OK"
    await h.call(alice, room_publishers=pb.RoomPublishers(room="show", publish=pb.PUBLISH_LISTED, add=["bob"]))
    assert await code(h, bob, stream_send=pb.StreamSend(room="show", data=b"x")) == "OK"
    assert await code(h, carol, stream_send=pb.StreamSend(room="show", data=b"x")) == "FORBIDDEN"
    await h.call(alice, room_publishers=pb.RoomPublishers(room="show", remove=["bob"]))
    assert await code(h, bob, stream_send=pb.StreamSend(room="show", data=b"x")) == "FORBIDDEN"
    assert await code(h, dave, stream_send=pb.StreamSend(room="show", data=b"x")) == "NOT_A_MEMBER"
    assert streams(dave) == []


async def test_bad_stream_input() -> None:
    h = await make()
    alice, bob = await users(h, "alice", "bob")
    assert await code(h, alice, stream_send=pb.StreamSend(data=b"x")) == "BAD_REQUEST"
    assert await code(h, alice, stream_send=pb.StreamSend(to="bad name", data=b"x")) == "BAD_REQUEST"
    assert await code(h, alice, stream_send=pb.StreamSend(to="bob", data=b"x" * 20000)) == "TOO_LARGE"
    await h.call(bob, block=pb.Block(user="alice"))
    assert await code(h, alice, stream_send=pb.StreamSend(to="bob", data=b"x")) == "BLOCKED"
    assert streams(bob) == []


def test_stream_queue_drops_oldest() -> None:
    q: StreamQueue[int] = StreamQueue(3)
    assert [q.offer(i) for i in range(5)] == [0, 0, 0, 1, 1]
    assert q.take_all() == [2, 3, 4] and q.dropped == 2 and len(q) == 0


class _FakeProtocol:
    state = State.OPEN

    def data_to_send(self) -> list[bytes]:
        return []


class _PausedWs:
    """A connection whose transport is over its high-water mark until ``resume``."""

    def __init__(self) -> None:
        self.protocol = _FakeProtocol()
        self.paused = True
        self.written: list[bytes] = []
        self.transport = SimpleNamespace(write=self.written.append)
        self._resumed = asyncio.Event()

    async def drain(self) -> None:
        await self._resumed.wait()

    def resume(self) -> None:
        self.paused = False
        self._resumed.set()


async def test_outbox_drops_oldest_stream_frames_under_backpressure_and_keeps_reliable_ones() -> None:
    ws = _PausedWs()
    dropped = Counter()
    outbox = Outbox(ws, 100, Counter(), stream_limit=8, dropped=dropped)  # type: ignore[arg-type]
    outbox.put(b"reliable-1")
    for i in range(1000):
        outbox.put_stream(f"s{i}".encode())
    outbox.put(b"reliable-2")
    await asyncio.sleep(0)
    assert len(outbox._streams) == 8 and dropped.value == 992  # memory stays bounded
    ws.resume()
    for _ in range(3):
        await asyncio.sleep(0)
    newest = [f"s{i}".encode() for i in range(992, 1000)]  # the newest survive
    assert ws.written == [b"".join([b"reliable-1", b"reliable-2", *newest])]  # one write, reliable first


async def test_outbox_is_bounded_by_bytes_but_one_frame_always_fits() -> None:
    outbox = Outbox(_PausedWs(), 100, Counter(), limit_bytes=1000)  # type: ignore[arg-type]
    assert outbox.put(b"x" * 5000)  # alone: a large sync page must go
    assert not outbox.put(b"y")  # the client is not reading: full
    outbox.clear()
    assert outbox.put(b"a" * 600) and not outbox.put(b"b" * 600) and outbox.put(b"c" * 400)
    assert outbox.put(b"kicked", last=True)  # the frame before a close goes even when full


async def test_dropped_counter_is_exported() -> None:
    h = await make()
    registry = CollectorRegistry()
    spaces = Spaces(
        messenger=h.messenger, accounts=h.accounts, registry=h.registry, now=h.clock.now, now_ms=h.clock.now_ms,
        metrics=ImMetrics(registry), check_send=h.service.features.before_send,
        check_user=h.service.features.roster.check_send,
    )  # fmt: skip
    spaces.streams.dropped.inc(3)
    assert "timnode_stream_frames_dropped_total 3.0" in generate_latest(registry).decode()
