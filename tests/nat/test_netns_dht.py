"""Reachability drives the DHT mode, and relays in the DHT peer record reach a private node.

Namespaces (root; skipped with a printed reason otherwise). Topology, on one bridged internet:

    pub1 (public)   <- pub2 (public, bootstraps pub1)
      ^                ^
      B (port-restricted NAT, bootstraps pub1, --max-relays 1)
                       A (port-restricted NAT, bootstraps pub2, --max-relays 1)

A reserves only pub2 as its relay and B only pub1, so neither finds the other by listing its
own relay's reservations (the relay loop's way). A user on B messages a user on A: B's
federation finds A's presence in the DHT, ``DhtService.dial(A)`` finds A's signed peer record
with ``relays = [pub2]`` and no dialable address, ``NatService.dial_via_relays`` opens a circuit
through pub2 (a ``relay`` link), the message is delivered, and the relayed link is punched
to ``rtc`` (two port-restricted cones). ``/healthz``: pub1/pub2 in DHT server mode, A/B client.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import pytest

from testnet.netns import Host, Testbed, available
from testnet.process import NodeProcess, stop_all
from testnet.real import PORT, exchange_messages

pytestmark = pytest.mark.slow

REASON = available()
if REASON:
    print(f"tests/nat/test_netns_dht.py skipped: {REASON}")


def _get(host: Host, path: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{PORT}{path}"
    code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=10).read().decode())"
    out = host.run(sys.executable, "-c", code, check=False)
    try:
        doc: dict[str, Any] = json.loads(out or "{}")
    except ValueError:
        return {}
    return doc


def _link(host: Host, peer_id: str) -> dict[str, Any] | None:
    return next((p for p in _get(host, "/peers").get("peers", []) if p["peer_id"] == peer_id), None)


def _until(check: Any, timeout: float, step: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if REASON:
        pytest.skip(REASON)
    workdir = str(tmp_path_factory.mktemp("nat-dht"))  # pytest keeps only its last few runs' temp dirs
    with Testbed() as bed:
        pub1, pub2 = bed.add_public("pub1"), bed.add_public("pub2")
        a, b = bed.add_nat("a", "port-restricted"), bed.add_nat("b", "port-restricted")
        common = ["--no-store", "--keepalive", "2", "--pex-interval", "3", "--dht-mode", "auto"]
        plan = [
            (pub1, ["--advertise", f"{pub1.ip}:{PORT}"]),
            (pub2, ["--advertise", f"{pub2.ip}:{PORT}", "--bootstrap", f"{pub1.ip}:{PORT}"]),
            (a, ["--max-relays", "1", "--bootstrap", f"{pub2.ip}:{PORT}"]),
            (b, ["--max-relays", "1", "--bootstrap", f"{pub1.ip}:{PORT}"]),
        ]
        nodes: list[NodeProcess] = []
        try:
            for host, args in plan:
                node = NodeProcess(
                    f"{workdir}/{host.name}", *common, *args, listen=f"0.0.0.0:{PORT}", prefix=host.exec_prefix()
                )
                nodes.append(node.start(timeout=30))
            ids = {h.name: str(n.info["peer_id"]) for (h, _), n in zip(plan, nodes, strict=True)}
            yield {"bed": bed, "hosts": {h.name: h for h, _ in plan}, "ids": ids, "nodes": nodes, "workdir": workdir}
        finally:
            stop_all(nodes)


def test_dht_mode_follows_reachability(net: Any) -> None:
    hosts = net["hosts"]

    def modes() -> dict[str, Any] | None:
        got = {name: (_get(h, "/healthz").get("dht") or {}).get("mode") for name, h in hosts.items()}
        want = {"pub1": "server", "pub2": "server", "a": "client", "b": "client"}
        return got if got == want else None

    assert _until(modes, 40), {name: _get(h, "/healthz").get("dht") for name, h in hosts.items()}
    for name in ("pub1", "pub2"):
        assert _get(hosts[name], "/peers")["reachability"] == "public"
    for name in ("a", "b"):
        assert _get(hosts[name], "/peers")["reachability"] == "private"


def test_relay_in_peer_record_then_punch(net: Any) -> None:
    hosts, ids = net["hosts"], net["ids"]
    a, b = hosts["a"], hosts["b"]
    # each private node holds exactly one reservation: A at pub2, B at pub1
    assert _until(lambda: _get(a, "/peers").get("relays") == [ids["pub2"]], 20), _get(a, "/peers")
    assert _until(lambda: _get(b, "/peers").get("relays") == [ids["pub1"]], 20), _get(b, "/peers")
    # A's signed peer record lists its relay (republished when the reservation was made)
    record = _until(lambda: (r := _get(b, f"/dht/peer?id={ids['a']}&fresh=1")).get("relays") and r, 20)
    assert record and record["relays"] == [ids["pub2"]], record
    assert _link(b, ids["a"]) is None, "A and B linked before any message: the test premise does not hold"

    delivered = exchange_messages([b, a], net["workdir"], timeout=25)
    assert isinstance(delivered["b"]["a"], float), delivered
    assert isinstance(delivered["a"]["b"], float), delivered
    log = (net["nodes"][3].log_path).read_text(errors="replace")
    assert "through its advertised relay" in log, net["nodes"][3].log_tail()

    # the relayed link is then punched: two port-restricted cones reach rtc
    def transport() -> str | None:
        link = _link(b, ids["a"])
        return link["transport"] if link and link["transport"] == "rtc" else None

    assert _until(transport, 30), (_link(b, ids["a"]), _get(b, "/peers").get("punches"))
