"""The PostgreSQL backend (asyncpg) with group commit.

Table: ``NAME (key bytea PRIMARY KEY, value bytea NOT NULL)``; ``bytea`` compares bytewise,
so scans order like the other backends. The schema version lives in ``NAME_meta(k, v)``;
migrations run on open under a transaction-scoped advisory lock, so nodes sharing a
database may open concurrently (a server without ``pg_advisory_xact_lock`` / ``hashtext``,
e.g. CockroachDB, migrates unlocked: see ``_lock_migration``). ``?table=NAME`` in the DSN
picks the table and is removed before the DSN reaches asyncpg; its other query parameters
(``sslmode``, ``sslrootcert``, server settings) are asyncpg's.

Group commit: ``write()`` appends its batch to a pending list and awaits a future; one
flusher task at a time takes every pending batch and commits them in ONE transaction:

1. fetch which ``Insert`` keys already exist (one ``= ANY($1)`` query);
2. replay the batches in order (``store.batch.plan_group``): a batch whose ``Insert`` hits a
   present key fails with ``KeyExists`` and contributes nothing;
3. write the final state in at most three set-based statements (``unnest`` arrays, keys
   sorted so concurrent nodes lock rows in the same order): plain ``INSERT`` of the fresh
   insert keys, ``INSERT ... ON CONFLICT DO UPDATE`` of the other values, ``DELETE``.

If another writer inserted a fresh key meanwhile, step 3 raises a unique violation; the
group is then redone the slow way: one ``SAVEPOINT`` per batch, one statement per op.
Statements go through asyncpg's per-connection prepared statement cache.

Retries: a transaction that ends in SQLSTATE 40001 ``serialization_failure`` or 40P01
``deadlock_detected`` (PostgreSQL docs, Appendix A "Error Codes"; 40001 is how CockroachDB's
"restart transaction" errors and YugabyteDB's conflicts reach the client) was rolled back
whole and applied nothing, so it is run again from the start: the group (re-reading which
``Insert`` keys exist), a read, the migration. Up to ``_ATTEMPTS`` runs, with full-jitter
exponential backoff between them. Any other error, and 40003 ``statement_completion_unknown``
(the commit may have happened), is not retried: the group fails with ``StoreUnavailable``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import asyncpg

from store.api import Delete, Insert, Op, RecordStore
from store.batch import check_ops, check_scan, plan_group
from store.errors import BadStoreUrl, KeyExists, StoreUnavailable

__all__ = ["PostgresStore", "split_table", "MIGRATIONS"]

log = logging.getLogger(__name__)

#: schema migrations (``{t}`` is the quoted table); entry ``i`` moves version ``i`` to ``i + 1``
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    ("CREATE TABLE IF NOT EXISTS {t} (key bytea PRIMARY KEY, value bytea NOT NULL)",),
)
SCHEMA_VERSION = len(MIGRATIONS)
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,57}")  # leaves room for "_meta" within 63 bytes
_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
#: 40001 serialization_failure, 40P01 deadlock_detected: the transaction was rolled back, rerun it
_RETRYABLE = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)
_ATTEMPTS = 6  # runs of one transaction, the first included
_BACKOFF_BASE_S = 0.005
_BACKOFF_CAP_S = 0.25
#: serializes concurrent migrations of one table; servers without it answer 42883
#: undefined_function (CockroachDB) or 0A000 feature_not_supported (YugabyteDB before 2.25.1
#: or with advisory locks off), and the migration then runs unlocked
_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext($1))"
_NO_LOCK = (asyncpg.UndefinedFunctionError, asyncpg.FeatureNotSupportedError)
T = TypeVar("T")


def split_table(dsn: str) -> tuple[str, str | None]:
    """``dsn`` without its ``table`` query parameter, and that parameter's value."""
    base, sep, query = dsn.partition("?")
    if not sep:
        return dsn, None
    kept, table = [], None
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == "table":
            table = unquote(value)
        elif part:
            kept.append(part)
    return (base + "?" + "&".join(kept) if kept else base), table


def _check_table(name: str) -> str:
    if not _TABLE_NAME.fullmatch(name):
        raise BadStoreUrl(f"bad table name {name!r}: want [a-z_][a-z0-9_]{{0,57}}")
    return name


def _backoff(attempt: int) -> float:
    """Seconds to wait before rerunning after failed run ``attempt`` (1-based): full jitter."""
    return random.uniform(0.0, min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt))


@contextmanager
def _map_errors(what: str) -> Iterator[None]:
    try:
        yield
    except _ERRORS as exc:
        raise StoreUnavailable(f"postgresql {what} failed: {exc}") from exc


@dataclass(frozen=True, slots=True)
class _Sql:
    """The statements for one table."""

    get: str
    get_many: str
    scan_asc: str
    scan_desc: str
    existing: str
    insert_many: str
    upsert_many: str
    delete_many: str
    insert_one: str
    upsert_one: str
    delete_one: str

    @classmethod
    def for_table(cls, table: str) -> _Sql:
        t = f'"{table}"'
        scan = f"SELECT key, value FROM {t} WHERE key >= $1 AND key < $2 ORDER BY key {{}} LIMIT $3"
        unnest = "SELECT * FROM unnest($1::bytea[], $2::bytea[])"
        update = "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        return cls(
            get=f"SELECT value FROM {t} WHERE key = $1",
            get_many=f"SELECT key, value FROM {t} WHERE key = ANY($1::bytea[])",
            scan_asc=scan.format("ASC"),
            scan_desc=scan.format("DESC"),
            existing=f"SELECT key FROM {t} WHERE key = ANY($1::bytea[])",
            insert_many=f"INSERT INTO {t} (key, value) {unnest}",
            upsert_many=f"INSERT INTO {t} (key, value) {unnest} {update}",
            delete_many=f"DELETE FROM {t} WHERE key = ANY($1::bytea[])",
            insert_one=f"INSERT INTO {t} (key, value) VALUES ($1, $2)",
            upsert_one=f"INSERT INTO {t} (key, value) VALUES ($1, $2) {update}",
            delete_one=f"DELETE FROM {t} WHERE key = $1",
        )


@dataclass(slots=True)
class _Job:
    ops: tuple[Op, ...]
    future: asyncio.Future[None]


@dataclass(slots=True)
class GroupStats:
    """Counters of the group-commit flusher."""

    groups: int = 0
    batches: int = 0
    slow_groups: int = 0
    largest_group: int = 0
    retries: int = 0  # transactions rerun after 40001 / 40P01 (groups, reads, migration)


def _columns(pairs: dict[bytes, bytes]) -> tuple[list[bytes], list[bytes]]:
    keys = sorted(pairs)
    return keys, [pairs[k] for k in keys]


class PostgresStore(RecordStore):
    """A RecordStore in one PostgreSQL table, with group commit over an asyncpg pool."""

    backend = "postgresql"

    def __init__(self, dsn: str, table: str = "records", *, pool_size: int = 4, max_group_ops: int = 20_000) -> None:
        self._dsn, url_table = split_table(dsn)
        self.table = _check_table(url_table or table)
        self._sql = _Sql.for_table(self.table)
        self._pool_size = pool_size
        self._max_group_ops = max_group_ops
        self._pool: Any = None
        self._pending: list[_Job] = []
        self._flusher: asyncio.Task[None] | None = None
        self.stats = GroupStats()
        #: whether the last migration ran under the advisory lock (None before ``open``)
        self.migration_locked: bool | None = None

    async def open(self) -> None:
        if self._pool is not None:
            return
        with _map_errors("open"):
            pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=self._pool_size)
            try:
                await self._retrying("migration", lambda: self._migrate_on(pool))
            except BaseException:
                await pool.close()
                raise
        self._pool = pool

    async def close(self) -> None:
        pool = self._pool
        if pool is None:
            return
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)
        self._pool = None
        await pool.close()

    async def get(self, key: bytes) -> bytes | None:
        pool = self._require_pool()
        with _map_errors("read"):
            value = await self._retrying("read", lambda: pool.fetchval(self._sql.get, key))
        return None if value is None else bytes(value)

    async def get_many(self, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        pool = self._require_pool()
        if not keys:
            return {}
        unique = list(dict.fromkeys(keys))
        with _map_errors("read"):
            rows = await self._retrying("read", lambda: pool.fetch(self._sql.get_many, unique))
        return {bytes(k): bytes(v) for k, v in rows}

    async def scan(self, start: bytes, end: bytes, *, limit: int, reverse: bool = False) -> list[tuple[bytes, bytes]]:
        pool = self._require_pool()
        if not check_scan(start, end, limit):
            return []
        sql = self._sql.scan_desc if reverse else self._sql.scan_asc
        with _map_errors("scan"):
            rows = await self._retrying("scan", lambda: pool.fetch(sql, start, end, limit))
        return [(bytes(k), bytes(v)) for k, v in rows]

    async def write(self, ops: Sequence[Op]) -> None:
        checked = check_ops(ops)
        self._require_pool()
        if not checked:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(checked, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="timnode-pg-flusher")
        await future

    async def claim_meta(self, name: str, value: str) -> str:
        pool = self._require_pool()
        meta = f'"{self.table}_meta"'
        claim = f"INSERT INTO {meta} (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING"

        async def run() -> str:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(claim, name, value)
                return str(await conn.fetchval(f"SELECT v FROM {meta} WHERE k = $1", name))

        with _map_errors("meta write"):
            return await self._retrying("meta write", run)

    def describe(self) -> dict[str, Any]:
        parts = urlsplit(self._dsn)
        return {
            "backend": self.backend,
            "host": parts.hostname or "",
            "database": parts.path.lstrip("/"),
            "table": self.table,
            "schema_version": SCHEMA_VERSION,
            "groups": self.stats.groups,
            "batches": self.stats.batches,
            "slow_groups": self.stats.slow_groups,
            "largest_group": self.stats.largest_group,
            "retries": self.stats.retries,
            "migration_locked": self.migration_locked,
        }

    def _require_pool(self) -> Any:
        if self._pool is None:
            raise StoreUnavailable("postgresql store is not open")
        return self._pool

    async def _retrying(self, what: str, run: Callable[[], Awaitable[T]]) -> T:
        """``run()``, rerun after SQLSTATE 40001 / 40P01 (its transaction applied nothing): ``_ATTEMPTS`` runs."""
        attempt = 1
        while True:
            try:
                return await run()
            except _RETRYABLE as exc:
                if attempt >= _ATTEMPTS:
                    raise
                self.stats.retries += 1
                log.info("= postgresql %s: SQLSTATE %s, run %d again", what, exc.sqlstate, attempt + 1)
                await asyncio.sleep(_backoff(attempt))
                attempt += 1

    async def _migrate_on(self, pool: Any) -> None:
        async with pool.acquire() as conn:
            await self._migrate(conn)

    async def _migrate(self, conn: Any) -> None:
        meta = f'"{self.table}_meta"'
        async with conn.transaction():
            self.migration_locked = await self._lock_migration(conn)
            await conn.execute(f"CREATE TABLE IF NOT EXISTS {meta} (k text PRIMARY KEY, v text NOT NULL)")
            current = int(await conn.fetchval(f"SELECT v FROM {meta} WHERE k = 'schema_version'") or 0)
            if current > SCHEMA_VERSION:
                raise StoreUnavailable(f"table schema {current} is newer than this build's {SCHEMA_VERSION}")
            for statements in MIGRATIONS[current:]:
                for statement in statements:
                    await conn.execute(statement.format(t=f'"{self.table}"'))
            if current != SCHEMA_VERSION:  # no write when nothing changed: fewer conflicts between opens
                upsert = "VALUES ('schema_version', $1) ON CONFLICT (k) DO UPDATE SET v = $1"
                await conn.execute(f"INSERT INTO {meta} (k, v) {upsert}", str(SCHEMA_VERSION))

    async def _lock_migration(self, conn: Any) -> bool:
        """Take the migration's advisory lock inside a savepoint; False where the server has none.

        Unlocked, concurrent first opens rely on ``IF NOT EXISTS``, ``ON CONFLICT`` and the
        40001 retry; SQLSTATEs 42883 and 0A000 as in the PostgreSQL docs, Appendix A.
        """
        savepoint = conn.transaction()
        await savepoint.start()
        try:
            await conn.execute(_MIGRATION_LOCK, f"timnode.store.{self.table}")
        except _NO_LOCK as exc:
            await savepoint.rollback()
            log.info("= postgresql %s: no advisory lock (SQLSTATE %s), migrating unlocked", self.table, exc.sqlstate)
            return False
        await savepoint.commit()
        return True

    async def _flush(self) -> None:
        """Commit pending batches group by group until none is left."""
        while self._pending and self._pool is not None:
            jobs = self._take()
            try:
                results = await self._commit_group(jobs)
            except asyncio.CancelledError:
                for job in jobs + self._pending:
                    job.future.cancel()
                raise
            except Exception as exc:  # a bug must not leave writers waiting forever
                results = [_unavailable(exc) for _ in jobs]
            self._count(jobs)
            for job, result in zip(jobs, results, strict=True):
                if job.future.done():
                    continue
                if result is None:
                    job.future.set_result(None)
                else:
                    job.future.set_exception(result)

    def _take(self) -> list[_Job]:
        size, count = 0, 0
        for job in self._pending:
            if count and size + len(job.ops) > self._max_group_ops:
                break
            size += len(job.ops)
            count += 1
        jobs, self._pending = self._pending[:count], self._pending[count:]
        return jobs

    def _count(self, jobs: Sequence[_Job]) -> None:
        self.stats.groups += 1
        self.stats.batches += len(jobs)
        self.stats.largest_group = max(self.stats.largest_group, len(jobs))

    async def _commit_group(self, jobs: Sequence[_Job]) -> list[BaseException | None]:
        """One transaction for ``jobs``; rerun whole after 40001 / 40P01 (see the module docstring)."""
        try:
            return await self._retrying("group", lambda: self._commit_once(jobs))
        except _ERRORS as exc:
            log.warning("= postgresql group of %d batches failed: %s", len(jobs), exc)
            return [_unavailable(exc) for _ in jobs]

    async def _commit_once(self, jobs: Sequence[_Job]) -> list[BaseException | None]:
        async with self._pool.acquire() as conn:
            return await self._commit_on(conn, jobs)

    async def _commit_on(self, conn: Any, jobs: Sequence[_Job]) -> list[BaseException | None]:
        try:
            return await self._fast_group(conn, jobs)
        except asyncpg.UniqueViolationError:
            self.stats.slow_groups += 1
            return await self._slow_group(conn, jobs)

    async def _fast_group(self, conn: Any, jobs: Sequence[_Job]) -> list[BaseException | None]:
        sql = self._sql
        inserts = [op.key for job in jobs for op in job.ops if type(op) is Insert]
        async with conn.transaction():
            existing: set[bytes] = set()
            if inserts:
                existing = {bytes(r[0]) for r in await conn.fetch(sql.existing, list(set(inserts)))}
            plan = plan_group([job.ops for job in jobs], existing.__contains__)
            if plan.fresh_inserts:
                await conn.execute(sql.insert_many, *_columns(plan.fresh_inserts))
            upserts = plan.upserts()
            if upserts:
                await conn.execute(sql.upsert_many, *_columns(upserts))
            deletes = plan.deletes()
            if deletes:
                await conn.execute(sql.delete_many, sorted(deletes))
        return list(plan.outcomes)

    async def _slow_group(self, conn: Any, jobs: Sequence[_Job]) -> list[BaseException | None]:
        async with conn.transaction():
            return [await self._guarded(conn, job.ops) for job in jobs]

    async def _guarded(self, conn: Any, ops: Sequence[Op]) -> KeyExists | None:
        """Apply one batch inside its own savepoint, op by op."""
        savepoint = conn.transaction()
        await savepoint.start()
        for op in ops:
            try:
                await self._apply_one(conn, op)
            except asyncpg.UniqueViolationError:
                await savepoint.rollback()
                return KeyExists(op.key)
        await savepoint.commit()
        return None

    async def _apply_one(self, conn: Any, op: Op) -> None:
        if type(op) is Delete:
            await conn.execute(self._sql.delete_one, op.key)
        elif type(op) is Insert:
            await conn.execute(self._sql.insert_one, op.key, op.value)
        else:
            await conn.execute(self._sql.upsert_one, op.key, op.value)  # type: ignore[union-attr]


def _unavailable(exc: BaseException) -> StoreUnavailable:
    err = StoreUnavailable(f"postgresql write failed: {exc}")
    err.__cause__ = exc
    return err
