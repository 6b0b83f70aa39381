"""/metrics additions of the admin work: link bytes and frames by transport, admin counters."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from testnet.process import NodeProcess
from tests.admin.conftest import TOKEN, http

pytestmark = pytest.mark.slow


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in a Prometheus text page (0.0 when absent)."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            return float(match.group(2))
    return 0.0


def test_link_traffic_by_transport_and_peers_by_kind(node_factory: Callable[..., NodeProcess]) -> None:
    a = node_factory("--admin-token", TOKEN, name="a")
    b = node_factory("--bootstrap", a.url.removeprefix("ws://"), name="b")
    deadline = time.monotonic() + 20
    peers: dict[str, object] = {}
    while time.monotonic() < deadline:
        peers = http(a, "GET", "/admin/peers")[2]
        if peers["by_kind"] == {"ws": 1}:
            break
        time.sleep(0.1)
    assert peers["by_kind"] == {"ws": 1}, peers
    assert http(a, "GET", "/admin/status")[2]["peers_by_kind"] == {"ws": 1}
    for node in (a, b):
        text = http(node, "GET", "/metrics", token=None)[2]
        for direction in ("in", "out"):
            assert sample(text, "timnode_link_bytes_total", transport="ws", direction=direction) > 0
            assert sample(text, "timnode_link_frames_total", transport="ws", direction=direction) > 0
    text = http(a, "GET", "/metrics", token=None)[2]
    assert sample(text, "timnode_admin_requests_total", route="peers", status="200") >= 1
    assert "# TYPE timnode_rate_limited_total counter" in text
    assert "# TYPE timnode_store_operation_duration_seconds histogram" in text
    assert "# TYPE timnode_event_loop_lag_seconds histogram" in text
    assert "# TYPE timnode_gc_pause_seconds histogram" in text
