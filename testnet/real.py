"""Real nodes behind real (netfilter) NATs: build a topology, start nodes, report how pairs linked.

``run_real(kinds)`` builds a ``testnet.netns.Testbed`` with two public hosts and one host behind
each NAT kind in ``kinds``, starts a ``timnode`` process in every host (``ip netns exec``; the
public ones bootstrap each other, the NATed ones bootstrap the first public node), waits until
every pair is linked or ``timeout`` passes, and returns the matrix of what linked how (``ws``,
``rtc``, ``relay``, ``none``) next to what RFC 4787 predicts, with the RTT of a link-level
ping over each link (a ping is proof that encrypted frames crossed that link). The nodes'
``/peers`` documents are read from inside their namespaces. Everything is removed at the end.

Expectation (RFC 4787): a public node links ``ws`` with everyone (the NATed side dials it);
two NATed nodes punch (``rtc``) unless one side has endpoint-dependent mapping (symmetric) and
the other filters by port (port-restricted or symmetric): that pair stays ``relay``.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from testnet.netns import Host, Testbed
from testnet.process import NodeProcess

__all__ = ["expected_transport", "format_matrix", "run_real"]

PORT = 7400
SHORT = {"full-cone": "full", "address-restricted": "addr", "port-restricted": "port", "symmetric": "sym"}


def expected_transport(a: str, b: str) -> str:
    """What RFC 4787 predicts for NAT kinds ``a`` and ``b`` ("public" = no NAT)."""
    if "public" in (a, b):
        return "ws"
    port_filtering = ("symmetric", "port-restricted")  # APDF: only the exact endpoint we sent to gets in
    if (a == "symmetric" and b in port_filtering) or (b == "symmetric" and a in port_filtering):
        return "relay"
    return "rtc"


def _peers_doc(host: Host) -> dict[str, Any]:
    out = host.run(sys.executable, "-m", "timnode", "peers", "--node", f"127.0.0.1:{PORT}", "--json", check=False)
    try:
        doc: dict[str, Any] = json.loads(out)
    except ValueError:
        return {}
    return doc


def run_real(
    kinds: Sequence[str] = ("full-cone", "address-restricted", "port-restricted", "symmetric"),
    *,
    timeout: float = 60.0,
    extra_args: Sequence[str] = (),
    log: Callable[[str], None] = lambda text: None,
) -> dict[str, Any]:
    """Build, run, measure, tear down. Returns ``{"nodes": [...], "pairs": [...], "ok": bool, ...}``."""
    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="timnode-testnet-")
    with Testbed() as bed:
        hosts = [bed.add_public("pub1"), bed.add_public("pub2")]
        counts: dict[str, int] = {}
        for kind in kinds:
            counts[kind] = counts.get(kind, 0) + 1
            hosts.append(bed.add_nat(f"{SHORT.get(kind, kind)}{counts[kind]}", kind))
        log(f"test bed {bed.tag}: " + ", ".join(f"{h.name} ({h.nat}, {h.ip})" for h in hosts))
        nodes = _start_nodes(hosts, workdir, extra_args)
        try:
            ids = {h.name: str(n.info["peer_id"]) for h, n in zip(hosts, nodes, strict=True)}
            docs = _wait(hosts, ids, timeout, log)
            result = _report(hosts, ids, docs)
        finally:
            for node in nodes:
                try:
                    node.stop(timeout=5)
                except subprocess.TimeoutExpired:
                    node.kill()
    result["seconds"] = round(time.monotonic() - started, 1)
    result["workdir"] = workdir
    return result


def _start_nodes(hosts: list[Host], workdir: str, extra_args: Sequence[str]) -> list[NodeProcess]:
    nodes: list[NodeProcess] = []
    first = hosts[0]
    common = ["--no-store", "--keepalive", "2", "--pex-interval", "3", *extra_args]
    for host in hosts:
        args = [*common, "--advertise", f"{host.ip}:{PORT}"] if host.nat == "public" else list(common)
        if host is not first:
            args += ["--bootstrap", f"{first.ip}:{PORT}"]
        node = NodeProcess(f"{workdir}/{host.name}", *args, listen=f"0.0.0.0:{PORT}", prefix=host.exec_prefix())
        nodes.append(node.start(timeout=30))
    return nodes


def _wait(hosts: list[Host], ids: dict[str, str], timeout: float, log: Callable[[str], None]) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    docs: dict[str, Any] = {}
    while True:
        docs = {h.name: _peers_doc(h) for h in hosts}
        settled = all(_settled(a, b, ids, docs) for a, b in itertools.combinations(hosts, 2))
        if settled or time.monotonic() > deadline:
            return docs
        time.sleep(1.0)


def _link(doc: dict[str, Any], peer_id: str) -> dict[str, Any] | None:
    for p in doc.get("peers", []):
        if p["peer_id"] == peer_id:
            return dict(p)
    return None


def _settled(a: Host, b: Host, ids: dict[str, str], docs: dict[str, Any]) -> bool:
    """Linked in the expected way with a measured RTT on both sides (relayed pairs: after a punch try)."""
    link_a, link_b = _link(docs[a.name], ids[b.name]), _link(docs[b.name], ids[a.name])
    if link_a is None or link_b is None or link_a["rtt_ms"] is None or link_b["rtt_ms"] is None:
        return False
    expected = expected_transport(a.nat, b.nat)
    if link_a["transport"] == expected == link_b["transport"]:
        if expected != "relay":
            return True
        punches = [docs[x.name].get("punches", {}).get(ids[y.name], {}) for x, y in ((a, b), (b, a))]
        return any(p.get("state") == "failed" for p in punches)
    return False


def _report(hosts: list[Host], ids: dict[str, str], docs: dict[str, Any]) -> dict[str, Any]:
    pairs = []
    for a, b in itertools.combinations(hosts, 2):
        link_a = _link(docs[a.name], ids[b.name])
        link_b = _link(docs[b.name], ids[a.name])
        got = link_a["transport"] if link_a else "none"
        records = [docs[x.name].get("punches", {}).get(ids[y.name]) for x, y in ((a, b), (b, a))]
        records = [r for r in records if r]
        punch = next((r for r in records if r.get("state") != "answering"), records[0] if records else None)
        pairs.append(
            {
                "a": a.name,
                "b": b.name,
                "nat_a": a.nat,
                "nat_b": b.nat,
                "transport": got,
                "transport_b_side": link_b["transport"] if link_b else "none",
                "expected": expected_transport(a.nat, b.nat),
                "rtt_ms": link_a["rtt_ms"] if link_a else None,
                "punch": punch,
            }
        )
    nodes = [
        {
            "name": h.name,
            "nat": h.nat,
            "ip": h.ip,
            "wan_ip": h.wan_ip,
            "peer_id": ids[h.name],
            "reachability": docs[h.name].get("reachability"),
            "nat_mapping": docs[h.name].get("nat_mapping"),
            "public_address": docs[h.name].get("public_address"),
            "relays": docs[h.name].get("relays"),
        }
        for h in hosts
    ]
    ok = all(p["transport"] == p["expected"] for p in pairs)
    return {"nodes": nodes, "pairs": pairs, "ok": ok}


def format_matrix(result: dict[str, Any]) -> str:
    """The pair matrix as a table: ``got/expected`` per cell (``*`` marks a mismatch)."""
    names = [n["name"] for n in result["nodes"]]
    cell: dict[tuple[str, str], str] = {}
    for p in result["pairs"]:
        text = p["transport"] if p["transport"] == p["expected"] else f"{p['transport']}*{p['expected']}"
        cell[p["a"], p["b"]] = cell[p["b"], p["a"]] = text
    width = max(12, *(len(n) for n in names)) + 1
    lines = ["".ljust(8) + "".join(n.ljust(width) for n in names)]
    for a in names:
        lines.append(a.ljust(8) + "".join((cell.get((a, b), "-")).ljust(width) for b in names))
    lines.append("")
    lines.append(f"{'node':<8} {'NAT':<19} {'reachability':<13} {'mapping':<21} public address")
    for n in result["nodes"]:
        lines.append(
            f"{n['name']:<8} {n['nat']:<19} {n['reachability'] or '-':<13} {n['nat_mapping'] or '-':<21} "
            f"{n['public_address'] or '-'}"
        )
    punched = [p["punch"]["ice_s"] for p in result["pairs"] if p.get("punch") and "ice_s" in p["punch"]]
    if punched:
        lines.append(f"ICE to connected: {min(punched):.2f}-{max(punched):.2f} s over {len(punched)} punched pairs")
    lines.append(("OK: every pair linked as RFC 4787 predicts" if result["ok"] else "MISMATCH (cells got*expected)")
                 + f" in {result.get('seconds', 0)} s")  # fmt: skip
    return "\n".join(lines)


def _conntrack_available() -> bool:
    return shutil.which("conntrack") is not None
