"""Read markers ("read up to here") and unread counts per conversation.

A marker is per (user, conversation) and only moves forward (XEP-0333 / Matrix
``m.read`` semantics): ``M | blind(user) | blind(conversation) -> records.ReadMarker``.
Moving it records a TYPE_READ event (``ref`` = the position) in both parties' inboxes:
the reader's other devices clear their unread badge, the peer's devices show "read".

A conversation id is the peer's user name for 1:1 chats. Group conversations will use
``#<group id>`` (user names cannot contain ``#``), with the READ event going to the
group's members instead of one peer; the marker record already fits.

Unread counts (``Sync.unread``) are computed on demand: the user's markers (one prefix
scan) and the newest ``scan_limit`` inbox rows, counting messages from each peer above
the marker (normal and app types; not recalled; engine events never count). Counts are
therefore exact up to ``scan_limit`` messages back and capped there.
"""

from __future__ import annotations

from im import client_pb2 as pb
from im import records_pb2 as rec
from im.accounts import USER_NAME
from im.errors import ImError
from im.events import EventLog, is_engine_type
from im.sessions import Session
from store.api import Put

__all__ = ["Receipts"]

_CACHE = 200_000


class Receipts:
    """Read markers with a small cache, and unread counts."""

    def __init__(self, *, events: EventLog, scan_limit: int = 5000) -> None:
        self._events = events
        self._store = events.store
        self._keys = events.keys
        self.scan_limit = scan_limit
        self._markers: dict[tuple[str, str], int] = {}

    async def marker(self, user: str, conversation: str) -> int:
        cached = self._markers.get((user, conversation))
        if cached is not None:
            return cached
        raw = await self._store.get(self._keys.read_marker(user, conversation))
        up_to = rec.ReadMarker.FromString(raw).up_to if raw else 0
        self._remember(user, conversation, up_to)
        return up_to

    def _remember(self, user: str, conversation: str, up_to: int) -> None:
        if len(self._markers) > _CACHE:
            self._markers.clear()
        self._markers[(user, conversation)] = up_to

    async def read(self, session: Session, conversation: str, up_to: int) -> pb.Sent:
        if not USER_NAME.fullmatch(conversation):
            raise ImError(pb.BAD_REQUEST, "conversation must be a user name")
        if up_to <= 0:
            raise ImError(pb.BAD_REQUEST, "up_to must be a message id")
        if up_to <= await self.marker(session.user, conversation):
            return pb.Sent(duplicate=True)
        event = self._events.new(pb.TYPE_READ, session.user, conversation, ref=up_to, device=session.device)
        marker = rec.ReadMarker(conversation=conversation, up_to=up_to, at=event.timestamp)
        op = Put(self._keys.read_marker(session.user, conversation), marker.SerializeToString())
        await self._events.record(event, [op], origin=session)
        self._remember(session.user, conversation, max(up_to, self._markers.get((session.user, conversation), 0)))
        return pb.Sent(message_id=event.id, timestamp=event.timestamp)

    async def unread(self, user: str) -> list[pb.Unread]:
        """Conversations with unread messages, newest activity first."""
        start, end = self._keys.read_markers_range(user)
        markers: dict[str, int] = {}
        for _, raw in await self._store.scan(start, end, limit=10_000):
            marker = rec.ReadMarker.FromString(raw)
            markers[marker.conversation] = marker.up_to
        start, end = self._keys.inbox_range(user, 0)
        rows = await self._store.scan(start, end, limit=self.scan_limit, reverse=True)
        found: dict[str, pb.Unread] = {}
        for _, raw in rows:
            message = pb.Message.FromString(raw)
            peer = getattr(message, "from")
            if message.to != user or peer == user or message.recalled or is_engine_type(message.type):
                continue
            read_up_to = markers.get(peer, 0)
            if message.id <= read_up_to:
                continue
            entry = found.get(peer)
            if entry is None:
                entry = found[peer] = pb.Unread(conversation=peer, read_up_to=read_up_to, last_id=message.id)
            entry.count += 1
        return list(found.values())
