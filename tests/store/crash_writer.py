"""Crash-test helper: write concurrent batches forever, print each acknowledged batch id.

    python3 tests/store/crash_writer.py URL [DATA_KEY_HEX]

Prints ``ready`` once open, then one line per batch whose ``write()`` returned (flushed at
once). The test SIGKILLs this process and checks every printed batch survived.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from store import Keyring, Put, open_store  # noqa: E402


def batch(writer: int, seq: int) -> list[Put]:
    base = b"crash/%03d/%08d/" % (writer, seq)
    return [Put(base + b"%d" % i, base * 8) for i in range(4)]


async def writer(store, wid: int) -> None:
    seq = 0
    while True:
        await store.write(batch(wid, seq))
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
