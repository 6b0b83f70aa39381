"""Keyring: AEAD sealing, key rotation, blinded lookup keys, data key files."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from store import BadDataKey, Keyring, SealError, load_or_create_data_key, parse_data_key
from store.crypto import BLIND_INFO, _hkdf

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))
RING = Keyring(KEY)


def test_round_trip_and_format() -> None:
    sealed = RING.seal(b"rec", b"hello")
    assert RING.unseal(b"rec", sealed) == b"hello"
    assert sealed[:2] == b"\x03\x01"  # format 3 (AES-GCM-SIV), key version 1
    assert len(sealed) == 2 + 12 + len(b"hello") + 16
    assert RING.seal(b"rec", b"hello") != sealed  # random nonce


def test_tampering_is_detected() -> None:
    sealed = bytearray(RING.seal(b"rec", b"hello"))
    for i in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[i] ^= 0x01
        with pytest.raises(SealError):
            RING.unseal(b"rec", bytes(tampered))
    with pytest.raises(SealError):
        RING.unseal(b"rec", bytes(sealed[:-1]))


def test_wrong_data_key() -> None:
    with pytest.raises(SealError):
        Keyring(OTHER).unseal(b"rec", RING.seal(b"rec", b"hello"))


def test_value_moved_to_another_key() -> None:
    with pytest.raises(SealError):
        RING.unseal(b"rec2", RING.seal(b"rec", b"hello"))


def test_rotation_keeps_old_versions_readable() -> None:
    old = Keyring(KEY, version=1)
    sealed_v1 = old.seal(b"rec", b"old")
    ring = Keyring(OTHER, version=2)
    ring.add_version(KEY, 1)
    assert ring.newest == 2 and ring.versions == [1, 2]
    assert ring.unseal(b"rec", sealed_v1) == b"old"
    sealed_v2 = ring.seal(b"rec", b"new")
    assert sealed_v2[:2] == b"\x03\x02"
    assert ring.unseal(b"rec", sealed_v2) == b"new"
    with pytest.raises(SealError):
        old.unseal(b"rec", sealed_v2)  # a node without v2 cannot read it


def test_two_byte_versions() -> None:
    ring = Keyring(OTHER, version=300)
    ring.add_version(KEY, 7)
    sealed = ring.seal(b"k", b"v")
    assert sealed[:3] == b"\x04\x01\x2c"
    assert ring.unseal(b"k", sealed) == b"v"
    assert ring.unseal(b"k", Keyring(KEY, version=7).seal(b"k", b"w")) == b"w"


def test_relabelled_version_fails() -> None:
    ring = Keyring(KEY, version=1)
    ring.add_version(KEY, 2)  # same data key under two versions: the header is authenticated
    sealed = bytearray(ring.seal(b"k", b"v"))
    sealed[1] = 1
    with pytest.raises(SealError):
        ring.unseal(b"k", bytes(sealed))


def test_keyring_rejects_bad_keys() -> None:
    with pytest.raises(BadDataKey):
        Keyring(b"short")
    with pytest.raises(BadDataKey):
        Keyring(KEY, version=70000)
    ring = Keyring(KEY)
    with pytest.raises(BadDataKey):
        ring.add_version(OTHER, 1)


def test_blind_is_deterministic_and_label_separated() -> None:
    a = RING.blind(b"account", b"alice")
    assert a == Keyring(KEY).blind(b"account", b"alice")
    assert len(a) == 16
    assert a != RING.blind(b"device", b"alice")
    assert a != RING.blind(b"account", b"alice2")
    assert RING.blind(b"ab", b"c") != RING.blind(b"a", b"bc")
    assert a != Keyring(OTHER).blind(b"account", b"alice")


@given(label=st.binary(max_size=20), value=st.binary(max_size=200))
def test_blind_is_hmac_sha256_of_the_blind_key(label: bytes, value: bytes) -> None:
    """Record keys on disk depend on this exact function: HMAC-SHA256 under the HKDF blind key
    of ``len(label) (2 bytes, big-endian) || label || value``, cut to 16 bytes."""
    expected = hmac.digest(_hkdf(KEY, BLIND_INFO), struct.pack(">H", len(label)) + label + value, hashlib.sha256)
    assert RING.blind(label, value) == expected[:16]
    kept = Keyring(OTHER)
    kept.keep_blind_key(KEY)  # a dropped version's blind key: the same keys as before
    assert kept.blind(label, value) == expected[:16]


def test_blind_is_stable_under_rotation() -> None:
    ring = Keyring(OTHER, version=2)
    ring.add_version(KEY, 1)
    assert ring.blind_version == 1
    assert ring.blind(b"account", b"alice") == Keyring(KEY).blind(b"account", b"alice")


@given(key=st.binary(max_size=64), plaintext=st.binary(max_size=2048))
def test_unseal_inverts_seal(key: bytes, plaintext: bytes) -> None:
    assert RING.unseal(key, RING.seal(key, plaintext)) == plaintext


@given(key=st.binary(max_size=64), data=st.binary(max_size=256))
def test_random_bytes_raise_only_seal_error(key: bytes, data: bytes) -> None:
    with pytest.raises(SealError):
        RING.unseal(key, data)


def test_data_key_file_created_once(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "data.key"
    key = load_or_create_data_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == key.hex() + "\n"
    assert load_or_create_data_key(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["data.key"]


def test_data_key_file_raw_bytes(tmp_path: Path) -> None:
    path = tmp_path / "raw.key"
    raw = os.urandom(48)
    path.write_bytes(raw)
    assert load_or_create_data_key(path) == raw
    assert parse_data_key(str(path)) == raw


def test_parse_data_key(tmp_path: Path) -> None:
    assert parse_data_key(KEY.hex()) == KEY
    assert parse_data_key(" " + KEY.hex().upper() + "\n") == KEY
    path = tmp_path / "k"
    path.write_text(OTHER.hex() + "\n")
    assert parse_data_key(str(path)) == OTHER
    for bad in ["abc", KEY.hex()[:-2], str(tmp_path / "missing")]:
        with pytest.raises(BadDataKey):
            parse_data_key(bad)
    (tmp_path / "short").write_bytes(b"x" * 10)
    with pytest.raises(BadDataKey):
        parse_data_key(str(tmp_path / "short"))


def test_forked_child_does_not_reuse_buffered_nonces() -> None:
    RING.seal(b"k", b"prime the buffer")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report the nonce of its next seal
        os.write(write_end, RING.seal(b"k", b"v")[2:14])
        os._exit(0)
    os.close(write_end)
    child_nonce = os.read(read_end, 12)
    os.close(read_end)
    os.waitpid(pid, 0)
    assert len(child_nonce) == 12
    assert RING.seal(b"k", b"v")[2:14] != child_nonce


def test_a_damaged_hex_key_file_is_refused_not_read_as_raw_bytes(tmp_path: Path) -> None:
    key = bytes(range(32))
    path = tmp_path / "data.key"
    path.write_bytes(b"\xef\xbb\xbf" + key.hex().encode() + b"\r\n")  # saved by an editor with a BOM
    assert load_or_create_data_key(path) == key
    path.write_text(key.hex()[:-1] + "\n")  # a digit lost in an edit
    with pytest.raises(BadDataKey, match="63 hex digits"):
        load_or_create_data_key(path)
    raw = secrets.token_bytes(32) + b"\x00"  # raw binary keys still load as they are
    path.write_bytes(raw)
    assert load_or_create_data_key(path) == raw


def test_a_data_key_file_readable_by_others_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "data.key"
    path.write_text(bytes(range(32)).hex() + "\n")
    path.chmod(0o644)
    with caplog.at_level("WARNING", logger="store.crypto"):
        load_or_create_data_key(path)
    assert "readable by others" in caplog.text and bytes(range(32)).hex() not in caplog.text
