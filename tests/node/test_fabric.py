"""The peer fabric with real node processes on 127.0.0.1 (--no-mdns): issue 3's acceptance tests."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from node.identity import Identity
from node.link import SUBPROTOCOL
from node.netkey import generate
from testnet.process import NodeProcess
from timnode.cli import main as cli_main

pytestmark = pytest.mark.slow

Factory = Callable[..., NodeProcess]
FAST = ("--no-store", "--keepalive", "1", "--keepalive-timeout", "1", "--reconnect-max", "1", "--pex-interval", "1")


def peers(node: NodeProcess) -> dict[str, Any]:
    with urllib.request.urlopen(node.http_url + "/peers", timeout=5) as reply:
        doc: dict[str, Any] = json.loads(reply.read())
    return doc


def linked(node: NodeProcess) -> set[str]:
    return {p["peer_id"] for p in peers(node)["peers"]}


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until ``condition()``; return the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)
    return time.monotonic() - start


def addr(node: NodeProcess) -> str:
    return node.url.removeprefix("ws://")


def log_has(node: NodeProcess, text: str) -> bool:
    return text in node.log_path.read_text(errors="replace")


def test_five_nodes_from_one_bootstrap_become_a_full_mesh(
    node_factory: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    boot = node_factory(*FAST, name="boot")
    nodes = [boot] + [node_factory(*FAST, "--bootstrap", addr(boot), name=f"n{i}") for i in range(4)]
    ids = {str(n.info["peer_id"]) for n in nodes}
    assert all(n.info["node"] == n.info["peer_id"] for n in nodes)
    wait_for(lambda: all(linked(n) == ids - {str(n.info["peer_id"])} for n in nodes), 15, "full mesh")
    with urllib.request.urlopen(boot.http_url + "/healthz", timeout=5) as reply:
        assert json.loads(reply.read())["peers"] == 4
    doc = peers(nodes[1])
    assert doc["peer_id"] == nodes[1].info["peer_id"] and doc["addresses"] == [nodes[1].url]
    assert {p["transport"] for p in doc["peers"]} == {"ws"}
    wait_for(lambda: all(p["rtt_ms"] is not None for p in peers(nodes[1])["peers"]), 5, "rtt measured")
    assert cli_main(["peers", "--node", addr(boot)]) == 0
    table = capsys.readouterr().out
    assert "4 linked" in table and all(str(n.info["peer_id"]) in table for n in nodes[1:])
    assert cli_main(["peers", "--node", addr(boot), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["peers"]) == 4


def test_open_network_warns(node_factory: Factory) -> None:
    node = node_factory("--no-store")
    assert log_has(node, "OPEN default network; ANYONE can join")


def test_wrong_network_key_is_refused_with_a_log_line_on_both_sides(
    node_factory: Factory, tmp_path: pathlib.Path
) -> None:
    key_file = tmp_path / "net.key"
    key_file.write_text(generate() + "\n")
    key_file.chmod(0o600)
    a = node_factory(*FAST, "--network-key", str(key_file), name="a")
    b = node_factory(*FAST, "--network-key", generate(), "--bootstrap", addr(a), name="b")
    c = node_factory(*FAST, "--network-key", str(key_file), "--bootstrap", addr(a), name="c")  # same key: joins
    wait_for(lambda: log_has(a, "network key mismatch") and log_has(b, "network key mismatch"), 10, "both log")
    wait_for(lambda: linked(a) == {c.info["peer_id"]}, 10, "c links")
    assert linked(b) == set()
    assert not log_has(a, generate()[:5] + "x")  # (sanity) and the key never appears in logs:
    assert key_file.read_text().strip() not in a.log_path.read_text()


def test_bootstrap_with_a_wrong_expected_peer_id_is_refused(node_factory: Factory) -> None:
    a = node_factory(*FAST, name="a")
    impostor_id = Identity.generate().peer_id
    b = node_factory(*FAST, "--bootstrap", f"{addr(a)}/p2p/{impostor_id}", name="b")
    wait_for(lambda: log_has(b, "refused") and log_has(b, str(impostor_id)), 10, "MITM refused")
    time.sleep(0.5)
    assert linked(a) == set() and linked(b) == set()


def test_killed_node_is_noticed_then_relinked_after_restart(node_factory: Factory) -> None:
    a = node_factory(*FAST, name="a")
    b = node_factory(*FAST, "--bootstrap", addr(a), name="b")
    c = node_factory(*FAST, "--bootstrap", addr(a), name="c")
    b_id = str(b.info["peer_id"])
    wait_for(lambda: b_id in linked(a) and b_id in linked(c), 10, "mesh")
    b.kill()
    took = wait_for(lambda: b_id not in linked(a) and b_id not in linked(c), 2 + 1 + 1, "kill noticed")
    b.listen = addr(b)  # restart on the same port with the same identity
    b.start()
    assert b.info["peer_id"] == b_id
    wait_for(lambda: b_id in linked(a) and b_id in linked(c), 10, "relinked")
    assert took < 4


def test_frozen_node_is_declared_dead_by_keepalive(node_factory: Factory) -> None:
    a = node_factory(*FAST, name="a")
    b = node_factory(*FAST, "--bootstrap", addr(a), name="b")
    b_id = str(b.info["peer_id"])
    wait_for(lambda: b_id in linked(a), 10, "linked")
    os.kill(b.pid, signal.SIGSTOP)  # TCP stays up: only the keepalive can tell
    try:
        took = wait_for(lambda: b_id not in linked(a), 1 + 1 + 2, "keepalive timeout")
    finally:
        os.kill(b.pid, signal.SIGCONT)
    assert took >= 0.5 and log_has(a, "keepalive timeout")
    wait_for(lambda: b_id in linked(a), 10, "relinked after SIGCONT")


def test_graceful_shutdown_is_noticed_at_once(node_factory: Factory) -> None:
    slow = ("--no-store", "--keepalive", "60", "--keepalive-timeout", "60")
    a = node_factory(*slow, name="a")
    b = node_factory(*slow, "--bootstrap", addr(a), name="b")
    b_id = str(b.info["peer_id"])
    wait_for(lambda: b_id in linked(a), 10, "linked")
    b.stop()
    took = wait_for(lambda: b_id not in linked(a), 2, "goodbye noticed")
    assert took < 1.0
    assert log_has(a, "closed by peer: node shutting down")


async def _bad_peer(url: str, *messages: bytes | str, wait: float = 3.0) -> str:
    """Send ``messages`` on the peer subprotocol; return how the node closed the WebSocket."""
    async with connect(url, subprotocols=[Subprotocol(SUBPROTOCOL)], max_size=None) as ws:
        for m in messages:
            await ws.send(m)
        try:
            async with asyncio.timeout(wait):
                while True:
                    await ws.recv()
        except ConnectionClosed as exc:
            return f"{exc.rcvd.code if exc.rcvd else None} {exc.rcvd.reason if exc.rcvd else ''}"
    return "still open"


def test_bad_input_closes_the_link_with_a_logged_reason_and_the_node_keeps_serving(
    node_factory: Factory,
) -> None:
    a = node_factory(*FAST, "--handshake-timeout", "1", name="a")
    cases = {
        "garbage": [b"\x07garbage that is no handshake message"],
        "truncated": [b"\x00" + bytes(10)],
        "text": ["hello"],
        "oversized": [bytes(200_000)],
        "slow": [],
    }
    closes = {name: asyncio.run(_bad_peer(a.url, *msgs)) for name, msgs in cases.items()}
    assert all(c != "still open" for c in closes.values()), closes
    assert closes["oversized"].startswith("1009")
    assert closes["slow"].startswith("4006")  # 4000 + AbortCode.TIMEOUT
    log = a.log_path.read_text()
    assert log.count("refused:") >= 4 and "handshake timed out" in log
    assert "message too big" in log or "1009" in log
    # the node keeps serving: HTTP, and a real peer links
    assert json.loads(urllib.request.urlopen(a.http_url + "/healthz", timeout=5).read())["status"] == "ok"
    b = node_factory(*FAST, "--bootstrap", addr(a), name="b")
    wait_for(lambda: linked(a) == {b.info["peer_id"]}, 10, "a good peer still links")
