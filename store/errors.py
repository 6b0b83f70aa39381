"""Store errors.

StoreError
├── KeyExists          an Insert found its key present (the batch applied nothing)
├── StoreUnavailable   the backend failed (I/O, connection, corruption)
│   └── MapConflict    another member committed that shard map version first (reload it)
├── SealError          a sealed value failed authentication (wrong key or tampering)
├── BadStoreUrl        a store URL this build cannot open
└── BadDataKey         a data key (or key file) that is malformed or too short
    └── WrongDataKey   a well-formed key other than the one that sealed the store
"""

from __future__ import annotations

__all__ = ["StoreError", "KeyExists", "StoreUnavailable", "MapConflict", "SealError", "BadStoreUrl"]
__all__ += ["BadDataKey", "WrongDataKey"]


class StoreError(Exception):
    """Root of the store's errors."""


class KeyExists(StoreError):
    """An ``Insert`` found its key already present."""

    def __init__(self, key: bytes) -> None:
        super().__init__("key exists")
        self.key = key


class StoreUnavailable(StoreError):
    """The backend failed; the write may not have applied."""


class MapConflict(StoreUnavailable):
    """A shard map commit lost to another member's commit of the same version."""


class SealError(StoreError):
    """A sealed record did not authenticate under any known key version."""


class BadStoreUrl(StoreError, ValueError):
    """The store URL names an unknown scheme or is malformed."""


class BadDataKey(StoreError, ValueError):
    """A data key or key file that is malformed, too short, or a duplicate version."""


class WrongDataKey(BadDataKey):
    """The store was sealed under another data key than the keyring's (``store.keycheck``)."""

    def __init__(self, check: str) -> None:
        what = "blind key" if check == "data_key_blind" else f"key version {check.removeprefix('data_key_v')}"
        super().__init__(
            f"this store was sealed with another data key ({what} differs): start the node with the"
            " data key it was created with (--data-key), or give it another data dir or store"
        )
        self.check = check
