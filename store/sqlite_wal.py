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
  a round finds fewer than 256 new frames; the writer process runs its part after sending
  the group's replies.
* **fsync on the commit path.** With ``synchronous=NORMAL`` a checkpoint fsyncs the WAL
  before it copies and the database after, but the database only in a checkpoint that
  reaches the end of the WAL: the thread's rounds rarely do while the writer appends, so
  the writer's part synced every page they had copied (8-18 ms, measured with ``strace``).
  ``_WriteBack`` fdatasyncs the WAL from a thread every few milliseconds while commits
  come (not at all while the store is idle), and in the writer process the copy thread
  fdatasyncs the database after its rounds and then copies once more what came meanwhile
  (``sync_database``), so the writer's part syncs little. It adds
  no disk traffic the checkpoints would not cause. What stays in the writer's part is
  mostly the journal commit of the database's new size (3-14 ms under the benchmark's load).
* **How often.** Every 16,000 rows (~4,000 sends, a WAL of 45-90 MB): each checkpoint
  copies a hot page (an inbox's last page) once however often it changed, so against every
  4,000 rows the writer spends ~5 us less per send (interleaved replays of groups of 20
  and 320 sends), and the writer's part comes a quarter as often.
* **Who gets the CPU.** In the chat benchmark at half the node's rate, with the latency of
  every send timed against the writer's commits, the slow sends came every ~0.5 s, at each
  checkpoint: the copy thread took CPU from the node and the writer (3 busy processes on 2
  cores), and the writer's part stalled commits for ~10 ms. So a copy runs ``COPY_NICE``
  nicer than the writer (``setpriority(2)``: on Linux the nice value is per thread; the
  scheduler weighs a thread 10 nicer ~1/10 as much) until it falls behind (``BEHIND_ROWS``),
  and the writer's part is skipped when the copy reached the WAL's end in a gap between
  commits and the WAL already started over (``wal_sequence``; in ~40 % of checkpoints it
  otherwise copied and synced the new WAL's first frames for nothing). A writer busy
  without gaps still needs its part.
* **Why not ``SCHED_IDLE``.** The copy thread takes the GIL between its checkpoint calls,
  a few microseconds each, and when it is preempted there the writer waits for it: a
  priority inversion. Under ``SCHED_IDLE`` (weight 3 against 1024), with three CPU hogs
  beside a saturated writer process, single writes stalled for up to 72, 762 and 945 ms
  (three runs); at nice 10 for up to 14-31 ms, as without a lower priority (12-46 ms),
  and at nice 19 once for 191 ms. In the chat benchmark nice 10 and ``SCHED_IDLE`` gave
  the same paced p99s within the noise.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading

__all__ = ["BEHIND_ROWS", "CHECKPOINT_ROWS", "COPY_NICE", "WalUpkeep", "passive_checkpoint", "wal_sequence"]

log = logging.getLogger("store.sqlite")

#: rows committed between two checkpoints (~4,000 sends of the IM layer: 45-90 MB of WAL)
CHECKPOINT_ROWS = 16_000
#: a copy's thread runs this much nicer than the thread that starts it (at most 19),
#: yielding the CPU to the commit path and the node's loop (see "Why not SCHED_IDLE" above)
COPY_NICE = 10
#: ... until this many times ``CHECKPOINT_ROWS`` rows have been committed since it began:
#: then it falls behind the writer and is set back to the writer's nice value, as is every
#: later copy where the system refused (lowering a nice value takes root, ``CAP_SYS_NICE``
#: or ``RLIMIT_NICE``)
BEHIND_ROWS = 1.0
#: least time between two write-back rounds (while commits come)
WRITE_BACK_PAUSE = 0.005
#: copy rounds per checkpoint: they stop once a round found fewer than ``_SHORT_ROUND`` new
#: frames (what the writer appended during the round before), so the writer's part is short
_COPY_ROUNDS = 20
_SHORT_ROUND = 256


def passive_checkpoint(conn: sqlite3.Connection) -> int | None:
    """``wal_checkpoint(PASSIVE)`` on ``conn`` (outside a transaction): the number of frames
    now copied, or None when it failed (logged)."""
    try:
        row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.Error as exc:
        log.warning("sqlite checkpoint failed: %s", exc)
        return None
    return int(row[2])


def wal_sequence(path: str) -> int | None:
    """The WAL header's checkpoint sequence number, which SQLite increments each time the
    WAL starts over (https://sqlite.org/fileformat2.html, section 4.1); None without a WAL.
    Reading the WAL file through a descriptor of its own is safe: SQLite locks only the
    database and ``-shm`` files."""
    try:
        fd = os.open(path + "-wal", os.O_RDONLY)
    except OSError:
        return None
    try:
        header = os.pread(fd, 4, 12)
    except OSError:
        return None
    finally:
        os.close(fd)
    return int.from_bytes(header, "big") if len(header) == 4 else None


def _set_nice(thread_id: int, nice: int) -> bool:
    """Set a thread's nice value (``setpriority(2)`` with a thread id: per thread on Linux);
    False where the system refuses."""
    try:
        os.setpriority(os.PRIO_PROCESS, thread_id, nice)
    except OSError:
        return False
    return True


class _Copier:
    """PASSIVE checkpoints on a connection of its own, one at a time, in a thread; with
    ``sync_database``, then an ``fdatasync`` of the database file (see ``WalUpkeep``)."""

    def __init__(self, path: str, busy_timeout: float, sync_database: bool) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._sync_database = sync_database
        self._conn: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        self._database_fd = -1
        self._niced = sys.platform == "linux"  # copies start at COPY_NICE (per-thread nice)
        self._hurried = False  # the running copy was set back to the writer's nice value
        self._base_nice = 0  # the nice value of the thread that started the copy

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
        placed = threading.Event()
        self._thread = threading.Thread(target=self._copy, args=(placed,), name="sqlite-checkpoint", daemon=True)
        self._thread.start()
        self._hurried = False
        if self._niced and self._thread.native_id is not None:
            self._base_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            _set_nice(self._thread.native_id, min(19, self._base_nice + COPY_NICE))
        placed.set()  # the copy starts at its priority

    def hurry(self) -> None:
        """The running copy fell behind: the writer's nice value for it, or, where the system
        refuses, for every later copy."""
        thread = self._thread
        if not self._niced or self._hurried or thread is None or thread.native_id is None:
            return
        self._hurried = True
        if not _set_nice(thread.native_id, self._base_nice):
            self._niced = False

    def _copy(self, placed: threading.Event) -> None:
        placed.wait()
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(
                    self._path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
                )
        except sqlite3.Error as exc:
            log.warning("sqlite checkpoint connection failed: %s", exc)
            return
        if self._rounds(self._conn) and self._sync_database:
            self._sync()
            self._rounds(self._conn)  # what the writer appended during the sync

    @staticmethod
    def _rounds(conn: sqlite3.Connection) -> bool:
        """Copy rounds, each taking what the writer appended during the last, until one finds
        little new; False if a checkpoint failed."""
        copied = -1
        for _ in range(_COPY_ROUNDS):
            done = passive_checkpoint(conn)
            if done is None:
                return False
            if 0 <= copied and done - copied < _SHORT_ROUND:
                break
            copied = done
        return True

    def _sync(self) -> None:
        try:
            if self._database_fd < 0:
                self._database_fd = os.open(self._path, os.O_RDONLY)
            os.fdatasync(self._database_fd)
        except OSError as exc:
            log.debug("fdatasync %s failed: %s", self._path, exc)

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def release(self) -> None:
        if self._database_fd >= 0:
            os.close(self._database_fd)
            self._database_fd = -1


class _WriteBack:
    """fdatasync of the WAL, in a thread, after commits (``wake``), at most once per
    ``pause``, until stopped. An idle store syncs nothing: polling every 5 ms cost an idle
    node 180 ``fdatasync`` calls and 2 % of a core per second (measured).

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
        self._written = threading.Event()  # set by commits, cleared before each sync
        self._thread = threading.Thread(target=self._run, name="sqlite-write-back", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """A commit appended to the WAL: sync it soon (cheap while a sync is due anyway)."""
        if not self._written.is_set():
            self._written.set()

    def _run(self) -> None:
        while True:
            self._written.wait()
            if self._stop.is_set():
                return
            self._written.clear()  # commits during the sync ask for the next one
            self._sync()
            if self._stop.wait(self._pause):
                return

    def _sync(self) -> None:
        if self._fd < 0:
            try:
                self._fd = os.open(self._path, os.O_RDONLY)
            except OSError:
                return  # not there yet
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            log.debug("fdatasync %s failed: %s", self._path, exc)

    def stop(self) -> None:
        self._stop.set()
        self._written.set()
        self._thread.join()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class WalUpkeep:
    """Checkpoints every ``every`` rows (copied in a thread, finished on the writer's
    connection ``conn``) and continuous write-back; see the module docstring.

    ``sync_database``: the copy thread also ``fdatasync``s the database file once its rounds
    are done. SQLite syncs it only in a checkpoint that reaches the end of the WAL, which the
    thread's rounds rarely do while the writer appends, so the sync of every page they copied
    fell to the writer's part, on the commit path (8-18 ms, measured). It takes a descriptor
    of the database file that must stay open while any connection of this process has the
    database open (closing it drops the process's POSIX locks: see ``_WriteBack``), so only a
    process that can call ``release()`` after closing every connection (the writer process)
    may ask for it.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: str,
        busy_timeout: float,
        *,
        every: int = CHECKPOINT_ROWS,
        pause: float = WRITE_BACK_PAUSE,
        sync_database: bool = False,
    ) -> None:
        conn.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints are ours from here on
        self._every = every
        self._path = path
        self._sequence: int | None = None  # the WAL's checkpoint sequence when the copy began
        self._rows = 0
        self._copier = _Copier(path, busy_timeout, sync_database)
        self._write_back = _WriteBack(path, pause)

    def note(self, conn: sqlite3.Connection, rows: int) -> None:
        """Count ``rows`` just committed on ``conn`` (the writer's connection, outside a
        transaction): start a copy when due, finish one that has ended."""
        self._rows += rows
        self._write_back.wake()
        if self._copier.take_finished():
            if wal_sequence(self._path) == self._sequence:
                passive_checkpoint(conn)  # else a gap between commits let the WAL start over already
        elif not self._copier.running:
            if self._rows >= self._every:
                self._rows = 0
                self._sequence = wal_sequence(self._path)
                self._copier.start()
        elif self._rows >= BEHIND_ROWS * self._every:
            self._copier.hurry()

    def stop(self) -> None:
        """Wait for a running copy and stop the threads (blocks: call from a thread in async code)."""
        self._copier.close()
        self._write_back.stop()

    def close(self, conn: sqlite3.Connection) -> None:
        """``stop``, then checkpoint what is left on ``conn`` (on shutdown)."""
        self.stop()
        passive_checkpoint(conn)

    def release(self) -> None:
        """Close the database descriptor of ``sync_database``: only after every connection of
        this process to the database is closed."""
        self._copier.release()
