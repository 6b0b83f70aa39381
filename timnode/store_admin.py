"""The node's store admin routes (``timnode store ...`` talks to a running node through them).

    GET /admin/store/status[?counts=1]     shards, slots, rebalance progress (+ record counts)
    GET /admin/store/add-shard?url=URL     plan + start an online rebalance onto URL
    GET /admin/store/remove-shard?url=URL  plan + start moving every slot off URL
    GET /admin/store/reseal                re-seal old values under the newest key version
                                           (sharded or single store; the node keeps serving):
                                           200 with the report, or 202 with the progress
                                           while it runs (ask again: one reseal at a time)

They belong to the admin API: registered only when the node runs with ``--admin-token``
(else 404, like every ``/admin`` route) and authenticated by the admin API itself
(``Authorization: Bearer <admin token>``, the same 401/429 rules and wrong-token bucket,
``im/admin.py``). The store CLI sends ``--token`` / ``TIMNODE_ADMIN_TOKEN``. Nodes before
this wrote a separate ``<data-dir>/store-admin.token``; it is no longer used and a stale
one is removed at start. The routes are GET only (they predate POST support on the port).
The rebalance runs inside the node, which is what lets it freeze slots against its own
writes (see ``store/rebalance.py``); the CLI polls ``status`` until it is done.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from node.server import HttpReply, PortServer, json_reply
from store.api import RecordStore
from store.errors import StoreError
from store.rebalance import add_shard, remove_shard, start_rebalance
from store.reseal import ResealReport, reseal
from store.sealed import SealedStore
from store.sharded import ShardedStore, find_sharded

__all__ = ["install", "LEGACY_TOKEN_FILE", "store_url", "status_doc"]

LEGACY_TOKEN_FILE = "store-admin.token"  # written by older nodes; removed at start
SHARDS_FILE = "shards.json"


def store_url(configured: str, data_dir: pathlib.Path, default: str) -> str:
    """``--store`` if given, else ``shards://<data-dir>/shards.json`` if present, else ``default``."""
    if configured:
        return configured
    shards = data_dir.expanduser().resolve() / SHARDS_FILE
    return "shards://" + str(shards) if shards.exists() else default


def _find_sealed(store: RecordStore) -> SealedStore | None:
    seen: RecordStore | None = store
    while seen is not None:
        if isinstance(seen, SealedStore):
            return seen
        seen = getattr(seen, "inner", None)
    return None


async def status_doc(store: RecordStore, counts: bool) -> dict[str, Any]:
    """What ``timnode store status`` prints, for a sharded or a single store."""
    sharded = find_sharded(store)
    if sharded is None:
        doc: dict[str, Any] = {"sharded": False, "store": store.describe()}
        if counts:
            from store.reseal import END
            from store.sharded import pages

            doc["records"] = sum([len(rows) async for rows in pages(_raw(store), b"", END, 5000)])
        return doc
    doc = {"sharded": True} | sharded.describe()
    if counts:
        per_shard = await sharded.record_counts()
        for shard in doc["shards"]:
            shard["records"] = per_shard.get(shard["id"], 0)
    return doc


def _raw(store: RecordStore) -> RecordStore:
    sealed = _find_sealed(store)
    return sealed.inner if sealed is not None else store


Authenticate = Callable[[Any], "HttpReply | None"]


#: how long a reseal request waits for the reseal before it answers 202 with the progress
#: (websockets ends a request's handling after its 10 s open timeout)
RESEAL_WAIT = 5.0


class _Routes:
    def __init__(self, store: RecordStore, authenticate: Authenticate) -> None:
        self.store = store
        self.authenticate = authenticate
        self._reseal: asyncio.Task[ResealReport] | None = None
        self._reseal_progress = ResealReport()

    def _sharded(self) -> ShardedStore:
        sharded = find_sharded(self.store)
        if sharded is None:
            raise StoreError("this node's store is not sharded: stop it and run `timnode store init`")
        return sharded

    async def handle(self, request: Any) -> HttpReply:
        refusal = self.authenticate(request)
        if refusal is not None:
            return refusal
        parts = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            return await self._dispatch(parts.path.rsplit("/", 1)[-1], query)
        except (StoreError, ValueError) as exc:
            return json_reply({"error": str(exc)}, 409)

    async def _dispatch(self, action: str, query: dict[str, str]) -> HttpReply:
        if action == "status":
            return json_reply(await status_doc(self.store, query.get("counts") == "1"))
        if action in ("add-shard", "remove-shard"):
            sharded, url = self._sharded(), query.get("url", "")
            if not url:
                return json_reply({"error": "url= is required"}, 400)
            sid = await (add_shard if action == "add-shard" else remove_shard)(sharded, url)
            start_rebalance(sharded)
            return json_reply({"shard": sid} | await status_doc(self.store, False))
        if action == "reseal":
            return await self._run_reseal()
        return json_reply({"error": f"unknown store admin action {action!r}"}, 404)


    async def _run_reseal(self) -> HttpReply:
        """One reseal at a time, in a task of its own: a request waits up to ``RESEAL_WAIT``
        and answers the report (200), or the progress so far (202: ask again, which waits on
        the same reseal). A finished reseal's report is answered once; the next request
        starts another."""
        task = self._reseal
        if task is None:
            sealed = _find_sealed(self.store)
            if sealed is None:
                raise StoreError("this node's store is not sealed: nothing to reseal")
            self._reseal_progress = ResealReport()
            task = self._reseal = asyncio.ensure_future(reseal(sealed, report=self._reseal_progress))
        done, _ = await asyncio.wait([task], timeout=RESEAL_WAIT)
        progress = self._reseal_progress
        counts = {"records": progress.records, "resealed": progress.resealed}
        if not done:
            return json_reply(counts | {"running": True}, 202)
        if self._reseal is task:
            self._reseal = None
        report = task.result()  # a failure raises to handle(), which answers it
        return json_reply({"records": report.records, "resealed": report.resealed})


def install(server: PortServer, store: RecordStore, data_dir: pathlib.Path, authenticate: Authenticate) -> None:
    """Add the ``/admin/store/*`` routes to ``server``, behind the admin API's ``authenticate``.

    ``authenticate(request)`` answers None for a good admin token, else the refusal (401/429).
    """
    (data_dir / LEGACY_TOKEN_FILE).unlink(missing_ok=True)
    routes = _Routes(store, authenticate)
    for action in ("status", "add-shard", "remove-shard", "reseal"):
        server.add_route(f"/admin/store/{action}", routes.handle)
