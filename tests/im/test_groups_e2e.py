"""Groups, rooms, streams and chunked payloads through a real ``timnode`` process and the SDK."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest

from im import client_pb2 as pb
from im.client import Client, ClientEvent, GroupMessageEvent, RoomMessageEvent, StreamEvent
from im.errors import ImError
from testnet.process import NodeProcess

pytestmark = pytest.mark.slow


async def next_of(client: Client, kind: type[ClientEvent], timeout: float = 10.0) -> ClientEvent:
    while True:
        event = await client.next_event(timeout)
        if isinstance(event, kind):
            return event


async def test_group_chat_offline_catch_up_and_errors(node: NodeProcess) -> None:
    async with (
        Client(node.url, "alice", "alice-password", register=True) as alice,
        Client(node.url, "bob", "bob-password", register=True) as bob,
    ):
        carol = Client(node.url, "carol", "carol-password", register=True)
        await carol.connect()
        await carol.close()
        info = await alice.create_group("team", ["bob", "carol"])
        sent = await alice.group_send(info.group, "hello team")
        got = await next_of(bob, GroupMessageEvent)
        while got.message.text != "hello team":  # type: ignore[attr-defined]
            got = await next_of(bob, GroupMessageEvent)
        assert got.message.seq == sent.seq == 2  # type: ignore[attr-defined]
        await alice.group_send(info.group, "psst", to="bob")
        async with Client(node.url, "carol", "carol-password") as carol:
            [summary] = await carol.my_groups()
            assert summary.unread == 3
            page = await carol.group_sync(info.group)
            assert [m.text for m in page.messages][1:] == ["hello team"]  # not bob's private one
            await carol.group_read(info.group, page.cursor)
            assert (await carol.my_groups())[0].unread == 0
            await alice.group_action(info.group, pb.GROUP_KICK, "carol")
            with pytest.raises(ImError) as err:
                await carol.group_send(info.group, "still here?")
            assert err.value.code == pb.NOT_A_MEMBER


async def test_room_stream_and_large_payload(node: NodeProcess) -> None:
    async with (
        Client(node.url, "alice", "alice-password", register=True) as alice,
        Client(node.url, "bob", "bob-password", register=True) as bob,
    ):
        await alice.create_room("live", publish=pb.PUBLISH_OWNER)
        await bob.join_room("live")
        await alice.room_send("live", "welcome")
        event = await next_of(bob, RoomMessageEvent)
        while event.message.text != "welcome":  # type: ignore[attr-defined]
            event = await next_of(bob, RoomMessageEvent)
        for seq in range(1, 6):
            await alice.stream_send(b"\x00" * 1000, room="live", seq=seq)
        frames = [await next_of(bob, StreamEvent) for _ in range(5)]
        assert [f.frame.seq for f in frames] == [1, 2, 3, 4, 5]  # type: ignore[attr-defined]
        with pytest.raises(ImError) as err:
            await bob.stream_send(b"x", room="live")
        assert err.value.code == pb.FORBIDDEN
        big = "x" * 300_000  # over one frame (64 KiB) and the 16 KiB body limit
        sent = await alice.send_large(pb.Send(to="bob", client_msg_id="big-1"), big)
        assert sent.message_id
        page = await bob.history("alice")
        assert page.messages[-1].text == big
        with pytest.raises(ImError) as err:
            await alice.send_large(pb.Send(to="bob"), b"y" * 2_000_000)
        assert err.value.code == pb.TOO_LARGE
        await asyncio.sleep(0)
    metrics = urllib.request.urlopen(node.url.replace("ws://", "http://") + "/metrics", timeout=5).read().decode()
    assert "timnode_stream_frames_dropped_total" in metrics
