"""Noise_XX_25519_ChaChaPoly_SHA256, sans-I/O (The Noise Protocol Framework, revision 34).

Objects follow §5 of the specification one to one: ``CipherState`` (§5.1),
``SymmetricState`` (§5.2) and ``HandshakeState`` (§5.3), instantiated with

- DH = Curve25519 (§12.1), through ``cryptography``'s X25519 (an all-zero shared secret, from
  a low-order point, is rejected: §12.1 allows it and it cannot occur with honest peers);
- cipher = ChaChaPoly (§12.3): ChaCha20-Poly1305 (RFC 8439), nonce = 4 zero bytes then the
  64-bit counter little-endian;
- hash = SHA-256 (§12.5) with HMAC-SHA256 HKDF (§4.3).

Only the interactive ``XX`` pattern (§7.5) is tabled, but the token processing is generic.
``HandshakeState`` takes ``ephemeral=`` so the published test vectors (cacophony, snow) can
be replayed byte for byte (``tests/node/test_noise.py``).

Errors: a failed AEAD open raises ``DecryptError``; a short message or a bad public key raises
``DecodeError``; calling out of turn raises ``LocalProtocolError``. After a ``DecryptError``
in a handshake the ``HandshakeState`` must be discarded (§5.3, "the handshake has failed").
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from node.errors import DecodeError, DecryptError, LocalProtocolError

__all__ = [
    "DHLEN",
    "HASHLEN",
    "MAX_MESSAGE",
    "PROTOCOL_NAME",
    "TAGLEN",
    "CipherState",
    "HandshakeState",
    "KeyPair",
    "SymmetricState",
]

PROTOCOL_NAME = b"Noise_XX_25519_ChaChaPoly_SHA256"
DHLEN = 32
HASHLEN = 32
TAGLEN = 16
MAX_MESSAGE = 65535  # §3: "Noise messages ... must be less than or equal to 65535 bytes"
_MAX_NONCE = 2**64 - 1  # §5.1: reserved, never used for encryption

#: §7.5 XX: -> e / <- e, ee, s, es / -> s, se
XX: tuple[tuple[str, ...], ...] = (("e",), ("e", "ee", "s", "es"), ("s", "se"))


class KeyPair:
    """An X25519 key pair (§4.1 GENERATE_KEYPAIR)."""

    __slots__ = ("private", "public")

    def __init__(self, private: X25519PrivateKey) -> None:
        self.private = private
        self.public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def generate(cls) -> KeyPair:
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, data: bytes) -> KeyPair:
        return cls(X25519PrivateKey.from_private_bytes(data))

    def dh(self, public: bytes) -> bytes:
        """§4.1 DH(key_pair, public_key).

        Raises:
            DecodeError: the public key is not 32 bytes or is a low-order point.
        """
        try:
            return self.private.exchange(X25519PublicKey.from_public_bytes(public))
        except ValueError as exc:
            raise DecodeError("invalid X25519 public key") from exc


def hkdf(chaining_key: bytes, ikm: bytes, outputs: int) -> tuple[bytes, ...]:
    """§4.3 HKDF with HMAC-SHA256, returning 2 or 3 outputs of HASHLEN bytes."""
    temp_key = hmac.digest(chaining_key, ikm, "sha256")
    out1 = hmac.digest(temp_key, b"\x01", "sha256")
    out2 = hmac.digest(temp_key, out1 + b"\x02", "sha256")
    if outputs == 2:
        return out1, out2
    return out1, out2, hmac.digest(temp_key, out2 + b"\x03", "sha256")


class CipherState:
    """§5.1: a key ``k`` (or none) and a 64-bit nonce ``n``."""

    __slots__ = ("_aead", "n")

    def __init__(self, key: bytes | None = None) -> None:
        self._aead: ChaCha20Poly1305 | None = None
        self.n = 0
        self.initialize_key(key)

    def initialize_key(self, key: bytes | None) -> None:
        self._aead = ChaCha20Poly1305(key) if key is not None else None
        self.n = 0

    def has_key(self) -> bool:
        return self._aead is not None

    def set_nonce(self, nonce: int) -> None:
        self.n = nonce

    def _nonce(self) -> bytes:
        if self.n >= _MAX_NONCE:
            raise LocalProtocolError("nonce exhausted: rekey or start a new session")
        return struct.pack("<4xQ", self.n)

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        if self._aead is None:
            return plaintext
        ciphertext = self._aead.encrypt(self._nonce(), plaintext, ad)
        self.n += 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """Open ``ciphertext``; ``n`` advances only on success (§5.1).

        Raises:
            DecryptError: authentication failed (wrong key, tampered, replayed or reordered).
        """
        if self._aead is None:
            return ciphertext
        if len(ciphertext) < TAGLEN:
            raise DecryptError("ciphertext shorter than the authentication tag")
        try:
            plaintext = self._aead.decrypt(self._nonce(), ciphertext, ad)
        except InvalidTag as exc:
            raise DecryptError("decryption failed") from exc
        self.n += 1
        return plaintext

    def rekey(self) -> None:
        """§4.2 REKEY: k = the first 32 bytes of ENCRYPT(k, 2^64-1, zerolen, zeros)."""
        if self._aead is None:
            raise LocalProtocolError("rekey without a key")
        new = self._aead.encrypt(struct.pack("<4xQ", _MAX_NONCE), bytes(32), b"")[:32]
        self._aead = ChaCha20Poly1305(new)


class SymmetricState:
    """§5.2: chaining key ``ck``, handshake hash ``h`` and a ``CipherState``."""

    __slots__ = ("ck", "h", "cipher")

    def __init__(self, protocol_name: bytes) -> None:
        if len(protocol_name) <= HASHLEN:
            self.h = protocol_name.ljust(HASHLEN, b"\0")
        else:
            self.h = hashlib.sha256(protocol_name).digest()
        self.ck = self.h
        self.cipher = CipherState()

    def mix_key(self, ikm: bytes) -> None:
        self.ck, temp_k = hkdf(self.ck, ikm, 2)
        self.cipher.initialize_key(temp_k)

    def mix_hash(self, data: bytes) -> None:
        self.h = hashlib.sha256(self.h + data).digest()

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        """§5.2 Split(): (initiator -> responder, responder -> initiator) cipher states."""
        k1, k2 = hkdf(self.ck, b"", 2)
        return CipherState(k1), CipherState(k2)


class HandshakeState:
    """§5.3 for the XX pattern (no pre-messages, so ``rs``/``re`` start empty).

    Args:
        initiator: our role.
        prologue: mixed into ``h`` first (§6); both sides must pass the same bytes.
        static: our long-term X25519 key pair ``s``.
        ephemeral: a fixed ``e`` for test vectors; generated on first use otherwise.
    """

    def __init__(
        self,
        *,
        initiator: bool,
        prologue: bytes,
        static: KeyPair,
        ephemeral: KeyPair | None = None,
        protocol_name: bytes = PROTOCOL_NAME,
        pattern: tuple[tuple[str, ...], ...] = XX,
    ) -> None:
        self.initiator = initiator
        self.symmetric = SymmetricState(protocol_name)
        self.symmetric.mix_hash(prologue)
        self.s = static
        self.e = ephemeral
        self.rs: bytes | None = None
        self.re: bytes | None = None
        self._pattern = pattern
        self._index = 0  # next message pattern to process
        self._result: tuple[CipherState, CipherState] | None = None

    @property
    def complete(self) -> bool:
        return self._index == len(self._pattern)

    @property
    def handshake_hash(self) -> bytes:
        """§5.2 GetHandshakeHash(); the channel binding value once complete."""
        return self.symmetric.h

    @property
    def message_index(self) -> int:
        return self._index

    def is_my_turn(self) -> bool:
        return not self.complete and (self._index % 2 == 0) == self.initiator

    def _dh(self, token: str) -> bytes:
        # §7.1: the first letter names the initiator's key, the second the responder's.
        first, second = (token[0], token[1]) if self.initiator else (token[1], token[0])
        local = self.e if first == "e" else self.s
        remote = self.re if second == "e" else self.rs
        if local is None or remote is None:
            raise LocalProtocolError(f"token {token!r} before its keys are known")
        return local.dh(remote)

    def write_message(self, payload: bytes = b"") -> bytes:
        """§5.3 WriteMessage: the next handshake message carrying ``payload``."""
        if not self.is_my_turn():
            raise LocalProtocolError("not our turn to write a handshake message")
        out = bytearray()
        for token in self._pattern[self._index]:
            if token == "e":
                self.e = self.e or KeyPair.generate()
                out += self.e.public
                self.symmetric.mix_hash(self.e.public)
            elif token == "s":
                out += self.symmetric.encrypt_and_hash(self.s.public)
            else:
                self.symmetric.mix_key(self._dh(token))
        out += self.symmetric.encrypt_and_hash(payload)
        if len(out) > MAX_MESSAGE:
            raise LocalProtocolError("handshake message over 65535 bytes")
        self._advance()
        return bytes(out)

    def read_message(self, message: bytes) -> bytes:
        """§5.3 ReadMessage: process ``message`` and return its payload.

        Raises:
            DecodeError: too short for the tokens it must carry, or a bad public key.
            DecryptError: an encrypted part failed authentication (handshake failed).
        """
        if self.complete or self.is_my_turn():
            raise LocalProtocolError("not expecting a handshake message")
        if len(message) > MAX_MESSAGE:
            raise DecodeError("handshake message over 65535 bytes")
        pos = 0
        for token in self._pattern[self._index]:
            if token in ("e", "s"):
                size = DHLEN + (TAGLEN if token == "s" and self.symmetric.cipher.has_key() else 0)
                if len(message) - pos < size:
                    raise DecodeError(f"truncated handshake message (no room for {token!r})")
                part, pos = message[pos : pos + size], pos + size
                if token == "e":
                    self.re = part
                    self.symmetric.mix_hash(part)
                else:
                    self.rs = self.symmetric.decrypt_and_hash(part)
            else:
                self.symmetric.mix_key(self._dh(token))
        rest = message[pos:]
        if self.symmetric.cipher.has_key() and len(rest) < TAGLEN:
            raise DecodeError("truncated handshake message (no room for the payload tag)")
        payload = self.symmetric.decrypt_and_hash(rest)
        self._advance()
        return payload

    def _advance(self) -> None:
        self._index += 1
        if self.complete:
            self._result = self.symmetric.split()

    def split(self) -> tuple[CipherState, CipherState]:
        """(send, receive) cipher states for our role, once the handshake is complete."""
        if self._result is None:
            raise LocalProtocolError("handshake not complete")
        c1, c2 = self._result
        return (c1, c2) if self.initiator else (c2, c1)
