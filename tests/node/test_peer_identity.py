"""Identity file and PeerId (libp2p/specs peer-ids/peer-ids.md, including its Ed25519 test vector)."""

from __future__ import annotations

import os
import pathlib
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.errors import DecodeError, IdentityError
from node.identity import IDENTITY_FILE, Identity, PeerId

# peer-ids spec "Test vectors": Ed25519 private key 080112407e08...; public key 080112201ed1...
SPEC_SEED = bytes.fromhex("7e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d")
SPEC_PRIVATE = "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d" + (
    "1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
)
SPEC_PUBLIC = "080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
SPEC_PEER_ID = "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"


def test_spec_vector() -> None:
    identity = Identity.from_seed(SPEC_SEED)
    assert identity.private_bytes().hex() == SPEC_PRIVATE
    assert identity.peer_id.bytes.hex() == "0024" + SPEC_PUBLIC
    assert identity.peer_id.to_base58() == SPEC_PEER_ID
    assert PeerId.from_base58(SPEC_PEER_ID) == identity.peer_id


def test_file_mode_and_stable_peer_id(tmp_path: pathlib.Path) -> None:
    data_dir = tmp_path / "data"
    first = Identity.load_or_create(data_dir)
    path = data_dir / IDENTITY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Identity.load_or_create(data_dir).peer_id == first.peer_id
    assert [p.name for p in data_dir.iterdir()] == [IDENTITY_FILE]  # no temp file left
    assert first.peer_id.to_base58().startswith("12D3KooW")


def test_corrupt_identity_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / IDENTITY_FILE).write_bytes(b"garbage")
    with pytest.raises(IdentityError):
        Identity.load_or_create(tmp_path)
    good = Identity.generate().private_bytes()
    (tmp_path / IDENTITY_FILE).write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(IdentityError, match="does not match"):
        Identity.load_or_create(tmp_path)


def test_loose_mode_warns(tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    Identity.load_or_create(tmp_path)
    os.chmod(tmp_path / IDENTITY_FILE, 0o644)
    Identity.load_or_create(tmp_path)
    assert "readable by others" in caplog.text


def test_sign_verify_and_dht_key() -> None:
    identity = Identity.generate()
    sig = identity.sign(b"data")
    assert identity.peer_id.verify(sig, b"data")
    assert not identity.peer_id.verify(sig, b"other")
    assert not identity.peer_id.verify(b"short", b"data")
    assert len(identity.peer_id.dht_key) == 32
    assert identity.peer_id.dht_key != Identity.generate().peer_id.dht_key


@pytest.mark.parametrize(
    "text",
    ["", "0", "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3p"],
)
def test_from_base58_rejects(text: str) -> None:
    with pytest.raises(DecodeError):
        PeerId.from_base58(text)


@given(st.binary(min_size=32, max_size=32))
def test_peer_id_round_trip(raw: bytes) -> None:
    peer = PeerId.from_public_key(raw)
    assert PeerId.from_base58(peer.to_base58()) == peer
    assert peer.public_key == raw


@given(st.text(max_size=70))
def test_from_base58_only_decode_error(text: str) -> None:
    try:
        PeerId.from_base58(text)
    except DecodeError:
        pass
