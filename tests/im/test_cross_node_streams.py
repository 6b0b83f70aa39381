"""Issue 7 across nodes (real node processes, ws links on 127.0.0.1, one shared SQLite store):
stream frames to a room with members on two nodes and to a user on another node (droppable
link messages), and a chunked group send from a node that is not the group's sequence owner."""

from __future__ import annotations

import asyncio
import pathlib
import urllib.request
from collections.abc import Callable

import pytest

from im import client_pb2 as pb
from im.client import GroupMessageEvent, StreamEvent
from im.fed_routing import group_key, room_key
from testnet.process import NodeProcess
from tests.im.test_cross_node import client, events, mesh, store_args
from tests.im.test_cross_node_features import owner_of, totals

pytestmark = pytest.mark.slow


def metric(node: NodeProcess, name: str) -> float:
    with urllib.request.urlopen(node.http_url + "/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def room_homed_on(nodes: list[NodeProcess], index: int) -> str:
    for i in range(200):
        if owner_of(nodes, room_key(f"live{i}")) == index:
            return f"live{i}"
    raise AssertionError("no room name homed there")


async def frames(member: object, n: int) -> list[pb.StreamFrame]:
    return [e.frame for e in await events(member, StreamEvent, n)]


async def room_streams(nodes: list[NodeProcess]) -> None:
    a, b = nodes
    room = room_homed_on(nodes, 0)  # the home is node A: node B's members get the home's PUSHes
    async with (
        client(a.url, "pia", "p1") as pia,
        client(b.url, "quinn", "q1") as quinn,
        client(b.url, "rae", "r1") as rae,
    ):
        await pia.create_room(room)
        await quinn.join_room(room)
        await rae.join_room(room)
        await asyncio.sleep(0.3)
        before = totals(nodes, "push_in_room")
        for seq in range(1, 6):
            sent = await pia.stream_send(bytes([seq]) * 100, room=room, seq=seq)
            assert sent.delivered_devices == 2
        for member in (quinn, rae):
            got = await frames(member, 5)
            assert [f.seq for f in got] == [1, 2, 3, 4, 5]
            assert all(getattr(f, "from") == "pia" and f.room == room for f in got)
        assert totals(nodes, "push_in_room")[1] - before[1] == 5  # one PUSH per frame for both members
        # a publisher on node B: forwarded to the home (A), pushed back to B's other member
        await quinn.stream_send(b"from-b", room=room, seq=7)
        (at_pia,) = await frames(pia, 1)
        (at_rae,) = await frames(rae, 1)
        assert at_pia.data == at_rae.data == b"from-b"
        # 1:1 stream data to a user on the other node
        before_stream = totals(nodes, "push_in_stream")
        sent = await pia.stream_send(b"direct", to="quinn", seq=9)
        assert sent.delivered_devices == 1
        (direct,) = await frames(quinn, 1)
        assert (direct.data, direct.to, direct.seq) == (b"direct", "quinn", 9)
        assert totals(nodes, "push_in_stream")[1] - before_stream[1] == 1
    assert metric(a, "timnode_stream_frames_dropped_total") == 0


async def chunked_group_send(nodes: list[NodeProcess]) -> None:
    async with client(nodes[0].url, "sam", "s1") as sam, client(nodes[1].url, "tess", "t1") as tess:
        await asyncio.sleep(0.3)
        info = await sam.create_group("chunks", ["tess"])
        for member in (sam, tess):
            await events(member, GroupMessageEvent, 1)  # the "created" notice
        owner = owner_of(nodes, group_key(info.group))
        other = tess if owner == 0 else sam  # a member on the node that is NOT the owner
        body = "x" * 50_000  # over one frame
        before = totals(nodes, "forward_out")
        sent = await other.send_large(pb.GroupSend(group=info.group), body, piece=16384)
        assert sent.seq == 2
        assert totals(nodes, "forward_out")[1 - owner] - before[1 - owner] >= 1
        assert (await sam.group_send(info.group, "after")).seq == 3
        assert (await tess.group_send(info.group, "and after")).seq == 4
        for member in (sam, tess):
            got = await events(member, GroupMessageEvent, 3)
            assert [(e.message.seq, len(e.message.text)) for e in got] == [(2, 50_000), (3, 5), (4, 9)]
        page = await tess.group_sync(info.group)
        assert [m.seq for m in page.messages] == [1, 2, 3, 4]


def test_streams_and_chunks_across_nodes(node_factory: Callable[..., NodeProcess], tmp_path: pathlib.Path) -> None:
    nodes = mesh(node_factory, 2, *store_args(tmp_path))

    async def main() -> None:
        await room_streams(nodes)
        await chunked_group_send(nodes)

    asyncio.run(main())
