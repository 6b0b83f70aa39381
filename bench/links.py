"""Peer links: handshake time, round-trip time and one-way messages/s against a real node.

``python -m bench links [--json] [--messages N] [--size B] [--pings N] [--dials N]``

The two endpoints are two processes: a ``python -m timnode`` node (``--no-store``, no mDNS,
keepalive off) and this benchmark process, which dials it with ``node.link.dial`` (the code
path the link manager uses) under its own identity, proving the node's PeerId from
``node.json``.

- **handshake**: ``--dials`` fresh links, each timed from TCP connect to identify done
  (WebSocket upgrade + Noise XX + identity binding + Identify both ways); plus the
  sans-I/O handshake core alone (three messages, no I/O).
- **rtt**: ``--pings`` sequential PING/PONG on one link (p50/p99).
- **one-way**: ``--messages`` small messages (``--size`` bytes) to a protocol the node has no
  handler for (it decrypts, decodes and drops each one), followed by one PING: its PONG comes
  back only after every message before it was processed, so messages / time is the node's
  receive rate. Run twice: coalescing off (one Noise message and one WebSocket message per
  frame) and on (frames queued in one loop tick sealed together). ``msgs_per_ws_msg``: messages
  per WebSocket (= Noise) message the sender wrote.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from bench.report import emit, note, percentile, rounded
from node.handshake import HandshakeComplete, HandshakeProtocol
from node.identity import Identity, PeerId
from node.link import LinkConfig, dial
from node.netkey import OPEN_NETWORK_KEY
from testnet.process import NodeProcess, NodeStartError

__all__ = ["SUMMARY", "LinksOptions", "main", "run"]

SUMMARY = "peer links: handshake ms, RTT p50/p99, one-way msgs/s with and without coalescing"
SINK = "/bench/sink/1"


@dataclass(frozen=True, slots=True, kw_only=True)
class LinksOptions:
    as_json: bool = False
    messages: int = 50_000
    size: int = 64
    pings: int = 2_000
    dials: int = 50


def core_handshake_ms(rounds: int = 200) -> float:
    """Median ms of the three-message handshake between two sans-I/O cores (no I/O)."""
    a, b = Identity.generate(), Identity.generate()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        i = HandshakeProtocol(initiator=True, identity=a, network_key=OPEN_NETWORK_KEY, now=0.0)
        r = HandshakeProtocol(initiator=False, identity=b, network_key=OPEN_NETWORK_KEY, now=0.0)
        for src, dst in ((i, r), (r, i), (i, r)):
            for data in src.data_to_send():
                dst.receive_data(data, 0.0)
        assert isinstance(r.next_event(), HandshakeComplete)
        times.append((time.perf_counter() - start) * 1000)
    return percentile(times, 50)


async def _measure(url: str, peer: PeerId, opts: LinksOptions) -> dict[str, Any]:
    me = Identity.generate()
    out: dict[str, Any] = {}
    dials = []
    for _ in range(opts.dials):
        start = time.perf_counter()
        link = await dial(url, me, OPEN_NETWORK_KEY, peer, 10.0, config=LinkConfig(ping_interval=0))
        dials.append((time.perf_counter() - start) * 1000)
        await link.close("bench")
    out["handshake_p50_ms"], out["handshake_p99_ms"] = percentile(dials, 50), percentile(dials, 99)
    note(f"handshake p50 {out['handshake_p50_ms']:.2f} ms over {opts.dials} dials")
    link = await dial(url, me, OPEN_NETWORK_KEY, peer, 10.0, config=LinkConfig(ping_interval=0))
    rtts = [await link.ping() * 1000 for _ in range(opts.pings)]
    await link.close("bench")
    out["rtt_p50_ms"], out["rtt_p99_ms"] = percentile(rtts, 50), percentile(rtts, 99)
    note(f"rtt p50 {out['rtt_p50_ms']:.3f} ms over {opts.pings} pings")
    body = bytes(opts.size)
    for coalesce in (False, True):
        name = "coalesced" if coalesce else "uncoalesced"
        link = await dial(url, me, OPEN_NETWORK_KEY, peer, 10.0, config=LinkConfig(ping_interval=0, coalesce=coalesce))
        frames_before = link.channel.frames_sent
        start = time.perf_counter()
        for _ in range(opts.messages):
            await link.send(SINK, body)
        await link.ping(timeout=120)
        elapsed = time.perf_counter() - start
        out[f"oneway_{name}_msgs_per_s"] = opts.messages / elapsed
        out[f"oneway_{name}_msgs_per_ws_msg"] = opts.messages / max(1, link.channel.frames_sent - frames_before)
        await link.close("bench")
        note(f"one-way {name}: {out[f'oneway_{name}_msgs_per_s']:,.0f} msgs/s")
    return out


def run(opts: LinksOptions) -> dict[str, Any]:
    """Start the node, measure, stop it; return the result object."""
    with tempfile.TemporaryDirectory(prefix="bench-links-") as tmp:
        node = NodeProcess(tmp, "--no-store", "--keepalive", "0", log_level="warning")
        node.start()
        try:
            measured = asyncio.run(_measure(node.url, PeerId.from_base58(str(node.info["peer_id"])), opts))
        finally:
            node.stop()
    result: dict[str, Any] = {
        "benchmark": "links",
        "endpoints": "bench process (node.link.dial) <-> timnode node process, 127.0.0.1",
        "messages": opts.messages,
        "size": opts.size,
        "pings": opts.pings,
        "dials": opts.dials,
        "core_handshake_ms": rounded(core_handshake_ms()),
    }
    result.update({k: rounded(v) for k, v in measured.items()})
    unc, co = result["oneway_uncoalesced_msgs_per_s"], result["oneway_coalesced_msgs_per_s"]
    result["coalescing_speedup"] = rounded(co / unc) if unc and co else None
    return result


def table_rows(r: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        ("handshake core (ms, no I/O)", r["core_handshake_ms"]),
        ("dial+handshake+identify p50 (ms)", r["handshake_p50_ms"]),
        ("dial+handshake+identify p99 (ms)", r["handshake_p99_ms"]),
        ("link RTT p50 (ms)", r["rtt_p50_ms"]),
        ("link RTT p99 (ms)", r["rtt_p99_ms"]),
        (f"one-way {r['size']} B, no coalescing (msgs/s)", r["oneway_uncoalesced_msgs_per_s"]),
        (f"one-way {r['size']} B, coalescing (msgs/s)", r["oneway_coalesced_msgs_per_s"]),
        ("msgs per WebSocket msg, coalescing", r["oneway_coalesced_msgs_per_ws_msg"]),
        ("coalescing speed-up", r["coalescing_speedup"]),
    ]


def parse_args(argv: list[str]) -> LinksOptions:
    ap = argparse.ArgumentParser(prog="python -m bench links", description=SUMMARY)
    ap.add_argument("--json", action="store_true", help="print only the JSON object on stdout")
    ap.add_argument("--messages", type=int, default=50_000, help="one-way messages per run (default 50000)")
    ap.add_argument("--size", type=int, default=64, help="one-way message body bytes (default 64)")
    ap.add_argument("--pings", type=int, default=2_000, help="sequential pings for the RTT (default 2000)")
    ap.add_argument("--dials", type=int, default=50, help="links opened to time the handshake (default 50)")
    a = ap.parse_args(argv)
    return LinksOptions(as_json=a.json, messages=a.messages, size=a.size, pings=a.pings, dials=a.dials)


def main(argv: list[str]) -> int:
    """``python -m bench links``; returns 0, or 2 when the node failed to start."""
    opts = parse_args(argv)
    try:
        result = run(opts)
    except NodeStartError as exc:
        print(f"bench links: {exc}", file=sys.stderr)
        return 2
    emit(result, "bench links", table_rows(result), opts.as_json)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
