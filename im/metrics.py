"""Metrics of the IM layer (names follow Prometheus conventions: base units, ``_total``).

Hot-path counters are plain numbers (``node.metrics``) exported when ``/metrics`` is scraped;
one :class:`ImMetrics` per node, on the node's own registry.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry

from node.metrics import Counter, Histogram, MetricSet

__all__ = ["ImMetrics", "LATENCY_BUCKETS"]

#: seconds; dense below 20 ms where the latency target sits
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ImMetrics:
    """Counters and histograms for connections, logins, messages, deliveries and errors."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.set = m = MetricSet(registry)
        self.connections_total: Callable[[str], Counter] = m.counter(
            "timnode_client_connections_total", "Client connections by result (accepted, refused)", ["result"]
        )
        self.logins_total: Callable[[str, str], Counter] = m.counter(
            "timnode_logins_total", "Login attempts by kind (register, login, resume) and result", ["kind", "result"]
        )
        self.messages_total: Callable[[str], Counter] = m.counter(
            "timnode_messages_total", "Messages accepted from clients by kind", ["kind"]
        )
        self.deliveries_total: Counter = m.counter("timnode_deliveries_total", "Messages pushed to client devices")()
        self.acks_total: Counter = m.counter("timnode_delivery_acks_total", "Messages acknowledged by recipients")()
        self.errors_total: Callable[[str], Counter] = m.counter(
            "timnode_errors_total", "Error responses by code", ["code"]
        )
        self.rate_limited_total: Callable[[str], Counter] = m.counter(
            "timnode_rate_limited_total", "Requests or connections refused by a limit", ["limit"]
        )
        self.kicks_total: Callable[[str], Counter] = m.counter(
            "timnode_kicks_total", "Sessions closed by the node, by reason", ["reason"]
        )
        self.frames_total: Callable[[str], Counter] = m.counter(
            "timnode_client_frames_total", "Client WebSocket frames by direction", ["direction"]
        )
        self.request_seconds: Callable[[str], Histogram] = m.histogram(
            "timnode_request_duration_seconds",
            "Time from a request's arrival to its response being queued",
            LATENCY_BUCKETS,
            ["op"],
        )

    def gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        self.set.gauge(name, doc, read)
