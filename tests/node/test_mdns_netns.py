"""mDNS with real multicast: two network namespaces bridged by a third (needs root and ``ip``).

Layout (names carry a random suffix; everything is deleted in the fixture's teardown)::

    tn-mdns-a-XXXX  eth0 10.231.N.1/24 ── pa ┐
                                              br0  (in tn-mdns-br-XXXX)
    tn-mdns-b-XXXX  eth0 10.231.N.2/24 ── pb ┘

No address or route touches the host's own namespace, and no node of the rest of the suite
runs mDNS (they all pass ``--no-mdns``).
"""

from __future__ import annotations

import os
import pathlib
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from node.netkey import generate
from testnet.process import NodeProcess

pytestmark = pytest.mark.slow


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def bridged_namespaces() -> Iterator[tuple[str, str, str]]:
    """(namespace A, namespace B, the /24 prefix "10.231.N")."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        reason = "mDNS namespace test needs root and iproute2 (`ip`); CI runs it as root"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    suffix = secrets.token_hex(3)
    ns_a, ns_b, ns_br = f"tn-mdns-a-{suffix}", f"tn-mdns-b-{suffix}", f"tn-mdns-br-{suffix}"
    prefix = f"10.231.{secrets.randbelow(250) + 1}"
    made: list[str] = []
    try:
        for ns in (ns_a, ns_b, ns_br):
            _ip("netns", "add", ns)
            made.append(ns)
        _ip("-n", ns_br, "link", "add", "br0", "type", "bridge")
        _ip("-n", ns_br, "link", "set", "br0", "up")
        for ns, host, port in ((ns_a, 1, "pa"), (ns_b, 2, "pb")):
            _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", ns_br)
            _ip("-n", ns_br, "link", "set", port, "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{prefix}.{host}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
    except subprocess.CalledProcessError as exc:
        for ns in made:
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=10)
        pytest.skip(f"cannot build network namespaces: {exc.stderr.decode(errors='replace').strip()}")
    try:
        yield ns_a, ns_b, prefix
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=10)


def test_two_lan_nodes_find_and_link_each_other_by_mdns(
    bridged_namespaces: tuple[str, str, str], tmp_path: pathlib.Path
) -> None:
    ns_a, ns_b, prefix = bridged_namespaces
    in_a, in_b = ["ip", "netns", "exec", ns_a], ["ip", "netns", "exec", ns_b]
    nodes = [
        NodeProcess(tmp_path / "a", "--no-store", listen=f"{prefix}.1:7400", mdns=True, prefix=in_a),
        NodeProcess(tmp_path / "b", "--no-store", listen=f"{prefix}.2:7400", mdns=True, prefix=in_b),
        # another network on the same LAN: its advertisements must be ignored, not dialled
        NodeProcess(
            tmp_path / "c", "--no-store", "--network-key", generate(), listen=f"{prefix}.2:7401", mdns=True, prefix=in_b
        ),
    ]
    try:
        for node in nodes:
            node.start()
        a, b, c = nodes
        a_id, b_id, c_id = (str(n.info["peer_id"]) for n in nodes)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if f"linked with {b_id}" in a.log_path.read_text() and f"linked with {a_id}" in b.log_path.read_text():
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"no mDNS link in 10 s\nA:\n{a.log_tail()}\nB:\n{b.log_tail()}")
        time.sleep(1.0)
        logs = [n.log_path.read_text() for n in nodes]
        assert "learned " in logs[0] and "from mdns" in logs[0]
        assert all(c_id not in text for text in logs[:2]) and a_id not in logs[2]
        assert all("network key mismatch" not in text for text in logs)
    finally:
        for node in nodes:
            try:
                node.stop()
            except subprocess.TimeoutExpired:
                pass
