"""Load-generator worker processes, driven synchronously by the benchmark's main process.

Each worker owns one event loop (kept in an ``asyncio.Runner`` so connections
survive between commands) and a :class:`bench.loadgen.Generator`. The parent sends
``(command, argument)`` tuples over a pipe and gets one reply per command:

``("open", Target)`` -> OpenResult, ``("phase", PhaseSpec)`` -> PhaseResult,
``("close", None)`` -> int, ``("exit", None)`` ends the worker.

A failure inside a worker comes back as :class:`WorkerFailed` and is raised in
the parent. Workers are started with the ``spawn`` method (no loop state is
inherited) and are daemonic, so they never outlive the benchmark.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from bench.loadgen import Generator, OpenResult, PhaseResult, PhaseSpec, Target
from bench.loops import new_runner

__all__ = ["WorkerFailed", "WorkerPool", "worker_main"]


class WorkerFailed(RuntimeError):
    """A worker process raised; the message carries its traceback."""


async def _handle(gen: Generator, command: str, arg: Any) -> Any:
    if command == "open":
        return await gen.open(arg)
    if command == "phase":
        return await gen.run_phase(arg)
    if command == "close":
        return await gen.close()
    raise ValueError(f"unknown worker command {command!r}")


def worker_main(conn: Connection, loop_kind: str) -> None:
    """Worker process body: serve commands from ``conn`` until ``exit``."""
    with new_runner(loop_kind) as runner:
        gen = Generator()
        while True:
            try:
                command, arg = conn.recv()
            except EOFError:
                break
            if command == "exit":
                break
            try:
                reply = runner.run(_handle(gen, command, arg))
            except Exception:
                reply = WorkerFailed(traceback.format_exc())
            conn.send(reply)
        runner.run(gen.close())
    conn.close()


class WorkerPool:
    """``count`` worker processes; use as a context manager."""

    def __init__(self, count: int, loop_kind: str = "auto") -> None:
        self.count = max(1, count)
        self.loop_kind = loop_kind
        self.procs: list[BaseProcess] = []
        self.conns: list[Connection] = []

    def __enter__(self) -> WorkerPool:
        ctx = multiprocessing.get_context("spawn")
        for index in range(self.count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=worker_main, args=(child, self.loop_kind), name=f"bench-gen-{index}", daemon=True
            )
            proc.start()
            child.close()
            self.procs.append(proc)
            self.conns.append(parent)
        return self

    def __exit__(self, *exc: object) -> None:
        for conn in self.conns:
            try:
                conn.send(("exit", None))
            except OSError:
                pass
        for proc in self.procs:
            proc.join(5.0)
            if proc.is_alive():
                proc.terminate()
                proc.join(2.0)
        for conn in self.conns:
            conn.close()

    def call(self, command: str, args: Sequence[Any]) -> list[Any]:
        """Send ``command`` with ``args[i]`` to worker i, all at once; collect replies in order.

        Raises:
            WorkerFailed: a worker raised while handling the command.
        """
        for conn, arg in zip(self.conns, args, strict=True):
            conn.send((command, arg))
        replies = [conn.recv() for conn in self.conns]
        for reply in replies:
            if isinstance(reply, WorkerFailed):
                raise reply
        return replies

    def open(self, targets: Sequence[Target]) -> list[OpenResult]:
        """Bring up each worker's share of the pairs."""
        return self.call("open", targets)

    def phase(self, specs: Sequence[PhaseSpec]) -> list[PhaseResult]:
        """Run one phase in every worker at once."""
        return self.call("phase", specs)

    def close(self) -> None:
        """Close every worker's connections."""
        self.call("close", [None] * self.count)
