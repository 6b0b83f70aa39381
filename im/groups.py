"""Groups (1:N): membership, roles, approvals, bans, mutes, and group messages by read diffusion.

State. A group is ``records.Group`` under ``H|blind(group)``; every user who ever stood in
it (member, applicant, banned, former member) has a ``records.GroupMembership`` under
``N|blind(group)|blind(user)``; members have a ``U|blind(user)|blind(group)`` index entry
("my groups"). A group is loaded whole on first use (one get, one scan, one reverse scan of
its log) and cached (:class:`GroupState`); every change is applied to the cached state
first (so checks and changes are atomic on the event loop) and then written as ONE store
batch together with its notice. A failed write marks the state stale: it is reloaded from
the store once no write of it is pending.

Read diffusion. A group message (or notice: types 16-30 in ``client.proto``) is stored
ONCE, under ``G|blind(group)|seq``. ``seq`` comes from a per-group in-memory counter seeded
from the log's last key; writes of one group may be in flight together (the store
group-commits them), and a *watermark* (``committed``) advances only over a gap-free prefix
of finished writes: pushes go out in seq order, and ``group_sync`` never reads past the
watermark, so a reader can never skip a seq that commits late. A seq whose write failed is
skipped (a hole: clients treat seq as ordered, not dense).

Visibility. A member sees seq in ``(join_seq, committed]`` (not the history before they
joined); a former member (left, kicked, banned) keeps read access up to ``left_seq``, the
notice that removed them, so an offline member learns why they are gone. A private message
inside a group (``GroupSend.to``) is stored in the log like any other but returned and
pushed only to its sender and target. Unread = last visible seq - max(read_seq, join_seq).

Cross-node story (choice: a *sequence owner* per group). Each group has one sequence owner,
the node whose PeerId is closest (XOR of the Kademlia keys) to sha256(group id) among this
node and the linked nodes on the same store (im/federation.py). Other nodes forward every
operation naming a group (``group_send``, membership changes, info, sync, read) to the owner
as a FORWARD, which runs it here as for a local session and assigns seq; only the owner
caches a group (:attr:`Groups.owned`), so there is one counter and one watermark. A group is
created where it is asked for (its id is only known then) and is not kept in the cache of a
node that does not own it; ``my_groups`` reads groups owned elsewhere fresh from the store.
When the set of linked nodes changes (:meth:`Groups.ownership_changed`) cached groups are
reloaded from the store before their next use, since ownership may have moved.
Fan-out goes through :meth:`GroupRouter.route_to_members`: the local router pushes to this
node's sessions; the federation's router adds ONE copy of the push per other node holding
members' devices, and that node delivers to its local members.
Id-based ordering was rejected: per-group dense-ish seq makes unread counts a subtraction.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from im import client_pb2 as pb
from im import records_pb2 as rec
from im.accounts import USER_NAME, Accounts
from im.errors import ImError
from im.ids import MessageIdGenerator
from im.keys import KeySchema, unpack_id
from im.recent import RecentMap, join_key, pack_ints, unpack_ints
from im.sessions import Push, Session, SessionRegistry
from store.api import Delete, Insert, Op, Put, RecordStore
from store.errors import KeyExists

__all__ = [
    "GroupOptions",
    "GroupRouter",
    "GroupState",
    "Groups",
    "LocalGroupRouter",
    "MemberState",
    "GROUP_ID",
]

log = logging.getLogger(__name__)

GROUP_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_MAX_NAME = 128
_MAX_TEXT = 1024
_MAX_FIELDS = 32
_MAX_FIELD_BYTES = 4096
_MAX_CMID = 128
_FIRST_APP_TYPE = 32
_CACHE = 10_000
_RECENT_SENDS = 100_000


class MemberState(IntEnum):
    NONE = 0
    MEMBER = 1
    APPLIED = 2
    BANNED = 3
    LEFT = 4  # left, kicked (or banned, which keeps BANNED)


@dataclass(frozen=True, slots=True)
class GroupOptions:
    max_members: int = 2000  # --group-max-members: default and upper bound of a group's max_members
    max_body: int = 16384  # one frame's body; chunked uploads pass their own limit
    max_groups_listed: int = 5000


class GroupRouter(Protocol):
    """Where a group push goes. The routing layer (cross-node) implements the same call."""

    def route_to_members(self, group: str, members: Iterable[str], push: Push) -> int:
        """Deliver ``push`` to every online device of ``members``; return devices reached here."""
        ...


class LocalGroupRouter:
    """Pushes to this node's sessions only (single node; the seam for one copy per node)."""

    def __init__(self, registry: SessionRegistry) -> None:
        self._registry = registry

    def route_to_members(self, group: str, members: Iterable[str], push: Push) -> int:
        devices = 0
        sessions_of = self._registry.sessions_of
        for user in members:
            for session in sessions_of(user):
                session.sink.push(push)
                devices += 1
        return devices


@dataclass(eq=False, slots=True)
class GroupState:
    """One group, cached: info, everyone's standing, and the log's sequence state."""

    info: rec.Group
    members: dict[str, rec.GroupMembership]
    next_seq: int  # last assigned seq
    committed: int  # watermark: every seq <= committed is written (or failed)
    member_count: int = 0
    done: dict[int, tuple[pb.Message | None, tuple[str, ...]]] = field(default_factory=dict)
    stale: bool = False

    def role(self, user: str) -> int:
        m = self.members.get(user)
        return m.role if m is not None and m.state == MemberState.MEMBER else 0

    def member_names(self) -> Iterable[str]:
        return (u for u, m in self.members.items() if m.state == MemberState.MEMBER)

    def admins(self) -> list[str]:
        return [u for u, m in self.members.items() if m.state == MemberState.MEMBER and m.role >= pb.GROUP_ADMIN]

    @property
    def pending(self) -> int:
        return self.next_seq - self.committed


class _Conn(Protocol):
    session: Session | None


Handler = Callable[[_Conn, pb.ClientFrame], Awaitable[pb.ServerFrame]]


class Groups:
    """Every group operation of the client protocol, for the sessions of this node."""

    def __init__(
        self,
        *,
        store: RecordStore,
        keys: KeySchema,
        accounts: Accounts,
        registry: SessionRegistry,
        ids: MessageIdGenerator,
        now_ms: Callable[[], int],
        options: GroupOptions | None = None,
        router: GroupRouter | None = None,
    ) -> None:
        self._store = store
        self._keys = keys
        self._accounts = accounts
        self._registry = registry
        self._ids = ids
        self._now_ms = now_ms
        self.options = options or GroupOptions()
        self.router: GroupRouter = router or LocalGroupRouter(registry)
        self._cache: OrderedDict[str, GroupState] = OrderedDict()
        self._loading: dict[str, asyncio.Future[GroupState | None]] = {}
        # join_key(user, group, client message id) -> pack_ints(message id, timestamp, seq):
        # atomic entries, never walked by the garbage collector (im/recent.py)
        self._sent: RecentMap[str, int] = RecentMap(_RECENT_SENDS)
        self.stats = {"messages": 0, "notices": 0, "pushed": 0, "write_failures": 0}
        #: False for groups whose sequence owner is another node: never cached here (im/federation.py)
        self.owned: Callable[[str], bool] = lambda group: True

    def ownership_changed(self) -> None:
        """The set of nodes changed: reload cached groups (once idle) before their next use."""
        for state in self._cache.values():
            state.stale = True

    # ------------------------------------------------------------------ loading

    async def _load(self, group: str) -> GroupState | None:
        if not GROUP_ID.fullmatch(group):
            raise ImError(pb.BAD_REQUEST, "invalid group id")
        if not self.owned(group):
            self._cache.pop(group, None)
            return await self._read(group)  # a fresh copy, for reading only (my_groups)
        state = self._cache.get(group)
        if state is not None and not (state.stale and state.pending == 0):
            self._cache.move_to_end(group)
            return state
        waiting = self._loading.get(group)
        if waiting is not None:
            return await asyncio.shield(waiting)
        future: asyncio.Future[GroupState | None] = asyncio.get_running_loop().create_future()
        self._loading[group] = future
        try:
            state = await self._read(group)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            del self._loading[group]
        future.set_result(state)
        if state is not None:
            self._remember(group, state)
        else:
            self._cache.pop(group, None)
        return state

    async def _read(self, group: str) -> GroupState | None:
        raw = await self._store.get(self._keys.group(group))
        if raw is None:
            return None
        info = rec.Group.FromString(raw)
        start, end = self._keys.memberships_range(group)
        members: dict[str, rec.GroupMembership] = {}
        while True:
            rows = await self._store.scan(start, end, limit=10_000)
            for _, value in rows:
                m = rec.GroupMembership.FromString(value)
                members[m.user] = m
            if len(rows) < 10_000:
                break
            start = rows[-1][0] + b"\x00"
        prefix = self._keys.group_log_prefix(group)
        lo, hi = self._keys.group_log_range(group, 0, 2**64 - 1)
        last = await self._store.scan(lo, hi, limit=1, reverse=True)
        seq = unpack_id(last[0][0]) if last and last[0][0].startswith(prefix) else 0
        state = GroupState(info=info, members=members, next_seq=seq, committed=seq)
        state.member_count = sum(1 for m in members.values() if m.state == MemberState.MEMBER)
        return state

    def _remember(self, group: str, state: GroupState) -> None:
        self._cache[group] = state
        self._cache.move_to_end(group)
        if len(self._cache) > _CACHE:
            for name, old in list(self._cache.items())[: len(self._cache) - _CACHE]:
                if old.pending == 0:
                    del self._cache[name]

    async def _existing(self, group: str) -> GroupState:
        state = await self._load(group)
        if state is None:
            raise ImError(pb.NOT_FOUND, "no such group")
        return state

    async def _as_member(self, group: str, user: str, *, allow_dissolved: bool = False) -> GroupState:
        """The group, if ``user`` is a member of it (NOT_A_MEMBER / GROUP_DISSOLVED otherwise)."""
        state = await self._load(group)
        m = state.members.get(user) if state is not None else None
        if state is None or m is None or m.state != MemberState.MEMBER:
            raise ImError(pb.NOT_A_MEMBER, "you are not a member of this group")  # also: no such group
        if state.info.dissolved and not allow_dissolved:
            raise ImError(pb.GROUP_DISSOLVED, "the group was dissolved")
        return state

    def _need_role(self, state: GroupState, user: str, role: int, what: str) -> None:
        if state.role(user) < role:
            raise ImError(pb.FORBIDDEN, f"only the {'owner' if role == pb.GROUP_OWNER else 'owner or admins'} {what}")

    # ------------------------------------------------------------------ writes and the watermark

    def _notice(
        self, state: GroupState, actor: Session | None, kind: int, text: str, *, user: str = "", **ext: str
    ) -> pb.Message:
        now = self._now_ms()
        state.next_seq += 1
        msg = pb.Message(
            type=kind, text=text, group=state.info.group, seq=state.next_seq, id=self._ids.next_id(now), timestamp=now
        )
        if actor is not None:
            setattr(msg, "from", actor.user)
            msg.from_device = actor.device
        if user:
            msg.ext["user"] = user
        msg.ext.update(ext)
        return msg

    async def _commit(
        self, state: GroupState, ops: list[Op], message: pb.Message | None, also: tuple[str, ...] = ()
    ) -> None:
        """Write ``ops`` (with the message's log row); push it once the watermark reaches it."""
        seq = message.seq if message is not None and message.seq else 0
        if message is not None and seq:
            ops.append(Put(self._keys.group_message(state.info.group, seq), message.SerializeToString()))
        try:
            await self._store.write(ops)
        except BaseException:
            self.stats["write_failures"] += 1
            state.stale = True
            if seq:
                state.done[seq] = (None, ())
                self._advance(state)
            raise
        if seq:
            state.done[seq] = (message, also)
            self._advance(state)

    def _advance(self, state: GroupState) -> None:
        while state.committed + 1 in state.done:
            message, also = state.done.pop(state.committed + 1)
            state.committed += 1
            if message is not None:
                self._push(state, message, also)

    def _push(self, state: GroupState, message: pb.Message, also: Iterable[str] = ()) -> int:
        push = Push(pb.ServerFrame(group_message=message))
        if message.to:  # private inside the group: its two parties only
            targets: Iterable[str] = dict.fromkeys((getattr(message, "from"), message.to))
        elif also:
            targets = [*state.member_names(), *also]
        else:
            targets = state.member_names()
        devices = self.router.route_to_members(state.info.group, targets, push)
        self.stats["pushed"] += devices
        return devices

    def _membership_ops(self, group: str, *members: rec.GroupMembership) -> list[Op]:
        return [Put(self._keys.membership(group, m.user), m.SerializeToString()) for m in members]

    # ------------------------------------------------------------------ create / info / modify / dissolve

    async def create(self, session: Session, req: pb.GroupCreate) -> pb.GroupInfo:
        name = req.name.strip()
        if not 1 <= len(name) <= _MAX_NAME:
            raise ImError(pb.BAD_REQUEST, f"group name: 1-{_MAX_NAME} characters")
        _check_info_text(req.topic, req.avatar_url)
        _check_fields(req.fields)
        max_members = self._max_members(req.max_members)
        invited = [u for u in dict.fromkeys(req.members) if u != session.user]
        if 1 + len(invited) > max_members:
            raise ImError(pb.GROUP_FULL, f"at most {max_members} members")
        for user in invited:
            if not USER_NAME.fullmatch(user) or not await self._accounts.exists(user):
                raise ImError(pb.NOT_FOUND, f"no such user: {user[:64]}")
        group = "g" + secrets.token_hex(8)
        now = self._now_ms()
        info = rec.Group(
            group=group, name=name, topic=req.topic, avatar_url=req.avatar_url, owner=session.user,
            join_policy=req.join_policy or pb.JOIN_OPEN, max_members=max_members, created_at=now,
        )  # fmt: skip
        info.fields.update(req.fields)
        members = {
            session.user: rec.GroupMembership(
                user=session.user, state=MemberState.MEMBER, role=pb.GROUP_OWNER, since=now
            )
        }
        for user in invited:
            members[user] = rec.GroupMembership(user=user, state=MemberState.MEMBER, role=pb.GROUP_MEMBER, since=now)
        state = GroupState(info=info, members=members, next_seq=0, committed=0, member_count=len(members))
        self._remember(group, state)
        text = f"{session.user} created the group" + (f" with {', '.join(invited)}" if invited else "")
        notice = self._notice(state, session, pb.TYPE_GROUP_CREATED, text)
        ops: list[Op] = [Insert(self._keys.group(group), info.SerializeToString())]
        ops += self._membership_ops(group, *members.values())
        ops += [Put(self._keys.user_group(u, group), rec.UserGroup(group=group).SerializeToString()) for u in members]
        await self._commit(state, ops, notice)
        if not self.owned(group):
            self._cache.pop(group, None)  # its sequence owner loads it from the store
        self.stats["notices"] += 1
        log.info("= group created group=%s owner=%s members=%d", group, session.user, len(members))
        return self._info(state, session.user)

    def _max_members(self, wanted: int) -> int:
        limit = self.options.max_members
        if wanted > limit:
            raise ImError(pb.BAD_REQUEST, f"max_members is limited to {limit} on this node")
        return wanted or limit

    def _info(self, state: GroupState, user: str) -> pb.GroupInfo:
        i = state.info
        out = pb.GroupInfo(
            group=i.group, name=i.name, topic=i.topic, avatar_url=i.avatar_url, owner=i.owner,
            join_policy=i.join_policy, max_members=i.max_members, member_count=state.member_count, muted=i.muted,  # type: ignore[arg-type]
            dissolved=i.dissolved, created_at=i.created_at, last_seq=state.committed, role=state.role(user),  # type: ignore[arg-type]
        )  # fmt: skip
        out.fields.update(i.fields)
        return out

    async def info(self, session: Session, group: str) -> pb.GroupInfo:
        state = await self._as_member(group, session.user)
        return self._info(state, session.user)

    async def modify(self, session: Session, req: pb.GroupModify) -> pb.GroupInfo:
        state = await self._as_member(req.group, session.user)
        self._need_role(state, session.user, pb.GROUP_ADMIN, "may change the group")
        info = rec.Group()
        info.CopyFrom(state.info)
        changed: list[str] = []
        if req.HasField("name"):
            name = req.name.strip()
            if not 1 <= len(name) <= _MAX_NAME:
                raise ImError(pb.BAD_REQUEST, f"group name: 1-{_MAX_NAME} characters")
            info.name = name
            changed.append("name")
        if req.HasField("topic"):
            _check_info_text(req.topic, "")
            info.topic = req.topic
            changed.append("topic")
        if req.HasField("avatar_url"):
            _check_info_text("", req.avatar_url)
            info.avatar_url = req.avatar_url
            changed.append("avatar")
        if req.fields:
            for k, v in req.fields.items():
                if v:
                    info.fields[k] = v
                else:
                    info.fields.pop(k, None)
            _check_fields(info.fields)
            changed.append("fields")
        if req.join_policy:
            if req.join_policy not in (pb.JOIN_OPEN, pb.JOIN_APPROVAL):
                raise ImError(pb.BAD_REQUEST, "unknown join policy")
            info.join_policy = req.join_policy
            changed.append("join policy")
        if req.HasField("max_members"):
            info.max_members = self._max_members(req.max_members)
            changed.append("max members")
        if req.HasField("muted"):
            info.muted = req.muted
            changed.append("muted" if req.muted else "unmuted")
        if not changed:
            return self._info(state, session.user)
        state.info = info
        notice = self._notice(
            state, session, pb.TYPE_GROUP_INFO_CHANGED, f"{session.user} changed {', '.join(changed)}",
            changed=",".join(changed),
        )  # fmt: skip
        await self._commit(state, [Put(self._keys.group(req.group), info.SerializeToString())], notice)
        return self._info(state, session.user)

    async def dissolve(self, session: Session, group: str) -> None:
        state = await self._as_member(group, session.user)
        self._need_role(state, session.user, pb.GROUP_OWNER, "may dissolve the group")
        info = rec.Group()
        info.CopyFrom(state.info)
        info.dissolved = True
        state.info = info
        notice = self._notice(state, session, pb.TYPE_GROUP_DISSOLVED, f"{session.user} dissolved the group")
        await self._commit(state, [Put(self._keys.group(group), info.SerializeToString())], notice)
        log.info("= group dissolved group=%s", group)

    # ------------------------------------------------------------------ membership

    async def act(self, session: Session, req: pb.GroupMember) -> None:
        action = req.action
        if action == pb.GROUP_APPLY:
            await self._apply(session, req.group, req.text)
            return
        if action == pb.GROUP_LEAVE:
            await self._leave(session, req.group)
            return
        if not USER_NAME.fullmatch(req.user):
            raise ImError(pb.BAD_REQUEST, "invalid user")
        handler = {
            pb.GROUP_APPROVE: self._approve,
            pb.GROUP_REJECT: self._reject,
            pb.GROUP_INVITE: self._invite,
            pb.GROUP_KICK: self._kick,
            pb.GROUP_BAN: self._ban,
            pb.GROUP_UNBAN: self._unban,
            pb.GROUP_MUTE: self._mute,
            pb.GROUP_UNMUTE: self._unmute,
            pb.GROUP_SET_ROLE: self._set_role,
            pb.GROUP_TRANSFER: self._transfer,
        }.get(action)
        if handler is None:
            raise ImError(pb.BAD_REQUEST, "unknown group action")
        if req.user == session.user:
            raise ImError(pb.BAD_REQUEST, "this action needs another user")
        state = await self._as_member(req.group, session.user)
        await handler(session, state, req)

    def _standing(self, state: GroupState, user: str) -> rec.GroupMembership:
        m = state.members.get(user)
        return m if m is not None else rec.GroupMembership(user=user)

    async def _join(
        self, state: GroupState, actor: Session, user: str, text: str, extra_ops: list[Op] | None = None
    ) -> None:
        if state.member_count >= state.info.max_members:
            raise ImError(pb.GROUP_FULL, f"the group has {state.info.max_members} members")
        group = state.info.group
        notice = self._notice(state, actor, pb.TYPE_MEMBER_JOINED, text, user=user)
        m = rec.GroupMembership(
            user=user, state=MemberState.MEMBER, role=pb.GROUP_MEMBER, since=notice.timestamp, join_seq=notice.seq - 1
        )
        old = state.members.get(user)
        if old is not None:
            m.read_seq = old.read_seq
        state.members[user] = m
        state.member_count += 1
        ops = self._membership_ops(group, m) + [
            Put(self._keys.user_group(user, group), rec.UserGroup(group=group).SerializeToString())
        ]
        await self._commit(state, ops + (extra_ops or []), notice)

    async def _apply(self, session: Session, group: str, text: str) -> None:
        if len(text) > 256:
            raise ImError(pb.TOO_LARGE, "an application's text is limited to 256 characters")
        state = await self._existing(group)
        me = self._standing(state, session.user)
        if state.info.dissolved:
            raise ImError(pb.GROUP_DISSOLVED, "the group was dissolved")
        if me.state == MemberState.BANNED:
            raise ImError(pb.BANNED, "you are banned from this group")
        if me.state == MemberState.MEMBER:
            return
        if state.info.join_policy != pb.JOIN_APPROVAL:
            await self._join(state, session, session.user, f"{session.user} joined")
            return
        if state.member_count >= state.info.max_members:
            raise ImError(pb.GROUP_FULL, f"the group has {state.info.max_members} members")
        applied = rec.GroupMembership()
        applied.CopyFrom(me)
        applied.state = MemberState.APPLIED
        applied.since = self._now_ms()
        applied.text = text
        state.members[session.user] = applied
        await self._commit(state, self._membership_ops(group, applied), None)
        # push only: owners/admins online now see it; the others list applications
        notice = self._notice_unstored(state, session, pb.TYPE_MEMBER_APPLIED, text or f"{session.user} asks to join")
        notice.ext["user"] = session.user
        self.router.route_to_members(group, state.admins(), Push(pb.ServerFrame(group_message=notice)))

    def _notice_unstored(self, state: GroupState, actor: Session, kind: int, text: str) -> pb.Message:
        now = self._now_ms()
        msg = pb.Message(type=kind, text=text, group=state.info.group, id=self._ids.next_id(now), timestamp=now)
        setattr(msg, "from", actor.user)
        msg.from_device = actor.device
        return msg

    def _pending_application(self, state: GroupState, user: str) -> rec.GroupMembership:
        m = state.members.get(user)
        if m is None or m.state != MemberState.APPLIED:
            raise ImError(pb.NOT_FOUND, "no pending application from this user")
        return m

    async def _approve(self, session: Session, state: GroupState, req: pb.GroupMember) -> None:
        self._need_role(state, session.user, pb.GROUP_ADMIN, "may approve applications")
        self._pending_application(state, req.user)
        await self._join(state, session, req.user, f"{session.user} approved {req.user}")

    async def _reject(self, session: Session, state: GroupState, req: pb.GroupMember) -> None:
        self._need_role(state, session.user, pb.GROUP_ADMIN, "may reject applications")
        m = self._pending_application(state, req.user)
        gone = rec.GroupMembership()
        gone.CopyFrom(m)
        gone.state = MemberState.LEFT if m.join_seq or m.left_seq else MemberState.NONE
        gone.text = ""
        state.members[req.user] = gone
        group = state.info.group
        op: Op = Put(self._keys.membership(group, req.user), gone.SerializeToString())
        if gone.state == MemberState.NONE:
            del state.members[req.user]
            op = Delete(self._keys.membership(group, req.user))
        await self._commit(state, [op], None)
        notice = self._notice_unstored(
            state, session, pb.TYPE_APPLICATION_REJECTED, f"{session.user} rejected your application"
        )
        notice.ext["user"] = req.user
        self.router.route_to_members(group, [req.user], Push(pb.ServerFrame(group_message=notice)))

    async def _invite(self, session: Session, state: GroupState, req: pb.GroupMember) -> None:
        if state.info.join_policy == pb.JOIN_APPROVAL:
            self._need_role(state, session.user, pb.GROUP_ADMIN, "may invite to a group that needs approval")
        target = self._standing(state, req.user)
        if target.state == MemberState.BANNED:
            raise ImError(pb.BANNED, f"{req.user} is banned from this group")
        if target.state == MemberState.MEMBER:
            return
        if not await self._accounts.exists(req.user):
            raise ImError(pb.NOT_FOUND, "no such user")
        await self._join(state, session, req.user, f"{session.user} added {req.user}")

    def _outranks(self, state: GroupState, actor: str, target: str, what: str) -> None:
        self._need_role(state, actor, pb.GROUP_ADMIN, what)
        if state.role(target) >= state.role(actor):
            raise ImError(pb.FORBIDDEN, f"you may not {what.split(' ')[-1]} a member of your rank or higher")

    def _removal(
        self, state: GroupState, user: str, kind: int, new_state: int, text: str, actor: Session
    ) -> tuple[pb.Message, list[Op]]:
        group = state.info.group
        notice = self._notice(state, actor, kind, text, user=user)
        old = self._standing(state, user)
        m = rec.GroupMembership()
        m.CopyFrom(old)
        if old.state == MemberState.MEMBER:
            state.member_count -= 1
            m.left_seq = notice.seq
        m.state = new_state
        m.role = 0
        m.muted_until = 0
        m.since = notice.timestamp
        state.members[user] = m
        return notice, [
            Put(self._keys.membership(group, user), m.SerializeToString()),
            Delete(self._keys.user_group(user, group)),
        ]

    async def _leave(self, session: Session, group: str) -> None:
        state = await self._as_member(group, session.user)
        if state.role(session.user) == pb.GROUP_OWNER:
            raise ImError(pb.FORBIDDEN, "the owner cannot leave: transfer ownership or dissolve the group")
        notice, ops = self._removal(
            state, session.user, pb.TYPE_MEMBER_LEFT, MemberState.LEFT, f"{session.user} left", session
        )
        await self._commit(state, ops, notice, also=(session.user,))

    async def _kick(self, session: Session, state: GroupState, req: pb.GroupMember) -> None:
        if state.role(req.user) == 0:
            raise ImError(pb.NOT_A_MEMBER, f"{req.user} is not a member")
        self._outranks(state, session.user, req.user, "may kick")
        text = f"{session.user} removed {req.user}"
        notice, ops = self._removal(state, req.user, pb.TYPE_MEMBER_KICKED, MemberState.LEFT, text, session)
        await self._commit(state, ops, notice, also=(req.user,))

    async def _ban(self, session: Session, state: GroupState, req: pb.GroupMember) -> None:
        self._outranks(state, session.user, req.user, "may ban")
        if self._standing(state, req.user).state == MemberState.BANNED:
            return
        if not await self._accounts.exists(req.user):
            raise ImError(pb.NOT_FOUND, "no such user")
        was_member = state.role(req.user) > 0
        text = f"{session.user} banned {req.user}"
        notice, ops = self._removal(state, req.user, pb.TYPE_MEMBER_BANNED, MemberState.BANNED, text, session)
        await self._commit(state, ops, notice, also=(req.user,) if was_member else ())

    async def _unban(self, session: Session, state: GroupState, req: pb.GroupMember) -> None:
        self._need_role(state, session.user, pb.GROUP_ADMIN, "may unban")
        old = state.members.get(req.user)
        if old is None or old.state != MemberState.BANNED:
            raise ImError(pb.NOT_FOUND, f"{req.user} is not banned")
        m = rec.GroupMembership()
        m.CopyFrom(old)
        m.state = MemberState.LEFT
        state.members[req.user] = m
        notice = self._notice(
            state, session, pb.TYPE_MEMBER_UNBANNED, f"{session.user} unbanned {req.user}", user=req.user
        )
        await self._commit(state, self._membership_ops(state.info.group, m), notice)

    async def _mute(self, session: Session, state: GroupState, req: pb.GroupMember) -> None:
        if state.role(req.user) == 0:
            raise ImError(pb.NOT_A_MEMBER, f"{req.user} is not a member")
        self._outranks(state, session.user, req.user, "may mute")
        until = self._now_ms() + req.seconds * 1000 if req.seconds else -1
        await self._set_member(state, session, req.user, pb.TYPE_MEMBER_MUTED, f"{session.user} muted {req.user}",
                               muted_until=until)  # fmt: skip

    async def _unmute(self, session: Session, state: GroupState, req: pb.GroupMember) -> None:
        if state.role(req.user) == 0:
            raise ImError(pb.NOT_A_MEMBER, f"{req.user} is not a member")
        self._outranks(state, session.user, req.user, "may unmute")
        await self._set_member(state, session, req.user, pb.TYPE_MEMBER_UNMUTED, f"{session.user} unmuted {req.user}",
                               muted_until=0)  # fmt: skip

    async def _set_role(self, session: Session, state: GroupState, req: pb.GroupMember) -> None:
        self._need_role(state, session.user, pb.GROUP_OWNER, "may change roles")
        if req.role not in (pb.GROUP_ADMIN, pb.GROUP_MEMBER):
            raise ImError(pb.BAD_REQUEST, "role must be GROUP_ADMIN or GROUP_MEMBER (ownership: GROUP_TRANSFER)")
        if state.role(req.user) == 0:
            raise ImError(pb.NOT_A_MEMBER, f"{req.user} is not a member")
        name = pb.GroupRole.Name(req.role)
        await self._set_member(state, session, req.user, pb.TYPE_ROLE_CHANGED, f"{req.user} is now {name.lower()[6:]}",
                               role=req.role, ext_role=name)  # fmt: skip

    async def _transfer(self, session: Session, state: GroupState, req: pb.GroupMember) -> None:
        self._need_role(state, session.user, pb.GROUP_OWNER, "may transfer ownership")
        if state.role(req.user) == 0:
            raise ImError(pb.NOT_A_MEMBER, f"{req.user} is not a member")
        group = state.info.group
        new_owner, old_owner = rec.GroupMembership(), rec.GroupMembership()
        new_owner.CopyFrom(state.members[req.user])
        old_owner.CopyFrom(state.members[session.user])
        new_owner.role, old_owner.role = pb.GROUP_OWNER, pb.GROUP_ADMIN
        new_owner.muted_until = 0
        info = rec.Group()
        info.CopyFrom(state.info)
        info.owner = req.user
        state.members[req.user], state.members[session.user], state.info = new_owner, old_owner, info
        notice = self._notice(state, session, pb.TYPE_OWNER_CHANGED, f"{req.user} is now the owner", user=req.user)
        ops = self._membership_ops(group, new_owner, old_owner) + [
            Put(self._keys.group(group), info.SerializeToString())
        ]
        await self._commit(state, ops, notice)

    async def _set_member(
        self, state: GroupState, actor: Session, user: str, kind: int, text: str, *,
        muted_until: int | None = None, role: int | None = None, ext_role: str = "",
    ) -> None:  # fmt: skip
        m = rec.GroupMembership()
        m.CopyFrom(state.members[user])
        ext: dict[str, str] = {}
        if muted_until is not None:
            m.muted_until = muted_until
            ext["until"] = str(max(muted_until, 0))
        if role is not None:
            m.role = role
            ext["role"] = ext_role
        state.members[user] = m
        notice = self._notice(state, actor, kind, text, user=user, **ext)
        await self._commit(state, self._membership_ops(state.info.group, m), notice)

    # ------------------------------------------------------------------ listing

    async def members(self, session: Session, req: pb.GroupMembers) -> pb.GroupMemberPage:
        state = await self._as_member(req.group, session.user, allow_dissolved=True)
        wanted = MemberState.MEMBER
        if req.applications or req.banned:
            self._need_role(state, session.user, pb.GROUP_ADMIN, "may list applications and bans")
            wanted = MemberState.APPLIED if req.applications else MemberState.BANNED
        limit = min(req.limit or 100, 1000)
        names = sorted(u for u, m in state.members.items() if m.state == wanted and u > req.after)
        page = pb.GroupMemberPage(group=req.group, more=len(names) > limit)
        for user in names[:limit]:
            m = state.members[user]
            entry = page.members.add(user=user, role=m.role, since=m.since, muted_until=m.muted_until)
            if wanted == MemberState.APPLIED:
                entry.text = m.text
        page.cursor = names[:limit][-1] if names[:limit] else req.after
        return page

    async def my_groups(self, session: Session) -> pb.GroupList:
        start, end = self._keys.user_groups_range(session.user)
        rows = await self._store.scan(start, end, limit=self.options.max_groups_listed)
        out = pb.GroupList()
        for _, value in rows:
            group = rec.UserGroup.FromString(value).group
            state = await self._load(group)
            m = state.members.get(session.user) if state is not None else None
            if state is None or m is None or m.state != MemberState.MEMBER:
                continue
            read = max(m.read_seq, m.join_seq)
            unread = max(0, state.committed - read)
            if state.info.dissolved and unread == 0:
                continue
            out.groups.add(
                group=group, name=state.info.name, role=m.role, last_seq=state.committed,
                read_seq=m.read_seq, unread=min(unread, 2**32 - 1), dissolved=state.info.dissolved,
            )  # fmt: skip
        return out

    # ------------------------------------------------------------------ messages

    def _visible(self, state: GroupState, user: str) -> tuple[int, int]:
        """(after, up_to): the seq range ``user`` may read; NOT_A_MEMBER if none."""
        m = state.members.get(user)
        if m is None:
            raise ImError(pb.NOT_A_MEMBER, "you are not a member of this group")
        if m.state == MemberState.MEMBER:
            return m.join_seq, state.committed
        if m.left_seq:  # former member: up to the notice that removed them
            return m.join_seq, min(m.left_seq, state.committed)
        raise ImError(pb.NOT_A_MEMBER, "you are not a member of this group")

    async def send(self, session: Session, req: pb.GroupSend, *, max_body: int | None = None) -> pb.Sent:
        limit = max_body or self.options.max_body
        size = len(req.data) or len(req.text.encode())
        if size > limit:
            raise ImError(pb.TOO_LARGE, f"message body is {size} bytes; the limit is {limit}")
        if 2 <= req.type < _FIRST_APP_TYPE:
            raise ImError(pb.BAD_REQUEST, f"message types 2-{_FIRST_APP_TYPE - 1} are reserved; apps use >= 32")
        if len(req.client_msg_id) > _MAX_CMID:
            raise ImError(pb.BAD_REQUEST, f"client_msg_id is limited to {_MAX_CMID} characters")
        _check_fields(req.ext, "ext")
        state = await self._as_member(req.group, session.user)
        me = state.members[session.user]
        now = self._now_ms()
        if me.muted_until == -1 or me.muted_until > now:
            raise ImError(pb.MUTED, "you are muted in this group")
        if state.info.muted and me.role < pb.GROUP_ADMIN:
            raise ImError(pb.MUTED, "the group is muted: only the owner and admins may send")
        if req.to and state.role(req.to) == 0:
            raise ImError(pb.NOT_A_MEMBER, "the private message's target is not a member")
        key = join_key(session.user, req.group, req.client_msg_id)
        if req.client_msg_id:
            done = self._sent.get(key)
            if done is not None:
                message_id, timestamp, seq = unpack_ints(done, 3)
                return pb.Sent(message_id=message_id, timestamp=timestamp, seq=seq, duplicate=True)
        state.next_seq += 1
        message = pb.Message(
            type=req.type or 1, group=req.group, seq=state.next_seq, id=self._ids.next_id(now), timestamp=now,
            from_device=session.device, to=req.to, client_msg_id=req.client_msg_id,
        )  # fmt: skip
        setattr(message, "from", session.user)
        if req.WhichOneof("body") == "data":
            message.data = req.data
        else:
            message.text = req.text
        message.ext.update(req.ext)
        ops: list[Op] = []
        if req.client_msg_id:
            result = rec.SendResult(message_id=message.id, timestamp=now)
            ops.append(
                Insert(
                    self._keys.send_result(session.user, f"#{req.group}/{req.client_msg_id}"),
                    result.SerializeToString(),
                )
            )
        try:
            await self._commit(state, ops, message)
        except KeyExists:
            raw = await self._store.get(self._keys.send_result(session.user, f"#{req.group}/{req.client_msg_id}"))
            if raw is None:
                raise
            earlier = rec.SendResult.FromString(raw)
            return pb.Sent(message_id=earlier.message_id, timestamp=earlier.timestamp, duplicate=True)
        self.stats["messages"] += 1
        sent = pb.Sent(message_id=message.id, timestamp=now, seq=message.seq)
        if req.client_msg_id and sent.timestamp >= 0:  # pack_ints takes no negative timestamp
            self._sent.remember(key, pack_ints(sent.message_id, sent.timestamp, sent.seq))
        return sent

    async def sync(self, session: Session, req: pb.GroupSync) -> pb.GroupPage:
        state = await self._load(req.group)
        if state is None:
            raise ImError(pb.NOT_A_MEMBER, "you are not a member of this group")
        lo, hi = self._visible(state, session.user)
        after = max(req.after_seq, lo)
        limit = min(req.limit or 100, 1000)
        m = state.members[session.user]
        page = pb.GroupPage(group=req.group, last_seq=hi, read_seq=m.read_seq, cursor=max(after, req.after_seq))
        if after >= hi:
            return page
        start, end = self._keys.group_log_range(req.group, after, hi)
        rows = await self._store.scan(start, end, limit=limit + 1)
        page.more = len(rows) > limit
        user = session.user
        for key, value in rows[:limit]:
            message = pb.Message.FromString(value)
            if not message.to or message.to == user or getattr(message, "from") == user:
                page.messages.append(message)
            page.cursor = unpack_id(key)
        return page

    async def read(self, session: Session, group: str, seq: int) -> None:
        state = await self._load(group)
        if state is None:
            raise ImError(pb.NOT_A_MEMBER, "you are not a member of this group")
        _, hi = self._visible(state, session.user)
        old = state.members[session.user]
        seq = min(seq, hi)
        if seq <= old.read_seq:
            return
        m = rec.GroupMembership()
        m.CopyFrom(old)
        m.read_seq = seq
        state.members[session.user] = m
        await self._commit(state, self._membership_ops(group, m), None)

    # ------------------------------------------------------------------ handlers

    def handlers(self) -> dict[str, Handler]:
        return {
            "group_create": self._h_create,
            "group_info": self._h_info,
            "group_modify": self._h_modify,
            "group_dissolve": self._h_dissolve,
            "group_member": self._h_member,
            "group_members": self._h_members,
            "my_groups": self._h_my_groups,
            "group_send": self._h_send,
            "group_sync": self._h_sync,
            "group_read": self._h_read,
        }

    async def _h_create(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        return pb.ServerFrame(group=await self.create(conn.session, frame.group_create))

    async def _h_info(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        return pb.ServerFrame(group=await self.info(conn.session, frame.group_info.group))

    async def _h_modify(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        return pb.ServerFrame(group=await self.modify(conn.session, frame.group_modify))

    async def _h_dissolve(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        await self.dissolve(conn.session, frame.group_dissolve.group)
        return pb.ServerFrame(ok=pb.Ok())

    async def _h_member(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        await self.act(conn.session, frame.group_member)
        return pb.ServerFrame(ok=pb.Ok())

    async def _h_members(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        return pb.ServerFrame(group_members=await self.members(conn.session, frame.group_members))

    async def _h_my_groups(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        return pb.ServerFrame(groups=await self.my_groups(conn.session))

    async def _h_send(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        return pb.ServerFrame(sent=await self.send(conn.session, frame.group_send))

    async def _h_sync(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        return pb.ServerFrame(group_page=await self.sync(conn.session, frame.group_sync))

    async def _h_read(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        await self.read(conn.session, frame.group_read.group, frame.group_read.seq)
        return pb.ServerFrame(ok=pb.Ok())


def _check_info_text(topic: str, avatar_url: str) -> None:
    if len(topic) > _MAX_TEXT or len(avatar_url) > _MAX_TEXT:
        raise ImError(pb.TOO_LARGE, f"topic and avatar_url are limited to {_MAX_TEXT} characters")


def _check_fields(fields: object, what: str = "fields") -> None:
    items = fields.items() if hasattr(fields, "items") else ()  # a protobuf map
    entries = list(items)
    if len(entries) > _MAX_FIELDS or sum(len(k.encode()) + len(v.encode()) for k, v in entries) > _MAX_FIELD_BYTES:
        raise ImError(pb.TOO_LARGE, f"{what} are limited to {_MAX_FIELDS} entries and {_MAX_FIELD_BYTES} bytes")
