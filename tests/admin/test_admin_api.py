"""The admin API (im/admin.py, im/admin_ops.py) against real node processes, with the SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from im import client_pb2 as pb
from im.admin import FAILURE_BURST
from im.client import Client, DisconnectedEvent, KickedEvent, MessageEvent
from im.errors import ImError
from testnet.process import NodeProcess
from tests.admin.conftest import PASSWORD, TOKEN, ahttp, http

pytestmark = pytest.mark.slow


async def next_of(client: Client, kind: type, timeout: float = 10.0) -> object:
    while True:
        event = await client.next_event(timeout)
        if isinstance(event, kind):
            return event


async def system_message(client: Client, timeout: float = 10.0) -> pb.Message:
    while True:
        event = await next_of(client, MessageEvent, timeout)
        assert isinstance(event, MessageEvent)
        if event.message.type == 2:
            return event.message


def test_no_token_configured_means_404(node: NodeProcess) -> None:
    for method, path in (("GET", "/admin/status"), ("GET", "/admin/sessions"), ("POST", "/admin/kick")):
        status, _, _ = http(node, method, path, params={"user": "x"} if method == "POST" else None)
        assert status == 404, path
    assert http(node, "GET", "/healthz", token=None)[0] == 200


def test_auth_missing_wrong_and_right(admin_node: NodeProcess) -> None:
    status, headers, body = http(admin_node, "GET", "/admin/status", token=None)
    assert status == 401 and "Bearer" in headers["WWW-Authenticate"] and body["error"]
    assert http(admin_node, "GET", "/admin/status", token="wrong-token")[0] == 401
    assert http(admin_node, "GET", "/admin/status", token="")[0] == 401
    status, _, doc = http(admin_node, "GET", "/admin/status")
    assert status == 200
    assert doc["node"] == admin_node.info["node"] and doc["status"] == "ok"
    for key in ("connections", "online_users", "sessions", "peers_by_kind", "dht_summary", "store_shards", "process"):
        assert key in doc, key
    assert doc["process"]["resident_memory_bytes"] > 0
    assert http(admin_node, "POST", "/admin/status")[0] == 405
    assert http(admin_node, "GET", "/admin/kick", params={"user": "x"})[0] == 405
    assert http(admin_node, "POST", "/admin/kick")[0] == 400  # no user


def test_wrong_tokens_are_rate_limited(admin_node: NodeProcess) -> None:
    codes = [http(admin_node, "GET", "/admin/status", token=f"guess-{i}")[0] for i in range(FAILURE_BURST + 2)]
    assert codes[:FAILURE_BURST] == [401] * FAILURE_BURST
    assert codes[-1] == 429
    status, headers, _ = http(admin_node, "GET", "/admin/status")  # locked for everyone, briefly
    assert status == 429 and int(headers["Retry-After"]) >= 1
    metrics = http(admin_node, "GET", "/metrics", token=None)[2]
    assert f"timnode_admin_auth_failures_total {FAILURE_BURST + 1}.0" in metrics


def test_reads_peers_dht_store(admin_node: NodeProcess) -> None:
    status, _, peers = http(admin_node, "GET", "/admin/peers")
    assert status == 200 and peers["peers"] == [] and peers["by_kind"] == {}
    status, _, dht = http(admin_node, "GET", "/admin/dht")
    assert status == 200 and isinstance(dht["enabled"], bool)
    status, _, store = http(admin_node, "GET", "/admin/store")
    assert status == 200
    assert (store["backend"], store["durable"], store["shards"], store["blocked_accounts"]) == ("sqlite", True, 1, 0)


async def test_sessions_and_kick(admin_node: NodeProcess) -> None:
    async with (
        Client(admin_node.url, "alice", PASSWORD, register=True, device="phone") as a1,
        Client(admin_node.url, "alice", PASSWORD, device="laptop") as a2,
        Client(admin_node.url, "bob", PASSWORD, register=True) as bob,
    ):
        status, _, doc = await ahttp(admin_node, "GET", "/admin/sessions")
        assert status == 200 and (doc["online_users"], doc["sessions"]) == (2, 3)
        alice = next(u for u in doc["users"] if u["user"] == "alice")
        assert sorted(d["device"] for d in alice["devices"]) == ["laptop", "phone"]
        assert all(d["address"] == "127.0.0.1" and d["login_at"] > 1_600_000_000_000 for d in alice["devices"])

        status, _, doc = await ahttp(admin_node, "POST", "/admin/kick", params={"user": "alice", "device": "phone"})
        assert (status, doc["kicked"]) == (200, 1)
        kicked = await next_of(a1, KickedEvent)
        assert isinstance(kicked, KickedEvent) and kicked.reason == pb.ADMIN
        gone = await next_of(a1, DisconnectedEvent)
        assert isinstance(gone, DisconnectedEvent) and gone.code == 4005
        await asyncio.sleep(0.2)
        doc = (await ahttp(admin_node, "GET", "/admin/sessions"))[2]
        assert doc["sessions"] == 2  # laptop and bob stay
        assert (await ahttp(admin_node, "POST", "/admin/kick", params={"user": "nobody"}))[2]["kicked"] == 0
        await bob.ping()
        await a2.ping()


async def test_block_kicks_refuses_login_survives_restart_and_unblock(admin_node: NodeProcess) -> None:
    async with Client(admin_node.url, "mallory", PASSWORD, register=True) as m:
        status, _, doc = await ahttp(admin_node, "POST", "/admin/block", params={"user": "mallory", "reason": "spam"})
        assert (status, doc["blocked"], doc["kicked"]) == (200, True, 1)
        kicked = await next_of(m, KickedEvent)
        assert isinstance(kicked, KickedEvent) and kicked.reason == pb.ADMIN and "blocked" in kicked.message
    with pytest.raises(ImError) as refused:
        async with Client(admin_node.url, "mallory", PASSWORD, reconnect=False):
            pass
    assert refused.value.code == pb.FORBIDDEN and "blocked" in refused.value.message
    blocked = (await ahttp(admin_node, "GET", "/admin/blocked"))[2]["blocked"]
    assert [(b["user"], b["reason"]) for b in blocked] == [("mallory", "spam")]

    admin_node.stop()
    admin_node.start()
    with pytest.raises(ImError) as again:
        async with Client(admin_node.url, "mallory", PASSWORD, reconnect=False):
            pass
    assert again.value.code == pb.FORBIDDEN  # persisted in the store

    status, _, doc = await ahttp(admin_node, "POST", "/admin/unblock", params={"user": "mallory"})
    assert (status, doc["was_blocked"]) == (200, True)
    async with Client(admin_node.url, "mallory", PASSWORD) as m:
        await m.ping()


async def test_broadcast_reaches_online_and_offline_users(admin_node: NodeProcess) -> None:
    async with Client(admin_node.url, "carol", PASSWORD, register=True) as carol:
        await carol.send("carol", "note to self")
    async with (
        Client(admin_node.url, "alice", PASSWORD, register=True) as alice,
        Client(admin_node.url, "bob", PASSWORD, register=True) as bob,
    ):
        # everyone: alice and bob online (pushed), carol offline (stored)
        params = {"text": "maint at 22:00", "to": "all"}
        status, _, doc = await ahttp(admin_node, "POST", "/admin/broadcast", params=params)
        assert status == 200
        assert (doc["scope"], doc["recipients"], doc["stored"], doc["pushed"]) == ("all", 3, 3, 2)
        for client in (alice, bob):
            msg = await system_message(client)
            got = (msg.text, getattr(msg, "from"), msg.to, msg.ext["system"])
            assert got == ("maint at 22:00", "", client.user, "all")
            assert str(msg.id) == doc["message_id"]

        # one user
        doc = (await ahttp(admin_node, "POST", "/admin/broadcast", params={"text": "hi bob", "to": "bob"}))[2]
        assert (doc["scope"], doc["recipients"], doc["pushed"]) == ("user", 1, 1)
        assert (await system_message(bob)).text == "hi bob"
        # this node's online users (default scope): carol is offline
        doc = (await ahttp(admin_node, "POST", "/admin/broadcast", params={"text": "online only"}))[2]
        assert (doc["scope"], doc["recipients"]) == ("node", 2)
        assert (await system_message(alice)).text == "online only"
        assert (await ahttp(admin_node, "POST", "/admin/broadcast", params={"text": "x", "to": "nobody"}))[0] == 404

    async with Client(admin_node.url, "carol", PASSWORD) as carol:  # offline delivery: on sync
        msg = await system_message(carol)
        assert (msg.text, msg.to, msg.type) == ("maint at 22:00", "carol", 2)
        with pytest.raises(asyncio.TimeoutError):
            await system_message(carol, timeout=0.5)  # "online only" and "hi bob" were not for carol
    metrics = http(admin_node, "GET", "/metrics", token=None)[2]
    assert 'timnode_system_messages_total{scope="all"} 3.0' in metrics


async def test_broadcast_in_no_store_mode_pushes_only(node_factory: Callable[..., NodeProcess]) -> None:
    node = node_factory("--no-store", "--admin-token", TOKEN)
    async with Client(node.url, "dave", PASSWORD, register=True) as dave:
        doc = (await ahttp(node, "POST", "/admin/broadcast", params={"text": "ephemeral", "to": "all"}))[2]
        assert (doc["recipients"], doc["stored"], doc["pushed"]) == (1, 0, 1)
        assert (await system_message(dave)).text == "ephemeral"


def test_bad_admin_token_config_refused(node_factory: Callable[..., NodeProcess]) -> None:
    node = node_factory("--admin-token", "short", start=False)
    with pytest.raises(Exception, match="admin_token"):
        node.start(timeout=15)
