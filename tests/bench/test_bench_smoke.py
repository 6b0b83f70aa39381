"""Smoke runs of ``python -m bench chat``: the raw relay always, the node when it runs.

Each run is a real subprocess on 127.0.0.1 with 4 pairs and 1-second windows; the
assertions are about the JSON contract (keys present, numbers positive), not speed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.bench_output import json_result

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = ("msgs_per_s", "p50_ms", "p99_ms", "raw_msgs_per_s", "ratio")
QUICK = ["--pairs", "4", "--duration", "1", "--warmup", "0.3", "--rounds", "1", "--json"]


def _bench(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, BENCH_QUIET="1", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env
    )


def _node_runs() -> bool:
    return importlib.util.find_spec("timnode.__main__") is not None


def test_dispatcher_lists_chat() -> None:
    proc = _bench()
    assert proc.returncode == 0
    assert "chat" in proc.stdout


def test_dispatcher_rejects_unknown_name() -> None:
    assert _bench("no_such_bench").returncode == 2


@pytest.mark.slow
def test_chat_raw_relay_smoke() -> None:
    result = json_result(_bench("chat", "--target", "raw", *QUICK))
    assert set(REQUIRED) <= set(result)
    assert result["raw_msgs_per_s"] > 0
    assert result["raw_max_p99_ms"] > 0 and result["raw_p99_ms"] > 0
    assert result["raw_errors"] == 0


@pytest.mark.slow
@pytest.mark.skipif(not _node_runs(), reason="python -m timnode is not there yet")
def test_chat_node_and_relay_smoke() -> None:
    result = json_result(_bench("chat", *QUICK))
    for key in (*REQUIRED, "max_p50_ms", "max_p99_ms", "rss_mb", "half_rate_msgs_per_s"):
        assert isinstance(result[key], (int, float)) and result[key] > 0, key
    assert result["p50_ms"] <= result["p99_ms"]
    assert result["errors"] == 0


@pytest.mark.slow
def test_chat_rounds_alternate_and_report_each() -> None:
    two_rounds = [*QUICK[: QUICK.index("--rounds")], "--rounds", "2", "--json"]
    result = json_result(_bench("chat", "--target", "raw", *two_rounds))
    assert result["rounds"] == 2 and len(result["rounds_detail"]) == 2
    per_round = [r["raw_msgs_per_s"] for r in result["rounds_detail"]]
    assert all(rate > 0 for rate in per_round)
    assert result["raw_msgs_per_s"] == round(sum(per_round) / 2, 3)  # the median of two
