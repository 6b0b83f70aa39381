"""``python -m bench store``: the batch shape, a tiny real run on both backends, no PostgreSQL.

The run is a real subprocess on SQLite files and PostgreSQL tables (``TIMNODE_TEST_PG_DSN``,
default a local trust-auth server); the assertions are about the JSON contract and what the
benchmark counts (records moved by the rebalance, tables dropped), not about speed. An
unreachable PostgreSQL fails the test under ``CI``; elsewhere its rows must be null.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bench.store import DEFAULT_PG_DSN, Workload, parse_args, pg_unreachable
from im import client_pb2 as pb
from store.api import Insert, Put
from store.crypto import Keyring
from store.postgres import split_table
from store.shardmap import PARTITION_BYTES
from tests.bench.bench_output import json_result

ROOT = Path(__file__).resolve().parents[2]
PG_DSN = os.environ.get("TIMNODE_TEST_PG_DSN", DEFAULT_PG_DSN)
TINY = ["--json", "--batches", "200", "--reads", "100", "--concurrency", "50", "--users", "50",
        "--records", "2000", "--shards", "1,2"]  # fmt: skip
STEP = 64  # slots per rebalance step (TIMNODE_STORE_REBALANCE_STEP): fewer map commits, a faster test
ROW_RATES = ("writes_per_s", "msgs_per_s", "reads_per_s", "gets_per_s", "scans_per_s", "scan_rows_per_s")


def _bench(*args: str, timeout: float = 120.0) -> dict[str, Any]:
    env = dict(os.environ, BENCH_QUIET="1", PYTHONPATH=str(ROOT), TIMNODE_STORE_REBALANCE_STEP=str(STEP))
    proc = subprocess.run([sys.executable, "-m", "bench", "store", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)  # fmt: skip
    return json_result(proc)


async def _tables_left(prefix: str) -> list[str]:
    conn = await asyncpg.connect(split_table(PG_DSN)[0], timeout=5)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE starts_with(tablename, $1)", prefix)
    finally:
        await conn.close()
    return [str(row[0]) for row in rows]


def _pg_reason() -> str:
    reason = asyncio.run(pg_unreachable(PG_DSN))
    if reason and os.environ.get("CI"):
        pytest.fail(reason)
    return reason


def _assert_rows(rows: dict[str, Any]) -> None:
    assert set(rows) == {"unsharded", "1", "2"}
    for key, row in rows.items():
        for name in ROW_RATES:
            assert row[name] > 0, (key, name)
        assert row["errors"] == 0
        assert row["writes_per_s"] == pytest.approx(4 * row["msgs_per_s"], rel=1e-3)
        assert 0 < row["write_p50_ms"] <= row["write_p99_ms"]
    assert rows["unsharded"]["cross_shard_fraction"] == rows["1"]["cross_shard_fraction"] == 0
    assert rows["2"]["cross_shard_fraction"] > 0.5  # inboxes and conversation hash to different slots


def _assert_rebalance(moved: dict[str, Any]) -> None:
    assert moved["records"] >= 2000 and moved["records_after"] == moved["records"]
    assert moved["slots_moved"] == 2048  # 1 -> 2 shards: half of the 4096 slots
    assert 0 < moved["moved"] == moved["expected_moved"] < moved["records"]
    assert moved["s_per_100k"] == pytest.approx(moved["seconds"] * 100_000 / moved["moved"], rel=0.05)


def test_workload_batches_like_messenger_rows() -> None:
    work = Workload(Keyring(secrets.token_bytes(32)), users=10)
    ops = work.batch()
    assert [type(op) for op in ops] == [Put, Put, Put, Insert]
    assert [op.key[:1] for op in ops] == [b"I", b"I", b"C", b"D"]
    assert len({op.key[:PARTITION_BYTES] for op in ops}) == 4  # four partitions: slots spread like real ones
    values = [op.value for op in ops if isinstance(op, (Put, Insert))]
    message = pb.Message.FromString(values[0])
    assert values[0] == values[1] == values[2] and values[3] != values[0]
    sizes = [len(op.value) for _ in range(200) for op in work.batch()[:3] if isinstance(op, Put)]
    assert 150 <= min(sizes) and max(sizes) <= 250  # message-sized
    assert ops[1].key == work.keys.inbox(message.to, message.id)
    start, end = work.sync_range(message.to)
    assert start <= ops[1].key < end


def test_parse_args_defaults_and_lists() -> None:
    opts = parse_args(["--backends", "sqlite", "--shards", "2,4", "--no-baseline"])
    assert opts.backends == ("sqlite",) and opts.shards == (2, 4) and not opts.baseline
    assert parse_args([]).shards == (1, 2, 4) and parse_args([]).records == 100_000
    with pytest.raises(SystemExit):
        parse_args(["--backends", "mysql"])


@pytest.mark.slow
def test_store_bench_both_backends() -> None:
    reason = _pg_reason()
    result = _bench(*TINY)
    assert result["bench"] == "store" and result["errors"] == 0 and result["step_slots"] == STEP
    _assert_rows(result["sqlite"])
    _assert_rebalance(result["rebalance"]["sqlite"])
    assert result["rebalance_s_per_100k"]["sqlite"] == result["rebalance"]["sqlite"]["s_per_100k"]
    if reason:
        assert result["pg_note"] and result["rebalance"]["postgres"] is None
        assert all(row is None for row in result["postgres"].values())
        return
    assert result["pg_note"] == ""
    _assert_rows(result["postgres"])
    _assert_rebalance(result["rebalance"]["postgres"])
    assert result["rebalance_s_per_100k"]["postgres"] > 0
    assert asyncio.run(_tables_left(result["pg_table_prefix"])) == []


@pytest.mark.slow
def test_store_bench_without_postgres_reports_null() -> None:
    result = _bench("--backends", "postgres", "--pg-dsn", "postgresql://postgres@127.0.0.1:1/test", *TINY)
    assert "unreachable" in result["pg_note"]
    assert result["postgres"] == {"unsharded": None, "1": None, "2": None}
    assert result["sqlite"] == {"unsharded": None, "1": None, "2": None}  # not selected
    assert result["rebalance"] == {"sqlite": None, "postgres": None}
    assert result["rebalance_s_per_100k"] == {"sqlite": None, "postgres": None}
