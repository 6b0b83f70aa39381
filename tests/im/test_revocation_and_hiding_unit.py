"""Issue 9 gaps, in process: a password change (and an admin block) revokes the account's other
tokens and kicks its other sessions on every node; a block hides the blocker from the blocked
user's sessions on every node; an admin system message to one user reaches their devices on
other nodes live. Fake links as in tests/im/test_cross_node_features_unit.py."""

from __future__ import annotations

import pytest

from im import client_pb2 as pb
from im.admin_ops import AdminOps
from im.errors import ImError
from im.federation import Federation
from tests.im.harness import FakeConnection, Harness
from tests.im.test_cross_node_features_unit import settle, shared_network


async def resume(h: Harness, token: str, device: str = "") -> FakeConnection:
    conn = FakeConnection()
    await h.call(conn, resume=pb.Resume(token=token, device=device))
    return conn


def admin_ops(h: Harness, f: Federation | None = None) -> AdminOps:
    ops = AdminOps(
        store=h.store, keys=h.messenger._keys, registry=h.registry, messenger=h.messenger, metrics=h.metrics,
        now=h.clock.now, now_ms=h.clock.now_ms,
    )  # fmt: skip
    if f is not None:
        ops.remote_broadcasts.append(f.routing.broadcast)
        ops.remote_kicks.append(f.kick_user)
    return ops


async def test_password_change_revokes_other_tokens_and_kicks_other_sessions() -> None:
    h = await Harness.create()
    d1 = await h.register("alice", "d1")
    d2 = await h.login("alice", "d2")
    assert d1.session is not None and d2.session is not None
    old1, old2 = d1.session.token, d2.session.token
    reply = await h.call(d1, change_password=pb.ChangePassword(old_password="password-1", new_password="password-2"))
    fresh = reply.session
    assert fresh.user == "alice" and fresh.device == "d1" and fresh.token and fresh.token != old1
    assert d1.session is not None and d1.session.token == fresh.token and not d1.kicked
    assert [r for r, _ in d2.kicked] == [pb.CREDENTIALS_CHANGED]
    for token in (old1, old2):
        with pytest.raises(ImError) as caught:
            await resume(h, token)
        assert caught.value.code == pb.AUTH_FAILED
    again = await resume(h, fresh.token, "d1")  # the fresh token works (d1's session is replaced)
    assert again.session is not None and again.session.device == "d1"
    await h.login("alice", "d3", password="password-2")
    assert (await h.error(FakeConnection(), login=pb.Login(user="alice", password="password-1"))).code == pb.AUTH_FAILED


async def test_wrong_old_password_changes_nothing() -> None:
    h = await Harness.create()
    d1 = await h.register("alice", "d1")
    d2 = await h.login("alice", "d2")
    assert d2.session is not None
    token = d2.session.token
    err = await h.error(d1, change_password=pb.ChangePassword(old_password="nope-nope", new_password="password-2"))
    assert err.code == pb.AUTH_FAILED and not d2.kicked
    assert (await resume(h, token, "d2")).session is not None


async def test_password_change_kicks_the_sessions_on_other_nodes() -> None:
    (a, b), (la, lb), (fa, fb) = await shared_network(2)
    d1 = await a.register("alice", "d1")
    d2 = await b.login("alice", "d2")
    bob = await b.register("bob", "b1")
    await settle()
    assert d2.session is not None
    old = d2.session.token
    await a.call(d1, change_password=pb.ChangePassword(old_password="password-1", new_password="password-2"))
    await settle()
    assert [r for r, _ in d2.kicked] == [pb.CREDENTIALS_CHANGED]
    assert not bob.kicked and not d1.kicked
    assert fa.stats["kicks_out"] == 1 and fb.stats["kicks_in"] == 1
    with pytest.raises(ImError) as caught:  # the shared store refuses the old token on every node
        await resume(b, old, "d2")
    assert caught.value.code == pb.AUTH_FAILED


async def test_admin_block_revokes_tokens_and_kicks_everywhere() -> None:
    (a, b), _, (fa, fb) = await shared_network(2)
    ops = admin_ops(a, fa)
    a.service.session_guards.append(ops.guard_session)
    on_a = await a.register("bob", "b1")
    on_b = await b.login("bob", "b2")
    await settle()
    assert on_b.session is not None
    token = on_b.session.token
    result = await ops.block("bob", "spam")
    assert result["kicked"] == 2
    assert [r for r, _ in on_a.kicked] == [pb.ADMIN] and [r for r, _ in on_b.kicked] == [pb.ADMIN]
    with pytest.raises(ImError) as caught:
        await resume(b, token, "b2")
    assert caught.value.code == pb.AUTH_FAILED


async def test_block_hides_the_blocker_from_watchers_on_other_nodes() -> None:
    (a, b, c), _, (fa, fb, fc) = await shared_network(3)
    alice = await a.register("alice", "a1")
    bob_b = await b.register("bob", "b1")
    bob_c = await c.login("bob", "b2")
    carol = await b.register("carol", "c1")
    await settle()
    for h, conn in ((b, bob_b), (c, bob_c), (b, carol)):
        (seen,) = (await h.call(conn, subscribe=pb.Subscribe(users=["alice"]))).presences.presences
        assert seen.online
    await a.call(alice, block=pb.Block(user="bob"))
    await settle()
    for conn, h in ((bob_b, b), (bob_c, c)):
        (shown,) = [f.presence for f in conn.of_kind("presence")]
        assert shown.user == "alice" and not shown.online
        assert conn.session is not None and "alice" not in conn.session.watching
        assert conn not in [s.sink for s in h.registry.watchers_of("alice")]
    assert not carol.of_kind("presence")  # others still watch alice
    assert any(s.user == "carol" for s in b.registry.watchers_of("alice"))
    # alice leaves and comes back: carol hears it, bob (blocked) does not see her online
    bob_b.pushes.clear()
    assert alice.session is not None
    await a.service.end_session(alice.session)
    await settle()
    await a.login("alice", "a2")
    await settle()
    assert all(not f.presence.online for f in bob_b.of_kind("presence"))
    assert [f.presence.online for f in carol.of_kind("presence")][-1] is True
    (again,) = (await b.call(bob_b, subscribe=pb.Subscribe(users=["alice"]))).presences.presences
    assert not again.online


async def test_admin_message_to_a_user_reaches_their_devices_on_other_nodes() -> None:
    (a, b, c), _, (fa, fb, fc) = await shared_network(3)
    here = await a.register("bob", "b1")
    there = await b.login("bob", "b2")
    other = await c.register("carol", "c1")
    await settle()
    result = await admin_ops(a, fa).broadcast("your quota is almost full", to="bob")
    assert (result.pushed, result.remote, result.stored) == (1, 1, 1)
    for conn in (here, there):
        (got,) = conn.messages()
        assert got.to == "bob" and got.type == pb.TYPE_SYSTEM and got.text == "your quota is almost full"
    assert not other.messages()
    assert fa.stats["push_out_broadcast"] == 1 and fb.stats["push_in_broadcast"] == 1
    assert fc.stats["push_in_broadcast"] == 0
