"""Stream data: live binary frames to a user's online devices or to a room. Never stored.

A ``stream_send`` is checked (size, target, rights, the room's stream bucket) and pushed at
once as a ``stream`` push. Delivery is *droppable*: each connection keeps stream frames in
a small bounded :class:`StreamQueue`, separate from its reliable outbox (``im/gateway.py``);
when the connection cannot keep up (the transport is paused), new frames push out the
OLDEST queued ones, so a slow receiver loses old frames, never the node's memory, and the
reliable pushes (messages, notices) are never displaced. Dropped frames are counted in
``timnode_stream_frames_dropped_total``; receivers see gaps in ``StreamFrame.seq``.

Publish rights in a room follow its publish policy (``im/rooms.py``: anyone in the room, the
owner only, or the owner and listed publishers). To a user: the same checks as a message
(blocks, stranger policy), passed in as ``check_user``.

Across nodes (``im/fed_routing.py``) stream frames travel as *droppable* one-way link
messages (a federation PUSH with ``stream`` set, ``LinkManager.send_droppable``): each link
keeps them in a bounded drop-oldest queue next to its reliable one, counted in the same
``timnode_stream_frames_dropped_total``, and over ``rtc`` links they go on the unordered,
partial-reliability ``data`` channel (``maxRetransmits=0``, ``node/droppable.py``). A frame to
a user reaches their devices on other nodes through :attr:`Streams.remote`; a room's frames
are pushed by the room's home node.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from im import client_pb2 as pb
from im.accounts import USER_NAME
from im.errors import ImError
from im.rooms import Rooms
from im.sessions import Push, Session, SessionRegistry
from node.metrics import Counter

__all__ = ["StreamQueue", "Streams", "STREAM_DROPPED_METRIC"]

STREAM_DROPPED_METRIC = "timnode_stream_frames_dropped_total"

T = TypeVar("T")


class StreamQueue(Generic[T]):
    """A bounded FIFO that drops its OLDEST item when full (sans-I/O)."""

    __slots__ = ("limit", "dropped", "_items")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self.dropped = 0
        self._items: deque[T] = deque()

    def offer(self, item: T) -> int:
        """Queue ``item``; return how many old items were dropped to make room (0 or 1)."""
        dropped = 0
        if len(self._items) >= self.limit:
            self._items.popleft()
            dropped = 1
            self.dropped += 1
        self._items.append(item)
        return dropped

    def take_all(self) -> list[T]:
        items = list(self._items)
        self._items.clear()
        return items

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class _Conn(Protocol):
    session: Session | None


Handler = Callable[[_Conn, pb.ClientFrame], Awaitable[pb.ServerFrame]]
UserCheck = Callable[[str, str], Awaitable[None]]
#: a stream frame to ``user``'s devices on other nodes -> how many devices it was sent to
RemoteStream = Callable[[str, pb.ServerFrame], int]


async def _no_check(sender: str, recipient: str) -> None:
    return None


class Streams:
    """``stream_send``: to a user or a room, pushed on the droppable path."""

    def __init__(
        self,
        *,
        registry: SessionRegistry,
        rooms: Rooms,
        now_ms: Callable[[], int],
        dropped: Counter,
        max_body: int = 16384,
        check_user: UserCheck = _no_check,
    ) -> None:
        self._registry = registry
        self._rooms = rooms
        self._now_ms = now_ms
        #: the node's ``timnode_stream_frames_dropped_total`` (the gateway's stream queues add to it)
        self.dropped = dropped
        self.max_body = max_body
        self.check_user = check_user
        self.stats = {"frames": 0, "pushed": 0}
        #: set by the federation: frames to a user also go to their devices on other nodes
        self.remote: RemoteStream | None = None

    async def send(self, session: Session, req: pb.StreamSend) -> pb.Sent:
        if len(req.data) > self.max_body:
            raise ImError(pb.TOO_LARGE, f"a stream frame is limited to {self.max_body} bytes")
        now = self._now_ms()
        frame = pb.StreamFrame(
            from_device=session.device, seq=req.seq, data=req.data, channel=req.channel, timestamp=now
        )
        setattr(frame, "from", session.user)
        target = req.WhichOneof("target")
        if target == "room":
            room = self._rooms.member_room(session, req.room)
            if not room.may_publish(session.user):
                raise ImError(pb.FORBIDDEN, "you may not publish stream data in this room")
            self._rooms.take_token(room, session, stream=True)
            frame.room = room.name
            delivered = self._rooms.route_to_room(
                room, Push(pb.ServerFrame(stream=frame)), exclude=session, stream=True
            )
        elif target == "to":
            if not USER_NAME.fullmatch(req.to):
                raise ImError(pb.BAD_REQUEST, "invalid recipient")
            await self.check_user(session.user, req.to)
            frame.to = req.to
            push = Push(pb.ServerFrame(stream=frame))
            delivered = 0
            for target_session in self._registry.sessions_of(req.to):
                if target_session is not session:
                    deliver_stream(target_session, push)
                    delivered += 1
            if self.remote is not None:
                delivered += self.remote(req.to, push.frame)
        else:
            raise ImError(pb.BAD_REQUEST, "stream_send needs `to` or `room`")
        self.stats["frames"] += 1
        self.stats["pushed"] += delivered
        return pb.Sent(timestamp=now, delivered_devices=delivered)

    def handlers(self) -> dict[str, Handler]:
        return {"stream_send": self._h_send}

    async def _h_send(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        return pb.ServerFrame(sent=await self.send(conn.session, frame.stream_send))


def deliver_stream(session: Session, push: Push) -> None:
    """Push on the droppable path when the sink has one (the gateway's connections do)."""
    push_stream = getattr(session.sink, "push_stream", None)
    if push_stream is not None:
        push_stream(push)
    else:
        session.sink.push(push)
