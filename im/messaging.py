"""1:1 messages: send (idempotent, durable before acknowledged), push, sync, history, acks.

Write diffusion for 1:1: a message is written to the sender's and the recipient's inbox
(for ``Sync``, which covers every conversation of a user) and once to the conversation
(for ``History``). All rows of one send are one store batch, and the store group-commits
concurrent batches, so a send costs one share of one transaction. ``Sent`` is answered
only after the batch is durable; then every device of both parties gets the message
(the sending device excepted: it has ``Sent``).

In no-store mode (``durable=False``) nothing is written: a message is pushed to the
recipient's online devices and ``Sent`` tells how many; with none online the send fails
with RECIPIENT_OFFLINE.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Protocol

from im import client_pb2 as pb
from im import records_pb2 as rec
from im.accounts import USER_NAME, Accounts
from im.errors import ImError
from im.ids import MessageIdGenerator
from im.keys import KeySchema, unpack_id
from im.metrics import ImMetrics
from im.recent import RecentMap, join_key, pack_ints, split_pair, unpack_ints
from im.send_epoch import SendEpochs
from im.sessions import Push, Session, SessionRegistry
from store.api import Insert, Op, Put, RecordStore
from store.batch import prefix_within
from store.errors import KeyExists

__all__ = ["Messenger", "MessageLimits", "RemoteRouter"]

#: 1 = normal text/bytes; 2..31 reserved for engine kinds (recall, burn, receipts...); >= 32 app-defined
FIRST_APP_TYPE = 32
_MAX_EXT_ENTRIES = 32
_MAX_EXT_BYTES = 4096
_MAX_CMID = 128
_RECENT = 200_000
_DOUBT = 0  # a recent-sends entry: not a result (ids are never 0), a retry must be checked
#: a sync or history page also ends once its messages pass this many bytes (at least one
#: message): 1,000 messages of 16 KiB took ~105 ms to encode as JSON on the loop
PAGE_BYTES = 1 << 20
#: ``_parties``' size: both maps take one insert per send, and with equal sizes they would drop
#: their oldest generations on the same send (two pauses in one step); these sizes coincide
#: once per 1,050,000 sends
_RECENT_PARTIES = 210_000


class MessageLimits:
    def __init__(self, max_body: int) -> None:
        self.max_body = max_body


class RemoteRouter(Protocol):
    """Cross-node routing (im/federation.py), set as ``Messenger.remote`` by the daemon."""

    async def knows(self, user: str) -> bool: ...

    def may_reach(self) -> bool: ...

    async def route(self, message: pb.Message) -> int: ...

    def delivered(self, by: str, sender: str, message_ids: list[int]) -> None: ...


class Messenger:
    """Sends, pushes, syncs and acknowledges 1:1 messages for the sessions of this node."""

    def __init__(
        self,
        *,
        store: RecordStore,
        keys: KeySchema,
        accounts: Accounts,
        registry: SessionRegistry,
        ids: MessageIdGenerator,
        now_ms: Callable[[], int],
        durable: bool,
        limits: MessageLimits,
        metrics: ImMetrics,
        exclusive_store: bool = False,
        twin_of: Messenger | None = None,
    ) -> None:
        """``exclusive_store``: no other process writes ``store``, which send epochs need
        (``im.send_epoch``); with a shared store every client message id is checked.
        ``twin_of``: share that messenger's recent sends, sends in flight and epochs (a
        messenger with other limits for the same users: chunked sends, ``im.spaces``)."""
        self._store = store
        self._keys = keys
        self._accounts = accounts
        self._registry = registry
        self._ids = ids
        self._now_ms = now_ms
        self.durable = durable
        self._limits = limits
        self._metrics = metrics
        self._kind_counters = {kind: metrics.messages_total(kind) for kind in ("normal", "custom", "duplicate")}
        # join_key(user, client message id) -> pack_ints(message id, timestamp): atomic entries
        # keep the maps' dicts out of the garbage collector's walks (im/recent.py; measured: gen2
        # pauses of 30-180 ms under load with pb.Sent values, 22-50 ms with tuples of ints)
        self._sent: RecentMap[str, int] = RecentMap(_RECENT)
        self.epochs = SendEpochs(self._sent, enabled=durable and exclusive_store)
        self._inflight: dict[str, asyncio.Future[pb.Sent]] = {}
        if twin_of is not None:
            self._sent, self.epochs, self._inflight = twin_of._sent, twin_of.epochs, twin_of._inflight
        self._parties: RecentMap[int, str] = RecentMap(_RECENT_PARTIES)  # message id -> join_key(from, to)
        self._dirty_cursors: dict[tuple[str, str], int] = {}
        self.stats = {"sent": 0, "pushed": 0, "duplicates": 0, "acked": 0}
        self.remote: RemoteRouter | None = None  # other nodes (im/federation.py)

    # ------------------------------------------------------------------ send

    def _validate(self, req: pb.Send) -> None:
        size = len(req.data) or len(req.text.encode())
        if size > self._limits.max_body:
            raise ImError(pb.TOO_LARGE, f"message body is {size} bytes; the limit is {self._limits.max_body}")
        if req.ext and self._ext_too_large(req):
            raise ImError(pb.TOO_LARGE, f"ext is limited to {_MAX_EXT_ENTRIES} entries and {_MAX_EXT_BYTES} bytes")
        if len(req.client_msg_id) > _MAX_CMID:
            raise ImError(pb.BAD_REQUEST, f"client_msg_id is limited to {_MAX_CMID} characters")
        if not USER_NAME.fullmatch(req.to):
            raise ImError(pb.BAD_REQUEST, "invalid recipient")
        if 2 <= req.type < FIRST_APP_TYPE:
            raise ImError(pb.BAD_REQUEST, f"message types 2-{FIRST_APP_TYPE - 1} are reserved; apps use >= 32")

    @staticmethod
    def _ext_too_large(req: pb.Send) -> bool:
        if len(req.ext) > _MAX_EXT_ENTRIES:
            return True
        return sum(len(k.encode()) + len(v.encode()) for k, v in req.ext.items()) > _MAX_EXT_BYTES

    async def send(self, session: Session, req: pb.Send) -> pb.Sent:
        sent = await self._send(session, req)
        epoch = self.epochs.current
        if session.send_epoch != epoch:  # tell the client the newer epoch once (im/send_epoch.py)
            session.send_epoch = sent.send_epoch = epoch
        return sent

    async def _send(self, session: Session, req: pb.Send) -> pb.Sent:
        self._validate(req)
        cmid = req.client_msg_id
        if not cmid:
            return await self._send_new(session, req)
        key = join_key(session.user, cmid)
        done = self._sent.get(key)
        if done:
            message_id, timestamp = unpack_ints(done, 2)
            return self._duplicate(pb.Sent(message_id=message_id, timestamp=timestamp))
        pending = self._inflight.get(key)
        if pending is not None:
            return self._duplicate(await asyncio.shield(pending))
        # _DOUBT (0): an earlier send of this id failed after its write may have applied; it
        # stays in the map as long as an epoch could vouch for the id, so the retry is checked
        fresh = done is None and self.epochs.known_fresh(cmid)
        future: asyncio.Future[pb.Sent] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            sent = await self._send_new(session, req, fresh=fresh)
        except BaseException as exc:
            if not isinstance(exc, ImError):  # perhaps stored (an error after the write): check a retry
                self._sent.remember(key, _DOUBT)
            future.set_exception(exc)
            future.exception()  # mark retrieved
            raise
        finally:
            del self._inflight[key]
        if not future.done():
            future.set_result(sent)
        # a clock before 1970 cannot be packed: the store still answers retries, checked
        self._sent.remember(key, pack_ints(sent.message_id, sent.timestamp) if sent.timestamp >= 0 else _DOUBT)
        return sent

    def _duplicate(self, sent: pb.Sent) -> pb.Sent:
        self.stats["duplicates"] += 1
        self._kind_counters["duplicate"].inc()
        return pb.Sent(message_id=sent.message_id, timestamp=sent.timestamp, duplicate=True)

    async def _stored_result(self, result_key: bytes) -> pb.Sent | None:
        raw = await self._store.get(result_key)
        if raw is None:
            return None
        result = rec.SendResult.FromString(raw)
        return pb.Sent(message_id=result.message_id, timestamp=result.timestamp)

    async def _send_new(self, session: Session, req: pb.Send, *, fresh: bool = False) -> pb.Sent:
        """Store and push a new message; ``fresh``: its client message id is known unused
        here (``im.send_epoch``), so its idempotency record is a Put, not a checked Insert."""
        # A retry of a send acknowledged before a restart is caught by the batch's Insert of
        # the idempotency record (KeyExists: nothing of the batch applies), not by a read first.
        result_key = (
            self._keys.send_result(session.user, req.client_msg_id) if self.durable and req.client_msg_id else b""
        )
        if not await self._accounts.exists(req.to) and not (self.remote and await self.remote.knows(req.to)):
            raise ImError(pb.NOT_FOUND, "no such user")
        now = self._now_ms()
        message = self._build(session, req, self._ids.next_id(now), now)
        if self.durable:
            try:
                await self._store.write(self._rows(message, result_key, fresh))
            except KeyExists:
                earlier = await self._stored_result(result_key)
                if earlier is None:
                    raise
                await self._repush(session, earlier.message_id)
                return self._duplicate(earlier)
        delivered = self._fan_out(session, message)
        if self.remote is not None and self.remote.may_reach():
            delivered += await self.remote.route(message)
        if not self.durable and delivered == 0 and req.to != session.user:
            raise ImError(pb.RECIPIENT_OFFLINE, "recipient is offline and this node stores nothing")
        self.stats["sent"] += 1
        self._kind_counters["normal" if message.type < FIRST_APP_TYPE else "custom"].inc()
        return pb.Sent(message_id=message.id, timestamp=message.timestamp, delivered_devices=delivered)

    async def _repush(self, session: Session, message_id: int) -> None:
        """A retry of a send stored earlier (perhaps by a node that died before pushing it):
        push the stored message again; clients drop ids they have seen."""
        raw = await self._store.get(self._keys.inbox(session.user, message_id))
        if raw is not None:
            message = pb.Message.FromString(raw)
            self._fan_out(session, message)
            if self.remote is not None:
                await self.remote.route(message)

    def deliver_remote(self, message: pb.Message) -> tuple[int, int]:
        """Push a message routed here by another node to this node's sessions of both parties
        (the origin device excepted); (recipient devices, sender's other devices)."""
        sender = getattr(message, "from")
        push = Push(pb.ServerFrame(message=message))
        recipients = others = 0
        for target in self._registry.sessions_of(message.to):
            if target.user != sender or target.device != message.from_device:
                target.sink.push(push)
                recipients += 1
        if message.to != sender:
            for target in self._registry.sessions_of(sender):
                if target.device != message.from_device:
                    target.sink.push(push)
                    others += 1
        self._parties.remember(message.id, join_key(sender, message.to))
        self.stats["pushed"] += recipients
        if recipients:
            self._metrics.deliveries_total.inc(recipients)
        return recipients, others

    def _build(self, session: Session, req: pb.Send, message_id: int, now: int) -> pb.Message:
        req.DiscardUnknownFields()  # else numbers unknown to Send would land in Message's server-only fields
        message = pb.Message.FromString(req.SerializeToString())  # Send's fields share Message's numbers
        if not message.type:
            message.type = 1
        if message.WhichOneof("body") is None:
            message.text = ""
        message.id = message_id
        message.timestamp = now
        message.from_device = session.device
        setattr(message, "from", session.user)
        return message

    def _rows(self, message: pb.Message, result_key: bytes, fresh: bool = False) -> list[Op]:
        sender = getattr(message, "from")
        raw = message.SerializeToString()
        ops: list[Op] = [Put(self._keys.inbox(sender, message.id), raw)]
        if message.to != sender:
            ops.append(Put(self._keys.inbox(message.to, message.id), raw))
        ops.append(Put(self._keys.conversation(sender, message.to, message.id), raw))
        if result_key:
            result = rec.SendResult(message_id=message.id, timestamp=message.timestamp).SerializeToString()
            ops.append(Put(result_key, result) if fresh else Insert(result_key, result))
        return ops

    def _fan_out(self, origin: Session, message: pb.Message) -> int:
        """Push to every device of both parties except the sending one; count recipient devices."""
        sender = getattr(message, "from")
        push = Push(pb.ServerFrame(message=message))
        delivered = 0
        for target in self._registry.sessions_of(message.to):
            if target is not origin:
                target.sink.push(push)
                delivered += 1
        if message.to != sender:
            for target in self._registry.sessions_of(sender):
                if target is not origin:
                    target.sink.push(push)
        self._parties.remember(message.id, join_key(sender, message.to))
        self.stats["pushed"] += delivered
        if delivered:
            self._metrics.deliveries_total.inc(delivered)
        return delivered

    # ------------------------------------------------------------------ read

    async def sync(self, session: Session, after: int, limit: int) -> pb.MessagePage:
        limit = min(limit or 100, 1000)
        if not self.durable:
            return pb.MessagePage(cursor=after)
        start, end = self._keys.inbox_range(session.user, after)
        rows = await self._store.scan(start, end, limit=limit + 1)
        kept = _within_page_bytes(rows[:limit])
        return self._page(kept, more=len(rows) > len(kept), cursor=after, newest_last=True)

    async def history(self, session: Session, peer: str, before: int, limit: int) -> pb.MessagePage:
        limit = min(limit or 50, 1000)
        if not USER_NAME.fullmatch(peer):
            raise ImError(pb.BAD_REQUEST, "invalid peer")
        if not self.durable:
            return pb.MessagePage(cursor=before)
        start, end = self._keys.history_range(session.user, peer, before)
        rows = await self._store.scan(start, end, limit=limit + 1, reverse=True)
        kept = _within_page_bytes(rows[:limit])  # the newest ones
        return self._page(list(reversed(kept)), more=len(rows) > len(kept), cursor=before, newest_last=False)

    @staticmethod
    def _page(rows: list[tuple[bytes, bytes]], *, more: bool, cursor: int, newest_last: bool) -> pb.MessagePage:
        page = pb.MessagePage(more=more)
        for _, value in rows:
            page.messages.add().MergeFromString(value)
        if rows:
            page.cursor = unpack_id(rows[-1][0] if newest_last else rows[0][0])
        else:
            page.cursor = cursor
        return page

    # ------------------------------------------------------------------ acks

    async def ack(self, session: Session, ids: Iterable[int]) -> None:
        """Record a device's delivery ack and tell the senders' devices."""
        by_sender: dict[str, list[int]] = {}
        unknown: list[int] = []
        for message_id in ids:
            parties = self._parties.get(message_id)
            if parties is None:
                unknown.append(message_id)
                continue
            sender, recipient = split_pair(parties)
            if recipient == session.user and sender != session.user:
                by_sender.setdefault(sender, []).append(message_id)
        if unknown and self.durable:
            await self._resolve_senders(session.user, unknown, by_sender)
        acked = [i for ids_ in by_sender.values() for i in ids_]
        if acked and max(acked) > session.acked:
            session.acked = max(acked)
            self._dirty_cursors[(session.user, session.device)] = session.acked
        for sender, message_ids in by_sender.items():
            self._push_delivered(session.user, sender, message_ids)
        self.stats["acked"] += len(acked)
        if acked:
            self._metrics.acks_total.inc(len(acked))

    async def _resolve_senders(self, user: str, ids: list[int], out: dict[str, list[int]]) -> None:
        found = await self._store.get_many([self._keys.inbox(user, i) for i in ids])
        for raw in found.values():
            message = pb.Message.FromString(raw)
            sender = getattr(message, "from")
            if message.to == user and sender != user and not 2 <= message.type < FIRST_APP_TYPE:  # not engine events
                out.setdefault(sender, []).append(message.id)

    def _push_delivered(self, by: str, sender: str, message_ids: list[int]) -> None:
        self.push_delivered(by, sender, message_ids)
        if self.remote is not None:
            self.remote.delivered(by, sender, message_ids)

    def push_delivered(self, by: str, sender: str, message_ids: list[int]) -> None:
        """Push ``Delivered`` to the sender's devices on this node."""
        sessions = list(self._registry.sessions_of(sender))
        if sessions:
            push = Push(pb.ServerFrame(delivered=pb.Delivered(by=by, message_ids=message_ids)))
            for target in sessions:
                target.sink.push(push)

    async def load_cursor(self, user: str, device: str) -> int:
        if not self.durable:
            return 0
        pending = self._dirty_cursors.get((user, device), 0)
        raw = await self._store.get(self._keys.cursor(user, device))
        return max(pending, rec.Cursor.FromString(raw).acked if raw else 0)

    def new_message_id(self, now_ms: int) -> int:
        """A fresh id from this node's generator, for messages the node writes itself (im/admin_ops.py)."""
        return self._ids.next_id(now_ms)

    async def flush_cursors(self) -> None:
        if not self._dirty_cursors or not self.durable:
            self._dirty_cursors.clear()
            return
        dirty, self._dirty_cursors = self._dirty_cursors, {}
        ops: list[Op] = [
            Put(self._keys.cursor(user, device), rec.Cursor(acked=acked).SerializeToString())
            for (user, device), acked in dirty.items()
        ]
        try:
            await self._store.write(ops)
        except BaseException:  # keep them for the next flush (newer acks made meanwhile win)
            for key, acked in dirty.items():
                self._dirty_cursors[key] = max(acked, self._dirty_cursors.get(key, 0))
            raise


def _within_page_bytes(rows: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The leading rows whose values fit ``PAGE_BYTES`` (at least one)."""
    return rows[: prefix_within((len(value) for _, value in rows), PAGE_BYTES)]
