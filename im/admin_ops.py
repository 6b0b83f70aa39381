"""What an administrator can do to the IM layer: list sessions, kick, block, broadcast.

Transport-free: ``im/admin.py`` (the HTTP API) and tests call these methods. State lives
in the service's registry and in the record store, so blocks survive restarts and are
seen by every node sharing the store.

Store keys (beside the layout in ``im/keys.py``; values are sealed by the store):

    Zb | blind(user)   -> JSON {"user", "at" (ms), "reason"}   (a blocked account)

System messages (``Message.type = 2``, ``from = ""``, ``ext["system"]`` = the scope) are
written to each recipient's inbox like the recipient's half of a 1:1 message (so ``sync``
returns them to devices that were offline) and pushed to the recipient's online devices.
No user can have an empty name and clients cannot send types 2-31, so ``from = ""`` cannot
be forged. They have no conversation row: ``history`` never returns them.

Scopes: a user; ``node`` (users with a session on this node now); ``all`` (every account
in this node's store). For a user and for ``all``, :attr:`AdminOps.remote_broadcasts` pushes
the message live to the sessions on other nodes (``timnode/admin_wiring.py`` -> im/fed_routing.py; with a
shared store the copies stored here already cover their accounts).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from im import client_pb2 as pb
from im import records_pb2 as rec
from im.accounts import USER_NAME, revoke_tokens
from im.errors import ImError
from im.keys import KeySchema
from im.messaging import Messenger
from im.metrics import ImMetrics
from im.sessions import Push, Session, SessionRegistry
from node.metrics import MetricSet
from store.api import Delete, Op, Put, RecordStore, prefix_end

__all__ = ["AdminOps", "BroadcastResult", "SYSTEM_TYPE", "SYSTEM_SENDER", "RemoteBroadcast"]

log = logging.getLogger(__name__)

#: Message.type of system messages (docs/protocol.md, §6: TYPE_SYSTEM)
SYSTEM_TYPE: int = pb.TYPE_SYSTEM
#: Message.from of system messages: no account can have an empty name
SYSTEM_SENDER = ""
_BLOCK_PREFIX = b"Zb"
_ACCOUNT_PREFIX = b"A"
_SCAN_PAGE = 500
_WRITE_BATCH = 500
_MAX_TEXT = 16384

#: forwards a system message to other nodes: (message, "" for every user there, or one user);
#: returns how many devices it reached
RemoteBroadcast = Callable[[pb.Message, str], Awaitable[int]]
#: ends every session of (user) on the other nodes with (reason, message); sessions ended
RemoteKick = Callable[[str, int, str], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class BroadcastResult:
    message_id: int
    scope: str  # "user", "node" or "all"
    to: str  # the user name, "node" or "all"
    recipients: int  # users the message was addressed to (stored or pushed)
    stored: int  # inbox rows written (0 in no-store mode)
    pushed: int  # devices it was pushed to
    remote: int = 0  # devices pushed to on other nodes (to=all, to=<user>)

    def as_dict(self) -> dict[str, Any]:
        return {
            "message_id": str(self.message_id),
            "scope": self.scope,
            "to": self.to,
            "recipients": self.recipients,
            "stored": self.stored,
            "pushed": self.pushed,
            "remote": self.remote,
        }


class AdminOps:
    """Sessions, kicks, blocks and system messages for the admin API."""

    def __init__(
        self,
        *,
        store: RecordStore,
        keys: KeySchema,
        registry: SessionRegistry,
        messenger: Messenger,
        metrics: ImMetrics,
        now: Callable[[], float],
        now_ms: Callable[[], int],
    ) -> None:
        self._store = store
        self._keys = keys
        self._registry = registry
        self._messenger = messenger
        self._metrics = metrics
        self._now = now
        self._now_ms = now_ms
        self.remote_broadcasts: list[RemoteBroadcast] = []
        self.remote_kicks: list[RemoteKick] = []  # a block ends the user's sessions on other nodes too
        m: MetricSet = metrics.set
        self._system_total = m.counter(
            "timnode_system_messages_total", "System messages written or pushed, by scope", ["scope"]
        )
        self._admin_actions = m.counter("timnode_admin_actions_total", "Admin mutations by action", ["action"])

    # ------------------------------------------------------------------ sessions

    def sessions(self) -> list[dict[str, Any]]:
        """Online users with their devices, login time (ms since the epoch) and address."""
        by_user: dict[str, list[Session]] = {}
        for session in self._registry.all_sessions():
            by_user.setdefault(session.user, []).append(session)
        out = []
        for user in sorted(by_user):
            devices = [self._describe(s) for s in sorted(by_user[user], key=lambda s: s.login_at)]
            out.append({"user": user, "devices": devices})
        return out

    def _describe(self, session: Session) -> dict[str, Any]:
        return {
            "device": session.device,
            "login_at": self._wall_ms(session.login_at),
            "address": str(getattr(session.sink, "address", "")),
            "acked_cursor": str(session.acked),
            "watching": len(session.watching),
        }

    def _wall_ms(self, monotonic: float) -> int:
        return self._now_ms() - int((self._now() - monotonic) * 1000)

    def kick(self, user: str, device: str = "", message: str = "signed out by an administrator") -> int:
        """Kick (Kicked ADMIN, close 4005) the user's sessions on this node, or one device; returns how many."""
        _check_user(user)
        targets = [s for s in self._registry.sessions_of(user) if not device or s.device == device]
        for session in targets:
            session.sink.kick(pb.ADMIN, message)
        if targets:
            log.info("= admin kicked user=%s devices=%d", user, len(targets))
        self._admin_actions("kick").inc()
        return len(targets)

    # ------------------------------------------------------------------ blocks

    def _block_key(self, user: str) -> bytes:
        return _BLOCK_PREFIX + self._keys.user(user)

    async def is_blocked(self, user: str) -> bool:
        return await self._store.get(self._block_key(user)) is not None

    async def block(self, user: str, reason: str = "") -> dict[str, Any]:
        """Persist a block, revoke the user's tokens (im/accounts.py) and kick the user's sessions
        here and on the other nodes (KICK); a blocked account cannot log in."""
        _check_user(user)
        record = {"user": user, "at": self._now_ms(), "reason": reason[:200]}
        await self._store.write([Put(self._block_key(user), json.dumps(record).encode())])
        await revoke_tokens(self._store, self._keys, user)
        text = "this account has been blocked by the administrator"
        kicked = self.kick(user, message=text)
        for remote in self.remote_kicks:
            kicked += await remote(user, pb.ADMIN, text)
        log.info("= admin blocked user=%s", user)
        self._admin_actions("block").inc()
        return {"user": user, "blocked": True, "kicked": kicked}

    async def unblock(self, user: str) -> dict[str, Any]:
        _check_user(user)
        was = await self.is_blocked(user)
        await self._store.write([Delete(self._block_key(user))])
        log.info("= admin unblocked user=%s", user)
        self._admin_actions("unblock").inc()
        return {"user": user, "blocked": False, "was_blocked": was}

    async def blocked(self, limit: int = 10_000) -> list[dict[str, Any]]:
        rows = await self._store.scan(_BLOCK_PREFIX, prefix_end(_BLOCK_PREFIX), limit=limit)
        out = []
        for _, raw in rows:
            try:
                out.append(json.loads(raw))
            except ValueError:
                continue
        return sorted(out, key=lambda r: str(r.get("user", "")))

    async def guard_session(self, user: str, device: str) -> None:
        """``ImService.session_guards`` entry: refuse sessions of blocked accounts (FORBIDDEN)."""
        if await self.is_blocked(user):
            raise ImError(pb.FORBIDDEN, "this account is blocked by the node's administrator")

    # ------------------------------------------------------------------ system messages

    async def broadcast(self, text: str, to: str = "node") -> BroadcastResult:
        """A system message to one user, to the users online on this node, or to every account here."""
        if not text or len(text.encode()) > _MAX_TEXT:
            raise ValueError(f"text must be 1-{_MAX_TEXT} bytes")
        scope = to if to in ("node", "all") else "user"
        if scope == "user":
            _check_user(to)
        now = self._now_ms()
        template = pb.Message(id=self._messenger.new_message_id(now), timestamp=now, type=SYSTEM_TYPE, text=text)
        template.ext["system"] = scope
        setattr(template, "from", SYSTEM_SENDER)
        stored = pushed = recipients = 0
        async for users in self._recipients(scope, to):
            recipients += len(users)
            stored += await self._store_for(template, users)
            pushed += self._push_to(template, users)
        remote = 0
        if scope != "node":  # live on other nodes too (the shared store already holds the copies)
            for forward in self.remote_broadcasts:  # cross-node routing plugs in here
                remote += await forward(template, "" if scope == "all" else to)
        self._system_total(scope).inc(recipients)
        log.info("= admin system message scope=%s recipients=%d pushed=%d", scope, recipients, pushed)
        return BroadcastResult(template.id, scope, to, recipients, stored, pushed, remote)

    async def _recipients(self, scope: str, to: str) -> AsyncIterator[list[str]]:
        """Yields lists of user names (pages, so a large store is never held in memory)."""
        if scope == "user":
            if await self._store.get(self._keys.account(to)) is None:
                raise ImError(pb.NOT_FOUND, "no such user")
            yield [to]
        elif scope == "node":
            yield sorted({s.user for s in self._registry.all_sessions()})
        else:
            async for page in self.accounts():
                yield page

    async def accounts(self) -> AsyncIterator[list[str]]:
        """Every account name in this node's store, in pages of up to 500 (key order)."""
        start, end = _ACCOUNT_PREFIX, prefix_end(_ACCOUNT_PREFIX)
        while True:
            rows = await self._store.scan(start, end, limit=_SCAN_PAGE)
            if not rows:
                return
            users = []
            for _, raw in rows:
                try:
                    users.append(rec.Account.FromString(raw).user)
                except Exception:  # noqa: BLE001 - a foreign or damaged row: skip it
                    continue
            yield [u for u in users if USER_NAME.fullmatch(u)]
            if len(rows) < _SCAN_PAGE:
                return
            start = rows[-1][0] + b"\x00"

    async def _store_for(self, template: pb.Message, users: list[str]) -> int:
        if not self._messenger.durable or not users:
            return 0
        written = 0
        for i in range(0, len(users), _WRITE_BATCH):
            ops: list[Op] = []
            for user in users[i : i + _WRITE_BATCH]:
                ops.append(Put(self._keys.inbox(user, template.id), _addressed(template, user).SerializeToString()))
            await self._store.write(ops)
            written += len(ops)
        return written

    def _push_to(self, template: pb.Message, users: list[str]) -> int:
        pushed = 0
        for user in users:
            sessions = list(self._registry.sessions_of(user))
            if not sessions:
                continue
            push = Push(pb.ServerFrame(message=_addressed(template, user)))
            for session in sessions:
                session.sink.push(push)
            pushed += len(sessions)
        if pushed:
            self._metrics.deliveries_total.inc(pushed)
        return pushed


def _addressed(template: pb.Message, user: str) -> pb.Message:
    message = pb.Message()
    message.CopyFrom(template)
    message.to = user
    return message


def _check_user(user: str) -> None:
    if not USER_NAME.fullmatch(user):
        raise ValueError("user must be 1-64 characters of letters, digits and ._@-")
