"""Crash-test helper for sharded stores: cross-shard batches forever, one line per ack.

    python3 tests/store/shard_crash_writer.py shards:///PATH/shards.json [DATA_KEY_HEX]

Every batch writes four keys in four different partitions (so, with several shards, on
several shards) plus an ``Insert`` of a fourth: ``batch_keys(writer, seq)``. Prints ``ready``
once open, then ``WRITER SEQ`` per batch whose ``write()`` returned.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from store import Insert, Keyring, Op, Put, open_store  # noqa: E402


def batch_keys(writer: int, seq: int) -> list[bytes]:
    digest = hashlib.sha256(b"%d/%d" % (writer, seq)).digest()
    return [bytes([0x50 + i]) + digest[i : i + 16] + b"%04d%08d" % (writer, seq) for i in range(4)]


def batch(writer: int, seq: int) -> list[Op]:
    keys = batch_keys(writer, seq)
    return [Put(k, k * 4) for k in keys[:3]] + [Insert(keys[3], keys[3] * 4)]


async def writer(store: object, wid: int) -> None:
    seq = 0
    while True:
        await store.write(batch(wid, seq))  # type: ignore[attr-defined]
        sys.stdout.write(f"{wid} {seq}\n")
        sys.stdout.flush()
        seq += 1


async def main(url: str, key_hex: str | None) -> None:
    store = open_store(url, Keyring(bytes.fromhex(key_hex)) if key_hex else None)
    await store.open()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.gather(*(writer(store, w) for w in range(50)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
