"""Cross-node IM: a user on node A talks to a user on node B (issue 6).

Node-to-node messages travel over peer links (``node.manager.LinkManager``) on protocol
``/timnode/im/1`` as ``proto/federation.proto`` (``FedRequest`` / ``FedReply``):

* **HELLO** at every link-up, both ways: the store fingerprint (:func:`store_fingerprint`)
  and a snapshot of the users (devices, login times, chosen status) the node holds. Nodes
  whose fingerprints differ do not federate: store-backed operations across them are refused
  (a send to a user known only there fails with ``STORE_UNAVAILABLE`` and says why; a DELIVER
  from such a node is answered ``STORE_MISMATCH``), and the mismatch is logged at link-up.
* **PRESENCE** (one-way, to every linked node) whenever a user's device set here changes
  (``ImService.presence_hooks``): every node keeps a replicated table user -> node ->
  devices (:class:`LinkDirectory`). A lost link drops that node's entries at once, so a
  crashed node's users disappear as soon as its links go down (the DHT records, published
  by ``timnode.dht_wiring.PresencePublisher``, expire by TTL as well).
* **DELIVER** (request): one per destination node, even when it holds several devices.
  Destinations are the nodes holding the recipient or the sender's other devices. The
  receiving node pushes to its sessions of both parties except the origin device and
  answers how many devices it pushed to, or ``GONE`` when it was expected to hold the
  recipient and does not; ``GONE`` triggers a fresh lookup (``WHO_HAS`` to every linked
  node, and the DHT cache is invalidated) and a delivery to the nodes that lookup adds.
* **ACKED** (one-way): delivery receipts to the nodes holding the sender's devices.
* **WHO_HAS** (request): a fresh lookup of one user on one node.
* **KICK** (request): the network-wide device limit ends a session on another node.
* **PUSH**, **INVALIDATE**, **FORWARD**, **SESSION_GONE**: the IM features across nodes
  (events, typing, roster caches, groups, rooms, admin broadcasts): im/fed_routing.py.

The directory (:class:`PresenceDirectory`) answers from the replicated table; when the table
has nothing and the DHT knows nodes this node is not linked to (a network larger than the
mesh), the DHT presence records are consulted and the nodes found are dialled.

Presence subscriptions across nodes need no watch records: every node already learns every
device change of the nodes it is linked to, and tells its own watchers (and friends) when a
user goes online or offline network-wide (``ImService.network``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, urlsplit

from im import client_pb2 as pb
from im import federation_pb2 as fed
from im.errors import ImError
from im.fed_routing import FeatureRouting
from im.sessions import Push, Session
from node.errors import P2PError
from node.identity import PeerId
from node.manager import LinkDown, LinkEvent, LinkManager, LinkUp

if TYPE_CHECKING:
    from dht.aio import DhtService
    from im.service import ImService

__all__ = [
    "PROTOCOL",
    "Federation",
    "LinkDirectory",
    "PresenceDirectory",
    "RemoteDevice",
    "RemoteDevices",
    "store_fingerprint",
]

PROTOCOL = "/timnode/im/1"
_DHT_MISS_TTL = 5.0  # seconds a user the DHT did not find is not looked up again by plain sends
_DHT_MISS_MAX = 10_000
NO_STORE = "no-store"

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- fingerprint


def store_fingerprint(
    url: str, *, durable: bool, blind: Callable[[bytes, bytes], bytes] | None, store: Any = None
) -> str:
    """A stable hash of the resolved store configuration (never secrets): equal on nodes that
    share one store. Covers the backend and its location (SQLite: the real path; PostgreSQL:
    host, port, database and table, without credentials; shards: the placement fingerprint)
    and a keyed hash proving the same data key (sealed records are unreadable otherwise)."""
    if not durable:
        return NO_STORE
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    where: dict[str, Any]
    if scheme == "sqlite":
        import os

        path = url[len("sqlite://") :].partition("?")[0]  # ?writer= does not change the store
        where = {"sqlite": os.path.realpath(path)}
    elif scheme in ("postgresql", "postgres"):
        query = parse_qs(parts.query)
        where = {
            "postgresql": parts.hostname or "",
            "port": parts.port or 5432,
            "database": parts.path.lstrip("/"),
            "table": (query.get("table") or ["records"])[-1],
        }
    else:
        inner = store
        while inner is not None and not hasattr(inner, "fingerprint"):
            inner = getattr(inner, "inner", None)
        where = {"url": url.split("?")[0]} if inner is None else {"shards": inner.fingerprint()}
    if blind is not None:
        where["data_key"] = blind(b"timnode store fingerprint v1", b"").hex()
    return hashlib.sha256(json.dumps(where, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------- directory


@dataclass(frozen=True, slots=True)
class RemoteDevice:
    device: str
    login_at_ms: int


@dataclass(frozen=True, slots=True)
class RemoteDevices:
    """The devices of one user on one other node."""

    peer: PeerId
    devices: tuple[RemoteDevice, ...]
    status: int = 0
    text: str = ""
    fields: tuple[tuple[str, str], ...] = ()


class PresenceDirectory(Protocol):
    async def lookup(self, user: str, fresh: bool = False) -> list[RemoteDevices]: ...


class LinkDirectory:
    """The replicated table: user -> node -> devices, fed by HELLO and PRESENCE over links.

    ``lookup(fresh=True)`` asks every usable linked node at once (WHO_HAS, short timeout) and
    replaces what the table knew. ``usable(peer)`` filters nodes of another store.
    """

    def __init__(self, ask: Callable[[PeerId, str], Awaitable[fed.UserDevices | None]],
                 peers: Callable[[], Iterable[PeerId]], usable: Callable[[PeerId], bool]) -> None:  # fmt: skip
        self._ask = ask
        self._peers = peers
        self.usable = usable
        self._table: dict[str, dict[PeerId, RemoteDevices]] = {}
        self._seq: dict[tuple[PeerId, str], int] = {}

    def apply(self, peer: PeerId, update: fed.UserDevices) -> bool:
        """Take one node's device set of a user; False when older than what we have."""
        key = (peer, update.user)
        if update.seq and update.seq < self._seq.get(key, 0):
            return False
        self._seq[key] = update.seq
        entries = self._table.setdefault(update.user, {})
        if update.devices:
            devices = tuple(RemoteDevice(d.device, d.login_at_ms) for d in update.devices)
            fields = tuple(sorted(update.fields.items()))
            entries[peer] = RemoteDevices(peer, devices, update.status, update.text, fields)
        else:
            entries.pop(peer, None)
            if not entries:
                del self._table[update.user]
        return True

    def users_held_by(self, peer: PeerId) -> set[str]:
        return {user for user, entries in self._table.items() if peer in entries}

    def reset_seqs(self, peer: PeerId) -> None:
        self._seq = {k: v for k, v in self._seq.items() if k[0] != peer}

    def drop_peer(self, peer: PeerId) -> list[str]:
        """Forget a node's entries (its link went down); the users that had some."""
        users = [u for u, entries in self._table.items() if peer in entries]
        for user in users:
            del self._table[user][peer]
            if not self._table[user]:
                del self._table[user]
        self._seq = {k: v for k, v in self._seq.items() if k[0] != peer}
        return users

    @property
    def empty(self) -> bool:
        """No node has told us of any user."""
        return not self._table

    def cached(self, user: str, *, all_peers: bool = False) -> list[RemoteDevices]:
        return [r for r in self._table.get(user, {}).values() if all_peers or self.usable(r.peer)]

    def device_count(self, user: str) -> int:
        return sum(len(r.devices) for r in self.cached(user))

    def users_of(self, peer: PeerId) -> int:
        return sum(1 for entries in self._table.values() if peer in entries)

    async def lookup(self, user: str, fresh: bool = False) -> list[RemoteDevices]:
        if fresh:
            peers = [p for p in self._peers() if self.usable(p)]
            answers = await asyncio.gather(*(self._ask(p, user) for p in peers))
            for peer, answer in zip(peers, answers, strict=True):
                if answer is not None:
                    self._seq.pop((peer, user), None)
                    self.apply(peer, answer)
        return self.cached(user)


# ---------------------------------------------------------------------------- federation


class Federation:
    """Cross-node routing for one node's ``ImService``; see the module docstring."""

    def __init__(
        self,
        service: ImService,
        links: LinkManager,
        *,
        fingerprint: str,
        durable: bool,
        dht: DhtService | None = None,
        timeout: float = 3.0,
        lookup_timeout: float = 1.0,
    ) -> None:
        self.service = service
        self.links = links
        self.fingerprint = fingerprint
        self.durable = durable
        self.dht = dht
        self._dht_misses: dict[str, float] = {}  # user -> loop time of a DHT lookup that found nobody
        self._beyond, self._beyond_at = False, float("-inf")
        self.timeout = timeout
        self.lookup_timeout = lookup_timeout
        self.directory = LinkDirectory(self._who_has, links.peers, self._usable)
        self._compat: dict[PeerId, bool] = {}  # peer -> same store fingerprint (after HELLO)
        self._fingerprints: dict[PeerId, str] = {}
        self._seq = time.time_ns()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self.stats = {
            "deliver_out": 0, "deliver_in": 0, "deliver_failed": 0, "gone": 0, "fresh_lookups": 0,
            "dht_lookups": 0, "acked_out": 0, "acked_in": 0, "presence_out": 0, "presence_in": 0,
            "kicks_out": 0, "kicks_in": 0, "refused_mismatch": 0,
        }  # fmt: skip
        self.routing = FeatureRouting(self)  # events, typing, roster, groups, rooms, broadcasts

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.links.handle(PROTOCOL, self._serve)
        self._unsubscribe = self.links.subscribe(self._on_link)
        self.service.presence_hooks.append(self._devices_changed)
        self.service.session_guards.append(self._device_guard)
        self.service.remote_kicks.append(self.kick_user)
        self.service.messenger.remote = self
        self.service.network = self
        self.routing.start()
        for peer in self.links.peers():
            self._spawn(self._hello(peer))

    async def stop(self) -> None:
        self.links.unhandle(PROTOCOL)
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.service.messenger.remote = None
        self.service.network = None
        if self.kick_user in self.service.remote_kicks:
            self.service.remote_kicks.remove(self.kick_user)
        self.routing.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def status(self) -> dict[str, Any]:
        """The ``federation`` section of ``/healthz``."""
        peers = {
            str(p): {"compatible": self._compat.get(p), "users": self.directory.users_of(p)} for p in self.links.peers()
        }
        counters = dict(self.stats)
        return {"protocol": PROTOCOL, "store_fingerprint": self.fingerprint, "peers": peers, "counters": counters}

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _usable(self, peer: PeerId) -> bool:
        return self._compat.get(peer, False) and self.links.is_linked(peer)

    # ------------------------------------------------------------------ links

    def _on_link(self, event: LinkEvent) -> None:
        if isinstance(event, LinkUp):
            self._spawn(self._hello(event.peer))
        elif isinstance(event, LinkDown):
            users = self.directory.drop_peer(event.peer)
            self._compat.pop(event.peer, None)
            self.routing.link_down(event.peer)
            for user in users:
                self._network_changed(user, before=None)

    def _hello_body(self) -> fed.Hello:
        hello = fed.Hello(store_fingerprint=self.fingerprint, durable=self.durable)
        for user in dict.fromkeys(s.user for s in self.service.registry.all_sessions()):
            hello.users.append(self._devices_of(user))
        return hello

    async def _hello(self, peer: PeerId) -> None:
        request = fed.FedRequest(hello=self._hello_body())
        try:
            raw = await self.links.request(peer, PROTOCOL, request.SerializeToString(), self.timeout)
        except (P2PError, OSError) as exc:
            log.debug("hello to %s failed: %s", peer.short(), exc)
            return
        reply = fed.FedReply.FromString(raw)
        self._take_hello(peer, reply.hello)

    def _take_hello(self, peer: PeerId, hello: fed.Hello) -> None:
        match = hello.store_fingerprint == self.fingerprint
        if self._compat.get(peer) is None or self._fingerprints.get(peer) != hello.store_fingerprint:
            if match:
                log.info("= federation with %s (store %s)", peer.short(), self.fingerprint[:12])
            else:
                log.error(
                    "peer %s uses another store configuration (fingerprint %s, ours %s): cross-node "
                    "store-backed operations with it are refused; configure every node with the same "
                    "store (and data key), or all with --no-store", peer.short(), hello.store_fingerprint[:12],
                    self.fingerprint[:12],
                )  # fmt: skip
        self._fingerprints[peer] = hello.store_fingerprint
        if self._compat.get(peer) != match:
            self._compat[peer] = match
            self.routing.nodes_changed()  # group owners and room homes may move
        # A HELLO is the peer's whole truth: after a quick restart (a new link replacing the old
        # one with no LinkDown) its sequence numbers start again and users it no longer holds
        # must go, or they would stay "online" here for ever.
        self.directory.reset_seqs(peer)
        listed = {update.user for update in hello.users}
        for user in self.directory.users_held_by(peer) - listed:
            before = self.directory.device_count(user)
            if self.directory.apply(peer, fed.UserDevices(user=user)):
                self._network_changed(user, before=before)
        for update in hello.users:
            before = self.directory.device_count(update.user)
            if self.directory.apply(peer, update):
                self._network_changed(update.user, before=before)

    # ------------------------------------------------------------------ serving

    def _serve(self, peer: PeerId, body: bytes) -> bytes | None | Awaitable[bytes]:
        """``/timnode/im/1``: every operation but FORWARD is synchronous, so link order is kept."""
        try:
            request = fed.FedRequest.FromString(body)
        except Exception:  # noqa: BLE001 - DecodeError
            return fed.FedReply(status=fed.FedReply.BAD_REQUEST, error="undecodable").SerializeToString()
        op = request.WhichOneof("op")
        if op == "hello":
            self._take_hello(peer, request.hello)
            return fed.FedReply(hello=self._hello_body()).SerializeToString()
        if op == "presence":
            self.stats["presence_in"] += 1
            user = request.presence.user
            before, rich = self.directory.device_count(user), self._rich(user)
            if self.directory.apply(peer, request.presence):
                self._network_changed(user, before=before, rich_changed=rich != self._rich(user))
            return None
        if op == "who_has":
            return fed.FedReply(devices=self._devices_of(request.who_has.user)).SerializeToString()
        if not self._compat.get(peer, False):
            self.stats["refused_mismatch"] += 1
            return fed.FedReply(
                status=fed.FedReply.STORE_MISMATCH, error="this node uses another store configuration"
            ).SerializeToString()
        if op == "deliver":
            return self._serve_deliver(request.deliver).SerializeToString()
        if op == "acked":
            self.stats["acked_in"] += 1
            a = request.acked
            self.service.messenger.push_delivered(a.by, a.sender, list(a.message_ids))
            return None
        if op == "kick":
            kicked = self._kick_local(request.kick)
            return fed.FedReply(kicked=kicked > 0, pushed=kicked).SerializeToString()
        if op == "push":
            return fed.FedReply(pushed=self.routing.serve_push(request.push)).SerializeToString()
        if op == "invalidate":
            self.routing.serve_invalidate(request.invalidate)
            return None
        if op == "forward":
            return self._serve_forward(peer, request.forward)
        if op == "session_gone":
            self.routing.serve_session_gone(peer, request.session_gone)
            return None
        return fed.FedReply(status=fed.FedReply.BAD_REQUEST, error="unknown operation").SerializeToString()

    async def _serve_forward(self, peer: PeerId, req: fed.Forward) -> bytes:
        return (await self.routing.serve_forward(peer, req)).SerializeToString()

    def _serve_deliver(self, req: fed.Deliver) -> fed.FedReply:
        self.stats["deliver_in"] += 1
        message = pb.Message.FromString(req.message)
        recipients, others = self.service.messenger.deliver_remote(message)
        status = fed.FedReply.GONE if req.expect_recipient and recipients == 0 else fed.FedReply.OK
        return fed.FedReply(status=status, recipient_devices=recipients, sender_devices=others)

    def _kick_local(self, req: fed.Kick) -> int:
        """End the named device of the user here, or (no device) every device of the user."""
        self.stats["kicks_in"] += 1
        registry = self.service.registry
        message = req.message or _KICK_TEXT.get(req.reason, "signed out")
        count = 0
        for session in list(registry.sessions_of(req.user)):
            if not req.device or session.device == req.device:
                if req.device:  # the device limit: the slot is free at once
                    registry.remove(session)
                session.sink.kick(req.reason, message)
                count += 1
        return count

    # ------------------------------------------------------------------ presence out

    def _devices_of(self, user: str) -> fed.UserDevices:
        self._seq += 1
        update = fed.UserDevices(user=user, seq=self._seq)
        offset_ms = time.time() * 1000 - asyncio.get_running_loop().time() * 1000
        for session in self.service.registry.sessions_of(user):
            update.devices.add(device=session.device, login_at_ms=int(session.login_at * 1000 + offset_ms))
        features = getattr(self.service, "features", None)  # rich presence (im/presence.py), when present
        if update.devices and features is not None:
            own = features.presence.own(user)
            update.status, update.text = int(own.status), own.text
            update.fields.update(own.fields)
        return update

    def _devices_changed(self, user: str, devices: tuple[str, ...]) -> None:
        """``ImService.presence_hooks``: tell every linked node."""
        body = fed.FedRequest(presence=self._devices_of(user)).SerializeToString()
        for peer in self.links.peers():
            self.stats["presence_out"] += 1
            self._spawn(self._send(peer, body))

    async def _send(self, peer: PeerId, body: bytes) -> None:
        try:
            await self.links.send(peer, PROTOCOL, body)
        except (P2PError, OSError) as exc:
            log.debug("send to %s failed: %s", peer.short(), exc)

    # ------------------------------------------------------------------ presence in (ImService.network)

    def remote_devices(self, user: str) -> int:
        return self.directory.device_count(user)

    def _remote_presence(self, user: str) -> pb.Presence:
        entries = self.directory.cached(user)
        devices = sum(len(r.devices) for r in entries)
        if not devices or any(r.status == pb.INVISIBLE for r in entries):
            return pb.Presence(user=user)
        since = min(d.login_at_ms for r in entries for d in r.devices)
        status = next((r.status for r in entries if r.status), pb.AVAILABLE)
        text = next((r.text for r in entries if r.text), "")
        presence = pb.Presence(user=user, online=True, devices=devices, since=since, status=status, text=text)  # type: ignore[arg-type]
        presence.fields.update(next((dict(r.fields) for r in entries if r.fields), {}))
        return presence

    def _rich(self, user: str) -> list[tuple[int, str, tuple[tuple[str, str], ...]]]:
        """What a remote user shows besides being online: compared to spot SetPresence changes."""
        return [(r.status, r.text, r.fields) for r in self.directory.cached(user)]

    def view(self, presence: pb.Presence, session: Session) -> pb.Presence:
        """A Subscribe answer: a user offline here but online elsewhere (and watchable) is online."""
        if presence.online or presence.user not in session.watching:
            return presence
        if self.service.registry.device_count(presence.user):
            return presence  # online here: the local view (invisible included) stands
        return self._remote_presence(presence.user)

    def _network_changed(self, user: str, *, before: int | None, rich_changed: bool = False) -> None:
        """A remote device set changed: tell local watchers when the user went on/offline
        network-wide, or changed status, text or fields while online elsewhere."""
        if self.service.registry.device_count(user):
            return  # online here throughout: the local announcements cover it
        after = self.directory.device_count(user)
        if rich_changed and before and after:
            self._spawn(self._announce(user))
        elif before is None or (before > 0) != (after > 0):
            if before is None and after > 0:
                return  # a link went down and the user is still online elsewhere
            self._spawn(self._announce(user))

    async def _announce(self, user: str) -> None:
        presence = self._remote_presence(user)
        offline = pb.Presence(user=user)
        registry = self.service.registry
        targets: dict[str, list[Session]] = {}
        for watcher in registry.watchers_of(user):
            targets.setdefault(watcher.user, []).append(watcher)
        features = getattr(self.service, "features", None)
        roster = features.roster if features is not None else None
        try:
            for friend in await roster.friends(user) if roster is not None else ():
                for target in registry.sessions_of(friend):
                    if target not in targets.get(friend, ()):
                        targets.setdefault(friend, []).append(target)
        except Exception as exc:  # noqa: BLE001 - the store failed: watchers still hear
            log.debug("friends of %s unavailable: %s", user, exc)
        if not presence.online and features is not None and not features.presence.offline_notice:
            targets = {}
        for viewer, sessions in targets.items():
            blocked = roster is not None and presence.online and await roster.blocks(user, viewer)
            shown = offline if blocked else presence
            push = Push(pb.ServerFrame(presence=shown))
            for target in sessions:
                target.sink.push(push)

    # ------------------------------------------------------------------ lookup

    async def lookup(self, user: str, fresh: bool = False) -> list[RemoteDevices]:
        """Remote nodes holding ``user`` (table, then the DHT for nodes beyond the mesh)."""
        if fresh:
            self.stats["fresh_lookups"] += 1
            if self.dht is not None and self.dht.running:
                self.dht.invalidate_presence(user)
        if not fresh:  # the hot path of every send: a table read, no task, no timer
            found = self.directory.cached(user)
        else:
            try:
                found = await asyncio.wait_for(self.directory.lookup(user, fresh), self.lookup_timeout * 2)
            except TimeoutError:
                found = self.directory.cached(user)
        if not found and (fresh or not self._recent_miss(user)) and self._beyond_mesh():
            found = await self._dht_lookup(user, fresh)
            if not found:
                if len(self._dht_misses) >= _DHT_MISS_MAX:  # bounded: sends to random names must not grow it
                    self._dht_misses.clear()
                self._dht_misses[user] = asyncio.get_running_loop().time()
        return found

    def _recent_miss(self, user: str) -> bool:
        """A DHT lookup found no node for ``user`` within the last seconds (sends don't repeat it)."""
        at = self._dht_misses.get(user)
        if at is None:
            return False
        if asyncio.get_running_loop().time() - at < _DHT_MISS_TTL:
            return True
        del self._dht_misses[user]
        return False

    def _beyond_mesh(self) -> bool:
        """Could the DHT know nodes we are not linked to? Servers beyond our links, or any node
        in client mode (a NATed node never enters a routing table; its presence records do)."""
        if self.dht is None or not self.dht.running:
            return False
        now = asyncio.get_running_loop().time()
        if now - self._beyond_at >= 1.0:  # a routing-table count per send would dominate the send path
            self._beyond_at = now
            self._beyond = self.dht.bootstrapped or self.dht.table_size() > len(self.links.peers())
        return self._beyond

    async def _dht_lookup(self, user: str, fresh: bool) -> list[RemoteDevices]:
        """Nodes the DHT lists for ``user``: dial them, HELLO, then answer from the table."""
        from dht.records import live_devices

        assert self.dht is not None
        self.stats["dht_lookups"] += 1
        try:
            event = await asyncio.wait_for(self.dht.get_presence(user, fresh=fresh), self.lookup_timeout * 3)
        except (TimeoutError, P2PError):
            return []
        me = self.links.local_peer
        nodes = {PeerId(node) for node, _, _ in live_devices(event.entries)} - {me}
        for node in nodes:
            if not self.links.is_linked(node):
                try:
                    if await asyncio.wait_for(self.dht.dial(node), self.timeout):
                        await self._hello(node)
                except (TimeoutError, P2PError, OSError):
                    continue
            if self._usable(node) and not self.directory.cached(user):
                answer = await self._who_has(node, user)
                if answer is not None:
                    self.directory.apply(node, answer)
        return self.directory.cached(user)

    async def _who_has(self, peer: PeerId, user: str) -> fed.UserDevices | None:
        body = fed.FedRequest(who_has=fed.WhoHas(user=user)).SerializeToString()
        try:
            raw = await self.links.request(peer, PROTOCOL, body, self.lookup_timeout)
        except (P2PError, OSError):
            return None
        return fed.FedReply.FromString(raw).devices

    # ------------------------------------------------------------------ Messenger.remote

    async def knows(self, user: str) -> bool:
        """Existence across nodes (no-store mode: accounts live in each node's memory)."""
        if await self.lookup(user):
            return True
        elsewhere = [r.peer for r in self.directory.cached(user, all_peers=True) if self.links.is_linked(r.peer)]
        if elsewhere:
            self.stats["refused_mismatch"] += 1
            raise ImError(
                pb.STORE_UNAVAILABLE,
                f"{user} is on node {elsewhere[0]} whose store configuration differs from this node's; "
                "cross-node delivery needs every node on the same store (or all with --no-store)",
            )
        return False

    def may_reach(self) -> bool:
        """Could ``route`` find another node at all? False on a node alone (no remote users
        known, nothing beyond the mesh): the send path then skips routing."""
        return not self.directory.empty or self._beyond_mesh()

    async def route(self, message: pb.Message) -> int:
        """Deliver to every other node holding a device of either party; recipient devices reached."""
        try:
            return await self._route(message)
        except Exception:  # noqa: BLE001 - never fail a send after the store took it
            log.exception("routing message %d failed", message.id)
            return 0

    async def _route(self, message: pb.Message) -> int:
        sender, to = getattr(message, "from"), message.to
        targets = {r.peer: True for r in await self.lookup(to)}
        for r in self.directory.cached(sender):
            targets.setdefault(r.peer, False)
        if not targets:
            return 0
        raw = message.SerializeToString()
        results = await asyncio.gather(*(self._deliver(p, raw, expect) for p, expect in targets.items()))
        delivered = sum(n for n, _ in results)
        if any(gone for _, gone in results):
            self.stats["gone"] += 1
            fresh = [r.peer for r in await self.lookup(to, fresh=True) if r.peer not in targets]
            more = await asyncio.gather(*(self._deliver(p, raw, True) for p in fresh))
            delivered += sum(n for n, _ in more)
        return delivered

    async def _deliver(self, peer: PeerId, raw: bytes, expect: bool) -> tuple[int, bool]:
        """One DELIVER: (recipient devices pushed to, the recipient was gone)."""
        self.stats["deliver_out"] += 1
        body = fed.FedRequest(deliver=fed.Deliver(message=raw, expect_recipient=expect)).SerializeToString()
        try:
            reply = fed.FedReply.FromString(await self.links.request(peer, PROTOCOL, body, self.timeout))
        except (P2PError, OSError) as exc:
            self.stats["deliver_failed"] += 1
            log.info("delivery to %s failed: %s%s", peer.short(), exc or type(exc).__name__,
                     " (stored: the recipient syncs)" if self.durable else "")  # fmt: skip
            return 0, False
        if reply.status == fed.FedReply.STORE_MISMATCH:
            self.stats["refused_mismatch"] += 1
            log.warning("delivery to %s refused: %s", peer.short(), reply.error)
            return 0, False
        return reply.recipient_devices, reply.status == fed.FedReply.GONE

    def delivered(self, by: str, sender: str, message_ids: list[int]) -> None:
        """Receipts for the sender's devices on other nodes."""
        targets = self.directory.cached(sender)
        if not targets:
            return
        body = fed.FedRequest(acked=fed.Acked(by=by, sender=sender, message_ids=message_ids)).SerializeToString()
        for r in targets:
            self.stats["acked_out"] += 1
            self._spawn(self._send(r.peer, body))

    # ------------------------------------------------------------------ device limit

    async def _device_guard(self, user: str, device: str) -> None:
        """``ImService.session_guards``: the device limit and policy, network-wide."""
        remote = [(r.peer, d) for r in self.directory.cached(user) for d in r.devices]
        if not remote:
            return
        for peer, d in remote:
            if d.device == device:  # the same device logged in here: it leaves the other node
                await self._kick(peer, user, d.device, pb.REPLACED)
        remote = [(p, d) for p, d in remote if d.device != device]
        registry = self.service.registry
        local = [s for s in registry.sessions_of(user) if s.device != device]
        if len(remote) + len(local) < registry.max_devices:
            return
        if registry.policy == "refuse":
            raise ImError(pb.DEVICE_LIMIT, f"at most {registry.max_devices} devices may be logged in (network-wide)")
        offset_ms = time.time() * 1000 - asyncio.get_running_loop().time() * 1000
        ranked: list[tuple[int, int, PeerId | Session, str]] = [(d.login_at_ms, 1, p, d.device) for p, d in remote]
        ranked += [(int(s.login_at * 1000 + offset_ms), 0, s, s.device) for s in local]
        ranked.sort(key=lambda t: (t[0], t[1]))
        for _, _, where, dev in ranked[: len(remote) + len(local) - registry.max_devices + 1]:
            if isinstance(where, Session):
                registry.remove(where)
                where.sink.kick(pb.DEVICE_LIMIT_KICK, _KICK_TEXT[pb.DEVICE_LIMIT_KICK])
            else:
                await self._kick(where, user, dev, pb.DEVICE_LIMIT_KICK)

    async def kick_user(self, user: str, reason: int, message: str) -> int:
        """``ImService.remote_kicks``: end every session of ``user`` on every linked node of this
        store (password change, admin block); sessions ended (``FedReply.pushed``)."""
        body = fed.FedRequest(kick=fed.Kick(user=user, reason=reason, message=message)).SerializeToString()

        async def one(peer: PeerId) -> int:
            self.stats["kicks_out"] += 1
            try:
                return fed.FedReply.FromString(await self.links.request(peer, PROTOCOL, body, self.timeout)).pushed
            except (P2PError, OSError) as exc:
                log.warning("kick of %s on %s failed: %s", user, peer.short(), exc)
                return 0

        peers = [p for p in self.links.peers() if self._usable(p)]
        return sum(await asyncio.gather(*(one(p) for p in peers)))

    async def _kick(self, peer: PeerId, user: str, device: str, reason: int) -> None:
        self.stats["kicks_out"] += 1
        body = fed.FedRequest(kick=fed.Kick(user=user, device=device, reason=reason)).SerializeToString()
        try:
            await self.links.request(peer, PROTOCOL, body, self.timeout)
        except (P2PError, OSError) as exc:
            log.warning("kick of %s/%s on %s failed: %s", user, device, peer.short(), exc)
        before = self.directory.device_count(user)
        entry = next((r for r in self.directory.cached(user) if r.peer == peer), None)
        if entry is not None:  # until its PRESENCE arrives, count the device as gone
            left = [fed.DeviceInfo(device=d.device, login_at_ms=d.login_at_ms) for d in entry.devices
                    if d.device != device]  # fmt: skip
            self.directory.apply(peer, fed.UserDevices(user=user, devices=left, status=entry.status, text=entry.text,
                                                       fields=dict(entry.fields)))  # fmt: skip
            self._network_changed(user, before=before)


_KICK_TEXT: dict[int, str] = {
    pb.REPLACED: "this device logged in again on another connection",
    pb.DEVICE_LIMIT_KICK: "signed out: a newer device logged in and the device limit was reached",
    pb.CREDENTIALS_CHANGED: "signed out: the account's credentials changed; log in again",
}
