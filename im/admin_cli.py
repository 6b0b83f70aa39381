"""``timnode admin``: the admin API (im/admin.py) from a terminal.

    timnode admin [--node HOST:PORT] [--token T] [--json] status|peers|dht|sessions|store|blocked
    timnode admin ... kick USER [DEVICE]
    timnode admin ... block USER [--reason R] | unblock USER
    timnode admin ... broadcast TEXT [--to USER|node|all]

The token comes from ``--token`` or the environment variable ``TIMNODE_ADMIN_TOKEN`` (which
keeps it out of ``ps`` output and shell history). Output is a short human summary, or the
API's JSON document with ``--json``. Exit status: 0 done, 1 the node refused or could not be
reached, 2 usage (no token, bad arguments).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

__all__ = ["main", "AdminClient", "AdminError"]

TOKEN_ENV = "TIMNODE_ADMIN_TOKEN"


class AdminError(Exception):
    """The node answered with an error status, or could not be reached (status 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class AdminClient:
    """A tiny synchronous client of ``/admin/*``."""

    def __init__(self, node: str, token: str, timeout: float = 30.0) -> None:
        base = node if "://" in node else f"http://{node}"
        self.base = base.replace("ws://", "http://").replace("wss://", "https://").rstrip("/")
        self.token = token
        self.timeout = timeout

    def call(self, method: str, route: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        request = urllib.request.Request(
            f"{self.base}/admin/{route}{query}",
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
            data=b"" if method == "POST" else None,
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                doc: dict[str, Any] = json.loads(reply.read())
                return doc
        except urllib.error.HTTPError as exc:
            raise AdminError(exc.code, _error_text(exc)) from None
        except (OSError, ValueError) as exc:
            raise AdminError(0, f"cannot reach {self.base}: {exc}") from None


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("error", exc.reason))
    except (ValueError, AttributeError):
        return str(exc.reason)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="timnode admin", description="Call a node's admin API.")
    parser.add_argument("--node", default="127.0.0.1:7400", help="HOST:PORT of the node (default 127.0.0.1:7400)")
    parser.add_argument("--token", default=None, help=f"admin token (default: ${TOKEN_ENV})")
    parser.add_argument("--json", action="store_true", help="print the JSON document")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (
        ("status", "node status and live figures"),
        ("peers", "peer links and their kinds"),
        ("dht", "DHT summary"),
        ("sessions", "online users and their devices"),
        ("store", "store status"),
        ("blocked", "blocked accounts"),
    ):
        sub.add_parser(name, help=text)
    kick = sub.add_parser("kick", help="sign a user (or one device) out: Kicked ADMIN, close 4005")
    kick.add_argument("user")
    kick.add_argument("device", nargs="?", default="")
    block = sub.add_parser("block", help="block an account: no login, sessions kicked (persisted)")
    block.add_argument("user")
    block.add_argument("--reason", default="")
    unblock = sub.add_parser("unblock", help="lift a block")
    unblock.add_argument("user")
    broadcast = sub.add_parser("broadcast", help="send a system message")
    broadcast.add_argument("text")
    broadcast.add_argument("--to", default="node", help='a user name, "node" (online here, default) or "all"')
    return parser


def _request(args: argparse.Namespace) -> tuple[str, str, dict[str, str]]:
    command = args.command
    if command == "kick":
        return "POST", "kick", {"user": args.user, **({"device": args.device} if args.device else {})}
    if command == "block":
        return "POST", "block", {"user": args.user, **({"reason": args.reason} if args.reason else {})}
    if command == "unblock":
        return "POST", "unblock", {"user": args.user}
    if command == "broadcast":
        return "POST", "broadcast", {"text": args.text, "to": args.to}
    return "GET", command, {}


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV, "")
    if not token:
        sys.stderr.write(f"timnode admin: no token (--token or ${TOKEN_ENV})\n")
        return 2
    method, route, params = _request(args)
    try:
        doc = AdminClient(args.node, token).call(method, route, params)
    except AdminError as exc:
        what = f"HTTP {exc.status}: " if exc.status else ""
        sys.stderr.write(f"timnode admin {args.command}: {what}{exc.message}\n")
        return 1
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write("\n".join(FORMATTERS[args.command](doc)) + "\n")
    return 0


# ---------------------------------------------------------------------- human output


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _kinds(by_kind: dict[str, int]) -> str:
    return ", ".join(f"{kind} {count}" for kind, count in sorted(by_kind.items())) or "none"


def _status(doc: dict[str, Any]) -> list[str]:
    proc, dht, msgs = doc.get("process", {}), doc.get("dht_summary", {}), doc.get("messages", {})
    dht_text = f"{dht.get('routing_table', 0)} contacts, {dht.get('stored_records', 0)} records"
    return [
        f"node       {doc['node']}  (timnode {doc['version']}, up {doc['uptime_s']:.0f} s)",
        f"clients    {doc['connections']} connections, {doc['online_users']} users online, {doc['sessions']} sessions",
        f"messages   sent {msgs.get('sent', 0)}, pushed {msgs.get('pushed', 0)}, acked {msgs.get('acked', 0)}",
        f"peers      {doc['peers']} ({_kinds(doc.get('peers_by_kind', {}))})",
        f"dht        {dht_text if dht.get('enabled') else 'disabled'}",
        f"store      {doc['store'].get('backend', '?')}, durable {doc['store'].get('durable')}, "
        f"shards {doc.get('store_shards', 1)}",
        f"process    pid {proc.get('pid')}, cpu {proc.get('cpu_seconds', 0):.1f} s, "
        f"memory {_bytes(proc.get('resident_memory_bytes', 0))}",
    ]


def _peers(doc: dict[str, Any]) -> list[str]:
    out = [f"{len(doc['peers'])} linked (max {doc['max_links']}): {_kinds(doc.get('by_kind', {}))}"]
    out.append(f"{'PEER':<53} {'KIND':<6} {'DIR':<8} {'RTT ms':>8}  ADDRESS")
    for p in doc["peers"]:
        rtt = "-" if p["rtt_ms"] is None else f"{p['rtt_ms']:.2f}"
        addr = p["addresses"][0] if p["addresses"] else "-"
        out.append(f"{p['peer_id']:<53} {p['transport']:<6} {p['direction']:<8} {rtt:>8}  {addr}")
    return out


def _dht(doc: dict[str, Any]) -> list[str]:
    if not doc.get("enabled"):
        return ["DHT disabled on this node"]
    return [
        f"mode {doc.get('mode')}, bootstrapped {doc.get('bootstrapped')}",
        f"routing table {doc.get('routing_table', 0)} contacts in {len(doc.get('buckets', []))} buckets",
        f"stored {doc.get('stored_records', 0)} records under {doc.get('stored_keys', 0)} keys",
    ]


def _sessions(doc: dict[str, Any]) -> list[str]:
    out = [f"{doc['online_users']} users online, {doc['sessions']} sessions"]
    if doc["users"]:
        out.append(f"{'USER':<24} {'DEVICE':<24} {'SINCE':<19}  ADDRESS")
    for user in doc["users"]:
        for d in user["devices"]:
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d["login_at"] / 1000))
            out.append(f"{user['user']:<24} {d['device']:<24} {since:<19}  {d['address']}")
    return out


def _store(doc: dict[str, Any]) -> list[str]:
    facts = ", ".join(f"{k}={v}" for k, v in sorted(doc.get("facts", {}).items()))
    return [
        f"backend {doc['backend']}, durable {doc['durable']}, shards {doc['shards']}, "
        f"{doc.get('blocked_accounts', 0)} blocked accounts",
        facts,
    ]


def _blocked(doc: dict[str, Any]) -> list[str]:
    if not doc["blocked"]:
        return ["no blocked accounts"]
    out = []
    for entry in doc["blocked"]:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.get("at", 0) / 1000))
        reason = f"  ({entry['reason']})" if entry.get("reason") else ""
        out.append(f"{entry.get('user', '?'):<24} since {at}{reason}")
    return out


def _kick(doc: dict[str, Any]) -> list[str]:
    which = f" device {doc['device']}" if doc.get("device") else ""
    return [f"kicked {doc['kicked']} session(s) of {doc['user']}{which}"]


def _block(doc: dict[str, Any]) -> list[str]:
    return [f"blocked {doc['user']} (kicked {doc['kicked']} session(s))"]


def _unblock(doc: dict[str, Any]) -> list[str]:
    return [f"unblocked {doc['user']}" + ("" if doc.get("was_blocked") else " (was not blocked)")]


def _broadcast(doc: dict[str, Any]) -> list[str]:
    return [
        f"system message {doc['message_id']} to {doc.get('to', doc['scope'])}: {doc['recipients']} recipients, "
        f"{doc['stored']} stored, {doc['pushed']} devices pushed"
    ]


FORMATTERS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "status": _status,
    "peers": _peers,
    "dht": _dht,
    "sessions": _sessions,
    "store": _store,
    "blocked": _blocked,
    "kick": _kick,
    "block": _block,
    "unblock": _unblock,
    "broadcast": _broadcast,
}
