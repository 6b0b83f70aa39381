"""The ``journal`` writer mode of ``store.sqlite``: acknowledge from the journal, commit behind.

``JournalFront.write`` queues a batch for the loop tick; at the tick's end its batches'
Inserts are checked against the overlay and the database (one read for the tick, on the
loop, so check and record are one step), the batches that may go are laid over the overlay
(``store.overlay``) in order and written to the journal (``store.journal``: one
``write(2)`` per tick), and then acknowledged. The tick then goes to the writer process
(``store.sqlite_process``), which runs at ``WRITER_NICE`` so that the loop and the
clients it serves get the CPU first; its Inserts travel as Puts, since they were decided
here. When the writer has committed a tick and every tick before it, their overlay
entries go and so do the journal segments they filled. A failed commit (the writer died)
sends every tick not yet committed again, in order: a replayed Put or Delete ends in the
same state. Over ``MAX_UNCOMMITTED_OPS`` (or ``MAX_UNCOMMITTED_BYTES``) new writes wait
for the writer. ``close()`` refuses new writes and waits for the writer to commit what was
acknowledged; reads keep the overlay until the writer has stopped.

Limits: a store is one process's. Another process opening the same file sees a write once
the writer committed it (milliseconds behind); two such processes could both accept an
Insert of one key. So the node journals only its embedded default store
(``timnode.daemon``); a ``--store sqlite://`` URL, which several nodes may share, keeps
the ``process`` writer. Durability is the WAL's under ``synchronous=NORMAL``: the journal
survives ``kill -9`` of the node, not a power loss (it is never ``fsync``ed; a segment is
usually deleted before the kernel writes it back).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from store import sqlite_process
from store.api import Delete, Insert, Op
from store.errors import KeyExists, StoreUnavailable
from store.journal import Batches, Journal
from store.overlay import MISSING, Overlay, Unsealed
from store.sqlite_process import ProcessWriter

__all__ = ["JournalFront", "MAX_UNCOMMITTED_OPS", "WRITER_NICE"]

log = logging.getLogger("store.sqlite")

#: nice value of the writer process in journal mode (setpriority(2); its checkpoint copies
#: run at 19 too, ``store.sqlite_wal``): CFS then weighs it 15 against the loop's 1024, so
#: it commits with the CPU the node and its clients leave (measured: paced p99 9-12 ms in
#: most rounds at half the maximum, against 21-34 at nice 10 and 64-73 at 0)
WRITER_NICE = 19
#: acknowledged ops the writer has not committed, beyond which writes wait for it
MAX_UNCOMMITTED_OPS = 200_000
_RETRY_DELAY = 0.5
#: how long (seconds) journaled ticks wait to go to the writer together. 0: at the end of
#: the loop iteration (the writer process still groups what waits while it commits).
#: Measured at 6,000/s (2 interleaved pairs): 20 ms cut the writer's CPU per send from ~90
#: to ~67 us and its WAL bytes by 15 % (groups share more index pages), but handing over
#: and releasing 20 ms of ticks at once stalled the loop: p50 2.9-3.5 ms, p99 26-70,
#: against 1.3-1.5 and 10-20
COMMIT_DELAY = 0
_RUN_OPS = 10_000  # at most this many ops per batch handed to the writer
_RUN_BYTES = 64 << 20  # and at most this many bytes (the writer refuses a batch over MAX_BATCH_BYTES)
_RETRY_MAX = 10.0
#: acknowledged bytes (keys and values) the writer has not committed, beyond which writes wait
MAX_UNCOMMITTED_BYTES = 256 << 20

_Wire = tuple[tuple[int, bytes, bytes], ...]


@dataclass(slots=True)
class _Tick:
    number: int
    batches: Batches
    keys: list[bytes]
    segment: int
    committed: bool = False
    attempt: int = 0
    ops: int = field(default=0)
    size: int = field(default=0)  # bytes of keys and values
    sizes: list[int] = field(default_factory=list)  # per batch, for the runs handed to the writer


class JournalFront:
    """The journal, the overlay and the commits behind them, for one ``SqliteStore``."""

    def __init__(
        self,
        journal: Journal,
        writer: ProcessWriter,
        stored: Callable[[list[bytes]], set[bytes]],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """``stored(keys)``: those of ``keys`` the database holds (a read on the loop)."""
        self.overlay = Overlay()
        self.journal = journal
        self._writer = writer
        self._stored = stored
        self._loop = loop
        self._tick = 0  # the last tick written to the journal
        self._batches: list[tuple[bool, Sequence[Op], int]] = []  # (seal, ops, bytes)
        self._futures: list[asyncio.Future[None]] = []
        self._scheduled = False
        self._uncommitted: deque[_Tick] = deque()
        self.uncommitted_ops = 0
        self._room = asyncio.Event()
        self._room.set()
        self._drained = asyncio.Event()
        self._drained.set()
        self._resend: asyncio.Task[None] | None = None
        self._unsent: list[_Tick] = []  # journaled, not yet handed to the writer
        self._send_timer: asyncio.TimerHandle | None = None
        self._failures = 0  # commits failed in a row
        self.ticks = 0
        self.uncommitted_bytes = 0
        self.closing = False

    async def write(self, checked: Sequence[Op], seal: bool) -> None:
        """Acknowledge ``checked`` (validated ops) once the journal holds it.

        Raises:
            KeyExists: an Insert found its key present; nothing of the batch applied.
            StoreUnavailable: the journal write failed, the batch is over ``MAX_BATCH_BYTES``,
                or the store is closing.
        """
        size = sum(len(op.key) + len(getattr(op, "value", b"")) for op in checked)
        limit = sqlite_process.MAX_BATCH_BYTES
        if size > limit:  # the writer could never commit it (the process writer refuses it too)
            raise StoreUnavailable(f"a batch of {size} bytes is over {limit}")
        while not self._room.is_set() and not self.closing:
            await self._room.wait()
        if self.closing:
            raise StoreUnavailable("the sqlite store is closing")
        future: asyncio.Future[None] = self._loop.create_future()
        self._batches.append((seal, checked, size))
        self._futures.append(future)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)
        await future

    def _flush(self) -> None:
        """The tick's batches: Inserts checked (one database read for all), the survivors
        laid over the overlay in order and written to the journal; then every batch is
        answered (a journal that failed fails them all, as a failed group commit does)."""
        self._scheduled = False
        queued, futures = self._batches, self._futures
        self._batches, self._futures = [], []
        if not queued:
            return
        tick = self._tick + 1
        undo: list[tuple[bytes, tuple[bytes | None, int] | None]] = []
        try:
            outcomes, wires, sizes = self._lay_over(queued, tick, undo)
            segment = self.journal.append(tuple(wires)) if wires else 0
        except Exception as exc:  # noqa: BLE001 - an I/O error: nothing of this tick applied
            for key, previous in reversed(undo):
                self.overlay.restore(key, previous)
            error = StoreUnavailable(f"sqlite journal write failed: {exc}")
            for future in futures:
                if not future.done():
                    future.set_exception(error)
            return
        for future, outcome in zip(futures, outcomes, strict=True):
            if future.done():
                continue
            if outcome is None:
                future.set_result(None)
            else:
                future.set_exception(outcome)
        if wires:
            self._tick = tick
            keys = [key for key, _ in undo]
            self._track(_Tick(tick, tuple(wires), keys, segment, ops=len(keys), size=sum(sizes), sizes=sizes))

    def _lay_over(
        self,
        queued: list[tuple[bool, Sequence[Op], int]],
        tick: int,
        undo: list[tuple[bytes, tuple[bytes | None, int] | None]],
    ) -> tuple[list[KeyExists | None], list[tuple[bool, _Wire]], list[int]]:
        """Each batch's outcome (None or KeyExists), and the wire batches of those that go
        with their sizes, laid over the overlay (what it replaced recorded in ``undo``)."""
        present = self._insert_keys_present(queued)
        overlay = self.overlay
        outcomes: list[KeyExists | None] = []
        wires: list[tuple[bool, _Wire]] = []
        sizes: list[int] = []
        for seal, ops, size in queued:
            taken = _first_taken(ops, present)
            if taken is not None:
                outcomes.append(KeyExists(taken))
                continue
            wire: list[tuple[int, bytes, bytes]] = []
            for op in ops:
                if type(op) is Delete:
                    wire.append((2, op.key, b""))
                    undo.append((op.key, overlay.set(op.key, None, tick)))
                    present[op.key] = False
                else:
                    value = op.value  # type: ignore[union-attr]
                    wire.append((0, op.key, value))
                    undo.append((op.key, overlay.set(op.key, Unsealed(value) if seal else value, tick)))
                    present[op.key] = True
            wires.append((seal, tuple(wire)))
            sizes.append(size)
            outcomes.append(None)
        return outcomes, wires, sizes

    def _insert_keys_present(self, queued: list[tuple[bool, Sequence[Op], int]]) -> dict[bytes, bool]:
        """Whether each key an Insert of ``queued`` names is present (overlay over database)."""
        present: dict[bytes, bool] = {}
        unknown: list[bytes] = []
        for _, ops, _ in queued:
            for op in ops:
                if type(op) is Insert and op.key not in present:
                    seen = self.overlay.lookup(op.key)
                    if seen is MISSING:
                        present[op.key] = False
                        unknown.append(op.key)
                    else:
                        present[op.key] = seen is not None
        if unknown:
            present.update(dict.fromkeys(self._stored(unknown), True))
        return present

    def _track(self, tick: _Tick) -> None:
        self._uncommitted.append(tick)
        self._unsent.append(tick)
        self.uncommitted_ops += tick.ops
        self.uncommitted_bytes += tick.size
        self.ticks += 1
        self._drained.clear()
        if self.uncommitted_ops > MAX_UNCOMMITTED_OPS or self.uncommitted_bytes > MAX_UNCOMMITTED_BYTES:
            self._room.clear()
        if self._resend is None and self._send_timer is None:
            self._send_timer = self._loop.call_later(COMMIT_DELAY, self._send_unsent)

    def _send_unsent(self) -> None:
        self._send_timer = None
        ticks, self._unsent = self._unsent, []
        if ticks:
            self._commit(ticks)

    def _commit(self, ticks: list[_Tick]) -> None:
        """Hand ``ticks`` to the writer as few batches (runs of equal ``seal``, in order)."""
        if not self._writer.running:  # died: restart it, then send every tick again in order
            if self._resend is None:
                self._resend = asyncio.ensure_future(self._send_again())
            return
        attempts = [tick.attempt for tick in ticks]
        runs: list[tuple[bool, list[tuple[int, bytes, bytes]]]] = []
        run_bytes = 0
        room = min(_RUN_BYTES, sqlite_process.MAX_BATCH_BYTES)
        for tick in ticks:
            for (seal, ops), size in zip(tick.batches, tick.sizes, strict=True):
                if runs and runs[-1][0] == seal and len(runs[-1][1]) < _RUN_OPS and run_bytes + size <= room:
                    runs[-1][1].extend(ops)
                    run_bytes += size
                else:
                    runs.append((seal, list(ops)))
                    run_bytes = size
        waits = [self._writer.submit_wire(tuple(ops), seal) for seal, ops in runs]
        done = asyncio.ensure_future(asyncio.gather(*waits))
        done.add_done_callback(lambda f: self._committed(ticks, attempts, f))

    def _committed(self, ticks: list[_Tick], attempts: list[int], done: asyncio.Future[list[None]]) -> None:
        current = [tick for tick, attempt in zip(ticks, attempts, strict=True) if tick.attempt == attempt]
        if not current:
            return  # an earlier attempt; the ticks were sent again since
        if done.cancelled() or done.exception() is not None:
            error = None if done.cancelled() else done.exception()
            if self._resend is None:
                log.warning("sqlite writer failed to commit journaled writes (%s): sending them again", error)
                self._resend = asyncio.ensure_future(self._send_again())
            return
        self._failures = 0
        for tick in current:
            tick.committed = True
        self._release_committed()

    def _release_committed(self) -> None:
        released = False
        while self._uncommitted and self._uncommitted[0].committed:
            tick = self._uncommitted.popleft()
            self.overlay.drop(tick.keys, tick.number)
            self.uncommitted_ops -= tick.ops
            self.uncommitted_bytes -= tick.size
            released = True
        if not released:
            return
        if self._uncommitted:
            self.journal.release(self._uncommitted[0].segment)
        else:
            self.journal.release(self.journal.segment)
            self._drained.set()
        if self.uncommitted_ops <= MAX_UNCOMMITTED_OPS // 2 and self.uncommitted_bytes <= MAX_UNCOMMITTED_BYTES // 2:
            self._room.set()

    async def _send_again(self) -> None:
        """Restart the writer if it died, then send every uncommitted tick again, in order;
        each failure in a row waits longer (up to ``_RETRY_MAX`` seconds)."""
        self._failures += 1
        if self._failures > 1:
            await asyncio.sleep(min(_RETRY_MAX, _RETRY_DELAY * 2 ** min(self._failures - 2, 10)))
        while True:
            if self.closing and not self._writer.running:
                self._resend = None
                return  # close() reports what stays in the journal
            try:
                await self._writer.ensure_running()
                break
            except StoreUnavailable as exc:
                log.error("sqlite writer restart failed (%s); trying again", exc)
                await asyncio.sleep(_RETRY_DELAY)
        await asyncio.sleep(0)  # let the replies to the failed frame settle first
        self._resend = None
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        self._unsent = []
        ticks = list(self._uncommitted)
        for tick in ticks:
            tick.attempt += 1
            tick.committed = False
        if ticks:
            self._commit(ticks)

    async def close(self, timeout: float) -> bool:
        """Refuse new writes (those waiting for room too), journal the tick in progress, and
        wait until the writer committed everything acknowledged; False on timeout."""
        self.closing = True
        self._room.set()  # waiters wake and are refused
        return await self.drain(timeout)

    async def drain(self, timeout: float) -> bool:
        """Journal the tick in progress and wait until the writer committed everything
        acknowledged; False on timeout."""
        if self._scheduled:
            self._flush()
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_unsent()
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def describe(self) -> dict[str, int]:
        return {
            "journal_segment": self.journal.segment,
            "uncommitted_ops": self.uncommitted_ops,
            "overlay_keys": len(self.overlay),
        }


def _first_taken(ops: Sequence[Op], present: dict[bytes, bool]) -> bytes | None:
    """The key of the first Insert of ``ops`` that finds its key present, applying the batch's
    own ops in order as SQLite would; None if every Insert may go."""
    if not any(type(op) is Insert for op in ops):
        return None
    local: dict[bytes, bool] = {}
    for op in ops:
        if type(op) is Insert:
            if local.get(op.key, present.get(op.key, False)):
                return op.key
            local[op.key] = True
        else:
            local[op.key] = type(op) is not Delete
    return None

