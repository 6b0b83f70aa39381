"""Tiny multiformats codecs: base58btc, unsigned varints and identity multihashes.

- base58btc: the Bitcoin alphabet, leading zero bytes as leading ``1`` characters
  (draft-msporny-base58 §3; libp2p peer-ids spec, "String representation").
- unsigned varint: multiformats/unsigned-varint (LEB128, at most 9 bytes, minimal encoding).
- multihash: ``<varint code><varint length><digest>`` (multiformats/multihash); only the
  ``identity`` (0x00) and ``sha2-256`` (0x12) codes are named here.
"""

from __future__ import annotations

from node.errors import DecodeError

__all__ = [
    "BASE58_ALPHABET",
    "IDENTITY",
    "SHA2_256",
    "b58decode",
    "b58encode",
    "decode_multihash",
    "decode_varint",
    "encode_multihash",
    "encode_varint",
]

BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(BASE58_ALPHABET)}

IDENTITY = 0x00
SHA2_256 = 0x12

_MAX_VARINT_BYTES = 9  # unsigned-varint spec: at most 63 bits of payload


def b58encode(data: bytes) -> str:
    """Encode ``data`` in base58btc."""
    zeros = len(data) - len(data.lstrip(b"\0"))
    number = int.from_bytes(data, "big")
    digits: list[str] = []
    while number:
        number, rem = divmod(number, 58)
        digits.append(BASE58_ALPHABET[rem])
    return "1" * zeros + "".join(reversed(digits))


def b58decode(text: str) -> bytes:
    """Decode base58btc text.

    Raises:
        DecodeError: a character outside the base58btc alphabet.
    """
    number = 0
    for char in text:
        digit = _B58_INDEX.get(char)
        if digit is None:
            raise DecodeError(f"invalid base58btc character {char!r}")
        number = number * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def encode_varint(value: int) -> bytes:
    """Encode a non-negative integer below 2**63 as an unsigned varint."""
    if not 0 <= value < 1 << 63:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes, offset: int = 0) -> tuple[int, int]:
    """Decode an unsigned varint at ``offset``; return ``(value, next_offset)``.

    Raises:
        DecodeError: truncated, longer than 9 bytes, or not minimally encoded.
    """
    value = 0
    for i in range(_MAX_VARINT_BYTES):
        if offset + i >= len(data):
            raise DecodeError("truncated varint")
        byte = data[offset + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if byte == 0 and i > 0:
                raise DecodeError("varint is not minimally encoded")
            return value, offset + i + 1
    raise DecodeError("varint longer than 9 bytes")


def encode_multihash(code: int, digest: bytes) -> bytes:
    """Return the multihash ``<code><len(digest)><digest>``."""
    return encode_varint(code) + encode_varint(len(digest)) + digest


def decode_multihash(data: bytes) -> tuple[int, bytes]:
    """Split a multihash into ``(code, digest)``.

    Raises:
        DecodeError: bad varints or a length that does not match the data.
    """
    code, offset = decode_varint(data)
    length, offset = decode_varint(data, offset)
    digest = data[offset:]
    if len(digest) != length:
        raise DecodeError(f"multihash length {length} does not match its {len(digest)} digest bytes")
    return code, digest
