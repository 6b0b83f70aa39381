"""The Python SDK: an asyncio client for the timnode client protocol.

    async with Client(["ws://a:7400", "ws://b:7400"], "alice", "secret-pw", register=True) as c:
        await c.send("bob", text="hi")
        async for event in c.events():
            ...

What it guarantees: requests are matched to responses by id; a send is retried across
reconnects with the same ``client_msg_id`` until the node acknowledges it (the node makes
retries idempotent); after every (re)connect the client syncs from its cursor, so a
client that drops loses nothing; every message id reaches the application once
(pushes and sync overlap are de-duplicated). Reconnects use full-jitter exponential
backoff over the given URLs in turn; it starts over only after a connection that lasted
the backoff's cap. Other requests are resent after a reconnect too, except those that
would apply twice (``edit``, ``create_group``: they raise ``ConnectionLost`` and the caller
decides) and one the node closed the connection over (1009: ``ImError(TOO_LARGE)``). A
connection that drops during login or sync fails the requests in flight on it at once.
``close()`` ends waiting calls and ``events()``. Received messages are acknowledged
(coalesced: one DeliveryAck per ~50 ms) as they are queued for the application, or, with
``auto_ack=False``, once it calls :meth:`ack`, in id order (the node keeps the highest
acknowledged id as the device's cursor), so a message the application never finished
comes back after a restart. A message that finds the event queue (``max_events``) full is
dropped, not acknowledged, and synced again once the application has read the queue down
to half: a slow reader loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from im import client_pb2 as pb
from im.codec import JSON_SUBPROTOCOL, PROTO_SUBPROTOCOL, codec_for
from im.errors import ImError
from im.ids import id_minus_ms

__all__ = [
    "Client",
    "ClientEvent",
    "MessageEvent",
    "PresenceEvent",
    "DeliveredEvent",
    "KickedEvent",
    "GroupMessageEvent",
    "RoomMessageEvent",
    "StreamEvent",
    "ConnectedEvent",
    "DisconnectedEvent",
    "ConnectionLost",
    "TypingEvent",
]

log = logging.getLogger(__name__)

SYNC_OVERLAP_MS = 10_000
_ACK_DELAY = 0.05
_MAX_RETRY_AFTER = 300.0  # seconds: a node's retry_after beyond this is taken as this
_ACK_BATCH = 256
_SEEN = 50_000
_FINAL_KICKS = {pb.REPLACED, pb.DEVICE_LIMIT_KICK, pb.ADMIN, pb.CREDENTIALS_CHANGED}


class ConnectionLost(ConnectionError):
    """The connection dropped before a response arrived."""


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """Base of everything ``Client.events()`` yields."""


@dataclass(frozen=True, slots=True)
class MessageEvent(ClientEvent):
    message: pb.Message
    synced: bool  # came from a sync after (re)connect rather than a live push


@dataclass(frozen=True, slots=True)
class PresenceEvent(ClientEvent):
    presence: pb.Presence


@dataclass(frozen=True, slots=True)
class DeliveredEvent(ClientEvent):
    by: str
    message_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TypingEvent(ClientEvent):
    notice: pb.TypingNotice


@dataclass(frozen=True, slots=True)
class KickedEvent(ClientEvent):
    reason: int
    message: str


@dataclass(frozen=True, slots=True)
class ConnectedEvent(ClientEvent):
    url: str
    session: pb.Session


@dataclass(frozen=True, slots=True)
class DisconnectedEvent(ClientEvent):
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class GroupMessageEvent(ClientEvent):
    """A group message or notice pushed live (catch up with ``my_groups`` + ``group_sync``)."""

    message: pb.Message


@dataclass(frozen=True, slots=True)
class RoomMessageEvent(ClientEvent):
    message: pb.Message


@dataclass(frozen=True, slots=True)
class StreamEvent(ClientEvent):
    frame: pb.StreamFrame


class Client:
    """A reconnecting client for one account on one device."""

    def __init__(
        self,
        urls: str | Sequence[str],
        user: str,
        password: str = "",
        *,
        device: str = "",
        register: bool = False,
        token: str = "",
        use_json: bool = False,
        reconnect: bool = True,
        backoff: tuple[float, float] = (0.2, 10.0),
        cursor: int = 0,
        rng: random.Random | None = None,
        auto_ack: bool = True,
        max_events: int = 10_000,
    ) -> None:
        """``auto_ack``: acknowledge a message once it is queued for the application; False:
        once the application calls :meth:`ack` (a message it never acknowledged comes back
        after a restart). ``max_events``: the event queue's size (see the module docstring)."""
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        self.user = user
        self.password = password
        self.device = device or "sdk-" + secrets.token_hex(4)
        self.token = token
        self.reconnect = reconnect
        self.backoff = backoff
        self.cursor = cursor
        self.session: pb.Session | None = None
        self.url = ""
        self._register = register
        self._codec = codec_for(JSON_SUBPROTOCOL if use_json else PROTO_SUBPROTOCOL)
        self._rng = rng or random.Random()
        self._ws: ClientConnection | None = None
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[pb.ServerFrame]] = {}
        self._events: asyncio.Queue[ClientEvent | None] = asyncio.Queue(maxsize=max(2, max_events))
        self.auto_ack = auto_ack
        self._unacked: set[int] = set()  # handed to the application, not yet acked (auto_ack off)
        self._acked: list[int] = []  # acks waiting for older messages to be acked (a heap)
        self._gap = 0  # the oldest message dropped because the queue was full (0: none)
        self._resyncing = 0  # the gap a sync in progress is filling (0: none)
        self._gap_sync: asyncio.Task[None] | None = None
        self._ended = False  # the end marker (None) is queued
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._ack_ids: list[int] = []
        self._ack_handle: asyncio.TimerHandle | None = None
        self._connected = asyncio.Event()
        self._stopped = asyncio.Event()
        self._closed = False
        self._fatal: BaseException | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._syncing = False
        self._push_max = 0
        self._held: list[pb.Message] = []  # live pushes while syncing, delivered after the sync
        self._reader: asyncio.Task[None] | None = None
        self._send_epoch = ""  # the node's, for new client message ids (im.send_epoch)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> pb.Session:
        """Connect and log in (register first if asked); then keep reconnecting in the background."""
        last: Exception = ConnectionLost("no URL given")
        for url in self.urls:
            try:
                ws, session = await self._open(url)
            except (OSError, InvalidHandshake, ConnectionClosed, ConnectionLost, TimeoutError) as exc:
                last = exc
                continue
            self._supervisor = asyncio.create_task(self._supervise(ws))
            await self._wait_connected()
            return session
        raise last

    async def close(self) -> None:
        self._closed = True
        ws = self._ws
        if ws is not None:
            await self._flush_acks()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._supervisor
        if ws is not None:
            await ws.close()
        self._stop(ConnectionLost("client closed"))

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._wait_connected(), timeout)

    async def _wait_connected(self) -> None:
        """Wait until connected and synced; ConnectionLost once the client has stopped for good."""
        if not self._connected.is_set():
            waiters = [asyncio.ensure_future(e.wait()) for e in (self._connected, self._stopped)]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
        if self._fatal is not None and not self._connected.is_set():
            raise ConnectionLost(f"client stopped: {self._fatal}")

    # ------------------------------------------------------------------ operations

    async def send(
        self,
        to: str,
        text: str | None = None,
        *,
        data: bytes | None = None,
        type: int = 1,
        ext: dict[str, str] | None = None,
        client_msg_id: str = "",
        timeout: float = 60.0,
        burn: bool = False,
        burn_seconds: int = 0,
    ) -> pb.Sent:
        """Send a message; retried across reconnects until acknowledged (idempotent).

        ``burn``: burn after reading (the recipient calls :meth:`burn` once it was shown).
        """
        req = pb.Send(to=to, type=type, client_msg_id=client_msg_id or self._new_client_msg_id())
        req.burn, req.burn_seconds = burn, burn_seconds
        if data is not None:
            req.data = data
        else:
            req.text = text or ""
        if ext:
            req.ext.update(ext)
        reply = await asyncio.wait_for(self._request_retrying(pb.ClientFrame(send=req)), timeout)
        if reply.sent.send_epoch:
            self._send_epoch = reply.sent.send_epoch
        return reply.sent

    def _new_client_msg_id(self) -> str:
        """Random, behind the node's send epoch when one is known: the node then need not
        read its store to know the id unused (protocol.md §5, ``im.send_epoch``)."""
        token = secrets.token_hex(12)
        return f"{self._send_epoch}:{token}" if self._send_epoch else token

    async def history(self, peer: str, before: int = 0, limit: int = 50) -> pb.MessagePage:
        reply = await self._request_retrying(pb.ClientFrame(history=pb.History(peer=peer, before=before, limit=limit)))
        return reply.page

    async def subscribe(self, users: Sequence[str]) -> list[pb.Presence]:
        reply = await self._request_retrying(pb.ClientFrame(subscribe=pb.Subscribe(users=list(users))))
        return list(reply.presences.presences)

    async def unsubscribe(self, users: Sequence[str]) -> None:
        await self._request_retrying(pb.ClientFrame(unsubscribe=pb.Unsubscribe(users=list(users))))

    # ------------------------------------------------------------------ message and user features
    # (docs/protocol.md, "Message and user features"); events arrive as MessageEvents whose
    # message.type is an engine code (pb.TYPE_RECALL, pb.TYPE_EDIT, ...) and ref names the message.

    async def recall(self, message_id: int) -> pb.Sent:
        """Withdraw a message you sent (within the node's recall window)."""
        return (await self._request_retrying(pb.ClientFrame(recall=pb.Recall(message_id=message_id)))).sent

    async def edit(self, message_id: int, text: str) -> pb.Sent:
        frame = pb.ClientFrame(edit=pb.Edit(message_id=message_id, text=text))
        return (await self._request_retrying(frame, retry=False)).sent  # an edit twice is two edits

    async def burn(self, message_id: int) -> pb.Sent:
        """Report a burn-after-reading message as read: it is deleted everywhere."""
        return (await self._request_retrying(pb.ClientFrame(burn=pb.Burn(message_id=message_id)))).sent

    async def mark_read(self, conversation: str, up_to: int) -> pb.Sent:
        """Move the read marker of a conversation (a peer's name) forward to ``up_to``."""
        frame = pb.ClientFrame(read=pb.Read(conversation=conversation, up_to=up_to))
        return (await self._request_retrying(frame)).sent

    async def unread(self) -> dict[str, pb.Unread]:
        """Unread counts per conversation."""
        frame = pb.ClientFrame(sync=pb.Sync(after=2**64 - 1, limit=1, unread=True))
        return {u.conversation: u for u in (await self._request_retrying(frame)).page.unread}

    async def typing(self, to: str, active: bool = True) -> None:
        await self._request_retrying(pb.ClientFrame(typing=pb.Typing(to=to, active=active)))

    async def set_presence(
        self, status: int = pb.AVAILABLE, text: str = "", fields: dict[str, str] | None = None
    ) -> pb.Presence:
        req = pb.SetPresence(status=status, text=text)  # type: ignore[arg-type]
        req.fields.update(fields or {})
        reply = await self._request_retrying(pb.ClientFrame(set_presence=req))
        return reply.presences.presences[0]

    async def friend(self, user: str, action: int = pb.FRIEND_REQUEST, text: str = "") -> None:
        """Roster change: FRIEND_REQUEST (with text), FRIEND_ACCEPT, FRIEND_REJECT, FRIEND_REMOVE."""
        req = pb.Friend(user=user, action=action, text=text)  # type: ignore[arg-type]
        await self._request_retrying(pb.ClientFrame(friend=req))

    async def block(self, user: str) -> None:
        await self._request_retrying(pb.ClientFrame(block=pb.Block(user=user)))

    async def unblock(self, user: str) -> None:
        await self._request_retrying(pb.ClientFrame(unblock=pb.Unblock(user=user)))

    async def roster(self) -> pb.Roster:
        return (await self._request_retrying(pb.ClientFrame(roster=pb.GetRoster()))).roster

    async def set_profile(self, profile: pb.Profile) -> pb.Profile:
        reply = await self._request_retrying(pb.ClientFrame(set_profile=pb.SetProfile(profile=profile)))
        return reply.profile

    async def get_profile(self, user: str) -> pb.Profile:
        return (await self._request_retrying(pb.ClientFrame(get_profile=pb.GetProfile(user=user)))).profile

    async def change_password(self, old: str, new: str) -> None:
        frame = pb.ClientFrame(change_password=pb.ChangePassword(old_password=old, new_password=new))
        reply = await self._request_retrying(frame)
        self.password = new
        if reply.WhichOneof("body") == "session" and reply.session.token:  # the old tokens are revoked
            self.token = reply.session.token

    async def ping(self) -> int:
        reply = await self._request_retrying(pb.ClientFrame(ping=pb.Ping()))
        return reply.pong.server_time

    # ------------------------------------------------------------------ groups, rooms, streams

    async def create_group(self, name: str, members: Sequence[str] = (), **fields: Any) -> pb.GroupInfo:
        req = pb.GroupCreate(name=name, members=list(members), **fields)
        return (await self._request_retrying(pb.ClientFrame(group_create=req), retry=False)).group

    async def group_info(self, group: str) -> pb.GroupInfo:
        return (await self._request_retrying(pb.ClientFrame(group_info=pb.GroupGet(group=group)))).group

    async def modify_group(self, group: str, **changes: Any) -> pb.GroupInfo:
        req = pb.GroupModify(group=group, **changes)
        return (await self._request_retrying(pb.ClientFrame(group_modify=req))).group

    async def dissolve_group(self, group: str) -> None:
        await self._request_retrying(pb.ClientFrame(group_dissolve=pb.GroupDissolve(group=group)))

    async def group_action(self, group: str, action: int, user: str = "", **kw: Any) -> None:
        """Apply, approve, reject, invite, leave, kick, ban, unban, mute, unmute, set role, transfer."""
        req = pb.GroupMember(group=group, action=action, user=user, **kw)  # type: ignore[arg-type]
        await self._request_retrying(pb.ClientFrame(group_member=req))

    async def group_members(self, group: str, after: str = "", limit: int = 100, **kw: Any) -> pb.GroupMemberPage:
        req = pb.GroupMembers(group=group, after=after, limit=limit, **kw)
        return (await self._request_retrying(pb.ClientFrame(group_members=req))).group_members

    async def my_groups(self) -> list[pb.GroupSummary]:
        return list((await self._request_retrying(pb.ClientFrame(my_groups=pb.MyGroups()))).groups.groups)

    async def group_send(
        self, group: str, text: str | None = None, *, data: bytes | None = None, to: str = "", type: int = 1,
        ext: dict[str, str] | None = None, client_msg_id: str = "",
    ) -> pb.Sent:  # fmt: skip
        """Send to a group (``to``: privately to one member); idempotent across reconnects."""
        req = pb.GroupSend(group=group, to=to, type=type, client_msg_id=client_msg_id or secrets.token_hex(12))
        if data is not None:
            req.data = data
        else:
            req.text = text or ""
        req.ext.update(ext or {})
        return (await self._request_retrying(pb.ClientFrame(group_send=req))).sent

    async def group_sync(self, group: str, after_seq: int = 0, limit: int = 100) -> pb.GroupPage:
        req = pb.GroupSync(group=group, after_seq=after_seq, limit=limit)
        return (await self._request_retrying(pb.ClientFrame(group_sync=req))).group_page

    async def group_read(self, group: str, seq: int) -> None:
        await self._request_retrying(pb.ClientFrame(group_read=pb.GroupRead(group=group, seq=seq)))

    async def create_room(self, room: str = "", publish: int = 0, publishers: Sequence[str] = ()) -> pb.RoomInfo:
        req = pb.RoomCreate(room=room, publish=publish, publishers=list(publishers))  # type: ignore[arg-type]
        return (await self._request_retrying(pb.ClientFrame(room_create=req))).room

    async def join_room(self, room: str) -> pb.RoomInfo:
        return (await self._request_retrying(pb.ClientFrame(room_join=pb.RoomJoin(room=room)))).room

    async def leave_room(self, room: str) -> None:
        await self._request_retrying(pb.ClientFrame(room_leave=pb.RoomLeave(room=room)))

    async def room_members(self, room: str) -> pb.RoomInfo:
        return (await self._request_retrying(pb.ClientFrame(room_members=pb.RoomMembers(room=room)))).room

    async def room_send(
        self, room: str, text: str | None = None, *, data: bytes | None = None, type: int = 1
    ) -> pb.Sent:
        req = pb.RoomSend(room=room, type=type)
        if data is not None:
            req.data = data
        else:
            req.text = text or ""
        return (await self.request(pb.ClientFrame(room_send=req))).sent  # live: not retried

    async def stream_send(
        self, data: bytes, *, to: str = "", room: str = "", seq: int = 0, channel: int = 0
    ) -> pb.Sent:
        req = pb.StreamSend(seq=seq, data=data, channel=channel)
        if room:
            req.room = room
        else:
            req.to = to
        return (await self.request(pb.ClientFrame(stream_send=req))).sent  # live: not retried

    async def send_large(
        self, template: pb.Send | pb.GroupSend | pb.RoomSend, body: str | bytes, *, piece: int = 32768
    ) -> pb.Sent:
        """Send a body larger than one frame in chunks (up to the node's --max-payload-bytes)."""
        raw = body.encode() if isinstance(body, str) else body
        upload = secrets.token_hex(8)
        start = pb.ChunkStart(upload=upload, size=len(raw), text=isinstance(body, str))
        if isinstance(template, pb.Send):
            start.send.CopyFrom(template)
        elif isinstance(template, pb.GroupSend):
            start.group_send.CopyFrom(template)
        else:
            start.room_send.CopyFrom(template)
        await self.request(pb.ClientFrame(chunk_start=start))
        for offset in range(0, len(raw), piece):
            chunk = pb.Chunk(upload=upload, offset=offset, data=raw[offset : offset + piece])
            await self.request(pb.ClientFrame(chunk=chunk))
        return (await self.request(pb.ClientFrame(chunk_end=pb.ChunkEnd(upload=upload)))).sent

    async def logout(self) -> None:
        """Revoke this device's token and close; the client does not reconnect."""
        self.reconnect = False
        with contextlib.suppress(ConnectionLost):
            await self.request(pb.ClientFrame(logout=pb.Logout()))
        await self.close()

    async def events(self) -> AsyncIterator[ClientEvent]:
        """Everything that happens, in order; ends when the client is closed."""
        while True:
            event = await self._events.get()
            self._after_read()
            if event is None:
                return
            yield event

    async def next_event(self, timeout: float | None = None) -> ClientEvent | None:
        event = await asyncio.wait_for(self._events.get(), timeout)
        self._after_read()
        return event

    def ack(self, message_id: int) -> None:
        """With ``auto_ack=False``: the application is done with this message. Acks reach the
        node in id order (its cursor is the highest acked id): one waits for the older
        messages still unacknowledged."""
        if message_id not in self._unacked:
            return
        self._unacked.discard(message_id)
        heapq.heappush(self._acked, message_id)
        self._release_acks()

    def _release_acks(self) -> None:
        """Send the acks below every message not acknowledged yet: those the application
        holds (``auto_ack=False``) and those dropped from a full queue, not synced again yet."""
        pending = [*self._unacked, self._gap, self._resyncing]
        floor = min((i for i in pending if i), default=None)
        while self._acked and (floor is None or self._acked[0] < floor):
            self._queue_ack(heapq.heappop(self._acked))

    def _after_read(self) -> None:
        """Messages dropped while the queue was full are synced again once it has room."""
        if not self._gap or self._events.qsize() > self._events.maxsize // 2:
            return
        if self._gap_sync is None or self._gap_sync.done():
            self._gap_sync = asyncio.ensure_future(self._sync_gap())

    async def _sync_gap(self) -> None:
        ws = self._ws
        if ws is None or self._syncing or not self._gap:
            return  # the next (re)connect's sync starts from before the gap
        with contextlib.suppress(ConnectionLost, ImError, ConnectionClosed):  # the gap stays
            await self._sync_all(ws, after=self._gap - 1)
        asyncio.get_running_loop().call_soon(self._after_read)  # dropped again: go on once read

    async def request(self, frame: pb.ClientFrame) -> pb.ServerFrame:
        """Send one request on the current connection and await its response.

        Raises:
            ImError: the node answered with an Error.
            ConnectionLost: the connection dropped first.
        """
        ws = self._ws
        if ws is None:
            raise ConnectionLost("not connected")
        return await self._exchange(ws, frame)

    # ------------------------------------------------------------------ internals

    async def _request_retrying(self, frame: pb.ClientFrame, *, retry: bool = True) -> pb.ServerFrame:
        """``request`` once connected; resent after a reconnect if the connection dropped first,
        unless not ``retry`` (an operation that would apply twice: the caller decides), or the
        node closed with 1009 (the frame is over its limit: resending cannot help)."""
        while True:
            if self._fatal is not None:
                raise ConnectionLost(f"client stopped: {self._fatal}")
            await self._wait_connected()
            ws = self._ws
            try:
                return await self.request(frame)
            except ConnectionLost:
                if ws is not None and ws.close_code == 1009:
                    raise ImError(pb.TOO_LARGE, "the node closed the connection: a request over its limit") from None
                if self._closed or not self.reconnect or not retry:
                    raise
                await asyncio.sleep(0)

    async def _exchange(self, ws: ClientConnection, frame: pb.ClientFrame) -> pb.ServerFrame:
        self._next_id += 1
        request_id = frame.id = self._next_id
        future: asyncio.Future[pb.ServerFrame] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await ws.send(self._codec.encode(frame))
            reply = await future
        except ConnectionClosed as exc:
            raise ConnectionLost(str(exc)) from exc
        finally:
            self._pending.pop(request_id, None)
        if reply.WhichOneof("body") == "error":
            raise ImError(reply.error.code, reply.error.message, retry_after=reply.error.retry_after)
        return reply

    async def _open(self, url: str) -> tuple[ClientConnection, pb.Session]:
        self._syncing = True  # from login until the sync: hold live pushes (order per sender)
        ws = await connect(
            url,
            subprotocols=[Subprotocol(self._codec.subprotocol)],
            compression=None,
            open_timeout=10,
            max_size=2**22,
        )
        reader = asyncio.create_task(self._read(ws))
        try:
            session = await self._login(ws)
        except BaseException:
            reader.cancel()
            await ws.close()
            raise
        self._ws, self.url, self.session = ws, url, session
        self._send_epoch = session.send_epoch
        self._reader = reader
        if session.acked_cursor > self.cursor:
            self.cursor = session.acked_cursor
        return ws, session

    async def _login(self, ws: ClientConnection) -> pb.Session:
        if self.token:
            try:
                reply = await self._exchange(ws, pb.ClientFrame(resume=pb.Resume(token=self.token, device=self.device)))
                return reply.session
            except ImError as exc:
                if exc.code != pb.AUTH_FAILED or not self.password:
                    raise
        if self._register:
            frame = pb.ClientFrame(register=pb.Register(user=self.user, password=self.password, device=self.device))
            try:
                reply = await self._exchange(ws, frame)
                self._register = False
                self.token = reply.session.token
                return reply.session
            except ImError as exc:
                if exc.code != pb.CONFLICT:
                    raise
            self._register = False
        frame = pb.ClientFrame(login=pb.Login(user=self.user, password=self.password, device=self.device))
        reply = await self._exchange(ws, frame)
        self.token = reply.session.token
        return reply.session

    async def _supervise(self, ws: ClientConnection) -> None:
        attempt = 0
        url_index = 0
        while not self._closed:
            began = time.monotonic()
            try:
                await self._run_connection(ws)
                if time.monotonic() - began >= self.backoff[1]:  # a flapping link keeps backing off
                    attempt = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reported as a disconnect
                log.debug("connection ended: %r", exc)
            if self._closed or not self.reconnect or self._fatal is not None:
                break
            ws_opt = None
            asked = 0.0  # the node's retry_after from the last attempt, a floor for the next delay
            while ws_opt is None and not self._closed:
                attempt += 1
                url_index = (url_index + 1) % len(self.urls) if attempt > 1 or len(self.urls) > 1 else 0
                delay = self._rng.uniform(0, min(self.backoff[1], self.backoff[0] * 2 ** min(attempt, 16)))
                await asyncio.sleep(max(delay, asked))
                asked = 0.0
                try:
                    ws_opt, _ = await self._open(self.urls[url_index])
                except ImError as exc:
                    if exc.code in (pb.AUTH_FAILED, pb.DEVICE_LIMIT) and exc.retry_after == 0:
                        self._stop(exc)
                        return
                    asked = min(exc.retry_after, _MAX_RETRY_AFTER)
                except (OSError, InvalidHandshake, ConnectionClosed, ConnectionLost, TimeoutError) as exc:
                    log.debug("reconnect to %s failed: %r", self.urls[url_index], exc)
            if ws_opt is None:
                break
            ws = ws_opt
        self._stop(None)

    def _stop(self, exc: BaseException | None) -> None:
        self._fatal = exc or ConnectionLost("closed")
        self._connected.clear()
        self._stopped.set()
        self._fail_pending(ConnectionLost("client stopped"))
        if not self._ended:
            self._ended = True
            self._events.put_nowait(None)  # _emit leaves a slot for it

    async def _run_connection(self, ws: ClientConnection) -> None:
        assert self.session is not None
        self._emit(ConnectedEvent(self.url, self.session))
        try:
            await self._sync_all(ws)  # inside the try: a failed sync must not leave this socket behind
            self._connected.set()
            if self._reader is not None:
                await self._reader
        finally:
            self._connected.clear()
            reader, self._reader = self._reader, None
            if reader is not None and not reader.done():
                reader.cancel()  # else a stale reader could act on a later kick of this device
            if ws.close_code is None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 2.0)
            self._ws = None
            self._fail_pending(ConnectionLost("connection closed"))
            code = ws.close_code or 1006
            self._emit(DisconnectedEvent(code, ws.close_reason or ""))

    async def _sync_all(self, ws: ClientConnection, after: int | None = None) -> None:
        """Sync from ``after`` (default: the cursor; before a gap, if any) to the end, holding
        live pushes meanwhile; a page that finds the queue full ends it (the gap goes on)."""
        self._syncing, self._push_max = True, 0
        # On a reconnect, re-read a few seconds before the cursor: pushes may arrive out of
        # id order (concurrent sends, skewed node clocks); the seen-set drops the repeats.
        if after is None:
            after = id_minus_ms(self.cursor, SYNC_OVERLAP_MS) if self._seen else self.cursor
        gap = self._gap
        if gap:
            after = min(after, gap - 1)
        self._gap, self._resyncing = 0, gap
        try:
            while True:
                reply = await self._exchange(ws, pb.ClientFrame(sync=pb.Sync(after=after, limit=500)))
                for message in reply.page.messages:
                    self._deliver(message, synced=True)
                after = max(after, reply.page.cursor)
                if not reply.page.messages or not reply.page.more or self._gap:
                    break
            self.cursor = max(self.cursor, after, self._push_max)
            held, self._held = self._held, []
            for message in sorted(held, key=lambda m: m.id):
                self._deliver(message, synced=False)
        except BaseException:
            if gap:
                self._gap = min(self._gap or gap, gap)
            raise
        finally:
            self._syncing, self._resyncing = False, 0
            self._release_acks()

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for data in ws:
                try:
                    frame = self._codec.decode_server(data)
                except ImError:
                    log.warning("undecodable frame from node ignored")
                    continue
                self._on_frame(frame)
        except ConnectionClosed:
            pass
        # Gone: fail the requests in flight on it now (a login, a sync page), not when
        # _run_connection's cleanup runs, which may be waiting for one of them.
        self._fail_pending(ConnectionLost("connection closed"))

    def _on_frame(self, frame: pb.ServerFrame) -> None:
        if frame.id:
            future = self._pending.get(frame.id)
            if future is not None and not future.done():
                future.set_result(frame)
            return
        kind = frame.WhichOneof("body")
        if kind == "message":
            if self._syncing:
                self._held.append(frame.message)
                self._push_max = max(self._push_max, frame.message.id)
            else:
                self._deliver(frame.message, synced=False)
                self.cursor = max(self.cursor, frame.message.id)
        elif kind == "presence":
            self._emit(PresenceEvent(frame.presence))
        elif kind == "delivered":
            self._emit(DeliveredEvent(frame.delivered.by, tuple(frame.delivered.message_ids)))
        elif kind == "group_message":
            self._emit(GroupMessageEvent(frame.group_message))
        elif kind == "room_message":
            self._emit(RoomMessageEvent(frame.room_message))
        elif kind == "stream":
            self._emit(StreamEvent(frame.stream))
        elif kind == "typing":
            self._emit(TypingEvent(frame.typing))
        elif kind == "kicked":
            self._emit(KickedEvent(frame.kicked.reason, frame.kicked.message))
            if frame.kicked.reason in _FINAL_KICKS:
                self.reconnect = False

    def _deliver(self, message: pb.Message, *, synced: bool) -> None:
        if message.id in self._seen:
            return
        self._seen[message.id] = None
        if len(self._seen) > _SEEN:
            self._seen.popitem(last=False)
        sender = getattr(message, "from")
        if sender == self.user and message.from_device == self.device:
            return  # our own send: the application has its Sent
        if not self._emit(MessageEvent(message, synced)):
            self._seen.pop(message.id, None)  # not handed over: no ack; synced again once read
            self._gap = min(self._gap or message.id, message.id)
            return
        if message.to == self.user and sender != self.user:
            if self.auto_ack:
                heapq.heappush(self._acked, message.id)
                self._release_acks()
            else:
                self._unacked.add(message.id)

    def _emit(self, event: ClientEvent) -> bool:
        if self._events.qsize() >= self._events.maxsize - 1:  # the last slot is the end marker's
            log.warning("event queue full: dropping %s (read Client.events())", type(event).__name__)
            return False
        self._events.put_nowait(event)
        return True

    def _queue_ack(self, message_id: int) -> None:
        self._ack_ids.append(message_id)
        if len(self._ack_ids) >= _ACK_BATCH:
            asyncio.ensure_future(self._flush_acks())
        elif self._ack_handle is None:
            loop = asyncio.get_running_loop()
            self._ack_handle = loop.call_later(_ACK_DELAY, lambda: asyncio.ensure_future(self._flush_acks()))

    async def _flush_acks(self) -> None:
        if self._ack_handle is not None:
            self._ack_handle.cancel()
            self._ack_handle = None
        ids, self._ack_ids = self._ack_ids, []
        ws = self._ws
        if not ids or ws is None:
            return
        with contextlib.suppress(ConnectionLost, ImError, ConnectionClosed):
            await self._exchange(ws, pb.ClientFrame(delivery_ack=pb.DeliveryAck(ids=ids)))

    def _fail_pending(self, exc: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(exc)
        self._pending.clear()


def describe_event(event: ClientEvent) -> dict[str, Any]:
    """A JSON-ready dict for an event (used by ``timnode chat --json``)."""
    from google.protobuf import json_format

    def msg(m: Any) -> dict[str, Any]:
        return json_format.MessageToDict(m)

    match event:
        case MessageEvent(message=m, synced=s):
            return {"event": "message", "synced": s, "message": msg(m)}
        case PresenceEvent(presence=p):
            return {"event": "presence", "presence": msg(p)}
        case DeliveredEvent(by=by, message_ids=ids):
            return {"event": "delivered", "by": by, "messageIds": [str(i) for i in ids]}
        case TypingEvent(notice=n):
            return {"event": "typing", "typing": msg(n)}
        case KickedEvent(reason=r, message=text):
            return {"event": "kicked", "reason": pb.KickReason.Name(r), "message": text}
        case ConnectedEvent(url=url, session=s):
            return {"event": "connected", "url": url, "user": s.user, "device": s.device, "node": s.node}
        case DisconnectedEvent(code=code, reason=reason):
            return {"event": "disconnected", "code": code, "reason": reason}
    return {"event": type(event).__name__}
