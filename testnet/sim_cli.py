"""``python -m testnet --sim-dht``: the seeded in-process DHT simulation (``testnet.sim.run_scenario``).

    python -m testnet --sim-dht [--nodes N] [--seed S] [--churn F] [--dht-loss F] [--puts N] [--gets N] [--json]
    python -m testnet.sim_cli [--nodes N] [--seed S] [--churn F] [--loss F] [--puts N] [--gets N] [--json]

Prints a table of the phases (join, put, get, churn, get after churn) and then the JSON
document (only the JSON with ``--json``). Everything but ``timings`` is a function of the
seed, so a run can be replayed. Also runnable as ``python -m testnet.sim_cli``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from testnet.sim import run_scenario

__all__ = ["add_sim_flags", "format_table", "main", "run_sim"]


def add_sim_flags(parser: argparse.ArgumentParser, loss_flag: str = "--loss") -> None:
    """The simulation's flags (``--sim`` itself is the caller's); ``python -m testnet`` spells loss ``--dht-loss``."""
    parser.add_argument("--nodes", type=int, default=200, help="--sim: number of simulated nodes")
    parser.add_argument("--seed", type=int, default=1, help="--sim: random seed (replays the run)")
    parser.add_argument("--churn", type=float, default=0.3, help="--sim: fraction of nodes that crash and are replaced")
    parser.add_argument(loss_flag, dest="dht_loss", type=float, default=0.01, help="DHT sim: fraction of messages lost")
    parser.add_argument("--puts", type=int, default=200, help="--sim: users published")
    parser.add_argument("--gets", type=int, default=1000, help="--sim: lookups per get phase")


def run_sim(args: argparse.Namespace) -> int:
    result = run_scenario(
        nodes=args.nodes, seed=args.seed, churn=args.churn, loss=args.dht_loss, puts=args.puts, gets=args.gets
    )
    if not getattr(args, "json", False):
        sys.stdout.write(format_table(result) + "\n\n")
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    ok = all(result[phase]["success_rate"] >= 0.99 for phase in ("get", "get_after_churn"))
    return 0 if ok else 1


def format_table(result: dict[str, Any]) -> str:
    """One line per phase: what it did, its messages, its wall-clock seconds."""
    t = result["timings"]
    j, p, c, net = result["join"], result["put"], result["churn"], result["network"]
    rows = [
        ("join", f"{j['bootstrapped']}/{result['nodes']} joined, table mean {j['table_mean']} min {j['table_min']}",
         j["messages"], t["join"]),
        ("put", f"{p['completed']}/{p['puts']} puts, stored on {p['stored_mean']} (min {p['stored_min']}), "
         f"replicas {p['replicas_mean']}", "", t["put"]),
        *((name, _get_line(result[name]), result[name]["messages"], t[name]) for name in ("get",)),
        ("churn", f"{c['crashed']} crashed, {c['joined']} joined, replicas {c['replicas_mean']}", c["messages"],
         t["churn"]),
        *((name, _get_line(result[name]), result[name]["messages"], t[name]) for name in ("get_after_churn",)),
        ("total", f"seed {result['seed']}, loss {result['loss']}, {net['timeouts']} timeouts, "
         f"{net['virtual_s']} virtual s", net["messages"], t["total"]),
    ]  # fmt: skip
    lines = [f"{'phase':<16} {'result':<72} {'messages':>9} {'wall s':>7}"]
    lines += [f"{name:<16} {text:<72} {msgs!s:>9} {secs:>7.2f}" for name, text, msgs, secs in rows]
    return "\n".join(lines)


def _get_line(get: dict[str, Any]) -> str:
    return (f"{get['found']}/{get['lookups']} found ({get['success_rate']:.3f}), hops mean {get['hops_mean']} "
            f"max {get['hops_max']}, cache hits {get['cache_hits']}")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testnet.sim_cli", description=__doc__.splitlines()[0])
    parser.add_argument("--sim", "--sim-dht", action="store_true", help="(accepted: python -m testnet's flag)")
    parser.add_argument("--json", action="store_true", help="print only the JSON document")
    add_sim_flags(parser)
    return run_sim(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
