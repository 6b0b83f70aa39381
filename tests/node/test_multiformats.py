"""base58btc, varints and multihashes (multiformats specs; draft-msporny-base58)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.errors import DecodeError
from node.multiformats import (
    b58decode,
    b58encode,
    decode_multihash,
    decode_varint,
    encode_multihash,
    encode_varint,
)


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"", ""),
        (b"\0", "1"),
        (b"\0\0\x01", "112"),
        (b"Hello World!", "2NEpo7TZRRrLZSi2U"),  # draft-msporny-base58 §5 example
        (
            b"The quick brown fox jumps over the lazy dog.",
            "USm3fpXnKG5EUBx2ndxBDMPVciP5hGey2Jh4NDv6gmeo1LkMeiKrLJUUBk6Z",
        ),
        (bytes.fromhex("0000287fb4cd"), "11233QC4"),
    ],
)
def test_base58_known(raw: bytes, text: str) -> None:
    assert b58encode(raw) == text
    assert b58decode(text) == raw


@given(st.binary(max_size=80))
def test_base58_round_trip(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data


@given(st.text(max_size=60))
def test_base58_decode_only_decode_error(text: str) -> None:
    try:
        b58decode(text)
    except DecodeError:
        pass


@pytest.mark.parametrize("bad", ["0", "O", "I", "l", "12D3+"])
def test_base58_rejects_outside_alphabet(bad: str) -> None:
    with pytest.raises(DecodeError):
        b58decode(bad)


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_varint_round_trip(n: int) -> None:
    data = encode_varint(n)
    assert decode_varint(data) == (n, len(data))


def test_varint_errors() -> None:
    assert encode_varint(300) == b"\xac\x02"
    with pytest.raises(DecodeError):
        decode_varint(b"\x80")
    with pytest.raises(DecodeError):
        decode_varint(b"\x80\x00")  # not minimal
    with pytest.raises(DecodeError):
        decode_varint(b"\xff" * 10)
    with pytest.raises(ValueError):
        encode_varint(-1)


@given(st.binary(max_size=40))
def test_multihash_round_trip_and_garbage(data: bytes) -> None:
    assert decode_multihash(encode_multihash(0x12, data)) == (0x12, data)
    try:
        decode_multihash(data)
    except DecodeError:
        pass
