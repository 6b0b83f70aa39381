"""Shared output and statistics helpers for every ``python -m bench NAME`` benchmark.

Output contract: without ``--json`` a benchmark prints a human table followed by the
JSON object; with ``--json`` stdout carries only the JSON object (one line), so it can
be piped into ``jq``. Progress notes go to stderr through :func:`note`.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "emit",
    "format_value",
    "median",
    "note",
    "percentile",
    "print_table",
    "process_cpu_s",
    "process_rss_mb",
    "rounded",
]


def percentile(values: Sequence[float], q: float) -> float:
    """Return the q-th percentile (0-100) of ``values`` by linear interpolation.

    Args:
        values: samples in any order; an empty sequence gives ``nan``.
        q: the percentile, 0 to 100.
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * min(max(q, 0.0), 100.0) / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: Sequence[float]) -> float:
    """Return the median of ``values`` (``nan`` when empty)."""
    return percentile(values, 50.0)


def rounded(value: float | None, digits: int = 3) -> float | None:
    """Round for JSON output; ``nan`` and ``None`` become ``None`` (JSON null)."""
    if value is None or math.isnan(value):
        return None
    return round(value, digits)


def _rss_from_proc(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def process_rss_mb(pid: int) -> float | None:
    """Resident set size of process ``pid`` and its children (a node's store writer) in MiB,
    via psutil or ``/proc``; None if gone."""
    try:
        import psutil
    except ImportError:
        return _sum_over_tree(pid, _rss_from_proc)
    try:
        return sum(float(p.memory_info().rss) for p in _psutil_tree(pid)) / (1024.0 * 1024.0)
    except psutil.Error:
        return None


def _psutil_tree(pid: int) -> list[Any]:
    import psutil

    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _children_from_proc(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as fh:
            return [int(child) for child in fh.read().split()]
    except (OSError, ValueError):
        return []


def _sum_over_tree(pid: int, measure: Callable[[int], float | None]) -> float | None:
    own = measure(pid)
    if own is None:
        return None
    return own + sum(measure(child) or 0.0 for child in _children_from_proc(pid))


def _cpu_from_proc(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds used so far by process ``pid`` and its live children (a node's
    store writer); None if gone."""
    try:
        import psutil
    except ImportError:
        return _sum_over_tree(pid, _cpu_from_proc)
    total = 0.0
    try:
        for proc in _psutil_tree(pid):
            times = proc.cpu_times()
            total += float(times.user + times.system)
    except psutil.Error:
        return None
    return total


def format_value(value: Any) -> str:
    """Human form of one table cell."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def print_table(title: str, rows: Iterable[tuple[str, Any]]) -> None:
    """Print a two-column table (label, value) under ``title``."""
    pairs = [(label, format_value(value)) for label, value in rows]
    width = max((len(label) for label, _ in pairs), default=0)
    print(title)
    print("-" * max(len(title), width + 14))
    for label, text in pairs:
        print(f"{label:<{width}}  {text:>12}")
    print()


def emit(result: Mapping[str, Any], title: str, rows: Iterable[tuple[str, Any]], as_json: bool) -> None:
    """Print the benchmark result: table then JSON, or only the JSON object."""
    if not as_json:
        print_table(title, rows)
    print(json.dumps(dict(result), sort_keys=True))
    sys.stdout.flush()


def note(message: str) -> None:
    """Progress line on stderr (silenced with ``BENCH_QUIET=1``)."""
    if os.environ.get("BENCH_QUIET") != "1":
        print(f"[bench] {message}", file=sys.stderr, flush=True)
