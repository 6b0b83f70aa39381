"""``python -m testnet``: a network of real nodes behind real NATs (network namespaces, root).

python -m testnet                       two public nodes + one node behind each NAT kind
python -m testnet --nat port-restricted --nat symmetric --nat symmetric
python -m testnet --json                the result document instead of the table
python -m testnet --delay 40 --loss 1   tc netem on the routers' WAN side (ms, percent)
python -m testnet --cleanup             remove leftover tnat-* namespaces (ours only)
python -m testnet --keep                keep the work directory (node data dirs, logs); deleted by default
python -m testnet --sim [--json]        the same scenario in-process on modelled NATs (no root; testnet/natsim.py)
python -m testnet --sim-dht [--nodes N] the in-process DHT simulation (testnet/sim.py)

``--json`` prints one object: ``{"pairs": [{"a": KIND, "b": KIND, "link": "direct"|"relay"|"failed",
"seconds": S, ...}], "sent": N, "delivered": N, ...}`` (KIND: public, full-cone, restricted,
port-restricted, symmetric), the same shape in both modes.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

from testnet.netns import NAT_KINDS, TestbedError, available, cleanup_all
from testnet.sim_cli import add_sim_flags, run_sim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testnet", description=__doc__.splitlines()[0])
    parser.add_argument("--nat", action="append", choices=[*NAT_KINDS, "restricted"],
                        help="a NATed node of this kind (repeatable; restricted = address-restricted)")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the network to settle")
    parser.add_argument("--json", action="store_true", help="print the JSON result")
    parser.add_argument("--cleanup", action="store_true", help="delete leftover tnat-* namespaces and exit")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (node data dirs and logs)")
    parser.add_argument("--delay", type=float, default=0.0, metavar="MS", help="netem delay on the WAN side (ms)")
    parser.add_argument("--loss", type=float, default=0.0, metavar="PCT", help="netem loss on the WAN side (%%)")
    parser.add_argument("--sim", action="store_true", help="the same scenario in-process on modelled NATs (no root)")
    parser.add_argument("--sim-dht", action="store_true", help="run the in-process DHT simulation instead")
    add_sim_flags(parser, loss_flag="--dht-loss")  # --nodes --seed --churn --dht-loss --puts --gets (sim_cli.py)
    args = parser.parse_args(argv)
    kinds = [("address-restricted" if k == "restricted" else k) for k in (args.nat or NAT_KINDS)]
    if args.sim_dht:
        return run_sim(args)  # table + JSON (--json: JSON only)
    if args.sim:
        from testnet.natsim import format_result, run_nat_sim

        result = run_nat_sim(kinds, delay_ms=args.delay, loss_pct=args.loss, seed=args.seed)
        sys.stdout.write((json.dumps(result, indent=2) if args.json else format_result(result)) + "\n")
        return 0 if result["ok"] else 1
    if args.cleanup:
        removed = cleanup_all()
        sys.stdout.write(f"removed {len(removed)} namespaces: {' '.join(removed) or '-'}\n")
        return 0
    reason = available()
    if reason:
        sys.stderr.write(f"python -m testnet: {reason}\n")
        return 2
    from testnet.real import format_matrix, run_real

    def log(text: str) -> None:
        if not args.json:
            sys.stderr.write(text + "\n")

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through Testbed.__exit__: the namespaces are deleted

    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a background job inherits it ignored
        signal.signal(signum, interrupted)
    try:
        result = run_real(
            kinds, timeout=args.timeout, delay_ms=args.delay, loss_pct=args.loss, log=log, keep_workdir=args.keep
        )
    except KeyboardInterrupt:
        sys.stderr.write("python -m testnet: interrupted; namespaces removed\n")
        return 130
    except TestbedError as exc:
        sys.stderr.write(f"python -m testnet: {exc}\n")
        return 2
    sys.stdout.write((json.dumps(result, indent=2) if args.json else format_matrix(result)) + "\n")
    if args.keep and not args.json:
        sys.stdout.write(f"work directory kept: {result['workdir']}\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
