"""The client protocol's operations: one handler per ``ClientFrame`` op.

Transport-free: the gateway (im/gateway.py) decodes frames, enforces rate limits and
calls :meth:`ImService.handle` with a :class:`Connection`; the returned ServerFrame body
is the request's one response. Errors are raised as :class:`ImError` and answered with
their code by the gateway.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from im import client_pb2 as pb
from im.accounts import Accounts, validate_password, validate_user
from im.errors import ImError
from im.features import FeatureOptions, Features
from im.limits import LoginThrottle
from im.messaging import Messenger
from im.metrics import ImMetrics
from im.sessions import Session, SessionRegistry, SessionSink
from im.spaces import Spaces, SpacesOptions

__all__ = [
    "Connection", "ImService", "NetworkPresence", "PresenceHook", "RemoteKick", "ServiceOptions", "SessionGuard",
]  # fmt: skip

log = logging.getLogger(__name__)

_MAX_WATCH = 1000
_DEVICE_MAX = 64


class Connection(Protocol):
    """The gateway's view of one client connection, as the service needs it."""

    address: str
    session: Session | None
    sink: SessionSink

    def close_after_response(self, code: int, reason: str) -> None: ...

    def is_open(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    node_id: str
    durable: bool


Handler = Callable[[Connection, pb.ClientFrame], Awaitable[pb.ServerFrame]]

#: called with (user, device ids on this node) whenever that set changes; () = none left
PresenceHook = Callable[[str, tuple[str, ...]], None]

#: awaited before a login, register or resume opens a session; raises ImError to refuse it
SessionGuard = Callable[[str, str], Awaitable[None]]

#: ends every session of (user) on the other nodes with (reason, message); sessions ended
RemoteKick = Callable[[str, int, str], Awaitable[int]]


class NetworkPresence(Protocol):
    """The user's devices on other nodes (im/federation.py), set as ``ImService.network``."""

    def remote_devices(self, user: str) -> int: ...

    def view(self, presence: pb.Presence, session: Session) -> pb.Presence: ...


class ImService:
    """Accounts, sessions, presence and messaging behind the client protocol."""

    def __init__(
        self,
        *,
        accounts: Accounts,
        registry: SessionRegistry,
        messenger: Messenger,
        throttle: LoginThrottle,
        options: ServiceOptions,
        now: Callable[[], float],
        now_ms: Callable[[], int],
        metrics: ImMetrics,
        feature_options: FeatureOptions | None = None,
        spaces_options: SpacesOptions | None = None,
    ) -> None:
        self.metrics = metrics
        metrics.gauge("timnode_sessions", "Logged-in sessions (devices) on this node", registry.session_count)
        metrics.gauge("timnode_online_users", "Users with at least one session on this node", registry.online_users)
        self.accounts = accounts
        self.registry = registry
        self.messenger = messenger
        self.throttle = throttle
        self.options = options
        self._now = now
        self._now_ms = now_ms
        self._handlers: dict[str, Handler] = {
            "register": self._register,
            "login": self._login,
            "resume": self._resume,
            "logout": self._logout,
            "send": self._send,
            "delivery_ack": self._delivery_ack,
            "sync": self._sync,
            "history": self._history,
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "ping": self._ping,
        }
        self.features = Features.for_messenger(
            messenger, accounts=accounts, registry=registry, now=now, now_ms=now_ms, options=feature_options
        )
        self._handlers.update(self.features.handlers())
        #: groups, rooms, stream data, chunked payloads (im/spaces.py)
        self.spaces = Spaces(
            messenger=messenger, accounts=accounts, registry=registry, now=now, now_ms=now_ms, metrics=metrics,
            check_send=self.features.before_send, check_user=self.features.roster.check_send, options=spaces_options,
        )  # fmt: skip
        self._handlers.update(self.spaces.handlers())
        self._handlers["change_password"] = self._change_password  # revokes tokens, kicks the other sessions
        self._anonymous = {"register", "login", "resume", "ping"}
        self.presence_hooks: list[PresenceHook] = []
        #: awaited with (user, device) before a session opens; raise ImError to refuse (admin blocks)
        self.session_guards: list[SessionGuard] = []
        self.network: NetworkPresence | None = None  # other nodes (im/federation.py)
        #: :meth:`kick_everywhere` reaches the other nodes through these (im/federation.py)
        self.remote_kicks: list[RemoteKick] = []

    def handler(self, op: str) -> Handler:
        """The handler of one ``ClientFrame`` op (KeyError if none)."""
        return self._handlers[op]

    def replace_handler(self, op: str, handler: Handler) -> Handler:
        """Route ``op`` through ``handler`` (im/federation.py forwards group and room operations);
        returns the handler it replaces."""
        previous = self._handlers[op]
        self._handlers[op] = handler
        return previous

    async def handle(self, conn: Connection, frame: pb.ClientFrame) -> pb.ServerFrame:
        op = frame.WhichOneof("op")
        handler = self._handlers.get(op or "")
        if handler is None:
            raise ImError(pb.UNKNOWN_OPERATION, "frame carries no known operation")
        if conn.session is None and op not in self._anonymous:
            raise ImError(pb.UNAUTHENTICATED, f"{op} needs a logged-in session")
        if op in self._anonymous and op != "ping":
            return await self._counted_login(op, handler(conn, frame))
        return await handler(conn, frame)

    async def _counted_login(self, kind: str, attempt: Awaitable[pb.ServerFrame]) -> pb.ServerFrame:
        try:
            reply = await attempt
        except ImError:
            self.metrics.logins_total(kind, "refused").inc()
            raise
        self.metrics.logins_total(kind, "ok").inc()
        return reply

    # ------------------------------------------------------------------ login

    async def _register(self, conn: Connection, frame: pb.ClientFrame) -> pb.ServerFrame:
        req = frame.register
        self._require_anonymous(conn)
        _validate_device(req.device)
        await self.accounts.register(req.user, req.password)
        log.info("= account registered user=%s", req.user)
        return await self._open_session(conn, req.user, req.device)

    async def _login(self, conn: Connection, frame: pb.ClientFrame) -> pb.ServerFrame:
        req = frame.login
        self._require_anonymous(conn)
        validate_user(req.user)
        await self._throttled(conn.address, req.user, lambda: self._check_login(req.user, req.password))
        return await self._open_session(conn, req.user, req.device)

    async def _check_login(self, user: str, password: str) -> None:
        if not await self.accounts.check_password(user, password):
            raise ImError(pb.AUTH_FAILED, "wrong user name or password")

    async def _throttled(self, address: str, user: str, check: Callable[[], Awaitable[None]]) -> None:
        """Run a password ``check`` (raising ``AUTH_FAILED`` when wrong) under the login
        throttle: refused while the (address, user) pair or the user waits out failures, and
        a failure's answer says how long to wait. Login and change of password share it, so
        a session (perhaps from a stolen token) cannot guess faster than a login."""
        wait = self.throttle.retry_after(address, user, self._now())
        if wait > 0:
            raise ImError(pb.AUTH_FAILED, "too many wrong passwords; retry later", retry_after=wait)
        self.throttle.attempt(address, user, self._now())
        try:
            await check()
        except BaseException as exc:
            if isinstance(exc, ImError) and exc.code == pb.AUTH_FAILED:
                exc.retry_after = self.throttle.retry_after(address, user, self._now())
            else:  # not checked (KDF queue full, store down): no failure to count
                self.throttle.withdraw(address, user)
            raise
        self.throttle.succeeded(address, user)

    async def _resume(self, conn: Connection, frame: pb.ClientFrame) -> pb.ServerFrame:
        self._require_anonymous(conn)
        record = await self.accounts.resolve_token(frame.resume.token)
        if record is None:
            raise ImError(pb.AUTH_FAILED, "unknown or expired token")
        if frame.resume.device and frame.resume.device != record.device:
            raise ImError(pb.AUTH_FAILED, "token belongs to another device")
        return await self._open_session(
            conn, record.user, record.device, token=frame.resume.token, expires=record.expires_at
        )

    @staticmethod
    def _require_anonymous(conn: Connection) -> None:
        if conn.session is not None:
            raise ImError(pb.ALREADY_LOGGED_IN, "this connection is already logged in")

    async def _open_session(
        self, conn: Connection, user: str, device: str, token: str = "", expires: int = 0
    ) -> pb.ServerFrame:
        device = device or "d-" + secrets.token_hex(4)
        _validate_device(device)
        for guard in self.session_guards:
            await guard(user, device)
        decision = self.registry.plan_admit(user, device)
        if decision.refused:
            raise ImError(pb.DEVICE_LIMIT, f"at most {self.registry.max_devices} devices may be logged in")
        if not token:
            token, expires = await self.accounts.issue_token(user, device)
        acked = await self.messenger.load_cursor(user, device)
        await self.features.presence.load(user)
        # From here to ``conn.session = session`` nothing awaits: a login that raced with
        # this one on the same connection (reads that suspend, as PostgreSQL's do) is seen.
        if conn.session is not None:
            raise ImError(pb.ALREADY_LOGGED_IN, "this connection is already logged in")
        was_online = self.registry.device_count(user) > 0
        for old, reason in self.registry.plan_admit(user, device).kick:
            self.registry.remove(old)
            old.sink.kick(reason, _KICK_TEXT.get(reason, "signed out"))
        if self.registry.device_count(user) >= self.registry.max_devices:  # a concurrent login took the slot
            raise ImError(pb.DEVICE_LIMIT, f"at most {self.registry.max_devices} devices may be logged in")
        if not conn.is_open():  # the client left while its login was being checked: no ghost session
            raise ImError(pb.BAD_REQUEST, "connection closed during login")
        epoch = self.messenger.epochs.current
        session = Session(
            user=user, device=device, sink=conn.sink, login_at=self._now(), token=token, acked=acked, send_epoch=epoch
        )
        conn.session = session
        if self.registry.add(session) and not was_online:
            await self._announce(user, online=True)
        self._devices_changed(user)
        log.info("= session opened user=%s device=%s", user, device)
        return pb.ServerFrame(
            session=pb.Session(
                user=user,
                device=device,
                token=token,
                token_expires_at=expires,
                acked_cursor=acked,
                server_time=self._now_ms(),
                node=self.options.node_id,
                store=self.options.durable,
                send_epoch=epoch,
            )
        )

    async def _logout(self, conn: Connection, frame: pb.ClientFrame) -> pb.ServerFrame:
        session = conn.session
        assert session is not None
        await self.accounts.revoke_token(session.token)
        await self.end_session(session)
        conn.session = None
        conn.close_after_response(1000, "logged out")
        return pb.ServerFrame(ok=pb.Ok())

    async def end_session(self, session: Session) -> None:
        """Forget a session (connection closed, logout or kick); announce offline if last."""
        self.spaces.session_ended(session)
        try:
            if self.registry.remove(session):
                await self._announce(session.user, online=False)
                log.info("= session closed user=%s device=%s (last device)", session.user, session.device)
        finally:  # the DHT and other nodes must hear it even when announcing failed (store down)
            self._devices_changed(session.user)
        await self.messenger.flush_cursors()

    async def _change_password(self, conn: Connection, frame: pb.ClientFrame) -> pb.ServerFrame:
        """A new password revokes every token issued before (im/accounts.py); this device gets a
        fresh one in the answer and the user's other sessions, on every node, are kicked."""
        session = conn.session
        assert session is not None
        req = frame.change_password
        validate_password(req.new_password)  # a bad new password is no guess of the old one
        profiles = self.features.profiles
        await self._throttled(
            conn.address, session.user, lambda: profiles.change_password(session, req.old_password, req.new_password)
        )
        await self.accounts.revoke_token(session.token)
        token, expires = await self.accounts.issue_token(session.user, session.device)
        session.token = token
        kicked = await self.kick_everywhere(
            session.user, pb.CREDENTIALS_CHANGED, "signed out: the password was changed; log in again", keep=session
        )
        log.info("= password changed user=%s device=%s (kicked %d sessions)", session.user, session.device, kicked)
        return pb.ServerFrame(
            session=pb.Session(
                user=session.user, device=session.device, token=token, token_expires_at=expires,
                acked_cursor=session.acked, server_time=self._now_ms(), node=self.options.node_id,
                store=self.options.durable,
            )
        )  # fmt: skip

    async def kick_everywhere(self, user: str, reason: int, message: str, keep: Session | None = None) -> int:
        """Kick every session of ``user`` but ``keep``, here and on the other nodes (KICK);
        how many sessions were ended."""
        count = 0
        for session in list(self.registry.sessions_of(user)):
            if session is not keep:
                session.sink.kick(reason, message)
                count += 1
        for remote in self.remote_kicks:
            count += await remote(user, reason, message)
        return count

    # ------------------------------------------------------------------ messages

    async def _send(self, conn: Connection, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        await self.features.before_send(conn.session, frame.send)
        return pb.ServerFrame(sent=await self.messenger.send(conn.session, frame.send))

    async def _delivery_ack(self, conn: Connection, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        if len(frame.delivery_ack.ids) > 1000:
            raise ImError(pb.TOO_LARGE, "at most 1000 ids per delivery_ack")
        await self.messenger.ack(conn.session, frame.delivery_ack.ids)
        return pb.ServerFrame(ok=pb.Ok())

    async def _sync(self, conn: Connection, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        page = await self.messenger.sync(conn.session, frame.sync.after, frame.sync.limit)
        await self.features.after_page(conn.session, page, unread=frame.sync.unread)
        return pb.ServerFrame(page=page)

    async def _history(self, conn: Connection, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        req = frame.history
        page = await self.messenger.history(conn.session, req.peer, req.before, req.limit)
        await self.features.after_page(conn.session, page)
        return pb.ServerFrame(page=page)

    # ------------------------------------------------------------------ presence

    def _devices_changed(self, user: str) -> None:
        if self.presence_hooks:
            devices = tuple(s.device for s in self.registry.sessions_of(user))
            for hook in self.presence_hooks:
                hook(user, devices)

    def presence_of(self, user: str) -> pb.Presence:
        since = self.registry.online_since.get(user)
        devices = self.registry.device_count(user)
        return pb.Presence(user=user, online=devices > 0, devices=devices, since=self._wall_ms(since))

    def _wall_ms(self, monotonic: float | None) -> int:
        if monotonic is None:
            return 0
        return self._now_ms() - int((self._now() - monotonic) * 1000)

    async def _announce(self, user: str, *, online: bool) -> None:
        if self.network is not None and self.network.remote_devices(user):
            return  # online on another node throughout: no change network-wide
        # each watcher and online friend gets its own view (invisible, blocks: im/presence.py)
        await self.features.presence.announce(user, online=online)

    async def _subscribe(self, conn: Connection, frame: pb.ClientFrame) -> pb.ServerFrame:
        session = conn.session
        assert session is not None
        users = list(dict.fromkeys(frame.subscribe.users))
        for user in users:
            validate_user(user)
        if len(session.watching | set(users)) > _MAX_WATCH:
            raise ImError(pb.TOO_LARGE, f"at most {_MAX_WATCH} subscriptions per session")
        presences = await self.features.presence.subscribe(session, users)
        if self.network is not None:
            presences = [self.network.view(p, session) for p in presences]
        return pb.ServerFrame(presences=pb.PresenceList(presences=presences))

    async def _unsubscribe(self, conn: Connection, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        for user in frame.unsubscribe.users:
            self.registry.unwatch(conn.session, user)
        return pb.ServerFrame(ok=pb.Ok())

    async def _ping(self, conn: Connection, frame: pb.ClientFrame) -> pb.ServerFrame:
        return pb.ServerFrame(pong=pb.Pong(server_time=self._now_ms()))


def _validate_device(device: str) -> None:
    if len(device) > _DEVICE_MAX:
        raise ImError(pb.BAD_REQUEST, f"device id is limited to {_DEVICE_MAX} characters")


_KICK_TEXT: dict[int, str] = {
    pb.REPLACED: "this device logged in again on another connection",
    pb.DEVICE_LIMIT_KICK: "signed out: a newer device logged in and the device limit was reached",
    pb.CREDENTIALS_CHANGED: "signed out: the account's credentials changed; log in again",
}
