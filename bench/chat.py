"""Chat throughput and latency of a real node, against a raw WebSocket relay baseline.

``python -m bench chat [--pairs P] [--no-store] [--json] [--duration S] [--messages N] [--rate R] [--rounds N]``

Both servers start first (the node, ``python -m timnode``, and the raw relay of
:mod:`bench.relay`, each in its own process). Each of ``--rounds`` rounds then measures
the node and right after it the relay: P pairs of users are brought up on the server (one
WebSocket each, registered through the protocol; fresh names every round) and two phases
run over them:

1. **max**: closed loop, each sender keeps ``--window`` sends in flight and sends
   again as each answer comes back. Gives ``msgs_per_s`` (messages received per
   second over the measured window) and the latency under saturation.
2. **half**: open loop, sends paced at ``--rate`` msgs/s (default: half the node's
   measured max) round-robin over the senders. Gives ``p50_ms``/``p99_ms``, the
   figure we report ("p99 < 20 ms at half of the node's maximum rate"). The relay
   is paced at the same absolute rate.

Throughput on a shared machine drifts by tens of percent within a minute, so a round
measures node and relay back to back and the reported figures are medians over the
rounds (``ratio``: the median of the per-round ratios); ``rounds_detail`` keeps each
round's own figures. Receivers acknowledge deliveries in batches (256 ids or 50 ms, as
the SDKs do). The load generator runs in ``--procs`` worker processes (:mod:`bench.pool`).
Stdout gets a table and the JSON object (only the JSON with ``--json``); progress goes to
stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import secrets
import sys
from dataclasses import dataclass, field
from typing import Any

from bench.loadgen import OpenResult, PhaseResult, PhaseSpec, Target
from bench.pool import WorkerFailed, WorkerPool
from bench.report import emit, median, note, percentile, rounded
from bench.servers import ServerFailed, ServerProcess, node_server, relay_server

__all__ = ["SUMMARY", "ChatOptions", "Merged", "TargetRun", "build_result", "main", "round_result", "run"]

SUMMARY = "chat msgs/s and p50/p99 latency of a node vs a raw WebSocket relay"
P99_TARGET_MS = 20.0
LAG_WARN_MS = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatOptions:
    """Parsed command line."""

    pairs: int = 100
    store: bool = True
    as_json: bool = False
    duration: float = 5.0
    warmup: float = 1.0
    messages: int = 0
    rate: float = 0.0
    window: int = 8
    procs: int = 1
    size: int = 64
    target: str = "both"
    loop: str = "auto"
    concurrency: int = 16
    node_args: tuple[str, ...] = ()
    rounds: int = 3


@dataclass(slots=True, kw_only=True)
class Merged:
    """One phase's measurements summed over the worker processes."""

    msgs_per_s: float = 0.0
    delivered: int = 0
    sent: int = 0
    pushes: int = 0
    receipts: int = 0
    errors: int = 0
    gen_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    skipped: int = 0
    undrained: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)

    def p(self, q: float) -> float:
        """Latency percentile in ms."""
        return percentile(self.latencies_ms, q)

    def server_us_per_msg(self) -> float:
        """Server CPU microseconds per delivered message over the whole phase."""
        return self.server_cpu_s * 1e6 / self.pushes if self.pushes else math.nan

    def gen_us_per_msg(self) -> float:
        """Load-generator CPU microseconds (all processes) per delivered message."""
        return self.gen_cpu_s * 1e6 / self.pushes if self.pushes else math.nan


@dataclass(slots=True, kw_only=True)
class TargetRun:
    """Both phases against one server."""

    pairs: int
    open_errors: int
    register_s: float
    top: Merged
    half: Merged
    half_rate: float
    rss_mb: float | None

    @property
    def errors(self) -> int:
        """Every failure: registrations, error answers, lost connections, skipped or unanswered sends."""
        phases = (self.top, self.half)
        return self.open_errors + sum(p.errors + p.skipped + p.undrained for p in phases)


def merge(results: list[PhaseResult]) -> Merged:
    """Sum rates and counters, pool latency samples."""
    out = Merged()
    for res in results:
        if res.window_s > 0:
            out.msgs_per_s += res.delivered / res.window_s
        out.delivered += res.delivered
        out.sent += res.sent
        out.pushes += res.pushes
        out.receipts += res.receipts
        out.gen_cpu_s += res.cpu_s
        out.errors += res.errors
        out.skipped += res.skipped
        out.undrained += res.undrained
        out.latencies_ms.extend(res.latencies_ms)
        out.lag_ms.extend(res.lag_ms)
    return out


def make_pairs(count: int) -> list[tuple[str, str]]:
    """``count`` (sender, receiver) user names, unique to this run."""
    tag = secrets.token_hex(4)
    return [(f"bench{tag}s{i}", f"bench{tag}r{i}") for i in range(count)]


def _open(pool: WorkerPool, server: ServerProcess, dialect: str, pairs: list[tuple[str, str]],
          opts: ChatOptions) -> list[OpenResult]:
    share = max(1, math.ceil(opts.concurrency / pool.count))
    targets = [
        Target(url=server.url, dialect=dialect, pairs=tuple(pairs[i :: pool.count]), concurrency=share)
        for i in range(pool.count)
    ]
    opened = pool.open(targets)
    first = next((o.first_error for o in opened if o.first_error), "")
    note(f"{dialect}: {sum(o.pairs for o in opened)} pairs up in {max(o.seconds for o in opened):.1f} s"
         + (f", {sum(o.errors for o in opened)} failed ({first})" if first else ""))
    if not any(o.pairs for o in opened):
        raise WorkerFailed(f"no pair could be registered on {dialect}: {first}")
    return opened


def _phase(pool: WorkerPool, server: ServerProcess, opts: ChatOptions, mode: str, rate: float = 0.0) -> Merged:
    spec = PhaseSpec(
        mode=mode, warmup=opts.warmup, duration=opts.duration, window=opts.window,
        rate=rate / pool.count, messages=math.ceil(opts.messages / pool.count), payload_size=opts.size,
    )
    cpu_start = server.cpu_s()
    merged = merge(pool.phase([spec] * pool.count))
    merged.server_cpu_s = server.cpu_s() - cpu_start
    note(f"  {mode}: {merged.msgs_per_s:,.0f} msgs/s, p50 {merged.p(50):.2f} ms, p99 {merged.p(99):.2f} ms,"
         f" errors {merged.errors}, server {merged.server_us_per_msg():.0f} us/msg,"
         f" generator {merged.gen_us_per_msg():.0f} us/msg")
    lag = percentile(merged.lag_ms, 99)
    if lag > LAG_WARN_MS:
        note(f"  warning: the pacer sent up to {lag:.0f} ms late (p99): the generator was short of CPU")
    return merged


def measure(pool: WorkerPool, server: ServerProcess, dialect: str, pairs: list[tuple[str, str]],
            opts: ChatOptions, paced_rate: float = 0.0) -> TargetRun:
    """Bring the pairs up on ``server``, run the max and half phases, close the pairs."""
    opened = _open(pool, server, dialect, pairs, opts)
    try:
        top = _phase(pool, server, opts, "window")
        rate = opts.rate or paced_rate or top.msgs_per_s / 2
        half = _phase(pool, server, opts, "paced", rate)
        rss = server.rss_mb()
    finally:
        pool.close()
    return TargetRun(
        pairs=sum(o.pairs for o in opened), open_errors=sum(o.errors for o in opened),
        register_s=max(o.seconds for o in opened), top=top, half=half, half_rate=rate, rss_mb=rss,
    )


def run(opts: ChatOptions) -> tuple[list[TargetRun], list[TargetRun]]:
    """Measure the node and/or the raw relay, ``opts.rounds`` times each, alternating;
    returns (node runs, raw runs), one per round."""
    nodes: list[TargetRun] = []
    raws: list[TargetRun] = []
    with contextlib.ExitStack() as servers, WorkerPool(opts.procs, opts.loop) as pool:
        node_server_ = raw_server = None
        if opts.target in ("both", "node"):
            note(f"starting node ({'store' if opts.store else 'no-store'}), {opts.pairs} pairs")
            node_server_ = servers.enter_context(node_server(opts.store, list(opts.node_args)))
        if opts.target in ("both", "raw"):
            note("starting raw relay")
            raw_server = servers.enter_context(relay_server(opts.loop))
        for round_ in range(1, opts.rounds + 1):
            if opts.rounds > 1:
                note(f"round {round_} of {opts.rounds}")
            pairs = make_pairs(opts.pairs)
            node = measure(pool, node_server_, "node", pairs, opts) if node_server_ else None
            if node is not None:
                nodes.append(node)
            if raw_server is not None:
                raws.append(measure(pool, raw_server, "relay", pairs, opts, node.half_rate if node else 0.0))
    return nodes, raws


def _node_fields(node: TargetRun | None) -> dict[str, Any]:
    if node is None:
        keys = ("msgs_per_s", "p50_ms", "p99_ms", "max_p50_ms", "max_p99_ms", "half_rate_msgs_per_s",
                "half_rate_achieved_msgs_per_s", "rss_mb", "pace_lag_p99_ms", "register_s", "sent", "receipts",
                "cpu_us_per_msg", "gen_cpu_us_per_msg")
        return dict.fromkeys(keys)
    return {
        "msgs_per_s": rounded(node.top.msgs_per_s, 1),
        "p50_ms": rounded(node.half.p(50)),
        "p99_ms": rounded(node.half.p(99)),
        "max_p50_ms": rounded(node.top.p(50)),
        "max_p99_ms": rounded(node.top.p(99)),
        "half_rate_msgs_per_s": rounded(node.half_rate, 1),
        "half_rate_achieved_msgs_per_s": rounded(node.half.msgs_per_s, 1),
        "rss_mb": rounded(node.rss_mb, 1),
        "pace_lag_p99_ms": rounded(percentile(node.half.lag_ms, 99)),
        "register_s": rounded(node.register_s, 2),
        "sent": node.top.sent + node.half.sent,
        "receipts": node.top.receipts + node.half.receipts,
        "cpu_us_per_msg": rounded(node.top.server_us_per_msg(), 1),
        "gen_cpu_us_per_msg": rounded(node.top.gen_us_per_msg(), 1),
    }


def _raw_fields(raw: TargetRun | None) -> dict[str, Any]:
    if raw is None:
        keys = ("raw_msgs_per_s", "raw_p50_ms", "raw_p99_ms", "raw_max_p50_ms", "raw_max_p99_ms",
                "raw_paced_msgs_per_s", "raw_pace_lag_p99_ms", "raw_rss_mb", "raw_cpu_us_per_msg",
                "raw_gen_cpu_us_per_msg")
        return dict.fromkeys(keys)
    return {
        "raw_msgs_per_s": rounded(raw.top.msgs_per_s, 1),
        "raw_p50_ms": rounded(raw.half.p(50)),
        "raw_p99_ms": rounded(raw.half.p(99)),
        "raw_max_p50_ms": rounded(raw.top.p(50)),
        "raw_max_p99_ms": rounded(raw.top.p(99)),
        "raw_paced_msgs_per_s": rounded(raw.half_rate, 1),
        "raw_pace_lag_p99_ms": rounded(percentile(raw.half.lag_ms, 99)),
        "raw_rss_mb": rounded(raw.rss_mb, 1),
        "raw_cpu_us_per_msg": rounded(raw.top.server_us_per_msg(), 1),
        "raw_gen_cpu_us_per_msg": rounded(raw.top.gen_us_per_msg(), 1),
    }


def round_result(opts: ChatOptions, node: TargetRun | None, raw: TargetRun | None) -> dict[str, Any]:
    """One round's figures (the JSON keys, documented in bench/README.md)."""
    result = _settings(opts)
    result.update(_node_fields(node))
    result.update(_raw_fields(raw))
    ratio = node.top.msgs_per_s / raw.top.msgs_per_s if node and raw and raw.top.msgs_per_s else None
    result["ratio"] = rounded(ratio)
    cpu, raw_cpu = result["cpu_us_per_msg"], result["raw_cpu_us_per_msg"]
    result["cpu_ratio"] = rounded(raw_cpu / cpu) if cpu and raw_cpu else None
    _judge(result, node, raw)
    return result


def _settings(opts: ChatOptions) -> dict[str, Any]:
    return {
        "bench": "chat", "pairs": opts.pairs, "store": opts.store, "window": opts.window,
        "procs": opts.procs, "payload_bytes": opts.size, "duration_s": opts.duration, "warmup_s": opts.warmup,
    }


def _judge(result: dict[str, Any], node: TargetRun | None, raw: TargetRun | None) -> None:
    result["p99_target_met"] = _p99_met(result["p99_ms"])
    result["node_errors"] = node.errors if node else None
    result["raw_errors"] = raw.errors if raw else None
    result["errors"] = (node.errors if node else 0) + (raw.errors if raw else 0)


def _p99_met(p99: float | None) -> bool | None:
    return None if p99 is None else p99 < P99_TARGET_MS


#: per-round keys that add up over the rounds; the other numbers are medians over the rounds
_SUMMED = ("sent", "receipts", "node_errors", "raw_errors", "errors")
#: per-round figures listed in ``rounds_detail``
_DETAIL = ("msgs_per_s", "raw_msgs_per_s", "ratio", "half_rate_msgs_per_s", "p50_ms", "p99_ms", "raw_p99_ms",
           "cpu_us_per_msg", "raw_cpu_us_per_msg", "pace_lag_p99_ms")


def build_result(opts: ChatOptions, nodes: list[TargetRun], raws: list[TargetRun]) -> dict[str, Any]:
    """The JSON object: medians over the rounds (sums for counts), and each round's figures."""
    count = max(len(nodes), len(raws), 1)
    rounds = [
        round_result(opts, nodes[i] if i < len(nodes) else None, raws[i] if i < len(raws) else None)
        for i in range(count)
    ]
    result = dict(rounds[0])
    settings = _settings(opts)
    for key, value in rounds[0].items():
        if key in settings:
            continue
        values = [r[key] for r in rounds]
        if key in _SUMMED and all(v is not None for v in values):
            result[key] = sum(values)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            present = [float(v) for v in values if v is not None]
            result[key] = rounded(median(present)) if present else None
    result["p99_target_met"] = _p99_met(result["p99_ms"])  # judged on the median
    result["rounds"] = count
    result["rounds_detail"] = [{key: r[key] for key in _DETAIL} for r in rounds]
    return result


def table_rows(result: dict[str, Any]) -> list[tuple[str, Any]]:
    """Human table rows for ``result``."""
    return [
        ("pairs / window / procs", f"{result['pairs']} / {result['window']} / {result['procs']}"),
        ("rounds (figures: medians)", result["rounds"]),
        ("store", result["store"]),
        ("node max msgs/s", result["msgs_per_s"]),
        ("node p50 / p99 at max (ms)", _pair(result["max_p50_ms"], result["max_p99_ms"])),
        ("paced rate msgs/s", result["half_rate_msgs_per_s"]),
        ("node p50 / p99 paced (ms)", _pair(result["p50_ms"], result["p99_ms"])),
        (f"p99 < {P99_TARGET_MS:.0f} ms", result["p99_target_met"]),
        ("node RSS (MiB)", result["rss_mb"]),
        ("node CPU us/msg (max phase)", result["cpu_us_per_msg"]),
        ("raw max msgs/s", result["raw_msgs_per_s"]),
        ("raw p50 / p99 at max (ms)", _pair(result["raw_max_p50_ms"], result["raw_max_p99_ms"])),
        ("raw p50 / p99 paced (ms)", _pair(result["raw_p50_ms"], result["raw_p99_ms"])),
        ("raw CPU us/msg (max phase)", result["raw_cpu_us_per_msg"]),
        ("ratio node/raw msgs/s", result["ratio"]),
        ("ratio raw/node CPU per msg", result["cpu_ratio"]),
        ("errors", result["errors"]),
        ("ratio per round", " / ".join(_fmt(r["ratio"]) for r in result["rounds_detail"])),
        ("node p99 paced per round (ms)", " / ".join(_fmt(r["p99_ms"], 1) for r in result["rounds_detail"])),
    ]


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pair(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a:.2f} / {b:.2f}"


def parse_args(argv: list[str]) -> ChatOptions:
    """Command line to :class:`ChatOptions`."""
    ap = argparse.ArgumentParser(prog="python -m bench chat", description=SUMMARY)
    ap.add_argument("--pairs", type=int, default=100, help="sender/receiver pairs (default 100)")
    ap.add_argument("--no-store", action="store_true", help="run the node with --no-store")
    ap.add_argument("--json", action="store_true", help="print only the JSON object on stdout")
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per phase (default 5)")
    ap.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each window")
    ap.add_argument("--messages", type=int, default=0, help="end each window after N deliveries")
    ap.add_argument("--rate", type=float, default=0.0, help="paced phase msgs/s (default: half the node max)")
    ap.add_argument("--window", type=int, default=8, help="sends in flight per sender in the max phase")
    ap.add_argument("--procs", type=int, default=1, help="load-generator processes (default 1)")
    ap.add_argument("--size", type=int, default=64, help="message payload bytes, >= 8 (default 64)")
    ap.add_argument("--target", choices=("both", "node", "raw"), default="both", help="servers to measure")
    ap.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto", help="event loop")
    ap.add_argument("--concurrency", type=int, default=16, help="registrations in flight (default 16)")
    ap.add_argument("--node-arg", action="append", default=[], help="extra flag for the node (repeatable)")
    ap.add_argument("--rounds", type=int, default=3, help="node+relay rounds; figures are medians (default 3)")
    a = ap.parse_args(argv)
    if a.rounds < 1:
        ap.error("--rounds must be >= 1")
    return ChatOptions(
        pairs=a.pairs, store=not a.no_store, as_json=a.json, duration=a.duration, warmup=a.warmup,
        messages=a.messages, rate=a.rate, window=a.window, procs=a.procs, size=max(8, a.size),
        target=a.target, loop=a.loop, concurrency=a.concurrency, node_args=tuple(a.node_arg), rounds=a.rounds,
    )


def main(argv: list[str]) -> int:
    """``python -m bench chat``; returns 0, or 2 when a server or worker failed."""
    opts = parse_args(argv)
    try:
        nodes, raws = run(opts)
    except (ServerFailed, WorkerFailed) as exc:
        print(f"bench chat: {exc}", file=sys.stderr)
        return 2
    result = build_result(opts, nodes, raws)
    emit(result, f"bench chat ({opts.pairs} pairs)", table_rows(result), opts.as_json)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
