"""The data key check: a store refuses a keyring other than the one that sealed it.

Without it, a node started with a new or mistyped data key over an existing store could
not unseal a single record, and it looked empty: a blinded user name found no account, so
the name could be registered again. On open, ``SealedStore`` records the keyring's one-way
fingerprints (``Keyring.key_checks``: HKDF outputs, RFC 5869, which reveal nothing of the
key) in the backend's metadata (``RecordStore.claim_meta``) and compares those already
there. Rotation keeps passing: the blind key's fingerprint is the oldest key's (or the
``blind:`` key's, ``store.crypto``), and each new version is recorded when first used.
A store sealed before this check existed records the fingerprints on its next open.
"""

from __future__ import annotations

from store.api import RecordStore
from store.crypto import Keyring
from store.errors import WrongDataKey

__all__ = ["check_data_key"]


async def check_data_key(store: RecordStore, keyring: Keyring) -> None:
    """Record ``keyring``'s fingerprints in ``store`` or compare them with those recorded.

    The blind key comes first and versions ascend, so a mismatch stops before a newer
    version is recorded beside the wrong key.

    Raises:
        WrongDataKey: the store recorded another key under a name the keyring has.
    """
    for name, fingerprint in keyring.key_checks().items():
        held = await store.claim_meta(name, fingerprint)
        if held != fingerprint:
            raise WrongDataKey(name)
