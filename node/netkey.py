"""Network keys: the pre-shared secret that gates membership of a timnode network.

A network key is 32 random bytes, written ``tnk1-<64 hex digits>`` (``timnode keygen``).
``--network-key`` takes that text, or the path of a file that holds it. A node without a
key joins the *open* default network, whose key is a published constant: anyone can join it,
and ``resolve_network_key`` logs a warning saying so.

The key itself never leaves the node and is never logged. The handshake uses two values
derived from it with HMAC-SHA256 (RFC 2104), each under its own label:

- ``network_id(key)``: mixed into the Noise prologue, so that the handshakes of peers with
  different keys cannot complete (Noise rev. 34 §6: "both parties must provide identical
  prologue data");
- ``confirm_tag(key, ephemeral)`` (``node/handshake.py``): lets the responder tell a
  network key mismatch apart from other failures, on message 1.

``fingerprint(key)`` (8 hex digits of a third derivation) names a network in logs.
Because the key is 256 random bits, a passive observer of ``confirm_tag`` cannot search for it;
that is why passphrases are not accepted as keys.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import pathlib
import secrets

from node.errors import NetworkKeyError

__all__ = [
    "KEY_PREFIX",
    "OPEN_NETWORK_KEY",
    "fingerprint",
    "format_network_key",
    "generate",
    "is_open",
    "network_id",
    "parse_network_key",
    "resolve_network_key",
]

log = logging.getLogger(__name__)

KEY_PREFIX = "tnk1-"
KEY_BYTES = 32

#: The key of the open default network: public by construction, so it gates nothing.
OPEN_NETWORK_KEY = hashlib.sha256(b"timnode open network v1").digest()


def generate() -> str:
    """A new random network key in text form (``tnk1-`` + 64 hex digits)."""
    return format_network_key(secrets.token_bytes(KEY_BYTES))


def format_network_key(key: bytes) -> str:
    if len(key) != KEY_BYTES:
        raise ValueError("a network key is 32 bytes")
    return KEY_PREFIX + key.hex()


def parse_network_key(value_or_path: str) -> bytes:
    """Parse ``--network-key``: ``tnk1-<hex>``, bare 64 hex digits, or a file holding either.

    Raises:
        NetworkKeyError: neither a key nor a readable file holding one. The message never
            contains the value, which may be a secret with a typo.
    """
    text = value_or_path.strip()
    key = _parse_text(text)
    if key is not None:
        return key
    path = pathlib.Path(text).expanduser()
    if not path.is_file():
        raise NetworkKeyError("network key is neither 'tnk1-<64 hex digits>' nor an existing file")
    try:
        content = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise NetworkKeyError(f"cannot read network key file {path}: {exc.strerror}") from exc
    key = _parse_text(content.strip())
    if key is None:
        raise NetworkKeyError(f"network key file {path} does not hold 'tnk1-<64 hex digits>'")
    if os.name == "posix" and path.stat().st_mode & 0o077:
        log.warning("network key file %s is readable by others; chmod 600 it", path)
    return key


def _parse_text(text: str) -> bytes | None:
    body = text[len(KEY_PREFIX) :] if text.startswith(KEY_PREFIX) else text
    if len(body) != 2 * KEY_BYTES:
        return None
    try:
        return bytes.fromhex(body)
    except ValueError:
        return None


def resolve_network_key(value: str | None) -> bytes:
    """The key for ``--network-key VALUE``; without a value, the open key and a warning."""
    if not value:
        log.warning(
            "no --network-key: joining the OPEN default network; ANYONE can join it and link to "
            "this node (make a private network with `timnode keygen`)"
        )
        return OPEN_NETWORK_KEY
    key = parse_network_key(value)
    log.info("network key loaded (network %s)", fingerprint(key))
    return key


def is_open(key: bytes) -> bool:
    return hmac.compare_digest(key, OPEN_NETWORK_KEY)


def _derive(key: bytes, label: bytes) -> bytes:
    return hmac.new(key, label, hashlib.sha256).digest()


def network_id(key: bytes) -> bytes:
    """The 32-byte commitment to ``key`` that goes into the Noise prologue."""
    return _derive(key, b"timnode network id v1")


def fingerprint(key: bytes) -> str:
    """A short, non-secret name of the network for log lines ("open" for the open network)."""
    return "open" if is_open(key) else _derive(key, b"timnode network fingerprint v1")[:4].hex()
