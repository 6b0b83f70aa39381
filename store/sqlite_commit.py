"""SQLite schema, connections and group commit: the synchronous core both writers share.

``commit_group(conn, batches)`` applies a group of batches in one ``BEGIN IMMEDIATE``
transaction and returns one outcome per batch: ``None`` (applied), ``KeyExists`` (an
``Insert`` found its key; nothing of that batch applied) or ``StoreUnavailable`` (the whole
group rolled back). Runs of batches without ``Insert`` are folded into ``executemany``; a
single batch with an ``Insert`` gets a ``SAVEPOINT``; a group with several is planned with
one ``SELECT`` of the insert keys (``store.batch.plan_group``) and written with two
``executemany``. The in-process writer (``store.sqlite``) and the writer process
(``store.sqlite_writer``) both call it, so the semantics cannot drift apart.

Durability: WAL with ``synchronous=NORMAL`` survives ``kill -9`` of the process, not an OS
crash (https://sqlite.org/pragma.html#pragma_synchronous, https://sqlite.org/wal.html).
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from store.api import Delete, Insert, Op, Put
from store.batch import plan_group
from store.errors import KeyExists, StoreUnavailable

__all__ = [
    "Wire",
    "commit_fresh",
    "commit_wire",
    "decode_ops",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Outcome",
    "commit_group",
    "connect_reader",
    "connect_writer",
    "migrate",
]

log = logging.getLogger("store.sqlite")

#: schema migrations; entry ``i`` moves the schema from version ``i`` to ``i + 1``.
#: 2: a rowid table with a unique index on ``key`` instead of a WITHOUT ROWID table. A
#: WITHOUT ROWID b-tree keeps whole rows in its interior pages too, so with message-sized
#: values (~300 bytes, over 1/20 of a page: https://sqlite.org/withoutrowid.html section 4)
#: it is deep and splits often: 9.4 WAL frames per 4-row send, against 6.5 with rows
#: appended to a rowid table and only (key, rowid) in the index; a durable send costs ~30 %
#: less in the writer (measured, groups of 4 and of 64 sends). Rows are copied in key order.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    ("CREATE TABLE IF NOT EXISTS records (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",),
    (
        "CREATE TABLE records_v2 (key BLOB NOT NULL UNIQUE, value BLOB NOT NULL)",
        "INSERT INTO records_v2 (key, value) SELECT key, value FROM records ORDER BY key",
        "DROP TABLE records",
        "ALTER TABLE records_v2 RENAME TO records",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
_PUT = "INSERT OR REPLACE INTO records (key, value) VALUES (?, ?)"
_INSERT = "INSERT INTO records (key, value) VALUES (?, ?)"
_INSERT_NEW = "INSERT OR IGNORE INTO records (key, value) VALUES (?, ?)"
_DELETE = "DELETE FROM records WHERE key = ?"
_IN_CHUNK = 500
#: measured on the reference box (2 cores, 230-byte rows): 64 MiB of page cache and a 10,000
#: page WAL between automatic checkpoints raise group-commit throughput from ~44k to ~65k rows/s;
#: automatic checkpoints serve the migration, then ``store.sqlite_wal.WalUpkeep`` turns them off
_WRITER_PRAGMAS = ("PRAGMA synchronous=NORMAL", "PRAGMA cache_size=-65536", "PRAGMA wal_autocheckpoint=10000")
_SET_VERSION = "INSERT OR REPLACE INTO meta (k, v) VALUES ('schema_version', ?)"

Outcome = KeyExists | StoreUnavailable | None
#: a batch as the writer process receives it (``store.sqlite_wire``)
Wire = tuple[tuple[int, bytes, bytes], ...]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to ``SCHEMA_VERSION`` (idempotent, one immediate transaction)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
        row = conn.execute("SELECT v FROM meta WHERE k = 'schema_version'").fetchone()
        current = int(row[0]) if row else 0
        if current > SCHEMA_VERSION:
            raise StoreUnavailable(f"database schema {current} is newer than this build's {SCHEMA_VERSION}")
        for statements in MIGRATIONS[current:]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(_SET_VERSION, (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION


def claim_meta(path: str, busy_timeout: float, name: str, value: str) -> str:
    """``RecordStore.claim_meta`` on a connection of its own (blocking: run it in a thread).

    Beside the store's writer this waits for the write lock like any WAL writer; it never
    checkpoints (``wal_autocheckpoint=0``), which is ``store.sqlite_wal``'s business."""
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT OR IGNORE INTO meta (k, v) VALUES (?, ?)", (name, value))
            held = conn.execute("SELECT v FROM meta WHERE k = ?", (name,)).fetchone()[0]
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return str(held)
    finally:
        conn.close()


def connect_writer(path: str, busy_timeout: float) -> sqlite3.Connection:
    """A read-write connection in WAL mode with the writer pragmas."""
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        conn.close()
        raise StoreUnavailable(f"sqlite refused WAL mode (got {mode!r})")
    for pragma in _WRITER_PRAGMAS:
        conn.execute(pragma)
    return conn


def connect_reader(path: str, busy_timeout: float, mmap_bytes: int = 0) -> sqlite3.Connection:
    """A read-only connection, usable from any thread; ``mmap_bytes`` maps the database file
    (https://sqlite.org/mmap.html), which makes refilling a page cache that another
    process's commit invalidated cost memory reads instead of ``read()`` calls."""
    uri = Path(path).absolute().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    if mmap_bytes:
        conn.execute(f"PRAGMA mmap_size={int(mmap_bytes)}")
    return conn


@dataclass(slots=True)
class _Run:
    """Consecutive Put/Delete ops folded into executemany segments."""

    segments: list[tuple[str, list[tuple[bytes, ...]]]] = field(default_factory=list)

    def add(self, ops: Sequence[Op]) -> None:
        for op in ops:
            sql, params = _op_params(op)  # no Insert here: runs hold Put and Delete only
            if self.segments and self.segments[-1][0] is sql:
                self.segments[-1][1].append(params)
            else:
                self.segments.append((sql, [params]))

    def flush(self, conn: sqlite3.Connection) -> None:
        for sql, rows in self.segments:
            conn.executemany(sql, rows)
        self.segments.clear()


def _op_params(op: Op) -> tuple[str, tuple[bytes, ...]]:
    if type(op) is Delete:
        return _DELETE, (op.key,)
    return (_INSERT if type(op) is Insert else _PUT), (op.key, op.value)  # type: ignore[union-attr]


def _has_insert(ops: Sequence[Op]) -> bool:
    return any(type(op) is Insert for op in ops)


def _apply_guarded(conn: sqlite3.Connection, ops: Sequence[Op]) -> KeyExists | None:
    """Apply a batch holding an Insert inside its own savepoint."""
    conn.execute("SAVEPOINT batch")
    for op in ops:
        sql, params = _op_params(op)
        try:
            conn.execute(sql, params)
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK TO batch")
            conn.execute("RELEASE batch")
            return KeyExists(op.key)
    conn.execute("RELEASE batch")
    return None


def _apply_in_order(conn: sqlite3.Connection, batches: Sequence[Sequence[Op]]) -> list[Outcome]:
    run = _Run()
    results: list[Outcome] = []
    for ops in batches:
        if _has_insert(ops):
            run.flush(conn)
            results.append(_apply_guarded(conn, ops))
        else:
            run.add(ops)
            results.append(None)
    run.flush(conn)
    return results


def _existing(conn: sqlite3.Connection, keys: list[bytes]) -> set[bytes]:
    found: set[bytes] = set()
    for i in range(0, len(keys), _IN_CHUNK):
        chunk = keys[i : i + _IN_CHUNK]
        sql = f"SELECT key FROM records WHERE key IN ({','.join('?' * len(chunk))})"
        found.update(bytes(row[0]) for row in conn.execute(sql, chunk))
    return found


def _apply_planned(conn: sqlite3.Connection, batches: Sequence[Sequence[Op]]) -> list[Outcome]:
    """Apply a group holding Inserts in three statements: look up, upsert, delete.

    Inside ``BEGIN IMMEDIATE`` this connection is the only writer, so the Insert keys found
    absent by one SELECT stay absent; ``plan_group`` decides which batches conflict.
    """
    insert_keys = list({op.key for ops in batches for op in ops if type(op) is Insert})
    present = _existing(conn, insert_keys)
    plan = plan_group(batches, present.__contains__)
    upserts = {**plan.fresh_inserts, **plan.upserts()}
    if upserts:
        conn.executemany(_PUT, list(upserts.items()))
    deletes = plan.deletes()
    if deletes:
        conn.executemany(_DELETE, [(key,) for key in deletes])
    return list(plan.outcomes)


def commit_group(conn: sqlite3.Connection, batches: Sequence[Sequence[Op]]) -> list[Outcome]:
    """One transaction for ``batches``; one outcome per batch (see the module docstring)."""
    return _in_transaction(conn, len(batches), lambda: _apply_any(conn, batches))


def commit_wire(conn: sqlite3.Connection, batches: Sequence[Wire]) -> list[Outcome]:
    """``commit_group`` for batches of wire tuples (the writer process): ``commit_fresh`` when
    it applies, else the ops are built and applied batch by batch."""

    def apply() -> list[Outcome]:
        fresh = commit_fresh(conn, batches)
        return fresh if fresh is not None else _apply_any(conn, [decode_ops(wire) for wire in batches])

    return _in_transaction(conn, len(batches), apply)


def decode_ops(wire: Wire) -> tuple[Op, ...]:
    """Op objects from wire tuples ``(kind, key, value)``: kind 0 Put, 1 Insert, 2 Delete."""
    return tuple(Put(k, v) if kind == 0 else Insert(k, v) if kind == 1 else Delete(k) for kind, k, v in wire)


def _apply_any(conn: sqlite3.Connection, batches: Sequence[Sequence[Op]]) -> list[Outcome]:
    guarded = sum(1 for ops in batches if _has_insert(ops))
    return _apply_planned(conn, batches) if guarded > 1 else _apply_in_order(conn, batches)


def _in_transaction(conn: sqlite3.Connection, count: int, apply: Callable[[], list[Outcome]]) -> list[Outcome]:
    try:
        conn.execute("BEGIN IMMEDIATE")
        results = apply()
        conn.execute("COMMIT")
        return results
    except Exception as exc:  # sqlite3.Error, or a bug: never leave writers waiting
        log.warning("sqlite group of %d batches failed: %s", count, exc)
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        return [unavailable(exc) for _ in range(count)]


def commit_fresh(conn: sqlite3.Connection, batches: Sequence[Wire]) -> list[Outcome] | None:
    """The common group in two or three statements, straight from wire tuples ``(kind, key,
    value)`` (kind 0 Put, 1 Insert, 2 Delete; ``store.sqlite_wire``): when no ``Insert`` key
    exists yet and no other op of the group touches it, every batch applies, so the group is
    its final state per key. The ``Insert`` keys go first, by ``INSERT OR IGNORE``: the unique
    index checks them as it inserts, and a count of the rows inserted short of the number of
    keys means one existed (a ``SELECT`` of the keys first cost the writer ~5 us more per send
    in groups of 320, measured; a savepoint around a plain ``INSERT`` as much). None when
    that does not hold (nothing written, the transaction open): then ``commit_group``
    decides batch by batch. Called first inside ``BEGIN IMMEDIATE``.
    """
    inserts = [(key, value) for ops in batches for kind, key, value in ops if kind == 1]
    if inserts:
        touched = Counter(key for ops in batches for _, key, _ in ops)
        if any(touched[key] > 1 for key, _ in inserts) or not _insert_new(conn, inserts):
            return None
    final: dict[bytes, bytes | None] = {}
    for ops in batches:
        for kind, key, value in ops:
            if kind != 1:
                final[key] = None if kind == 2 else value
    puts = [(k, v) for k, v in final.items() if v is not None]
    if puts:
        conn.executemany(_PUT, puts)
    deletes = [(k,) for k, v in final.items() if v is None]
    if deletes:
        conn.executemany(_DELETE, deletes)
    return [None] * len(batches)


def _insert_new(conn: sqlite3.Connection, rows: list[tuple[bytes, bytes]]) -> bool:
    """``INSERT OR IGNORE`` rows whose keys should be new; False, with the transaction rolled
    back and begun again (nothing else was written in it yet), if fewer went in (one existed,
    or the connection's change counter wrapped: either way the careful path decides)."""
    before = conn.total_changes
    conn.executemany(_INSERT_NEW, rows)
    if conn.total_changes - before == len(rows):
        return True
    conn.execute("ROLLBACK")
    conn.execute("BEGIN IMMEDIATE")
    return False


def unavailable(exc: BaseException) -> StoreUnavailable:
    """``StoreUnavailable`` for a failed write, chained to its cause."""
    err = StoreUnavailable(f"sqlite write failed: {exc}")
    err.__cause__ = exc
    return err
