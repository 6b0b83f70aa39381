"""Clients connect to any node (issue 6): real node processes linked over peer links, SDK clients.

Store mode shares one SQLite file (and one data key) between the nodes of one host; no-store
mode keeps accounts in each node's memory. Counters come from ``/healthz`` (``federation``).
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import secrets
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from im import client_pb2 as pb
from im.client import Client, DeliveredEvent, KickedEvent, MessageEvent, PresenceEvent
from im.errors import ImError
from testnet.process import NodeProcess

pytestmark = pytest.mark.slow

PASSWORD = "password-1"


def healthz(node: NodeProcess) -> dict[str, Any]:
    with urllib.request.urlopen(node.http_url + "/healthz", timeout=5) as reply:
        return json.loads(reply.read())  # type: ignore[no-any-return]


def counters(node: NodeProcess) -> dict[str, int]:
    return healthz(node)["federation"]["counters"]  # type: ignore[no-any-return]


def port_of(node: NodeProcess) -> int:
    return int(node.url.rsplit(":", 1)[1])


def wait_for(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def federated(node: NodeProcess, n: int, compatible: bool = True) -> bool:
    peers = healthz(node)["federation"]["peers"].values()
    return sum(1 for p in peers if p["compatible"] is compatible) >= n


def mesh(node_factory: Callable[..., NodeProcess], n: int, *args: str) -> list[NodeProcess]:
    """``n`` nodes linked through the first one (peer exchange makes the full mesh)."""
    first = node_factory(*args, name="n0")
    nodes = [first] + [
        node_factory(*args, "--bootstrap", f"127.0.0.1:{port_of(first)}", name=f"n{i}") for i in range(1, n)
    ]
    for node in nodes:
        wait_for(lambda node=node: federated(node, n - 1), 15, "the federation mesh")  # type: ignore[misc]
    return nodes


def store_args(tmp_path: pathlib.Path, *extra: str) -> tuple[str, ...]:
    return ("--store", f"sqlite://{tmp_path / 'shared.db'}", "--data-key", secrets.token_hex(32), *extra)


async def messages(client: Client, n: int, timeout: float = 10.0) -> list[pb.Message]:
    return [e.message for e in await events(client, MessageEvent, n, timeout)]  # type: ignore[attr-defined]


async def events(client: Client, kind: type, n: int, timeout: float = 10.0) -> list[Any]:
    out: list[Any] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(out) < n:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise AssertionError(f"{client.user}/{client.device}: got {len(out)} of {n} {kind.__name__}")
        try:
            event = await client.next_event(left)
        except TimeoutError:
            continue
        if isinstance(event, kind):
            out.append(event)
    return out


async def drain(client: Client, seconds: float = 0.3) -> list[Any]:
    out = []
    try:
        while True:
            out.append(await client.next_event(seconds))
    except TimeoutError:
        return out


def client(url: str | list[str], user: str, device: str, **kw: Any) -> Client:
    return Client(url, user, PASSWORD, device=device, register=True, **kw)


async def cross_node_delivery(nodes: list[NodeProcess], *, store: bool) -> None:
    a, b, c = nodes[:3]
    alice1 = await client(a.url, "alice", "a1").__aenter__()
    alice2 = await client(c.url, "alice", "a2").__aenter__()
    bob1 = await client(b.url, "bob", "b1").__aenter__()
    bob2 = await client(b.url, "bob", "b2").__aenter__()
    try:
        await asyncio.sleep(0.3)  # presence reaches every node
        before = counters(b)
        sent = await alice1.send("bob", "hello across nodes")
        assert sent.delivered_devices == 2  # both on node B
        for bob in (bob1, bob2):
            (got,) = await messages(bob, 1)
            assert got.text == "hello across nodes" and getattr(got, "from") == "alice" and got.id == sent.message_id
        (mine,) = await messages(alice2, 1)  # the sender's other device, on node C
        assert mine.id == sent.message_id
        assert counters(b)["deliver_in"] == before["deliver_in"] + 1  # one copy for two devices
        # receipts flow back to both of alice's devices, on A and on C
        for alice in (alice1, alice2):
            delivered = await events(alice, DeliveredEvent, 1)
            assert delivered[0].by == "bob" and sent.message_id in delivered[0].message_ids
        # bob answers from B: alice's devices on A and C both get it
        reply = await bob1.send("alice", "hi back")
        assert reply.delivered_devices == 2
        for alice in (alice1, alice2):
            (got,) = await messages(alice, 1)
            assert got.text == "hi back"
        (echo,) = await messages(bob2, 1)  # bob's other device on the same node
        assert echo.text == "hi back"
        if store:  # any node serves history for any user (shared store)
            page = await alice2.history("bob")
            assert [m.text for m in page.messages] == ["hello across nodes", "hi back"]
    finally:
        for c_ in (alice1, alice2, bob1, bob2):
            await c_.close()


async def presence_across_nodes(nodes: list[NodeProcess]) -> None:
    a, b = nodes[0], nodes[1]
    async with client(a.url, "carol", "c1") as carol:
        (initial,) = await carol.subscribe(["dave"])
        assert not initial.online
        dave = await client(b.url, "dave", "d1").__aenter__()
        online = await events(carol, PresenceEvent, 1)
        assert online[0].presence.user == "dave" and online[0].presence.online
        await dave.logout()
        offline = await events(carol, PresenceEvent, 1)
        assert offline[0].presence.user == "dave" and not offline[0].presence.online


async def device_limit_network_wide(nodes: list[NodeProcess], policy: str) -> None:
    """--max-devices 2: two devices on B, a third on A."""
    a, b = nodes[0], nodes[1]
    erin1 = await client(b.url, "erin", "e1").__aenter__()
    await asyncio.sleep(0.05)
    erin2 = await client(b.url, "erin", "e2").__aenter__()
    await asyncio.sleep(0.3)
    try:
        if policy == "refuse":
            with pytest.raises(ImError) as info:
                await client(a.url, "erin", "e3", reconnect=False).__aenter__()
            assert info.value.code == pb.DEVICE_LIMIT
        else:
            erin3 = await client(a.url, "erin", "e3").__aenter__()
            kicked = await events(erin1, KickedEvent, 1)  # the oldest, on the other node
            assert kicked[0].reason == pb.DEVICE_LIMIT_KICK
            await erin3.close()
    finally:
        await erin1.close()
        await erin2.close()


def test_store_mode(node_factory: Callable[..., NodeProcess], tmp_path: pathlib.Path) -> None:
    nodes = mesh(node_factory, 3, *store_args(tmp_path, "--max-devices", "2"))

    async def main() -> None:
        await cross_node_delivery(nodes, store=True)
        await presence_across_nodes(nodes)
        await device_limit_network_wide(nodes, "kick-oldest")
        # offline recipient: the message waits in the store and is synced on login elsewhere
        async with client(nodes[0].url, "frank", "f1") as frank:
            async with client(nodes[1].url, "gina", "g1") as gina:
                pass
            await asyncio.sleep(0.3)
            sent = await frank.send("gina", "while you were away")
            assert sent.delivered_devices == 0
            async with client(nodes[2].url, "gina", "g1") as gina:
                (got,) = await messages(gina, 1)
                assert got.id == sent.message_id and got.text == "while you were away"

    asyncio.run(main())


def test_store_mismatch_refused(node_factory: Callable[..., NodeProcess], tmp_path: pathlib.Path) -> None:
    a = node_factory(*store_args(tmp_path), name="a")
    other = node_factory("--bootstrap", f"127.0.0.1:{port_of(a)}", name="other")  # its own SQLite file
    wait_for(lambda: federated(a, 1, compatible=False) and federated(other, 1, compatible=False), 15, "hello")

    async def main() -> None:
        async with client(other.url, "henry", "h1"), client(a.url, "ivy", "i1") as ivy:
            await asyncio.sleep(0.3)
            with pytest.raises(ImError) as info:
                await ivy.send("henry", "across stores")
            assert info.value.code == pb.STORE_UNAVAILABLE and "store configuration" in str(info.value)

    asyncio.run(main())
    assert "uses another store configuration" in a.log_path.read_text()


def test_no_store_mode(node_factory: Callable[..., NodeProcess]) -> None:
    nodes = mesh(node_factory, 3, "--no-store", "--max-devices", "2", "--device-policy", "refuse")

    async def main() -> None:
        await cross_node_delivery(nodes, store=False)
        await presence_across_nodes(nodes)
        await device_limit_network_wide(nodes, "refuse")
        async with client(nodes[0].url, "jack", "j1") as jack:
            with pytest.raises(ImError) as info:  # nobody anywhere
                await jack.send("nobody-here", "?")
            assert info.value.code == pb.NOT_FOUND
            async with client(nodes[1].url, "kim", "k1") as kim:  # kim's account lives on node 1
                await asyncio.sleep(0.3)
                sent = await jack.send("kim", "no store, still delivered")
                assert sent.delivered_devices == 1
                (got,) = await messages(kim, 1)
                assert got.text == "no store, still delivered"

    asyncio.run(main())


def test_failover_kill9(node_factory: Callable[..., NodeProcess], tmp_path: pathlib.Path) -> None:
    """kill -9 the recipient's node, then the sender's, while messages flow; nothing acknowledged
    is lost, nothing reaches the application twice, order per sender holds."""
    failover_kill9(mesh(node_factory, 3, *store_args(tmp_path)))


def test_failover_kill9_postgres(node_factory: Callable[..., NodeProcess]) -> None:
    """The same failover with the nodes sharing one PostgreSQL table (``TIMNODE_TEST_PG_DSN``;
    skipped with a printed reason when unreachable, failed under ``CI``: tests/store conventions)."""
    dsn = pg_dsn_or_skip()
    table = f"t_{secrets.token_hex(8)}"
    try:
        failover_kill9(mesh(node_factory, 3, "--store", with_table(dsn, table), "--data-key", secrets.token_hex(32)))
    finally:
        asyncio.run(drop_pg_table(dsn, table))


PG_DSN = os.environ.get("TIMNODE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def with_table(dsn: str, table: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}table={table}"


def pg_dsn_or_skip() -> str:
    """``PG_DSN`` when a server answers there; else skip (printing why), or fail when ``CI`` is set."""
    import asyncpg

    from store.postgres import split_table

    async def probe() -> str | None:
        try:
            conn = await asyncpg.connect(split_table(PG_DSN)[0], timeout=5)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            return f"PostgreSQL at {PG_DSN} unreachable: {exc!r}"
        await conn.close()
        return None

    reason = asyncio.run(probe())
    if reason is None:
        return PG_DSN
    if os.environ.get("CI"):
        pytest.fail(reason)
    print(reason)
    pytest.skip(reason)


async def drop_pg_table(dsn: str, table: str) -> None:
    import asyncpg

    from store.postgres import split_table

    conn = await asyncpg.connect(split_table(dsn)[0], timeout=5)
    try:
        await conn.execute(f'DROP TABLE IF EXISTS "{table}", "{table}_meta"')
    finally:
        await conn.close()


def failover_kill9(nodes: list[NodeProcess]) -> None:
    a, b, c = nodes

    async def main() -> None:
        sender = await client([a.url, b.url, c.url], "lena", "l1", backoff=(0.05, 0.5)).__aenter__()
        receiver = await client([b.url, c.url, a.url], "mike", "m1", backoff=(0.05, 0.5)).__aenter__()
        got: list[pb.Message] = []

        async def collect() -> None:
            async for event in receiver.events():
                if isinstance(event, MessageEvent):
                    got.append(event.message)

        collector = asyncio.create_task(collect())
        await asyncio.sleep(0.3)
        acknowledged: list[int] = []
        for i in range(90):
            if i == 30:
                b.kill()  # the receiver's node
            if i == 60:
                a.kill()  # the sender's node
            sent = await sender.send("mike", f"m{i:03d}", client_msg_id=f"lena-{i}", timeout=20)
            acknowledged.append(sent.message_id)
            await asyncio.sleep(0.01)
        deadline = asyncio.get_running_loop().time() + 15
        while {m.id for m in got} < set(acknowledged) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        assert receiver.url == c.url and sender.url == c.url
        ids = [m.id for m in got]
        assert len(ids) == len(set(ids)), "a message reached the application twice"
        assert set(acknowledged) <= set(ids), f"lost: {sorted(set(acknowledged) - set(ids))}"
        texts = [m.text for m in got]
        assert texts == sorted(texts), "out of order"
        collector.cancel()
        await sender.close()
        await receiver.close()

    asyncio.run(main())
