"""End to end through real ``timnode`` processes: the SDK, the JSON mapping, durability."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import urllib.request
from collections.abc import Callable

import pytest
from websockets.asyncio.client import connect

from im import client_pb2 as pb
from im.client import Client, DisconnectedEvent, KickedEvent, MessageEvent
from im.errors import ImError
from testnet.process import NodeProcess

pytestmark = pytest.mark.slow


async def next_message(client: Client, timeout: float = 10.0) -> pb.Message:
    while True:
        event = await client.next_event(timeout)
        if isinstance(event, MessageEvent):
            return event.message


async def test_two_clients_chat_and_receipts(node: NodeProcess) -> None:
    async with (
        Client(node.url, "alice", "alice-password", register=True) as alice,
        Client(node.url, "bob", "bob-password", register=True) as bob,
    ):
        sent = await alice.send("bob", "hello bob")
        got = await next_message(bob)
        assert (got.text, getattr(got, "from"), got.id) == ("hello bob", "alice", sent.message_id)
        reply = await bob.send("alice", text=None, data=b"\x01\x02", type=40, ext={"k": "v"})
        back = await next_message(alice)
        assert (back.data, back.type, dict(back.ext), back.id) == (b"\x01\x02", 40, {"k": "v"}, reply.message_id)


async def test_json_subprotocol_exchange(node: NodeProcess) -> None:
    async with connect(node.url, subprotocols=["timnode.v1.json"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"id": "1", "register": {"user": "jay", "password": "jay-password"}}))
        session = json.loads(await ws.recv())
        assert session["id"] == "1" and session["session"]["user"] == "jay"
        await ws.send(json.dumps({"id": "2", "send": {"to": "jay", "text": "note to self", "clientMsgId": "n1"}}))
        sent = json.loads(await ws.recv())
        assert sent["id"] == "2" and int(sent["sent"]["messageId"]) > 0
        await ws.send(json.dumps({"id": "3", "history": {"peer": "jay"}}))
        page = json.loads(await ws.recv())
        assert [m["text"] for m in page["page"]["messages"]] == ["note to self"]


async def test_offline_messages_arrive_on_login_exactly_once(node: NodeProcess) -> None:
    bob = Client(node.url, "bob", "bob-password", register=True, device="laptop")
    await bob.connect()
    await bob.close()
    async with Client(node.url, "alice", "alice-password", register=True) as alice:
        ids = [(await alice.send("bob", f"while away {i}")).message_id for i in range(5)]
    bob = Client(node.url, "bob", "bob-password", device="laptop")
    await bob.connect()
    got = [await next_message(bob) for _ in range(5)]
    assert [m.id for m in got] == ids
    await asyncio.sleep(0.3)  # let the coalesced delivery ack reach the node
    await bob.close()
    bob = Client(node.url, "bob", "bob-password", device="laptop")
    await bob.connect()
    with pytest.raises(TimeoutError):
        await next_message(bob, timeout=1.0)
    await bob.close()


async def test_acknowledged_messages_survive_kill_9(node_factory: Callable[..., NodeProcess]) -> None:
    node = node_factory()
    async with Client(node.url, "bob", "bob-password", register=True, device="phone"):
        pass
    acked: list[int] = []
    alice = Client(node.url, "alice", "alice-password", register=True, reconnect=False)
    await alice.connect()

    async def keep_sending() -> None:
        for i in range(100_000):
            acked.append((await alice.send("bob", f"durable {i}")).message_id)

    sender = asyncio.create_task(keep_sending())
    while len(acked) < 300:
        await asyncio.sleep(0.01)
    os.kill(node.pid, signal.SIGKILL)
    await asyncio.gather(sender, return_exceptions=True)
    await alice.close()
    node.proc.wait()  # type: ignore[union-attr]
    port = node.url.rsplit(":", 1)[1]
    node.listen = f"127.0.0.1:{port}"
    node.start()
    bob = Client(node.url, "bob", "bob-password", device="phone")
    await bob.connect()
    page_ids: set[int] = set()
    after = 0
    while True:
        page = (await bob.request(pb.ClientFrame(sync=pb.Sync(after=after, limit=1000)))).page
        page_ids.update(m.id for m in page.messages)
        after = page.cursor
        if not page.more:
            break
    await bob.close()
    missing = [i for i in acked if i not in page_ids]
    assert len(acked) >= 300 and missing == []


async def test_sdk_reconnects_after_node_restart_and_loses_nothing(node: NodeProcess) -> None:
    port = node.url.rsplit(":", 1)[1]
    bob = Client(node.url, "bob", "bob-password", register=True, device="tablet", backoff=(0.05, 0.5))
    await bob.connect()
    async with Client(node.url, "alice", "alice-password", register=True) as alice:
        first = await alice.send("bob", "before")
    assert (await next_message(bob)).id == first.message_id
    node.kill()
    node.listen = f"127.0.0.1:{port}"
    node.start()
    async with Client(node.url, "alice", "alice-password") as alice:
        later = [(await alice.send("bob", f"after {i}")).message_id for i in range(3)]
    got = [await next_message(bob, timeout=15) for _ in range(3)]
    assert [m.id for m in got] == later
    with pytest.raises(TimeoutError):
        await next_message(bob, timeout=0.5)  # nothing twice
    await bob.close()


async def test_device_limit_kick_oldest_tells_the_old_device(node_factory: Callable[..., NodeProcess]) -> None:
    node = node_factory("--max-devices", "1")
    old = Client(node.url, "carol", "carol-password", register=True, device="old")
    await old.connect()
    async with Client(node.url, "carol", "carol-password", device="new"):
        events = []
        while True:
            event = await old.next_event(5)
            events.append(event)
            if isinstance(event, DisconnectedEvent):
                break
        kicked = [e for e in events if isinstance(e, KickedEvent)]
        assert kicked and kicked[0].reason == pb.DEVICE_LIMIT_KICK
        assert events[-1].code == 4002  # type: ignore[union-attr]
    await old.close()


async def test_metrics_count_what_happened(node: NodeProcess) -> None:
    async with Client(node.url, "mia", "mia-password", register=True) as mia:
        await mia.send("mia", "note")
        with pytest.raises(ImError):
            await mia.send("nobody-here", "x")
    with urllib.request.urlopen(node.http_url + "/metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    assert samples['timnode_messages_total{kind="normal"}'] == 1
    assert samples['timnode_logins_total{kind="register",result="ok"}'] == 1
    assert samples['timnode_errors_total{code="not_found"}'] == 1
    assert samples['timnode_request_duration_seconds_count{op="send"}'] == 2
    assert samples['timnode_store_operation_duration_seconds_count{backend="sqlite",op="write"}'] >= 2
    assert samples["process_resident_memory_bytes"] > 0


def test_healthz_and_clean_shutdown(node: NodeProcess) -> None:
    with urllib.request.urlopen(node.http_url + "/healthz", timeout=5) as resp:
        health = json.load(resp)
    assert health["status"] == "ok" and health["store"]["backend"] == "sqlite" and health["store"]["sealed"]
    assert node.stop() == 0
    assert not (node.data_dir / "node.json").exists()
    assert "stopped" in node.log_tail()


async def test_config_file_keys_apply(node_factory: Callable[..., NodeProcess], tmp_path: object) -> None:
    config = node_factory.__self__ if False else None  # noqa: F841 - keep mypy quiet about unused
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "node.toml"
    path.write_text('max_devices = 1\ndevice-policy = "refuse"\n')
    node = node_factory("--config", str(path))
    async with Client(node.url, "dave", "dave-password", register=True, device="one"):
        second = Client(node.url, "dave", "dave-password", device="two", reconnect=False)
        with pytest.raises(Exception) as info:
            await second.connect()
        assert getattr(info.value, "code", None) == pb.DEVICE_LIMIT


async def test_a_node_given_another_data_key_refuses_to_start(node_factory: Callable[..., NodeProcess]) -> None:
    node = node_factory()
    async with Client(node.url, "erin", "erin-password", register=True) as erin:
        await erin.send("erin", "note to self")
    node.stop()
    key_file = node.data_dir / "data.key"
    original = key_file.read_bytes()
    key_file.write_text(os.urandom(32).hex() + "\n")  # a lost key, replaced by a new one
    with pytest.raises(Exception, match="(?s)exited with 2.*sealed with another data key"):
        node.start(timeout=20)
    key_file.write_bytes(original)
    node.start()
    async with Client(node.url, "erin", "erin-password") as erin:  # nothing was lost or re-registered
        page = (await erin.request(pb.ClientFrame(sync=pb.Sync(after=0, limit=10)))).page
    assert [m.text for m in page.messages] == ["note to self"]
    with pytest.raises(ImError):
        await Client(node.url, "erin", "other-password", register=True, reconnect=False).connect()


async def test_only_a_node_writing_its_store_alone_hands_out_send_epochs(
    node_factory: Callable[..., NodeProcess], tmp_path: object
) -> None:
    own = node_factory()  # the embedded default store: journaled, this node's alone
    shared = node_factory("--store", f"sqlite://{tmp_path}/shared.db")  # others may open it
    async with Client(own.url, "gina", "gina-password", register=True) as gina:
        epoch = gina.session.send_epoch if gina.session else ""
        sent = await gina.send("gina", "to myself")
        page = (await gina.request(pb.ClientFrame(sync=pb.Sync(after=0, limit=10)))).page
    assert epoch and page.messages[0].client_msg_id.startswith(epoch + ":") and sent.message_id
    async with Client(shared.url, "hank", "hank-password", register=True) as hank:
        assert hank.session is not None and hank.session.send_epoch == ""
        await hank.send("hank", "to myself")
        page = (await hank.request(pb.ClientFrame(sync=pb.Sync(after=0, limit=10)))).page
    assert ":" not in page.messages[0].client_msg_id


def test_unknown_config_key_is_a_clear_error(node_factory: Callable[..., NodeProcess], tmp_path: object) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "bad.toml"
    path.write_text("no_such_key = 1\n")
    node = node_factory("--config", str(path), start=False)
    with pytest.raises(Exception, match="unknown key"):
        node.start(timeout=10)
