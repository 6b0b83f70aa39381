"""The embedded SQLite backend: one file in WAL mode, group commit, reads on the loop.

Durability: WAL journal with ``synchronous=NORMAL`` survives a process crash (``kill -9``)
but not an OS crash or power loss (https://sqlite.org/pragma.html#pragma_synchronous).

Writes (``writer=``):

* ``"process"`` (what ``store.factory`` opens for a URL without ``?writer=``): a writer process of its own
  commits the batches (``store.sqlite_process``, ``store.sqlite_writer``), so SQLite's
  B-tree and WAL work runs on another core while the event loop keeps serving; batches
  that arrive while it commits form the next group.
* ``"inline"`` (the class default: tests, tools, short-lived stores): batches submitted
  during one loop iteration are committed together on the event loop thread by a
  ``call_soon`` callback (``_InlineWriter``).
* ``"journal"`` (the node's embedded default store): acknowledged from a journal, committed behind by the writer
  process, read through an overlay meanwhile (``store.sqlite_journaled``). Every mode
  replays a journal a crash left behind when it opens (``store.journal``).

Inline and process writers apply a group with ``store.sqlite_commit.commit_group``: one ``BEGIN IMMEDIATE``
transaction, ``KeyExists`` fails only its own batch, any other error fails the group with
``StoreUnavailable``.

Reads: point reads and scans of up to ``inline_read_limit`` rows run directly on the event
loop thread (a point read takes a few microseconds, less than an executor hop): through the
inline writer's own connection, whose page cache stays warm, or, with the writer process,
through a read-only connection that maps the file (a commit by another process empties a
connection's page cache; refilling it from the mapping costs memory reads, not syscalls).
WAL readers never wait for the writer. Larger reads go to one reader thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from store.api import Op, RecordStore
from store.batch import check_ops, check_scan, prefix_within
from store.crypto import SealingKey
from store.errors import StoreUnavailable
from store.journal import Journal, segment_paths
from store.overlay import MISSING, Overlay, merge_scan
from store.sqlite_commit import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Outcome,
    claim_meta,
    commit_group,
    connect_reader,
    connect_writer,
    decode_ops,
    migrate,
)
from store.sqlite_journaled import WRITER_NICE, JournalFront
from store.sqlite_process import ProcessWriter, WriterStats
from store.sqlite_wal import WalUpkeep, passive_checkpoint

__all__ = ["SqliteStore", "MIGRATIONS", "SCHEMA_VERSION", "WriterMode"]

_T = TypeVar("_T")
log = logging.getLogger("store.sqlite")
WriterMode = Literal["inline", "process", "journal"]
_GET = "SELECT value FROM records WHERE key = ?"
_GET_META = "SELECT v FROM meta WHERE k = ?"
_SCAN = "SELECT key, value FROM records WHERE key >= ? AND key < ? ORDER BY key {} LIMIT ?"
_IN_CHUNK = 500
_READER_MMAP = 256 << 20
_STOP_TIMEOUT = 30.0


@contextmanager
def _read_snapshot(conn: sqlite3.Connection, wanted: bool) -> Iterator[None]:
    """Hold one read transaction around several statements (WAL: one snapshot for all),
    unless not ``wanted`` or the connection is in a transaction already."""
    if not wanted or conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


@contextmanager
def _map_errors(what: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"sqlite {what} failed: {exc}") from exc


@dataclass(slots=True)
class _Job:
    ops: tuple[Op, ...]
    future: asyncio.Future[None]


def _settle(jobs: Sequence[_Job], results: Sequence[Outcome]) -> None:
    """Resolve the futures of a committed group."""
    for job, result in zip(jobs, results, strict=True):
        if job.future.done():
            continue
        if result is None:
            job.future.set_result(None)
        else:
            job.future.set_exception(result)


class _InlineWriter:
    """Group commit on the event loop thread.

    Batches submitted during one loop iteration are committed together by a callback
    scheduled with ``call_soon``. A WAL commit with ``synchronous=NORMAL`` does not fsync;
    ``store.sqlite_wal`` keeps the WAL short and written back from threads.
    """

    def __init__(self, path: str, busy_timeout: float, max_group_ops: int, loop: asyncio.AbstractEventLoop):
        self._path = path
        self._busy_timeout = busy_timeout
        self._max_group_ops = max_group_ops
        self._loop = loop
        self._conn: sqlite3.Connection | None = None
        self._pending: list[_Job] = []
        self._scheduled = False
        self._upkeep: WalUpkeep | None = None
        self.stats = WriterStats()

    async def start(self) -> int:
        try:
            conn = connect_writer(self._path, self._busy_timeout)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite open failed: {exc}") from exc
        try:
            version = migrate(conn)
            self._upkeep = WalUpkeep(conn, self._path, self._busy_timeout)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return version

    @property
    def connection(self) -> sqlite3.Connection | None:
        return self._conn

    def submit(self, ops: Sequence[Op], seal: bool = False) -> Awaitable[None]:
        if seal:  # sealing_writer is offered only with the writer process
            raise ValueError("the inline writer does not seal")
        future: asyncio.Future[None] = self._loop.create_future()
        self._pending.append(_Job(tuple(ops), future))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        conn = self._conn
        while self._pending:
            jobs, self._pending = self._take_group()
            if conn is None:
                results: list[Outcome] = [StoreUnavailable("sqlite store is closed")] * len(jobs)
            else:
                results = commit_group(conn, [job.ops for job in jobs])
            self.stats.groups += 1
            self.stats.count(len(jobs), sum(len(job.ops) for job in jobs))
            _settle(jobs, results)
            if self._upkeep is not None and conn is not None:
                try:
                    self._upkeep.note(conn, sum(len(job.ops) for job in jobs))
                except Exception:  # noqa: BLE001 - the groups queued behind must still be committed
                    log.exception("sqlite WAL upkeep failed")

    def _take_group(self) -> tuple[list[_Job], list[_Job]]:
        """The longest prefix of pending jobs within the group size limit (at least one job)."""
        count = prefix_within((len(job.ops) for job in self._pending), self._max_group_ops)
        return self._pending[:count], self._pending[count:]

    async def stop(self) -> None:
        self._flush()
        upkeep, self._upkeep = self._upkeep, None
        if upkeep is not None:
            await asyncio.to_thread(upkeep.stop)
            if self._conn is not None:
                passive_checkpoint(self._conn)
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class SqliteStore(RecordStore):
    """A RecordStore in one SQLite file (WAL), with group commit inline or in a writer process."""

    backend = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 5.0,
        max_group_ops: int = 4000,
        inline_read_limit: int = 1000,
        writer: WriterMode = "inline",
    ) -> None:
        if writer not in ("inline", "process", "journal"):
            raise ValueError(f"sqlite writer must be 'inline', 'process' or 'journal', not {writer!r}")
        self.path = os.fspath(path)
        self.writer_mode: WriterMode = writer
        self._busy_timeout = busy_timeout
        self._max_group_ops = max_group_ops
        self._inline_read_limit = inline_read_limit
        self._writer: _InlineWriter | ProcessWriter | None = None
        self._reader: sqlite3.Connection | None = None
        self._bulk: sqlite3.Connection | None = None
        self._bulk_pool: ThreadPoolExecutor | None = None
        self._schema_version = 0
        self._sealing: SealingKey | None = None
        self._unsealing: list[SealingKey] = []  # every key version's, to replay a journal
        self._front: JournalFront | None = None

    async def open(self) -> None:
        if self._writer is not None:
            return
        loop = asyncio.get_running_loop()
        writer: _InlineWriter | ProcessWriter
        if self.writer_mode != "inline":
            nice = WRITER_NICE if self.writer_mode == "journal" else 0
            writer = ProcessWriter(self.path, self._busy_timeout, loop, self._sealing, nice)
        else:
            writer = _InlineWriter(self.path, self._busy_timeout, self._max_group_ops, loop)
        self._schema_version = await writer.start()
        try:
            with _map_errors("open"):
                self._reader = writer.connection or connect_reader(self.path, self._busy_timeout, _READER_MMAP)
                self._bulk = connect_reader(self.path, self._busy_timeout, _READER_MMAP)
        except StoreUnavailable:
            await writer.stop()
            raise
        self._bulk_pool = ThreadPoolExecutor(1, thread_name_prefix="timnode-sqlite-read")
        self._writer = writer
        journal = Journal(self.path, self._sealing, self._unsealing)
        try:
            await self._replay_journal(writer, journal)
            if isinstance(writer, ProcessWriter) and self.writer_mode == "journal":
                journal.start()
                self._front = JournalFront(journal, writer, self._stored_keys, loop)
            else:
                journal.close()
        except BaseException:
            journal.close()
            await self.close()
            raise

    async def _replay_journal(self, writer: _InlineWriter | ProcessWriter, journal: Journal) -> None:
        """Commit what a journaled run acknowledged and had not committed when it ended
        (``store.journal``), whatever this store's writer mode, then delete the journal."""
        pending = bool(segment_paths(self.path))
        if pending or self.writer_mode == "journal":
            journal.lock()  # a second process would replay and delete segments still appended to
        if not pending:
            return
        waits: list[Awaitable[None]] = []
        ticks = 0
        for batches in journal.replay():
            ticks += 1
            for seal, ops in batches:
                if isinstance(writer, ProcessWriter):
                    waits.append(writer.submit_wire(ops, seal))
                elif seal:
                    raise StoreUnavailable("the journal holds values to seal: open this store sealed")
                else:
                    waits.append(writer.submit(decode_ops(ops)))
        await asyncio.gather(*waits)
        journal.delete_segments()
        log.info("= sqlite %s: %d journaled ticks committed", self.path, ticks)

    async def close(self) -> None:
        front = self._front
        drained = True
        if front is not None:  # attached until the writer stopped: reads keep seeing the overlay
            drained = await front.close(_STOP_TIMEOUT)
        writer, self._writer = self._writer, None
        if writer is None:  # never opened (a front comes only with a writer)
            return
        await writer.stop()
        self._front = None
        if front is not None:
            if drained:
                front.journal.remove_all()
            else:
                front.journal.close()
                log.error("sqlite %s: writes still uncommitted at close stay in the journal", self.path)
        if self._bulk_pool is not None:  # a bulk read still running finishes off the loop
            await asyncio.to_thread(self._bulk_pool.shutdown, True)
        if self._reader is not None and writer.connection is None:  # else the writer closed it
            self._reader.close()
        if self._bulk is not None:
            self._bulk.close()
        self._reader = self._bulk = self._bulk_pool = None

    async def get(self, key: bytes) -> bytes | None:
        front = self._front
        if front is not None and front.overlay:
            seen = front.overlay.lookup(key)
            if seen is not MISSING:
                return seen  # type: ignore[return-value]
        with _map_errors("read"):
            row = self._conn().execute(_GET, (key,)).fetchone()
        return None if row is None else bytes(row[0])

    async def get_many(self, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        unique = list(dict.fromkeys(keys))
        found: dict[bytes, bytes] = {}
        front = self._front
        if front is not None and front.overlay:
            unique, found = self._from_overlay(front.overlay, unique)
        if len(unique) <= self._inline_read_limit:
            found.update(self._get_many(self._conn(), unique))
        else:
            found.update(await self._in_bulk_thread(lambda conn: self._get_many(conn, unique)))
        return found

    @staticmethod
    def _from_overlay(overlay: Overlay, keys: list[bytes]) -> tuple[list[bytes], dict[bytes, bytes]]:
        """The keys the overlay says nothing of, and the values it holds of the others."""
        rest: list[bytes] = []
        found: dict[bytes, bytes] = {}
        for key in keys:
            seen = overlay.lookup(key)
            if seen is MISSING:
                rest.append(key)
            elif seen is not None:
                found[key] = seen  # type: ignore[assignment]
        return rest, found

    def _stored_keys(self, keys: list[bytes]) -> set[bytes]:
        return set(self._get_many(self._conn(), keys))

    async def scan(self, start: bytes, end: bytes, *, limit: int, reverse: bool = False) -> list[tuple[bytes, bytes]]:
        if not check_scan(start, end, limit):
            self._conn()
            return []
        front = self._front
        laid = front.overlay.in_range(start, end) if front is not None and front.overlay else []
        fetch = limit + len(laid)
        if fetch <= self._inline_read_limit:
            rows = self._scan(self._conn(), start, end, fetch, reverse)
        else:
            rows = await self._in_bulk_thread(lambda conn: self._scan(conn, start, end, fetch, reverse))
        if not laid:
            return rows
        return merge_scan(rows, laid, limit, reverse, complete=len(rows) < fetch)

    async def write(self, ops: Sequence[Op]) -> None:
        await self._write(ops, seal=False)

    async def claim_meta(self, name: str, value: str) -> str:
        with _map_errors("read"):
            row = self._conn().execute(_GET_META, (name,)).fetchone()
        if row is not None:
            return str(row[0])
        with _map_errors("meta write"):
            return await asyncio.to_thread(claim_meta, self.path, self._busy_timeout, name, value)

    def sealing_writer(
        self, sealing: Any, unsealing: Sequence[Any] = ()
    ) -> Callable[[Sequence[Op]], Awaitable[None]] | None:
        """With the writer process, values are sealed there (before ``open``)."""
        self._unsealing = [key for key in unsealing if isinstance(key, SealingKey)]
        if self.writer_mode == "inline" or self._writer is not None or not isinstance(sealing, SealingKey):
            return None
        self._sealing = sealing
        return self._write_sealed

    async def _write_sealed(self, ops: Sequence[Op]) -> None:
        """The writer process seals the values; ``ops`` come checked (``SealedStore.write``)."""
        if self._front is not None:
            if ops:
                await self._front.write(ops, True)
            return
        pending = self._submit(tuple(ops), seal=True)
        if pending is not None:
            await pending

    async def _write(self, ops: Sequence[Op], *, seal: bool) -> None:
        if self._front is not None:
            checked = check_ops(ops)
            if checked:
                await self._front.write(checked, seal)
            return
        pending = self._submit(check_ops(ops), seal=seal)
        if pending is not None:
            await pending

    def _submit(self, checked: tuple[Op, ...], *, seal: bool) -> Awaitable[None] | None:
        """What to await for ``checked`` (None: nothing to write): the writer's future, with no
        coroutine in between."""
        writer = self._writer
        if writer is None:
            raise StoreUnavailable("sqlite store is not open")
        return writer.submit(checked, seal=seal) if checked else None

    def describe(self) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "backend": self.backend,
            "path": self.path,
            "journal_mode": "wal",
            "synchronous": "normal",
            "writer": self.writer_mode,
            "schema_version": self._schema_version,
        }
        if isinstance(self._writer, ProcessWriter):
            facts["writer_pid"] = self._writer.pid
        if self._front is not None:
            facts.update(self._front.describe())
        if self._writer is not None:
            stats = self._writer.stats
            facts.update(groups=stats.groups, batches=stats.batches, ops=stats.ops)
            facts["largest_group"] = stats.largest_group
        return facts

    def _conn(self) -> sqlite3.Connection:
        if self._reader is None:
            raise StoreUnavailable("sqlite store is not open")
        return self._reader

    async def _in_bulk_thread(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        conn, pool = self._bulk, self._bulk_pool
        if conn is None or pool is None:
            raise StoreUnavailable("sqlite store is not open")
        return await asyncio.get_running_loop().run_in_executor(pool, fn, conn)

    @staticmethod
    def _get_many(conn: sqlite3.Connection, keys: list[bytes]) -> dict[bytes, bytes]:
        """``keys`` in chunks of ``_IN_CHUNK``, all from one snapshot (one read transaction)."""
        found: dict[bytes, bytes] = {}
        with _map_errors("read"), _read_snapshot(conn, len(keys) > _IN_CHUNK):
            for i in range(0, len(keys), _IN_CHUNK):
                chunk = keys[i : i + _IN_CHUNK]
                sql = f"SELECT key, value FROM records WHERE key IN ({','.join('?' * len(chunk))})"
                found.update((bytes(k), bytes(v)) for k, v in conn.execute(sql, chunk).fetchall())
        return found

    @staticmethod
    def _scan(
        conn: sqlite3.Connection, start: bytes, end: bytes, limit: int, reverse: bool
    ) -> list[tuple[bytes, bytes]]:
        sql = _SCAN.format("DESC" if reverse else "ASC")
        with _map_errors("scan"):
            rows = conn.execute(sql, (start, end, limit)).fetchall()
        return [(bytes(k), bytes(v)) for k, v in rows]
