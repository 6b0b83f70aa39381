"""``timnode store ...``: look at and reshape the record store.

    timnode store status       [--data-dir D | --store URL] [--counts] [--json]
    timnode store init         [--data-dir D] [--shard URL ...]      (node stopped)
    timnode store add-shard URL    [--data-dir D | --store URL] [--no-wait]
    timnode store remove-shard URL [--data-dir D | --store URL] [--no-wait]
    timnode store reseal       [--data-dir D | --store URL] [--data-key SPEC]

With a node running on ``--data-dir`` (its ``node.json`` exists) and no ``--store``, the
command goes to the node's ``/admin/store/*`` routes with the node's admin token (``--token``,
else ``TIMNODE_ADMIN_TOKEN``; the node must run with ``--admin-token``, the same token as
``timnode admin``): the node rebalances or reseals itself while it serves (a reseal uses the
node's own data key; ``--data-key`` is for a stopped node). Otherwise it
opens the store directly (the node must be stopped) and, for add/remove-shard, carries
out the whole rebalance before returning; an interrupted one resumes on the next open.
``init`` is always offline: it creates the sharded layout before a node starts on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from store.api import Put, RecordStore
from store.crypto import Keyring, keyring_from_spec, load_or_create_data_key
from store.errors import StoreError
from store.factory import SHARDS_SCHEME, open_raw, open_store, write_shards_file
from store.rebalance import add_shard, remove_shard, run_rebalance
from store.reseal import END, reseal
from store.sealed import SealedStore
from store.sharded import ShardedStore, create_shards, find_sharded, pages
from timnode.config import default_data_dir
from timnode.store_admin import SHARDS_FILE, status_doc, store_url

__all__ = ["main"]


_COMMANDS = {
    "status": "shards, slots, root, rebalance progress (from the running node, else from the store)",
    "init": "make the data directory's store sharded; offline only: run it before a node starts on it "
    "(a node running there is refused)",
    "add-shard": "add a shard and move an even share of slots onto it (online through the running node)",
    "remove-shard": "move every slot off a shard and drop it; removing the root moves its role "
    "(the map and members registry) to the oldest remaining shard",
    "reseal": "rewrite values sealed under older key versions (online through the running node, "
    "which uses its own --data-key; --data-key applies when no node runs)",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="timnode store", description="Inspect and reshape the record store.")
    sub = parser.add_subparsers(dest="action", required=True)
    for name, about in _COMMANDS.items():
        cmd = sub.add_parser(name, help=about, description=about)
        cmd.add_argument("--data-dir", default=default_data_dir(), help="the node's data directory")
        cmd.add_argument("--json", action="store_true", help="print JSON")
        if name != "init":
            cmd.add_argument("--store", default="", help="store URL (default: the data directory's store)")
            cmd.add_argument(
                "--token",
                default="",
                help="the running node's admin token (default: $TIMNODE_ADMIN_TOKEN)",
            )
        if name in ("add-shard", "remove-shard"):
            cmd.add_argument("url", help="the shard's store URL (sqlite://... or postgresql://...)")
            cmd.add_argument("--no-wait", action="store_true", help="return once the node started the rebalance")
        if name == "status":
            cmd.add_argument("--counts", action="store_true", help="count records per shard (scans everything)")
        if name in ("reseal", "status", "init"):
            cmd.add_argument("--data-key", default="", help="data key spec (default <data-dir>/data.key)")
        if name == "init":
            cmd.add_argument("--shard", action="append", default=[], help="shard URL (repeat; the first is the root)")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    data_dir = pathlib.Path(args.data_dir).expanduser()
    try:
        if args.action != "init" and not args.store and (data_dir / "node.json").exists():
            doc = _online(args, data_dir)
        else:
            doc = asyncio.run(_offline(args, data_dir))
    except (StoreError, ValueError, OSError) as exc:
        sys.stderr.write(f"timnode store {args.action}: {exc}\n")
        return 1
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n" if args.json else _text(doc))
    return 0


# ---- through a running node -------------------------------------------------------------


def _admin_token(args: argparse.Namespace) -> str:
    token = (args.token or os.environ.get("TIMNODE_ADMIN_TOKEN", "")).strip()
    if not token:
        raise StoreError(
            "a node runs on this data directory: its /admin/store routes need the admin token "
            "(--token or TIMNODE_ADMIN_TOKEN; the node must run with --admin-token), "
            "or stop the node to work on the store directly"
        )
    return token


def _call(data_dir: pathlib.Path, token: str, action: str, **query: str) -> dict[str, Any]:
    info = json.loads((data_dir / "node.json").read_text())
    base = "http" + str(info["url"])[2:]
    url = f"{base}/admin/store/{action}" + ("?" + urllib.parse.urlencode(query) if query else "")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=3600) as reply:
            doc: dict[str, Any] = json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404 and action == "status":
            raise StoreError("the node has no /admin/store routes: start it with --admin-token") from exc
        try:
            message = json.loads(exc.read() or b"{}").get("error", str(exc))
        except ValueError:
            message = str(exc)
        raise StoreError(f"{message} (HTTP {exc.code})") from exc
    return doc


def _online(args: argparse.Namespace, data_dir: pathlib.Path) -> dict[str, Any]:
    token = _admin_token(args)
    if args.action == "status":
        return _call(data_dir, token, "status", **({"counts": "1"} if args.counts else {}))
    if args.action == "reseal":
        while True:  # the node answers 202 with the progress while its reseal runs
            doc = _call(data_dir, token, "reseal")
            if not doc.pop("running", False):
                return doc
            time.sleep(0.5)
    _call(data_dir, token, "status")  # 404 (no admin token on the node) before anything moves
    _call(data_dir, token, args.action, url=args.url)
    while not args.no_wait:
        doc = _call(data_dir, token, "status")
        progress = doc["rebalance"]
        if progress["error"]:
            raise StoreError(f"rebalance stopped: {progress['error']}")
        if not progress["busy"]:
            return doc
        time.sleep(0.5)
    return _call(data_dir, token, "status")


# ---- on the store directly (node stopped) ------------------------------------------------


def _keyring(spec: str, data_dir: pathlib.Path) -> Keyring:
    return keyring_from_spec(spec) if spec else Keyring(load_or_create_data_key(data_dir / "data.key"))


async def _offline(args: argparse.Namespace, data_dir: pathlib.Path) -> dict[str, Any]:
    if args.action == "init":
        return await _init(args, data_dir)
    url = store_url(args.store, data_dir, "sqlite://" + str(data_dir.resolve() / "store.db"))
    sealed = args.action == "reseal"
    store = open_store(url, _keyring(args.data_key, data_dir) if sealed else None)
    await store.open()
    try:
        return await _offline_action(args, store)
    finally:
        await store.close()


async def _offline_action(args: argparse.Namespace, store: RecordStore) -> dict[str, Any]:
    if args.action == "status":
        return await status_doc(store, args.counts)
    if args.action == "reseal":
        assert isinstance(store, SealedStore)
        report = await reseal(store)
        return {"records": report.records, "resealed": report.resealed}
    sharded = find_sharded(store)
    if sharded is None:
        raise StoreError("this store is not sharded: run `timnode store init` first")
    if sharded.rebalancer is not None:
        await sharded.rebalancer  # a rebalance interrupted earlier: finish it first
    await (add_shard if args.action == "add-shard" else remove_shard)(sharded, args.url)
    await run_rebalance(sharded)
    return await status_doc(store, False)


async def _init(args: argparse.Namespace, data_dir: pathlib.Path) -> dict[str, Any]:
    """Make the data directory's store sharded, copying an existing single store over."""
    shards_file = data_dir / SHARDS_FILE
    if shards_file.exists():
        raise StoreError(f"{shards_file} exists: the store is sharded already")
    if (data_dir / "node.json").exists():
        raise StoreError("stop the node first (node.json exists)")
    urls = args.shard or ["sqlite://" + str(data_dir.resolve() / "shard0.db")]
    if any(url.startswith(SHARDS_SCHEME) for url in urls):
        raise StoreError("shard URLs must be sqlite:// or postgresql://")
    await create_shards(urls, open_raw)
    copied = await _copy_single_store(data_dir / "store.db", urls[0])
    write_shards_file(shards_file, urls[0])
    return {"shards": urls, "copied_records": copied, "shards_file": str(shards_file)}


async def _copy_single_store(path: pathlib.Path, root: str) -> int:
    """Copy the (sealed) rows of an existing ``store.db`` into the new sharded store."""
    if not path.exists():
        return 0
    source = open_raw("sqlite://" + str(path.resolve()))
    target = ShardedStore(root, open_raw, resume=False)
    await source.open()
    await target.open()
    copied = 0
    try:
        async for rows in pages(source, b"", END, 1000):
            await asyncio.gather(*(target.write([Put(k, v)]) for k, v in rows))  # per key: one shard each
            copied += len(rows)
    finally:
        await target.close()
        await source.close()
    path.rename(path.with_name(path.name + ".pre-shards"))
    return copied


def _text(doc: dict[str, Any]) -> str:
    if "shards" not in doc or not isinstance(doc["shards"], list):
        return "\n".join(f"{k}: {v}" for k, v in sorted(doc.items())) + "\n"
    lines = [f"map version {doc['map_version']}  fingerprint {doc['fingerprint'][:16]}  root {doc.get('root', 0)}  "
             f"rebalance: {'in progress' if doc['rebalance']['busy'] else 'idle'}"]  # fmt: skip
    lines.append(f"{'ID':>3} {'BACKEND':<10} {'SLOTS':>5} {'RECORDS':>9}  URL")
    for shard in doc["shards"]:
        records = shard.get("records", "-")
        lines.append(f"{shard['id']:>3} {shard['backend']:<10} {shard['slots']:>5} {records:>9}  {shard['url']}")
    if doc["rebalance"]["busy"]:
        lines.append(f"slots to move: {doc['rebalance']['slots_to_move']}")
    return "\n".join(lines) + "\n"
