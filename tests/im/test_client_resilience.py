"""The SDK when connections drop at awkward moments, against a real node through a proxy."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from im import client_pb2 as pb
from im.client import Client, ConnectedEvent, ConnectionLost, MessageEvent
from im.errors import ImError
from testnet.process import NodeProcess
from tests.im.dropping_proxy import DroppingProxy

pytestmark = pytest.mark.slow


async def messages_of(client: Client, count: int, timeout: float = 15.0) -> list[str]:
    texts: list[str] = []
    while len(texts) < count:
        event = await client.next_event(timeout)
        if isinstance(event, MessageEvent):
            texts.append(event.message.text)
    return texts


async def test_a_drop_during_the_reconnect_sync_is_survived(node: NodeProcess) -> None:
    proxy = DroppingProxy(node.url)
    url = await proxy.start()
    async with Client(node.url, "alice", "alice-password", register=True) as alice:
        async with Client(url, "bob", "bob-password", register=True, backoff=(0.05, 0.5)) as bob:
            proxy.drop_on["sync"] = 1  # the next sync is lost with its connection
            proxy.drop_all()  # bob reconnects, resumes, syncs: dropped; and again
            await asyncio.sleep(0.3)
            await alice.send("bob", "sent while bob reconnects")
            await bob.wait_connected(15)
            assert "sent while bob reconnects" in await messages_of(bob, 1)
            assert (await bob.send("alice", "reply", timeout=10)).message_id > 0
    await proxy.stop()


async def test_a_drop_during_the_first_login_fails_connect(node: NodeProcess) -> None:
    proxy = DroppingProxy(node.url)
    url = await proxy.start()
    proxy.drop_on["register"] = 1
    client = Client(url, "carol", "carol-password", register=True)
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(client.connect(), 15)
    await client.close()
    await proxy.stop()


async def test_close_ends_waiting_calls_and_events_even_with_a_full_queue(
    node_factory: Callable[..., NodeProcess],
) -> None:
    node = node_factory()
    bob = Client(node.url, "dave", "dave-password", register=True, backoff=(0.05, 0.5))
    await bob.connect()
    while bob._events.qsize() < bob._events.maxsize - 1:  # an application that stopped reading
        bob._emit(ConnectedEvent(node.url, pb.Session()))
    node.kill()  # bob is reconnecting
    waiting = asyncio.ensure_future(bob.history("erin"))
    await asyncio.sleep(0.3)
    await bob.close()
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(waiting, 5)
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(bob.ping(), 5)
    seen = 0
    async for _ in bob.events():  # ends: the end marker always has its slot
        seen += 1
    assert seen == bob._events.maxsize - 1


async def test_a_request_over_the_frame_limit_is_not_resent(node: NodeProcess) -> None:
    async with Client(node.url, "frank", "frank-password", register=True) as frank:
        with pytest.raises(ImError) as info:
            await frank.send("frank", "x" * 70_000, timeout=30)  # over --max-frame-bytes: closed 1009
        assert info.value.code == pb.TOO_LARGE
        await frank.wait_connected(15)
        assert await frank.ping() > 0


async def test_an_edit_whose_answer_was_lost_is_not_applied_twice(node: NodeProcess) -> None:
    proxy = DroppingProxy(node.url)
    url = await proxy.start()
    async with Client(node.url, "gina", "gina-password", register=True) as gina:
        async with Client(url, "hank", "hank-password", register=True, backoff=(0.05, 0.5)) as hank:
            sent = await hank.send("gina", "typo")
            proxy.drop_after["edit"] = 1
            with pytest.raises(ConnectionLost):
                await hank.edit(sent.message_id, "fixed")
            await hank.wait_connected(15)
            await asyncio.sleep(0.5)
            events = []
            while not gina._events.empty():
                events.append(gina._events.get_nowait())
            edits = [e for e in events if isinstance(e, MessageEvent) and e.message.text == "fixed"]
            assert len(edits) == 1
    await proxy.stop()


async def test_a_flapping_link_backs_off(node: NodeProcess) -> None:
    proxy = DroppingProxy(node.url)
    url = await proxy.start()
    client = Client(url, "ivan", "ivan-password", register=True, backoff=(0.2, 10.0))
    await client.connect()
    proxy.drop_after_page = True  # from now on each connection dies right after its sync page
    proxy.drop_all()
    start = proxy.accepted
    await asyncio.sleep(6)
    assert proxy.accepted - start <= 8  # 0-0.4 s apart without backoff: ~25 in 6 s
    await client.close()
    await proxy.stop()


async def test_a_slow_reader_loses_nothing_when_its_event_queue_overflows(node: NodeProcess) -> None:
    async with Client(node.url, "ivy", "ivy-password", register=True) as ivy:
        async with Client(node.url, "jack", "jack-password", register=True, max_events=8) as jack:
            sent = [f"m{i}" for i in range(40)]
            for text in sent:
                await ivy.send("jack", text)
            await asyncio.sleep(0.5)  # jack read nothing meanwhile: most did not fit
            assert jack._gap
            got = await messages_of(jack, 40)
            assert sorted(got) == sorted(sent)  # each once, the dropped ones synced again
            with pytest.raises(TimeoutError):
                await messages_of(jack, 1, timeout=0.5)


async def test_messages_the_application_did_not_ack_come_back_after_a_restart(node: NodeProcess) -> None:
    async with Client(node.url, "kim", "kim-password", register=True) as kim:
        first = Client(node.url, "lee", "lee-password", register=True, device="phone", auto_ack=False)
        await first.connect()
        for i in range(5):
            await kim.send("lee", f"m{i}")
        ids: list[int] = []
        while len(ids) < 5:
            event = await first.next_event(10)
            if isinstance(event, MessageEvent):
                ids.append(event.message.id)
        for acked in (ids[0], ids[2], ids[3]):  # m1 is still being handled when the app dies
            first.ack(acked)
        await first.close()  # flushes the acks it may send: m0 only (m2, m3 wait for m1)
        again = Client(node.url, "lee", "lee-password", device="phone")
        session = await again.connect()
        assert session.acked_cursor == ids[0]
        assert await messages_of(again, 4) == ["m1", "m2", "m3", "m4"]
        await again.close()


async def test_a_reconnect_waits_the_retry_after_the_node_asked_for() -> None:
    client = Client("ws://127.0.0.1:9", "mia", "mia-password", backoff=(0.001, 0.002))
    calls: list[float] = []

    async def refused_then_stopped(url: str) -> None:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) == 1:
            raise ImError(pb.AUTH_FAILED, "too many attempts", retry_after=0.3)  # slowed down, not refused
        client._closed = True
        raise OSError("stop here")

    async def connection_ended(ws: object) -> None:
        return None

    client._open = refused_then_stopped  # type: ignore[assignment,method-assign]
    client._run_connection = connection_ended  # type: ignore[assignment,method-assign]
    await asyncio.wait_for(client._supervise(None), 5)  # type: ignore[arg-type]
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.3


async def test_acks_never_pass_messages_dropped_from_a_full_queue(node: NodeProcess) -> None:
    async with Client(node.url, "nia", "nia-password", register=True) as nia:
        omar = Client(node.url, "omar", "omar-password", register=True, device="phone", auto_ack=False, max_events=6)
        await omar.connect()
        assert isinstance(await omar.next_event(5), ConnectedEvent)
        for i in range(10):
            await nia.send("omar", f"m{i}")  # m0-m4 queued, m5-m9 dropped
        await asyncio.sleep(0.5)
        assert omar._gap
        read: dict[str, int] = {}
        event = await omar.next_event(None)  # None: no task, no yield to the loop (a fast reader)
        assert isinstance(event, MessageEvent)
        read[event.message.text] = event.message.id
        omar.ack(event.message.id)
        await nia.send("omar", "late")  # live, fits, above the gap
        await asyncio.sleep(0.5)
        for _ in range(5):  # a fast application: m1-m4 and "late", each finished at once
            event = await omar.next_event(None)
            assert isinstance(event, MessageEvent)
            read[event.message.text] = event.message.id
            omar.ack(event.message.id)
        assert "late" in read
        await asyncio.sleep(0.5)  # m5-m9 come back; the application dies before finishing them
        await omar.close()
        again = Client(node.url, "omar", "omar-password", device="phone")
        session = await again.connect()
        assert session.acked_cursor < read["late"]  # the node's cursor stopped before m5
        assert {f"m{i}" for i in range(5, 10)} <= set(await messages_of(again, 6))
        await again.close()


async def test_a_gap_is_synced_to_its_end_even_past_pages_with_nothing_to_show(
    node_factory: Callable[..., NodeProcess],
) -> None:
    node = node_factory("--rate-limit", "0")
    async with Client(node.url, "pia", "pia-password", register=True) as pia:
        quin = Client(node.url, "quin", "quin-password", register=True, device="phone", max_events=6)
        await quin.connect()
        for i in range(30):
            await pia.send("quin", f"m{i}")  # most of them dropped
        await asyncio.sleep(0.3)
        assert quin._gap
        await asyncio.gather(*(quin.send("pia", f"own{i}") for i in range(700)))  # pages of nothing new
        texts = await messages_of(quin, 30)
        assert sorted(texts) == sorted(f"m{i}" for i in range(30))
        await quin.close()
