"""Prometheus metrics of the IM layer (names follow Prometheus conventions: base units, ``_total``).

One :class:`ImMetrics` per node, registered on the node's own ``CollectorRegistry`` so
several nodes (or tests) in one process never share counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ImMetrics", "LATENCY_BUCKETS"]

#: seconds; dense below 20 ms where the latency target sits
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ImMetrics:
    """Counters, gauges and histograms for connections, logins, messages and errors."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.connections = Gauge("timnode_client_connections_open", "Open client connections", registry=registry)
        self.connections_total = Counter(
            "timnode_client_connections_total", "Client connections accepted", ["result"], registry=registry
        )
        self.sessions = Gauge("timnode_sessions", "Logged-in sessions (devices) on this node", registry=registry)
        self.online_users = Gauge("timnode_online_users", "Users with at least one session here", registry=registry)
        self.logins_total = Counter(
            "timnode_logins_total", "Login attempts by kind and result", ["kind", "result"], registry=registry
        )
        self.messages_total = Counter(
            "timnode_messages_total", "Messages accepted from clients by kind", ["kind"], registry=registry
        )
        self.deliveries_total = Counter(
            "timnode_deliveries_total", "Messages pushed to client devices", registry=registry
        )
        self.acks_total = Counter(
            "timnode_delivery_acks_total", "Messages acknowledged by recipients", registry=registry
        )
        self.errors_total = Counter("timnode_errors_total", "Error responses by code", ["code"], registry=registry)
        self.rate_limited_total = Counter(
            "timnode_rate_limited_total", "Requests refused by a rate limit", ["limit"], registry=registry
        )
        self.kicks_total = Counter("timnode_kicks_total", "Sessions closed by the node", ["reason"], registry=registry)
        self.request_seconds = Histogram(
            "timnode_request_duration_seconds",
            "Time from a request's arrival to its response being queued",
            ["op"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.frames_total = Counter(
            "timnode_client_frames_total", "Client WebSocket frames", ["direction"], registry=registry
        )
