"""Recall, edit and burn-after-reading: changes to a stored 1:1 message.

Each change rewrites the stored copies (both inboxes and the conversation, see
:func:`im.events.message_rows`) and records an engine event in the same store batch, so
``history`` returns the latest version and a device that syncs later replays the event:

* **Recall** (sender, within ``recall_window_ms``; 0 = no limit): the copies keep their id,
  parties and time but lose body and ``ext`` and get ``recalled``; event TYPE_RECALL.
* **Edit** (sender, text messages, within ``edit_window_ms``): the copies get the new text
  and ``edited_at``; event TYPE_EDIT carrying the new text.
* **Burn** (recipient, messages sent with ``burn``): with ``burn_seconds`` = 0 the copies are
  deleted at once; otherwise they get ``burn_at`` and are deleted then. Event TYPE_BURN
  (``burn_at`` = when) goes to both parties: clients drop their copy at ``burn_at``.
  Copies past their ``burn_at`` are never returned (:meth:`Amender.filter_page`), even if
  the node restarted before deleting them; :meth:`Amender.expire_due` deletes due ones.

Timers: the core keeps due times (``burn_at``, wall ms) and never sleeps;
:meth:`Amender.next_due` / :meth:`Amender.expire_due` let an adapter (the service, with
``loop.call_later``) or a test with a manual clock drive it.
"""

from __future__ import annotations

import logging

from im import client_pb2 as pb
from im.errors import ImError
from im.events import EventLog, is_engine_type, message_rows
from im.sessions import Session
from store.api import Delete, Op, Put

__all__ = ["Amender"]

log = logging.getLogger(__name__)

_MAX_BURN_SECONDS = 7 * 86400


class Amender:
    """Recall, edit and burn 1:1 messages (sans timers: see the module docstring)."""

    def __init__(self, *, events: EventLog, recall_window_ms: int, edit_window_ms: int, max_body: int) -> None:
        self._events = events
        self._keys = events.keys
        self.recall_window_ms = recall_window_ms
        self.edit_window_ms = edit_window_ms
        self._max_body = max_body
        self._due: dict[int, pb.Message] = {}  # message id -> copy with burn_at (timer running)

    @staticmethod
    def check_send(req: pb.Send) -> None:
        if req.burn_seconds and not req.burn:
            raise ImError(pb.BAD_REQUEST, "burn_seconds needs burn")
        if req.burn_seconds > _MAX_BURN_SECONDS:
            raise ImError(pb.BAD_REQUEST, f"burn_seconds is limited to {_MAX_BURN_SECONDS}")

    async def _own(self, session: Session, message_id: int) -> pb.Message:
        message = await self._events.load(session.user, message_id)
        if message is None or getattr(message, "from") != session.user or is_engine_type(message.type):
            raise ImError(pb.NOT_FOUND, "no such message sent by you")
        return message

    def _within(self, message: pb.Message, window_ms: int) -> bool:
        return not window_ms or self._events.now_ms() - message.timestamp <= window_ms

    def _rewrite(self, message: pb.Message) -> list[Op]:
        raw = message.SerializeToString()
        return [Put(key, raw) for key in message_rows(self._keys, message)]

    # ------------------------------------------------------------------ recall / edit

    async def recall(self, session: Session, message_id: int) -> pb.Sent:
        message = await self._own(session, message_id)
        if message.recalled:
            return pb.Sent(duplicate=True)
        if not self._within(message, self.recall_window_ms):
            raise ImError(pb.RECALL_WINDOW_EXPIRED, f"messages can be recalled for {self.recall_window_ms // 1000} s")
        message.ClearField("text")
        message.ClearField("data")
        message.ext.clear()
        message.recalled = True
        message.burn_at = 0
        event = self._events.new(pb.TYPE_RECALL, session.user, message.to, ref=message.id, device=session.device)
        await self._events.record(event, self._rewrite(message), origin=session)
        self._due.pop(message.id, None)
        return pb.Sent(message_id=event.id, timestamp=event.timestamp)

    async def edit(self, session: Session, message_id: int, text: str) -> pb.Sent:
        if len(text.encode()) > self._max_body:
            raise ImError(pb.TOO_LARGE, f"message body is limited to {self._max_body} bytes")
        message = await self._own(session, message_id)
        if message.recalled:
            raise ImError(pb.NOT_FOUND, "the message was recalled")
        if message.WhichOneof("body") == "data":
            raise ImError(pb.BAD_REQUEST, "only text messages can be edited")
        if not self._within(message, self.edit_window_ms):
            raise ImError(pb.EDIT_WINDOW_EXPIRED, f"messages can be edited for {self.edit_window_ms // 1000} s")
        now = self._events.now_ms()
        message.text = text
        message.edited_at = now
        event = self._events.new(pb.TYPE_EDIT, session.user, message.to, ref=message.id, device=session.device)
        event.text = text
        event.edited_at = now
        await self._events.record(event, self._rewrite(message), origin=session)
        return pb.Sent(message_id=event.id, timestamp=event.timestamp)

    # ------------------------------------------------------------------ burn

    async def burn(self, session: Session, message_id: int) -> pb.Sent:
        """The recipient read a burn-after-reading message."""
        message = await self._events.load(session.user, message_id)
        if message is None or message.to != session.user or message.recalled:
            raise ImError(pb.NOT_FOUND, "no such message addressed to you")
        if not message.burn:
            raise ImError(pb.BAD_REQUEST, "not a burn-after-reading message")
        if message.burn_at:
            return pb.Sent(duplicate=True, timestamp=message.burn_at)
        now = self._events.now_ms()
        sender = getattr(message, "from")
        event = self._events.new(pb.TYPE_BURN, session.user, sender, ref=message.id, device=session.device)
        event.burn_at = now + message.burn_seconds * 1000
        if message.burn_seconds:
            message.burn_at = event.burn_at
            ops = self._rewrite(message)
        else:
            ops = [Delete(key) for key in message_rows(self._keys, message)]
        await self._events.record(event, ops, origin=session)
        if message.burn_at:
            self._due[message.id] = message
        return pb.Sent(message_id=event.id, timestamp=event.timestamp)

    def next_due(self) -> int | None:
        """The earliest pending ``burn_at`` (wall ms), or None."""
        return min((m.burn_at for m in self._due.values()), default=None)

    async def expire_due(self) -> int:
        """Delete every copy whose burn time has come; the number of messages deleted."""
        now = self._events.now_ms()
        due = [m for m in self._due.values() if m.burn_at <= now]
        if not due:
            return 0
        ops: list[Op] = [Delete(key) for m in due for key in message_rows(self._keys, m)]
        await self._events.store.write(ops)
        for message in due:
            self._due.pop(message.id, None)
        return len(due)

    def filter_page(self, page: pb.MessagePage) -> bool:
        """Drop messages past their burn time from a sync/history page (scheduling their
        deletion); True when some are newly due, so the caller should run :meth:`expire_due`."""
        now = self._events.now_ms()

        def burnt(m: pb.Message) -> bool:
            return 0 < m.burn_at <= now and not is_engine_type(m.type)  # a BURN event carries burn_at too

        expired = [m for m in page.messages if burnt(m)]
        if not expired:
            return False
        kept = [m for m in page.messages if not burnt(m)]
        for message in expired:
            self._due.setdefault(message.id, pb.Message.FromString(message.SerializeToString()))
        del page.messages[:]
        page.messages.extend(kept)
        return True
