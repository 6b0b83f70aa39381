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
``submit`` starts a new child first: one restart however many batches ask, and batches go
only once the child is ready and has the sealing key. ``stop`` waits for a restart in
progress and stops that child too. A batch over ``MAX_BATCH_BYTES`` is refused at once (the
child could not take it); a frame takes pending batches up to ``_FRAME_BUDGET`` bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

from store.api import Op
from store.batch import prefix_within
from store.crypto import SealingKey
from store.errors import StoreUnavailable
from store.sqlite_wire import FrameReader, Wire, decode_outcome, encode_frame, encode_ops

__all__ = ["ProcessWriter", "WriterStats"]

log = logging.getLogger("store.sqlite")
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_STOP_TIMEOUT = 30.0
#: the largest batch the writer takes (keys + values); the child refuses frames over
#: ``sqlite_wire.MAX_FRAME`` and marshal objects over 2 GiB, so a larger one is refused here
MAX_BATCH_BYTES = 256 << 20
#: a frame takes pending batches up to this many bytes (at least one batch); the rest waits
#: for the next frame, so a frame stays far below ``sqlite_wire.MAX_FRAME``
_FRAME_BUDGET = 64 << 20
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
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            for message in self._reader.feed(data):
                self._writer.on_message(message)
        except ValueError as exc:
            log.error("sqlite writer sent a bad frame: %s", exc)
            self._writer.on_lost(StoreUnavailable(f"sqlite writer protocol error: {exc}"), self._transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._writer.on_lost(StoreUnavailable("the sqlite writer process exited"), self._transport)


class ProcessWriter:
    """Starts, feeds and stops one writer process for the database at ``path``."""

    def __init__(
        self,
        path: str,
        busy_timeout: float,
        loop: asyncio.AbstractEventLoop,
        sealing: SealingKey | None = None,
        nice: int = 0,
    ) -> None:
        """``nice``: the child's nice value (``setpriority(2)``), added to what it inherits."""
        self._path = path
        self._nice = nice
        self._sealing = sealing
        self._busy_timeout = busy_timeout
        self._loop = loop
        self._proc: subprocess.Popen[bytes] | None = None
        self._transport: asyncio.Transport | None = None
        self._ready: asyncio.Future[int] | None = None
        self._bye: asyncio.Future[None] | None = None
        self._pending: list[tuple[bool, Wire]] = []
        self._pending_futures: list[asyncio.Future[None]] = []
        self._pending_sizes: list[int] = []
        self._accepting = False  # ready, sealing key sent: batches may go
        self._closed = False
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
        """The child is ready (and has the sealing key): batches go to it."""
        return self._accepting and self._transport is not None and not self._transport.is_closing()

    async def start(self) -> int:
        """Start the child; its schema version once it has opened and migrated the database."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._proc = self._spawn(child)
        finally:
            child.close()
        ready: asyncio.Future[int] = self._loop.create_future()
        self._ready = ready
        transport, _ = await self._loop.create_unix_connection(lambda: _Pipe(self), sock=parent)
        self._transport = transport
        try:
            version = await ready
        except BaseException:
            await self._reap()
            raise
        if self._sealing is not None:  # before any batch: the socket keeps frames in order
            sealing = self._sealing
            transport.write(encode_frame(("seal", sealing.header, sealing.siv, sealing.key)))
        self._accepting = True
        return version

    def _spawn(self, child: socket.socket) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
        argv = [sys.executable, "-P", "-m", "store.sqlite_writer", str(child.fileno()), self._path]
        argv += [repr(self._busy_timeout), str(self._nice)]
        try:
            return subprocess.Popen(
                argv, pass_fds=(child.fileno(),), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
            )
        except OSError as exc:
            raise StoreUnavailable(f"cannot start the sqlite writer process: {exc}") from exc

    async def ensure_running(self) -> None:
        """Start a new child if the last one died (once, however many writers ask: the task is
        recorded before anything awaits)."""
        if self.running:
            return
        if self._closed:
            raise StoreUnavailable("the sqlite store is closed")
        if self._restart is None or self._restart.done():
            log.warning("restarting the sqlite writer process for %s", self._path)
            self._restart = asyncio.ensure_future(self._reap_then_start())
        await asyncio.shield(self._restart)

    async def _reap_then_start(self) -> int:
        await self._reap()
        return await self.start()

    def submit(self, ops: Sequence[Op], seal: bool = False) -> Awaitable[None]:
        """Queue a batch; ``seal``: the child seals its values (``SealedStore`` over this writer).
        While the child runs, the batch's future; else a coroutine that starts a new child first."""
        if not self.running:
            return self._restart_then_submit(ops, seal)
        return self._queue(ops, seal)

    async def _restart_then_submit(self, ops: Sequence[Op], seal: bool) -> None:
        await self.ensure_running()
        await self._queue(ops, seal)

    def submit_wire(self, wire: Wire, seal: bool = False) -> asyncio.Future[None]:
        """``submit`` for a batch already in wire tuples, while the child runs (else failed)."""
        return self._queue_wire(wire, seal)

    def _queue(self, ops: Sequence[Op], seal: bool) -> asyncio.Future[None]:
        return self._queue_wire(encode_ops(ops), seal)

    def _queue_wire(self, wire: Wire, seal: bool) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self._loop.create_future()
        if not self.running:
            future.set_exception(StoreUnavailable("the sqlite writer process is not running"))
            return future
        size = sum(len(key) + len(value) for _, key, value in wire)
        if size > MAX_BATCH_BYTES:
            future.set_exception(StoreUnavailable(f"a batch of {size} bytes is over {MAX_BATCH_BYTES}"))
            return future
        self._pending.append((seal, wire))
        self._pending_futures.append(future)
        self._pending_sizes.append(size)
        if not self._scheduled and len(self._waiting) < _IN_FLIGHT:
            self._scheduled = True
            self._loop.call_soon(self._flush)
        return future

    def _flush(self, *, now: bool = False) -> None:
        self._scheduled = False
        if not self._pending or (len(self._waiting) >= _IN_FLIGHT and not now):
            return  # the reply to the frame in flight sends what waits here
        count = prefix_within(self._pending_sizes, _FRAME_BUDGET)
        batches, futures = self._pending[:count], self._pending_futures[:count]
        del self._pending[:count], self._pending_futures[:count], self._pending_sizes[:count]
        transport = self._transport
        if transport is None or transport.is_closing():
            _fail_all(futures, StoreUnavailable("the sqlite writer process is not running"))
            return
        try:
            frame = encode_frame(("w", self._seq + 1, batches))
        except (ValueError, OverflowError) as exc:  # checked at submit; never leave a frame unanswered
            _fail_all(futures, StoreUnavailable(f"sqlite writer frame could not be encoded: {exc}"))
            return
        self._seq += 1
        self._waiting[self._seq] = futures
        self.stats.count(len(batches), sum(len(ops) for _, ops in batches))
        transport.write(frame)

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

    def on_lost(self, error: StoreUnavailable, transport: asyncio.BaseTransport | None = None) -> None:
        """The child is gone: fail what waits for it. ``transport``: the pipe that lost it;
        one that is no longer the current child's (reaped before a restart) changes nothing."""
        if transport is not None and transport is not self._transport:
            return
        self._accepting = False
        if self._transport is not None:
            self._transport.close()
        self._transport = None
        waiting, self._waiting = self._waiting, {}
        for futures in waiting.values():
            _fail_all(futures, error)
        _fail_all(self._take_pending(), error)
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)
        if self._bye is not None and not self._bye.done():
            self._bye.set_result(None)

    async def stop(self) -> None:
        """Send what is queued, let the child commit it and exit; wait for the process (also
        for one a restart in progress starts: nothing is left running)."""
        self._closed = True
        restart = self._restart
        if restart is not None and not restart.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(restart)
        while self._pending and self.running:
            self._flush(now=True)
        _fail_all(self._take_pending(), StoreUnavailable("the sqlite writer process is not running"))
        if self.running:
            assert self._transport is not None
            self._bye = self._loop.create_future()
            self._transport.write(encode_frame(("q",)))
            try:
                await asyncio.wait_for(asyncio.shield(self._bye), _STOP_TIMEOUT)
            except TimeoutError:
                log.error("the sqlite writer process did not finish in %.0f s", _STOP_TIMEOUT)
        await self._reap()

    def _take_pending(self) -> list[asyncio.Future[None]]:
        """The futures of the batches not sent yet, which are forgotten."""
        futures = self._pending_futures
        self._pending, self._pending_futures, self._pending_sizes = [], [], []
        return futures

    async def _reap(self) -> None:
        self._accepting = False
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
