"""ImService behaviour, in process (MemoryStore, recording connections, manual clock)."""

from __future__ import annotations

import asyncio

import pytest

from im import client_pb2 as pb
from im import messaging
from im.errors import ImError
from store.api import Insert
from store.memory import MemoryStore
from tests.im.harness import FakeConnection, Harness


async def test_register_login_and_session_fields() -> None:
    h = await Harness.create()
    alice = await h.register("alice")
    assert alice.session is not None and alice.session.user == "alice"
    again = await h.error(FakeConnection(), register=pb.Register(user="alice", password="password-2"))
    assert again.code == pb.CONFLICT
    conn = FakeConnection()
    reply = await h.call(conn, login=pb.Login(user="alice", password="password-1", device="d2"))
    assert reply.session.user == "alice" and reply.session.device == "d2" and reply.session.token
    assert reply.session.store is True and reply.session.node == "test-node"


@pytest.mark.parametrize(
    ("user", "password"), [("", "password-1"), ("a b", "password-1"), ("x" * 65, "password-1"), ("ok", "short")]
)
async def test_register_validates_names_and_passwords(user: str, password: str) -> None:
    h = await Harness.create()
    err = await h.error(FakeConnection(), register=pb.Register(user=user, password=password))
    assert err.code == pb.BAD_REQUEST


async def test_login_on_a_connection_closed_meanwhile_opens_no_session() -> None:
    h = await Harness.create()
    await h.register("alice")
    conn = FakeConnection()
    conn.is_open = lambda: False  # type: ignore[method-assign]
    err = await h.error(conn, login=pb.Login(user="alice", password="password-1", device="d9"))
    assert err.code == pb.BAD_REQUEST and conn.session is None
    assert h.registry.device_count("alice") == 1  # only the registering connection


class _SuspendingStore(MemoryStore):
    """Reads that give the loop a turn, as a PostgreSQL pool's do."""

    async def get(self, key: bytes) -> bytes | None:
        await asyncio.sleep(0)
        return await super().get(key)


async def test_two_logins_in_flight_on_one_connection_open_one_session() -> None:
    h = await Harness.create()
    h.store.__class__ = _SuspendingStore
    alice, bob = await h.register("alice", "da"), await h.register("bob", "db")
    tokens = []
    for client in (alice, bob):  # their first connections go away
        assert client.session is not None
        tokens.append(client.session.token)
        session, client.session = client.session, None
        await h.service.end_session(session)
    conn = FakeConnection()
    replies = await asyncio.gather(
        *(h.service.handle(conn, pb.ClientFrame(id=i, resume=pb.Resume(token=t))) for i, t in enumerate(tokens, 1)),
        return_exceptions=True,
    )
    refused = [r for r in replies if isinstance(r, ImError)]
    assert len(refused) == 1 and refused[0].code == pb.ALREADY_LOGGED_IN, replies
    assert conn.session is not None
    await h.service.end_session(conn.session)  # the connection closes: the gateway ends conn.session
    assert h.registry.session_count() == 0


async def test_successful_logins_do_not_accumulate_throttle_counts() -> None:
    h = await Harness.create()
    await h.register("alice")
    for i in range(30):
        conn = await h.login("alice", f"dev{i % 3}")
        assert conn.session is not None
    assert h.service.throttle.retry_after("10.9.9.9", "alice", h.clock.now()) == 0.0


async def test_client_cannot_set_server_only_fields_through_unknown_send_fields() -> None:
    h = await Harness.create()
    alice, bob = await h.register("alice"), await h.register("bob")
    evil = pb.Message(recalled=True, group="evilgroup", ref=42)
    send = pb.Send(to="bob", text="hi")
    raw = send.SerializeToString() + evil.SerializeToString()  # unknown to Send, known to Message
    await h.call(alice, send=pb.Send.FromString(raw))
    [msg] = bob.messages()
    assert (msg.recalled, msg.group, msg.ref) == (False, "", 0)


async def test_operations_need_login_and_unknown_op_is_refused() -> None:
    h = await Harness.create()
    conn = FakeConnection()
    assert (await h.error(conn, send=pb.Send(to="bob", text="x"))).code == pb.UNAUTHENTICATED
    assert (await h.error(conn)).code == pb.UNKNOWN_OPERATION
    assert (await h.call(conn, ping=pb.Ping())).pong.server_time > 0


async def test_logins_refused_before_the_password_check_are_not_counted_as_wrong() -> None:
    h = await Harness.create()
    await h.register("alice")
    check = h.accounts.check_password

    async def busy(user: str, password: str) -> bool:
        raise ImError(pb.RATE_LIMITED, "too many logins in progress", retry_after=1.0)

    h.accounts.check_password = busy  # type: ignore[method-assign]
    conn = FakeConnection()
    for _ in range(10):
        assert (await h.error(conn, login=pb.Login(user="alice", password="password-1"))).code == pb.RATE_LIMITED
    h.accounts.check_password = check  # type: ignore[method-assign]
    assert (await h.call(conn, login=pb.Login(user="alice", password="password-1"))).session.user == "alice"


async def test_wrong_password_is_refused_and_slowed_down() -> None:
    h = await Harness.create()
    await h.register("alice")
    conn = FakeConnection()
    codes, waits = [], []
    for _ in range(4):
        err = await h.error(conn, login=pb.Login(user="alice", password="wrong-password"))
        codes.append(err.code)
        waits.append(err.retry_after)
    assert codes == [pb.AUTH_FAILED] * 4
    assert waits[:2] == [0.0, 0.0] and waits[2] > 0
    # while throttled, even the right password is refused without checking it
    err = await h.error(conn, login=pb.Login(user="alice", password="password-1"))
    assert err.code == pb.AUTH_FAILED and err.retry_after > 0
    h.clock.t += 60
    ok = await h.call(conn, login=pb.Login(user="alice", password="password-1"))
    assert ok.session.user == "alice"


async def test_send_push_sync_history_and_receipts() -> None:
    h = await Harness.create()
    alice, bob = await h.register("alice"), await h.register("bob")
    alice2 = await h.login("alice", "d2")
    sent = await h.send(alice, "bob", "hello", cmid="c1")
    assert sent.message_id > 0 and sent.delivered_devices == 1
    [pushed] = bob.messages()
    assert (pushed.text, getattr(pushed, "from"), pushed.to, pushed.id) == ("hello", "alice", "bob", sent.message_id)
    assert alice2.messages()[0].id == sent.message_id  # the sender's other device sees it
    assert alice.messages() == []  # the sending device has its Sent
    await h.call(bob, delivery_ack=pb.DeliveryAck(ids=[sent.message_id]))
    delivered = alice.of_kind("delivered")
    assert delivered and list(delivered[0].delivered.message_ids) == [sent.message_id]
    assert delivered[0].delivered.by == "bob"
    page = (await h.call(bob, sync=pb.Sync(after=0))).page
    assert [m.text for m in page.messages] == ["hello"] and page.cursor == sent.message_id and not page.more
    page = (await h.call(alice, sync=pb.Sync(after=0))).page
    assert [m.text for m in page.messages] == ["hello"]  # own sent messages sync too
    history = (await h.call(bob, history=pb.History(peer="alice"))).page
    assert [m.id for m in history.messages] == [sent.message_id]


async def test_idempotent_retry_returns_same_id_and_is_not_redelivered() -> None:
    h = await Harness.create()
    alice, bob = await h.register("alice"), await h.register("bob")
    first = await h.send(alice, "bob", "once", cmid="same")
    again = await h.send(alice, "bob", "once", cmid="same")
    assert again.duplicate and again.message_id == first.message_id and again.timestamp == first.timestamp
    assert len(bob.messages()) == 1
    h.messenger._sent.clear()  # forget the in-memory cache: the store still knows the id
    third = await h.send(alice, "bob", "once", cmid="same")
    assert third.duplicate and third.message_id == first.message_id
    page = (await h.call(bob, sync=pb.Sync(after=0))).page
    assert len(page.messages) == 1


async def test_sync_and_history_page() -> None:
    h = await Harness.create()
    alice, bob = await h.register("alice"), await h.register("bob")
    ids = [(await h.send(alice, "bob", f"m{i}")).message_id for i in range(7)]
    assert ids == sorted(ids)
    seen: list[int] = []
    after = 0
    while True:
        page = (await h.call(bob, sync=pb.Sync(after=after, limit=3))).page
        seen += [m.id for m in page.messages]
        after = page.cursor
        if not page.more:
            break
    assert seen == ids
    newest = (await h.call(bob, history=pb.History(peer="alice", limit=3))).page
    assert [m.text for m in newest.messages] == ["m4", "m5", "m6"] and newest.more
    older = (await h.call(bob, history=pb.History(peer="alice", before=newest.cursor, limit=10))).page
    assert [m.text for m in older.messages] == ["m0", "m1", "m2", "m3"] and not older.more


async def test_pages_end_at_a_byte_budget_and_page_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A page of 1,000 large messages would stall the loop while it is encoded: pages also
    end once their messages pass PAGE_BYTES, and the cursor pages on without gaps."""
    monkeypatch.setattr(messaging, "PAGE_BYTES", 3_000)
    h = await Harness.create()
    alice, bob = await h.register("alice"), await h.register("bob")
    ids = [(await h.send(alice, "bob", f"{i:04d}" + "x" * 900)).message_id for i in range(10)]
    seen: list[int] = []
    after, pages = 0, 0
    while True:
        page = (await h.call(bob, sync=pb.Sync(after=after, limit=1000))).page
        assert 1 <= len(page.messages) <= 4
        seen += [m.id for m in page.messages]
        after, pages = page.cursor, pages + 1
        if not page.more:
            break
    assert seen == ids and pages >= 3
    newest = (await h.call(bob, history=pb.History(peer="alice", limit=1000))).page
    assert [m.id for m in newest.messages] == ids[-len(newest.messages) :] and newest.more
    older = (await h.call(bob, history=pb.History(peer="alice", before=newest.cursor, limit=1000))).page
    assert older.messages[-1].id == ids[-len(newest.messages) - 1]
    monkeypatch.setattr(messaging, "PAGE_BYTES", 10)  # one message always fits
    assert len((await h.call(bob, sync=pb.Sync(after=0, limit=1000))).page.messages) == 1


async def test_send_errors() -> None:
    h = await Harness.create()
    alice = await h.register("alice")
    assert (await h.error(alice, send=pb.Send(to="nobody", text="x"))).code == pb.NOT_FOUND
    assert (await h.error(alice, send=pb.Send(to="bad name", text="x"))).code == pb.BAD_REQUEST
    big = await h.error(alice, send=pb.Send(to="alice", text="x" * 1001))
    assert big.code == pb.TOO_LARGE
    ext = pb.Send(to="alice", text="x")
    ext.ext.update({f"k{i}": "v" for i in range(40)})
    assert (await h.error(alice, send=ext)).code == pb.TOO_LARGE


@pytest.mark.parametrize("reserved", [2, 17, 31])
async def test_reserved_message_types_are_refused(reserved: int) -> None:
    h = await Harness.create()
    alice = await h.register("alice")
    err = await h.error(alice, send=pb.Send(to="alice", text="x", type=reserved))
    assert err.code == pb.BAD_REQUEST


async def test_replacing_the_only_device_does_not_flap_presence() -> None:
    h = await Harness.create()
    watcher = await h.register("watcher")
    await h.call(watcher, subscribe=pb.Subscribe(users=["bob"]))
    await h.register("bob", device="phone")
    await h.login("bob", "phone")
    assert [p.presence.online for p in watcher.of_kind("presence")] == [True]


async def test_custom_payload_round_trips() -> None:
    h = await Harness.create()
    alice, bob = await h.register("alice"), await h.register("bob")
    req = pb.Send(to="bob", type=77, data=b"\x00\x01binary", client_msg_id="c")
    req.ext["kind"] = "location"
    await h.call(alice, send=req)
    [msg] = bob.messages()
    assert (msg.type, msg.data, dict(msg.ext)) == (77, b"\x00\x01binary", {"kind": "location"})


async def test_device_limit_kick_oldest() -> None:
    h = await Harness.create(max_devices=2)
    first = await h.register("alice", device="d1")
    h.clock.t += 1
    second = await h.login("alice", "d2")
    h.clock.t += 1
    third = await h.login("alice", "d3")
    assert [k[0] for k in first.kicked] == [pb.DEVICE_LIMIT_KICK]
    assert second.kicked == [] and third.session is not None
    assert h.registry.device_count("alice") == 2


async def test_device_limit_refuse_and_same_device_replaces() -> None:
    h = await Harness.create(max_devices=1, policy="refuse")
    first = await h.register("alice", device="d1")
    refused = await h.error(FakeConnection(), login=pb.Login(user="alice", password="password-1", device="d2"))
    assert refused.code == pb.DEVICE_LIMIT
    again = await h.login("alice", "d1")
    assert [k[0] for k in first.kicked] == [pb.REPLACED] and again.session is not None


async def test_presence_subscription_online_offline() -> None:
    h = await Harness.create()
    watcher = await h.register("watcher")
    reply = await h.call(watcher, subscribe=pb.Subscribe(users=["bob"]))
    assert [(p.user, p.online) for p in reply.presences.presences] == [("bob", False)]
    bob = await h.register("bob")
    bob2 = await h.login("bob", "d2")
    assert bob2.session is not None
    await h.service.end_session(bob.session)  # type: ignore[arg-type]
    await h.service.end_session(bob2.session)  # type: ignore[arg-type]
    events = [(p.presence.user, p.presence.online) for p in watcher.of_kind("presence")]
    assert events == [("bob", True), ("bob", False)]  # one online (first device), one offline (last)


async def test_resume_by_token_and_logout_revokes() -> None:
    h = await Harness.create()
    alice = await h.register("alice", device="phone")
    assert alice.session is not None
    token = alice.session.token
    conn = FakeConnection()
    reply = await h.call(conn, resume=pb.Resume(token=token))
    assert reply.session.user == "alice" and reply.session.device == "phone"
    await h.call(conn, logout=pb.Logout())
    assert conn.closed == (1000, "logged out")
    err = await h.error(FakeConnection(), resume=pb.Resume(token=token))
    assert err.code == pb.AUTH_FAILED


async def test_no_store_mode_delivers_online_and_refuses_offline() -> None:
    h = await Harness.create(durable=False)
    alice, bob = await h.register("alice"), await h.register("bob")
    sent = await h.send(alice, "bob", "live")
    assert sent.delivered_devices == 1 and bob.messages()[0].text == "live"
    await h.service.end_session(bob.session)  # type: ignore[arg-type]
    err = await h.error(alice, send=pb.Send(to="bob", text="later"))
    assert err.code == pb.RECIPIENT_OFFLINE
    page = (await h.call(alice, sync=pb.Sync(after=0))).page
    assert list(page.messages) == []


async def test_device_cursor_persists_acks() -> None:
    h = await Harness.create()
    alice, bob = await h.register("alice"), await h.register("bob", device="laptop")
    sent = await h.send(alice, "bob", "hello")
    await h.call(bob, delivery_ack=pb.DeliveryAck(ids=[sent.message_id]))
    await h.service.end_session(bob.session)  # type: ignore[arg-type]
    again = await h.login("bob", "laptop")
    assert again.session is not None and again.session.acked == sent.message_id


async def test_a_send_epoch_spares_the_store_check_only_while_it_is_current() -> None:
    h = await Harness.create()
    alice, bob = await h.register("alice"), await h.register("bob")
    epoch = alice.session.send_epoch if alice.session is not None else ""
    assert epoch
    batches: list[list[object]] = []
    write = h.store.write

    async def recording(ops: list[object]) -> None:
        batches.append(list(ops))
        await write(ops)  # type: ignore[arg-type]

    h.store.write = recording  # type: ignore[method-assign]
    first = await h.send(alice, "bob", "one", cmid=f"{epoch}:1")
    assert not any(isinstance(op, Insert) for op in batches[-1])  # known fresh: a Put
    assert not first.send_epoch  # the session knows the epoch already
    assert (await h.send(alice, "bob", "one", cmid=f"{epoch}:1")).duplicate  # the map holds it
    await h.send(alice, "bob", "two", cmid="no-epoch")
    assert any(isinstance(op, Insert) for op in batches[-1])  # checked
    h.messenger._sent.clear()  # as after a restart: the epoch no longer vouches for the map
    third = await h.send(alice, "bob", "one", cmid=f"{epoch}:1")
    assert third.duplicate and third.message_id == first.message_id  # found by the checked Insert
    assert third.send_epoch and third.send_epoch != epoch  # told once, then not again
    assert not (await h.send(alice, "bob", "three", cmid=f"{third.send_epoch}:3")).send_epoch
    assert not any(isinstance(op, Insert) for op in batches[-1])
    stored = {m.id: m.text for m in bob.messages()}  # a retry found in the store is pushed again, same id
    assert sorted(stored.values()) == ["one", "three", "two"]


async def test_an_id_with_a_non_ascii_digit_epoch_is_checked_and_its_retry_answers() -> None:
    h = await Harness.create()
    alice = await h.register("alice")
    await h.register("bob")
    boot = alice.session.send_epoch.split(".")[0] if alice.session else ""
    cmid = f"{boot}.\u00b2:x"  # '²'.isdigit() holds, int('²') raises
    first = await h.send(alice, "bob", "hi", cmid)
    again = await asyncio.wait_for(h.send(alice, "bob", "hi", cmid), 2)
    assert again.duplicate and again.message_id == first.message_id and not h.messenger._inflight


async def test_a_chunked_send_and_a_plain_retry_of_its_epoch_id_store_one_message() -> None:
    h = await Harness.create()
    alice, bob = await h.register("alice"), await h.register("bob")
    cmid = f"{alice.session.send_epoch if alice.session else ''}:same-message"
    start = pb.ChunkStart(upload="u1", size=5, text=True)
    start.send.CopyFrom(pb.Send(to="bob", client_msg_id=cmid))
    await h.call(alice, chunk_start=start)
    await h.call(alice, chunk=pb.Chunk(upload="u1", offset=0, data=b"hello"))
    first = (await h.call(alice, chunk_end=pb.ChunkEnd(upload="u1"))).sent
    retry = await h.send(alice, "bob", "hello", cmid)  # the same message again, not chunked
    assert retry.duplicate and retry.message_id == first.message_id
    assert len((await h.call(bob, sync=pb.Sync(after=0))).page.messages) == 1


async def test_a_send_stored_in_doubt_keeps_its_retry_checked_however_many_sends_fail() -> None:
    h = await Harness.create()
    alice, mallory = await h.register("alice"), await h.register("mallory")
    await h.register("bob")
    cmid = f"{alice.session.send_epoch if alice.session else ''}:m1"
    wall = h.clock.wall_ms
    h.clock.wall_ms = -10_000 - int((h.clock.t - 1000.0) * 1000)  # a clock before 1970: not remembered
    first = await h.send(alice, "bob", "hello", cmid)
    assert first.timestamp < 0
    h.clock.wall_ms = wall
    for i in range(200):  # failures before any write leave no trace in the recent-sends map
        with pytest.raises(ImError):
            await h.send(mallory, "nobody", "x", f"c{i}")
    retry = await h.send(alice, "bob", "hello", cmid)
    assert retry.duplicate and retry.message_id == first.message_id
