"""Record store throughput by backend and shard count, and the cost of an online rebalance.

``python -m bench store [--json] [--batches N] [--records N] [--backends sqlite,postgres] [--shards 1,2,4]``

Every store is opened as the node opens it: ``store.factory.open_store(url, Keyring)``
(values sealed), sharded stores through a ``shards://`` file whose root holds a map made by
``store.sharded.create_shards``. For each backend (SQLite files in a temporary directory,
PostgreSQL tables ``bench_store_<tag>_*`` dropped at the end) and each shard count (plus
the unsharded store as a baseline):

1. **writes**: ``--batches`` 1:1 sends, each one batch exactly as ``im/messaging.py``
   ``Messenger._rows`` builds it: the serialized ``Message`` (150-250 bytes) into the
   sender's inbox, the recipient's inbox and the conversation (three ``Put``), plus the
   ``Insert`` of the idempotency record; keys from ``im.keys.KeySchema`` (kind byte +
   16-byte blinded hash + id), so they spread over slots and shards as real ones.
   ``--concurrency`` tasks write at once (a node's connections), so group commit works as
   in the node. Batches are built before the clock starts.
2. **reads**: ``--reads`` point gets of stored inbox records, then ``--reads`` sync pages
   (``scan`` of a user's inbox range, ``limit=100``), by the same number of tasks.

**rebalance**: ``--records`` records (message batches, loaded 1,000 records per write) on a
one-shard store, then ``store.rebalance.add_shard`` + ``start_rebalance`` (what the node's
``/admin/store/add-shard`` route runs) onto a second shard of the same backend, timed until
the rebalance task ends; the records found on the new shard are counted.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import secrets
import string
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from bench.loops import loop_factory
from bench.loops import run as run_loop
from bench.report import emit, note, percentile, rounded
from im import client_pb2 as pb
from im import records_pb2 as rec
from im.ids import MessageIdGenerator
from im.keys import KeySchema
from store.api import Insert, Op, Put, RecordStore
from store.crypto import Keyring
from store.errors import StoreError
from store.factory import open_raw, open_store, write_shards_file
from store.postgres import split_table
from store.rebalance import add_shard, start_rebalance
from store.sharded import PFX, ShardedStore, create_shards, find_sharded, pages
from store.shardmap import SLOT_COUNT, public_url, slot_of

__all__ = ["SUMMARY", "StoreOptions", "Workload", "build_result", "main", "parse_args", "run"]

SUMMARY = "store writes/s and reads/s for 1/2/4 shards on SQLite and PostgreSQL; rebalance s per 100k records"
BACKENDS = ("sqlite", "postgres")
UNSHARDED = "unsharded"
DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PAGE_LIMIT = 100  # a sync page, as the SDK asks for
LOAD_CHUNK = 1000  # records per write while loading the rebalance store
_TEXT = string.ascii_letters + string.digits + " "
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreOptions:
    """Parsed command line."""

    as_json: bool = False
    backends: tuple[str, ...] = BACKENDS
    shards: tuple[int, ...] = (1, 2, 4)
    baseline: bool = True
    batches: int = 10_000
    reads: int = 10_000
    concurrency: int = 500
    users: int = 1_000
    records: int = 100_000
    pg_dsn: str = DEFAULT_PG_DSN
    loop: str = "auto"


@dataclass(slots=True)
class Workload:
    """1:1 sends among ``users`` users, as ``Messenger`` stores them (one batch per send)."""

    keyring: Keyring
    users: int
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    keys: KeySchema = field(init=False)
    ids: MessageIdGenerator = field(init=False)
    names: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.keys = KeySchema(self.keyring.blind)
        self.ids = MessageIdGenerator(1)
        self.names = [f"user{i:06d}" for i in range(max(2, self.users))]

    def batch(self) -> list[Op]:
        """One send: inbox x2 + conversation ``Put``s, idempotency ``Insert`` (``Messenger._rows``)."""
        sender, to = self.rng.sample(self.names, 2)
        now = time.time_ns() // 1_000_000
        cmid = secrets.token_hex(12)  # what im.client.Client.send sends
        text = "".join(self.rng.choices(_TEXT, k=self.rng.randint(70, 165)))
        message = pb.Message(to=to, type=1, text=text, client_msg_id=cmid, id=self.ids.next_id(now),
                             timestamp=now, from_device=f"dev-{sender[-4:]}")  # fmt: skip
        setattr(message, "from", sender)
        raw = message.SerializeToString()
        result = rec.SendResult(message_id=message.id, timestamp=now).SerializeToString()
        return [
            Put(self.keys.inbox(sender, message.id), raw),
            Put(self.keys.inbox(to, message.id), raw),
            Put(self.keys.conversation(sender, to, message.id), raw),
            Insert(self.keys.send_result(sender, cmid), result),
        ]

    def batches(self, count: int) -> list[list[Op]]:
        return [self.batch() for _ in range(count)]

    def sync_range(self, user: str) -> tuple[bytes, bytes]:
        """A sync from the start of ``user``'s inbox (``Messenger.sync``)."""
        return self.keys.inbox_range(user, 0)


@dataclass(slots=True)
class Env:
    """Where this run's stores live: a temporary directory, PostgreSQL tables to drop."""

    tmp: Path
    keyring: Keyring
    pg_dsn: str
    tag: str = field(default_factory=lambda: secrets.token_hex(4))
    tables: list[str] = field(default_factory=list)

    @property
    def table_prefix(self) -> str:
        return f"bench_store_{self.tag}_"

    def urls(self, backend: str, name: str, count: int) -> list[str]:
        """``count`` fresh store URLs of ``backend`` (the first is a sharded store's root)."""
        if backend == "sqlite":
            return [f"sqlite://{self.tmp}/{name}_{i}.db" for i in range(count)]
        tables = [f"{self.table_prefix}{name}_{i}" for i in range(count)]
        self.tables.extend(tables)
        sep = "&" if "?" in self.pg_dsn else "?"
        return [f"{self.pg_dsn}{sep}table={table}" for table in tables]

    async def open(self, urls: list[str], sharded: bool, name: str) -> RecordStore:
        """Open ``urls`` as the node would: sealed; sharded through a ``shards://`` file."""
        url = urls[0]
        if sharded:
            await create_shards(urls, open_raw)
            shards_file = self.tmp / f"{name}.shards.json"
            write_shards_file(shards_file, urls[0])
            url = f"shards://{shards_file}"
        store = open_store(url, self.keyring)
        await store.open()
        return store


# ---- phases ---------------------------------------------------------------------------------


async def _drive(items: Iterable[T], tasks: int, op: Callable[[T], Awaitable[bool]]) -> tuple[float, list[float], int]:
    """Run ``await op(item)`` for every item on ``tasks`` concurrent tasks.

    Returns the elapsed seconds, the per-call latencies (ms) and the failures (False or a
    store error).
    """
    source: Iterator[T] = iter(items)
    latencies: list[float] = []
    failures = 0

    async def worker() -> None:
        nonlocal failures
        for item in source:  # a shared iterator: next() never yields to the loop
            start = time.perf_counter()
            try:
                ok = await op(item)
            except (StoreError, ValueError):
                ok = False
            latencies.append((time.perf_counter() - start) * 1000)
            failures += 0 if ok else 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return time.perf_counter() - start, latencies, failures


async def write_phase(store: RecordStore, batches: list[list[Op]], tasks: int) -> dict[str, Any]:
    """Write ``batches`` concurrently; the clock stops once cross-shard cleanup is done too."""

    async def write(ops: list[Op]) -> bool:
        await store.write(ops)
        return True

    sharded = find_sharded(store)
    seconds, latencies, failures = await _drive(batches, tasks, write)
    if sharded is not None:
        start = time.perf_counter()
        await sharded.flush_cleanups()
        seconds += time.perf_counter() - start
    records = sum(len(ops) for ops in batches)
    cross = sharded.cross_shard_batches / len(batches) if sharded is not None and batches else 0.0
    return {
        "writes_per_s": records / seconds,
        "msgs_per_s": len(batches) / seconds,
        "write_p50_ms": percentile(latencies, 50),
        "write_p99_ms": percentile(latencies, 99),
        "cross_shard_fraction": cross,
        "errors": failures,
    }


async def read_phase(store: RecordStore, work: Workload, batches: list[list[Op]], count: int,
                     tasks: int) -> dict[str, Any]:  # fmt: skip
    """``count`` point gets of stored inbox records, then ``count`` sync-page scans."""
    rng = random.Random(11)
    keys = [rng.choice(batches)[rng.randrange(2)].key for _ in range(count)]
    users = [rng.choice(work.names) for _ in range(count)]
    rows = 0

    async def get(key: bytes) -> bool:
        return await store.get(key) is not None

    async def scan(user: str) -> bool:
        nonlocal rows
        start, end = work.sync_range(user)
        found = await store.scan(start, end, limit=PAGE_LIMIT)
        rows += len(found)
        return True

    get_s, _, get_fail = await _drive(keys, tasks, get)
    scan_s, _, scan_fail = await _drive(users, tasks, scan)
    return {
        "reads_per_s": 2 * count / (get_s + scan_s),
        "gets_per_s": count / get_s,
        "scans_per_s": count / scan_s,
        "scan_rows_per_s": rows / scan_s,
        "errors": get_fail + scan_fail,
    }


async def measure(env: Env, backend: str, shards: int, opts: StoreOptions) -> dict[str, Any]:
    """Writes then reads on a fresh store of ``backend`` with ``shards`` shards (0: unsharded)."""
    name = f"s{shards}"
    work = Workload(env.keyring, opts.users)
    batches = work.batches(opts.batches)
    store = await env.open(env.urls(backend, name, max(1, shards)), shards > 0, name)
    try:
        written = await write_phase(store, batches, opts.concurrency)
        read = await read_phase(store, work, batches, opts.reads, opts.concurrency)
    finally:
        await store.close()
    errors = written.pop("errors") + read.pop("errors")
    note(f"{backend} {_label(_key(shards))}: {written['writes_per_s']:,.0f} writes/s "
         f"({written['msgs_per_s']:,.0f} msgs/s), {read['reads_per_s']:,.0f} reads/s, errors {errors}")  # fmt: skip
    return {**written, **read, "errors": errors}


async def _load(store: RecordStore, work: Workload, records: int) -> Counter[int]:
    """Write at least ``records`` records of message batches; records per slot."""
    per_slot: Counter[int] = Counter()
    loaded = 0
    while loaded < records:
        chunk = [op for ops in work.batches(LOAD_CHUNK // 4) for op in ops]
        await store.write(chunk)
        per_slot.update(slot_of(op.key) for op in chunk)
        loaded += len(chunk)
    return per_slot


async def _count_rows(shard: RecordStore) -> int:
    """Records on a shard (its physical keys below the sharded store's own ``0xFFFF`` ones)."""
    return sum([len(rows) async for rows in pages(shard, b"", PFX[SLOT_COUNT], 5000)])


async def rebalance(env: Env, backend: str, opts: StoreOptions) -> dict[str, Any]:
    """Load ``--records`` onto one shard, add a second one online, time it, count what moved."""
    urls = env.urls(backend, "rb", 2)
    store = await env.open(urls[:1], True, "rb")
    try:
        per_slot = await _load(store, Workload(env.keyring, opts.users), opts.records)
        sharded = find_sharded(store)
        assert isinstance(sharded, ShardedStore)
        start = time.perf_counter()
        sid = await add_shard(sharded, urls[1])
        slots = sorted(sharded.map.moves)
        await start_rebalance(sharded)
        seconds = time.perf_counter() - start
        moved = await _count_rows(sharded.shard(sid))
        left = await _count_rows(sharded.shard(0))
    finally:
        await store.close()
    loaded = sum(per_slot.values())
    note(f"{backend} rebalance: {moved:,} of {loaded:,} records in {len(slots)} slots moved in {seconds:.2f} s")
    return {
        "records": loaded,
        "slots_moved": len(slots),
        "moved": moved,
        "expected_moved": sum(per_slot[slot] for slot in slots),
        "records_after": moved + left,
        "seconds": seconds,
        "s_per_100k": seconds * 100_000 / moved if moved else math.nan,
    }


# ---- PostgreSQL reachability and clean-up -----------------------------------------------------


async def pg_unreachable(dsn: str) -> str:
    """Why PostgreSQL at ``dsn`` cannot be used ("" when it can)."""
    try:
        conn = await asyncpg.connect(split_table(dsn)[0], timeout=5)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        return f"PostgreSQL at {public_url(dsn)} unreachable: {exc!r}"
    await conn.close()
    return ""


async def drop_tables(dsn: str, tables: Sequence[str]) -> None:
    """DROP every table of this run and its ``_meta`` table."""
    if not tables:
        return
    conn = await asyncpg.connect(split_table(dsn)[0], timeout=5)
    try:
        for table in tables:
            await conn.execute(f'DROP TABLE IF EXISTS "{table}", "{table}_meta"')
    finally:
        await conn.close()


# ---- the run ----------------------------------------------------------------------------------


def _configs(opts: StoreOptions) -> list[int]:
    return ([0] if opts.baseline else []) + list(opts.shards)


def _key(shards: int) -> str:
    return UNSHARDED if shards == 0 else str(shards)


def _label(key: str) -> str:
    return key if key == UNSHARDED else f"{key} shard" + ("" if key == "1" else "s")


async def _backend(env: Env, backend: str, opts: StoreOptions) -> tuple[dict[str, Any], dict[str, Any] | None]:
    rows = {_key(n): await measure(env, backend, n, opts) for n in _configs(opts)}
    moved = await rebalance(env, backend, opts) if opts.records > 0 else None
    return rows, moved


async def _run(opts: StoreOptions, tmp: Path) -> dict[str, Any]:
    env = Env(tmp=tmp, keyring=Keyring(secrets.token_bytes(32)), pg_dsn=opts.pg_dsn)
    out: dict[str, Any] = {"pg_note": "", "pg_table_prefix": env.table_prefix}
    empty = dict.fromkeys(_key(n) for n in _configs(opts))
    for backend in BACKENDS:
        out[backend], out[f"{backend}_rebalance"] = dict(empty), None
        if backend not in opts.backends:
            continue
        if backend == "postgres":
            out["pg_note"] = await pg_unreachable(opts.pg_dsn)
            if out["pg_note"]:
                note(f"{out['pg_note']}: its rows are null")
                continue
        try:
            out[backend], out[f"{backend}_rebalance"] = await _backend(env, backend, opts)
        finally:
            if backend == "postgres":
                await drop_tables(opts.pg_dsn, env.tables)
    return out


def run(opts: StoreOptions) -> dict[str, Any]:
    """Measure every selected backend and shard count; the raw (unrounded) results."""
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        return run_loop(_run(opts, Path(tmp).resolve()), opts.loop)


_DIGITS = {"cross_shard_fraction": 4, "seconds": 3, "s_per_100k": 2}


def _round_row(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {k: v if isinstance(v, int) else rounded(v, _DIGITS.get(k, 1)) for k, v in row.items()}


def build_result(opts: StoreOptions, raw: dict[str, Any]) -> dict[str, Any]:
    """The JSON object (keys documented in bench/README.md)."""
    result: dict[str, Any] = {
        "bench": "store", "batches": opts.batches, "records_per_batch": 4, "reads": opts.reads,
        "concurrency": opts.concurrency, "users": opts.users, "records": opts.records, "sealed": True,
        "loop": "uvloop" if loop_factory(opts.loop) else "asyncio", "step_slots": _step_slots(),
        "pg_note": raw["pg_note"], "pg_table_prefix": raw["pg_table_prefix"],
    }  # fmt: skip
    errors = 0
    for backend in BACKENDS:
        result[backend] = {k: _round_row(v) for k, v in raw[backend].items()}
        errors += sum(row["errors"] for row in raw[backend].values() if row)
    result["rebalance"] = {b: _round_row(raw[f"{b}_rebalance"]) for b in BACKENDS}
    result["rebalance_s_per_100k"] = {b: (r or {}).get("s_per_100k") for b, r in result["rebalance"].items()}
    result["errors"] = errors
    return result


def _step_slots() -> int:
    return int(os.environ.get("TIMNODE_STORE_REBALANCE_STEP", "8"))


_COLUMNS = ("writes/s", "msgs/s", "p99 ms", "reads/s", "gets/s", "scans/s", "x-shard")
_FIELDS = ("writes_per_s", "msgs_per_s", "write_p99_ms", "reads_per_s", "gets_per_s", "scans_per_s",
           "cross_shard_fraction")  # fmt: skip


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value < 10:
        return f"{value:.2f}"
    return f"{value:,.0f}" if isinstance(value, (int, float)) else str(value)


def _cells(values: Sequence[Any]) -> str:
    return " ".join(f"{_cell(value):>9}" for value in values)


def table_rows(result: dict[str, Any]) -> list[tuple[str, Any]]:
    """Human table rows: one line per backend and shard count, then the rebalances."""
    rows: list[tuple[str, Any]] = [("backend / shards", _cells(_COLUMNS))]
    for backend in BACKENDS:
        for key, row in result[backend].items():
            rows.append((f"{backend} {_label(key)}", _cells([row[f] if row else None for f in _FIELDS])))
    for backend, moved in result["rebalance"].items():
        text = "-" if moved is None else (f"{moved['s_per_100k']:.2f} s/100k ({moved['moved']:,} records, "
                                          f"{moved['seconds']:.2f} s)")  # fmt: skip
        rows.append((f"rebalance {backend} 1 -> 2 shards", text))
    if result["pg_note"]:
        rows.append(("postgres", result["pg_note"]))
    rows.append(("errors", result["errors"]))
    return rows


def _ints(text: str) -> tuple[int, ...]:
    values = tuple(int(part) for part in text.split(",") if part.strip())
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("want shard counts >= 1, comma-separated")
    return values


def _backends(text: str) -> tuple[str, ...]:
    values = tuple(part.strip() for part in text.split(",") if part.strip())
    if not values or set(values) - set(BACKENDS):
        raise argparse.ArgumentTypeError(f"want a comma-separated subset of {','.join(BACKENDS)}")
    return values


def parse_args(argv: list[str]) -> StoreOptions:
    """Command line to :class:`StoreOptions`."""
    ap = argparse.ArgumentParser(prog="python -m bench store", description=SUMMARY)
    ap.add_argument("--json", action="store_true", help="print only the JSON object on stdout")
    ap.add_argument("--backends", type=_backends, default=BACKENDS, help="sqlite,postgres (default both)")
    ap.add_argument("--shards", type=_ints, default=(1, 2, 4), help="shard counts (default 1,2,4)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unsharded store")
    ap.add_argument("--batches", type=int, default=10_000, help="sends (4-record batches) per store (default 10000)")
    ap.add_argument("--reads", type=int, default=10_000, help="point gets, and sync scans, per store (default 10000)")
    ap.add_argument("--concurrency", type=int, default=500, help="concurrent writer/reader tasks (default 500)")
    ap.add_argument("--users", type=int, default=1_000, help="users the sends go between (default 1000)")
    ap.add_argument("--records", type=int, default=100_000, help="records loaded before the rebalance (0: skip)")
    ap.add_argument("--pg-dsn", default=os.environ.get("TIMNODE_TEST_PG_DSN", DEFAULT_PG_DSN),
                    help="PostgreSQL DSN (default $TIMNODE_TEST_PG_DSN or a local server)")  # fmt: skip
    ap.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto", help="event loop")
    a = ap.parse_args(argv)
    return StoreOptions(
        as_json=a.json, backends=a.backends, shards=a.shards, baseline=not a.no_baseline,
        batches=max(1, a.batches), reads=max(1, a.reads), concurrency=max(1, a.concurrency), users=max(2, a.users),
        records=max(0, a.records), pg_dsn=a.pg_dsn, loop=a.loop,
    )  # fmt: skip


def main(argv: list[str]) -> int:
    """``python -m bench store``; returns 0, or 2 when a store failed."""
    opts = parse_args(argv)
    try:
        raw = run(opts)
    except (StoreError, OSError) as exc:
        print(f"bench store: {exc}", file=sys.stderr)
        return 2
    result = build_result(opts, raw)
    emit(result, f"bench store ({opts.batches:,} sends x 4 records, {opts.concurrency} tasks, sealed)",
         table_rows(result), opts.as_json)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
