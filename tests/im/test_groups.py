"""Groups, in process: roles, approvals, bans, mutes, dissolve, limits, paging, notices."""

from __future__ import annotations

from im import client_pb2 as pb
from tests.im.spaces_helpers import act, code, create, group_pushes, gsend, gsync, make, users


async def test_create_info_and_my_groups() -> None:
    h = await make()
    alice, bob, carol = await users(h, "alice", "bob", "carol")
    reply = await h.call(alice, group_create=pb.GroupCreate(name="team", topic="t", members=["bob"], fields={"k": "v"}))
    info = reply.group
    assert info.owner == "alice" and info.member_count == 2 and info.role == pb.GROUP_OWNER
    assert info.join_policy == pb.JOIN_OPEN and info.max_members == 2000 and info.fields["k"] == "v"
    assert info.last_seq == 1  # the CREATED notice
    got = (await h.call(bob, group_info=pb.GroupGet(group=info.group))).group
    assert got.name == "team" and got.role == pb.GROUP_MEMBER
    assert await code(h, carol, group_info=pb.GroupGet(group=info.group)) == "NOT_A_MEMBER"
    mine = (await h.call(bob, my_groups=pb.MyGroups())).groups.groups
    assert [(g.group, g.unread, g.role) for g in mine] == [(info.group, 1, pb.GROUP_MEMBER)]
    assert (await h.call(carol, my_groups=pb.MyGroups())).groups.groups == []
    # the creation notice reached bob live
    assert [m.type for m in group_pushes(bob)] == [pb.TYPE_GROUP_CREATED]


async def test_create_refuses_unknown_members_and_bad_limits() -> None:
    h = await make(group_max_members=3)
    (alice,) = await users(h, "alice")
    assert await code(h, alice, group_create=pb.GroupCreate(name="g", members=["ghost"])) == "NOT_FOUND"
    assert await code(h, alice, group_create=pb.GroupCreate(name="")) == "BAD_REQUEST"
    assert await code(h, alice, group_create=pb.GroupCreate(name="g", max_members=4)) == "BAD_REQUEST"
    await users(h, "b", "c", "d")
    assert await code(h, alice, group_create=pb.GroupCreate(name="g", members=["b", "c", "d"])) == "GROUP_FULL"


async def test_open_group_apply_joins_and_approval_group_waits() -> None:
    h = await make()
    alice, bob, carol = await users(h, "alice", "bob", "carol")
    open_g = await create(h, alice)
    await act(h, bob, open_g, pb.GROUP_APPLY)
    assert (await h.call(bob, group_info=pb.GroupGet(group=open_g))).group.role == pb.GROUP_MEMBER
    closed = await create(h, alice, join_policy=pb.JOIN_APPROVAL)
    alice.pushes.clear()
    await act(h, carol, closed, pb.GROUP_APPLY, text="let me in")
    assert await code(h, carol, group_info=pb.GroupGet(group=closed)) == "NOT_A_MEMBER"
    applied = group_pushes(alice)
    assert [(m.type, m.ext["user"], m.seq) for m in applied] == [(pb.TYPE_MEMBER_APPLIED, "carol", 0)]
    page = (await h.call(alice, group_members=pb.GroupMembers(group=closed, applications=True))).group_members
    assert [(m.user, m.text) for m in page.members] == [("carol", "let me in")]
    await act(h, alice, closed, pb.GROUP_APPROVE, "carol")
    assert (await h.call(carol, group_info=pb.GroupGet(group=closed))).group.member_count == 2
    # reject
    dave, erin = await users(h, "dave", "erin")
    await act(h, dave, closed, pb.GROUP_APPLY)
    await act(h, alice, closed, pb.GROUP_REJECT, "dave")
    assert [m.type for m in group_pushes(dave)] == [pb.TYPE_APPLICATION_REJECTED]
    assert await code(h, dave, group_info=pb.GroupGet(group=closed)) == "NOT_A_MEMBER"
    assert await code(h, alice, group_member=pb.GroupMember(group=closed, action=pb.GROUP_APPROVE, user="dave")) == (
        "NOT_FOUND"
    )
    # plain members cannot approve or invite into an approval group
    await act(h, erin, closed, pb.GROUP_APPLY)
    assert await code(h, carol, group_member=pb.GroupMember(group=closed, action=pb.GROUP_APPROVE, user="erin")) == (
        "FORBIDDEN"
    )
    assert await code(h, carol, group_member=pb.GroupMember(group=closed, action=pb.GROUP_INVITE, user="dave")) == (
        "FORBIDDEN"
    )


async def test_invite_roles_kick_and_owner_rules() -> None:
    h = await make()
    alice, bob, carol, dave = await users(h, "alice", "bob", "carol", "dave")
    g = await create(h, alice, "bob")
    await act(h, bob, g, pb.GROUP_INVITE, "carol")  # members may invite into open groups
    assert await code(h, bob, group_member=pb.GroupMember(group=g, action=pb.GROUP_KICK, user="carol")) == "FORBIDDEN"
    assert await code(h, bob, group_member=pb.GroupMember(group=g, action=pb.GROUP_SET_ROLE, user="carol",
                                                           role=pb.GROUP_ADMIN)) == "FORBIDDEN"  # fmt: skip
    await act(h, alice, g, pb.GROUP_SET_ROLE, "bob", role=pb.GROUP_ADMIN)
    # an admin kicks members but not other admins or the owner
    await act(h, alice, g, pb.GROUP_SET_ROLE, "carol", role=pb.GROUP_ADMIN)
    assert await code(h, bob, group_member=pb.GroupMember(group=g, action=pb.GROUP_KICK, user="carol")) == "FORBIDDEN"
    assert await code(h, bob, group_member=pb.GroupMember(group=g, action=pb.GROUP_KICK, user="alice")) == "FORBIDDEN"
    await act(h, alice, g, pb.GROUP_SET_ROLE, "carol", role=pb.GROUP_MEMBER)
    await act(h, bob, g, pb.GROUP_KICK, "carol")
    assert await code(h, carol, group_send=pb.GroupSend(group=g, text="x")) == "NOT_A_MEMBER"
    assert await code(h, bob, group_member=pb.GroupMember(group=g, action=pb.GROUP_KICK, user="dave")) == "NOT_A_MEMBER"
    # the owner cannot leave; transfer first
    assert await code(h, alice, group_member=pb.GroupMember(group=g, action=pb.GROUP_LEAVE)) == "FORBIDDEN"
    await act(h, alice, g, pb.GROUP_TRANSFER, "bob")
    info = (await h.call(alice, group_info=pb.GroupGet(group=g))).group
    assert info.owner == "bob" and info.role == pb.GROUP_ADMIN
    await act(h, alice, g, pb.GROUP_LEAVE)
    assert await code(h, alice, group_info=pb.GroupGet(group=g)) == "NOT_A_MEMBER"
    assert await code(h, dave, group_member=pb.GroupMember(group=g, action=pb.GROUP_LEAVE)) == "NOT_A_MEMBER"
    kinds = [m.type for m in (await gsync(h, bob, g)).messages]
    assert kinds == [
        pb.TYPE_GROUP_CREATED, pb.TYPE_MEMBER_JOINED, pb.TYPE_ROLE_CHANGED, pb.TYPE_ROLE_CHANGED,
        pb.TYPE_ROLE_CHANGED, pb.TYPE_MEMBER_KICKED, pb.TYPE_OWNER_CHANGED, pb.TYPE_MEMBER_LEFT,
    ]  # fmt: skip


async def test_ban_refuses_rejoin_and_invites_until_unbanned() -> None:
    h = await make()
    alice, bob, carol = await users(h, "alice", "bob", "carol")
    g = await create(h, alice, "bob", "carol")
    await act(h, alice, g, pb.GROUP_BAN, "bob")
    assert await code(h, bob, group_member=pb.GroupMember(group=g, action=pb.GROUP_APPLY)) == "BANNED"
    assert await code(h, carol, group_member=pb.GroupMember(group=g, action=pb.GROUP_INVITE, user="bob")) == "BANNED"
    assert await code(h, bob, group_send=pb.GroupSend(group=g, text="x")) == "NOT_A_MEMBER"
    banned = (await h.call(alice, group_members=pb.GroupMembers(group=g, banned=True))).group_members
    assert [m.user for m in banned.members] == ["bob"]
    assert await code(h, carol, group_members=pb.GroupMembers(group=g, banned=True)) == "FORBIDDEN"
    await act(h, alice, g, pb.GROUP_UNBAN, "bob")
    await act(h, bob, g, pb.GROUP_APPLY)
    assert (await h.call(bob, group_info=pb.GroupGet(group=g))).group.role == pb.GROUP_MEMBER


async def test_mute_member_and_whole_group() -> None:
    h = await make()
    alice, bob, carol = await users(h, "alice", "bob", "carol")
    g = await create(h, alice, "bob", "carol")
    await act(h, alice, g, pb.GROUP_MUTE, "bob", seconds=60)
    assert await code(h, bob, group_send=pb.GroupSend(group=g, text="x")) == "MUTED"
    h.clock.t += 61
    assert (await gsend(h, bob, g, "free again")).seq > 0
    await act(h, alice, g, pb.GROUP_MUTE, "bob")  # until unmuted
    h.clock.t += 10_000
    assert await code(h, bob, group_send=pb.GroupSend(group=g, text="x")) == "MUTED"
    await act(h, alice, g, pb.GROUP_UNMUTE, "bob")
    await gsend(h, bob, g, "ok")
    await h.call(alice, group_modify=pb.GroupModify(group=g, muted=True))
    assert await code(h, carol, group_send=pb.GroupSend(group=g, text="x")) == "MUTED"
    assert (await gsend(h, alice, g, "owner may")).seq > 0
    assert await code(h, carol, group_modify=pb.GroupModify(group=g, muted=False)) == "FORBIDDEN"


async def test_modify_info_notifies_and_checks_limits() -> None:
    h = await make()
    alice, bob = await users(h, "alice", "bob")
    g = await create(h, alice, "bob")
    bob.pushes.clear()
    info = (await h.call(alice, group_modify=pb.GroupModify(group=g, name="new", topic="tt", fields={"a": "1"}))).group
    assert (info.name, info.topic, dict(info.fields)) == ("new", "tt", {"a": "1"})
    [notice] = group_pushes(bob)
    assert notice.type == pb.TYPE_GROUP_INFO_CHANGED and notice.ext["changed"] == "name,topic,fields"
    info = (await h.call(alice, group_modify=pb.GroupModify(group=g, fields={"a": ""}, max_members=2))).group
    assert dict(info.fields) == {} and info.max_members == 2
    (carol,) = await users(h, "carol")
    assert await code(h, carol, group_member=pb.GroupMember(group=g, action=pb.GROUP_APPLY)) == "GROUP_FULL"
    assert await code(h, alice, group_member=pb.GroupMember(group=g, action=pb.GROUP_INVITE, user="carol")) == (
        "GROUP_FULL"
    )
    assert await code(h, alice, group_modify=pb.GroupModify(group=g, topic="x" * 2000)) == "TOO_LARGE"


async def test_dissolve_stops_everything_but_sync() -> None:
    h = await make()
    alice, bob, carol = await users(h, "alice", "bob", "carol")
    g = await create(h, alice, "bob")
    assert await code(h, bob, group_dissolve=pb.GroupDissolve(group=g)) == "FORBIDDEN"
    await gsend(h, bob, g, "last words")
    await h.call(alice, group_dissolve=pb.GroupDissolve(group=g))
    for op in (
        {"group_send": pb.GroupSend(group=g, text="x")},
        {"group_info": pb.GroupGet(group=g)},
        {"group_modify": pb.GroupModify(group=g, name="y")},
        {"group_member": pb.GroupMember(group=g, action=pb.GROUP_INVITE, user="carol")},
        {"group_dissolve": pb.GroupDissolve(group=g)},
    ):
        assert await code(h, bob, **op) == "GROUP_DISSOLVED", op
    assert await code(h, carol, group_member=pb.GroupMember(group=g, action=pb.GROUP_APPLY)) == "GROUP_DISSOLVED"
    page = await gsync(h, bob, g)
    assert page.messages[-1].type == pb.TYPE_GROUP_DISSOLVED
    listed = (await h.call(bob, my_groups=pb.MyGroups())).groups.groups
    assert listed[0].dissolved and listed[0].unread == 3
    await h.call(bob, group_read=pb.GroupRead(group=g, seq=page.last_seq))
    assert (await h.call(bob, my_groups=pb.MyGroups())).groups.groups == []


async def test_member_list_is_paged_by_name() -> None:
    h = await make()
    names = [f"u{i:03d}" for i in range(25)]
    conns = await users(h, "owner", *names)
    g = await create(h, conns[0], *names)
    seen: list[str] = []
    after = ""
    while True:
        page = (await h.call(conns[0], group_members=pb.GroupMembers(group=g, after=after, limit=10))).group_members
        seen += [m.user for m in page.members]
        after = page.cursor
        if not page.more:
            break
    assert seen == sorted(["owner", *names])


async def test_notices_are_recorded_for_offline_members() -> None:
    h = await make()
    alice, bob = await users(h, "alice", "bob")
    g = await create(h, alice, "bob")
    await h.service.end_session(bob.session)  # type: ignore[arg-type]
    (carol,) = await users(h, "carol")
    await act(h, carol, g, pb.GROUP_APPLY)
    await h.call(alice, group_modify=pb.GroupModify(group=g, topic="news"))
    bob2 = await h.login("bob", "d2")
    page = await gsync(h, bob2, g)
    assert [m.type for m in page.messages] == [
        pb.TYPE_GROUP_CREATED, pb.TYPE_MEMBER_JOINED, pb.TYPE_GROUP_INFO_CHANGED
    ]  # fmt: skip
    assert page.messages[1].ext["user"] == "carol"
    # a new member does not see history from before they joined
    assert [m.type for m in (await gsync(h, carol, g)).messages] == [pb.TYPE_MEMBER_JOINED, pb.TYPE_GROUP_INFO_CHANGED]


async def test_kicked_member_can_read_up_to_the_kick_notice_only() -> None:
    h = await make()
    alice, bob = await users(h, "alice", "bob")
    g = await create(h, alice, "bob")
    await gsend(h, alice, g, "before")
    await act(h, alice, g, pb.GROUP_KICK, "bob")
    assert group_pushes(bob)[-1].type == pb.TYPE_MEMBER_KICKED
    await gsend(h, alice, g, "after")
    page = await gsync(h, bob, g)
    assert [m.text for m in page.messages][-2:] == ["before", "alice removed bob"]
    assert "after" not in [m.text for m in group_pushes(bob)]
    assert (await h.call(bob, my_groups=pb.MyGroups())).groups.groups == []


async def test_state_survives_a_cache_flush() -> None:
    h = await make()
    alice, bob = await users(h, "alice", "bob")
    g = await create(h, alice, "bob", join_policy=pb.JOIN_APPROVAL)
    await act(h, alice, g, pb.GROUP_SET_ROLE, "bob", role=pb.GROUP_ADMIN)
    await gsend(h, bob, g, "x")
    h.service.spaces.groups._cache.clear()
    info = (await h.call(bob, group_info=pb.GroupGet(group=g))).group
    assert (info.role, info.join_policy, info.last_seq, info.member_count) == (pb.GROUP_ADMIN, pb.JOIN_APPROVAL, 3, 2)
    assert (await gsend(h, bob, g, "y")).seq == 4
