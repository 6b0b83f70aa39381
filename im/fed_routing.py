"""The IM features across nodes: live pushes, typing, presence fields, roster caches, groups,
rooms and admin broadcasts over the federation (im/federation.py, protocol "/timnode/im/1").

Built for one node, the features push to this node's sessions; :class:`FeatureRouting` plugs
the federation into their seams:

* **PUSH** (one-way, one per destination node; as a request for admin broadcasts): a
  ``ServerFrame`` and the users (or user devices) it is for; the receiving node pushes it to
  its sessions of them and stores nothing. Used for engine events (recall, edit, burn, read
  markers, friend notices: ``EventLog.remote``), typing notices (``PresenceBook.remote``),
  group pushes (:class:`FederatedGroupRouter`), room pushes and stream data (proxy sessions
  whose sink has a ``batch``: im/rooms.py) and admin system messages (``to=all``:
  ``all_users``, every session on the node, the message addressed per user; ``to=<user>``:
  that user's devices on the nodes the directory lists). Destinations come from the
  replicated presence table, so a node with none of the users gets nothing.
* **INVALIDATE** (one-way, to every linked node): users whose relations (friends, requests,
  blocks) changed; the receiving node drops them from its roster cache. A block also carries
  ``hides`` (blocker, blocked): the receiving node ends the blocked user's subscriptions to
  the blocker and pushes the blocker offline to them (the block's "appear offline").
* **FORWARD** (request): a client operation run on the node that owns it, for a session here.
  A group's *sequence owner* and a room's *home* is the node whose Kademlia key is closest
  (XOR) to sha256(group id) / sha256("room/" + name), among this node and the linked nodes on
  the same store. Group operations naming a group are forwarded there (one seq counter and
  one watermark per group); room operations too (a room lives in one node's memory). The
  owner runs the operation as for a local session (a *proxy session*; for rooms it is kept
  until SESSION_GONE or the link drops) and answers the ``ServerFrame`` (or the error).
* **SESSION_GONE** (one-way): a session that forwarded room operations ended.
* **Stream data** (PUSH with ``stream`` set, kind ``stream`` to a user or ``room`` from a
  room's home) is sent *droppable* (``LinkManager.send_droppable``): a bounded drop-oldest
  queue per link, the unordered ``data`` channel on ``rtc`` links; losses are counted in
  ``timnode_stream_frames_dropped_total`` (``LinkManager.on_drop``).
* **Chunked uploads** to a group or room are reassembled where the client is, then FORWARDed
  whole (``Forward.whole``: the owner applies ``--max-payload-bytes``) to the group's sequence
  owner / room's home, so a chunked group send keeps the single sequence.

Rich presence (status, text and custom fields) rides on PRESENCE (``UserDevices``), sent
after every ``SetPresence`` as well as on device changes; a node announces a remote user's
changed status to its watchers and the user's friends.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from im import client_pb2 as pb
from im import federation_pb2 as fed
from im.errors import ImError
from im.groups import GroupRouter
from im.sessions import Push, Session
from im.streams import deliver_stream
from node.errors import P2PError
from node.identity import PeerId
from store.errors import StoreError

if TYPE_CHECKING:
    from im.federation import Federation
    from im.service import Connection, Handler

__all__ = ["FederatedGroupRouter", "FeatureRouting", "PUSH_KINDS"]

log = logging.getLogger(__name__)

PUSH_KINDS = ("event", "typing", "group", "room", "broadcast", "stream")

#: op -> the group its frame names
_GROUP_OPS: dict[str, Callable[[pb.ClientFrame], str]] = {
    "group_info": lambda f: f.group_info.group,
    "group_modify": lambda f: f.group_modify.group,
    "group_dissolve": lambda f: f.group_dissolve.group,
    "group_member": lambda f: f.group_member.group,
    "group_members": lambda f: f.group_members.group,
    "group_send": lambda f: f.group_send.group,
    "group_sync": lambda f: f.group_sync.group,
    "group_read": lambda f: f.group_read.group,
}
#: op -> the room its frame names ("" = not a room operation: stream data to a user)
_ROOM_OPS: dict[str, Callable[[pb.ClientFrame], str]] = {
    "room_create": lambda f: f.room_create.room,
    "room_join": lambda f: f.room_join.room,
    "room_leave": lambda f: f.room_leave.room,
    "room_members": lambda f: f.room_members.room,
    "room_send": lambda f: f.room_send.room,
    "room_publishers": lambda f: f.room_publishers.room,
    "stream_send": lambda f: f.stream_send.room,
}


def group_key(group: str) -> bytes:
    return hashlib.sha256(group.encode()).digest()


def room_key(room: str) -> bytes:
    return hashlib.sha256(b"room/" + room.encode()).digest()


def closest(key: bytes, candidates: Iterable[PeerId]) -> PeerId:
    """The candidate whose Kademlia key (sha256 of the PeerId) is XOR-closest to ``key``."""
    k = int.from_bytes(key, "big")
    return min(candidates, key=lambda p: int.from_bytes(p.dht_key, "big") ^ k)


class _ProxyConn:
    """The owner's view of a connection on another node."""

    __slots__ = ("session",)

    def __init__(self, session: Session) -> None:
        self.session: Session | None = session


class _PeerBatch:
    """The sessions of one other node in this node's rooms: one PUSH for all of them."""

    def __init__(self, routing: FeatureRouting, peer: PeerId) -> None:
        self.routing = routing
        self.peer = peer

    def push_sessions(self, sessions: list[Session], push: Push, stream: bool) -> None:
        targets = [fed.Target(user=s.user, device=s.device) for s in sessions]
        self.routing.send_push(self.peer, push.frame.SerializeToString(), targets, "room", stream=stream)


class _ProxySink:
    """The sink of a proxy session: a push to it goes to that device on its node."""

    def __init__(self, batch: _PeerBatch) -> None:
        self.batch = batch

    def push(self, push: Push) -> None:
        self.batch.push_sessions([s for s in self.batch.routing.proxies_of_sink(self)], push, False)

    def kick(self, reason: int, message: str) -> None:
        """Sessions end on their own node."""


class FederatedGroupRouter:
    """Local pushes, plus ONE copy per other node holding devices of members."""

    def __init__(self, local: GroupRouter, routing: FeatureRouting) -> None:
        self.local = local
        self.routing = routing

    def route_to_members(self, group: str, members: Iterable[str], push: Push) -> int:
        users = list(members)
        reached = self.local.route_to_members(group, users, push)
        self.routing.push_users(users, push.frame, "group")
        return reached


class FeatureRouting:
    """Wires the single-node features to the federation; see the module docstring."""

    def __init__(self, federation: Federation) -> None:
        self.fed = federation
        self.service = federation.service
        self.links = federation.links
        self.stats = federation.stats
        for kind in PUSH_KINDS:
            self.stats[f"push_out_{kind}"] = 0
            self.stats[f"push_in_{kind}"] = 0
        for name in ("forward_out", "forward_in", "forward_failed", "invalidate_out", "invalidate_in", "session_gone"):
            self.stats[name] = 0
        self._originals: dict[str, Handler] = {}
        self._proxies: dict[tuple[PeerId, str, str], Session] = {}
        self._proxy_by_sink: dict[int, Session] = {}
        self._batches: dict[PeerId, _PeerBatch] = {}
        self._room_homes: dict[tuple[str, str], set[PeerId]] = {}  # (user, device) here -> home nodes used
        self._local_group_router: GroupRouter | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        features = self.service.features
        features.events.remote = self.push_users
        features.presence.remote = self.push_users
        features.presence.changed.append(self._presence_changed)
        features.presence.hidden.append(self._hidden)
        features.roster.on_change = self._roster_changed
        groups = self.service.spaces.groups
        self._local_group_router = groups.router
        groups.router = FederatedGroupRouter(groups.router, self)
        groups.owned = lambda group: self.owner(group_key(group)) == self.links.local_peer
        spaces = self.service.spaces
        spaces.streams.remote = self.push_stream
        spaces.route_whole = self.route_whole
        self.links.on_drop = spaces.streams.dropped.inc
        for ops, key in ((_GROUP_OPS, group_key), (_ROOM_OPS, room_key)):
            for op, name_of in ops.items():
                handler = self._forwarding(op, name_of, key)
                self._originals[op] = self.service.replace_handler(op, handler)
        self.service.presence_hooks.append(self._devices_changed)

    def stop(self) -> None:
        features = self.service.features
        features.events.remote = None
        features.presence.remote = None
        if self._presence_changed in features.presence.changed:
            features.presence.changed.remove(self._presence_changed)
        if self._hidden in features.presence.hidden:
            features.presence.hidden.remove(self._hidden)
        features.roster.on_change = None
        groups = self.service.spaces.groups
        if self._local_group_router is not None:
            groups.router = self._local_group_router
        groups.owned = lambda group: True
        self.service.spaces.streams.remote = None
        self.service.spaces.route_whole = None
        self.links.on_drop = None
        for op, handler in self._originals.items():
            self.service.replace_handler(op, handler)
        self._originals.clear()
        if self._devices_changed in self.service.presence_hooks:
            self.service.presence_hooks.remove(self._devices_changed)

    def nodes_changed(self) -> None:
        """A link came up or went down, or a node's store compatibility became known."""
        self.service.spaces.groups.ownership_changed()

    def link_down(self, peer: PeerId) -> None:
        """Forget the proxy sessions of ``peer`` (they leave their rooms here)."""
        rooms = self.service.spaces.rooms
        for key in [k for k in self._proxies if k[0] == peer]:
            session = self._proxies.pop(key)
            self._proxy_by_sink.pop(id(session.sink), None)
            rooms.forget(session)
        self._batches.pop(peer, None)
        for homes in self._room_homes.values():
            homes.discard(peer)
        self.nodes_changed()

    # ------------------------------------------------------------------ ownership

    def owner(self, key: bytes) -> PeerId:
        me = self.links.local_peer
        return closest(key, [me, *(p for p in self.links.peers() if self.fed._usable(p))])

    # ------------------------------------------------------------------ PUSH out

    def push_users(self, users: Iterable[str], frame: pb.ServerFrame, kind: str) -> None:
        """``frame`` to every device of ``users`` on other nodes: one PUSH per node."""
        by_peer: dict[PeerId, list[fed.Target]] = {}
        for user in dict.fromkeys(users):
            for entry in self.fed.directory.cached(user):
                by_peer.setdefault(entry.peer, []).append(fed.Target(user=user))
        if not by_peer:
            return
        raw = frame.SerializeToString()
        for peer, targets in by_peer.items():
            self.send_push(peer, raw, targets, kind)

    def send_push(
        self, peer: PeerId, frame: bytes, targets: list[fed.Target], kind: str, *, stream: bool = False
    ) -> None:
        self.stats[f"push_out_{kind}"] += 1
        body = fed.FedRequest(push=fed.Push(frame=frame, targets=targets, kind=kind, stream=stream))
        if stream:  # live data: may be dropped under backpressure, unordered channel on rtc
            self.links.send_droppable(peer, self.fed_protocol, body.SerializeToString())
            return
        self.fed._spawn(self.fed._send(peer, body.SerializeToString()))

    def push_stream(self, user: str, frame: pb.ServerFrame) -> int:
        """``Streams.remote``: a 1:1 stream frame to ``user``'s devices on other nodes (droppable);
        the devices it was sent to."""
        raw: bytes | None = None
        devices = 0
        for entry in self.fed.directory.cached(user):
            raw = raw if raw is not None else frame.SerializeToString()
            self.send_push(entry.peer, raw, [fed.Target(user=user)], "stream", stream=True)
            devices += len(entry.devices)
        return devices

    async def broadcast(self, template: pb.Message, user: str = "") -> int:
        """``AdminOps.remote_broadcasts``: push a system message to every session on the other
        nodes (``to=all``), or to ``user``'s devices on the nodes the directory lists for them
        (``to=<user>``); the shared store already holds each account's copy. Devices reached."""
        if user:
            peers = [r.peer for r in self.fed.directory.cached(user)]
            addressed = pb.Message()
            addressed.CopyFrom(template)
            addressed.to = user
            push = fed.Push(frame=pb.ServerFrame(message=addressed).SerializeToString(), kind="broadcast",
                            targets=[fed.Target(user=user)])  # fmt: skip
        else:
            peers = [p for p in self.links.peers() if self.fed._usable(p)]
            frame = pb.ServerFrame(message=template).SerializeToString()
            push = fed.Push(frame=frame, kind="broadcast", all_users=True)
        body = fed.FedRequest(push=push).SerializeToString()

        async def one(peer: PeerId) -> int:
            self.stats["push_out_broadcast"] += 1
            try:
                raw = await self.links.request(peer, self.fed_protocol, body, self.fed.timeout)
            except (P2PError, OSError) as exc:
                log.info("broadcast to %s failed: %s", peer.short(), exc)
                return 0
            return fed.FedReply.FromString(raw).pushed

        return sum(await asyncio.gather(*(one(p) for p in peers)))

    @property
    def fed_protocol(self) -> str:
        from im.federation import PROTOCOL

        return PROTOCOL

    # ------------------------------------------------------------------ PUSH in

    def serve_push(self, req: fed.Push) -> int:
        kind = req.kind if req.kind in PUSH_KINDS else "event"
        self.stats[f"push_in_{kind}"] += 1
        frame = pb.ServerFrame.FromString(req.frame)
        registry = self.service.registry
        if req.all_users:
            return self._push_all(frame)
        push = Push(frame)
        count = 0
        for target in req.targets:
            for session in list(registry.sessions_of(target.user)):
                if target.device and session.device != target.device:
                    continue
                if req.stream:
                    deliver_stream(session, push)
                else:
                    session.sink.push(push)
                count += 1
        return count

    def _push_all(self, frame: pb.ServerFrame) -> int:
        pushes: dict[str, Push] = {}
        count = 0
        for session in self.service.registry.all_sessions():
            push = pushes.get(session.user)
            if push is None:
                addressed = pb.ServerFrame()
                addressed.CopyFrom(frame)
                addressed.message.to = session.user
                push = pushes[session.user] = Push(addressed)
            session.sink.push(push)
            count += 1
        return count

    # ------------------------------------------------------------------ presence and roster

    def _presence_changed(self, user: str) -> None:
        """A SetPresence here: replicate the new status, text and fields."""
        self.fed._devices_changed(user, ())

    def _roster_changed(self, users: list[str]) -> None:
        body = fed.FedRequest(invalidate=fed.Invalidate(users=users)).SerializeToString()
        for peer in self.links.peers():
            if self.fed._usable(peer):
                self.stats["invalidate_out"] += 1
                self.fed._spawn(self.fed._send(peer, body))

    def _hidden(self, user: str, blocked: str) -> None:
        """``user`` blocked ``blocked`` here: every node hides ``user`` from ``blocked``'s sessions."""
        hide = fed.Invalidate(users=[user, blocked], hides=[fed.Hide(user=user, viewer=blocked)])
        body = fed.FedRequest(invalidate=hide).SerializeToString()
        for peer in self.links.peers():
            if self.fed._usable(peer):
                self.stats["invalidate_out"] += 1
                self.fed._spawn(self.fed._send(peer, body))

    def serve_invalidate(self, req: fed.Invalidate) -> None:
        self.stats["invalidate_in"] += 1
        features = self.service.features
        features.roster.forget(list(req.users))
        for hide in req.hides:  # a block elsewhere: end the subscriptions, show the blocker offline
            features.presence.hide_from(hide.user, hide.viewer, everywhere=False)

    # ------------------------------------------------------------------ FORWARD out

    def _forwarding(self, op: str, name_of: Callable[[pb.ClientFrame], str], key: Callable[[str], bytes]) -> Handler:
        room = op in _ROOM_OPS

        async def handler(conn: Any, frame: pb.ClientFrame) -> pb.ServerFrame:
            original = self._originals[op]
            name = name_of(frame)
            if op == "room_create" and not name:
                frame = _copy(frame)
                name = frame.room_create.room = "r" + secrets.token_hex(8)
            if not name:  # stream data to a user; or a bad request the owner would refuse alike
                return await original(conn, frame)
            owner = self.owner(key(name))
            if owner == self.links.local_peer:
                return await original(conn, frame)
            session = conn.session
            assert session is not None
            if room:
                self._room_homes.setdefault((session.user, session.device), set()).add(owner)
            return await self._forward(owner, session, frame)

        return handler

    async def route_whole(self, session: Session, frame: pb.ClientFrame) -> pb.ServerFrame | None:
        """``Spaces.route_whole``: a reassembled chunked group_send / room_send goes to the group's
        sequence owner / room's home; None when that is this node."""
        op = frame.WhichOneof("op")
        key: Callable[[str], bytes]
        if op == "group_send":
            name, key = frame.group_send.group, group_key
        elif op == "room_send":
            name, key = frame.room_send.room, room_key
        else:
            return None
        if not name:
            return None
        owner = self.owner(key(name))
        if owner == self.links.local_peer:
            return None
        if op == "room_send":
            self._room_homes.setdefault((session.user, session.device), set()).add(owner)
        return await self._forward(owner, session, frame, whole=True)

    async def _forward(
        self, peer: PeerId, session: Session, frame: pb.ClientFrame, *, whole: bool = False
    ) -> pb.ServerFrame:
        self.stats["forward_out"] += 1
        body = fed.FedRequest(
            forward=fed.Forward(user=session.user, device=session.device, frame=frame.SerializeToString(), whole=whole)
        ).SerializeToString()
        try:
            reply = fed.FedReply.FromString(await self.links.request(peer, self.fed_protocol, body, self.fed.timeout))
        except (P2PError, OSError) as exc:
            self.stats["forward_failed"] += 1
            log.info("forward to %s failed: %s", peer.short(), exc or type(exc).__name__)
            raise ImError(pb.STORE_UNAVAILABLE, "the node that owns this group or room is unreachable; retry",
                          retry_after=1.0) from exc  # fmt: skip
        if reply.status != fed.FedReply.OK:
            raise ImError(pb.STORE_UNAVAILABLE, f"the owning node refused: {reply.error}", retry_after=1.0)
        out = pb.ServerFrame.FromString(reply.frame)
        if out.WhichOneof("body") == "error":
            raise ImError(out.error.code, out.error.message, retry_after=out.error.retry_after)
        return out

    def _devices_changed(self, user: str, devices: tuple[str, ...]) -> None:
        """A session here ended: tell the rooms' home nodes it used (SESSION_GONE)."""
        for key in [k for k in self._room_homes if k[0] == user and k[1] not in devices]:
            body = fed.FedRequest(session_gone=fed.SessionGone(user=key[0], device=key[1])).SerializeToString()
            for peer in self._room_homes.pop(key):
                self.fed._spawn(self.fed._send(peer, body))

    # ------------------------------------------------------------------ FORWARD in

    async def serve_forward(self, peer: PeerId, req: fed.Forward) -> fed.FedReply:
        self.stats["forward_in"] += 1
        try:
            frame = pb.ClientFrame.FromString(req.frame)
        except Exception:  # noqa: BLE001 - DecodeError
            return fed.FedReply(status=fed.FedReply.BAD_REQUEST, error="undecodable frame")
        op = frame.WhichOneof("op") or ""
        handler = self._originals.get(op)
        if handler is None:
            return fed.FedReply(status=fed.FedReply.BAD_REQUEST, error=f"{op or 'no op'} is not forwarded")
        session = self._proxy(peer, req.user, req.device) if op in _ROOM_OPS else self._transient(req)
        try:
            if req.whole:  # a chunked upload reassembled on the sender's node
                out = await self.service.spaces.send_whole(session, frame)
            else:
                out = await handler(cast("Connection", _ProxyConn(session)), frame)
        except ImError as exc:
            out = _error(exc)
        except StoreError as exc:
            log.warning("forwarded %s failed: %s", op, exc)
            out = _error(ImError(pb.STORE_UNAVAILABLE, "store unavailable; nothing was acknowledged"))
        except Exception:  # noqa: BLE001 - answer, do not break the link handler
            log.exception("forwarded %s failed", op)
            out = _error(ImError(pb.INTERNAL, "internal error"))
        return fed.FedReply(frame=out.SerializeToString())

    def _transient(self, req: fed.Forward) -> Session:
        loop = asyncio.get_running_loop()
        return Session(user=req.user, device=req.device, sink=_NullSink(), login_at=loop.time())

    def _proxy(self, peer: PeerId, user: str, device: str) -> Session:
        key = (peer, user, device)
        session = self._proxies.get(key)
        if session is None:
            batch = self._batches.get(peer)
            if batch is None:
                batch = self._batches[peer] = _PeerBatch(self, peer)
            sink = _ProxySink(batch)
            session = Session(user=user, device=device, sink=sink, login_at=asyncio.get_running_loop().time())
            self._proxies[key] = session
            self._proxy_by_sink[id(sink)] = session
        return session

    def proxies_of_sink(self, sink: _ProxySink) -> list[Session]:
        session = self._proxy_by_sink.get(id(sink))
        return [session] if session is not None else []

    def serve_session_gone(self, peer: PeerId, req: fed.SessionGone) -> None:
        self.stats["session_gone"] += 1
        session = self._proxies.pop((peer, req.user, req.device), None)
        if session is not None:
            self._proxy_by_sink.pop(id(session.sink), None)
            self.service.spaces.rooms.forget(session)


class _NullSink:
    """Group operations push by user (the router), never to the proxy session itself."""

    def push(self, push: Push) -> None:
        pass

    def kick(self, reason: int, message: str) -> None:
        pass


def _copy(frame: pb.ClientFrame) -> pb.ClientFrame:
    out = pb.ClientFrame()
    out.CopyFrom(frame)
    return out


def _error(exc: ImError) -> pb.ServerFrame:
    return pb.ServerFrame(error=pb.Error(code=exc.code, message=exc.message, retry_after=exc.retry_after))  # type: ignore[arg-type]
