"""Runtime pauses as metrics: event-loop lag and garbage-collector pauses.

While the event loop is held up nobody is served, so both are latency, seen from inside:

* ``timnode_event_loop_lag_seconds``: how late a timer set every ``interval`` fires. A
  long callback, a burst of work or a process kept off the CPU shows here.
* ``timnode_gc_pause_seconds{generation}``: each cyclic garbage collection, timed through
  ``gc.callbacks`` (https://docs.python.org/3/library/gc.html#gc.callbacks). CPython's
  collector stops the thread that triggers it; a full collection walks every tracked object
  (https://devguide.python.org/internals/garbage-collector/), which is why the messenger's
  maps hold only atomic entries (``im/recent.py``).

The lag timer wakes the loop four times a second, so an idle node stays idle.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

from node.metrics import Histogram, MetricSet

__all__ = ["PAUSE_BUCKETS", "GcPauseMonitor", "LoopLagMonitor", "install_runtime_metrics"]

PAUSE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
LAG_INTERVAL = 0.25


class LoopLagMonitor:
    """Observes how late a timer armed every ``interval`` seconds fires."""

    def __init__(
        self,
        observe: Callable[[float], None],
        interval: float = LAG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._observe = observe
        self._interval = interval
        self._clock = clock
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._arm()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self) -> None:
        assert self._loop is not None
        self._due = self._clock() + self._interval
        self._handle = self._loop.call_later(self._interval, self._tick)

    def _tick(self) -> None:
        self._observe(max(0.0, self._clock() - self._due))
        self._arm()


class GcPauseMonitor:
    """Observes the duration of every garbage collection, by generation."""

    def __init__(
        self, histogram_for: Callable[[int], Histogram], clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self._histogram_for = histogram_for
        self._clock = clock
        self._started = 0.0

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = self._clock()
        else:
            self._histogram_for(int(info["generation"])).observe(self._clock() - self._started)


def install_runtime_metrics(metrics: MetricSet, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Declare both metrics on ``metrics`` and start both monitors; returns what stops them."""
    lag = metrics.histogram(
        "timnode_event_loop_lag_seconds", "How late a timer armed every 0.25 s fired", PAUSE_BUCKETS
    )()
    pause = metrics.histogram(
        "timnode_gc_pause_seconds", "Cyclic garbage collections, by generation", PAUSE_BUCKETS, ["generation"]
    )
    lag_monitor = LoopLagMonitor(lag.observe)
    gc_monitor = GcPauseMonitor(lambda generation: pause(str(generation)))
    lag_monitor.start(loop)
    gc_monitor.install()

    def stop() -> None:
        lag_monitor.stop()
        gc_monitor.uninstall()

    return stop
