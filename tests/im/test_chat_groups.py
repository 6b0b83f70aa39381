"""``timnode chat`` groups, rooms and engine events: printers directly, then real processes."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest

from im import client_pb2 as pb
from im.chat import CommandError, HumanPrinter, JsonPrinter, parse_command
from im.client import GroupMessageEvent, MessageEvent, RoomMessageEvent, StreamEvent
from tests.im.test_chat_cli import Chat, _join, chat  # noqa: F401 - the fixture

# ---------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("line", "name", "target", "users", "text", "limit"),
    [
        ("/g team hello  there", "group send", "team", (), "hello  there", 0),
        ("/g #team hi", "group send", "team", (), "hi", 0),
        ("/group send g0123456789abcdef hi", "group send", "g0123456789abcdef", (), "hi", 0),
        ("/group create team bob carol", "group create", "team", ("bob", "carol"), "", 0),
        ("/group join team let me in", "group join", "team", (), "let me in", 0),
        ("/group leave team", "group leave", "team", (), "", 0),
        ("/group invite team bob carol", "group invite", "team", ("bob", "carol"), "", 0),
        ("/group members team", "group members", "team", (), "", 0),
        ("/group sync team", "group sync", "team", (), "", -1),
        ("/group sync team 0", "group sync", "team", (), "", 0),
        ("/group read team 7", "group read", "team", (), "", 7),
        ("/groups", "groups", "", (), "", 0),
        ("/room create", "room create", "", (), "", 0),
        ("/room create &live", "room create", "live", (), "", 0),
        ("/room join live", "room join", "live", (), "", 0),
        ("/room leave live", "room leave", "live", (), "", 0),
        ("/room members live", "room members", "live", (), "", 0),
        ("/r &live hi all", "room send", "live", (), "hi all", 0),
    ],
)
def test_parse_group_and_room_commands(
    line: str, name: str, target: str, users: tuple[str, ...], text: str, limit: int
) -> None:
    command = parse_command(line)
    assert command is not None
    assert (command.name, command.target, command.users, command.text, command.limit) == (
        name, target, users, text, limit,
    )  # fmt: skip


@pytest.mark.parametrize(
    "line",
    ["/group", "/group frob x", "/group create", "/g team", "/g", "/group invite team", "/group sync team x",
     "/group leave team extra", "/room create a b", "/room join", "/r live", "/room"],
)  # fmt: skip
def test_parse_group_and_room_errors(line: str) -> None:
    with pytest.raises(CommandError) as info:
        parse_command(line)
    assert info.value.code == "USAGE"


def _message(kind: int, text: str = "", sender: str = "bob", to: str = "alice", **fields: Any) -> pb.Message:
    message = pb.Message(id=9, to=to, type=kind, text=text, timestamp=1_700_000_000_000, **fields)
    setattr(message, "from", sender)
    return message


def _human() -> tuple[HumanPrinter, io.StringIO]:
    out = io.StringIO()
    printer = HumanPrinter(out, io.StringIO())
    printer.user = "alice"
    printer.groups["g0123456789abcdef"] = "team"
    return printer, out


def test_human_printer_engine_events_read_as_sentences() -> None:
    printer, out = _human()
    for message in (
        _message(pb.TYPE_SYSTEM, "maintenance at noon", sender=""),
        _message(pb.TYPE_RECALL, ref=5),
        _message(pb.TYPE_EDIT, "fixed", ref=5),
        _message(pb.TYPE_BURN, ref=6),
        _message(pb.TYPE_READ, ref=8),
        _message(pb.TYPE_READ, sender="alice", to="bob", ref=8),
        _message(pb.TYPE_FRIEND_REQUEST, "hi"),
        _message(pb.TYPE_FRIEND_ACCEPTED),
        _message(pb.TYPE_FRIEND_REJECTED),
        _message(pb.TYPE_FRIEND_REMOVED, sender="alice", to="bob"),
        _message(1, "secret", burn=True),
    ):
        printer.event(MessageEvent(message, synced=False))
    lines = [line.split("] ", 1)[-1] for line in out.getvalue().splitlines()]
    assert lines == [
        "* system: maintenance at noon",
        "* bob recalled message 5",
        "* bob edited message 5: fixed",
        "* message 6 was burnt after reading (read by bob)",
        "* bob read your messages up to 8",
        "* you read the conversation with bob up to message 8",
        '* bob asks to be your friend ("hi"): /accept bob or /reject bob',
        "* you and bob are now friends",
        "* bob rejected your friend request",
        "* you ended the friendship",
        "bob: secret   (burn after reading: /burn 9)",
    ]
    assert "[type" not in out.getvalue()


def test_human_printer_group_and_room_lines() -> None:
    printer, out = _human()
    group = "g0123456789abcdef"
    printer.event(GroupMessageEvent(_message(1, "hello team", to="", group=group, seq=3)))
    printer.event(GroupMessageEvent(_message(1, "psst", to="alice", group=group, seq=4)))
    printer.event(GroupMessageEvent(_message(pb.TYPE_MEMBER_JOINED, "carol joined", to="", group=group, seq=5)))
    printer.event(GroupMessageEvent(_message(1, "who?", to="", group="gffffffffffffffff", seq=1)))
    printer.event(RoomMessageEvent(_message(1, "live!", to="", room="live")))
    printer.event(RoomMessageEvent(_message(pb.TYPE_ROOM_JOINED, "bob joined", to="", room="live")))
    printer.event(StreamEvent(pb.StreamFrame()))
    printer.group_sent(group, "me too", pb.Sent(seq=6, timestamp=1_700_000_000_000), "c1")
    lines = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == [
        "#team bob: hello team",
        "#team bob -> you (private): psst",
        "#team * carol joined",
        "#gffffffffffffffff bob: who?",
        "&live bob: live!",
        "&live * bob joined",
        "#team you: me too",
    ]


def test_json_printer_group_room_and_stream_events() -> None:
    out = io.StringIO()
    printer = JsonPrinter(out, io.StringIO())
    printer.event(GroupMessageEvent(_message(1, "hi", to="", group="g1", seq=3)))
    printer.event(RoomMessageEvent(_message(1, "yo", to="", room="live")))
    printer.event(StreamEvent(pb.StreamFrame(seq=2, data=b"ab")))
    printer.group_sent("g1", "hi", pb.Sent(message_id=5, seq=3, timestamp=7), "c1")
    objs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [o["event"] for o in objs] == ["groupMessage", "roomMessage", "stream", "groupSent"]
    assert objs[0]["message"]["group"] == "g1" and objs[0]["message"]["seq"] == "3"
    assert objs[1]["message"]["room"] == "live"
    assert objs[2]["frame"]["seq"] == "2"
    assert objs[3] == {"event": "groupSent", "group": "g1", "messageId": "5", "seq": "3", "timestamp": "7",
                       "clientMsgId": "c1"}  # fmt: skip


# ---------------------------------------------------------------------- processes


@pytest.mark.slow
def test_json_group_lifecycle(chat: Callable[..., Chat]) -> None:  # noqa: F811
    bob, carol = _join(chat, "bob"), _join(chat, "carol")
    alice = _join(chat, "alice")
    alice.send("/group create team bob")
    created = alice.wait_event("groupCreated")
    group = created["group"]
    assert created["info"]["name"] == "team" and created["info"]["memberCount"] == 2
    alice.send("/g team hello team")  # by name
    sent = alice.wait_event("groupSent", group=group)
    message = bob.wait_event("groupMessage")  # the creation notice is bob's first group message
    while message["message"].get("text") != "hello team":
        message = bob.wait_event("groupMessage")
    assert (message["message"]["group"], message["message"]["seq"]) == (group, sent["seq"])

    alice.send("/group invite team carol")
    assert alice.wait_event("groupInvited")["users"] == ["carol"]
    assert carol.wait_event("groupMessage")["message"]["type"] == pb.TYPE_MEMBER_JOINED
    carol.send(f"/group members {group}")
    members = carol.wait_event("groupMembers", group=group)["members"]
    assert [(m["user"], m["role"]) for m in members] == [
        ("alice", "GROUP_OWNER"), ("bob", "GROUP_MEMBER"), ("carol", "GROUP_MEMBER")
    ]  # fmt: skip
    carol.send("/groups")
    [summary] = carol.wait_event("groups")["groups"]
    assert (summary["group"], summary["name"]) == (group, "team")

    bob.send("/group sync team 0")
    page = bob.wait_event("groupSync", group=group)
    assert "hello team" in [m.get("text") for m in page["messages"]]
    bob.send("/group read team")
    assert bob.wait_event("groupRead", group=group)["seq"] == page["lastSeq"]
    bob.send("/group sync team")  # from the read position: nothing new
    assert bob.wait_event("groupSync", group=group)["messages"] == []

    bob.send("/group leave team")
    bob.wait_event("groupLeft", group=group)
    bob.send("/g team still here?")
    error = bob.wait_event("error")
    assert error["code"] in ("NOT_A_MEMBER", "NOT_FOUND") and error["command"] == "/g team still here?"
    bob.send(f"/group join {group}")
    assert bob.wait_event("groupJoined", group=group)["info"]["role"] == "GROUP_MEMBER"
    echoed = [o for o in map(json.loads, bob.seen) if o["event"] == "groupMessage" and o["message"]["from"] == "bob"]
    assert not echoed  # this device's own sends and actions are answered, not echoed
    for process in (alice, bob, carol):
        assert process.finish()[0] == 0


@pytest.mark.slow
def test_json_rooms(chat: Callable[..., Chat]) -> None:  # noqa: F811
    alice, bob = _join(chat, "alice"), _join(chat, "bob")
    alice.send("/room create live")
    created = alice.wait_event("roomCreated", room="live")
    assert created["info"]["owner"] == "alice"
    bob.send("/room join &live")
    assert sorted(bob.wait_event("roomJoined", room="live")["info"]["members"]) == ["alice", "bob"]
    alice.wait_event("roomMessage")  # bob joined
    bob.send("/r live hi everyone")
    assert bob.wait_event("roomSent", room="live")["deliveredDevices"] >= 1
    message = alice.wait_event("roomMessage")["message"]
    while message.get("text") != "hi everyone":
        message = alice.wait_event("roomMessage")["message"]
    assert (message["from"], message["room"]) == ("bob", "live")
    alice.send("/room members live")
    assert alice.wait_event("roomMembers", room="live")["info"]["memberCount"] == 2
    bob.send("/room leave live")
    bob.wait_event("roomLeft", room="live")
    left = alice.wait_event("roomMessage")["message"]
    assert left["ext"] == {"user": "bob", "left": "1"}
    bob.send("/r live anyone?")
    assert bob.wait_event("error")["code"] in ("NOT_A_MEMBER", "NOT_FOUND", "FORBIDDEN")
    for process in (alice, bob):
        assert process.finish()[0] == 0


@pytest.mark.slow
def test_interactive_groups_rooms_and_events(chat: Callable[..., Chat]) -> None:  # noqa: F811
    bob = _join(chat, "bob")
    alice = chat("alice", "--register")
    alice.wait_line(lambda line: line.startswith("* logged in as alice"))
    alice.send("/group create team bob")
    alice.wait_line(lambda line: line.startswith("* created #team (id g"))
    group = bob.wait_event("groupMessage")["message"]["group"]
    bob.send(f"/g {group} hi from bob")
    alice.wait_line(lambda line: line.endswith("] #team bob: hi from bob"))
    alice.send("/to #team")
    alice.wait_line(lambda line: line == "* now talking to #team (plain lines go to #team)")
    alice.send("plain line to the group")
    alice.wait_line(lambda line: line.endswith("] #team you: plain line to the group"))
    assert bob.wait_event("groupMessage")["message"]["text"] == "plain line to the group"
    alice.send("/groups")
    alice.wait_line(lambda line: line.startswith(f"  #team  id {group}, ") and line.endswith("owner"))

    alice.send("/room create live")
    alice.wait_line(lambda line: line == "* created room &live: 1 members (alice)")
    bob.send("/room join live")
    alice.wait_line(lambda line: line.endswith("] &live * bob joined"))
    bob.send("/r live ping")
    alice.wait_line(lambda line: line.endswith("] &live bob: ping"))

    bob.send("/msg alice oops")
    message_id = bob.wait_event("sent", to="alice")["messageId"]
    alice.wait_line(lambda line: line.endswith("] bob: oops"))
    bob.send(f"/edit {message_id} fixed")
    alice.wait_line(lambda line: line.endswith(f"] * bob edited message {message_id}: fixed"))
    bob.send(f"/recall {message_id}")
    alice.wait_line(lambda line: line.endswith(f"] * bob recalled message {message_id}"))
    bob.send("/friend alice hello")
    alice.wait_line(lambda line: line.endswith('] * bob asks to be your friend ("hello"): /accept bob or /reject bob'))
    alice.send("/accept bob")
    alice.wait_line(lambda line: line.endswith("] * you and bob are now friends") or line == '* accept: user="bob"')
    assert not [line for line in alice.seen if "[type " in line]
    alice.send("/quit")
    assert alice.finish()[0] == 0
    assert bob.finish()[0] == 0
