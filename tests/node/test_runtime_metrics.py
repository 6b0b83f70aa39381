"""Runtime pause metrics (node/runtime_metrics.py): event-loop lag and garbage-collector
pauses are observed as they happen; a node's /metrics page carries both."""

from __future__ import annotations

import asyncio
import gc
import time

from node.metrics import Histogram, MetricSet
from node.runtime_metrics import PAUSE_BUCKETS, GcPauseMonitor, LoopLagMonitor, install_runtime_metrics


async def test_a_blocked_loop_shows_as_lag() -> None:
    seen: list[float] = []
    monitor = LoopLagMonitor(seen.append, interval=0.02)
    monitor.start(asyncio.get_running_loop())
    try:
        await asyncio.sleep(0.1)
        quiet = list(seen)
        time.sleep(0.15)  # holds the loop: the armed timer fires late
        await asyncio.sleep(0.05)
    finally:
        monitor.stop()
    assert quiet and max(quiet) < 0.1
    assert max(seen) >= 0.1
    count = len(seen)
    await asyncio.sleep(0.06)
    assert len(seen) == count  # stopped: no more ticks


def test_collections_are_timed_by_generation() -> None:
    histograms: dict[int, Histogram] = {}

    def histogram_for(generation: int) -> Histogram:
        return histograms.setdefault(generation, Histogram(PAUSE_BUCKETS))

    monitor = GcPauseMonitor(histogram_for)
    monitor.install()
    try:
        gc.collect()
        gc.collect(0)
    finally:
        monitor.uninstall()
    assert sum(histograms[2].counts) >= 1 and histograms[2].sum > 0
    assert sum(histograms[0].counts) >= 1
    full = sum(histograms[2].counts)
    gc.collect()
    assert sum(histograms[2].counts) == full  # uninstalled


async def test_both_metrics_reach_the_exposition() -> None:
    metrics = MetricSet()
    stop = install_runtime_metrics(metrics, asyncio.get_running_loop())
    try:
        gc.collect()
        await asyncio.sleep(0.3)
    finally:
        stop()
    families = {family.name: family for family in metrics.collect()}
    lag = families["timnode_event_loop_lag_seconds"]
    assert any(s.name.endswith("_count") and s.value >= 1 for s in lag.samples)
    pauses = families["timnode_gc_pause_seconds"]
    assert any(s.name.endswith("_count") and s.labels.get("generation") == "2" and s.value >= 1 for s in pauses.samples)
