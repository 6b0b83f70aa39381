"""Groups, rooms, stream data and chunked payloads behind ``ImService``: one object per concern
and the request handlers the service's dispatch table takes from :meth:`Spaces.handlers`.

    groups   im/groups.py   groups (1:N): membership, roles, read-diffusion messages, sync
    rooms    im/rooms.py    rooms (N:N): ephemeral, pushed only, expire when empty
    streams  im/streams.py  stream frames to a user or a room (droppable, never stored)
    chunks   im/chunks.py   payloads larger than a frame, reassembled and delivered whole

The one piece that touches the event loop is the housekeeping timer (room expiry, idle
uploads): one ``loop.call_later`` re-armed from the cores' deadlines (STYLE.md 3.3); tests
with a manual clock call ``rooms.expire_due(now)`` / ``chunks.expire_due(now)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from im import client_pb2 as pb
from im.accounts import Accounts
from im.chunks import ChunkAssembler, ChunkOptions
from im.errors import ImError
from im.groups import GroupOptions, Groups
from im.messaging import MessageLimits, Messenger
from im.metrics import ImMetrics
from im.rooms import RoomOptions, Rooms
from im.sessions import Session, SessionRegistry
from im.streams import STREAM_DROPPED_METRIC, Streams

__all__ = ["Spaces", "SpacesOptions"]

#: the 1:1 checks of the send path (burn fields, blocks, stranger policy): ImService passes its features' hook
SendCheck = Callable[[Session, pb.Send], Awaitable[None]]
#: (sender, recipient): may the sender reach the recipient at all (blocks, stranger policy)
UserCheck = Callable[[str, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SpacesOptions:
    max_body: int = 16384  # --max-message-bytes: one frame's body
    max_payload: int = 1 << 20  # --max-payload-bytes: a chunked body
    group_max_members: int = 2000  # --group-max-members
    room_grace: float = 60.0  # --room-grace: seconds an empty room is kept
    stream_queue: int = 64  # stream frames queued per connection before the oldest drop


class Spaces:
    """Groups, rooms, streams and chunked uploads for the sessions of this node."""

    def __init__(
        self,
        *,
        messenger: Messenger,
        accounts: Accounts,
        registry: SessionRegistry,
        now: Callable[[], float],
        now_ms: Callable[[], int],
        metrics: ImMetrics,
        check_send: SendCheck,
        check_user: UserCheck,
        options: SpacesOptions | None = None,
    ) -> None:
        o = self.options = options or SpacesOptions()
        if o.max_payload < o.max_body:
            raise ValueError("max_payload must be at least max_body")
        self._messenger = messenger
        self._check_send = check_send
        self._now = now
        ids = messenger._ids
        self.groups = Groups(
            store=messenger._store, keys=messenger._keys, accounts=accounts, registry=registry, ids=ids,
            now_ms=now_ms, options=GroupOptions(max_members=o.group_max_members, max_body=o.max_body),
        )  # fmt: skip
        self.rooms = Rooms(
            ids=ids, now=now, now_ms=now_ms, options=RoomOptions(grace=o.room_grace, max_body=o.max_body)
        )
        dropped = metrics.set.counter(
            STREAM_DROPPED_METRIC, "Stream frames dropped (oldest first) for slow receivers"
        )()
        self.streams = Streams(
            registry=registry, rooms=self.rooms, now_ms=now_ms, dropped=dropped, max_body=o.max_body,
            check_user=check_user,
        )  # fmt: skip
        self.chunks = ChunkAssembler(
            deliver=self._deliver_whole, now=now, options=ChunkOptions(max_payload=o.max_payload)
        )
        # a twin of the messenger with the payload limit, for chunked 1:1 sends: same store,
        # keys, id generator and sessions, so ids never collide and retries stay idempotent
        self._large = Messenger(
            store=messenger._store, keys=messenger._keys, accounts=accounts, registry=registry, ids=ids,
            now_ms=now_ms, durable=messenger.durable, limits=MessageLimits(o.max_payload), metrics=metrics,
            twin_of=messenger,
        )  # fmt: skip
        self.rooms.on_empty = self._arm
        #: set by the federation: runs a whole group_send / room_send on the owning node, or
        #: answers None when this node owns it
        self.route_whole: Callable[[Session, pb.ClientFrame], Awaitable[pb.ServerFrame | None]] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    def handlers(self) -> dict[str, Callable[..., Awaitable[pb.ServerFrame]]]:
        out: dict[str, Callable[..., Awaitable[pb.ServerFrame]]] = {}
        out.update(self.groups.handlers())
        out.update(self.rooms.handlers())
        out.update(self.streams.handlers())
        out.update(self.chunks.handlers())
        start = out["chunk_start"]

        async def chunk_start(conn: object, frame: pb.ClientFrame) -> pb.ServerFrame:
            reply = await start(conn, frame)
            self._arm()  # an idle upload must time out
            return reply

        out["chunk_start"] = chunk_start
        return out

    def session_ended(self, session: Session) -> None:
        """A session closed (disconnect, logout, kick): leave its rooms, drop its uploads."""
        self.rooms.forget(session)
        self.chunks.forget(session)

    # ------------------------------------------------------------------ chunked delivery

    async def send_whole(self, session: Session, frame: pb.ClientFrame) -> pb.ServerFrame:
        """Run a reassembled ``group_send`` / ``room_send`` here, within ``--max-payload-bytes``
        (also for a chunked upload forwarded by another node: ``im/fed_routing.py``)."""
        limit = self.options.max_payload
        if frame.WhichOneof("op") == "group_send":
            return pb.ServerFrame(sent=await self.groups.send(session, frame.group_send, max_body=limit))
        if frame.WhichOneof("op") == "room_send":
            return pb.ServerFrame(sent=self.rooms.send(session, frame.room_send, max_body=limit))
        raise ImError(pb.BAD_REQUEST, "only group_send and room_send are delivered whole")

    async def _deliver_whole(self, session: Session, start: pb.ChunkStart, body: bytes) -> pb.ServerFrame:
        kind = start.WhichOneof("template")
        if start.text:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise ImError(pb.BAD_REQUEST, "the upload is marked text but is not UTF-8") from None
        if kind == "send":
            req = pb.Send()
            req.CopyFrom(start.send)
            if start.text:
                req.text = text
            else:
                req.data = body
            await self._check_send(session, req)
            self._large.remote = self._messenger.remote
            return pb.ServerFrame(sent=await self._large.send(session, req))
        if kind == "group_send":
            greq = pb.GroupSend()
            greq.CopyFrom(start.group_send)
            if start.text:
                greq.text = text
            else:
                greq.data = body
            whole = pb.ClientFrame(group_send=greq)
        else:
            rreq = pb.RoomSend()
            rreq.CopyFrom(start.room_send)
            if start.text:
                rreq.text = text
            else:
                rreq.data = body
            whole = pb.ClientFrame(room_send=rreq)
        if self.route_whole is not None:  # across nodes: the group's sequence owner / room's home
            routed = await self.route_whole(session, whole)
            if routed is not None:
                return routed
        return await self.send_whole(session, whole)

    # ------------------------------------------------------------------ housekeeping timer

    def _arm(self) -> None:
        deadline = self.rooms.next_expiry()
        if self.chunks.open_uploads():
            upload_check = self._now() + self.chunks.options.timeout
            deadline = upload_check if deadline is None else min(deadline, upload_check)
        if deadline is None or (self._timer_at is not None and self._timer_at <= deadline):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = loop.call_later(max(0.0, deadline - self._now()), self._tick)

    def _tick(self) -> None:
        self._timer = self._timer_at = None
        now = self._now()
        self.rooms.expire_due(now)
        self.chunks.expire_due(now)
        self._arm()
