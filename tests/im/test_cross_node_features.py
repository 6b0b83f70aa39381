"""The IM features across nodes (im/fed_routing.py): real node processes on one shared SQLite
store, SDK clients on different nodes. Counters come from ``/healthz`` (``federation``)."""

from __future__ import annotations

import asyncio
import json
import pathlib
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from im import client_pb2 as pb
from im.client import GroupMessageEvent, MessageEvent, PresenceEvent, RoomMessageEvent, TypingEvent
from im.fed_routing import closest, group_key, room_key
from node.identity import PeerId
from testnet.process import NodeProcess
from tests.im.test_cross_node import client, counters, events, healthz, mesh, messages, store_args

pytestmark = pytest.mark.slow

TOKEN = "test-admin-token-0123456789abcdef"


def node_peer(node: NodeProcess) -> PeerId:
    return PeerId.from_base58(healthz(node)["node"])


def owner_of(nodes: list[NodeProcess], key: bytes) -> int:
    peers = [node_peer(n) for n in nodes]
    return peers.index(closest(key, peers))


def totals(nodes: list[NodeProcess], name: str) -> list[int]:
    return [counters(n).get(name, 0) for n in nodes]


def admin_broadcast(node: NodeProcess, text: str, to: str) -> dict[str, Any]:
    query = urllib.parse.urlencode({"text": text, "to": to})
    request = urllib.request.Request(
        f"{node.http_url}/admin/broadcast?{query}", method="POST", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())  # type: ignore[no-any-return]


async def amend_typing_presence(nodes: list[NodeProcess]) -> None:
    a, b = nodes[0], nodes[1]
    async with client(a.url, "alice", "a1") as alice, client(b.url, "bob", "b1") as bob:
        await asyncio.sleep(0.3)
        sent = await alice.send("bob", "helo")
        (got,) = await messages(bob, 1)
        assert got.id == sent.message_id
        await alice.edit(sent.message_id, "hello")
        await alice.recall(sent.message_id)
        edit, recall = await messages(bob, 2)  # live pushes from node A
        assert (edit.type, edit.ref, edit.text) == (pb.TYPE_EDIT, sent.message_id, "hello")
        assert (recall.type, recall.ref) == (pb.TYPE_RECALL, sent.message_id)
        # typing, both ways
        await alice.typing("bob")
        (typing,) = await events(bob, TypingEvent, 1)
        assert typing.notice.user == "alice" and typing.notice.active
        await bob.typing("alice", active=False)
        (typing,) = await events(alice, TypingEvent, 1)
        assert typing.notice.user == "bob" and not typing.notice.active
        # rich presence: bob (node B) watches alice (node A)
        (seen,) = await bob.subscribe(["alice"])
        assert seen.online
        await alice.set_presence(pb.AWAY, "lunch", {"back": "13:00"})
        (changed,) = await events(bob, PresenceEvent, 1)
        p = changed.presence
        assert (p.user, p.online, p.status, p.text) == ("alice", True, pb.AWAY, "lunch")
        assert dict(p.fields) == {"back": "13:00"}
        (view,) = await bob.subscribe(["alice"])
        assert view.text == "lunch" and dict(view.fields) == {"back": "13:00"}
        # a block on node B applies on node A at once (roster cache invalidated)
        await bob.block("alice")
        await asyncio.sleep(0.3)
        with pytest.raises(Exception) as refused:
            await alice.send("bob", "are you there?")
        assert getattr(refused.value, "code", None) == pb.BLOCKED


async def group_on_two_nodes(nodes: list[NodeProcess]) -> None:
    a, b = nodes[0], nodes[1]
    async with (
        client(a.url, "gail", "g1") as gail,
        client(b.url, "hank", "h1") as hank,
        client(b.url, "ivy", "i1") as ivy,
    ):
        await asyncio.sleep(0.3)
        info = await gail.create_group("team", ["hank", "ivy"])
        for member in (gail, hank, ivy):
            (created,) = await events(member, GroupMessageEvent, 1)
            assert created.message.type == pb.TYPE_GROUP_CREATED
        owner = owner_of(nodes, group_key(info.group))
        before_out, before_in = totals(nodes, "push_out_group"), totals(nodes, "push_in_group")
        seqs = [(await hank.group_send(info.group, "from B")).seq, (await gail.group_send(info.group, "from A")).seq]
        assert seqs == [2, 3]  # one sequence, assigned by the owner
        for member in (gail, hank, ivy):
            got = await events(member, GroupMessageEvent, 2)
            assert [e.message.text for e in got] == ["from B", "from A"]
        out = [x - y for x, y in zip(totals(nodes, "push_out_group"), before_out, strict=True)]
        into = [x - y for x, y in zip(totals(nodes, "push_in_group"), before_in, strict=True)]
        holders = {0, 1} - {owner}  # nodes with members' devices, other than the owner
        assert out[owner] == 2 * len(holders) and sum(out) == out[owner]  # one copy per node per message
        assert all(into[i] == (2 if i in holders else 0) for i in range(len(nodes)))
        page = await ivy.group_sync(info.group)
        assert [m.seq for m in page.messages] == [1, 2, 3]


async def room_text(member: Any, text: str) -> pb.Message:
    """The next room message with ``text`` (join notices before it are skipped)."""
    while True:
        (event,) = await events(member, RoomMessageEvent, 1)
        if event.message.type == 1 and event.message.text == text:
            return event.message  # type: ignore[no-any-return]


async def room_on_two_nodes(nodes: list[NodeProcess]) -> None:
    a, b = nodes[0], nodes[1]
    async with (
        client(a.url, "jon", "j1") as jon,
        client(b.url, "kim", "k1") as kim,
        client(b.url, "lea", "l1") as lea,
    ):
        await jon.create_room("hall")
        await kim.join_room("hall")
        await lea.join_room("hall")
        assert sorted((await jon.room_members("hall")).members) == ["jon", "kim", "lea"]
        await asyncio.sleep(0.3)
        home = owner_of(nodes, room_key("hall"))
        before = totals(nodes, "push_in_room")
        sent = await jon.room_send("hall", "hello hall")
        assert sent.delivered_devices == 2
        for member in (kim, lea):
            assert getattr(await room_text(member, "hello hall"), "from") == "jon"
        into = [x - y for x, y in zip(totals(nodes, "push_in_room"), before, strict=True)]
        if home != 1:
            assert into[1] == 1  # one copy to node B for kim and lea
        await kim.room_send("hall", "hi from B")
        assert getattr(await room_text(jon, "hi from B"), "from") == "kim"
        await lea.leave_room("hall")
        assert sorted((await jon.room_members("hall")).members) == ["jon", "kim"]


async def broadcast_to_all(nodes: list[NodeProcess]) -> None:
    a, b = nodes[0], nodes[2]
    async with client(b.url, "mia", "m1") as mia:
        await asyncio.sleep(0.3)
        result = await asyncio.to_thread(admin_broadcast, a, "maintenance at noon", "all")
        assert result["remote"] >= 1
        found = [m for m in await messages(mia, 1) if m.text == "maintenance at noon"]
        assert found and found[0].to == "mia"


def test_features_across_nodes(node_factory: Callable[..., NodeProcess], tmp_path: pathlib.Path) -> None:
    nodes = mesh(node_factory, 3, *store_args(tmp_path, "--admin-token", TOKEN))

    async def main() -> None:
        await amend_typing_presence(nodes)
        await group_on_two_nodes(nodes)
        await room_on_two_nodes(nodes)
        await broadcast_to_all(nodes)

    asyncio.run(main())


def test_typing_and_events_no_store(node_factory: Callable[..., NodeProcess]) -> None:
    nodes = mesh(node_factory, 2, "--no-store")

    async def main() -> None:
        async with client(nodes[0].url, "nia", "n1") as nia, client(nodes[1].url, "oto", "o1") as oto:
            await asyncio.sleep(0.3)
            await nia.typing("oto")
            (typing,) = await events(oto, TypingEvent, 1)
            assert typing.notice.user == "nia"
            await nia.send("oto", "hi")
            (got,) = await events(oto, MessageEvent, 1)
            assert got.message.text == "hi"

    asyncio.run(main())
