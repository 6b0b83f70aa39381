"""Group messages by read diffusion: stored once, per-group seq, push, sync by cursor, unread,
private messages inside a group, idempotency, the commit watermark, and fan-out cost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from im import client_pb2 as pb
from store.api import Op
from store.errors import StoreUnavailable
from tests.im.harness import FakeConnection, Harness
from tests.im.spaces_helpers import create, group_pushes, gsend, gsync, make, users


async def _keys(h: Harness) -> list[bytes]:
    return [k for k, _ in await h.store.scan(b"", b"\xff" * 64, limit=10**6)]


async def test_a_message_is_stored_once_and_pushed_to_online_members() -> None:
    h = await make()
    alice, bob, carol = await users(h, "alice", "bob", "carol")
    g = await create(h, alice, "bob", "carol")
    await h.service.end_session(carol.session)  # type: ignore[arg-type]
    before = set(await _keys(h))
    sent = await gsend(h, alice, g, "hello all")
    assert sent.seq == 2 and sent.message_id
    added = set(await _keys(h)) - before
    assert len(added) == 1 and next(iter(added)).startswith(b"G")  # one row for three members: no inbox copies
    [push] = [m for m in group_pushes(bob) if m.text == "hello all"]
    assert (push.group, push.seq, getattr(push, "from")) == (g, 2, "alice")
    assert not [m for m in group_pushes(carol) if m.text == "hello all"]  # offline: syncs later
    carol2 = await h.login("carol", "d2")
    page = await gsync(h, carol2, g)
    assert [m.text for m in page.messages][-1] == "hello all" and page.cursor == 2 and page.last_seq == 2


async def test_sync_pages_by_cursor_without_loss_or_duplicates() -> None:
    h = await make()
    alice, bob = await users(h, "alice", "bob")
    g = await create(h, alice, "bob")
    for i in range(25):
        await gsend(h, alice, g, f"m{i}")
    got: list[str] = []
    after = 0
    while True:
        page = await gsync(h, bob, g, after, limit=7)
        got += [m.text for m in page.messages]
        after = page.cursor
        if not page.more:
            break
    assert got[1:] == [f"m{i}" for i in range(25)]
    assert (await gsync(h, bob, g, after)).messages == []


async def test_unread_counts_and_read_position() -> None:
    h = await make()
    alice, bob = await users(h, "alice", "bob")
    g1 = await create(h, alice, "bob")
    g2 = await create(h, alice, "bob")
    for _ in range(3):
        await gsend(h, alice, g1, "x")
    await gsend(h, alice, g2, "y")
    unread = {s.group: s.unread for s in (await h.call(bob, my_groups=pb.MyGroups())).groups.groups}
    assert unread == {g1: 4, g2: 2}
    await h.call(bob, group_read=pb.GroupRead(group=g1, seq=3))
    await h.call(bob, group_read=pb.GroupRead(group=g1, seq=1))  # never backwards
    summary = {s.group: s for s in (await h.call(bob, my_groups=pb.MyGroups())).groups.groups}
    assert (summary[g1].unread, summary[g1].read_seq, summary[g1].last_seq) == (1, 3, 4)
    await h.call(bob, group_read=pb.GroupRead(group=g1, seq=10**9))  # clamped to the last seq
    assert (await gsync(h, bob, g1)).read_seq == 4


async def test_private_message_in_a_group_reaches_its_target_only() -> None:
    h = await make()
    alice, bob, carol = await users(h, "alice", "bob", "carol")
    g = await create(h, alice, "bob", "carol")
    for c in (alice, bob, carol):
        c.pushes.clear()
    sent = await gsend(h, alice, g, "psst", to="bob")
    assert [m.text for m in group_pushes(bob)] == ["psst"] and group_pushes(bob)[0].to == "bob"
    assert group_pushes(carol) == []
    assert "psst" in [m.text for m in (await gsync(h, bob, g)).messages]
    assert "psst" in [m.text for m in (await gsync(h, alice, g)).messages]
    carol_page = await gsync(h, carol, g)
    assert "psst" not in [m.text for m in carol_page.messages] and carol_page.cursor == sent.seq
    (dave,) = await users(h, "dave")
    err = await h.error(alice, group_send=pb.GroupSend(group=g, text="x", to="dave"))
    assert err.code == pb.NOT_A_MEMBER


async def test_group_send_is_idempotent_by_client_msg_id() -> None:
    h = await make()
    alice, bob = await users(h, "alice", "bob")
    g = await create(h, alice, "bob")
    first = await gsend(h, alice, g, "once", cmid="c1")
    again = await gsend(h, alice, g, "once", cmid="c1")
    assert again.duplicate and again.message_id == first.message_id and again.seq == first.seq
    h.service.spaces.groups._sent.clear()  # as after a restart: the stored record answers
    third = await gsend(h, alice, g, "once", cmid="c1")
    assert third.duplicate and third.message_id == first.message_id
    assert [m.text for m in (await gsync(h, bob, g)).messages].count("once") == 1
    assert (await gsend(h, alice, g, "next")).seq == first.seq + 1


async def test_bad_group_sends() -> None:
    h = await make()
    alice, bob = await users(h, "alice", "bob")
    g = await create(h, alice)
    cases = [
        (alice, pb.GroupSend(group=g, text="x" * 20000), pb.TOO_LARGE),
        (alice, pb.GroupSend(group=g, text="x", type=5), pb.BAD_REQUEST),
        (alice, pb.GroupSend(group="bad id!", text="x"), pb.BAD_REQUEST),
        (alice, pb.GroupSend(group="gnothere", text="x"), pb.NOT_A_MEMBER),
        (bob, pb.GroupSend(group=g, text="x"), pb.NOT_A_MEMBER),
    ]
    for conn, req, expected in cases:
        assert (await h.error(conn, group_send=req)).code == expected, req
    assert (await h.error(bob, group_sync=pb.GroupSync(group=g))).code == pb.NOT_A_MEMBER
    assert (await h.error(bob, group_read=pb.GroupRead(group=g, seq=1))).code == pb.NOT_A_MEMBER
    assert (await h.error(bob, group_members=pb.GroupMembers(group=g))).code == pb.NOT_A_MEMBER


class _GatedStore:
    """Wraps a store: writes wait until released, in the order the test chooses."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.gates: list[asyncio.Event] = []
        self.fail_next = False

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def write(self, ops: Sequence[Op]) -> None:
        if self.fail_next:
            self.fail_next = False
            raise StoreUnavailable("boom")
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        await self.inner.write(ops)  # type: ignore[attr-defined]


async def test_watermark_pushes_in_seq_order_and_sync_never_skips() -> None:
    h = await make()
    alice, bob = await users(h, "alice", "bob")
    g = await create(h, alice, "bob")
    groups = h.service.spaces.groups
    gated = _GatedStore(groups._store)
    groups._store = gated  # type: ignore[assignment]
    bob.pushes.clear()
    first = asyncio.ensure_future(gsend(h, alice, g, "two"))
    second = asyncio.ensure_future(gsend(h, alice, g, "three"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(gated.gates) == 2
    gated.gates[1].set()  # seq 3 commits first
    await second
    assert group_pushes(bob) == []  # held back: seq 2 is not written yet
    page = await gsync(h, bob, g, 1)
    assert page.messages == [] and page.last_seq == 1  # sync does not read past the watermark
    gated.gates[0].set()
    await first
    assert [m.seq for m in group_pushes(bob)] == [2, 3]
    # a failed write does not block later seqs; the state reloads from the store (seq 4 is reused)
    gated.fail_next = True
    with pytest.raises(StoreUnavailable):
        await gsend(h, alice, g, "lost")
    task = asyncio.ensure_future(gsend(h, alice, g, "five"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    gated.gates[-1].set()
    assert (await task).seq == 4
    assert [m.text for m in group_pushes(bob)] == ["two", "three", "five"]


async def test_fan_out_to_1000_members_on_one_node() -> None:
    """Measured and reported (tests/im/test_groups_messages.py): one send to a group of 1,000
    online members (one device each) on one node, in process (MemoryStore, recording sinks)."""
    h = await make()
    (owner,) = await users(h, "owner")
    names = [f"m{i:04d}" for i in range(999)]
    groups = h.service.spaces.groups
    groups._accounts = _Everyone()  # type: ignore[assignment]
    g = await create(h, owner, *names)
    conns = []
    from im.sessions import Session

    for name in names:
        conn = FakeConnection()
        conn.session = Session(user=name, device="d", sink=conn, login_at=0.0)
        h.registry.add(conn.session)
        conns.append(conn)
    rounds = 50
    start = time.perf_counter()
    for i in range(rounds):
        await gsend(h, owner, g, f"x{i}")
    elapsed = (time.perf_counter() - start) / rounds
    assert all(len(c.pushes) == rounds for c in conns)
    print(f"\ngroup fan-out: 1000 members, {elapsed * 1e3:.2f} ms per message ({999 / elapsed:,.0f} pushes/s)")
    assert elapsed < 0.5


class _Everyone:
    async def exists(self, user: str) -> bool:
        return True
