"""The ``timnode`` command line.

timnode [NODE FLAGS]                 run a node (see ``timnode --help``)
timnode chat URL --user U ...        terminal client (``--json`` for scripts)
timnode peers --node HOST:PORT       who the node is linked to (``--json`` for scripts)
timnode admin --node HOST:PORT CMD   the admin API: status, sessions, kick, block, broadcast ...
timnode id / timnode keygen          print the PeerId / a new network key
timnode store status|init|add-shard|remove-shard|reseal   the record store (see timnode.store_cli)
timnode version                      print the version
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from im.runner import run
from node.errors import P2PError
from store.errors import BadDataKey, StoreError
from timnode import __version__
from timnode.config import ConfigError, add_node_flags, config_from_args

__all__ = ["main", "run_async"]


def run_async(coro: Coroutine[Any, Any, int | None]) -> int | None:
    """Run a coroutine on uvloop when installed, else asyncio (see ``im.runner``)."""
    return run(coro)


def _node_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="timnode", description="Run a timnode node.")
    add_node_flags(parser)
    parser.add_argument("--version", action="version", version=f"timnode {__version__}")
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        parser.error(str(exc))
    from timnode.daemon import run_node
    from timnode.logs import setup_logging

    setup_logging(config.log_level, config.log_format)
    try:
        run_async(run_node(config))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        sys.stderr.write(f"timnode: {exc}\n")
        return 1
    except (P2PError, BadDataKey) as exc:  # a bad --network-key or identity.key; a wrong data key
        sys.stderr.write(f"timnode: {exc}\n")
        return 2
    except StoreError as exc:  # the store could not be opened
        sys.stderr.write(f"timnode: {exc}\n")
        return 1
    return 0


def _chat_main(argv: list[str]) -> int:
    from im.chat import main as chat_main

    return chat_main(argv)


def _admin_main(argv: list[str]) -> int:
    from im.admin_cli import main as admin_main

    return admin_main(argv)


def _version_main(argv: list[str]) -> int:
    sys.stdout.write(f"timnode {__version__}\n")
    return 0


def _id_main(argv: list[str]) -> int:
    """``timnode id [--data-dir DIR]``: print this node's PeerId, creating the identity if missing."""
    from node.identity import Identity
    from timnode.config import default_data_dir

    parser = argparse.ArgumentParser(prog="timnode id", description="Print the node's PeerId.")
    parser.add_argument("--data-dir", default=default_data_dir(), help="directory holding identity.key")
    args = parser.parse_args(argv)
    sys.stdout.write(f"{Identity.load_or_create(args.data_dir).peer_id}\n")
    return 0


def _keygen_main(argv: list[str]) -> int:
    """``timnode keygen``: print a new network key for ``--network-key``."""
    from node.netkey import generate

    argparse.ArgumentParser(prog="timnode keygen", description="Print a new network key.").parse_args(argv)
    sys.stdout.write(generate() + "\n")
    return 0


def _peers_main(argv: list[str]) -> int:
    """``timnode peers --node HOST:PORT [--json]``: the node's ``/peers`` as a table."""
    import json
    import time
    import urllib.request

    parser = argparse.ArgumentParser(prog="timnode peers", description="Show a node's peer links.")
    parser.add_argument("--node", default="127.0.0.1:7400", help="HOST:PORT of the node (default 127.0.0.1:7400)")
    parser.add_argument("--json", action="store_true", help="print the JSON document")
    args = parser.parse_args(argv)
    base = args.node if "://" in args.node else f"http://{args.node}"
    try:
        with urllib.request.urlopen(base.replace("ws://", "http://") + "/peers", timeout=10) as reply:
            doc = json.loads(reply.read())
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"timnode peers: cannot reach {args.node}: {exc}\n")
        return 1
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        return 0
    out = [f"{doc['peer_id']}  network {doc['network']}  {', '.join(doc['addresses'])}"]
    out.append(f"{len(doc['peers'])} linked (max {doc['max_links']}), {doc['known']} known")
    if "reachability" in doc:
        relays = ", ".join(r[:16] + "…" for r in doc.get("relays", [])) or "-"
        out.append(
            f"reachability {doc['reachability']}, NAT mapping {doc.get('nat_mapping', 'unknown')}, "
            f"public address {doc.get('public_address') or '-'}, relays {relays}"
        )
    out.append(f"{'PEER':<53} {'TRANSPORT':<9} {'DIR':<8} {'SINCE':<8} {'RTT ms':>8}  ADDRESS")
    for p in doc["peers"]:
        rtt = "-" if p["rtt_ms"] is None else f"{p['rtt_ms']:.2f}"
        since = time.strftime("%H:%M:%S", time.localtime(p["since"]))
        addr = p["addresses"][0] if p["addresses"] else "-"
        out.append(f"{p['peer_id']:<53} {p['transport']:<9} {p['direction']:<8} {since:<8} {rtt:>8}  {addr}")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def _store_main(argv: list[str]) -> int:
    from timnode.store_cli import main as store_main

    return store_main(argv)


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "admin": _admin_main,
    "chat": _chat_main,
    "id": _id_main,
    "keygen": _keygen_main,
    "peers": _peers_main,
    "store": _store_main,
    "version": _version_main,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    if argv and argv[0] == "run":
        argv = argv[1:]
    return _node_main(argv)
