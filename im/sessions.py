"""Logged-in sessions: who is online on this node, on which devices, and who watches whom.

The registry is plain data (no I/O): the gateway adds and removes sessions; the
messaging and presence code asks it where to push. A ``Push`` carries a ServerFrame and
caches its encodings, so a fan-out to many sessions encodes once per codec.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from google.protobuf import json_format

from im import client_pb2 as pb
from im.wsframe import frame as ws_frame

__all__ = ["Push", "SessionSink", "Session", "SessionRegistry", "AdmitDecision"]


class Push:
    """A server push, encoded (and framed: ``im.wsframe``) lazily at most once per codec."""

    __slots__ = ("frame", "_binary", "_json", "_framed")

    def __init__(self, frame: pb.ServerFrame) -> None:
        self.frame = frame
        self._binary: bytes | None = None
        self._json: str | None = None
        self._framed: dict[bool, bytes] = {}

    def framed(self, binary: bool) -> bytes:
        """The complete WebSocket frame of the binary (protobuf) or the text (JSON) encoding."""
        done = self._framed.get(binary)
        if done is None:
            payload = self.binary() if binary else self.json().encode()
            done = self._framed[binary] = ws_frame(payload, text=not binary)
        return done

    def binary(self) -> bytes:
        if self._binary is None:
            self._binary = self.frame.SerializeToString()
        return self._binary

    def json(self) -> str:
        if self._json is None:
            self._json = json_format.MessageToJson(self.frame, indent=None, ensure_ascii=False)
        return self._json


class SessionSink(Protocol):
    """What the gateway provides for one logged-in connection."""

    def push(self, push: Push) -> None: ...

    def kick(self, reason: int, message: str) -> None: ...


@dataclass(eq=False, slots=True)
class Session:
    user: str
    device: str
    sink: SessionSink
    login_at: float
    token: str = ""
    acked: int = 0
    watching: set[str] = field(default_factory=set)
    send_epoch: str = ""  # the last send epoch this session was told (im.send_epoch)


@dataclass(frozen=True, slots=True)
class AdmitDecision:
    """What admitting a new session requires: sessions to kick (with reasons), or a refusal."""

    kick: tuple[tuple[Session, int], ...] = ()
    refused: bool = False


class SessionRegistry:
    """user -> device -> Session, plus presence watchers (user -> watching sessions)."""

    def __init__(self, max_devices: int, policy: str) -> None:
        self.max_devices = max_devices
        self.policy = policy
        self._by_user: dict[str, dict[str, Session]] = {}
        self._watchers: dict[str, set[Session]] = {}
        self.online_since: dict[str, float] = {}

    def plan_admit(self, user: str, device: str) -> AdmitDecision:
        """Decide how a login of (user, device) fits the device limit and policy."""
        devices = self._by_user.get(user, {})
        if device in devices:
            return AdmitDecision(kick=((devices[device], pb.REPLACED),))
        if len(devices) < self.max_devices:
            return AdmitDecision()
        if self.policy == "refuse":
            return AdmitDecision(refused=True)
        excess = len(devices) - self.max_devices + 1
        oldest = sorted(devices.values(), key=lambda s: s.login_at)[:excess]
        return AdmitDecision(kick=tuple((s, pb.DEVICE_LIMIT_KICK) for s in oldest))

    def add(self, session: Session) -> bool:
        """Register a session; True when it is the user's first device (user came online)."""
        devices = self._by_user.setdefault(session.user, {})
        first = not devices
        devices[session.device] = session
        if first:
            self.online_since[session.user] = session.login_at
        return first

    def remove(self, session: Session) -> bool:
        """Unregister; True when it was the user's last device (user went offline)."""
        for user in session.watching:
            self._watchers.get(user, set()).discard(session)
            if not self._watchers.get(user, True):
                del self._watchers[user]
        devices = self._by_user.get(session.user)
        if devices is None or devices.get(session.device) is not session:
            return False
        del devices[session.device]
        if devices:
            return False
        del self._by_user[session.user]
        self.online_since.pop(session.user, None)
        return True

    def sessions_of(self, user: str) -> Iterator[Session]:
        yield from self._by_user.get(user, {}).values()

    def device_count(self, user: str) -> int:
        return len(self._by_user.get(user, ()))

    def watch(self, session: Session, user: str) -> None:
        session.watching.add(user)
        self._watchers.setdefault(user, set()).add(session)

    def unwatch(self, session: Session, user: str) -> None:
        session.watching.discard(user)
        watchers = self._watchers.get(user)
        if watchers is not None:
            watchers.discard(session)
            if not watchers:
                del self._watchers[user]

    def watchers_of(self, user: str) -> set[Session]:
        return self._watchers.get(user, set())

    def online_users(self) -> int:
        return len(self._by_user)

    def session_count(self) -> int:
        return sum(len(d) for d in self._by_user.values())

    def all_sessions(self) -> Iterator[Session]:
        for devices in list(self._by_user.values()):
            yield from list(devices.values())
