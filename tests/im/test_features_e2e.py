"""IM features end to end through a real ``timnode`` process: the SDK and ``timnode chat --json``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from im import client_pb2 as pb
from im.client import Client, MessageEvent, TypingEvent
from im.errors import ImError
from testnet.process import NodeProcess
from tests.im.test_chat_cli import Chat, chat  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow


async def _next(client: Client, kind: type, timeout: float = 10.0) -> Any:
    while True:
        event = await client.next_event(timeout)
        if isinstance(event, kind):
            return event


async def test_sdk_recall_edit_typing_friends_and_block(node: NodeProcess) -> None:
    async with (
        Client(node.url, "alice", "alice-password", register=True) as alice,
        Client(node.url, "bob", "bob-password", register=True) as bob,
    ):
        sent = await alice.send("bob", "helo")
        await _next(bob, MessageEvent)
        await alice.edit(sent.message_id, "hello")
        edit = (await _next(bob, MessageEvent)).message
        assert (edit.type, edit.ref, edit.text) == (pb.TYPE_EDIT, sent.message_id, "hello")
        await alice.recall(sent.message_id)
        recall = (await _next(bob, MessageEvent)).message
        assert (recall.type, recall.ref) == (pb.TYPE_RECALL, sent.message_id)
        await alice.typing("bob")
        assert (await _next(bob, TypingEvent)).notice.user == "alice"
        await alice.friend("bob", pb.FRIEND_REQUEST, "hi")
        assert (await _next(bob, MessageEvent)).message.type == pb.TYPE_FRIEND_REQUEST
        await bob.friend("alice", pb.FRIEND_ACCEPT)
        assert [c.state for c in (await alice.roster()).contacts] == [pb.FRIEND]
        await bob.block("alice")
        with pytest.raises(ImError) as err:
            await alice.send("bob", "still there?")
        assert err.value.code == pb.BLOCKED
        assert await bob.unread() == {}  # the only message was recalled; events never count


async def test_offline_device_replays_recall_on_sync(node: NodeProcess) -> None:
    bob = Client(node.url, "bob", "bob-password", register=True, device="laptop")
    await bob.connect()
    await bob.close()
    async with Client(node.url, "alice", "alice-password", register=True) as alice:
        sent = await alice.send("bob", "oops")
        await alice.recall(sent.message_id)
    bob = Client(node.url, "bob", "bob-password", device="laptop")
    await bob.connect()
    first, second = (await _next(bob, MessageEvent)).message, (await _next(bob, MessageEvent)).message
    await bob.close()
    assert (first.id, first.recalled, first.WhichOneof("body")) == (sent.message_id, True, None)
    assert (second.type, second.ref) == (pb.TYPE_RECALL, sent.message_id)


def test_chat_json_block_and_friend_commands(chat: Callable[..., Chat]) -> None:  # noqa: F811
    bob = chat("bob", "--json", "--register")
    bob.wait_event("ready")
    alice = chat("alice", "--json", "--register")
    alice.wait_event("ready")
    alice.send("/friend bob hello")
    alice.wait_event("friend", user="bob")
    bob.send("/block alice")
    bob.wait_event("blocked", user="alice")
    alice.send("/msg bob hi")
    assert alice.wait_event("error")["code"] == "BLOCKED"
    bob.send("/unblock alice")
    bob.wait_event("unblocked", user="alice")
    alice.send("/status away lunch")
    assert alice.wait_event("status")["status"] == "AWAY"
    bob.send("/roster")
    bob.wait_event("roster")
