"""The event loop's side of the SQLite writer process (``store.sqlite_writer``).

``ProcessWriter.submit(ops)`` queues a batch and returns a future; the batches submitted
while the writer commits the frame in flight leave together in the next frame, as soon as
the reply to that one arrives (when the writer is idle, at the end of the current loop
iteration), and the future resolves when the child's reply for its frame arrives, that is
after ``COMMIT``.
The loop thread never waits: it encodes tuples and parses replies (a few microseconds per
batch) while SQLite runs on another core.

If the child dies, every waiting batch fails with ``StoreUnavailable`` (it may or may not
have been committed: as with any failed write, nothing may be assumed) and the next
``submit`` starts a new child first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

from store.api import Op
from store.crypto import SealingKey
from store.errors import StoreUnavailable
from store.sqlite_wire import FrameReader, Wire, decode_outcome, encode_frame, encode_ops

__all__ = ["ProcessWriter", "WriterStats"]

log = logging.getLogger("store.sqlite")
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_STOP_TIMEOUT = 30.0
#: frames sent and not yet answered: while one is being committed, new batches gather into the
#: next frame (one write and one read per group instead of per loop iteration), and when the
#: writer is idle a batch leaves at once
_IN_FLIGHT = 1


class WriterStats:
    """Counters of a group-commit writer (``describe()``)."""

    __slots__ = ("groups", "batches", "ops", "largest_group")

    def __init__(self) -> None:
        self.groups = self.batches = self.ops = self.largest_group = 0

    def count(self, batches: int, ops: int) -> None:
        self.batches += batches
        self.ops += ops
        self.largest_group = max(self.largest_group, batches)


class _Pipe(asyncio.Protocol):
    """Frames from the child, handed to the writer."""

    def __init__(self, writer: ProcessWriter) -> None:
        self._writer = writer
        self._reader = FrameReader()

    def data_received(self, data: bytes) -> None:
        try:
            for message in self._reader.feed(data):
                self._writer.on_message(message)
        except ValueError as exc:
            log.error("sqlite writer sent a bad frame: %s", exc)
            self._writer.on_lost(StoreUnavailable(f"sqlite writer protocol error: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._writer.on_lost(StoreUnavailable("the sqlite writer process exited"))


class ProcessWriter:
    """Starts, feeds and stops one writer process for the database at ``path``."""

    def __init__(
        self, path: str, busy_timeout: float, loop: asyncio.AbstractEventLoop, sealing: SealingKey | None = None
    ) -> None:
        self._path = path
        self._sealing = sealing
        self._busy_timeout = busy_timeout
        self._loop = loop
        self._proc: subprocess.Popen[bytes] | None = None
        self._transport: asyncio.Transport | None = None
        self._ready: asyncio.Future[int] | None = None
        self._bye: asyncio.Future[None] | None = None
        self._pending: list[tuple[bool, Wire]] = []
        self._pending_futures: list[asyncio.Future[None]] = []
        self._waiting: dict[int, list[asyncio.Future[None]]] = {}
        self._seq = 0
        self._scheduled = False
        self._restart: asyncio.Task[int] | None = None
        self.stats = WriterStats()

    @property
    def connection(self) -> None:
        """The writer's connection is in another process (readers open their own)."""
        return None

    @property
    def pid(self) -> int | None:
        """The writer process's pid (status pages, tests)."""
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    async def start(self) -> int:
        """Start the child; its schema version once it has opened and migrated the database."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._proc = self._spawn(child)
        finally:
            child.close()
        self._ready = self._loop.create_future()
        self._transport, _ = await self._loop.create_unix_connection(lambda: _Pipe(self), sock=parent)
        try:
            version = await self._ready
        except BaseException:
            await self._reap()
            raise
        if self._sealing is not None:
            sealing = self._sealing
            self._transport.write(encode_frame(("seal", sealing.header, sealing.siv, sealing.key)))
        return version

    def _spawn(self, child: socket.socket) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
        argv = [sys.executable, "-P", "-m", "store.sqlite_writer", str(child.fileno()), self._path]
        argv.append(repr(self._busy_timeout))
        try:
            return subprocess.Popen(
                argv, pass_fds=(child.fileno(),), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
            )
        except OSError as exc:
            raise StoreUnavailable(f"cannot start the sqlite writer process: {exc}") from exc

    async def ensure_running(self) -> None:
        """Start a new child if the last one died (once, however many writers ask)."""
        if self.running:
            return
        if self._restart is None or self._restart.done():
            log.warning("restarting the sqlite writer process for %s", self._path)
            await self._reap()
            self._restart = asyncio.ensure_future(self.start())
        await asyncio.shield(self._restart)

    def submit(self, ops: Sequence[Op], seal: bool = False) -> Awaitable[None]:
        """Queue a batch; ``seal``: the child seals its values (``SealedStore`` over this writer).
        While the child runs, the batch's future; else a coroutine that starts a new child first."""
        if not self.running:
            return self._restart_then_submit(ops, seal)
        return self._queue(ops, seal)

    async def _restart_then_submit(self, ops: Sequence[Op], seal: bool) -> None:
        await self.ensure_running()
        await self._queue(ops, seal)

    def _queue(self, ops: Sequence[Op], seal: bool) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self._loop.create_future()
        if not self.running:
            future.set_exception(StoreUnavailable("the sqlite writer process is not running"))
            return future
        self._pending.append((seal, encode_ops(ops)))
        self._pending_futures.append(future)
        if not self._scheduled and len(self._waiting) < _IN_FLIGHT:
            self._scheduled = True
            self._loop.call_soon(self._flush)
        return future

    def _flush(self, *, now: bool = False) -> None:
        self._scheduled = False
        if not self._pending or (len(self._waiting) >= _IN_FLIGHT and not now):
            return  # the reply to the frame in flight sends what waits here
        batches, futures = self._pending, self._pending_futures
        self._pending, self._pending_futures = [], []
        transport = self._transport
        if transport is None or transport.is_closing():
            _fail_all(futures, StoreUnavailable("the sqlite writer process is not running"))
            return
        self._seq += 1
        self._waiting[self._seq] = futures
        self.stats.count(len(batches), sum(len(ops) for _, ops in batches))
        transport.write(encode_frame(("w", self._seq, batches)))

    def on_message(self, message: Any) -> None:
        kind = message[0]
        if kind == "r":
            self._settle(message[1], message[2])
            self.stats.groups = message[3]
        elif kind == "ready" and self._ready is not None and not self._ready.done():
            self._ready.set_result(int(message[1]))
        elif kind == "fail" and self._ready is not None and not self._ready.done():
            self._ready.set_exception(StoreUnavailable(str(message[1])))
        elif kind == "bye" and self._bye is not None and not self._bye.done():
            self._bye.set_result(None)

    def _settle(self, seq: int, outcomes: list[Any]) -> None:
        futures = self._waiting.pop(seq, [])
        if self._pending:
            self._flush()  # this reply freed the frame in flight: the next one leaves now
        for future, wire in zip(futures, outcomes, strict=True):
            if future.done():
                continue
            outcome = decode_outcome(wire)
            if outcome is None:
                future.set_result(None)
            else:
                future.set_exception(outcome)

    def on_lost(self, error: StoreUnavailable) -> None:
        if self._transport is not None:
            self._transport.close()
        self._transport = None
        waiting, self._waiting = self._waiting, {}
        for futures in waiting.values():
            _fail_all(futures, error)
        pending, self._pending, self._pending_futures = self._pending_futures, [], []
        _fail_all(pending, error)
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)
        if self._bye is not None and not self._bye.done():
            self._bye.set_result(None)

    async def stop(self) -> None:
        """Send what is queued, let the child commit it and exit; wait for the process."""
        self._flush(now=True)
        if self.running:
            assert self._transport is not None
            self._bye = self._loop.create_future()
            self._transport.write(encode_frame(("q",)))
            try:
                await asyncio.wait_for(asyncio.shield(self._bye), _STOP_TIMEOUT)
            except TimeoutError:
                log.error("the sqlite writer process did not finish in %.0f s", _STOP_TIMEOUT)
        await self._reap()

    async def _reap(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            await asyncio.to_thread(proc.wait, _STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)


def _fail_all(futures: list[asyncio.Future[None]], error: StoreUnavailable) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(error)
