"""Real nodes behind real (netfilter) NATs: build a topology, start nodes, report how pairs linked.

``run_real(kinds)`` builds a ``testnet.netns.Testbed`` with two public hosts and one host behind
each NAT kind in ``kinds``, starts a ``timnode`` process in every host (``ip netns exec``; the
public ones bootstrap each other, the NATed ones bootstrap the first public node), waits until
every pair is linked or ``timeout`` passes, and returns the matrix of what linked how (``ws``,
``rtc``, ``relay``, ``none``) next to what RFC 4787 predicts, with the RTT of a link-level
ping over each link (a ping is proof that encrypted frames crossed that link). The nodes'
``/peers`` and ``/healthz`` documents are read from inside their namespaces.

Then the network carries IM traffic (``exchange=True``): one user per node registers through
the SDK (``testnet/im_probe.py``, run with ``ip netns exec`` in the node's namespace against the
node's own WebSocket URL), every user sends one message to every user on the other nodes, and
the ``delivered`` matrix records which of them arrived (row: sender's node, column: receiver's).
Everything is removed at the end.

Expectation (RFC 4787): a public node links ``ws`` with everyone (the NATed side dials it);
two NATed nodes punch (``rtc``) unless one side has endpoint-dependent mapping (symmetric) and
the other filters by port (port-restricted or symmetric): that pair stays ``relay``.
"""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from testnet.netns import Host, Testbed
from testnet.process import NodeProcess, stop_all

__all__ = ["KIND", "expected_transport", "format_matrix", "link_class", "run_real"]

PORT = 7400
SHORT = {"full-cone": "full", "address-restricted": "addr", "port-restricted": "port", "symmetric": "sym"}
# The names in the JSON document (``pairs[].a/b``): "restricted" is the address-restricted cone.
KIND = {"public": "public", "full-cone": "full-cone", "address-restricted": "restricted",
        "port-restricted": "port-restricted", "symmetric": "symmetric"}  # fmt: skip


def link_class(transport: str) -> str:
    """``direct`` (rtc, ws), ``relay`` or ``failed`` (no link)."""
    return "direct" if transport in ("rtc", "ws") else "relay" if transport == "relay" else "failed"


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


def _healthz(host: Host) -> dict[str, Any]:
    url = f"http://127.0.0.1:{PORT}/healthz"
    code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    try:
        doc: dict[str, Any] = json.loads(host.run(sys.executable, "-c", code, check=False) or "{}")
    except ValueError:
        return {}
    return doc


def run_real(
    kinds: Sequence[str] = ("full-cone", "address-restricted", "port-restricted", "symmetric"),
    *,
    timeout: float = 60.0,
    extra_args: Sequence[str] = (),
    exchange: bool = True,
    message_timeout: float = 20.0,
    delay_ms: float = 0.0,
    loss_pct: float = 0.0,
    log: Callable[[str], None] = lambda text: None,
    keep_workdir: bool = False,
) -> dict[str, Any]:
    """Build, run, measure, exchange messages, tear down.

    The nodes' data directories and logs live in a temporary work directory
    (``result["workdir"]``), deleted at the end unless ``keep_workdir`` (``--keep``).

    ``delay_ms`` / ``loss_pct``: ``tc netem`` on every router's WAN interface (and the public
    hosts' interface), skipped with a note when ``tc`` is missing.

    Returns ``{"nodes": [...], "pairs": [{"a": KIND, "b": KIND, "link": "direct"|"relay"|"failed",
    "seconds": S, ...}], "sent": N, "delivered": N, "delivered_ms": {...}, "ok": bool, ...}``.
    """
    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="timnode-testnet-")
    try:
        with Testbed() as bed:
            hosts = [bed.add_public("pub1"), bed.add_public("pub2")]
            counts: dict[str, int] = {}
            for kind in kinds:
                counts[kind] = counts.get(kind, 0) + 1
                hosts.append(bed.add_nat(f"{SHORT.get(kind, kind)}{counts[kind]}", kind))
            log(f"test bed {bed.tag}: " + ", ".join(f"{h.name} ({h.nat}, {h.ip})" for h in hosts))
            netem = bed.netem(delay_ms, loss_pct) if (delay_ms or loss_pct) else None
            if netem:
                log(f"netem: {netem}")
            nodes = _start_nodes(hosts, workdir, extra_args)
            try:
                ids = {h.name: str(n.info["peer_id"]) for h, n in zip(hosts, nodes, strict=True)}
                linked_at: dict[tuple[str, str], dict[str, float]] = {}
                docs = _wait(hosts, ids, timeout, log, linked_at)
                log(f"links settled after {time.monotonic() - started:.1f} s")
                delivered = exchange_messages(hosts, workdir, message_timeout, log) if exchange else None
                health = {h.name: _healthz(h) for h in hosts}
                result = _report(hosts, ids, docs, health, delivered, linked_at)
                result["netem"] = netem
            finally:
                stop_all(nodes)
        result["seconds"] = round(time.monotonic() - started, 1)
    finally:
        if not keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    result["workdir"] = workdir
    result["workdir_kept"] = keep_workdir
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


def _wait(
    hosts: list[Host],
    ids: dict[str, str],
    timeout: float,
    log: Callable[[str], None],
    linked_at: dict[tuple[str, str], dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Poll ``/peers`` until settled; ``linked_at[a, b][link class]``: seconds when first seen."""
    start = time.monotonic()
    deadline = start + timeout
    docs: dict[str, Any] = {}
    while True:
        docs = {h.name: _peers_doc(h) for h in hosts}
        if linked_at is not None:
            now = time.monotonic() - start
            for a, b in itertools.combinations(hosts, 2):
                link = _link(docs[a.name], ids[b.name])
                if link is not None:
                    linked_at.setdefault((a.name, b.name), {}).setdefault(link_class(link["transport"]), now)
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


def user_of(host: Host) -> str:
    return f"u-{host.name}"


def exchange_messages(
    hosts: Sequence[Host], workdir: str, timeout: float = 20.0, log: Callable[[str], None] = lambda text: None
) -> dict[str, dict[str, float | str]]:
    """Every host's user messages every other host's user; ``{sender: {receiver: ms | error}}``.

    One ``testnet.im_probe`` per host, inside the host's namespace; all register first, then
    all send at once. A cell is the receive latency in ms, or why it was not delivered.
    """
    env = dict(os.environ)
    root = str(pathlib.Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    probes: dict[str, subprocess.Popen[str]] = {}
    out: dict[str, dict[str, float | str]] = {h.name: {} for h in hosts}
    try:
        for h in hosts:
            cmd = [*h.exec_prefix(), sys.executable, "-m", "testnet.im_probe", "--url", f"ws://127.0.0.1:{PORT}",
                   "--user", user_of(h)]  # fmt: skip
            errors = open(f"{workdir}/probe-{h.name}.log", "w")  # noqa: SIM115 - owned by the process
            probes[h.name] = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True, env=env
            )
            errors.close()
        ready = {name: _read_json(p, 30.0) for name, p in probes.items()}
        live = [h for h in hosts if ready[h.name].get("ready")]
        for h in hosts:
            if h not in live:
                log(f"{h.name}: IM probe not ready: {ready[h.name]}")
        time.sleep(1.0)  # presence reaches the linked nodes
        log(f"IM: {len(live)} users registered; {len(live) * (len(live) - 1)} messages under way")
        for h in live:
            order = {"to": [user_of(o) for o in live if o is not h], "expect": [user_of(o) for o in live if o is not h],
                     "timeout": timeout}  # fmt: skip
            stdin = probes[h.name].stdin
            assert stdin is not None
            stdin.write(json.dumps(order) + "\n")
            stdin.flush()
        reports = {h.name: _read_json(probes[h.name], timeout + 10) for h in live}
        for a in hosts:
            for b in hosts:
                if a is b:
                    continue
                if a not in live or b not in live:
                    out[a.name][b.name] = "probe not ready"
                    continue
                got = reports[b.name].get("received", {}).get(user_of(a))
                sent = reports[a.name].get("sent", {}).get(user_of(b), "no report")
                out[a.name][b.name] = got if got is not None else (sent if sent != "ok" else "not received")
    finally:
        for p in probes.values():
            if p.poll() is None:
                p.kill()
            p.wait()
            for stream in (p.stdin, p.stdout):
                if stream is not None:
                    stream.close()
    return out


def _read_json(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """The next JSON line the probe prints, ``{"error": ...}`` on timeout or exit."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        return {"error": f"no answer in {timeout:.0f} s"}
    line = proc.stdout.readline()
    try:
        doc: dict[str, Any] = json.loads(line)
    except ValueError:
        return {"error": f"probe exited ({proc.poll()})"}
    return doc


def _report(
    hosts: list[Host],
    ids: dict[str, str],
    docs: dict[str, Any],
    health: dict[str, Any] | None = None,
    delivered: dict[str, dict[str, float | str]] | None = None,
    linked_at: dict[tuple[str, str], dict[str, float]] | None = None,
) -> dict[str, Any]:
    health = health or {}
    linked_at = linked_at or {}
    pairs = []
    for a, b in itertools.combinations(hosts, 2):
        link_a = _link(docs[a.name], ids[b.name])
        link_b = _link(docs[b.name], ids[a.name])
        got = link_a["transport"] if link_a else "none"
        records = [docs[x.name].get("punches", {}).get(ids[y.name]) for x, y in ((a, b), (b, a))]
        records = [r for r in records if r]
        punch = next((r for r in records if r.get("state") != "answering"), records[0] if records else None)
        link = link_class(got)
        seconds = linked_at.get((a.name, b.name), {}).get(link)
        pairs.append(
            {
                "a": KIND[a.nat],
                "b": KIND[b.nat],
                "link": link,
                "seconds": None if seconds is None else round(seconds, 2),
                "node_a": a.name,
                "node_b": b.name,
                "nat_a": a.nat,
                "nat_b": b.nat,
                "transport": got,
                "transport_b_side": link_b["transport"] if link_b else "none",
                "expected": expected_transport(a.nat, b.nat),
                "rtt_ms": link_a["rtt_ms"] if link_a else None,
                "punch": punch,
                "delivered_ab": None if delivered is None else delivered[a.name][b.name],
                "delivered_ba": None if delivered is None else delivered[b.name][a.name],
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
            "dht_mode": (health.get(h.name, {}).get("dht") or {}).get("mode"),
        }
        for h in hosts
    ]
    linked_ok = all(p["transport"] == p["expected"] for p in pairs)
    all_delivered = delivered is None or all(
        isinstance(ms, (int, float)) for row in delivered.values() for ms in row.values()
    )
    cells = [v for row in (delivered or {}).values() for v in row.values()]
    return {"nodes": nodes, "pairs": pairs, "sent": len(cells),
            "delivered": sum(1 for v in cells if isinstance(v, (int, float))), "delivered_ms": delivered,
            "linked_ok": linked_ok, "all_delivered": all_delivered, "ok": linked_ok and all_delivered}  # fmt: skip


def format_matrix(result: dict[str, Any]) -> str:
    """The pair matrix as a table: ``got/expected`` per cell (``*`` marks a mismatch)."""
    names = [n["name"] for n in result["nodes"]]
    cell: dict[tuple[str, str], str] = {}
    for p in result["pairs"]:
        text = p["transport"] if p["transport"] == p["expected"] else f"{p['transport']}*{p['expected']}"
        cell[p["node_a"], p["node_b"]] = cell[p["node_b"], p["node_a"]] = text
    width = max(12, *(len(n) for n in names)) + 1
    lines = ["".ljust(8) + "".join(n.ljust(width) for n in names)]
    for a in names:
        lines.append(a.ljust(8) + "".join((cell.get((a, b), "-")).ljust(width) for b in names))
    delivered = result.get("delivered_ms")
    if delivered is not None:
        lines.append("")
        lines.append("delivered (row sends to column: ms from the sending node's timestamp to arrival; x: lost)")
        lines.append("".ljust(8) + "".join(n.ljust(width) for n in names))
        for a in names:
            row = delivered.get(a, {})
            cells = ["-" if a == b else (f"{row[b]:.0f}" if isinstance(row.get(b), (int, float)) else "x")
                     for b in names]  # fmt: skip
            lines.append(a.ljust(8) + "".join(c.ljust(width) for c in cells))
        failures = [f"{a}->{b}: {v}" for a, row in delivered.items() for b, v in row.items()
                    if not isinstance(v, (int, float))]  # fmt: skip
        lines.extend(f"  not delivered {f}" for f in failures[:10])
    lines.append("")
    lines.append(f"{'node':<8} {'NAT':<19} {'reachability':<13} {'mapping':<21} {'dht':<7} public address")
    for n in result["nodes"]:
        lines.append(
            f"{n['name']:<8} {n['nat']:<19} {n['reachability'] or '-':<13} {n['nat_mapping'] or '-':<21} "
            f"{n.get('dht_mode') or '-':<7} {n['public_address'] or '-'}"
        )
    punched = [p["punch"]["ice_s"] for p in result["pairs"] if p.get("punch") and "ice_s" in p["punch"]]
    if punched:
        lines.append(f"ICE to connected: {min(punched):.2f}-{max(punched):.2f} s over {len(punched)} punched pairs")
    linked = (
        "every pair linked as RFC 4787 predicts"
        if result.get("linked_ok", result["ok"])
        else ("link MISMATCH (cells got*expected)")
    )
    if delivered is not None:
        n = sum(1 for row in delivered.values() for v in row.values() if isinstance(v, (int, float)))
        total = sum(len(row) for row in delivered.values())
        linked += f"; {n}/{total} messages delivered"
    lines.append(("OK: " if result["ok"] else "FAILED: ") + linked + f" in {result.get('seconds', 0)} s")
    return "\n".join(lines)


def _conntrack_available() -> bool:
    return shutil.which("conntrack") is not None
