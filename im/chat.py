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
    /help               the commands               /quit            leave (so does EOF)

In interactive mode a line without a slash goes to the current peer (``//x`` sends ``/x``).
Commands run one at a time, in input order, so messages leave in the order typed and
EOF right after a ``/msg`` still waits for the node's ``Sent``.

With ``--json`` stdout carries one JSON object per line and nothing else (logs go to
stderr): SDK events via :func:`im.client.describe_event`, plus ``ready`` (logged in),
``sent``, ``history``, ``presences``, ``unsubscribed``, ``pong``, ``peer``, ``help`` and
``error``. An error's ``code`` is a wire ``ErrorCode`` name (``NOT_FOUND``,
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
    KickedEvent,
    MessageEvent,
    PresenceEvent,
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


_PARSERS: dict[str, Callable[[str, str, str], Command]] = {
    "msg": _parse_msg,
    "history": _parse_history,
    "sub": _parse_users,
    "unsub": _parse_users,
    "to": _parse_users,
    "ping": _parse_bare,
    "help": _parse_bare,
    "quit": _parse_bare,
}


_PARSERS.update(dict.fromkeys(USAGE.keys() - _PARSERS.keys() - {"help", "quit"}, _parse_feature))


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

    def ready(self, session: pb.Session, url: str) -> None:
        raise NotImplementedError

    def event(self, event: ClientEvent) -> None:
        raise NotImplementedError

    def sent(self, to: str, text: str, sent: pb.Sent, client_msg_id: str) -> None:
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
        self._emit(describe_event(event))

    def sent(self, to: str, text: str, sent: pb.Sent, client_msg_id: str) -> None:
        self._emit({"event": "sent", "to": to, "messageId": str(sent.message_id),
                    "timestamp": str(sent.timestamp), "clientMsgId": client_msg_id})  # fmt: skip

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
    else:
        text = _printable(message.text)
    return text if message.type == 1 else f"{text} [type {message.type}]"


class HumanPrinter(Printer):
    """Readable lines for people: ``[12:01:33] bob: hello``, ``* bob is online``."""

    def _line(self, message: pb.Message, missed: bool = False) -> str:
        sender = str(getattr(message, "from"))
        who = f"you -> {message.to}" if sender == self.user else sender
        suffix = "   (missed)" if missed else ""
        return f"[{_clock(message.timestamp)}] {who}: {_body(message)}{suffix}"

    def ready(self, session: pb.Session, url: str) -> None:
        self.user = session.user
        self._write(f"* logged in as {session.user} (device {session.device}) at {url}; /help for commands")

    def event(self, event: ClientEvent) -> None:
        match event:
            case MessageEvent(message=message, synced=synced):
                self._write(self._line(message, missed=synced))
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
        detail = ", ".join(f"{k}={_printable(json.dumps(v, ensure_ascii=False))}" for k, v in fields.items())
        self._write(f"* {kind}" + (f": {detail}" if detail else ""))

    def error(self, code: str, message: str, command: str = "") -> None:
        where = f"   ({_printable(command)})" if command else ""
        self._write(f"! {code}: {message}{where}")

    def fatal(self, code: str, message: str) -> None:
        self._write(f"timnode chat: {code}: {message}", self.err)


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
            if not (self._closing and isinstance(event, DisconnectedEvent)):
                self.printer.event(event)
        if not self._closing:
            self.stopped = True
            if self._current is not None:
                self._current.cancel()
            with contextlib.suppress(asyncio.QueueFull):
                self.lines.put_nowait(None)

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
                await self._send(self._current_peer(), command.text)
            case "to":
                self.peer = users[0]
                self.printer.peer(self.peer)
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
