"""Noise_XX_25519_ChaChaPoly_SHA256 against the published test vectors (Noise rev. 34 §5, §7.5)."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from node.errors import DecodeError, DecryptError, LocalProtocolError
from node.noise import TAGLEN, CipherState, HandshakeState, KeyPair

VECTORS = json.loads((pathlib.Path(__file__).parent / "vectors" / "noise_xx_25519_chachapoly_sha256.json").read_text())[
    "vectors"
]
HANDSHAKE_MESSAGES = 3


def _states(v: dict[str, Any]) -> tuple[HandshakeState, HandshakeState]:
    init = HandshakeState(
        initiator=True,
        prologue=bytes.fromhex(v["init_prologue"]),
        static=KeyPair.from_private_bytes(bytes.fromhex(v["init_static"])),
        ephemeral=KeyPair.from_private_bytes(bytes.fromhex(v["init_ephemeral"])),
    )
    resp = HandshakeState(
        initiator=False,
        prologue=bytes.fromhex(v["resp_prologue"]),
        static=KeyPair.from_private_bytes(bytes.fromhex(v["resp_static"])),
        ephemeral=KeyPair.from_private_bytes(bytes.fromhex(v["resp_ephemeral"])),
    )
    return init, resp


def test_vectors_cover_both_sources() -> None:
    assert {v["source"] for v in VECTORS} == {"cacophony", "snow"}
    assert all(v["protocol_name"] == "Noise_XX_25519_ChaChaPoly_SHA256" for v in VECTORS)


@pytest.mark.parametrize("v", VECTORS, ids=[v["source"] for v in VECTORS])
def test_vector(v: dict[str, Any]) -> None:
    init, resp = _states(v)
    for i, m in enumerate(v["messages"][:HANDSHAKE_MESSAGES]):
        sender, receiver = (init, resp) if i % 2 == 0 else (resp, init)
        payload = bytes.fromhex(m["payload"])
        written = sender.write_message(payload)
        assert written.hex() == m["ciphertext"], f"handshake message {i}"
        assert receiver.read_message(written) == payload
    assert init.complete and resp.complete
    assert init.handshake_hash == resp.handshake_hash
    if "handshake_hash" in v:
        assert init.handshake_hash.hex() == v["handshake_hash"]
    assert init.rs == KeyPair.from_private_bytes(bytes.fromhex(v["resp_static"])).public
    assert resp.rs == KeyPair.from_private_bytes(bytes.fromhex(v["init_static"])).public
    (i_send, i_recv), (r_send, r_recv) = init.split(), resp.split()
    for i, m in enumerate(v["messages"][HANDSHAKE_MESSAGES:], start=HANDSHAKE_MESSAGES):
        send, recv = (i_send, r_recv) if i % 2 == 0 else (r_send, i_recv)
        payload = bytes.fromhex(m["payload"])
        written = send.encrypt_with_ad(b"", payload)
        assert written.hex() == m["ciphertext"], f"transport message {i}"
        assert recv.decrypt_with_ad(b"", written) == payload


def _pair(prologue_a: bytes = b"p", prologue_b: bytes = b"p") -> tuple[HandshakeState, HandshakeState]:
    a = HandshakeState(initiator=True, prologue=prologue_a, static=KeyPair.generate())
    b = HandshakeState(initiator=False, prologue=prologue_b, static=KeyPair.generate())
    return a, b


def test_prologue_mismatch_fails_message_2() -> None:
    a, b = _pair(b"net-1", b"net-2")
    b.read_message(a.write_message())
    with pytest.raises(DecryptError):
        a.read_message(b.write_message())


def test_tampered_truncated_and_replayed() -> None:
    a, b = _pair()
    m1 = a.write_message()
    with pytest.raises(DecodeError):
        b.read_message(m1[:31])
    b.read_message(m1)
    m2 = bytearray(b.write_message(b"x"))
    m2[40] ^= 1
    with pytest.raises(DecryptError):
        a.read_message(bytes(m2))
    with pytest.raises(DecodeError):
        b.read_message(m1)  # message 1 replayed where message 3 is due: too short for "s"


def test_out_of_turn_is_local_error() -> None:
    a, b = _pair()
    with pytest.raises(LocalProtocolError):
        b.write_message()
    with pytest.raises(LocalProtocolError):
        a.read_message(b"\0" * 32)
    with pytest.raises(LocalProtocolError):
        a.split()


def test_transport_replay_reorder_and_tamper() -> None:
    a, b = _pair()
    b.read_message(a.write_message())
    a.read_message(b.write_message())
    b.read_message(a.write_message())
    (send, _), (_, recv) = a.split(), b.split()
    c1, c2 = send.encrypt_with_ad(b"", b"one"), send.encrypt_with_ad(b"", b"two")
    with pytest.raises(DecryptError):
        recv.decrypt_with_ad(b"", c2)  # reordered
    with pytest.raises(DecryptError):
        recv.decrypt_with_ad(b"", c1[:-1] + bytes([c1[-1] ^ 1]))
    with pytest.raises(DecryptError):
        recv.decrypt_with_ad(b"", c1[: TAGLEN - 1])
    assert recv.decrypt_with_ad(b"", c1) == b"one"  # failures consumed no nonce
    with pytest.raises(DecryptError):
        recv.decrypt_with_ad(b"", c1)  # replayed
    assert recv.decrypt_with_ad(b"", c2) == b"two"


def test_cipher_state_keyless_and_rekey() -> None:
    assert CipherState().encrypt_with_ad(b"", b"plain") == b"plain"
    x, y = CipherState(bytes(32)), CipherState(bytes(32))
    x.rekey()
    y.rekey()
    assert y.decrypt_with_ad(b"ad", x.encrypt_with_ad(b"ad", b"m")) == b"m"


def test_low_order_public_key_is_decode_error() -> None:
    a, b = _pair()
    a.write_message()
    with pytest.raises(DecodeError):
        b.read_message(bytes(32))  # the all-zero point gives an all-zero shared secret later
        b.write_message()
