"""STUN codec (RFC 5389 / RFC 5769 vectors, Hypothesis) and the sans-I/O client transaction."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nat.stun import (
    StunClass,
    StunDecodeError,
    StunMessage,
    binding_request,
    binding_response,
    decode_message,
    encode_message,
    is_stun,
)
from nat.stun_client import StunConfig, StunTimeout, StunTransaction

PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"
TID = bytes.fromhex("b7e7a701bc34d686fa87dfae")

# RFC 5769 §2.1 sample request (SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME, MESSAGE-INTEGRITY, FINGERPRINT)
REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74"
    "002400046e0001ff80290008932ff9b151263b36000600096576746a3a68367659202020"
    "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf"
)
# §2.2 IPv4 response, §2.3 IPv6 response
RESPONSE_V4 = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220"
    "002000080001a147e112a643000800142b91f599fd9e90c38c7489f92af9ba53f06be7d780280004c07d4c96"
)
RESPONSE_V6 = bytes.fromhex(
    "010100482112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220"
    "002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9"
    "00080014a382954e4be67bf11784c97c8292c275bfe3ed4180280004c8fb0b4c"
)


def test_rfc5769_request() -> None:
    msg = decode_message(REQUEST, integrity_key=PASSWORD)
    assert msg.message_class == StunClass.REQUEST and msg.method == 1
    assert msg.transaction_id == TID
    assert msg.software == "STUN test client"
    assert msg.username == b"evtj:h6vY"
    assert msg.integrity and msg.fingerprint
    assert dict(msg.unknown) == {0x0024: bytes.fromhex("6e0001ff"), 0x8029: bytes.fromhex("932ff9b151263b36")}
    assert msg.unknown_required() == (0x0024,)


@pytest.mark.parametrize(
    ("data", "mapped"),
    [(RESPONSE_V4, ("192.0.2.1", 32853)), (RESPONSE_V6, ("2001:db8:1234:5678:11:2233:4455:6677", 32853))],
)
def test_rfc5769_responses_decode_and_reencode_byte_exact(data: bytes, mapped: tuple[str, int]) -> None:
    msg = decode_message(data, integrity_key=PASSWORD)
    assert msg.message_class == StunClass.SUCCESS
    assert msg.xor_mapped_address == mapped
    assert msg.software == "test vector"
    # the RFC pads with spaces; our default padding is zeros, which the checks do not depend on
    assert encode_message(dataclasses.replace(msg, padding=b" "), integrity_key=PASSWORD) == data


def test_wrong_integrity_key_and_broken_fingerprint() -> None:
    with pytest.raises(StunDecodeError, match="MESSAGE-INTEGRITY"):
        decode_message(RESPONSE_V4, integrity_key=b"wrong")
    broken = RESPONSE_V4[:-1] + bytes([RESPONSE_V4[-1] ^ 1])
    with pytest.raises(StunDecodeError, match="FINGERPRINT"):
        decode_message(broken)


def test_fingerprint_is_crc32_xor_stun() -> None:
    import zlib

    data = encode_message(binding_request(TID))
    assert data[-8:-4] == bytes.fromhex("80280004")
    assert int.from_bytes(data[-4:], "big") == zlib.crc32(data[:-8]) ^ 0x5354554E
    assert is_stun(data) and not is_stun(b"\x16\xfe\xfd" + bytes(30))


def test_response_round_trip() -> None:
    req = decode_message(encode_message(binding_request(TID, software="x")))
    resp = binding_response(req, ("10.0.0.1", 4242), software="timnode")
    assert decode_message(encode_message(resp)) == resp


addresses = st.one_of(
    st.tuples(st.ip_addresses(v=4).map(str), st.integers(0, 65535)),
    st.tuples(st.ip_addresses(v=6).map(str), st.integers(0, 65535)),
)


@given(
    tid=st.binary(min_size=12, max_size=12),
    cls=st.sampled_from(list(StunClass)),
    method=st.integers(0, 0xFFF),
    xor=st.none() | addresses,
    mapped=st.none() | addresses,
    software=st.none() | st.text(max_size=40),
    username=st.none() | st.binary(max_size=40),
    error=st.none() | st.tuples(st.integers(300, 699), st.text(max_size=20)),
    fingerprint=st.booleans(),
)
def test_round_trip(
    tid: bytes,
    cls: StunClass,
    method: int,
    xor: tuple[str, int] | None,
    mapped: tuple[str, int] | None,
    software: str | None,
    username: bytes | None,
    error: tuple[int, str] | None,
    fingerprint: bool,
) -> None:
    msg = StunMessage(
        method=method,
        message_class=cls,
        transaction_id=tid,
        xor_mapped_address=xor,
        mapped_address=mapped,
        software=software,
        username=username,
        error_code=error,
        fingerprint=fingerprint,
    )
    assert decode_message(encode_message(msg)) == msg
    key_msg = decode_message(encode_message(msg, integrity_key=b"k"), integrity_key=b"k")
    assert dataclasses.replace(key_msg, integrity=False) == msg


@given(st.binary(max_size=200))
def test_garbage_raises_only_decode_error(data: bytes) -> None:
    try:
        decode_message(data)
    except StunDecodeError:
        pass


@given(st.binary(min_size=0, max_size=120))
def test_garbage_after_a_valid_header_raises_only_decode_error(tail: bytes) -> None:
    body = tail[: len(tail) - len(tail) % 4]
    data = bytes.fromhex("0101") + len(body).to_bytes(2, "big") + bytes.fromhex("2112a442") + TID + body
    try:
        decode_message(data)
    except StunDecodeError:
        pass


# -- transactions (sans-I/O, exact timers) ------------------------------------------------------------


def test_transaction_rfc_retransmission_schedule() -> None:
    tx = StunTransaction(("192.0.2.1", 3478), random.Random(1))
    tx.start(now=100.0)
    sends = [100.0]
    assert len(tx.datagrams_to_send()) == 1
    while (timer := tx.get_timer()) is not None:
        tx.handle_timer(timer)
        if tx.datagrams_to_send():
            sends.append(timer)
    # RFC 5389 §7.2.1: 0, 500, 1500, 3500, 7500, 15500, 31500 ms; failure at 39500 ms
    assert [round(s - 100.0, 3) for s in sends] == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert isinstance(tx.error, StunTimeout)
    assert tx.done and tx.get_timer() is None


def test_transaction_early_timer_does_nothing_and_response_finishes() -> None:
    tx = StunTransaction(("192.0.2.1", 3478), random.Random(2), StunConfig(rto=0.25, rc=3, rm=4))
    tx.start(0.0)
    tx.datagrams_to_send()
    assert tx.get_timer() == 0.25
    tx.handle_timer(0.2)
    assert tx.datagrams_to_send() == [] and tx.get_timer() == 0.25
    tx.handle_timer(0.25)
    assert len(tx.datagrams_to_send()) == 1 and tx.get_timer() == 0.75
    req = decode_message(tx.request)
    assert not tx.receive_datagram(b"junk", ("192.0.2.1", 3478), 0.3)
    other = encode_message(binding_response(dataclasses.replace(req, transaction_id=bytes(12)), ("1.2.3.4", 5)))
    assert not tx.receive_datagram(other, ("192.0.2.1", 3478), 0.3)
    answer = encode_message(binding_response(req, ("203.0.113.7", 40000)))
    assert tx.receive_datagram(answer, ("192.0.2.1", 3478), 0.4)
    assert tx.result == ("203.0.113.7", 40000) and tx.get_timer() is None
    assert not tx.receive_datagram(answer, ("192.0.2.1", 3478), 0.5)


def test_transaction_error_response() -> None:
    tx = StunTransaction(("192.0.2.1", 3478), random.Random(3))
    tx.start(0.0)
    req = decode_message(tx.request)
    err = StunMessage(message_class=StunClass.ERROR, transaction_id=req.transaction_id, error_code=(420, "nope"))
    assert tx.receive_datagram(encode_message(err), ("192.0.2.1", 3478), 0.1)
    assert isinstance(tx.error, ValueError) and "420" in str(tx.error)


def test_rfc4787_expectation_table() -> None:
    from testnet.real import expected_transport

    assert expected_transport("public", "symmetric") == "ws"
    assert expected_transport("port-restricted", "port-restricted") == "rtc"
    assert expected_transport("full-cone", "symmetric") == "rtc"
    assert expected_transport("address-restricted", "symmetric") == "rtc"
    assert expected_transport("symmetric", "port-restricted") == "relay"
    assert expected_transport("symmetric", "symmetric") == "relay"
