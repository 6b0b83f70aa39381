"""Open a sealed journaled store, write one batch, print ok, then die by SIGKILL."""
import asyncio
import os
import signal
import sys

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
from store import Keyring, Put, SealedStore, SqliteStore


async def main(path: str, key_hex: str) -> None:
    store = SealedStore(SqliteStore(path, writer="journal"), Keyring(bytes.fromhex(key_hex)))
    await store.open()
    await store.write([Put(b"msg", b"hello")])
    print("ok", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main(sys.argv[1], sys.argv[2]))
