"""The message and user features behind ``ImService``: one object per concern, and the
request handlers the service's dispatch table takes from :meth:`Features.handlers`.

    events    im/events.py    engine events (types 3-31) stored in inboxes and pushed
    roster    im/roster.py    friends, requests, blocks, the stranger policy (send check)
    amend     im/amend.py     recall, edit, burn after reading
    receipts  im/receipts.py  read markers, unread counts
    presence  im/presence.py  rich presence, typing notices
    profiles  im/profiles.py  profiles, password change

The only piece here that touches the event loop is the burn timer: one
``loop.call_later`` re-armed from :meth:`Amender.next_due` after every burn (the
aioquic pattern, STYLE.md 3.3); tests with a manual clock call ``amend.expire_due()``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from im import client_pb2 as pb
from im.accounts import Accounts
from im.amend import Amender
from im.events import EventLog
from im.ids import MessageIdGenerator
from im.keys import KeySchema
from im.messaging import Messenger
from im.presence import PresenceBook
from im.profiles import Profiles
from im.receipts import Receipts
from im.roster import STRANGER_POLICIES, Roster
from im.sessions import Session, SessionRegistry
from store.api import RecordStore

__all__ = ["FeatureOptions", "Features", "STRANGER_POLICIES"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FeatureOptions:
    recall_window: float = 120.0  # seconds; 0 = no limit
    edit_window: float = 900.0  # seconds; 0 = no limit
    stranger_policy: str = "allow"  # or "friends-only"
    offline_notice: bool = True  # push "offline" when a user's last device leaves
    max_body: int = 16384


class _Conn(Protocol):
    session: Session | None


FeatureHandler = Callable[[_Conn, pb.ClientFrame], Awaitable[pb.ServerFrame]]


class Features:
    """Everything beyond plain 1:1 messages, wired to one store, registry and id generator."""

    def __init__(
        self,
        *,
        store: RecordStore,
        keys: KeySchema,
        accounts: Accounts,
        registry: SessionRegistry,
        ids: MessageIdGenerator,
        now: Callable[[], float],
        now_ms: Callable[[], int],
        durable: bool,
        options: FeatureOptions | None = None,
    ) -> None:
        options = options or FeatureOptions()
        self.options = options
        self.events = EventLog(store=store, keys=keys, registry=registry, ids=ids, now_ms=now_ms, durable=durable)
        self.roster = Roster(events=self.events, accounts=accounts, stranger_policy=options.stranger_policy)
        self.amend = Amender(
            events=self.events,
            recall_window_ms=int(options.recall_window * 1000),
            edit_window_ms=int(options.edit_window * 1000),
            max_body=options.max_body,
        )
        self.receipts = Receipts(events=self.events)
        self.presence = PresenceBook(
            store=store, keys=keys, registry=registry, roster=self.roster, now=now, now_ms=now_ms,
            offline_notice=options.offline_notice,
        )  # fmt: skip
        self.profiles = Profiles(store=store, keys=keys, accounts=accounts, now_ms=now_ms)
        self._now_ms = now_ms
        self._burn_timer: asyncio.TimerHandle | None = None

    @classmethod
    def for_messenger(
        cls,
        messenger: Messenger,
        *,
        accounts: Accounts,
        registry: SessionRegistry,
        now: Callable[[], float],
        now_ms: Callable[[], int],
        options: FeatureOptions | None = None,
    ) -> Features:
        """Features sharing the messenger's store, key schema and id generator (one id
        sequence per node: events and messages never collide)."""
        return cls(
            store=messenger._store, keys=messenger._keys, accounts=accounts, registry=registry,
            ids=messenger._ids, now=now, now_ms=now_ms, durable=messenger.durable, options=options,
        )  # fmt: skip

    # ------------------------------------------------------------------ hooks for ImService

    async def before_send(self, session: Session, req: pb.Send) -> None:
        """Checks on the send path: burn fields, then blocks and the stranger policy (cached)."""
        if req.burn or req.burn_seconds:
            self.amend.check_send(req)
        await self.roster.check_send(session.user, req.to)

    async def after_page(self, session: Session, page: pb.MessagePage, unread: bool = False) -> None:
        """Hide burnt messages from a sync/history page; add unread counts when asked."""
        if self.amend.filter_page(page):
            self._arm_burn_timer(0.0)
        if unread:
            page.unread.extend(await self.receipts.unread(session.user))

    def handlers(self) -> dict[str, FeatureHandler]:
        return {
            "recall": self._recall,
            "edit": self._edit,
            "burn": self._burn,
            "read": self._read,
            "typing": self._typing,
            "set_presence": self._set_presence,
            "friend": self._friend,
            "block": self._block,
            "unblock": self._unblock,
            "roster": self._roster,
            "set_profile": self._set_profile,
            "get_profile": self._get_profile,
            "change_password": self._change_password,
        }

    # ------------------------------------------------------------------ handlers

    async def _recall(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        return pb.ServerFrame(sent=await self.amend.recall(conn.session, frame.recall.message_id))

    async def _edit(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        return pb.ServerFrame(sent=await self.amend.edit(conn.session, frame.edit.message_id, frame.edit.text))

    async def _burn(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        sent = await self.amend.burn(conn.session, frame.burn.message_id)
        self._arm_burn_timer()
        return pb.ServerFrame(sent=sent)

    async def _read(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        req = frame.read
        return pb.ServerFrame(sent=await self.receipts.read(conn.session, req.conversation, req.up_to))

    async def _typing(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        await self.presence.typing(conn.session, frame.typing.to, frame.typing.active)
        return pb.ServerFrame(ok=pb.Ok())

    async def _set_presence(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        presence = await self.presence.set(conn.session, frame.set_presence)
        return pb.ServerFrame(presences=pb.PresenceList(presences=[presence]))

    async def _friend(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        req = frame.friend
        await self.roster.act(conn.session, req.user, req.action, req.text)
        return pb.ServerFrame(ok=pb.Ok())

    async def _block(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        await self.roster.block(conn.session, frame.block.user)
        self.presence.hide_from(conn.session.user, frame.block.user)
        return pb.ServerFrame(ok=pb.Ok())

    async def _unblock(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        await self.roster.unblock(conn.session, frame.unblock.user)
        return pb.ServerFrame(ok=pb.Ok())

    async def _roster(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        return pb.ServerFrame(roster=await self.roster.roster(conn.session.user))

    async def _set_profile(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        return pb.ServerFrame(profile=await self.profiles.set(conn.session, frame.set_profile.profile))

    async def _get_profile(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        return pb.ServerFrame(profile=await self.profiles.get(frame.get_profile.user))

    async def _change_password(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        req = frame.change_password
        await self.profiles.change_password(conn.session, req.old_password, req.new_password)
        return pb.ServerFrame(ok=pb.Ok())

    # ------------------------------------------------------------------ burn timer

    def _arm_burn_timer(self, delay: float | None = None) -> None:
        due = self.amend.next_due()
        if due is None:
            return
        if delay is None:
            delay = max(0.0, (due - self._now_ms()) / 1000)
        if self._burn_timer is not None:
            self._burn_timer.cancel()
        loop = asyncio.get_running_loop()
        self._burn_timer = loop.call_later(delay, lambda: loop.create_task(self._expire()))

    async def _expire(self) -> None:
        self._burn_timer = None
        try:
            await self.amend.expire_due()
        except Exception:  # noqa: BLE001 - the store failed: try again later
            log.warning("deleting burnt messages failed; retrying in 5 s", exc_info=True)
            self._arm_burn_timer(5.0)
            return
        self._arm_burn_timer()
