"""Built-in accounts and session tokens.

Passwords are stored only as Argon2id hashes (im/passwords.py), computed in a worker
thread so logins never stall the event loop. Account keys are keyed hashes of the name
(im/keys.py). Tokens are 256-bit random strings stored by their SHA-256.

Revocation: the account record carries a token generation, copied into every token issued.
A password change (and an admin block, im/admin_ops.py) bumps it, so every token issued
before is refused at ``resume`` (``AUTH_FAILED``) on every node sharing the store; the device
that changed the password gets a fresh token (im/service.py).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from im import client_pb2 as pb
from im import records_pb2 as rec
from im.errors import ImError
from im.keys import KeySchema
from im.passwords import hash_password, verify_password
from store.api import Delete, Insert, Put, RecordStore
from store.errors import KeyExists

__all__ = ["Accounts", "USER_NAME", "revoke_tokens", "validate_user", "validate_password"]

USER_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
_DUMMY_HASH = hash_password("timnode-dummy-password")
_KDF_SLOTS = 4  # concurrent Argon2id runs per node
_KDF_QUEUE = 256  # waiting runs beyond which logins are refused with RATE_LIMITED
T = TypeVar("T")


def _kdf_threads() -> int:
    """Threads of the KDF pool: one per core, at most ``_KDF_SLOTS``. Each thread keeps the
    ~19 MiB of its last run in its malloc arena (glibc raises its mmap threshold after the
    first free), so the asyncio default executor (cores + 4 threads) held ~125 MiB after a
    burst of logins on 2 cores, against ~48 MiB for 2 threads, which hashed as fast
    (measured: 60 hashes, 0.79 s vs 0.69 s)."""
    return max(1, min(_KDF_SLOTS, os.cpu_count() or 1))


_KDF_POOL = ThreadPoolExecutor(_kdf_threads(), thread_name_prefix="argon2")


def validate_user(user: str) -> None:
    if not USER_NAME.fullmatch(user):
        raise ImError(pb.BAD_REQUEST, "user must be 1-64 characters of letters, digits and ._@-")


def validate_password(password: str) -> None:
    if not 8 <= len(password.encode()) <= 1024:
        raise ImError(pb.BAD_REQUEST, "password must be 8-1024 bytes")


async def revoke_tokens(store: RecordStore, keys: KeySchema, user: str) -> bool:
    """Bump the account's token generation: every token issued so far is refused from now on.
    False when there is no such account."""
    raw = await store.get(keys.account(user))
    if raw is None:
        return False
    account = rec.Account.FromString(raw)
    account.token_generation += 1
    await store.write([Put(keys.account(user), account.SerializeToString())])
    return True


class Accounts:
    """Register, verify passwords, issue and resolve tokens."""

    def __init__(self, store: RecordStore, keys: KeySchema, now_ms: Callable[[], int], token_ttl_s: float) -> None:
        self._store = store
        self._keys = keys
        self._now_ms = now_ms
        self._kdf_slots = asyncio.Semaphore(_KDF_SLOTS)
        self._kdf_waiting = 0
        self._token_ttl_ms = int(token_ttl_s * 1000)
        self._known: set[str] = set()

    async def _kdf(self, fn: Callable[..., T], *args: str) -> T:
        """Run Argon2id in the KDF pool, at most ``_KDF_SLOTS`` at once; refuse when the queue is long
        (each run takes ~19 MiB and ~50 ms: unbounded parallel logins would be a memory/CPU lever)."""
        if self._kdf_waiting >= _KDF_QUEUE:
            raise ImError(pb.RATE_LIMITED, "login service busy; retry shortly", retry_after=1.0)
        self._kdf_waiting += 1
        try:
            async with self._kdf_slots:
                return await asyncio.get_running_loop().run_in_executor(_KDF_POOL, fn, *args)
        finally:
            self._kdf_waiting -= 1

    async def _hash(self, password: str) -> str:
        return await self._kdf(hash_password, password)

    async def _verify(self, password: str, encoded: str) -> bool:
        return await self._kdf(verify_password, password, encoded)

    async def register(self, user: str, password: str) -> None:
        validate_user(user)
        validate_password(password)
        if await self.exists(user):
            raise ImError(pb.CONFLICT, "user name already taken")
        account = rec.Account(user=user, password_hash=await self._hash(password), created_at=self._now_ms())
        try:
            await self._store.write([Insert(self._keys.account(user), account.SerializeToString())])
        except KeyExists:
            raise ImError(pb.CONFLICT, "user name already taken") from None
        self._known.add(user)

    async def exists(self, user: str) -> bool:
        if user in self._known:
            return True
        if not USER_NAME.fullmatch(user):
            return False
        found = await self._store.get(self._keys.account(user)) is not None
        if found:
            self._known.add(user)
        return found

    async def check_password(self, user: str, password: str) -> bool:
        """True when the password matches; costs one KDF run even for unknown users."""
        raw = await self._store.get(self._keys.account(user)) if USER_NAME.fullmatch(user) else None
        if raw is None:
            await self._verify(password, _DUMMY_HASH)
            return False
        account = rec.Account.FromString(raw)
        return await self._verify(password, account.password_hash)

    async def _account(self, user: str) -> rec.Account | None:
        raw = await self._store.get(self._keys.account(user))
        return rec.Account.FromString(raw) if raw is not None else None

    async def issue_token(self, user: str, device: str) -> tuple[str, int]:
        token = secrets.token_urlsafe(32)
        expires = self._now_ms() + self._token_ttl_ms
        account = await self._account(user)
        generation = account.token_generation if account is not None else 0
        record = rec.Token(user=user, device=device, expires_at=expires, generation=generation)
        await self._store.write([Put(self._keys.token(token), record.SerializeToString())])
        return token, expires

    async def resolve_token(self, token: str) -> rec.Token | None:
        if not token or len(token) > 256:
            return None
        raw = await self._store.get(self._keys.token(token))
        if raw is None:
            return None
        record = rec.Token.FromString(raw)
        account = await self._account(record.user) if record.expires_at >= self._now_ms() else None
        if account is None or record.generation < account.token_generation:  # expired, or revoked
            await self._store.write([Delete(self._keys.token(token))])
            return None
        return record

    async def revoke_token(self, token: str) -> None:
        if token:
            await self._store.write([Delete(self._keys.token(token))])

    async def revoke_all(self, user: str) -> bool:
        """Refuse every token of ``user`` issued so far (:func:`revoke_tokens`)."""
        return await revoke_tokens(self._store, self._keys, user)

    async def change_password(self, user: str, old: str, new: str) -> bool:
        """Replace the password hash when ``old`` is right (revoking every token issued so
        far: the token generation moves on in the same write); False when it is wrong."""
        validate_password(new)
        raw = await self._store.get(self._keys.account(user))
        if raw is None:
            return False
        account = rec.Account.FromString(raw)
        if not await self._verify(old, account.password_hash):
            return False
        account.password_hash = await self._hash(new)
        account.token_generation += 1
        await self._store.write([Put(self._keys.account(user), account.SerializeToString())])
        return True
