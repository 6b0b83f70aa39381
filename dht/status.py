"""JSON views of a ``DhtProtocol`` for ``/healthz`` and ``GET /dht`` (pure functions, no I/O)."""

from __future__ import annotations

import dataclasses
from typing import Any

from dht.node import DhtProtocol
from node.identity import PeerId

__all__ = ["describe_status", "describe_table"]


def describe_status(proto: DhtProtocol) -> dict[str, Any]:
    """Mode, sizes and every counter of ``proto.stats`` (``rejected`` by reason, and its total)."""
    stats = proto.stats
    counters = {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats) if f.name != "rejected"}
    counters["rejected"] = {reason.value: n for reason, n in stats.rejected.items()}
    counters["rejected_total"] = sum(stats.rejected.values())
    return {
        "mode": "server" if proto.server else "client",
        "routing_table": len(proto.table),
        "stored_records": len(proto.store),
        "stored_keys": len(proto.store.keys()),
        "lookups_running": len(proto.tasks),
        "counters": counters,
    }


def describe_table(proto: DhtProtocol) -> dict[str, Any]:
    """The non-empty k-buckets (index = common prefix length with our id) and their contacts."""
    buckets = [
        {
            "index": i,
            "replacements": len(bucket.replacements),
            "peers": [
                {"peer_id": str(PeerId(c.peer)), "addrs": list(c.addrs), "failures": c.failures,
                 "last_seen": round(c.last_seen, 3)}
                for c in bucket.contacts.values()
            ],
        }
        for i, bucket in enumerate(proto.table.buckets)
        if bucket.contacts or bucket.replacements
    ]  # fmt: skip
    return {
        "peer_id": str(PeerId(proto.peer)),
        "id": proto.id.hex(),
        "k": proto.config.k,
        "mode": "server" if proto.server else "client",
        "size": len(proto.table),
        "buckets": buckets,
    }
