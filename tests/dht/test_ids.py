"""XOR metric properties (Kademlia §2.1) and bucket indices."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dht.errors import LocalProtocolError
from dht.ids import (
    KEY_BITS,
    bucket_index,
    distance,
    key_to_int,
    node_id,
    peer_record_key,
    presence_key,
    random_id_in_bucket,
)

keys = st.binary(min_size=32, max_size=32)


@given(keys)
def test_distance_to_self_is_zero(a: bytes) -> None:
    assert distance(a, a) == 0


@given(keys, keys)
def test_distance_is_symmetric_and_positive(a: bytes, b: bytes) -> None:
    assert distance(a, b) == distance(b, a)
    assert (distance(a, b) > 0) == (a != b)


@given(keys, keys, keys)
def test_triangle_inequality(a: bytes, b: bytes, c: bytes) -> None:
    assert distance(a, c) <= distance(a, b) + distance(b, c)
    assert distance(a, c) == distance(a, b) ^ distance(b, c)


@given(keys, st.integers(min_value=0, max_value=2**256 - 1))
def test_unidirectional(a: bytes, delta: int) -> None:
    """For any point and distance there is exactly one point at that distance (§2.1)."""
    b = (key_to_int(a) ^ delta).to_bytes(32, "big")
    assert distance(a, b) == delta


@given(keys, keys)
def test_bucket_index_is_common_prefix_length(a: bytes, b: bytes) -> None:
    if a == b:
        with pytest.raises(LocalProtocolError):
            bucket_index(a, b)
        return
    bits_a, bits_b = f"{key_to_int(a):0256b}", f"{key_to_int(b):0256b}"
    cpl = next(i for i in range(KEY_BITS) if bits_a[i] != bits_b[i])
    assert bucket_index(a, b) == cpl
    assert 2 ** (255 - cpl) <= distance(a, b) < 2 ** (256 - cpl)


@given(keys, st.integers(min_value=0, max_value=255), st.integers())
def test_random_id_lands_in_its_bucket(own: bytes, index: int, seed: int) -> None:
    assert bucket_index(own, random_id_in_bucket(own, index, random.Random(seed))) == index


def test_key_helpers() -> None:
    assert presence_key("alice") == __import__("hashlib").sha256(b"presence/alice").digest()
    assert peer_record_key(b"peer") == node_id(b"peer")
    with pytest.raises(LocalProtocolError):
        key_to_int(b"short")
    with pytest.raises(LocalProtocolError):
        random_id_in_bucket(bytes(32), 256, random.Random(0))
