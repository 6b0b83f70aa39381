"""Capture a real client-protocol transcript for docs/protocol.md.

Starts local nodes (127.0.0.1, ephemeral port, --no-mdns, throwaway data directories),
talks to them with raw JSON text frames on the ``timnode.v1.json`` subprotocol (not the
SDK) and writes every frame to ``docs/examples/transcript.json``. Node D covers the
message and user features (§4), groups (§15), rooms (§16), stream data (§17) and chunked
payloads (§18); its ops are named like the doc's operations (``recall``, ``groupSend:private``):

    [{"op": ..., "conn": ..., "direction": "client->node" | "node->client", "frame": ...}, ...]

``frame`` is the decoded JSON object (or the raw text for the malformed-JSON example).
Connection closes are recorded as ``{"direction": "node->client", "close": {...}}`` and
HTTP-level answers as ``{"direction": "node->client", "http": {...}}``.

Run from the repository root:  python3 docs/examples/capture.py [NODE...]
(each entry also names its ``node``; with NODEs only those are captured again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = pathlib.Path(__file__).resolve().parent / "transcript.json"
SUBPROTOCOL = "timnode.v1.json"
PUSH_WAIT = 3.0

transcript: list[dict[str, Any]] = []
current_op = ""
current_node = ""


def record(conn: str, direction: str, **entry: Any) -> None:
    transcript.append({"node": current_node, "op": current_op, "conn": conn, "direction": direction, **entry})


class Node:
    """One ``python3 -m timnode`` process in a temporary data directory."""

    def __init__(self, tmp: pathlib.Path, name: str, *flags: str) -> None:
        self.data_dir = tmp / name
        self.data_dir.mkdir()
        self.log = open(self.data_dir / "node.log", "wb")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        cmd = [sys.executable, "-m", "timnode", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir),
               "--no-mdns", "--log-level", "warning", *flags]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        ready = self.data_dir / "node.json"
        deadline = time.monotonic() + 30
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"node {name} did not start: see {self.data_dir / 'node.log'}")
            time.sleep(0.05)
        self.url = json.loads(ready.read_text())["url"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Conn:
    """One client connection speaking raw JSON text frames."""

    def __init__(self, name: str, ws: ClientConnection) -> None:
        self.name = name
        self.ws = ws
        self.next_id = 0
        self.responses: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.pushes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.closed: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self.reader = asyncio.create_task(self._read())
        self.quiet = False  # do not record (used for the flood)

    @classmethod
    async def open(cls, name: str, url: str) -> Conn:
        ws = await connect(url, subprotocols=[SUBPROTOCOL], compression=None)  # type: ignore[list-item]
        return cls(name, ws)

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                frame = json.loads(text)
                request_id = int(frame.get("id", "0"))
                if request_id and request_id in self.responses:
                    if not self.quiet:
                        record(self.name, "node->client", frame=frame)
                    self.responses.pop(request_id).set_result(frame)
                else:
                    if not self.quiet or "kicked" in frame:
                        record(self.name, "node->client", frame=frame)
                    self.pushes.put_nowait(frame)
        except ConnectionClosed:
            pass
        code, reason = self.ws.close_code or 1006, self.ws.close_reason or ""
        record(self.name, "node->client", close={"code": code, "reason": reason})
        self.closed.set_result((code, reason))

    async def request(self, op: str, body: dict[str, Any] | None = None, *, wait: bool = True) -> dict[str, Any]:
        self.next_id += 1
        frame = {"id": str(self.next_id), op: body or {}}
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.responses[self.next_id] = future
        if not self.quiet:
            record(self.name, "client->node", frame=frame)
        await self.ws.send(json.dumps(frame))
        if not wait:
            return {}
        return await asyncio.wait_for(future, 10)

    async def send_raw(self, text: str, *, parsed: bool = True) -> dict[str, Any]:
        """Send text as is; the answer is expected on id 0 (undecodable frames) or the frame's id."""
        record(self.name, "client->node", frame=json.loads(text) if parsed else text)
        await self.ws.send(text)
        if parsed and int(json.loads(text).get("id", "0")):
            request_id = int(json.loads(text)["id"])
            self.next_id = max(self.next_id, request_id)
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self.responses[request_id] = future
            return await asyncio.wait_for(future, 10)
        return await self.push("error")

    async def push(self, kind: str) -> dict[str, Any]:
        """The next frame with id 0 carrying ``kind`` (earlier pushes of other kinds are skipped)."""
        deadline = time.monotonic() + PUSH_WAIT
        while True:
            frame = await asyncio.wait_for(self.pushes.get(), max(0.01, deadline - time.monotonic()))
            if kind in frame:
                return frame

    async def wait_closed(self) -> tuple[int, str]:
        return await asyncio.wait_for(asyncio.shield(self.closed), 10)

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(Exception):
            await self.reader


def op(name: str) -> None:
    global current_op
    current_op = name


def ok(frame: dict[str, Any], kind: str) -> dict[str, Any]:
    if kind not in frame:
        raise AssertionError(f"expected {kind}, got {frame}")
    return frame


async def main_node(url: str) -> None:
    """Node A: defaults (SQLite store, kick-oldest, 5 devices)."""
    op("handshake")
    try:
        async with connect(url, subprotocols=["chat"]):  # type: ignore[list-item]
            raise AssertionError("a wrong subprotocol was accepted")
    except InvalidStatus as exc:
        record(
            "anon",
            "node->client",
            http={"status": exc.response.status_code, "body": exc.response.body.decode().strip()},
        )
    with urllib.request.urlopen("http" + url[2:] + "/healthz", timeout=5) as resp:
        health = json.loads(resp.read())
    record("http", "node->client", http={"status": 200, "path": "/healthz", "keys": sorted(health)})

    anon = await Conn.open("anon", url)
    op("ping")
    ok(await anon.request("ping"), "pong")
    op("error:unauthenticated")
    ok(await anon.request("send", {"to": "bob", "text": "hi"}), "error")
    op("error:malformed-json")
    ok(await anon.send_raw('{"id": "3", "ping": {', parsed=False), "error")
    op("error:unknown-operation")
    ok(await anon.send_raw('{"id": "4", "teleport": {"to": "mars"}}'), "error")
    op("error:request-id-zero")
    ok(await anon.send_raw('{"ping": {}}'), "error")
    await anon.close()

    op("register")
    bob = await Conn.open("bob@laptop", url)
    ok(
        await bob.request("register", {"user": "bob", "password": "correct horse battery", "device": "laptop"}),
        "session",
    )
    op("subscribe")
    ok(await bob.request("subscribe", {"users": ["alice", "nobody"]}), "presences")

    op("register")
    phone = await Conn.open("alice@phone", url)
    alice_session = ok(
        await phone.request("register", {"user": "alice", "password": "wonderland-2025", "device": "phone"}), "session"
    )
    await bob.push("presence")  # bob watches alice: online

    op("error:conflict")
    other = await Conn.open("anon", url)
    ok(await other.request("register", {"user": "alice", "password": "another-password", "device": "x"}), "error")
    op("error:bad-request")
    ok(await other.request("register", {"user": "no spaces allowed", "password": "short"}), "error")
    op("error:auth-failed")
    ok(await other.request("login", {"user": "alice", "password": "wrong-password", "device": "tablet"}), "error")
    await other.close()

    op("login")
    tablet = await Conn.open("alice@tablet", url)
    tablet_session = ok(
        await tablet.request("login", {"user": "alice", "password": "wonderland-2025", "device": "tablet"}), "session"
    )
    op("error:already-logged-in")
    ok(await tablet.request("login", {"user": "alice", "password": "wonderland-2025"}), "error")

    op("send")
    first = ok(
        await phone.request("send", {"to": "bob", "type": 1, "text": "Hi Bob!", "clientMsgId": "6f1c2a9e-0001"}), "sent"
    )
    await bob.push("message")
    await tablet.push("message")
    op("send:retry")
    ok(await phone.request("send", {"to": "bob", "type": 1, "text": "Hi Bob!", "clientMsgId": "6f1c2a9e-0001"}), "sent")
    op("send:custom")
    ok(
        await phone.request(
            "send",
            {
                "to": "bob",
                "type": 32,
                "data": "eyJsYXQiOjQ4Ljg1OCwibG9uIjoyLjI5NH0=",
                "ext": {"mime": "application/json", "kind": "location"},
                "clientMsgId": "6f1c2a9e-0002",
            },
        ),
        "sent",
    )
    await bob.push("message")
    await tablet.push("message")
    op("send:reply")
    reply = ok(await bob.request("send", {"to": "alice", "text": "Hello Alice", "clientMsgId": "b-0001"}), "sent")
    await phone.push("message")
    await tablet.push("message")
    op("error:not-found")
    ok(await phone.request("send", {"to": "mallory", "text": "psst"}), "error")
    op("error:too-large")
    ok(await phone.request("send", {"to": "bob", "text": "x" * 16385}), "error")

    op("deliveryAck")
    second = [e["frame"] for e in transcript if e["op"] == "send:custom" and "sent" in e["frame"]][0]
    ok(await bob.request("deliveryAck", {"ids": [first["sent"]["messageId"], second["sent"]["messageId"]]}), "ok")
    await phone.push("delivered")
    await tablet.push("delivered")

    op("sync")
    page = ok(await bob.request("sync", {"after": "0", "limit": 2}), "page")["page"]
    page = ok(await bob.request("sync", {"after": page["cursor"], "limit": 2}), "page")["page"]
    assert not page.get("more")

    op("history")
    page = ok(await tablet.request("history", {"peer": "bob", "limit": 2}), "page")["page"]
    ok(await tablet.request("history", {"peer": "bob", "before": page["cursor"], "limit": 2}), "page")
    del reply

    op("logout")
    ok(await tablet.request("logout", wait=False) or {"ok": {}}, "ok")
    await tablet.wait_closed()
    await tablet.reader

    op("resume:revoked")
    again = await Conn.open("alice@tablet", url)
    ok(await again.request("resume", {"token": tablet_session["session"]["token"]}), "error")
    await again.close()

    op("resume")
    phone2 = await Conn.open("alice@phone (new connection)", url)
    ok(await phone2.request("resume", {"token": alice_session["session"]["token"], "device": "phone"}), "session")
    await phone.wait_closed()  # REPLACED: Kicked push, then close 4001
    with contextlib.suppress(TimeoutError):  # alice "online" again: may be pushed (docs/protocol.md, Presence)
        await bob.push("presence")

    op("presence:offline")
    await phone2.close()
    await phone2.reader
    await bob.push("presence")

    op("unsubscribe")
    ok(await bob.request("unsubscribe", {"users": ["alice", "nobody"]}), "ok")
    await bob.close()


async def limits_node(url: str) -> None:
    """Node B: --max-devices 1 --rate-limit 2 --rate-burst 3 --auth-timeout 1."""
    op("kick:auth-timeout")
    idle = await Conn.open("anon", url)
    await idle.wait_closed()

    op("kick:device-limit")
    first = await Conn.open("carol@desk", url)
    ok(await first.request("register", {"user": "carol", "password": "carol-password", "device": "desk"}), "session")
    second = await Conn.open("carol@laptop", url)
    ok(await second.request("login", {"user": "carol", "password": "carol-password", "device": "laptop"}), "session")
    await first.wait_closed()

    op("error:rate-limited")
    await asyncio.sleep(1.5)  # refill the bucket
    for _ in range(4):
        await second.request("ping", wait=False)
    deadline = time.monotonic() + 5
    while sum(1 for e in transcript if e["op"] == current_op and e["direction"] == "node->client") < 4:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)

    op("kick:flood")
    second.quiet = True
    with contextlib.suppress(ConnectionClosed):
        for _ in range(400):
            await second.request("ping", wait=False)
    await second.wait_closed()


async def no_store_node(url: str) -> None:
    """Node C: --no-store --max-devices 1 --device-policy refuse."""
    op("no-store:register")
    frank = await Conn.open("frank@phone", url)
    ok(await frank.request("register", {"user": "frank", "password": "frank-password", "device": "phone"}), "session")
    await frank.close()
    erin = await Conn.open("erin@phone", url)
    ok(await erin.request("register", {"user": "erin", "password": "erin-password", "device": "phone"}), "session")
    op("error:recipient-offline")
    ok(await erin.request("send", {"to": "frank", "text": "are you there?", "clientMsgId": "e-1"}), "error")
    op("no-store:sync")
    ok(await erin.request("sync", {"after": "0"}), "page")
    op("error:device-limit")
    second = await Conn.open("erin@tablet", url)
    ok(await second.request("login", {"user": "erin", "password": "erin-password", "device": "tablet"}), "error")
    await second.close()
    await erin.close()


async def _session(url: str, user: str, password: str, device: str) -> Conn:
    conn = await Conn.open(f"{user}@{device}", url)
    ok(await conn.request("register", {"user": user, "password": password, "device": device}), "session")
    return conn


def _id(frame: dict[str, Any], body: str = "sent") -> str:
    return str(frame[body]["messageId"])


async def features_node(url: str) -> tuple[Conn, Conn, Conn]:
    """Node D, message and user features (docs/protocol.md §4): --recall-window 3."""
    op("features:register")
    alice = await _session(url, "alice", "wonderland-2025", "phone")
    bob = await _session(url, "bob", "correct horse battery", "laptop")
    carol = await _session(url, "carol", "password-1", "tablet")

    op("edit")
    first = ok(await alice.request("send", {"to": "bob", "text": "See you at 8", "clientMsgId": "c-101"}), "sent")
    await bob.push("message")
    ok(await alice.request("edit", {"messageId": _id(first), "text": "See you at 9"}), "sent")
    await bob.push("message")
    op("edit:history")
    ok(await bob.request("history", {"peer": "alice", "limit": 1}), "page")

    op("recall")
    ok(await alice.request("recall", {"messageId": _id(first)}), "sent")
    await bob.push("message")

    op("burn")
    secret = ok(
        await alice.request(
            "send", {"to": "bob", "text": "door code 4711", "clientMsgId": "c-102", "burn": True, "burnSeconds": 10}
        ),
        "sent",
    )
    await bob.push("message")
    ok(await bob.request("burn", {"messageId": _id(secret)}), "sent")
    await alice.push("message")

    op("read")
    seen = ok(await alice.request("send", {"to": "bob", "text": "Lunch?", "clientMsgId": "c-103"}), "sent")
    await bob.push("message")
    ok(await bob.request("read", {"conversation": "alice", "upTo": _id(seen)}), "sent")
    await alice.push("message")
    op("read:unread")
    last = ok(await alice.request("send", {"to": "bob", "text": "12:30?", "clientMsgId": "c-104"}), "sent")
    await bob.push("message")
    ok(await bob.request("sync", {"after": _id(last), "unread": True}), "page")

    op("typing")
    ok(await alice.request("typing", {"to": "bob", "active": True}), "ok")
    await bob.push("typing")

    op("friend")
    request = {"user": "bob", "action": "FRIEND_REQUEST", "text": "Hi Bob, it's Alice from the climbing club"}
    ok(await alice.request("friend", request), "ok")
    await bob.push("message")
    op("friend:accept")
    ok(await bob.request("friend", {"user": "alice", "action": "FRIEND_ACCEPT"}), "ok")
    await alice.push("message")

    op("roster")
    ok(await alice.request("roster"), "roster")

    op("setPresence")
    presence = {"status": "AWAY", "text": "climbing", "fields": {"until": "18:00"}}
    ok(await alice.request("setPresence", presence), "presences")
    await bob.push("presence")

    op("block")
    ok(await bob.request("block", {"user": "carol"}), "ok")
    op("block:send")
    ok(await carol.request("send", {"to": "bob", "text": "hello?"}), "error")
    op("unblock")
    ok(await bob.request("unblock", {"user": "carol"}), "ok")

    op("setProfile")
    profile = {"nickname": "Alice L.", "avatarUrl": "https://example.org/alice.png", "fields": {"city": "Lyon"}}
    ok(await alice.request("setProfile", {"profile": profile}), "profile")
    op("getProfile")
    ok(await bob.request("getProfile", {"user": "alice"}), "profile")

    op("changePassword")
    change = {"oldPassword": "password-1", "newPassword": "a-much-longer-password"}
    ok(await carol.request("changePassword", change), "session")  # a fresh token; the old ones are revoked

    op("recall:expired")
    late = ok(await alice.request("send", {"to": "bob", "text": "typo", "clientMsgId": "c-105"}), "sent")
    await bob.push("message")
    await asyncio.sleep(4)  # past --recall-window 3
    ok(await alice.request("recall", {"messageId": _id(late)}), "error")
    return alice, bob, carol


async def spaces_node(url: str) -> None:
    """Node D, continued: groups (§15), rooms (§16), stream data (§17), chunks (§18)."""
    alice, bob, carol = await features_node(url)

    op("groupCreate")
    create = {"name": "Team", "topic": "launch", "joinPolicy": "JOIN_APPROVAL", "members": ["bob"]}
    group = ok(await alice.request("groupCreate", create), "group")["group"]["group"]
    await bob.push("groupMessage")
    op("groupInfo")
    ok(await alice.request("groupInfo", {"group": group}), "group")
    op("groupModify")
    ok(await alice.request("groupModify", {"group": group, "topic": "launch day", "muted": False}), "group")
    await bob.push("groupMessage")

    op("groupMember:apply")
    ok(await carol.request("groupMember", {"group": group, "action": "GROUP_APPLY", "text": "hi, I'm carol"}), "ok")
    await alice.push("groupMessage")
    op("groupMembers:applications")
    ok(await alice.request("groupMembers", {"group": group, "applications": True}), "groupMembers")
    op("groupMember:approve")
    ok(await alice.request("groupMember", {"group": group, "action": "GROUP_APPROVE", "user": "carol"}), "ok")
    await bob.push("groupMessage")
    op("groupMembers")
    ok(await alice.request("groupMembers", {"group": group, "limit": 2}), "groupMembers")
    op("groupMember:mute")
    mute = {"group": group, "action": "GROUP_MUTE", "user": "carol", "seconds": 600}
    ok(await alice.request("groupMember", mute), "ok")
    await bob.push("groupMessage")
    op("groupMember:muted-send")
    ok(await carol.request("groupSend", {"group": group, "text": "hello?"}), "error")

    op("groupSend")
    ok(await bob.request("groupSend", {"group": group, "text": "hello team", "clientMsgId": "c-1"}), "sent")
    await alice.push("groupMessage")
    op("groupSend:private")
    ok(await bob.request("groupSend", {"group": group, "to": "alice", "text": "just for you"}), "sent")
    await alice.push("groupMessage")

    op("groupSync")
    ok(await carol.request("groupSync", {"group": group, "limit": 50}), "groupPage")
    op("groupRead")
    ok(await carol.request("groupRead", {"group": group, "seq": "3"}), "ok")
    op("myGroups")
    ok(await carol.request("myGroups"), "groups")

    op("groupMember:kick")
    ok(await alice.request("groupMember", {"group": group, "action": "GROUP_KICK", "user": "carol"}), "ok")
    await bob.push("groupMessage")
    op("groupMember:kicked-send")
    ok(await carol.request("groupSend", {"group": group, "text": "x"}), "error")

    op("groupDissolve")
    ok(await alice.request("groupDissolve", {"group": group}), "ok")
    await bob.push("groupMessage")
    op("groupDissolve:send")
    ok(await bob.request("groupSend", {"group": group, "text": "x"}), "error")

    op("roomCreate")
    room = {"room": "launch-live", "publish": "PUBLISH_LISTED", "publishers": ["bob"]}
    ok(await alice.request("roomCreate", room), "room")
    op("roomJoin")
    ok(await bob.request("roomJoin", {"room": "launch-live"}), "room")
    await alice.push("roomMessage")
    op("roomSend")
    ok(await alice.request("roomSend", {"room": "launch-live", "text": "we are live"}), "sent")
    await bob.push("roomMessage")
    op("roomMembers")
    ok(await alice.request("roomMembers", {"room": "launch-live"}), "room")
    op("roomPublishers")
    ok(await alice.request("roomPublishers", {"room": "launch-live", "add": ["carol"], "remove": ["bob"]}), "room")

    op("streamSend")
    frame = {"room": "launch-live", "seq": "1", "data": "AAABsw==", "channel": 2}
    ok(await alice.request("streamSend", frame), "sent")
    await bob.push("stream")
    op("streamSend:forbidden")
    ok(await bob.request("streamSend", {"room": "launch-live", "seq": "1", "data": "eA=="}), "error")
    op("roomLeave")
    ok(await bob.request("roomLeave", {"room": "launch-live"}), "ok")
    await alice.push("roomMessage")

    op("chunks")
    start = {"upload": "up-1", "size": "11", "text": True, "send": {"to": "bob", "clientMsgId": "c-big"}}
    ok(await alice.request("chunkStart", start), "chunkAccepted")
    ok(await alice.request("chunk", {"upload": "up-1", "data": "aGVsbG8g"}), "chunkAccepted")
    ok(await alice.request("chunk", {"upload": "up-1", "offset": "6", "data": "d29ybGQ="}), "chunkAccepted")
    ok(await alice.request("chunkEnd", {"upload": "up-1"}), "sent")
    await bob.push("message")
    op("chunks:too-large")
    ok(await alice.request("chunkStart", {"upload": "up-2", "size": "10000000", "send": {"to": "bob"}}), "error")
    op("chunks:unknown")
    ok(await alice.request("chunk", {"upload": "up-9", "data": "eA=="}), "error")
    for conn in (alice, bob, carol):
        await conn.close()


NODES: dict[str, tuple[tuple[str, ...], Callable[[str], Awaitable[None]]]] = {
    "a": ((), main_node),
    "b": (("--max-devices", "1", "--rate-limit", "2", "--rate-burst", "3", "--auth-timeout", "1"), limits_node),
    "c": (("--no-store", "--max-devices", "1", "--device-policy", "refuse"), no_store_node),
    "d": (("--recall-window", "3", "--max-payload-bytes", "100000"), spaces_node),
}


async def amain(tmp: pathlib.Path, names: list[str]) -> None:
    global current_node
    for name in names:
        flags, scenario = NODES[name]
        node = Node(tmp, name, *flags)
        current_node = name
        try:
            await scenario(node.url)
        finally:
            node.stop()


def main(argv: list[str]) -> None:
    """``capture.py`` captures every node; ``capture.py d`` re-captures node D only and keeps
    the other nodes' entries of the existing transcript (so examples copied from them stay)."""
    names = argv or list(NODES)
    unknown = set(names) - NODES.keys()
    if unknown:
        raise SystemExit(f"unknown node(s) {sorted(unknown)}: choose from {sorted(NODES)}")
    with tempfile.TemporaryDirectory(prefix="timnode-capture-") as tmp:
        asyncio.run(amain(pathlib.Path(tmp), names))
    if argv and OUT.exists():
        kept = [e for e in json.loads(OUT.read_text()) if e.get("node") not in names]
        order = list(NODES)
        merged = sorted(kept + transcript, key=lambda e: order.index(e.get("node", "a")))  # stable
        transcript[:] = merged
    OUT.write_text(json.dumps(transcript, indent=1, ensure_ascii=False) + "\n")
    sys.stdout.write(f"{len(transcript)} entries -> {OUT}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
