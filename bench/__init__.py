"""Benchmarks of the timnode engine: ``python -m bench NAME [--json]``.

Each benchmark is a module ``bench/<name>.py`` with a ``SUMMARY`` string and
``main(argv: list[str]) -> int``; see bench/README.md for the list, flags and
JSON keys. Shared pieces: :mod:`bench.report` (tables, JSON, percentiles, RSS),
:mod:`bench.servers` (node and relay processes), :mod:`bench.pool` and
:mod:`bench.loadgen` (load-generator processes), :mod:`bench.wsclient` (a lean
WebSocket client), :mod:`bench.wire` (protocol dialects), :mod:`bench.relay`.
"""

from __future__ import annotations

__all__: list[str] = []
