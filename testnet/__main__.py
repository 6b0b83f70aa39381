"""``python -m testnet``: a network of real nodes behind real NATs (network namespaces, root).

python -m testnet                       two public nodes + one node behind each NAT kind
python -m testnet --nat port-restricted --nat symmetric --nat symmetric
python -m testnet --json                the result document instead of the table
python -m testnet --cleanup             remove leftover tnat-* namespaces (ours only)
python -m testnet --sim [--nodes N]     the in-process DHT simulation (testnet/sim.py)
"""

from __future__ import annotations

import argparse
import json
import sys

from testnet.netns import NAT_KINDS, TestbedError, available, cleanup_all
from testnet.sim_cli import add_sim_flags, run_sim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testnet", description=__doc__.splitlines()[0])
    parser.add_argument("--nat", action="append", choices=NAT_KINDS, help="a NATed node of this kind (repeatable)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the network to settle")
    parser.add_argument("--json", action="store_true", help="print the JSON result")
    parser.add_argument("--cleanup", action="store_true", help="delete leftover tnat-* namespaces and exit")
    parser.add_argument("--sim", action="store_true", help="run the in-process DHT simulation instead")
    add_sim_flags(parser)  # --nodes --seed --churn --loss --puts --gets (testnet/sim_cli.py)
    args = parser.parse_args(argv)
    if args.sim:
        return run_sim(args)  # table + JSON (--json: JSON only)
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

    try:
        result = run_real(args.nat or NAT_KINDS, timeout=args.timeout, log=log)
    except TestbedError as exc:
        sys.stderr.write(f"python -m testnet: {exc}\n")
        return 2
    sys.stdout.write((json.dumps(result, indent=2) if args.json else format_matrix(result)) + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
