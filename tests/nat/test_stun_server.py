"""The node's STUN responder against clients nobody here wrote (aioice, coturn's turnutils_stunclient),
and reachability / mapping on loopback. Everything binds 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from aioice import stun as aioice_stun

from nat.stun import decode_message, encode_message
from nat.stun_server import StunEndpoint, start_stun_endpoint
from testnet.process import NodeProcess


class _AioiceClient(asyncio.DatagramProtocol):
    """aioice's own STUN transaction machinery (``aioice.stun.Transaction``) on a 127.0.0.1 socket."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.transactions: dict[bytes, aioice_stun.Transaction] = {}

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        message = aioice_stun.parse_message(data)
        tx = self.transactions.get(message.transaction_id)
        if tx is not None:
            tx.response_received(message, addr)

    def send_stun(self, message: aioice_stun.Message, addr: tuple[str, int]) -> None:
        self.transport.sendto(bytes(message), addr)

    async def request(self, addr: tuple[str, int]) -> aioice_stun.Message:
        req = aioice_stun.Message(message_method=aioice_stun.Method.BINDING, message_class=aioice_stun.Class.REQUEST)
        tx = aioice_stun.Transaction(req, addr, self)
        self.transactions[req.transaction_id] = tx
        response, _ = await tx.run()
        return response


async def test_aioice_client_gets_xor_mapped_address() -> None:
    server = await start_stun_endpoint("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(_AioiceClient, local_addr=("127.0.0.1", 0))
    try:
        response = await asyncio.wait_for(client.request(server.local_address), 5)
        assert response.message_class == aioice_stun.Class.RESPONSE
        assert response.attributes["XOR-MAPPED-ADDRESS"] == transport.get_extra_info("sockname")[:2]
        assert "FINGERPRINT" in response.attributes
        assert server.stats.requests == 1
    finally:
        transport.close()
        server.close()


async def test_own_client_and_bad_input() -> None:
    server = await start_stun_endpoint("127.0.0.1", 0)
    client = await start_stun_endpoint("127.0.0.1", 0)
    try:
        assert await client.query(server.local_address) == client.local_address
        # junk, a response nobody asked for, an unknown comprehension-required attribute (-> 420)
        assert client.transport is not None
        client.transport.sendto(b"\x00\x01garbage", server.local_address)
        client.transport.sendto(bytes(20), server.local_address)
        await asyncio.sleep(0.05)
        assert server.stats.dropped == 2
    finally:
        client.close()
        server.close()


async def test_unknown_required_attribute_gets_420() -> None:
    from nat.stun import StunMessage

    server = await start_stun_endpoint("127.0.0.1", 0)
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    class Catch(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            got.set_result(data)

    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(Catch, local_addr=("127.0.0.1", 0))
    try:
        request = StunMessage(transaction_id=b"x" * 12, unknown=((0x7777, b"abcd"),))
        transport.sendto(encode_message(request), server.local_address)
        reply = decode_message(await asyncio.wait_for(got, 5))
        assert reply.error_code is not None and reply.error_code[0] == 420
        assert dict(reply.unknown)[0x000A] == b"\x77\x77"
    finally:
        transport.close()
        server.close()


def _peers(node: NodeProcess) -> dict[str, Any]:
    with urllib.request.urlopen(node.http_url + "/peers", timeout=5) as reply:
        doc: dict[str, Any] = json.loads(reply.read())
    return doc


@pytest.mark.slow
def test_node_answers_turnutils_stunclient_and_learns_reachability(
    node_factory: Callable[..., NodeProcess],
) -> None:
    """A node answers STUN at its port number; three loopback nodes dial each other back: public."""
    a = node_factory("--no-store", name="a")
    port = int(a.url.rsplit(":", 1)[1])
    others = [node_factory("--no-store", "--bootstrap", f"127.0.0.1:{port}", name=n) for n in "bc"]
    if shutil.which("turnutils_stunclient"):
        out = subprocess.run(
            ["turnutils_stunclient", "-p", str(port), "127.0.0.1"], capture_output=True, text=True, timeout=20
        ).stdout
        assert "UDP reflexive addr: 127.0.0.1:" in out, out
    else:
        print("turnutils_stunclient missing (apt-get install coturn): that client is skipped")
    deadline = time.monotonic() + 20
    docs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        docs = [_peers(n) for n in (a, *others)]
        if all(d["reachability"] == "public" and d["nat_mapping"] == "no-nat" for d in docs):
            break
        time.sleep(0.3)
    for doc in docs:
        assert doc["reachability"] == "public", doc
        assert doc["nat_mapping"] == "no-nat", doc
        assert doc["dialbacks"]["ok"] >= 2
        assert {p["transport"] for p in doc["peers"]} == {"ws"}
    text = subprocess.run(
        [sys.executable, "-m", "timnode", "peers", "--node", f"127.0.0.1:{port}"], capture_output=True, text=True
    ).stdout
    assert "reachability public, NAT mapping no-nat" in text


@pytest.mark.slow
def test_no_stun_flag(node_factory: Callable[..., NodeProcess]) -> None:
    a = node_factory("--no-store", "--no-stun", name="a")
    assert _peers(a)["stun"] is None


def test_stun_endpoint_type() -> None:
    assert issubclass(StunEndpoint, asyncio.DatagramProtocol)
