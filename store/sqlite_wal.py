"""WAL upkeep for a SQLite writer: checkpoints that keep the WAL short, and write-back.

Both writers (the writer process, ``store.sqlite_writer``, and the inline writer of
``store.sqlite``) hand their connection to ``WalUpkeep`` once the schema is migrated (it
turns SQLite's automatic checkpoints off) and call ``WalUpkeep.note`` after every commit.
Two problems it solves, both measured under the chat benchmark's load:

* **Checkpoint starvation** (https://sqlite.org/wal.html, section "Avoiding Excessively
  Large WAL Files"). A checkpoint run only from another connection while the writer keeps
  committing never reaches the end of the WAL, so the WAL is never restarted: it grew to
  1.6 GB in 30 s, and appending to an ever longer WAL made a commit ~2.8x dearer than
  rewriting the start of a short one. A checkpoint run only on the writer's connection
  stalls the commit path while it copies (~15 ms per 4,000 rows). So a thread copies the
  bulk on a connection of its own (``PRAGMA wal_checkpoint`` releases the GIL), then the
  writer, between two commits, copies the few frames appended meanwhile. With every frame
  backfilled and no reader in the WAL, the next write transaction starts the WAL over.
  The thread copies in rounds, each taking what the writer appended during the last, until
  a round is short, so the writer's part (with its ``fsync`` of the database) covers less;
  the writer process runs it after sending the group's replies. Measured in the chat
  benchmark at half rate: the writer's part took 8-15 ms after every 4,000 rows, on the
  path of the acknowledgements, and put the p99 at 30-80 ms; now 25-34 ms.
* **fsync on the commit path.** With ``synchronous=NORMAL`` a checkpoint fsyncs the WAL
  before it copies and the database after: 20-30 ms each with ~50 MB dirty. ``_WriteBack``
  fdatasyncs the WAL from a thread every few milliseconds, so the checkpoint's own WAL sync
  finds little left to write (the database sync of the writer's part of a checkpoint covers
  only the few pages it copied). It adds no disk traffic the checkpoints would not cause.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time

__all__ = ["CHECKPOINT_ROWS", "WalUpkeep", "passive_checkpoint"]

log = logging.getLogger("store.sqlite")

#: rows committed between two checkpoints (~1,000 sends of the IM layer: a few MB of WAL)
CHECKPOINT_ROWS = 4_000
#: pause between two write-back rounds
WRITE_BACK_PAUSE = 0.005
#: copy rounds per checkpoint: they stop once a round took under ``_SHORT_ROUND`` seconds
_COPY_ROUNDS = 5
_SHORT_ROUND = 0.002


def passive_checkpoint(conn: sqlite3.Connection) -> None:
    """``wal_checkpoint(PASSIVE)`` on ``conn`` (outside a transaction); a failure is logged."""
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except sqlite3.Error as exc:
        log.warning("sqlite checkpoint failed: %s", exc)


class _Copier:
    """PASSIVE checkpoints on a connection of its own, one at a time, in a thread."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def take_finished(self) -> bool:
        """True once per copy, when it has ended."""
        if self._thread is not None and not self._thread.is_alive():
            self._thread = None
            return True
        return False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._copy, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(
                    self._path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
                )
        except sqlite3.Error as exc:
            log.warning("sqlite checkpoint connection failed: %s", exc)
            return
        for _ in range(_COPY_ROUNDS):  # each round copies what the writer appended during the last
            started = time.perf_counter()
            passive_checkpoint(self._conn)
            if time.perf_counter() - started < _SHORT_ROUND:
                break

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _WriteBack:
    """fdatasync of the WAL, in a thread, until stopped.

    Only the WAL, through one descriptor held until ``stop``: SQLite takes its POSIX locks
    on the database file (and the ``-shm`` file), and closing *any* descriptor of a file
    drops every POSIX lock the process holds on it, which corrupts the database as soon as
    another process writes (https://sqlite.org/howtocorrupt.html, section 2.2). SQLite never
    locks the WAL file itself.
    """

    def __init__(self, path: str, pause: float) -> None:
        self._path = path + "-wal"
        self._pause = pause
        self._fd = -1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-write-back", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._pause):
            if self._fd < 0:
                try:
                    self._fd = os.open(self._path, os.O_RDONLY)
                except OSError:
                    continue  # not there yet
            try:
                os.fdatasync(self._fd)
            except OSError as exc:
                log.debug("fdatasync %s failed: %s", self._path, exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class WalUpkeep:
    """Checkpoints every ``every`` rows (copied in a thread, finished on the writer's
    connection ``conn``) and continuous write-back; see the module docstring."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: str,
        busy_timeout: float,
        *,
        every: int = CHECKPOINT_ROWS,
        pause: float = WRITE_BACK_PAUSE,
    ) -> None:
        conn.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints are ours from here on
        self._every = every
        self._rows = 0
        self._copier = _Copier(path, busy_timeout)
        self._write_back = _WriteBack(path, pause)

    def note(self, conn: sqlite3.Connection, rows: int) -> None:
        """Count ``rows`` just committed on ``conn`` (the writer's connection, outside a
        transaction): start a copy when due, finish one that has ended."""
        self._rows += rows
        if self._copier.take_finished():
            passive_checkpoint(conn)
        elif self._rows >= self._every and not self._copier.running:
            self._rows = 0
            self._copier.start()

    def stop(self) -> None:
        """Wait for a running copy and stop the threads (blocks: call from a thread in async code)."""
        self._copier.close()
        self._write_back.stop()

    def close(self, conn: sqlite3.Connection) -> None:
        """``stop``, then checkpoint what is left on ``conn`` (on shutdown)."""
        self.stop()
        passive_checkpoint(conn)
