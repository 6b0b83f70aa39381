"""Node identity: an Ed25519 key pair and the PeerId derived from it.

PeerId follows the libp2p peer-ids spec (libp2p/specs peer-ids/peer-ids.md):

- the public key is wrapped in the ``PublicKey`` protobuf ``{Type = Ed25519 (1), Data = 32 bytes}``,
  whose canonical encoding is ``08 01 12 20 <key>`` (36 bytes, "Note about deterministic encoding");
- 36 <= 42 bytes, so the PeerId is the *identity* multihash of that encoding
  (``00 24 08 01 12 20 <key>``, 38 bytes), with no hashing;
- its text form is base58btc ("legacy" string representation), which for Ed25519 always
  starts ``12D3KooW``.

The Kademlia key of a peer (``PeerId.dht_key``) is ``sha256(peer_id.bytes)``, as in the
libp2p Kademlia spec ("distance is XOR of sha256(key)").

The private key is stored in ``<data_dir>/identity.key`` as the libp2p ``PrivateKey``
protobuf (``08 01 12 40 <seed 32><public 32>``, the format go-libp2p writes), created
atomically with mode 0600: written to a private temporary file, fsynced, then ``link()``ed
into place so that two processes starting at once end up with the same key.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
import os
import pathlib
import stat
from dataclasses import dataclass
from functools import cached_property

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from node.errors import DecodeError, IdentityError
from node.multiformats import IDENTITY, b58decode, b58encode, decode_multihash, encode_multihash

__all__ = ["IDENTITY_FILE", "Identity", "PeerId", "encode_public_key", "decode_public_key"]

log = logging.getLogger(__name__)

IDENTITY_FILE = "identity.key"

_ED25519 = 1  # libp2p KeyType.Ed25519
_PUBLIC_PREFIX = bytes([0x08, _ED25519, 0x12, 32])  # Type=Ed25519, Data=<32 bytes>
_PRIVATE_PREFIX = bytes([0x08, _ED25519, 0x12, 64])  # Type=Ed25519, Data=<seed || public>


def encode_public_key(raw: bytes) -> bytes:
    """Return the libp2p ``PublicKey`` protobuf of a raw 32-byte Ed25519 public key."""
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return _PUBLIC_PREFIX + raw


def decode_public_key(encoded: bytes) -> bytes:
    """Return the raw Ed25519 key inside a libp2p ``PublicKey`` protobuf.

    Only the canonical encoding is accepted (the spec requires deterministic encoding).

    Raises:
        DecodeError: another key type, or not the canonical encoding.
    """
    if len(encoded) != 36 or encoded[:4] != _PUBLIC_PREFIX:
        raise DecodeError("not a canonical Ed25519 libp2p PublicKey")
    return encoded[4:]


@dataclass(frozen=True, slots=True)
class PeerId:
    """A peer's identity: the identity multihash of its Ed25519 ``PublicKey`` protobuf."""

    bytes: builtins.bytes

    def __post_init__(self) -> None:
        code, digest = decode_multihash(self.bytes)
        if code != IDENTITY:
            raise DecodeError(f"unsupported PeerId multihash code 0x{code:02x} (only Ed25519 identity)")
        decode_public_key(digest)

    @classmethod
    def from_public_key(cls, raw: builtins.bytes) -> PeerId:
        """PeerId of a raw 32-byte Ed25519 public key."""
        return cls(encode_multihash(IDENTITY, encode_public_key(raw)))

    @classmethod
    def from_base58(cls, text: str) -> PeerId:
        """Parse the base58btc text form (``12D3KooW...``).

        Raises:
            DecodeError: not base58btc, or not an Ed25519 identity-multihash PeerId.
        """
        if not text or len(text) > 128:
            raise DecodeError("a PeerId is 1..128 characters")
        return cls(b58decode(text))

    def to_base58(self) -> str:
        """The base58btc text form."""
        return b58encode(self.bytes)

    @property
    def public_key(self) -> builtins.bytes:
        """The raw 32-byte Ed25519 public key."""
        return self.bytes[6:]

    @property
    def dht_key(self) -> builtins.bytes:
        """The 256-bit Kademlia key: ``sha256(self.bytes)``."""
        return hashlib.sha256(self.bytes).digest()

    def verify(self, signature: builtins.bytes, data: builtins.bytes) -> bool:
        """True when ``signature`` is this peer's Ed25519 signature over ``data``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, data)
        except (InvalidSignature, ValueError):
            return False
        return True

    def short(self) -> str:
        """A short form for log lines: the last 8 characters of the text form."""
        return "…" + self.to_base58()[-8:]

    def __str__(self) -> str:
        return self.to_base58()

    def __repr__(self) -> str:
        return f"PeerId({self.to_base58()})"


class Identity:
    """This node's Ed25519 key pair."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key

    @classmethod
    def generate(cls) -> Identity:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        """The identity whose 32-byte Ed25519 private seed is ``seed``."""
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def load_or_create(cls, data_dir: str | os.PathLike[str]) -> Identity:
        """Load ``<data_dir>/identity.key``, creating the directory and a new key if missing.

        Raises:
            IdentityError: the file exists but does not hold an Ed25519 key.
        """
        path = pathlib.Path(data_dir).expanduser() / IDENTITY_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            _create_exclusive(path, Identity.generate().private_bytes())
        return cls.load(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Identity:
        """Load an identity file written by ``load_or_create``."""
        path = pathlib.Path(path)
        try:
            data = path.read_bytes()
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError as exc:
            raise IdentityError(f"cannot read {path}: {exc.strerror}") from exc
        if mode & 0o077:
            log.warning("identity key %s is readable by others (mode %o); chmod 600 it", path, mode)
        if len(data) != 68 or data[:4] != _PRIVATE_PREFIX:
            raise IdentityError(f"{path} does not hold an Ed25519 libp2p private key")
        identity = cls.from_seed(data[4:36])
        if identity.public_bytes != data[36:]:
            raise IdentityError(f"{path}: public key does not match the private key")
        return identity

    def private_bytes(self) -> bytes:
        """The libp2p ``PrivateKey`` protobuf: ``08 01 12 40 <seed><public>``."""
        seed = self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return _PRIVATE_PREFIX + seed + self.public_bytes

    @cached_property
    def public_bytes(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        return self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @cached_property
    def peer_id(self) -> PeerId:
        return PeerId.from_public_key(self.public_bytes)

    def sign(self, data: bytes) -> bytes:
        """Ed25519 signature (64 bytes) over ``data``."""
        return self._key.sign(data)


def _create_exclusive(path: pathlib.Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600; keep an existing file if one wins."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it first: use theirs
    finally:
        tmp.unlink(missing_ok=True)
