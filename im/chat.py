"""``timnode chat``: a terminal client for people and, with ``--json``, for scripts.

    timnode chat URL[,URL...] --user U --password P [--register] [--json] [--device D]

Each stdin line is a command (both modes)::

    /msg USER TEXT      send TEXT to USER (and make USER the current peer)
    /history USER [N]   the last N (default 20) messages with USER
    /sub USER...        subscribe to presence      /unsub USER...   unsubscribe
    /to USER            set the current peer       /ping            round trip to the node
    /recall ID          recall a message you sent  /edit ID TEXT    replace its text
    /burnmsg USER TEXT  send burn-after-reading    /burn ID         report it read (it burns)
    /read USER ID       read marker up to ID       /unread          unread counts
    /typing USER [off]  typing indicator           /status STATE [TEXT]  available|away|busy|invisible
    /friend USER [TEXT] friend request             /accept USER  /reject USER  /unfriend USER
    /block USER  /unblock USER  /roster            /profile USER    /nick NAME
    /groups             your groups, unread counts /g GROUP TEXT    send to a group
    /group create NAME [USER...]    /group join GROUP [TEXT]    /group leave GROUP
    /group invite GROUP USER...     /group members GROUP        /group send GROUP TEXT
    /group sync GROUP [SEQ]   messages after SEQ (default: your read position)
    /group read GROUP [SEQ]   move your read position (default: the latest message)
    /room create [ROOM]  /room join ROOM  /room leave ROOM  /room members ROOM
    /room send ROOM TEXT  (or /r ROOM TEXT)   live, never stored: members online get it
    /help               the commands               /quit            leave (so does EOF)

GROUP is a group id (``g`` and 16 hex digits, as ``/group create`` and ``/groups`` show)
or the name of one of your groups; ``#team`` and ``team`` are the same, as are ``&live``
and ``live`` for a ROOM. ``/to #team`` or ``/to &live`` makes a group or room the current
peer, and so does ``/g`` or ``/r``.

In interactive mode a line without a slash goes to the current peer (``//x`` sends ``/x``).
Messages show as ``[12:01:33] bob: text``; group messages as ``[12:01:33] #team bob: text``
(notices such as joins: ``[12:01:33] #team * bob joined``; a private message inside a
group: ``bob -> you (private)``); room messages as ``[12:01:33] &live bob: text``; engine
events as sentences (``* bob recalled message 123``, ``* bob edited message 123: text``,
``* bob read your messages up to 123``, ``* bob asks to be your friend``, ...) and system
messages (type 2) as ``* system: text``. Login lists groups with unread messages (the SDK
does not replay group messages: ``/group sync`` fetches them). Stream frames are not shown.

Commands run one at a time, in input order, so messages leave in the order typed and
EOF right after a ``/msg`` still waits for the node's ``Sent``.

With ``--json`` stdout carries one JSON object per line and nothing else (logs go to
stderr): SDK events via :func:`im.client.describe_event`, plus ``ready`` (logged in),
``sent``, ``history``, ``presences``, ``unsubscribed``, ``pong``, ``peer``, ``help`` and
``error``. Feature commands answer with ``recalled``, ``edited``, ``burnt``, ``read``,
``unread``, ``typing``, ``status``, ``friend``/``accept``/``reject``/``unfriend``,
``blocked``/``unblocked``, ``roster`` and ``profile``.

Groups and rooms in ``--json`` mode (ids and seqs are strings, as in the JSON mapping;
``info`` is a ``GroupInfo`` / ``RoomInfo``, ``messages`` are ``Message`` objects)::

    {"event":"groupMessage","message":{...,"group":"g…","seq":"3"}}   live push (notices too;
                                                                       not this device's own)
    {"event":"roomMessage","message":{...,"room":"live"}}              live push (joins, leaves)
    {"event":"stream","frame":{...}}                                   live stream data
    {"event":"groupCreated","group":"g…","info":{...}}                 /group create
    {"event":"groupJoined","group":"g…","info":{...}}                  /group join (a member now)
    {"event":"groupApplied","group":"g…"}                              /group join (waits for approval)
    {"event":"groupLeft","group":"g…"}                                 /group leave
    {"event":"groupInvited","group":"g…","users":["bob"]}              /group invite
    {"event":"groupMembers","group":"g…","members":[{"user":..,"role":..}],"more":false}
    {"event":"groups","groups":[{"group":..,"name":..,"unread":..}]}   /groups
    {"event":"groupSent","group":"g…","messageId":..,"seq":..,"timestamp":..,"clientMsgId":..}
    {"event":"groupSync","group":"g…","messages":[...],"more":..,"cursor":..,"lastSeq":..,"readSeq":..}
    {"event":"groupRead","group":"g…","seq":"3"}                       /group read
    {"event":"roomCreated","room":"live","info":{...}}                 /room create (also roomJoined)
    {"event":"roomMembers","room":"live","info":{...}}                 /room members
    {"event":"roomLeft","room":"live"}                                 /room leave
    {"event":"roomSent","room":"live","timestamp":..,"deliveredDevices":2}

An error's ``code`` is a wire ``ErrorCode`` name (``NOT_FOUND``,
``AUTH_FAILED``, ...) or one of the local codes ``UNKNOWN_COMMAND``, ``USAGE``,
``TIMEOUT``, ``CONNECTION_LOST``, ``CONNECT_FAILED``.

Exit codes: 0 after ``/quit`` or EOF; 1 when login fails or the node ends the session
for good (for example the same device logged in elsewhere); 130 after Ctrl-C.

The default device id, ``chat-<hostname>``, is stable, so a later run resumes this
device's cursor on the node and gets what was sent meanwhile.

Deviation from STYLE.md 3.1: this module is an application adapter, so it imports
asyncio itself; its pure parts (:func:`parse_command`, the printers) take no I/O and
are tested without a loop. Stdin is read by a daemon thread with ``os.read`` (not
``loop.connect_read_pipe``): that works for TTYs, pipes and regular files alike, does
not put a terminal shared with stdout into non-blocking mode, and holds no lock of
``sys.stdin`` that could stall interpreter shutdown.

Around the SDK (``im/client.py``): ``Client.connect()`` only tries ``urls[0]``, so
:func:`connect_client` rotates the list for failover at login; :func:`close_client` lets
delivery acks already in flight be answered before ``Client.close()``, so the node has
stored this device's cursor and the next run does not get the same messages again.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import datetime
import getpass
import io
import json
import logging
import os
import re
import secrets
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from google.protobuf import json_format
from websockets.exceptions import WebSocketException

from im import client_pb2 as pb
from im.client import (
    Client,
    ClientEvent,
    ConnectedEvent,
    ConnectionLost,
    DeliveredEvent,
    DisconnectedEvent,
    GroupMessageEvent,
    KickedEvent,
    MessageEvent,
    PresenceEvent,
    RoomMessageEvent,
    StreamEvent,
    TypingEvent,
    describe_event,
)
from im.errors import ImError

__all__ = [
    "main",
    "Command",
    "CommandError",
    "parse_command",
    "default_device",
    "read_lines",
    "Printer",
    "JsonPrinter",
    "HumanPrinter",
    "ChatRunner",
    "connect_client",
    "close_client",
]

log = logging.getLogger(__name__)

_COMMAND_TIMEOUT = 60.0
_CONNECT_TIMEOUT = 30.0
_CLOSE_TIMEOUT = 5.0
_HISTORY_DEFAULT = 20
_HISTORY_MAX = 1000
_LINE_QUEUE = 1000
_DEVICE_MAX = 64
_EXIT_INTERRUPTED = 130

USAGE: dict[str, str] = {
    "msg": "/msg USER TEXT",
    "history": f"/history USER [N]   (default {_HISTORY_DEFAULT})",
    "sub": "/sub USER...",
    "unsub": "/unsub USER...",
    "to": "/to USER",
    "ping": "/ping",
    "recall": "/recall ID",
    "edit": "/edit ID TEXT",
    "burnmsg": "/burnmsg USER TEXT",
    "burn": "/burn ID",
    "read": "/read USER ID",
    "unread": "/unread",
    "typing": "/typing USER [off]",
    "status": "/status available|away|busy|invisible [TEXT]",
    "friend": "/friend USER [TEXT]",
    "accept": "/accept USER",
    "reject": "/reject USER",
    "unfriend": "/unfriend USER",
    "block": "/block USER",
    "unblock": "/unblock USER",
    "roster": "/roster",
    "profile": "/profile USER",
    "nick": "/nick NAME",
    "group create": "/group create NAME [USER...]   (a new group; USERs are invited)",
    "group join": "/group join GROUP [TEXT]   (ask to join; open groups: join at once)",
    "group leave": "/group leave GROUP",
    "group invite": "/group invite GROUP USER...",
    "group members": "/group members GROUP",
    "group send": "/group send GROUP TEXT   (short: /g GROUP TEXT)",
    "group sync": "/group sync GROUP [SEQ]   (messages after SEQ; default: your read position)",
    "group read": "/group read GROUP [SEQ]   (read position; default: the latest)",
    "groups": "/groups            your groups with unread counts",
    "room create": "/room create [ROOM]   (a new live room; no name: the node picks one)",
    "room join": "/room join ROOM",
    "room leave": "/room leave ROOM",
    "room members": "/room members ROOM",
    "room send": "/room send ROOM TEXT   (short: /r ROOM TEXT)",
    "help": "/help",
    "quit": "/quit",
}


# ---------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """One parsed stdin line.

    ``name`` is a key of :data:`USAGE` or ``"say"`` (a plain line for the current peer).
    """

    name: str
    line: str
    users: tuple[str, ...] = ()
    text: str = ""
    limit: int = 0
    target: str = ""


class CommandError(ValueError):
    """A line that is not a valid command; ``code`` is ``UNKNOWN_COMMAND`` or ``USAGE``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_command(line: str) -> Command | None:
    """Parse one stdin line; ``None`` for a blank line.

    Raises:
        CommandError: unknown command or wrong arguments.
    """
    line = line.rstrip("\r\n")
    if not line.strip():
        return None
    if not line.startswith("/") or line.startswith("//"):
        return Command(name="say", line=line, text=line[1:] if line.startswith("//") else line)
    head, *tail = line[1:].split(None, 1)
    name = head.lower()
    parse = _PARSERS.get(name)
    if parse is None:
        raise CommandError("UNKNOWN_COMMAND", f"unknown command /{head} (try /help)")
    return parse(name, tail[0] if tail else "", line)


def _usage(name: str) -> CommandError:
    return CommandError("USAGE", "usage: " + USAGE[name])


def _parse_msg(name: str, rest: str, line: str) -> Command:
    parts = rest.split(None, 1)
    if len(parts) != 2:
        raise _usage(name)
    return Command(name=name, line=line, users=(parts[0],), text=parts[1])


def _parse_history(name: str, rest: str, line: str) -> Command:
    parts = rest.split()
    if not 1 <= len(parts) <= 2:
        raise _usage(name)
    limit = _HISTORY_DEFAULT
    if len(parts) == 2:
        if not parts[1].isdigit() or not 1 <= int(parts[1]) <= _HISTORY_MAX:
            raise CommandError("USAGE", f"N must be a number from 1 to {_HISTORY_MAX}")
        limit = int(parts[1])
    return Command(name=name, line=line, users=(parts[0],), limit=limit)


def _parse_users(name: str, rest: str, line: str) -> Command:
    users = tuple(rest.split())
    if not users or (name == "to" and len(users) != 1):
        raise _usage(name)
    return Command(name=name, line=line, users=users)


def _parse_bare(name: str, rest: str, line: str) -> Command:
    return Command(name=name, line=line)


_ID_ARG = {"recall", "edit", "burn"}
_USER_TEXT = {"burnmsg", "friend", "typing", "read", "status"}


def _parse_feature(name: str, rest: str, line: str) -> Command:
    """``/recall ID``, ``/edit ID TEXT``, ``/friend USER [TEXT]``, ``/block USER``, ..."""
    head, _, text = rest.strip().partition(" ")
    text = text.strip()
    if name in ("roster", "unread"):
        return Command(name=name, line=line)
    if not head or (name in ("edit", "burnmsg", "nick") and not (text or name == "nick")):
        raise _usage(name)
    if name in _ID_ARG:
        if not head.isdigit():
            raise CommandError("USAGE", "ID must be a message id (a number)")
        return Command(name=name, line=line, limit=int(head), text=text)
    if name == "read" and not text.isdigit():
        raise _usage(name)
    if name == "nick":
        return Command(name=name, line=line, text=rest.strip())
    if name not in _USER_TEXT and text:
        raise _usage(name)
    return Command(name=name, line=line, users=(head,), text=text)


_SPACE_ARGS: dict[str, tuple[int, str]] = {
    # subcommand: (how many words before the rest, what the rest is: "" none, "text", "text?",
    # "users", "users?", "seq?")
    "group create": (0, "users?"),
    "group join": (1, "text?"),
    "group leave": (1, ""),
    "group invite": (1, "users"),
    "group members": (1, ""),
    "group send": (1, "text"),
    "group sync": (1, "seq?"),
    "group read": (1, "seq?"),
    "room create": (0, "name?"),
    "room join": (1, ""),
    "room leave": (1, ""),
    "room members": (1, ""),
    "room send": (1, "text"),
}


def _parse_space(name: str, rest: str, line: str) -> Command:
    """``/group SUB ...``, ``/room SUB ...`` and the shorthands ``/g GROUP TEXT``, ``/r ROOM TEXT``."""
    if name in ("g", "r"):
        name, rest = ("group" if name == "g" else "room"), "send " + rest
    sub, _, rest = rest.strip().partition(" ")
    full = f"{name} {sub.lower()}"
    spec = _SPACE_ARGS.get(full)
    if spec is None:
        subs = sorted(k.split()[1] for k in _SPACE_ARGS if k.startswith(name + " "))
        raise CommandError("USAGE", f"usage: /{name} {'|'.join(subs)} ... (try /help)")
    words, kind = spec
    rest = rest.strip()
    target = ""
    if words:
        target, _, rest = rest.partition(" ")
        target = target.removeprefix("#" if name == "group" else "&")
        if not target:
            raise _usage(full)
    if kind == "text":
        if not rest.strip():
            raise _usage(full)
        return Command(name=full, line=line, target=target, text=rest.lstrip())
    if kind == "text?":
        return Command(name=full, line=line, target=target, text=rest.strip())
    args = rest.split()
    if kind.startswith("users"):
        if full == "group create":
            if not args:
                raise _usage(full)
            target, args = args[0], args[1:]
        if kind == "users" and not args:
            raise _usage(full)
        return Command(name=full, line=line, target=target, users=tuple(args))
    if kind == "name?":
        if len(args) > 1:
            raise _usage(full)
        return Command(name=full, line=line, target=args[0].removeprefix("&") if args else "")
    if kind == "seq?":
        if len(args) > 1 or (args and not args[0].isdigit()):
            raise _usage(full)
        return Command(name=full, line=line, target=target, limit=int(args[0]) if args else -1)
    if args:
        raise _usage(full)
    return Command(name=full, line=line, target=target)


_PARSERS: dict[str, Callable[[str, str, str], Command]] = {
    "msg": _parse_msg,
    "history": _parse_history,
    "sub": _parse_users,
    "unsub": _parse_users,
    "to": _parse_users,
    "ping": _parse_bare,
    "help": _parse_bare,
    "quit": _parse_bare,
    "groups": _parse_bare,
    "group": _parse_space,
    "room": _parse_space,
    "g": _parse_space,
    "r": _parse_space,
}


_PARSERS.update(dict.fromkeys({k for k in USAGE if " " not in k} - _PARSERS.keys(), _parse_feature))


def default_device(hostname: str | None = None) -> str:
    """``chat-<hostname>``: stable per machine, so a later run resumes the same cursor."""
    host = socket.gethostname() if hostname is None else hostname
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", host).strip("-.")
    return ("chat-" + clean)[:_DEVICE_MAX] if clean else "chat"


def read_lines(fd: int) -> Iterator[str]:
    """Lines (without ``\\n``) read from ``fd`` with ``os.read`` until EOF; UTF-8, lenient."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    buffer = ""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            chunk = b""  # closed or unreadable stdin counts as EOF
        buffer += decoder.decode(chunk, final=not chunk)
        *lines, buffer = buffer.split("\n")
        yield from lines
        if not chunk:
            if buffer:
                yield buffer
            return


# ---------------------------------------------------------------------- output


def _code_name(code: int) -> str:
    try:
        return pb.ErrorCode.Name(code)
    except ValueError:
        return str(code)


class Printer:
    """Where results and events go: one line (or a few) per item, flushed at once."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err
        self.user = ""
        self.groups: dict[str, str] = {}  # group id -> name, filled by the runner (for display)

    def ready(self, session: pb.Session, url: str) -> None:
        raise NotImplementedError

    def event(self, event: ClientEvent) -> None:
        raise NotImplementedError

    def sent(self, to: str, text: str, sent: pb.Sent, client_msg_id: str) -> None:
        raise NotImplementedError

    def group_sent(self, group: str, text: str, sent: pb.Sent, client_msg_id: str) -> None:
        raise NotImplementedError

    def room_sent(self, room: str, text: str, sent: pb.Sent) -> None:
        raise NotImplementedError

    def group_page(self, page: pb.GroupPage) -> None:
        """The answer to ``/group sync``."""
        raise NotImplementedError

    def history(self, peer: str, messages: Sequence[pb.Message]) -> None:
        raise NotImplementedError

    def presences(self, presences: Sequence[pb.Presence]) -> None:
        raise NotImplementedError

    def unsubscribed(self, users: Sequence[str]) -> None:
        raise NotImplementedError

    def pong(self, server_time: int, rtt: float) -> None:
        raise NotImplementedError

    def peer(self, user: str) -> None:
        raise NotImplementedError

    def help(self) -> None:
        raise NotImplementedError

    def error(self, code: str, message: str, command: str = "") -> None:
        raise NotImplementedError

    def result(self, kind: str, fields: dict[str, Any]) -> None:
        """The answer to a feature command (``/recall``, ``/friend``, ``/roster``, ...)."""
        raise NotImplementedError

    def fatal(self, code: str, message: str) -> None:
        """The chat cannot go on (login failed, session ended)."""
        self.error(code, message)

    def _write(self, text: str, stream: TextIO | None = None) -> None:
        stream = self.out if stream is None else stream
        try:
            stream.write(text + "\n")
            stream.flush()
        except BrokenPipeError:
            _silence(stream)


def _silence(stream: TextIO) -> None:
    """The reader went away: send further output (and the exit-time flush) to /dev/null."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def _dict(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message)


class JsonPrinter(Printer):
    """One JSON object per line on stdout (``--json``)."""

    def _emit(self, obj: dict[str, Any]) -> None:
        self._write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))

    def ready(self, session: pb.Session, url: str) -> None:
        self.user = session.user
        self._emit({"event": "ready", "user": session.user, "device": session.device, "node": session.node,
                    "url": url})  # fmt: skip

    def event(self, event: ClientEvent) -> None:
        match event:
            case GroupMessageEvent(message=message):
                self._emit({"event": "groupMessage", "message": _dict(message)})
            case RoomMessageEvent(message=message):
                self._emit({"event": "roomMessage", "message": _dict(message)})
            case StreamEvent(frame=frame):
                self._emit({"event": "stream", "frame": _dict(frame)})
            case _:
                self._emit(describe_event(event))

    def sent(self, to: str, text: str, sent: pb.Sent, client_msg_id: str) -> None:
        self._emit({"event": "sent", "to": to, "messageId": str(sent.message_id),
                    "timestamp": str(sent.timestamp), "clientMsgId": client_msg_id})  # fmt: skip

    def group_sent(self, group: str, text: str, sent: pb.Sent, client_msg_id: str) -> None:
        self._emit({"event": "groupSent", "group": group, "messageId": str(sent.message_id), "seq": str(sent.seq),
                    "timestamp": str(sent.timestamp), "clientMsgId": client_msg_id})  # fmt: skip

    def room_sent(self, room: str, text: str, sent: pb.Sent) -> None:
        self._emit({"event": "roomSent", "room": room, "timestamp": str(sent.timestamp),
                    "deliveredDevices": sent.delivered_devices})  # fmt: skip

    def group_page(self, page: pb.GroupPage) -> None:
        self._emit({"event": "groupSync", "group": page.group, "messages": [_dict(m) for m in page.messages],
                    "more": page.more, "cursor": str(page.cursor), "lastSeq": str(page.last_seq),
                    "readSeq": str(page.read_seq)})  # fmt: skip

    def history(self, peer: str, messages: Sequence[pb.Message]) -> None:
        self._emit({"event": "history", "peer": peer, "messages": [_dict(m) for m in messages]})

    def presences(self, presences: Sequence[pb.Presence]) -> None:
        self._emit({"event": "presences", "presences": [_dict(p) for p in presences]})

    def unsubscribed(self, users: Sequence[str]) -> None:
        self._emit({"event": "unsubscribed", "users": list(users)})

    def pong(self, server_time: int, rtt: float) -> None:
        self._emit({"event": "pong", "serverTime": str(server_time), "rttMs": round(rtt * 1000, 3)})

    def peer(self, user: str) -> None:
        self._emit({"event": "peer", "peer": user})

    def help(self) -> None:
        self._emit({"event": "help", "commands": [u.split("   ")[0] for u in USAGE.values()]})

    def result(self, kind: str, fields: dict[str, Any]) -> None:
        self._emit({"event": kind, **fields})

    def error(self, code: str, message: str, command: str = "") -> None:
        obj = {"event": "error", "code": code, "message": message}
        if command:
            obj["command"] = command
        self._emit(obj)


def _printable(text: str) -> str:
    """Escape control characters so peer text cannot drive the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _clock(ms: int) -> str:
    when = datetime.datetime.fromtimestamp(ms / 1000) if ms else datetime.datetime.now()
    today = datetime.date.today()
    return when.strftime("%H:%M:%S" if when.date() == today else "%Y-%m-%d %H:%M:%S")


def _body(message: pb.Message) -> str:
    if message.WhichOneof("body") == "data":
        text = f"<{len(message.data)} bytes>"
    elif message.recalled:
        text = "(recalled)"
    else:
        text = _printable(message.text)
    if message.edited_at:
        text += "   (edited)"
    if message.burn:
        text += f"   (burn after reading: /burn {message.id})"
    return text if message.type == 1 else f"{text} [type {message.type}]"


_GROUP_NOTICES = range(pb.TYPE_GROUP_CREATED, pb.TYPE_ROOM_JOINED + 1)


class HumanPrinter(Printer):
    """Readable lines for people: ``[12:01:33] bob: hello``, ``[12:01:40] #team bob: hi``,
    ``* bob is online``; engine events (recall, edit, friend requests, ...) as sentences."""

    def _who(self, user: str) -> str:
        return "you" if user == self.user else user

    def _line(self, message: pb.Message, missed: bool = False) -> str:
        sender = str(getattr(message, "from"))
        suffix = "   (missed)" if missed else ""
        engine = self._engine(message, sender)
        if engine:
            return f"[{_clock(message.timestamp)}] * {engine}{suffix}"
        who = f"you -> {message.to}" if sender == self.user else sender
        return f"[{_clock(message.timestamp)}] {who}: {_body(message)}{suffix}"

    def _engine(self, message: pb.Message, sender: str) -> str:
        """A sentence for an engine event (types 3-10), or "" for a message to show as is."""
        by, ref, to = self._who(sender), message.ref, message.to
        other = to if sender == self.user else sender
        text = _printable(message.text)
        match message.type:
            case pb.TYPE_RECALL:
                return f"{by} recalled message {ref}"
            case pb.TYPE_EDIT:
                return f"{by} edited message {ref}: {text}"
            case pb.TYPE_BURN:
                return f"message {ref} was burnt after reading (read by {by})"
            case pb.TYPE_READ:
                if sender == self.user:
                    return f"you read the conversation with {to} up to message {ref}"
                return f"{sender} read your messages up to {ref}"
            case pb.TYPE_FRIEND_REQUEST:
                if sender == self.user:
                    return f"you asked {to} to be friends" + (f": {text}" if text else "")
                note = f' ("{text}")' if text else ""
                return f"{sender} asks to be your friend{note}: /accept {sender} or /reject {sender}"
            case pb.TYPE_FRIEND_ACCEPTED:
                return f"you and {other} are now friends"
            case pb.TYPE_FRIEND_REJECTED:
                if sender == self.user:
                    return f"you rejected {to}'s friend request"
                return f"{sender} rejected your friend request"
            case pb.TYPE_FRIEND_REMOVED:
                return f"{by} ended the friendship" + ("" if sender == self.user else " with you")
        return ""

    def _space(self, group: str) -> str:
        return "#" + _printable(self.groups.get(group) or group)

    def _group_line(self, message: pb.Message, missed: bool = False) -> str:
        sender = str(getattr(message, "from"))
        when = f"[{_clock(message.timestamp)}] {self._space(message.group)}"
        suffix = "   (missed)" if missed else ""
        if message.type in _GROUP_NOTICES:
            return f"{when} * {_printable(message.text)}{suffix}"
        who = self._who(sender)
        if message.to:
            who += f" -> {self._who(message.to)} (private)"
        return f"{when} {who}: {_body(message)}{suffix}"

    def ready(self, session: pb.Session, url: str) -> None:
        self.user = session.user
        self._write(f"* logged in as {session.user} (device {session.device}) at {url}; /help for commands")

    def event(self, event: ClientEvent) -> None:
        match event:
            case MessageEvent(message=message, synced=synced):
                if message.type == pb.TYPE_SYSTEM:
                    self._write(f"* system: {_printable(message.text)}")
                else:
                    self._write(self._line(message, missed=synced))
            case GroupMessageEvent(message=message):
                self._write(self._group_line(message))
            case RoomMessageEvent(message=message):
                self._write(self._room_line(message))
            case TypingEvent(notice=notice):
                if notice.active:
                    self._write(f"* {notice.user} is typing...")
            case PresenceEvent(presence=presence):
                self._write(_presence_line(presence))
            case DeliveredEvent(by=by, message_ids=ids):
                self._write(f"✓ delivered to {by}" + (f" ({len(ids)} messages)" if len(ids) > 1 else ""))
            case KickedEvent(reason=reason, message=text):
                self._write(f"* signed out by the node ({_kick_name(reason)}): {_printable(text)}")
            case ConnectedEvent(url=url):
                self._write(f"* connected to {url}")
            case DisconnectedEvent(code=code, reason=reason):
                detail = f"{code} {_printable(reason)}".strip()
                self._write(f"* disconnected ({detail}), reconnecting...")

    def _room_line(self, message: pb.Message) -> str:
        when = f"[{_clock(message.timestamp)}] &{_printable(message.room)}"
        if message.type == pb.TYPE_ROOM_JOINED:
            return f"{when} * {_printable(message.text)}"
        return f"{when} {self._who(str(getattr(message, 'from')))}: {_body(message)}"

    def group_sent(self, group: str, text: str, sent: pb.Sent, client_msg_id: str) -> None:
        self._write(f"[{_clock(sent.timestamp)}] {self._space(group)} you: {_printable(text)}")

    def room_sent(self, room: str, text: str, sent: pb.Sent) -> None:
        self._write(f"[{_clock(sent.timestamp)}] &{_printable(room)} you: {_printable(text)}")

    def group_page(self, page: pb.GroupPage) -> None:
        where = self._space(page.group)
        if not page.messages:
            self._write(f"* no new messages in {where} (last seq {page.last_seq}, read up to {page.read_seq})")
            return
        self._write(f"* {len(page.messages)} messages in {where}:")
        for message in page.messages:
            self._write("  " + self._group_line(message))
        if page.more:
            self._write(f"  (more: /group sync {page.group} {page.cursor})")

    def sent(self, to: str, text: str, sent: pb.Sent, client_msg_id: str) -> None:
        self._write(f"[{_clock(sent.timestamp)}] you -> {to}: {_printable(text)}")

    def history(self, peer: str, messages: Sequence[pb.Message]) -> None:
        if not messages:
            self._write(f"* no messages with {peer}")
            return
        self._write(f"* last {len(messages)} messages with {peer}:")
        for message in messages:
            self._write("  " + self._line(message))

    def presences(self, presences: Sequence[pb.Presence]) -> None:
        for presence in presences:
            self._write(_presence_line(presence))

    def unsubscribed(self, users: Sequence[str]) -> None:
        self._write("* unsubscribed from " + ", ".join(users))

    def pong(self, server_time: int, rtt: float) -> None:
        self._write(f"* pong from the node in {rtt * 1000:.1f} ms")

    def peer(self, user: str) -> None:
        self._write(f"* now talking to {user} (plain lines go to {user})")

    def help(self) -> None:
        self._write("commands:\n  " + "\n  ".join(USAGE.values()))
        self._write("  a line without a slash goes to the current peer (//text sends /text)")

    def result(self, kind: str, fields: dict[str, Any]) -> None:
        line = self._space_result(kind, fields)
        if line is None:
            detail = ", ".join(f"{k}={_printable(json.dumps(v, ensure_ascii=False))}" for k, v in fields.items())
            line = f"* {kind}" + (f": {detail}" if detail else "")
        self._write(line)

    def _space_result(self, kind: str, fields: dict[str, Any]) -> str | None:
        """Group and room answers as sentences; ``None`` for the generic ``* kind: k=v`` line."""
        group = self._space(fields.get("group", ""))
        room = "&" + _printable(fields.get("room", ""))
        info = fields.get("info", {})
        match kind:
            case "groupCreated" | "groupJoined":
                members = info.get("memberCount", 0)
                verb = "created" if kind == "groupCreated" else "joined"
                return f"* {verb} {group} (id {fields['group']}, {members} members)"
            case "groupApplied":
                return f"* asked to join {group}: an owner or admin has to approve"
            case "groupLeft":
                return f"* left {group}"
            case "unreadGroup":
                return f"* {group}: {fields['unread']} unread (/group sync {fields['group']})"
            case "groupInvited":
                return f"* invited {', '.join(fields['users'])} to {group}"
            case "groupRead":
                return f"* {group} read up to seq {fields['seq']}"
            case "groupMembers":
                lines = [f"* {len(fields['members'])} members of {group}:"]
                for entry in fields["members"]:
                    role = _ROLE_NAMES.get(entry.get("role", ""), "")
                    lines.append(f"  {_printable(entry['user'])}" + (f" ({role})" if role else ""))
                return "\n".join(lines)
            case "groups":
                if not fields["groups"]:
                    return "* you are in no group"
                lines = ["* your groups:"]
                for summary in fields["groups"]:
                    role = _ROLE_NAMES.get(summary.get("role", ""), "")
                    gone = ", dissolved" if summary.get("dissolved") else ""
                    extra = (f", {role}" if role else "") + gone
                    unread = summary.get("unread", 0)
                    lines.append(f"  {self._space(summary['group'])}  id {summary['group']}, {unread} unread{extra}")
                return "\n".join(lines)
            case "roomCreated" | "roomJoined" | "roomMembers":
                members = ", ".join(info.get("members", []))
                verb = {"roomCreated": "created room", "roomJoined": "joined room", "roomMembers": "room"}[kind]
                return f"* {verb} {room}: {info.get('memberCount', 0)} members ({_printable(members)})"
            case "roomLeft":
                return f"* left room {room}"
        return None

    def error(self, code: str, message: str, command: str = "") -> None:
        where = f"   ({_printable(command)})" if command else ""
        self._write(f"! {code}: {message}{where}")

    def fatal(self, code: str, message: str) -> None:
        self._write(f"timnode chat: {code}: {message}", self.err)


_ROLE_NAMES = {"GROUP_OWNER": "owner", "GROUP_ADMIN": "admin"}


def _presence_line(presence: pb.Presence) -> str:
    if not presence.online:
        return f"* {presence.user} is offline"
    devices = f" ({presence.devices} devices)" if presence.devices > 1 else ""
    return f"* {presence.user} is online{devices}"


def _kick_name(reason: int) -> str:
    try:
        return pb.KickReason.Name(reason)
    except ValueError:
        return str(reason)


# ---------------------------------------------------------------------- the client side


def _rotations(urls: Sequence[str]) -> Iterator[list[str]]:
    for i in range(len(urls)):
        yield [*urls[i:], *urls[:i]]


async def connect_client(args: argparse.Namespace, printer: Printer) -> Client | None:
    """Log in, trying each URL first in turn; ``None`` (error printed) when that fails."""
    failures: list[str] = []
    for urls in _rotations(args.urls):
        client = Client(urls, args.user, args.password, device=args.device, register=args.register)
        try:
            await asyncio.wait_for(client.connect(), _CONNECT_TIMEOUT)
            return client
        except ImError as exc:
            await client.close()
            printer.fatal(_code_name(exc.code), exc.message)
            return None
        except (OSError, WebSocketException, ConnectionLost, TimeoutError) as exc:
            await client.close()
            failures.append(f"{urls[0]}: {exc or type(exc).__name__}")
    printer.fatal("CONNECT_FAILED", "cannot reach the node: " + "; ".join(failures))
    return None


async def close_client(client: Client) -> None:
    """Let in-flight requests (delivery acks sent by the SDK's timer) finish, then close."""
    in_flight = list(client._pending.values())
    if in_flight:
        await asyncio.wait(in_flight, timeout=_CLOSE_TIMEOUT)
    try:
        await asyncio.wait_for(client.close(), _CLOSE_TIMEOUT)
    except (TimeoutError, ConnectionLost, WebSocketException, OSError) as exc:
        log.warning("closing the connection: %r", exc)


def start_stdin_reader(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
    """Feed stdin lines, then ``None`` at EOF, into ``queue`` from a daemon thread."""

    def feed(item: str | None) -> bool:
        try:
            asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()
        except BaseException:  # noqa: BLE001 - the loop closed: the chat is exiting
            return False
        return True

    def run() -> None:
        for line in read_lines(0):
            if not feed(line):
                return
        feed(None)

    threading.Thread(target=run, name="chat-stdin", daemon=True).start()


class ChatRunner:
    """Runs stdin commands against a logged-in client and prints its events."""

    def __init__(self, client: Client, printer: Printer, *, interactive: bool) -> None:
        self.client = client
        self.printer = printer
        self.interactive = interactive
        self.peer = ""
        self.lines: asyncio.Queue[str | None] = asyncio.Queue(_LINE_QUEUE)
        self.stopped = False  # the client gave up (kicked for good, auth failed on reconnect)
        self._closing = False
        self._current: asyncio.Task[None] | None = None

    async def run(self) -> int:
        """Until ``/quit``, EOF or the client stops; returns the exit code."""
        assert self.client.session is not None
        self.printer.ready(self.client.session, self.client.url)
        if self.interactive:
            await self._greet()
        pump = asyncio.create_task(self._pump_events())
        start_stdin_reader(asyncio.get_running_loop(), self.lines)
        try:
            await self._command_loop()
        finally:
            await self._shutdown(pump)
        if self.stopped:
            self.printer.fatal("CONNECTION_LOST", "the node ended the session; not reconnecting")
            return 1
        return 0

    async def _command_loop(self) -> None:
        while not self.stopped:
            line = await self.lines.get()
            if line is None or self.stopped:
                return
            try:
                command = parse_command(line)
            except CommandError as exc:
                self.printer.error(exc.code, str(exc), line.strip())
                continue
            if command is None:
                continue
            if command.name == "quit":
                return
            self._current = asyncio.create_task(self._execute(command))
            await asyncio.wait({self._current})

    async def _pump_events(self) -> None:
        async for event in self.client.events():
            if isinstance(event, GroupMessageEvent):
                sender = getattr(event.message, "from")
                if sender == self.client.user and event.message.from_device == self.client.device:
                    continue  # this device's own send or action: its answer was printed
                if self.interactive:
                    await self._learn_group(event.message.group)
            if not (self._closing and isinstance(event, DisconnectedEvent)):
                self.printer.event(event)
        if not self._closing:
            self.stopped = True
            if self._current is not None:
                self._current.cancel()
            with contextlib.suppress(asyncio.QueueFull):
                self.lines.put_nowait(None)

    async def _learn_group(self, group: str) -> None:
        """Look up the name of a group first seen in a push (interactive mode shows names)."""
        if group in self.printer.groups or self._closing:
            return
        with contextlib.suppress(ImError, ConnectionLost, WebSocketException, OSError, TimeoutError):
            self._remember(await asyncio.wait_for(self.client.group_info(group), _LOOKUP_TIMEOUT))

    async def _greet(self) -> None:
        """Interactive mode: learn your groups' names and show where unread messages wait."""
        with contextlib.suppress(ImError, ConnectionLost, WebSocketException, OSError, TimeoutError):
            summaries = await asyncio.wait_for(self.client.my_groups(), _LOOKUP_TIMEOUT)
            self._remember(*summaries)
            for summary in summaries:
                if summary.unread:
                    self.printer.result("unreadGroup", {"group": summary.group, "unread": summary.unread})

    async def _shutdown(self, pump: asyncio.Task[None]) -> None:
        self._closing = True
        if self._current is not None and not self._current.done():
            self._current.cancel()
        await close_client(self.client)
        try:
            await asyncio.wait_for(pump, _CLOSE_TIMEOUT)
        except TimeoutError:
            log.warning("events still queued at exit were not printed")

    async def _execute(self, command: Command) -> None:
        try:
            await asyncio.wait_for(self._dispatch(command), _COMMAND_TIMEOUT)
        except CommandError as exc:
            self.printer.error(exc.code, str(exc), command.line)
        except ImError as exc:
            self.printer.error(_code_name(exc.code), exc.message, command.line)
        except (ConnectionLost, WebSocketException) as exc:
            self.printer.error("CONNECTION_LOST", str(exc) or "connection lost", command.line)
        except TimeoutError:
            self.printer.error("TIMEOUT", f"no answer within {_COMMAND_TIMEOUT:g} s", command.line)

    async def _dispatch(self, command: Command) -> None:
        client, users = self.client, command.users
        match command.name:
            case "msg":
                await self._send(users[0], command.text)
            case "say":
                await self._say(self._current_peer(), command.text)
            case "to":
                self.peer = await self._target(users[0])
                self.printer.peer(self._peer_name(self.peer))
            case "history":
                page = await client.history(users[0], limit=command.limit)
                self.printer.history(users[0], page.messages)
            case "sub":
                self.printer.presences(await client.subscribe(users))
            case "unsub":
                await client.unsubscribe(users)
                self.printer.unsubscribed(users)
            case "ping":
                loop = asyncio.get_running_loop()
                start = loop.time()
                server_time = await client.ping()
                self.printer.pong(server_time, loop.time() - start)
            case "help":
                self.printer.help()
            case _ if command.name == "groups" or command.name.startswith(("group ", "room ")):
                await self._space_command(command)
            case _:
                await self._feature(command)

    async def _feature(self, command: Command) -> None:
        client, users, text = self.client, command.users, command.text
        match command.name:
            case "recall":
                sent = await client.recall(command.limit)
                self.printer.result("recalled", {"messageId": str(command.limit), "eventId": str(sent.message_id)})
            case "edit":
                sent = await client.edit(command.limit, text)
                self.printer.result("edited", {"messageId": str(command.limit), "eventId": str(sent.message_id)})
            case "burnmsg":
                client_msg_id = secrets.token_hex(12)
                sent = await client.send(users[0], text, client_msg_id=client_msg_id, burn=True)
                self.printer.sent(users[0], text, sent, client_msg_id)
            case "burn":
                sent = await client.burn(command.limit)
                self.printer.result("burnt", {"messageId": str(command.limit), "eventId": str(sent.message_id)})
            case "read":
                sent = await client.mark_read(users[0], int(text))
                self.printer.result("read", {"conversation": users[0], "upTo": text, "moved": not sent.duplicate})
            case "unread":
                counts = await client.unread()
                self.printer.result("unread", {u: c.count for u, c in counts.items()})
            case "typing":
                await client.typing(users[0], active=text.lower() != "off")
                self.printer.result("typing", {"to": users[0], "active": text.lower() != "off"})
            case "status":
                status = _STATUSES.get(users[0].lower())
                if status is None:
                    raise _usage("status")
                presence = await client.set_presence(status, text)
                self.printer.result("status", json_format.MessageToDict(presence))
            case "friend" | "accept" | "reject" | "unfriend":
                await client.friend(users[0], _FRIEND_ACTIONS[command.name], text)
                self.printer.result(command.name, {"user": users[0]})
            case "block" | "unblock":
                await (client.block if command.name == "block" else client.unblock)(users[0])
                self.printer.result(command.name + "ed", {"user": users[0]})
            case "roster":
                self.printer.result("roster", json_format.MessageToDict(await client.roster()))
            case "profile":
                self.printer.result("profile", json_format.MessageToDict(await client.get_profile(users[0])))
            case "nick":
                profile = await client.get_profile(client.user)
                profile.nickname = text
                self.printer.result("profile", json_format.MessageToDict(await client.set_profile(profile)))

    async def _space_command(self, command: Command) -> None:
        """``/groups``, ``/group ...``, ``/room ...`` (and ``/g``, ``/r``)."""
        client, printer, target = self.client, self.printer, command.target
        if command.name.startswith("group ") and command.name != "group create":
            target = await self._group(target)
        match command.name:
            case "groups":
                summaries = await client.my_groups()
                self._remember(*summaries)
                printer.result("groups", {"groups": [_dict(g) for g in summaries]})
            case "group create":
                info = await client.create_group(target, command.users)
                self._remember(info)
                printer.result("groupCreated", {"group": info.group, "info": _dict(info)})
            case "group join":
                await client.group_action(target, pb.GROUP_APPLY, text=command.text)
                try:
                    info = await client.group_info(target)
                except ImError:
                    info = pb.GroupInfo()
                if info.role:
                    self._remember(info)
                    printer.result("groupJoined", {"group": target, "info": _dict(info)})
                else:
                    printer.result("groupApplied", {"group": target})
            case "group leave":
                await client.group_action(target, pb.GROUP_LEAVE)
                printer.result("groupLeft", {"group": target})
            case "group invite":
                for user in command.users:
                    await client.group_action(target, pb.GROUP_INVITE, user)
                printer.result("groupInvited", {"group": target, "users": list(command.users)})
            case "group members":
                page = await client.group_members(target, limit=_HISTORY_MAX)
                printer.result("groupMembers", {"group": target, "members": [_dict(m) for m in page.members],
                                                "more": page.more})  # fmt: skip
            case "group send":
                await self._say("#" + target, command.text)
            case "group sync":
                after = command.limit if command.limit >= 0 else (await self._summary(target)).read_seq
                printer.group_page(await client.group_sync(target, after_seq=after, limit=_GROUP_SYNC_LIMIT))
            case "group read":
                seq = command.limit
                if seq < 0:
                    seq = (await self._summary(target)).last_seq or (await client.group_info(target)).last_seq
                await client.group_read(target, seq)
                printer.result("groupRead", {"group": target, "seq": str(seq)})
            case "room create" | "room join":
                create = command.name == "room create"
                room = await (client.create_room(target) if create else client.join_room(target))
                printer.result("roomCreated" if create else "roomJoined", {"room": room.room, "info": _dict(room)})
            case "room leave":
                await client.leave_room(target)
                printer.result("roomLeft", {"room": target})
            case "room members":
                room = await client.room_members(target)
                printer.result("roomMembers", {"room": room.room, "info": _dict(room)})
            case "room send":
                await self._say("&" + target, command.text)

    def _remember(self, *groups: pb.GroupInfo | pb.GroupSummary) -> None:
        for group in groups:
            if group.name:
                self.printer.groups[group.group] = group.name

    async def _summary(self, group: str) -> pb.GroupSummary:
        """Your summary of ``group`` (read and last seq); an empty one if it is not listed."""
        summaries = await self.client.my_groups()
        self._remember(*summaries)
        return next((s for s in summaries if s.group == group), pb.GroupSummary(group=group))

    async def _group(self, ref: str) -> str:
        """A group id for GROUP: an id as is, else the name of one of your groups."""
        if ref in self.printer.groups or _GROUP_ID.fullmatch(ref):
            return ref
        names = [g for g, name in self.printer.groups.items() if name == ref]
        if len(names) != 1:
            self._remember(*await self.client.my_groups())
            names = [g for g, name in self.printer.groups.items() if name == ref]
        if len(names) > 1:
            raise CommandError("USAGE", f"several of your groups are named {ref}: use an id ({', '.join(names)})")
        return names[0] if names else ref  # not one of yours: the node judges the id

    async def _target(self, ref: str) -> str:
        """``/to``: a user, ``#GROUP`` or ``&ROOM``, kept as ``bob``, ``#<group id>``, ``&room``."""
        if ref.startswith("#"):
            return "#" + await self._group(ref[1:])
        return ref

    def _peer_name(self, peer: str) -> str:
        if peer.startswith("#"):
            return "#" + self.printer.groups.get(peer[1:], peer[1:])
        return peer

    async def _say(self, peer: str, text: str) -> None:
        """Send to a user, ``#group`` or ``&room`` and make it the current peer."""
        if peer.startswith("&"):
            sent = await self.client.room_send(peer[1:], text)
            self.peer = peer
            self.printer.room_sent(peer[1:], text, sent)
        elif peer.startswith("#"):
            client_msg_id = secrets.token_hex(12)
            sent = await self.client.group_send(peer[1:], text, client_msg_id=client_msg_id)
            self.peer = peer
            self.printer.group_sent(peer[1:], text, sent, client_msg_id)
        else:
            await self._send(peer, text)

    def _current_peer(self) -> str:
        if not self.interactive:
            raise CommandError("USAGE", "plain lines are not sent in --json mode: use /msg USER TEXT")
        if not self.peer:
            raise CommandError("USAGE", "no current peer: use /msg USER TEXT or /to USER first")
        return self.peer

    async def _send(self, to: str, text: str) -> None:
        client_msg_id = secrets.token_hex(12)
        sent = await self.client.send(to, text, client_msg_id=client_msg_id, timeout=_COMMAND_TIMEOUT)
        self.peer = to
        self.printer.sent(to, text, sent, client_msg_id)


_GROUP_ID = re.compile(r"g[0-9a-f]{16}")
_GROUP_SYNC_LIMIT = 100
_LOOKUP_TIMEOUT = 5.0

_STATUSES = {"available": pb.AVAILABLE, "away": pb.AWAY, "busy": pb.BUSY, "invisible": pb.INVISIBLE}
_FRIEND_ACTIONS = {
    "friend": pb.FRIEND_REQUEST,
    "accept": pb.FRIEND_ACCEPT,
    "reject": pb.FRIEND_REJECT,
    "unfriend": pb.FRIEND_REMOVE,
}


# ---------------------------------------------------------------------- entry point


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="timnode chat",
        description="Chat through a timnode node: interactive, or scriptable with --json.",
        epilog="commands on stdin:\n  " + "\n  ".join(USAGE.values()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("url", metavar="URL", help="ws://HOST:PORT, or several comma-separated for failover")
    parser.add_argument("--user", required=True, help="account name")
    parser.add_argument("--password", help="password (default: $TIMNODE_PASSWORD, else asked on a terminal)")
    parser.add_argument("--register", action="store_true", help="create the account if it does not exist")
    parser.add_argument("--json", action="store_true", help="one JSON object per line on stdout, for scripts")
    parser.add_argument("--device", help="device id (default: chat-<hostname>, stable across runs)")
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse and complete the arguments (URL list, password, device)."""
    parser = _parser()
    args = parser.parse_args(list(argv))
    args.urls = [u.strip() for u in args.url.split(",") if u.strip()]
    if not args.urls:
        parser.error("URL is empty")
    args.password = args.password or os.environ.get("TIMNODE_PASSWORD", "")
    if not args.password:
        if args.json or not sys.stdin.isatty():
            parser.error("a password is required: --password or TIMNODE_PASSWORD")
        args.password = getpass.getpass(f"password for {args.user}: ")
    args.device = args.device or default_device()
    return args


async def run_chat(args: argparse.Namespace, printer: Printer) -> int:
    """Log in and chat; returns the exit code."""
    client = await connect_client(args, printer)
    if client is None:
        return 1
    return await ChatRunner(client, printer, interactive=not args.json).run()


def _make_printer(json_mode: bool) -> Printer:
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    return (JsonPrinter if json_mode else HumanPrinter)(sys.stdout, sys.stderr)


def main(argv: list[str]) -> int:
    """``timnode chat``; returns the process exit code."""
    from im.runner import run as run_async

    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    printer = _make_printer(args.json)
    try:
        return run_async(run_chat(args, printer)) or 0
    except KeyboardInterrupt:
        return _EXIT_INTERRUPTED
