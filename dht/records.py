"""Signed DHT records, their validation and the record store (Maymounkov & Mazières 2002, §2.3, §2.5).

A *record entry* is one publisher's signed statement under a 32-byte key:

- ``PRESENCE``: key ``sha256("presence/" + user)``; the value lists the user's devices at the
  publishing node (``PresenceValue``). Several nodes publish under the same key, so a key
  holds a *set* of entries, one per publisher: merge keeps the highest ``seq`` per publisher
  and drops expired ones. An entry with no devices is a withdrawal (a tombstone that outranks
  the publisher's older entries until it expires).
- ``PEER``: key ``sha256(PeerId)``; value = addresses and relays (``PeerValue``); only the
  peer itself may sign it.

Every entry carries ``seq`` (newer wins) and ``expires_ms`` (POSIX ms). Entries are validated
when received, in a PUT or in a GET response; a failure is a ``Rejection`` that the caller
counts (bad signature, expired, too far in the future, oversized, wrong publisher, ...).
The signature (Ed25519, by the key inside the publisher's PeerId) covers
``signed_bytes()``: a domain tag and the fields in a fixed layout, never a protobuf encoding.

Times here are wall-clock seconds (``now``), because expiries are compared across nodes;
nothing in this module reads a clock.
"""

from __future__ import annotations

import enum
import hashlib
import heapq
import struct
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from google.protobuf.message import DecodeError as ProtobufDecodeError

from dht import dht_pb2 as pb
from dht.errors import DecodeError, LocalProtocolError
from dht.ids import KEY_BYTES, node_id, presence_key
from node.errors import DecodeError as NodeDecodeError
from node.identity import PeerId

__all__ = [
    "Device",
    "RecordEntry",
    "RecordKind",
    "RecordLimits",
    "RecordStore",
    "Rejection",
    "Signer",
    "Verifier",
    "decode_peer_value",
    "decode_presence_value",
    "encode_peer_value",
    "encode_presence_value",
    "live_devices",
    "merge_entries",
    "sign_entry",
    "signed_bytes",
]

SIGNATURE_DOMAIN = b"timnode-dht-record/1\x00"


class RecordKind(enum.IntEnum):
    PRESENCE = 1
    PEER = 2


class Rejection(enum.Enum):
    """Why a received record entry was dropped (each one is counted)."""

    MALFORMED = "malformed"  # unknown kind, bad key/publisher/signature length, undecodable value
    OVERSIZED = "oversized"
    WRONG_PUBLISHER = "wrong_publisher"  # a peer record not signed by the peer it describes
    WRONG_KEY = "wrong_key"  # a presence entry filed under another user's key
    EXPIRED = "expired"
    TOO_FAR_IN_FUTURE = "too_far_in_future"
    BAD_SIGNATURE = "bad_signature"


class Signer(Protocol):
    """What the DHT needs of an identity (``node.identity.Identity`` fits)."""

    @property
    def peer_id(self) -> PeerId: ...

    def sign(self, data: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Device:
    """One device of a user at a node, as published in a presence entry."""

    device_id: str
    status: str = "online"


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordEntry:
    """One publisher's signed entry under ``key`` (validate before trusting it)."""

    kind: int  # a RecordKind; unknown kinds decode and are rejected as MALFORMED
    key: bytes
    publisher: bytes
    seq: int
    expires_ms: int
    value: bytes
    signature: bytes

    @property
    def expires(self) -> float:
        """Expiry in wall-clock seconds."""
        return self.expires_ms / 1000

    def signed_bytes(self) -> bytes:
        return signed_bytes(self.kind, self.key, self.publisher, self.seq, self.expires_ms, self.value)

    def size(self) -> int:
        """Bytes counted against ``RecordLimits.max_entry_bytes``."""
        return len(self.key) + len(self.publisher) + len(self.value) + len(self.signature) + 17

    def is_tombstone(self) -> bool:
        """A presence withdrawal: an entry that lists no device."""
        return self.kind == RecordKind.PRESENCE and not decode_presence_value(self.value)[1]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordLimits:
    """Validation and storage limits (a node refuses to pin attacker-sized state)."""

    max_entry_bytes: int = 2048
    max_ttl: float = 86400.0  # an expiry further than this (plus skew) is "too far in the future"
    max_clock_skew: float = 300.0
    max_keys: int = 100_000
    max_entries_per_key: int = 64


def signed_bytes(kind: int, key: bytes, publisher: bytes, seq: int, expires_ms: int, value: bytes) -> bytes:
    """The bytes a publisher signs: domain tag, kind, key, publisher, seq, expiry, value."""
    head = struct.pack(">B32sB", kind, key, len(publisher))
    return b"".join((SIGNATURE_DOMAIN, head, publisher, struct.pack(">QQ", seq, expires_ms), value))


def sign_entry(signer: Signer, kind: int, key: bytes, value: bytes, *, seq: int, expires_ms: int) -> RecordEntry:
    """Build and sign an entry published by ``signer``."""
    if len(key) != KEY_BYTES:
        raise LocalProtocolError(f"a DHT key is {KEY_BYTES} bytes")
    publisher = signer.peer_id.bytes
    signature = signer.sign(signed_bytes(kind, key, publisher, seq, expires_ms, value))
    return RecordEntry(
        kind=kind, key=key, publisher=publisher, seq=seq, expires_ms=expires_ms, value=value, signature=signature
    )


def encode_presence_value(user: str, devices: Iterable[Device]) -> bytes:
    listed = [pb.PresenceDevice(device_id=d.device_id, status=d.status) for d in devices]
    msg = pb.PresenceValue(user=user, devices=listed)
    return msg.SerializeToString(deterministic=True)


def decode_presence_value(data: bytes) -> tuple[str, tuple[Device, ...]]:
    """Raises ``DecodeError``."""
    msg = pb.PresenceValue()
    _parse(msg, data)
    return msg.user, tuple(Device(d.device_id, d.status) for d in msg.devices)


def encode_peer_value(addrs: Iterable[str], relays: Iterable[bytes] = ()) -> bytes:
    return pb.PeerValue(addrs=list(addrs), relays=list(relays)).SerializeToString(deterministic=True)


def decode_peer_value(data: bytes) -> tuple[tuple[str, ...], tuple[bytes, ...]]:
    """Raises ``DecodeError``."""
    msg = pb.PeerValue()
    _parse(msg, data)
    return tuple(msg.addrs), tuple(msg.relays)


def _parse(msg: pb.PresenceValue | pb.PeerValue, data: bytes) -> None:
    try:
        msg.ParseFromString(data)
    except (ProtobufDecodeError, ValueError) as exc:
        raise DecodeError(f"bad {type(msg).__name__}: {exc}") from exc


class Verifier:
    """Validates entries; remembers recent good signatures (one entry often arrives from k holders)."""

    def __init__(self, limits: RecordLimits, cache_size: int = 4096) -> None:
        self.limits = limits
        self.cache_size = cache_size
        self._good: OrderedDict[bytes, None] = OrderedDict()

    def validate(self, entry: RecordEntry, now: float) -> Rejection | None:
        """None when ``entry`` may be stored or returned; else why it must be dropped."""
        if entry.size() > self.limits.max_entry_bytes:
            return Rejection.OVERSIZED
        problem = _check_shape(entry)
        if problem is not None:
            return problem
        if entry.expires <= now:
            return Rejection.EXPIRED
        if entry.expires > now + self.limits.max_ttl + self.limits.max_clock_skew:
            return Rejection.TOO_FAR_IN_FUTURE
        return None if self._signature_ok(entry) else Rejection.BAD_SIGNATURE

    def _signature_ok(self, entry: RecordEntry) -> bool:
        data = entry.signed_bytes()
        digest = hashlib.sha256(data + entry.signature).digest()
        if digest in self._good:
            self._good.move_to_end(digest)
            return True
        try:
            ok = PeerId(entry.publisher).verify(entry.signature, data)
        except NodeDecodeError:
            return False
        if ok:
            self._good[digest] = None
            if len(self._good) > self.cache_size:
                self._good.popitem(last=False)
        return ok


def _check_shape(entry: RecordEntry) -> Rejection | None:
    """Kind, lengths, value encoding and the key/publisher binding."""
    if len(entry.key) != KEY_BYTES or len(entry.signature) != 64:
        return Rejection.MALFORMED
    try:
        PeerId(entry.publisher)
        if entry.kind == RecordKind.PEER:
            decode_peer_value(entry.value)
            return None if node_id(entry.publisher) == entry.key else Rejection.WRONG_PUBLISHER
        if entry.kind == RecordKind.PRESENCE:
            user, _ = decode_presence_value(entry.value)
            return None if presence_key(user) == entry.key else Rejection.WRONG_KEY
    except (NodeDecodeError, DecodeError):
        return Rejection.MALFORMED
    return Rejection.MALFORMED


def merge_entries(entries: Iterable[RecordEntry], now: float) -> list[RecordEntry]:
    """The newest live entry per (key, publisher), in a stable order (key, publisher)."""
    best: dict[tuple[bytes, bytes], RecordEntry] = {}
    for entry in entries:
        if entry.expires <= now:
            continue
        held = best.get((entry.key, entry.publisher))
        if held is None or (entry.seq, entry.expires_ms) > (held.seq, held.expires_ms):
            best[(entry.key, entry.publisher)] = entry
    return [best[k] for k in sorted(best)]


class RecordStore:
    """Validated entries by key and publisher, with expiry and storage limits (§2.3, §2.5).

    The store holds what a DHT server was asked to keep. ``put`` takes an entry that has
    already been validated; it keeps the newest seq per publisher and refuses new keys or
    publishers past the limits. ``expire(now)`` drops entries at their expiry.
    """

    def __init__(self, limits: RecordLimits) -> None:
        self.limits = limits
        self._keys: dict[bytes, dict[bytes, RecordEntry]] = {}
        self._expiry: list[tuple[int, bytes, bytes]] = []  # (expires_ms, key, publisher), lazy

    def __len__(self) -> int:
        return sum(len(v) for v in self._keys.values())

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def keys(self) -> list[bytes]:
        return list(self._keys)

    def put(self, entry: RecordEntry) -> bool:
        """Store ``entry`` unless we hold a newer one or a limit is reached; True when stored."""
        held = self._keys.get(entry.key)
        if held is None:
            if len(self._keys) >= self.limits.max_keys:
                return False
            held = self._keys[entry.key] = {}
        old = held.get(entry.publisher)
        if old is not None and (entry.seq, entry.expires_ms) <= (old.seq, old.expires_ms):
            return False
        if old is None and len(held) >= self.limits.max_entries_per_key:
            return False
        held[entry.publisher] = entry
        heapq.heappush(self._expiry, (entry.expires_ms, entry.key, entry.publisher))
        return True

    def get(self, key: bytes, now: float) -> list[RecordEntry]:
        """Live entries under ``key`` (tombstones included: they must propagate)."""
        held = self._keys.get(key)
        if not held:
            return []
        return [e for _, e in sorted(held.items()) if e.expires > now]

    def remove(self, key: bytes, publisher: bytes) -> None:
        held = self._keys.get(key)
        if held is not None:
            held.pop(publisher, None)
            if not held:
                del self._keys[key]

    def next_expiry(self) -> float | None:
        """When the next held entry expires (superseded heap items are skipped)."""
        while self._expiry and not self._is_current(*self._expiry[0]):
            heapq.heappop(self._expiry)
        return self._expiry[0][0] / 1000 if self._expiry else None

    def _is_current(self, expires_ms: int, key: bytes, publisher: bytes) -> bool:
        entry = self._keys.get(key, {}).get(publisher)
        return entry is not None and entry.expires_ms == expires_ms

    def expire(self, now: float) -> list[bytes]:
        """Drop every entry whose expiry has passed; return the keys that became empty."""
        emptied: list[bytes] = []
        while self._expiry and self._expiry[0][0] / 1000 <= now:
            expires_ms, key, publisher = heapq.heappop(self._expiry)
            if not self._is_current(expires_ms, key, publisher):
                continue  # superseded by a newer entry with its own heap item
            self.remove(key, publisher)
            if key not in self._keys:
                emptied.append(key)
        return emptied


def live_devices(entries: Sequence[RecordEntry]) -> list[tuple[bytes, Device, float]]:
    """Flatten presence entries into (node PeerId bytes, device, expiry) tuples."""
    out: list[tuple[bytes, Device, float]] = []
    for entry in entries:
        if entry.kind == RecordKind.PRESENCE:
            out += [(entry.publisher, d, entry.expires) for d in decode_presence_value(entry.value)[1]]
    return out
