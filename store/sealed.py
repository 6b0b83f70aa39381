"""A RecordStore wrapper that seals every value at rest (see ``store.crypto``).

Opening checks the keyring against the fingerprints the store recorded (``store.keycheck``).
Keys pass through untouched: layers above put only blinded hashes (``Keyring.blind``) or
non-secret ids in keys. A stored value that fails to unseal raises ``SealError``. Writes
pass through ``gate`` (``store.gate``), which ``store.reseal`` freezes to rewrite values of
a single backend in place while the node serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from store.api import Delete, Insert, Op, Put, RecordStore
from store.batch import check_ops
from store.crypto import Keyring
from store.gate import WriteGate
from store.keycheck import check_data_key
from store.overlay import Unsealed

__all__ = ["SealedStore"]


class SealedStore(RecordStore):
    """Seals values on write and unseals them on read, over any ``inner`` store."""

    def __init__(self, inner: RecordStore, keyring: Keyring) -> None:
        self.inner = inner
        self.keyring = keyring
        self.backend = inner.backend
        self.gate = WriteGate()
        # the backend's writer seals (RecordStore.sealing_writer) while the ring's newest
        # version is the one it was given
        self._sealing_version = keyring.newest
        self._write_sealing = inner.sealing_writer(keyring.sealing_key(), keyring.sealing_keys())

    async def open(self) -> None:
        await self.inner.open()
        try:
            await check_data_key(self.inner, self.keyring)
        except BaseException:
            await self.inner.close()
            raise

    async def claim_meta(self, name: str, value: str) -> str:
        return await self.inner.claim_meta(name, value)

    async def close(self) -> None:
        await self.inner.close()

    async def get(self, key: bytes) -> bytes | None:
        sealed = await self.inner.get(key)
        return None if sealed is None else self._open(key, sealed)

    async def get_many(self, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        found = await self.inner.get_many(keys)
        unseal = self._open
        return {k: unseal(k, v) for k, v in found.items()}

    async def scan(self, start: bytes, end: bytes, *, limit: int, reverse: bool = False) -> list[tuple[bytes, bytes]]:
        rows = await self.inner.scan(start, end, limit=limit, reverse=reverse)
        unseal = self._open
        return [(k, unseal(k, v)) for k, v in rows]

    def _open(self, key: bytes, stored: bytes) -> bytes:
        """Unseal, except a value the backend's writer has yet to seal (``store.overlay``)."""
        if type(stored) is Unsealed:
            return bytes(stored)
        return self.keyring.unseal(key, stored)

    async def write(self, ops: Sequence[Op]) -> None:
        checked = check_ops(ops)
        gate = self.gate
        if gate.frozen is not None:
            await gate.admit(op.key for op in checked)
        epoch = gate.enter()
        try:
            if self._write_sealing is not None and self._sealing_version == self.keyring.newest:
                await self._write_sealing(checked)  # the backend's writer seals
            else:
                await self.inner.write([self._seal(op) for op in checked])
        finally:
            gate.leave(epoch)

    def describe(self) -> dict[str, Any]:
        facts = self.inner.describe()
        facts.update(sealed=True, key_version=self.keyring.newest)
        return facts

    def _seal(self, op: Op) -> Op:
        if type(op) is Delete:
            return op
        sealed = self.keyring.seal(op.key, op.value)  # type: ignore[union-attr]
        return Insert(op.key, sealed) if type(op) is Insert else Put(op.key, sealed)
