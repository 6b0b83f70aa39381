"""Rooms (N:N): ephemeral, in-memory, pushed only; they expire once empty for a grace period.

A room is a name, an owner (its creator), a publish policy for stream data and its member
*sessions* (a device joins; a user is a member while any of its devices is). Nothing is
stored: a ``room_send`` is pushed to every member session but the sending one as a
``room_message`` and forgotten. Joins and leaves are pushed to the other members as
``TYPE_ROOM_JOINED`` notices (``ext["left"] = "1"`` on leave). A closed connection leaves its
rooms. A room whose last member leaves is kept for ``grace`` seconds (so a reconnecting
owner keeps it and its publisher list), then expires: :meth:`Rooms.expire_due` is sans-I/O
(``now`` from the caller) and :meth:`Rooms.next_expiry` tells the adapter when to call it.

Floods: every (room, session) has a token bucket (``rate``/``burst`` for messages,
``stream_rate``/``stream_burst`` for stream frames); over it, RATE_LIMITED with retry_after.

Cross-node: a room lives on its *home* node (im/federation.py: the node closest to
sha256("room/" + name)); members on other nodes join through their own node, which forwards
their room operations there. On the home node such a member is a proxy session whose sink
has a ``batch`` (a :class:`RemoteBatch`): :meth:`Rooms.route_to_room` and the join/leave
notices push to local sessions directly and hand each batch its sessions at once, so every
other node gets ONE copy and delivers it to its local members.
"""

from __future__ import annotations

import heapq
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from im import client_pb2 as pb
from im.accounts import USER_NAME
from im.errors import ImError
from im.ids import MessageIdGenerator
from im.limits import TokenBucket
from im.sessions import Push, Session

__all__ = ["RemoteBatch", "Room", "RoomOptions", "Rooms", "ROOM_NAME"]

ROOM_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_FIRST_APP_TYPE = 32
_LISTED = 1000


@dataclass(frozen=True, slots=True)
class RoomOptions:
    grace: float = 60.0  # seconds an empty room is kept
    max_rooms: int = 10_000  # rooms on this node
    max_members: int = 10_000  # sessions per room
    max_rooms_per_session: int = 32
    max_publishers: int = 256
    rate: float = 20.0  # room_send per second per (room, session)
    burst: int = 40
    stream_rate: float = 200.0  # stream frames per second per (room, session)
    stream_burst: int = 400
    max_body: int = 16384


@dataclass(eq=False, slots=True)
class Room:
    name: str
    owner: str
    created_at: int  # ms since the Unix epoch
    publish: int = pb.PUBLISH_ANYONE
    publishers: set[str] = field(default_factory=set)
    sessions: dict[Session, tuple[TokenBucket, TokenBucket]] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)  # user -> member sessions
    empty_since: float | None = None

    def may_publish(self, user: str) -> bool:
        if self.publish == pb.PUBLISH_OWNER:
            return user == self.owner
        if self.publish == pb.PUBLISH_LISTED:
            return user == self.owner or user in self.publishers
        return user in self.users


class RemoteBatch(Protocol):
    """The sessions of one other node (im/federation.py): one copy for all of them."""

    def push_sessions(self, sessions: list[Session], push: Push, stream: bool) -> None: ...


class _Conn(Protocol):
    session: Session | None


Handler = Callable[[_Conn, pb.ClientFrame], Awaitable[pb.ServerFrame]]


class Rooms:
    """Every room on this node and the client operations on them."""

    def __init__(
        self,
        *,
        ids: MessageIdGenerator,
        now: Callable[[], float],
        now_ms: Callable[[], int],
        options: RoomOptions | None = None,
    ) -> None:
        self._ids = ids
        self._now = now
        self._now_ms = now_ms
        self.options = options or RoomOptions()
        self.rooms: dict[str, Room] = {}
        self._of_session: dict[Session, set[str]] = {}
        self._expiry: list[tuple[float, str]] = []  # heap of (deadline, room); stale entries skipped
        #: called when a room becomes empty (the adapter re-arms its timer from next_expiry())
        self.on_empty: Callable[[], None] = lambda: None
        self.stats = {"created": 0, "expired": 0, "messages": 0, "pushed": 0}

    # ------------------------------------------------------------------ lifecycle

    def create(self, session: Session, req: pb.RoomCreate) -> pb.RoomInfo:
        name = req.room or "r" + secrets.token_hex(8)
        if not ROOM_NAME.fullmatch(name):
            raise ImError(pb.BAD_REQUEST, "room names are 1-64 characters of A-Z a-z 0-9 . _ -")
        if name in self.rooms:
            raise ImError(pb.CONFLICT, "a room with this name exists")
        if len(self.rooms) >= self.options.max_rooms:
            raise ImError(pb.RATE_LIMITED, "this node has too many rooms; try later", retry_after=self.options.grace)
        if req.publish not in (0, pb.PUBLISH_ANYONE, pb.PUBLISH_OWNER, pb.PUBLISH_LISTED):
            raise ImError(pb.BAD_REQUEST, "unknown publish policy")
        room = Room(name=name, owner=session.user, created_at=self._now_ms(), publish=req.publish or pb.PUBLISH_ANYONE)
        self._set_publishers(room, req.publishers, ())
        self.rooms[name] = room
        self.stats["created"] += 1
        self._join(session, room)
        return self._info(room)

    def join(self, session: Session, name: str) -> pb.RoomInfo:
        room = self._room(name)
        if session not in room.sessions:
            self._join(session, room)
        return self._info(room)

    def _join(self, session: Session, room: Room) -> None:
        if len(room.sessions) >= self.options.max_members:
            raise ImError(pb.GROUP_FULL, f"the room has {self.options.max_members} members")
        mine = self._of_session.setdefault(session, set())
        if len(mine) >= self.options.max_rooms_per_session:
            if not mine:
                del self._of_session[session]
            raise ImError(pb.TOO_LARGE, f"at most {self.options.max_rooms_per_session} rooms per session")
        o = self.options
        now = self._now()
        room.sessions[session] = (TokenBucket(o.rate, o.burst, now), TokenBucket(o.stream_rate, o.stream_burst, now))
        room.empty_since = None
        mine.add(room.name)
        first = room.users.get(session.user, 0) == 0
        room.users[session.user] = room.users.get(session.user, 0) + 1
        if first:
            self._notice(room, session, left=False)

    def leave(self, session: Session, name: str) -> None:
        room = self._room(name)
        if session not in room.sessions:
            raise ImError(pb.NOT_A_MEMBER, "you are not in this room")
        self._leave(session, room)

    def _leave(self, session: Session, room: Room) -> None:
        del room.sessions[session]
        mine = self._of_session.get(session)
        if mine is not None:
            mine.discard(room.name)
            if not mine:
                del self._of_session[session]
        left = room.users[session.user] - 1
        if left:
            room.users[session.user] = left
        else:
            del room.users[session.user]
            self._notice(room, session, left=True)
        if not room.sessions:
            room.empty_since = self._now()
            heapq.heappush(self._expiry, (room.empty_since + self.options.grace, room.name))
            self.on_empty()

    def forget(self, session: Session) -> None:
        """The session ended: leave every room it is in."""
        for name in list(self._of_session.get(session, ())):
            room = self.rooms.get(name)
            if room is not None and session in room.sessions:
                self._leave(session, room)
        self._of_session.pop(session, None)

    def next_expiry(self) -> float | None:
        while self._expiry:
            deadline, name = self._expiry[0]
            room = self.rooms.get(name)
            if room is not None and room.empty_since is not None and room.empty_since + self.options.grace == deadline:
                return deadline
            heapq.heappop(self._expiry)  # stale: rejoined, or already gone
        return None

    def expire_due(self, now: float) -> list[str]:
        """Drop rooms empty for ``grace`` seconds; return their names."""
        gone: list[str] = []
        while (deadline := self.next_expiry()) is not None and deadline <= now:
            _, name = heapq.heappop(self._expiry)
            del self.rooms[name]
            gone.append(name)
        self.stats["expired"] += len(gone)
        return gone

    # ------------------------------------------------------------------ queries and messages

    def _room(self, name: str) -> Room:
        if not ROOM_NAME.fullmatch(name):
            raise ImError(pb.BAD_REQUEST, "invalid room name")
        room = self.rooms.get(name)
        if room is None:
            raise ImError(pb.NOT_FOUND, "no such room")
        return room

    def member_room(self, session: Session, name: str) -> Room:
        room = self._room(name)
        if session not in room.sessions:
            raise ImError(pb.NOT_A_MEMBER, "you are not in this room")
        return room

    def _info(self, room: Room) -> pb.RoomInfo:
        info = pb.RoomInfo(
            room=room.name, owner=room.owner, member_count=len(room.users), publish=room.publish,  # type: ignore[arg-type]
            created_at=room.created_at, publishers=sorted(room.publishers),
        )  # fmt: skip
        info.members.extend(list(room.users)[:_LISTED])
        return info

    def members(self, session: Session, name: str) -> pb.RoomInfo:
        return self._info(self.member_room(session, name))

    def set_publishers(self, session: Session, req: pb.RoomPublishers) -> pb.RoomInfo:
        room = self.member_room(session, req.room)
        if session.user != room.owner:
            raise ImError(pb.FORBIDDEN, "only the room's owner may change its publishers")
        if req.publish not in (0, pb.PUBLISH_ANYONE, pb.PUBLISH_OWNER, pb.PUBLISH_LISTED):
            raise ImError(pb.BAD_REQUEST, "unknown publish policy")
        self._set_publishers(room, req.add, req.remove)
        if req.publish:
            room.publish = req.publish
        return self._info(room)

    def _set_publishers(self, room: Room, add: Iterable[str], remove: Iterable[str]) -> None:
        add, remove = list(add), list(remove)
        for user in [*add, *remove]:
            if not USER_NAME.fullmatch(user):
                raise ImError(pb.BAD_REQUEST, "invalid user name in publishers")
        publishers = (room.publishers | set(add)) - set(remove)
        if len(publishers) > self.options.max_publishers:
            raise ImError(pb.TOO_LARGE, f"at most {self.options.max_publishers} publishers")
        room.publishers = publishers

    def take_token(self, room: Room, session: Session, *, stream: bool) -> None:
        """Charge one message (or stream frame) to the sender's bucket in this room."""
        wait = room.sessions[session][1 if stream else 0].take(self._now())
        if wait > 0:
            raise ImError(pb.RATE_LIMITED, "too many messages to this room", retry_after=wait)

    def send(self, session: Session, req: pb.RoomSend, *, max_body: int | None = None) -> pb.Sent:
        limit = max_body or self.options.max_body
        size = len(req.data) or len(req.text.encode())
        if size > limit:
            raise ImError(pb.TOO_LARGE, f"message body is {size} bytes; the limit is {limit}")
        if 2 <= req.type < _FIRST_APP_TYPE:
            raise ImError(pb.BAD_REQUEST, f"message types 2-{_FIRST_APP_TYPE - 1} are reserved; apps use >= 32")
        if len(req.ext) > 32 or sum(len(k) + len(v) for k, v in req.ext.items()) > 4096:
            raise ImError(pb.TOO_LARGE, "ext is limited to 32 entries and 4096 bytes")
        room = self.member_room(session, req.room)
        self.take_token(room, session, stream=False)
        now = self._now_ms()
        message = pb.Message(
            type=req.type or 1, room=room.name, id=self._ids.next_id(now), timestamp=now, from_device=session.device
        )
        setattr(message, "from", session.user)
        if req.WhichOneof("body") == "data":
            message.data = req.data
        else:
            message.text = req.text
        message.ext.update(req.ext)
        delivered = self.route_to_room(room, Push(pb.ServerFrame(room_message=message)), exclude=session)
        self.stats["messages"] += 1
        return pb.Sent(message_id=message.id, timestamp=now, delivered_devices=delivered)

    def route_to_room(self, room: Room, push: Push, *, exclude: Session | None = None, stream: bool = False) -> int:
        """Deliver to every member session but ``exclude``: one copy per other node (module doc)."""
        devices = _deliver((s for s in room.sessions if s is not exclude), push, stream)
        self.stats["pushed"] += devices
        return devices

    def _notice(self, room: Room, session: Session, *, left: bool) -> None:
        if len(room.sessions) <= (0 if left else 1):
            return
        now = self._now_ms()
        notice = pb.Message(
            type=pb.TYPE_ROOM_JOINED, room=room.name, id=self._ids.next_id(now), timestamp=now,
            text=f"{session.user} {'left' if left else 'joined'}",
        )  # fmt: skip
        notice.ext["user"] = session.user
        if left:
            notice.ext["left"] = "1"
        setattr(notice, "from", session.user)
        others = [s for s in room.sessions if s.user != session.user]
        _deliver(others, Push(pb.ServerFrame(room_message=notice)), False)

    # ------------------------------------------------------------------ handlers

    def handlers(self) -> dict[str, Handler]:
        return {
            "room_create": self._h_create,
            "room_join": self._h_join,
            "room_leave": self._h_leave,
            "room_members": self._h_members,
            "room_send": self._h_send,
            "room_publishers": self._h_publishers,
        }

    async def _h_create(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        return pb.ServerFrame(room=self.create(conn.session, frame.room_create))

    async def _h_join(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        return pb.ServerFrame(room=self.join(conn.session, frame.room_join.room))

    async def _h_leave(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        self.leave(conn.session, frame.room_leave.room)
        return pb.ServerFrame(ok=pb.Ok())

    async def _h_members(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        return pb.ServerFrame(room=self.members(conn.session, frame.room_members.room))

    async def _h_send(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        return pb.ServerFrame(sent=self.send(conn.session, frame.room_send))

    async def _h_publishers(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        return pb.ServerFrame(room=self.set_publishers(conn.session, frame.room_publishers))


def _deliver(targets: Iterable[Session], push: Push, stream: bool) -> int:
    """Push to local sessions; hand the sessions of each other node to its batch at once."""
    devices = 0
    batches: dict[RemoteBatch, list[Session]] = {}
    for target in targets:
        devices += 1
        sink = target.sink
        batch: RemoteBatch | None = getattr(sink, "batch", None)
        if batch is not None:
            batches.setdefault(batch, []).append(target)
            continue
        push_stream = getattr(sink, "push_stream", None) if stream else None
        if push_stream is not None:
            push_stream(push)
        else:
            sink.push(push)
    for batch, sessions in batches.items():
        batch.push_sessions(sessions, push, stream)
    return devices
