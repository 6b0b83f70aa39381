"""The admin API's place in the daemon: building ``AdminApi`` and the node-level documents.

``im/admin.py`` serves the routes and ``im/admin_ops.py`` acts on the IM layer; what only the
composition root knows (uptime, peer links, the DHT, the store, CPU and memory) is built
here from the running :class:`timnode.daemon.Node`.

Metric names reserved for features that do not exist yet (docs/operations.md, "Metrics"):
``timnode_dht_queries_total{type,result}`` and ``timnode_dht_query_duration_seconds{type}``
(DHT queries and their latency), ``timnode_stream_frames_dropped_total{reason}`` (dropped
stream frames).
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from im import client_pb2 as pb
from im.admin import AdminApi, AdminSources
from im.admin_ops import AdminOps
from im.keys import KeySchema
from store.crypto import Keyring

if TYPE_CHECKING:
    from timnode.daemon import Node

__all__ = ["build_admin", "process_figures"]


def build_admin(node: Node, keyring: Keyring) -> AdminApi:
    """The admin API for ``node`` (its service and store must exist); the session guard is installed."""
    service, store = node.service, node.store
    assert service is not None and store is not None
    ops = AdminOps(
        store=store,
        keys=KeySchema(keyring.blind),  # the same blinding as the service's KeySchema: the same keys
        registry=service.registry,
        messenger=service.messenger,
        metrics=service.metrics,
        now=_monotonic,
        now_ms=lambda: time.time_ns() // 1_000_000,
    )
    service.session_guards.append(ops.guard_session)

    async def remote_broadcast(template: pb.Message, user: str) -> int:  # to=all / to=user on other nodes
        return await node.federation.routing.broadcast(template, user) if node.federation is not None else 0

    async def remote_kick(user: str, reason: int, message: str) -> int:  # admin block: every node
        return await node.federation.kick_user(user, reason, message) if node.federation is not None else 0

    ops.remote_broadcasts.append(remote_broadcast)
    ops.remote_kicks.append(remote_kick)
    sources = AdminSources(
        status=lambda: admin_status(node),
        peers=lambda: peers_doc(node),
        dht=lambda: dht_doc(node),
        store=lambda: store_doc(node),
    )
    return AdminApi(node.config.resolved_admin_token(), ops, sources, service.metrics)


def _monotonic() -> float:
    import asyncio

    return asyncio.get_running_loop().time()


def process_figures() -> dict[str, Any]:
    """CPU seconds (user + system) and resident memory of this process."""
    times = os.times()
    rss = 0
    try:
        with open("/proc/self/statm") as fh:
            rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss = peak if sys.platform == "darwin" else peak * 1024
    return {"pid": os.getpid(), "cpu_seconds": round(times.user + times.system, 3), "resident_memory_bytes": rss}


def peers_doc(node: Node) -> dict[str, Any]:
    if node.links is None:
        return {"peers": [], "by_kind": {}}
    doc = node.links.status()
    doc["by_kind"] = dict(Counter(entry.transport for entry in node.links.entries()))
    return doc


def dht_doc(node: Node) -> dict[str, Any]:
    dht = getattr(node, "dht", None)  # wired by timnode/dht_wiring.py when present
    if dht is None or not hasattr(dht, "status"):
        return {"enabled": False}
    doc: dict[str, Any] = {"enabled": True, **dht.status()}
    if hasattr(dht, "table_summary"):
        doc["buckets"] = dht.table_summary().get("buckets", [])
    return doc


def store_doc(node: Node) -> dict[str, Any]:
    assert node.store is not None
    facts = node.store.describe()
    shards = facts.get("shards")  # a ShardedStore lists its shards; a single store has none
    return {
        "backend": node.store.backend,
        "url_scheme": node.config.resolved_store_url().split(":", 1)[0],
        "durable": not node.config.no_store,
        "shards": len(shards) if isinstance(shards, list) else 1,
        "facts": facts,
    }


def admin_status(node: Node) -> dict[str, Any]:
    """``/healthz``'s document plus the figures the dashboard shows."""
    doc = node.status()
    peers = peers_doc(node)
    dht = dht_doc(node)
    doc["started_at"] = round(node.started_at, 3)
    doc["url"] = node.url
    doc["peers_by_kind"] = peers.get("by_kind", {})
    doc["dht_summary"] = {
        "enabled": dht.get("enabled", False),
        "routing_table": dht.get("routing_table", 0),
        "stored_records": dht.get("stored_records", 0),
    }
    doc["store_shards"] = store_doc(node)["shards"]
    doc["process"] = process_figures()
    doc["limits"] = {
        "max_connections": node.config.max_connections,
        "max_devices": node.config.max_devices,
        "rate_limit": node.config.rate_limit,
        "max_message_bytes": node.config.max_message_bytes,
    }
    return doc
