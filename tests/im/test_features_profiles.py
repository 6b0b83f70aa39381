"""Profiles and password change (im/profiles.py), in process."""

from __future__ import annotations

from im import client_pb2 as pb
from tests.im.harness import FakeConnection, Harness


async def test_profile_is_set_by_owner_and_readable_by_others() -> None:
    h = await Harness.create()
    alice, bob = await h.register("alice"), await h.register("bob")
    empty = (await h.call(bob, get_profile=pb.GetProfile(user="alice"))).profile
    assert empty == pb.Profile(user="alice")
    mine = pb.Profile(
        user="mallory", nickname="Alice", avatar_url="https://example.org/a.png", fields={"city": "Paris"}
    )
    saved = (await h.call(alice, set_profile=pb.SetProfile(profile=mine))).profile
    assert saved.user == "alice" and saved.updated_at == h.clock.now_ms()
    seen = (await h.call(bob, get_profile=pb.GetProfile(user="alice"))).profile
    assert (seen.nickname, seen.avatar_url, dict(seen.fields)) == (
        "Alice",
        "https://example.org/a.png",
        {"city": "Paris"},
    )
    assert (await h.error(bob, get_profile=pb.GetProfile(user="ghost"))).code == pb.NOT_FOUND


async def test_profile_limits() -> None:
    h = await Harness.create()
    alice = await h.register("alice")
    for profile, code in (
        (pb.Profile(nickname="n" * 65), pb.TOO_LARGE),
        (pb.Profile(avatar_url="javascript:alert(1)"), pb.BAD_REQUEST),
        (pb.Profile(fields={str(i): "v" for i in range(33)}), pb.TOO_LARGE),
    ):
        assert (await h.error(alice, set_profile=pb.SetProfile(profile=profile))).code == code


async def test_change_password() -> None:
    h = await Harness.create()
    alice = await h.register("alice")
    bad = await h.error(
        alice, change_password=pb.ChangePassword(old_password="wrong-pass", new_password="new-password")
    )
    assert bad.code == pb.AUTH_FAILED
    short = await h.error(alice, change_password=pb.ChangePassword(old_password="password-1", new_password="short"))
    assert short.code == pb.BAD_REQUEST
    await h.call(alice, change_password=pb.ChangePassword(old_password="password-1", new_password="new-password"))
    assert (await h.login("alice", "d2", password="new-password")).session is not None
    err = await h.error(FakeConnection(), login=pb.Login(user="alice", password="password-1"))
    assert err.code == pb.AUTH_FAILED
