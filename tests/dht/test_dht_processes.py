"""The DHT over real peer links: ten node processes on 127.0.0.1 (--no-mdns), issue 4's acceptance tests.

One network per module (starting ten processes is the expensive part): node 0 is the
bootstrap, nodes 1-8 are DHT servers, node 9 runs ``--dht-mode client``. Presence entries
live ``PRESENCE_TTL`` seconds (republished at half), so an unrefreshed entry is gone soon.
Lookups are read through ``GET /dht/presence?user=U&fresh=1`` (read-only, no cache).
The tests run in file order; the last two stop node 7 (SIGINT) and SIGKILL node 8.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import pathlib
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dht.aio import PROTOCOL
from dht.ids import peer_record_key, presence_key
from dht.messages import Message, Put, PutResult, decode_message, encode_message
from dht.records import Device, RecordKind, encode_peer_value, encode_presence_value, sign_entry
from im.client import Client
from node.identity import Identity, PeerId
from node.link import dial
from node.netkey import generate, parse_network_key
from testnet.process import NodeProcess

pytestmark = pytest.mark.slow

PRESENCE_TTL = 3.0
NETWORK_KEY = generate()
FAST = ("--no-store", "--network-key", NETWORK_KEY, "--keepalive", "1", "--keepalive-timeout", "2",
        "--reconnect-max", "1", "--pex-interval", "1", "--presence-ttl", str(PRESENCE_TTL))  # fmt: skip


def get(node: NodeProcess, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(node.http_url + path, timeout=10) as reply:
        doc: dict[str, Any] = json.loads(reply.read())
    return doc


def presence(node: NodeProcess, user: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = get(node, f"/dht/presence?user={user}&fresh=1")["entries"]
    return entries


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NodeProcess]]:
    root: pathlib.Path = tmp_path_factory.mktemp("dht10")
    boot = NodeProcess(root / "n0", *FAST).start()
    join = ("--bootstrap", boot.url.removeprefix("ws://"))
    mode = {9: ("--dht-mode", "client")}
    rest = [NodeProcess(root / f"n{i}", *FAST, *join, *mode.get(i, ())) for i in range(1, 10)]
    nodes = [boot, *rest]
    try:
        with ThreadPoolExecutor(len(rest)) as pool:
            list(pool.map(lambda n: n.start(), rest))
        servers = {str(n.info["peer_id"]) for n in nodes[:9]}
        # every server knows the other eight; the client knows the nine servers
        wait_for(lambda: all(get(n, "/healthz")["dht"]["routing_table"] == 8 for n in nodes[:9])
                 and get(nodes[9], "/healthz")["dht"]["routing_table"] == 9, 20, "routing tables filled")  # fmt: skip
        assert all({p["peer_id"] for b in get(n, "/dht")["buckets"] for p in b["peers"]} <= servers for n in nodes)
        yield nodes
    finally:
        for node in nodes:
            node.kill()


def test_modes_and_status_routes(net: list[NodeProcess]) -> None:
    health = get(net[1], "/healthz")["dht"]
    assert health["mode"] == "server" and health["bootstrapped"]
    assert {"routing_table", "stored_records", "counters"} <= health.keys()
    assert get(net[9], "/healthz")["dht"]["mode"] == "client"
    table = get(net[1], "/dht")
    assert table["size"] == 8 and table["k"] == 20 and table["peer_id"] == net[1].info["peer_id"]
    assert sum(len(b["peers"]) for b in table["buckets"]) == 8
    # the client answers no DHT request: servers that asked it counted nothing back
    assert get(net[9], "/healthz")["dht"]["counters"]["responses_sent"] == 0
    # every node found every other node's signed peer record (published after its join)
    target = net[5].info["peer_id"]
    for node in net:
        if node is not net[5]:
            found = get(node, f"/dht/peer?id={target}&fresh=1")
            assert found["found"] and found["addrs"] == [net[5].url]
    # DHT queries and their latency are on /metrics (issue 10)
    with urllib.request.urlopen(net[1].http_url + "/metrics", timeout=10) as reply:
        metrics = reply.read().decode()
    assert 'timnode_dht_queries_total{result="ok",type="find_node"}' in metrics
    assert 'timnode_dht_query_duration_seconds_count{type="find_node"}' in metrics
    assert 'timnode_dht_requests_served_total{type="find_node"}' in metrics


async def test_presence_found_everywhere_then_withdrawn_on_logout(net: list[NodeProcess]) -> None:
    others = [n for i, n in enumerate(net) if i != 3]
    async with Client(net[3].url, "alice", "alice-password", register=True, device="phone") as alice:
        start = time.monotonic()

        def everywhere() -> bool:
            return all(
                [(e["node"], e["devices"]) for e in presence(n, "alice")]
                == [(net[3].info["peer_id"], [{"device_id": "phone", "status": "online"}])]
                for n in others
            )

        await asyncio.to_thread(wait_for, everywhere, 10, "alice found from all nine")
        found_after = time.monotonic() - start
        await alice.logout()
    await asyncio.to_thread(wait_for, lambda: all(not presence(n, "alice") for n in net), 10, "alice withdrawn")
    print(f"presence on 9 other nodes after {found_after:.2f}s; withdrawn after {time.monotonic() - start:.2f}s")


async def test_forged_records_are_rejected_and_counted(net: list[NodeProcess]) -> None:
    target = net[1]
    before = get(target, "/healthz")["dht"]["counters"]["rejected"]
    attacker = Identity.generate()  # a network member (it has the key) lying about others
    victim = PeerId.from_base58(str(net[3].info["peer_id"]))
    expires_ms = int((time.time() + 60) * 1000)
    lie = sign_entry(attacker, RecordKind.PRESENCE, presence_key("mallory"),
                     encode_presence_value("mallory", [Device("evil")]), seq=1, expires_ms=expires_ms)  # fmt: skip
    forged_presence = dataclasses.replace(lie, publisher=victim.bytes)  # "node 3 says": bad signature
    forged_peer = sign_entry(attacker, RecordKind.PEER, peer_record_key(victim.bytes),
                             encode_peer_value(["ws://127.0.0.1:9"]), seq=1, expires_ms=expires_ms)  # fmt: skip
    link = await dial(target.url, attacker, parse_network_key(NETWORK_KEY), timeout=10)
    try:
        for request_id, entry in enumerate((forged_presence, forged_peer), 1):
            msg = Message(request_id=request_id, server=False, body=Put((entry,)))
            reply = decode_message(await link.request(PROTOCOL, encode_message(msg), timeout=5))
            assert reply.request_id == request_id and reply.body == PutResult(0)
    finally:
        await link.close("done")
    after = get(target, "/healthz")["dht"]["counters"]
    assert after["rejected"].get("bad_signature", 0) == before.get("bad_signature", 0) + 1
    assert after["rejected"].get("wrong_publisher", 0) == before.get("wrong_publisher", 0) + 1
    assert after["rejected_total"] >= 2
    assert all(not presence(n, "mallory") for n in net)
    victim_record = get(net[2], f"/dht/peer?id={victim}&fresh=1")
    assert victim_record["addrs"] == [net[3].url]


def alive(net: list[NodeProcess]) -> list[NodeProcess]:
    return [n for n in net if n.proc is not None and n.proc.poll() is None]


async def test_graceful_shutdown_withdraws_presence(net: list[NodeProcess]) -> None:
    host = net[7]
    client = Client(host.url, "carol", "carol-password", register=True, device="tablet", reconnect=False)
    await client.connect()
    others = [n for n in alive(net) if n is not host]
    await asyncio.to_thread(wait_for, lambda: all(len(presence(n, "carol")) == 1 for n in others), 10, "carol found")
    start = time.monotonic()
    assert await asyncio.to_thread(host.stop) == 0  # SIGINT: withdraws before the links close
    stopped = time.monotonic() - start
    # at once, not after an expiry: the entry is refreshed every TTL/2, so it had >= TTL/2 to live
    assert all(not presence(n, "carol") for n in others)
    await client.close()
    assert stopped < PRESENCE_TTL / 2
    print(f"SIGINT stop with withdrawal took {stopped:.2f}s")


async def test_crashed_nodes_entry_expires_when_not_refreshed(net: list[NodeProcess]) -> None:
    host = net[8]
    client = Client(host.url, "bob", "bob-password", register=True, device="laptop", reconnect=False)
    await client.connect()
    survivors = [n for n in alive(net) if n is not host]
    await asyncio.to_thread(wait_for, lambda: all(len(presence(n, "bob")) == 1 for n in survivors), 10, "bob found")
    # republished (not expiring) while its node lives: still there after more than one TTL
    await asyncio.sleep(PRESENCE_TTL * 1.2)
    assert all(len(presence(n, "bob")) == 1 for n in survivors)
    host.kill()  # SIGKILL: no withdrawal, no republish
    killed = time.monotonic()
    await client.close()
    took = await asyncio.to_thread(wait_for, lambda: all(not presence(n, "bob") for n in survivors),
                                   PRESENCE_TTL + 5, "bob's entry expired")  # fmt: skip
    assert took <= PRESENCE_TTL + 2
    print(f"crashed node's entry gone {time.monotonic() - killed:.2f}s after SIGKILL (ttl {PRESENCE_TTL}s)")
