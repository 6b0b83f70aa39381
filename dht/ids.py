"""256-bit Kademlia keys and the XOR metric (Maymounkov & Mazières 2002, §2.1).

A node's id is ``sha256(PeerId bytes)`` (``node.identity.PeerId.dht_key``), as in the
libp2p Kademlia spec. Distances are Python ints; ids are 32-byte strings on the wire and
in the API. Bucket ``i`` of a routing table holds the peers whose id shares exactly ``i``
leading bits with ours (the common prefix length), i.e. distance in ``[2**(255-i), 2**(256-i))``.
"""

from __future__ import annotations

import hashlib
import random

from dht.errors import LocalProtocolError

__all__ = [
    "KEY_BITS",
    "KEY_BYTES",
    "bucket_index",
    "distance",
    "key_to_int",
    "node_id",
    "peer_record_key",
    "presence_key",
    "random_id_in_bucket",
]

KEY_BITS = 256
KEY_BYTES = KEY_BITS // 8


def node_id(peer: bytes) -> bytes:
    """The Kademlia id of a peer: ``sha256(peer_id_bytes)``."""
    return hashlib.sha256(peer).digest()


def presence_key(user: str) -> bytes:
    """The key of user ``user``'s presence record: ``sha256("presence/" + user)``."""
    return hashlib.sha256(b"presence/" + user.encode()).digest()


def peer_record_key(peer: bytes) -> bytes:
    """The key of a peer record: the peer's own node id."""
    return node_id(peer)


def key_to_int(key: bytes) -> int:
    """A key as a big-endian integer; raises ``LocalProtocolError`` unless it is 32 bytes."""
    if len(key) != KEY_BYTES:
        raise LocalProtocolError(f"a DHT key is {KEY_BYTES} bytes, not {len(key)}")
    return int.from_bytes(key, "big")


def distance(a: bytes, b: bytes) -> int:
    """XOR distance between two keys (§2.1): symmetric, zero only for ``a == b``, triangle-bounded."""
    return key_to_int(a) ^ key_to_int(b)


def bucket_index(own: bytes, other: bytes) -> int:
    """The common prefix length of two distinct ids, 0..255: the index of ``other``'s k-bucket.

    Raises:
        LocalProtocolError: ``own == other`` (a node has no bucket for itself).
    """
    d = distance(own, other)
    if d == 0:
        raise LocalProtocolError("a node id has no bucket in its own table")
    return KEY_BITS - d.bit_length()


def random_id_in_bucket(own: bytes, index: int, rng: random.Random) -> bytes:
    """A random id whose bucket in ``own``'s table is ``index`` (for bucket refreshes, §2.3)."""
    if not 0 <= index < KEY_BITS:
        raise LocalProtocolError(f"bucket index {index} is outside 0..{KEY_BITS - 1}")
    top = 1 << (KEY_BITS - 1 - index)  # the first differing bit
    d = top | rng.getrandbits(KEY_BITS - 1 - index)
    return (key_to_int(own) ^ d).to_bytes(KEY_BYTES, "big")
