"""``python -m bench links`` runs end to end with tiny numbers and prints one JSON object."""

from __future__ import annotations

import json

import pytest

from bench.links import main

pytestmark = pytest.mark.slow


def test_bench_links_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "--messages", "500", "--pings", "20", "--dials", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rtt_p50_ms"] > 0 and result["handshake_p50_ms"] > 0
    assert 0.9 < result["oneway_uncoalesced_msgs_per_ws_msg"] <= 1.0  # (+ the final ping)
    assert result["oneway_coalesced_msgs_per_ws_msg"] > 1.0
