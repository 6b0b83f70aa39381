"""User profiles (nickname, avatar URL, custom fields) and password changes.

A profile is ``P | blind(user) -> client.Profile`` (im/keys.py): anyone logged in may
read it, only its owner replaces it (the whole profile: read, change, write back).
"""

from __future__ import annotations

from collections.abc import Callable

from im import client_pb2 as pb
from im.accounts import Accounts, validate_user
from im.errors import ImError
from im.keys import KeySchema
from im.sessions import Session
from store.api import Put, RecordStore

__all__ = ["Profiles"]

_MAX_NICKNAME = 64
_MAX_AVATAR_URL = 1024
_MAX_FIELDS = 32
_MAX_FIELD_CHARS = 4096


class Profiles:
    def __init__(self, *, store: RecordStore, keys: KeySchema, accounts: Accounts, now_ms: Callable[[], int]) -> None:
        self._store = store
        self._keys = keys
        self._accounts = accounts
        self._now_ms = now_ms

    async def get(self, user: str) -> pb.Profile:
        validate_user(user)
        if not await self._accounts.exists(user):
            raise ImError(pb.NOT_FOUND, "no such user")
        raw = await self._store.get(self._keys.profile(user))
        profile = pb.Profile.FromString(raw) if raw else pb.Profile()
        profile.user = user
        return profile

    async def set(self, session: Session, profile: pb.Profile) -> pb.Profile:
        _validate(profile)
        stored = pb.Profile()
        stored.CopyFrom(profile)
        stored.user = session.user
        stored.updated_at = self._now_ms()
        await self._store.write([Put(self._keys.profile(session.user), stored.SerializeToString())])
        return stored

    async def change_password(self, session: Session, old: str, new: str) -> None:
        if not await self._accounts.change_password(session.user, old, new):
            raise ImError(pb.AUTH_FAILED, "wrong password")


def _validate(profile: pb.Profile) -> None:
    if len(profile.nickname) > _MAX_NICKNAME:
        raise ImError(pb.TOO_LARGE, f"nickname is limited to {_MAX_NICKNAME} characters")
    if len(profile.avatar_url) > _MAX_AVATAR_URL:
        raise ImError(pb.TOO_LARGE, f"avatar_url is limited to {_MAX_AVATAR_URL} characters")
    if profile.avatar_url and not profile.avatar_url.startswith(("https://", "http://", "data:image/")):
        raise ImError(pb.BAD_REQUEST, "avatar_url must be an http(s) or data:image/ URL")
    size = sum(len(k) + len(v) for k, v in profile.fields.items())
    if len(profile.fields) > _MAX_FIELDS or size > _MAX_FIELD_CHARS:
        raise ImError(pb.TOO_LARGE, f"profile fields: at most {_MAX_FIELDS} entries, {_MAX_FIELD_CHARS} characters")
