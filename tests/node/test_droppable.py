"""Droppable link messages (node/droppable.py, Link.send_droppable): the drop-oldest queue, the
unordered-channel crypto (reorder, loss, replay, forgery) and a Link over an in-memory
transport with an unordered channel."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from node.droppable import DatagramChannel, DropQueue, ReplayError, ReplayWindow
from node.errors import DecodeError, DecryptError, FrameTooLarge
from node.handshake import HandshakeComplete
from node.identity import Identity
from node.link import Handlers, Link, LinkConfig, UnorderedStream, establish
from tests.node.test_handshake import pair, run

# -- DropQueue ---------------------------------------------------------------------------------


def test_drop_queue_drops_oldest_by_count() -> None:
    q: DropQueue[int] = DropQueue(3)
    assert [q.offer(i) for i in range(5)] == [0, 0, 0, 1, 1]
    assert q.dropped == 2 and len(q) == 3
    assert q.take_all() == [2, 3, 4]
    assert len(q) == 0 and q.queued_bytes == 0


def test_drop_queue_drops_oldest_by_bytes_and_keeps_the_newest() -> None:
    q: DropQueue[str] = DropQueue(100, max_bytes=10)
    q.offer("a", 4)
    q.offer("b", 4)
    assert q.offer("c", 4) == 1  # 12 > 10: "a" goes
    assert q.queued_bytes == 8
    assert q.offer("huge", 50) == 2  # alone over the bound: kept, everything older dropped
    assert q.take_all() == ["huge"] and q.dropped == 3
    with pytest.raises(ValueError):
        DropQueue(0)


# -- ReplayWindow / DatagramChannel --------------------------------------------------------------


def test_replay_window() -> None:
    w = ReplayWindow(8)
    for n in (5, 3, 9, 4):
        w.check(n)
        w.accept(n)
    for n in (5, 3, 9, 4):
        with pytest.raises(ReplayError):
            w.check(n)
    w.check(2)  # within the window, never seen
    with pytest.raises(ReplayError, match="older"):
        w.check(1)  # 9 - 1 >= 8
    w.accept(100)  # a jump clears the window
    w.check(99)
    with pytest.raises(ReplayError):
        w.check(100)


def channels(**kw: int) -> tuple[DatagramChannel, DatagramChannel]:
    ck = bytes(range(32))
    return DatagramChannel.from_chaining_key(ck, initiator=True, **kw), DatagramChannel.from_chaining_key(
        ck, initiator=False, **kw
    )


def test_datagrams_reorder_loss_and_replay() -> None:
    a, b = channels()
    grams = [a.seal([f"m{i}".encode()])[0] for i in range(20)]
    order = list(range(20))
    random.Random(7).shuffle(order)
    kept = [i for i in order if i % 3]  # a third lost, the rest in random order
    assert [b.open(grams[i]) for i in kept] == [[f"m{i}".encode()] for i in kept]
    for i in kept[:5]:  # replays
        with pytest.raises(ReplayError):
            b.open(grams[i])
    assert b.rejected == 5 and b.received == len(kept)
    # the other direction uses the other key: a datagram does not open on its own side
    with pytest.raises(DecryptError):
        a.open(a.seal([b"x"])[0])


def test_datagram_forgery_does_not_move_the_window() -> None:
    a, b = channels(window=16)
    good = a.seal([b"ok"])[0]
    forged = (10**6).to_bytes(8, "big") + good[8:]  # a far-ahead counter on another datagram
    with pytest.raises(DecryptError):
        b.open(forged)
    tampered = good[:-1] + bytes([good[-1] ^ 1])
    with pytest.raises(DecryptError):
        b.open(tampered)
    assert b.open(good) == [b"ok"]  # the forged counter did not push it out of the window
    with pytest.raises(DecodeError):
        b.open(b"short")
    with pytest.raises(FrameTooLarge):
        b.open(bytes(b.max_datagram + 1))
    assert b.rejected == 4


def test_datagram_batches_and_limits() -> None:
    a, b = channels(max_datagram=1024)
    msgs = [bytes([i]) * 100 for i in range(25)]
    grams = a.seal(msgs)
    assert 1 < len(grams) < len(msgs) and all(len(g) <= 1024 for g in grams)
    assert [m for g in grams for m in b.open(g)] == msgs
    a.seal([bytes(a.max_message)])
    with pytest.raises(Exception, match="over one datagram"):
        a.seal([bytes(a.max_message + 1)])


def test_handshake_derives_matching_independent_datagram_keys() -> None:
    i, r = pair()
    ei, er = run(i, r)
    ci, cr = ei[0], er[0]
    assert isinstance(ci, HandshakeComplete) and isinstance(cr, HandshakeComplete)
    assert ci.channel.datagram is not None and cr.channel.datagram is not None
    assert cr.channel.datagram.open(ci.channel.datagram.seal([b"live"])[0]) == [b"live"]
    assert ci.channel.datagram.open(cr.channel.datagram.seal([b"back"])[0]) == [b"back"]
    # the ordered channel still works and is unaffected by datagrams
    frames = ci.channel.seal([b"reliable"])
    assert [m for f in frames for m in cr.channel.open(f)] == [b"reliable"]
    with pytest.raises(DecryptError):  # a datagram body is not an ordered-channel frame
        cr.channel.open(ci.channel.datagram.seal([b"x"])[0][8:])


# -- Link over an in-memory transport --------------------------------------------------------------


class MemStream:
    """Reliable ordered messages plus (optionally) an unordered channel that may lose datagrams."""

    def __init__(self, unordered: bool, lose: Callable[[int], bool] = lambda n: False) -> None:
        self.remote_address: Any = None
        self.peer: MemStream | None = None
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.unordered = unordered
        self.lose = lose
        self.sent_unordered = 0
        self.ready = True
        self._on_message: Callable[[bytes], None] | None = None
        self._on_writable: Callable[[], None] | None = None
        self.slow: asyncio.Event | None = None  # while set and cleared: send() blocks

    async def send(self, message: bytes) -> None:
        if self.slow is not None:
            await self.slow.wait()
        assert self.peer is not None
        self.peer.queue.put_nowait(message)

    async def recv(self) -> bytes:
        item = await self.queue.get()
        if item is None:
            self.queue.put_nowait(None)
            raise ConnectionClosed(None, None)
        return item

    async def _iterate(self) -> AsyncIterator[bytes]:
        while True:
            try:
                yield await self.recv()
            except ConnectionClosed:
                return

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.queue.put_nowait(None)
        if self.peer is not None:
            self.peer.queue.put_nowait(None)

    def abort(self) -> None:
        self.queue.put_nowait(None)


class MemUnordered(MemStream):
    def set_unordered_handler(self, on_message: Callable[[bytes], None], on_writable: Callable[[], None]) -> None:
        self._on_message, self._on_writable = on_message, on_writable

    def unordered_ready(self) -> bool:
        return self.ready

    def send_unordered(self, datagram: bytes) -> None:
        self.sent_unordered += 1
        peer = self.peer
        assert isinstance(peer, MemUnordered)
        if not self.lose(self.sent_unordered) and peer._on_message is not None:
            asyncio.get_running_loop().call_soon(peer._on_message, datagram)


async def linked(cls: type[MemStream], **config: Any) -> tuple[Link, Link, list[bytes], MemStream]:
    sa, sb = cls(True), cls(True)
    sa.peer, sb.peer = sb, sa
    got: list[bytes] = []
    hb = Handlers()
    hb.add("/live", lambda link, body: got.append(body))
    cfg = LinkConfig(ping_interval=0, **config)
    a_id, b_id = Identity.generate(), Identity.generate()
    la, lb = await asyncio.gather(
        establish(sa, a_id, bytes(32), initiator=True, config=cfg),  # type: ignore[arg-type]
        establish(sb, b_id, bytes(32), initiator=False, config=cfg, handlers=hb),  # type: ignore[arg-type]
    )
    return la, lb, got, sa


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_link_droppable_on_the_unordered_channel_with_loss() -> None:
    async def main() -> None:
        la, lb, got, sa = await linked(MemUnordered)
        assert isinstance(sa, UnorderedStream) and la.transport_unordered
        sa.lose = lambda n: n % 2 == 0  # every second datagram lost
        for i in range(6):
            assert la.send_droppable("/live", b"f%d" % i)
            await settle()
        assert got == [b"f0", b"f2", b"f4"]  # losses are fine; the link lives on
        assert lb.unordered_stats["received"] == 3 and la.unordered_stats["sent"] == 6
        await la.send("/live", b"reliable")  # the ordered channel is unaffected
        await settle()
        assert got[-1] == b"reliable" and not la.closed and not lb.closed
        lb._on_datagram(b"garbage" * 10)  # a bad datagram is dropped, never fatal
        assert lb.unordered_stats["rejected"] == 1 and not lb.closed
        await la.close()

    asyncio.run(main())


def test_link_droppable_drop_oldest_under_backpressure() -> None:
    async def main() -> None:
        drops: list[int] = []
        la, lb, got, sa = await linked(MemStream, droppable_queue=4)
        assert not la.transport_unordered
        la.on_drop = drops.append
        sa.slow = asyncio.Event()  # the transport stalls: the writer is stuck in send()
        la.send_droppable("/live", b"first")
        await settle()  # the writer took "first" and is blocked sending it
        for i in range(10):
            la.send_droppable("/live", b"n%d" % i)
        assert la.dropped == 6 and sum(drops) == 6  # only the 4 newest are kept
        sa.slow.set()
        await settle()
        assert got == [b"first", b"n6", b"n7", b"n8", b"n9"]
        await la.close()

    asyncio.run(main())


def test_link_droppable_waits_for_a_congested_unordered_channel() -> None:
    async def main() -> None:
        la, lb, got, sa = await linked(MemUnordered, droppable_queue=2)
        assert isinstance(sa, MemUnordered)
        sa.ready = False
        for i in range(5):
            la.send_droppable("/live", b"c%d" % i)
            await settle()
        assert got == [] and la.dropped == 3
        sa.ready = True
        assert sa._on_writable is not None
        sa._on_writable()
        await settle()
        assert got == [b"c3", b"c4"]
        await la.close()

    asyncio.run(main())
