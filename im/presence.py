"""Rich presence (available, away, busy, invisible, status text, custom fields) and typing.

A user's chosen presence is kept in ``S | blind(user) -> records.PresenceSetting``
(im/keys.py) and loaded when the user's first device logs in, so it survives logins.
What another user sees (:meth:`PresenceBook.view`) is the user's own presence, except:

* INVISIBLE users appear offline (``Presence{user}``) to everyone else; they still
  receive messages, and their own devices see INVISIBLE;
* a user who blocked the viewer appears offline, and the viewer cannot subscribe
  (the subscription is not kept).

Changes (first device in, last device out, ``SetPresence``) are pushed to the sessions
watching the user (``Subscribe``) and to the online devices of the user's friends (the
roster; no subscription needed), each getting its own view. The "offline" push when the
last device leaves can be turned off (``offline_notice``), as tim's
``presence_offline_block``.

Typing notices (:meth:`PresenceBook.typing`) are pushed to the recipient's online
devices only, never stored, and expire on the client after ``TypingNotice.ttl_ms``.

Across nodes (im/federation.py): :attr:`PresenceBook.remote` carries typing notices to the
recipient's devices on other nodes, :attr:`PresenceBook.changed` hooks are told after a
``SetPresence`` so the new status, text and fields reach every node's watchers, and
:attr:`PresenceBook.hidden` hooks after a block, so the blocker appears offline to the
blocked user's sessions on every node (im/fed_routing.py, ``Invalidate.hides``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from im import client_pb2 as pb
from im import records_pb2 as rec
from im.accounts import validate_user
from im.errors import ImError
from im.events import RemotePush
from im.keys import KeySchema
from im.roster import Roster
from im.sessions import Push, Session, SessionRegistry
from store.api import Put, RecordStore

__all__ = ["PresenceBook", "TYPING_TTL_MS"]

TYPING_TTL_MS = 10_000
_MAX_TEXT = 256
_MAX_FIELDS = 32
_MAX_FIELD_CHARS = 4096


class PresenceBook:
    """Presence state of the users online here, and who gets told about changes."""

    def __init__(
        self,
        *,
        store: RecordStore,
        keys: KeySchema,
        registry: SessionRegistry,
        roster: Roster,
        now: Callable[[], float],
        now_ms: Callable[[], int],
        offline_notice: bool = True,
    ) -> None:
        self._store = store
        self._keys = keys
        self._registry = registry
        self._roster = roster
        self._now = now
        self._now_ms = now_ms
        self.offline_notice = offline_notice
        self._settings: dict[str, rec.PresenceSetting] = {}
        self.remote: RemotePush | None = None  # typing notices to other nodes (im/federation.py)
        #: called with the user after a SetPresence (im/federation.py replicates it)
        self.changed: list[Callable[[str], None]] = []
        #: called with (user, blocked) after a block hid the user here (im/fed_routing.py: HIDE)
        self.hidden: list[Callable[[str, str], None]] = []

    # ------------------------------------------------------------------ state

    async def load(self, user: str) -> None:
        """Load the user's chosen presence (called before the first device is announced)."""
        if user in self._settings:
            return
        raw = await self._store.get(self._keys.presence_setting(user))
        self._settings[user] = rec.PresenceSetting.FromString(raw) if raw else rec.PresenceSetting()

    def forget(self, user: str) -> None:
        self._settings.pop(user, None)

    def own(self, user: str) -> pb.Presence:
        """The user's presence as the user sees it (INVISIBLE included)."""
        devices = self._registry.device_count(user)
        presence = pb.Presence(user=user)
        if not devices:
            return presence
        since = self._registry.online_since.get(user)
        presence.online, presence.devices = True, devices
        if since is not None:
            presence.since = self._now_ms() - int((self._now() - since) * 1000)
        setting = self._settings.get(user)
        if setting is not None:
            presence.status = cast(pb.PresenceStatus, setting.status or pb.AVAILABLE)
            presence.text = setting.text
            presence.fields.update(setting.fields)
        else:
            presence.status = pb.AVAILABLE
        return presence

    def _invisible(self, user: str) -> bool:
        setting = self._settings.get(user)
        return setting is not None and setting.status == pb.INVISIBLE

    async def view(self, user: str, viewer: str) -> pb.Presence:
        """``user``'s presence as ``viewer`` may see it."""
        if viewer == user:
            return self.own(user)
        if self._invisible(user) or await self._roster.blocks(user, viewer):
            return pb.Presence(user=user)
        return self.own(user)

    # ------------------------------------------------------------------ changes

    async def announce(self, user: str, *, online: bool) -> None:
        """The user's first device arrived (online) or last device left (offline)."""
        if self._invisible(user):
            if not online:
                self.forget(user)
            return
        if online or self.offline_notice:
            await self._broadcast(user)
        if not online:
            self.forget(user)

    async def set(self, session: Session, req: pb.SetPresence) -> pb.Presence:
        _validate(req)
        user = session.user
        await self.load(user)
        setting = rec.PresenceSetting(status=req.status, text=req.text)
        setting.fields.update(req.fields)
        await self._store.write([Put(self._keys.presence_setting(user), setting.SerializeToString())])
        self._settings[user] = setting
        await self._broadcast(user, include_own=session)
        for hook in self.changed:
            hook(user)
        return self.own(user)

    async def _broadcast(self, user: str, include_own: Session | None = None) -> None:
        targets: dict[str, list[Session]] = {}
        for watcher in self._registry.watchers_of(user):
            targets.setdefault(watcher.user, []).append(watcher)
        for friend in await self._roster.friends(user):
            for target in self._registry.sessions_of(friend):
                if target not in targets.get(friend, ()):
                    targets.setdefault(friend, []).append(target)
        if include_own is not None:
            own = [s for s in self._registry.sessions_of(user) if s is not include_own]
            targets[user] = own + [s for s in targets.get(user, []) if s not in own and s is not include_own]
        for viewer, sessions in targets.items():
            if sessions:
                push = Push(pb.ServerFrame(presence=await self.view(user, viewer)))
                for target in sessions:
                    target.sink.push(push)

    async def subscribe(self, session: Session, users: list[str]) -> list[pb.Presence]:
        """Watch ``users`` (not those who blocked this user) and answer their presence."""
        out: list[pb.Presence] = []
        for user in users:
            if await self._roster.blocks(user, session.user):
                out.append(pb.Presence(user=user))
                continue
            self._registry.watch(session, user)
            out.append(await self.view(user, session.user))
        return out

    def hide_from(self, user: str, blocked: str, *, everywhere: bool = True) -> None:
        """``user`` blocked ``blocked``: end their subscriptions and show ``user`` offline (here,
        and through :attr:`hidden` on the other nodes unless ``everywhere`` is False)."""
        push = Push(pb.ServerFrame(presence=pb.Presence(user=user)))
        for watcher in list(self._registry.watchers_of(user)):
            if watcher.user == blocked:
                self._registry.unwatch(watcher, user)
                watcher.sink.push(push)
        if everywhere:
            for hook in self.hidden:
                hook(user, blocked)

    # ------------------------------------------------------------------ typing

    async def typing(self, session: Session, to: str, active: bool) -> int:
        """Push a TypingNotice to ``to``'s online devices; how many got it."""
        validate_user(to)
        await self._roster.check_send(session.user, to)
        notice = pb.TypingNotice(user=session.user, to=to, active=active, ttl_ms=TYPING_TTL_MS if active else 0)
        push = Push(pb.ServerFrame(typing=notice))
        count = 0
        for target in self._registry.sessions_of(to):
            if target is not session:
                target.sink.push(push)
                count += 1
        if self.remote is not None:
            self.remote((to,), push.frame, "typing")
        return count


def _validate(req: pb.SetPresence) -> None:
    if req.status not in (pb.PRESENCE_STATUS_UNSPECIFIED, pb.AVAILABLE, pb.AWAY, pb.BUSY, pb.INVISIBLE):
        raise ImError(pb.BAD_REQUEST, "unknown presence status")
    if len(req.text) > _MAX_TEXT:
        raise ImError(pb.TOO_LARGE, f"status text is limited to {_MAX_TEXT} characters")
    if len(req.fields) > _MAX_FIELDS or sum(len(k) + len(v) for k, v in req.fields.items()) > _MAX_FIELD_CHARS:
        raise ImError(pb.TOO_LARGE, f"presence fields: at most {_MAX_FIELDS} entries, {_MAX_FIELD_CHARS} characters")
