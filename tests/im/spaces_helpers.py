"""Helpers for the group, room, stream and chunk tests: the in-process harness with
``SpacesOptions`` of the test's choice, and short calls."""

from __future__ import annotations

from im import client_pb2 as pb
from im.errors import ImError
from im.spaces import Spaces, SpacesOptions
from tests.im.harness import FakeConnection, Harness


async def make(**options: object) -> Harness:
    """A harness whose service runs ``Spaces`` with these options (SpacesOptions fields)."""
    h = await Harness.create()
    service = h.service
    spaces = Spaces(
        messenger=h.messenger, accounts=h.accounts, registry=h.registry, now=h.clock.now, now_ms=h.clock.now_ms,
        metrics=h.metrics, check_send=service.features.before_send, check_user=service.features.roster.check_send,
        options=SpacesOptions(**options),  # type: ignore[arg-type]
    ) if options else service.spaces  # fmt: skip
    service.spaces = spaces
    service._handlers.update(spaces.handlers())
    return h


async def users(h: Harness, *names: str) -> list[FakeConnection]:
    return [await h.register(name) for name in names]


async def create(h: Harness, owner: FakeConnection, *members: str, **fields: object) -> str:
    reply = await h.call(owner, group_create=pb.GroupCreate(name="g", members=list(members), **fields))  # type: ignore[arg-type]
    return reply.group.group


async def act(
    h: Harness, conn: FakeConnection, group: str, action: int, user: str = "", **kw: object
) -> pb.ServerFrame:
    return await h.call(conn, group_member=pb.GroupMember(group=group, action=action, user=user, **kw))  # type: ignore[arg-type]


async def code(h: Harness, conn: FakeConnection, **op: object) -> str:
    try:
        await h.call(conn, **op)
    except ImError as exc:
        return pb.ErrorCode.Name(exc.code)
    return "OK"


async def gsend(h: Harness, conn: FakeConnection, group: str, text: str, to: str = "", cmid: str = "") -> pb.Sent:
    reply = await h.call(conn, group_send=pb.GroupSend(group=group, text=text, to=to, client_msg_id=cmid))
    return reply.sent


async def gsync(h: Harness, conn: FakeConnection, group: str, after: int = 0, limit: int = 0) -> pb.GroupPage:
    reply = await h.call(conn, group_sync=pb.GroupSync(group=group, after_seq=after, limit=limit))
    return reply.group_page


def group_pushes(conn: FakeConnection) -> list[pb.Message]:
    return [p.group_message for p in conn.of_kind("group_message")]
