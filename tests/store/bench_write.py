"""Write throughput of a store URL: many concurrent writers, 4-op batches of ~200 bytes.

    python3 tests/store/bench_write.py sqlite:///tmp/bench.db [--sealed] [--batches N] [--writers W]

Not a test (no timing asserts); prints rows/s and batches/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from store import Keyring, Put, open_store  # noqa: E402


async def writer(store, wid: int, count: int) -> None:
    body = os.urandom(100)
    for i in range(count):
        base = b"w%04d-%08d" % (wid, i)
        await store.write([Put(base + b"/%d" % j, body + base * 8) for j in range(4)])


async def main(args: argparse.Namespace) -> None:
    keyring = Keyring(os.urandom(32)) if args.sealed else None
    store = open_store(args.url, keyring)
    await store.open()
    per = args.batches // args.writers
    start = time.perf_counter()
    await asyncio.gather(*(writer(store, w, per) for w in range(args.writers)))
    elapsed = time.perf_counter() - start
    batches = per * args.writers
    print(
        f"{args.url} sealed={args.sealed}: {batches / elapsed:,.0f} batches/s, "
        f"{4 * batches / elapsed:,.0f} rows/s ({elapsed:.2f}s) {store.describe()}"
    )
    await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--sealed", action="store_true")
    parser.add_argument("--batches", type=int, default=100_000)
    parser.add_argument("--writers", type=int, default=1000)
    parser.add_argument("--uvloop", action="store_true")
    ns = parser.parse_args()
    if ns.uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(main(ns))
