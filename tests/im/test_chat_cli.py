"""``timnode chat``: the pure parts directly, the CLI as real processes against a real node."""

from __future__ import annotations

import io
import json
import os
import pathlib
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from im import client_pb2 as pb
from im.chat import (
    CommandError,
    HumanPrinter,
    JsonPrinter,
    default_device,
    parse_command,
    read_lines,
)
from im.client import DeliveredEvent, MessageEvent, PresenceEvent
from testnet.process import NodeProcess

ROOT = pathlib.Path(__file__).resolve().parents[2]
WAIT = 20.0
PASSWORD = "correct-horse-battery"


# ---------------------------------------------------------------------- pure parts


def test_parse_msg_keeps_text_verbatim() -> None:
    command = parse_command("/msg bob  hello   world \n")
    assert command is not None
    assert (command.name, command.users, command.text) == ("msg", ("bob",), "hello   world ")


def test_parse_plain_line_and_slash_escape() -> None:
    plain, escaped = parse_command("hi there"), parse_command("//me waves")
    assert plain is not None and (plain.name, plain.text) == ("say", "hi there")
    assert escaped is not None and (escaped.name, escaped.text) == ("say", "/me waves")
    assert parse_command("   \r\n") is None


@pytest.mark.parametrize(
    ("line", "name", "users", "limit"),
    [
        ("/history bob", "history", ("bob",), 20),
        ("/history bob 5", "history", ("bob",), 5),
        ("/sub bob carol", "sub", ("bob", "carol"), 0),
        ("/unsub bob", "unsub", ("bob",), 0),
        ("/to carol", "to", ("carol",), 0),
        ("/PING", "ping", (), 0),
        ("/quit", "quit", (), 0),
        ("/help", "help", (), 0),
    ],
)
def test_parse_commands(line: str, name: str, users: tuple[str, ...], limit: int) -> None:
    command = parse_command(line)
    assert command is not None
    assert (command.name, command.users, command.limit, command.line) == (name, users, limit, line)


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("/frobnicate", "UNKNOWN_COMMAND"),
        ("/msg bob", "USAGE"),
        ("/msg", "USAGE"),
        ("/history", "USAGE"),
        ("/history bob 0", "USAGE"),
        ("/history bob many", "USAGE"),
        ("/sub", "USAGE"),
        ("/to a b", "USAGE"),
    ],
)
def test_parse_errors(line: str, code: str) -> None:
    with pytest.raises(CommandError) as info:
        parse_command(line)
    assert info.value.code == code


def test_default_device_is_stable_and_valid() -> None:
    assert default_device("laptop.local") == "chat-laptop.local"
    assert default_device("my host!") == "chat-my-host"
    assert default_device("") == "chat"
    assert len(default_device("x" * 200)) == 64
    assert default_device() == default_device()


def test_read_lines_handles_split_utf8_and_missing_newline() -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, "/msg bob h\u00e9\n\nlast".encode())
    os.close(write_fd)
    try:
        assert list(read_lines(read_fd)) == ["/msg bob h\u00e9", "", "last"]
    finally:
        os.close(read_fd)


def _message(text: str, sender: str = "bob", to: str = "alice") -> pb.Message:
    message = pb.Message(id=7, to=to, type=1, text=text, timestamp=1_700_000_000_000)
    setattr(message, "from", sender)
    return message


def test_json_printer_writes_one_object_per_line() -> None:
    out = io.StringIO()
    printer = JsonPrinter(out, io.StringIO())
    printer.event(MessageEvent(_message("hi"), synced=True))
    printer.sent("bob", "hi", pb.Sent(message_id=9, timestamp=5), "c1")
    printer.error("NOT_FOUND", "no such user", "/msg x hi")
    objs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert objs[0]["event"] == "message" and objs[0]["synced"] is True and objs[0]["message"]["text"] == "hi"
    assert objs[1] == {"event": "sent", "to": "bob", "messageId": "9", "timestamp": "5", "clientMsgId": "c1"}
    assert objs[2] == {"event": "error", "code": "NOT_FOUND", "message": "no such user", "command": "/msg x hi"}


def test_human_printer_lines_and_escaping() -> None:
    out = io.StringIO()
    printer = HumanPrinter(out, io.StringIO())
    printer.user = "alice"
    printer.event(MessageEvent(_message("hi\x1b[2J"), synced=False))
    printer.event(MessageEvent(_message("from my phone", sender="alice", to="bob"), synced=True))
    printer.event(PresenceEvent(pb.Presence(user="bob", online=True, devices=1)))
    printer.event(DeliveredEvent("bob", (7,)))
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("] bob: hi\\x1b[2J")
    assert "] you -> bob: from my phone" in lines[1] and lines[1].endswith("(missed)")
    assert lines[2:] == ["* bob is online", "✓ delivered to bob"]


# ---------------------------------------------------------------------- processes


class Chat:
    """One ``python -m timnode chat`` process; stdout lines are collected by a thread."""

    def __init__(self, url: str, user: str, *args: str, password: str = PASSWORD) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.pop("TIMNODE_PASSWORD", None)
        command = [sys.executable, "-m", "timnode", "chat", url, "--user", user, "--password", password, *args]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, text=True, encoding="utf-8",
        )  # fmt: skip
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def next_line(self, deadline: float) -> str:
        try:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"timed out; output so far: {self.seen}") from None
        if line is None:
            raise AssertionError(f"chat exited; output: {self.seen}; stderr: {self.stderr()}")
        self.seen.append(line)
        return line

    def wait_line(self, predicate: Callable[[str], bool], timeout: float = WAIT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.next_line(deadline)
            if predicate(line):
                return line

    def wait_event(self, name: str, timeout: float = WAIT, **fields: Any) -> dict[str, Any]:
        def matches(line: str) -> bool:
            obj = json.loads(line)
            return bool(obj["event"] == name and all(obj.get(k) == v for k, v in fields.items()))

        return dict(json.loads(self.wait_line(matches, timeout)))

    def finish(self, timeout: float = WAIT) -> tuple[int, list[str]]:
        """Close stdin (EOF), wait for the exit; returns the code and all stdout lines."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        code = self.proc.wait(timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.next_line(deadline)
            except AssertionError:
                return code, self.seen

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(running)"
        return self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def chat(node: NodeProcess) -> Any:
    """Start chat processes against ``node``; all are killed at teardown."""
    started: list[Chat] = []

    def start(user: str, *args: str, password: str = PASSWORD) -> Chat:
        process = Chat(node.url, user, *args, password=password)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


def _events(lines: list[str], name: str) -> list[dict[str, Any]]:
    return [obj for obj in map(json.loads, lines) if obj["event"] == name]


def _offline(user: str) -> Callable[[str], bool]:
    def matches(line: str) -> bool:
        obj = json.loads(line)
        presence = obj.get("presence", {})
        return bool(obj["event"] == "presence" and presence.get("user") == user and not presence.get("online"))

    return matches


def _join(chat: Callable[..., Chat], user: str, *args: str) -> Chat:
    process = chat(user, "--json", "--register", *args)
    process.wait_event("ready", user=user)
    return process


@pytest.mark.slow
def test_message_sent_and_delivered(chat: Callable[..., Chat]) -> None:
    alice, bob = _join(chat, "alice"), _join(chat, "bob")
    alice.send("/msg bob hello")
    sent = alice.wait_event("sent", to="bob")
    message = bob.wait_event("message")["message"]
    assert (message["from"], message["to"], message["text"]) == ("alice", "bob", "hello")
    assert message["id"] == sent["messageId"]
    delivered = alice.wait_event("delivered", by="bob")
    assert sent["messageId"] in delivered["messageIds"]
    assert alice.finish()[0] == 0
    assert bob.finish()[0] == 0


@pytest.mark.slow
def test_offline_messages_arrive_once_on_return(chat: Callable[..., Chat]) -> None:
    bob = _join(chat, "bob")
    alice = _join(chat, "alice")
    alice.send("/sub bob")
    alice.wait_event("presences")
    assert bob.finish()[0] == 0
    alice.wait_line(_offline("bob"))
    for text in ("one", "two", "three"):
        alice.send(f"/msg bob {text}")
    sent_ids = [alice.wait_event("sent", to="bob")["messageId"] for _ in range(3)]

    bob = chat("bob", "--json")
    code, lines = bob.finish()
    messages = _events(lines, "message")
    assert code == 0
    assert [m["message"]["text"] for m in messages] == ["one", "two", "three"]
    assert [m["message"]["id"] for m in messages] == sent_ids
    assert all(m["synced"] for m in messages)
    alice.wait_line(_offline("bob"))  # the node has ended bob's session (and stored its cursor)

    code, lines = chat("bob", "--json").finish()
    assert code == 0
    assert _events(lines, "ready") and not _events(lines, "message")


@pytest.mark.slow
def test_wrong_password_exits_1_with_auth_failed(chat: Callable[..., Chat]) -> None:
    _join(chat, "alice").finish()
    code, lines = chat("alice", "--json", password="not-the-password").finish()
    assert code == 1
    assert [json.loads(line) for line in lines] == [
        {"event": "error", "code": "AUTH_FAILED", "message": "wrong user name or password"}
    ]


@pytest.mark.slow
def test_bad_commands_are_reported_and_chat_goes_on(chat: Callable[..., Chat]) -> None:
    alice = _join(chat, "alice")
    alice.send("/frobnicate now")
    assert alice.wait_event("error")["code"] == "UNKNOWN_COMMAND"
    alice.send("/msg nosuchuser hi")
    error = alice.wait_event("error")
    assert (error["code"], error["command"]) == ("NOT_FOUND", "/msg nosuchuser hi")
    alice.send("/ping")
    alice.wait_event("pong")
    assert alice.proc.poll() is None
    assert alice.finish()[0] == 0


@pytest.mark.slow
def test_eof_right_after_msg_still_sends(chat: Callable[..., Chat]) -> None:
    bob = _join(chat, "bob")
    alice = chat("alice", "--json", "--register")
    alice.send("/msg bob quick")
    code, lines = alice.finish()
    assert code == 0 and len(_events(lines, "sent")) == 1
    assert bob.wait_event("message")["message"]["text"] == "quick"


@pytest.mark.slow
def test_interactive_mode_is_readable(chat: Callable[..., Chat]) -> None:
    bob = _join(chat, "bob")
    alice = chat("alice", "--register")
    alice.wait_line(lambda line: line.startswith("* logged in as alice"))
    alice.send("/msg bob hello there")
    alice.wait_line(lambda line: line.endswith("] you -> bob: hello there"))
    alice.send("and again")
    alice.wait_line(lambda line: line.endswith("] you -> bob: and again"))
    alice.wait_line(lambda line: line.startswith("✓ delivered to bob"))
    bob.send("/msg alice hi alice")
    alice.wait_line(lambda line: line.endswith("] bob: hi alice"))
    alice.send("/quit")
    assert alice.finish()[0] == 0
    texts = [obj["message"]["text"] for obj in _events(bob.finish()[1], "message")]
    assert texts == ["hello there", "and again"]


@pytest.mark.slow
def test_ctrl_c_exits_without_traceback(chat: Callable[..., Chat]) -> None:
    alice = _join(chat, "alice")
    alice.proc.send_signal(signal.SIGINT)
    code = alice.proc.wait(WAIT)
    assert code == 130
    assert "Traceback" not in alice.stderr()


@pytest.mark.slow
def test_failover_url_list_and_password_from_env(node: NodeProcess, chat: Callable[..., Chat]) -> None:
    _join(chat, "alice").finish()
    env = dict(os.environ, TIMNODE_PASSWORD=PASSWORD, PYTHONPATH=str(ROOT))
    urls = f"ws://127.0.0.1:1,{node.url}"  # port 1 refuses: the chat moves on to the node
    done = subprocess.run(
        [sys.executable, "-m", "timnode", "chat", urls, "--user", "alice", "--json"],
        input="/ping\n", capture_output=True, text=True, env=env, timeout=WAIT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = [json.loads(line)["event"] for line in done.stdout.splitlines()]
    assert events[0] == "ready" and "pong" in events
