"""STUN messages (RFC 5389 / RFC 8489 wire format): a pure codec, no sockets, no clock.

Only what timnode needs: Binding requests and responses (§3, §6), XOR-MAPPED-ADDRESS (§15.2),
MAPPED-ADDRESS (§15.1), SOFTWARE (§15.10), ERROR-CODE (§15.6), USERNAME (§15.3),
MESSAGE-INTEGRITY (HMAC-SHA1, §15.4) and FINGERPRINT (CRC-32 xor 0x5354554e, §15.5).
Other attributes are kept verbatim in ``StunMessage.unknown`` (comprehension-required ones,
type < 0x8000, are reported by ``unknown_required()`` so a server can answer 420).

``decode_message(data)`` raises only ``StunDecodeError`` (a ``ValueError``) on bad input,
whatever the bytes; ``encode_message(msg)`` is its inverse. Test vectors: RFC 5769.
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
import struct
import zlib
from dataclasses import dataclass, field

__all__ = [
    "BINDING",
    "MAGIC_COOKIE",
    "Address",
    "StunClass",
    "StunDecodeError",
    "StunMessage",
    "binding_request",
    "binding_response",
    "decode_message",
    "encode_message",
    "is_stun",
]

MAGIC_COOKIE = 0x2112A442
BINDING = 0x001
HEADER = struct.Struct("!HHI12s")
FINGERPRINT_XOR = 0x5354554E

ATTR_MAPPED_ADDRESS = 0x0001
ATTR_USERNAME = 0x0006
ATTR_MESSAGE_INTEGRITY = 0x0008
ATTR_ERROR_CODE = 0x0009
ATTR_XOR_MAPPED_ADDRESS = 0x0020
ATTR_SOFTWARE = 0x8022
ATTR_FINGERPRINT = 0x8028

Address = tuple[str, int]  # (ip text, port)


class StunDecodeError(ValueError):
    """Bytes that are not a valid STUN message (or fail FINGERPRINT / MESSAGE-INTEGRITY)."""


class StunClass(enum.IntEnum):
    """RFC 5389 §6: the two class bits C1 C0."""

    REQUEST = 0b00
    INDICATION = 0b01
    SUCCESS = 0b10
    ERROR = 0b11


@dataclass(frozen=True, slots=True, kw_only=True)
class StunMessage:
    """One STUN message. ``integrity`` is True when MESSAGE-INTEGRITY was present (and verified)."""

    method: int = BINDING
    message_class: StunClass = StunClass.REQUEST
    transaction_id: bytes = b"\x00" * 12
    xor_mapped_address: Address | None = None
    mapped_address: Address | None = None
    username: bytes | None = None
    software: str | None = None
    error_code: tuple[int, str] | None = None
    unknown: tuple[tuple[int, bytes], ...] = ()
    fingerprint: bool = True
    integrity: bool = False
    padding: bytes = field(default=b"\x00", compare=False)

    def unknown_required(self) -> tuple[int, ...]:
        """Comprehension-required attribute types we did not understand (RFC 5389 §7.3.1)."""
        return tuple(t for t, _ in self.unknown if t < 0x8000)


def is_stun(data: bytes) -> bool:
    """Cheap demultiplexing test (RFC 5389 §6 + §8): top two bits zero and the magic cookie."""
    return len(data) >= 20 and data[0] < 0x40 and data[4:8] == b"\x21\x12\xa4\x42"


def binding_request(transaction_id: bytes, *, software: str | None = None) -> StunMessage:
    return StunMessage(transaction_id=transaction_id, software=software)


def binding_response(request: StunMessage, mapped: Address, *, software: str | None = None) -> StunMessage:
    return StunMessage(
        message_class=StunClass.SUCCESS,
        transaction_id=request.transaction_id,
        xor_mapped_address=mapped,
        software=software,
    )


# -- encoding ---------------------------------------------------------------------------------------


def _message_type(method: int, cls: StunClass) -> int:
    # RFC 5389 §6: M11..M7 C1 M6..M4 C0 M3..M0
    return (method & 0x0F) | ((method & 0x70) << 1) | ((method & 0xF80) << 2) | ((cls & 1) << 4) | ((cls & 2) << 7)


def _split_type(value: int) -> tuple[int, StunClass]:
    method = (value & 0x0F) | ((value >> 1) & 0x70) | ((value >> 2) & 0xF80)
    cls = StunClass(((value >> 4) & 1) | ((value >> 7) & 2))
    return method, cls


def _pack_address(addr: Address, xor_with: bytes | None) -> bytes:
    ip = ipaddress.ip_address(addr[0])
    port = addr[1]
    raw = ip.packed
    if xor_with is not None:
        port ^= MAGIC_COOKIE >> 16
        raw = bytes(a ^ b for a, b in zip(raw, xor_with, strict=False))
    family = 1 if ip.version == 4 else 2
    return struct.pack("!BBH", 0, family, port) + raw


def _unpack_address(value: bytes, xor_with: bytes | None) -> Address:
    if len(value) < 4:
        raise StunDecodeError("address attribute too short")
    _, family, port = struct.unpack_from("!BBH", value)
    size = {1: 4, 2: 16}.get(family)
    if size is None or len(value) != 4 + size:
        raise StunDecodeError(f"bad address family {family} or length {len(value)}")
    raw = value[4:]
    if xor_with is not None:
        port ^= MAGIC_COOKIE >> 16
        raw = bytes(a ^ b for a, b in zip(raw, xor_with, strict=False))
    return str(ipaddress.ip_address(raw)), port


def _attr(kind: int, value: bytes, padding: bytes) -> bytes:
    pad = (-len(value)) % 4
    return struct.pack("!HH", kind, len(value)) + value + padding[:1] * pad


def encode_message(msg: StunMessage, *, integrity_key: bytes | None = None) -> bytes:
    """Serialise ``msg``; adds MESSAGE-INTEGRITY when ``integrity_key`` is given, then FINGERPRINT
    when ``msg.fingerprint`` (RFC 5389 §15.4/§15.5: both cover the header with the length adjusted)."""
    xor_key = struct.pack("!I", MAGIC_COOKIE) + msg.transaction_id
    if len(msg.transaction_id) != 12:
        raise ValueError("transaction id must be 12 bytes")
    pad = msg.padding
    body = b""
    if msg.software is not None:
        body += _attr(ATTR_SOFTWARE, msg.software.encode(), pad)
    if msg.username is not None:
        body += _attr(ATTR_USERNAME, msg.username, pad)
    if msg.mapped_address is not None:
        body += _attr(ATTR_MAPPED_ADDRESS, _pack_address(msg.mapped_address, None), pad)
    if msg.xor_mapped_address is not None:
        body += _attr(ATTR_XOR_MAPPED_ADDRESS, _pack_address(msg.xor_mapped_address, xor_key), pad)
    if msg.error_code is not None:
        code, reason = msg.error_code
        body += _attr(ATTR_ERROR_CODE, struct.pack("!HBB", 0, code // 100, code % 100) + reason.encode(), pad)
    for kind, value in msg.unknown:
        body += _attr(kind, value, pad)
    mtype = _message_type(msg.method, msg.message_class)
    if integrity_key is not None:
        head = HEADER.pack(mtype, len(body) + 24, MAGIC_COOKIE, msg.transaction_id)
        mac = hmac.new(integrity_key, head + body, "sha1").digest()
        body += _attr(ATTR_MESSAGE_INTEGRITY, mac, pad)
    if msg.fingerprint:
        head = HEADER.pack(mtype, len(body) + 8, MAGIC_COOKIE, msg.transaction_id)
        crc = zlib.crc32(head + body) ^ FINGERPRINT_XOR
        body += _attr(ATTR_FINGERPRINT, struct.pack("!I", crc), pad)
    return HEADER.pack(mtype, len(body), MAGIC_COOKIE, msg.transaction_id) + body


# -- decoding ---------------------------------------------------------------------------------------


def decode_message(data: bytes, *, integrity_key: bytes | None = None) -> StunMessage:
    """Parse one STUN message; check FINGERPRINT if present and MESSAGE-INTEGRITY if a key is given.

    Raises:
        StunDecodeError: anything malformed, an unknown class bit pattern never happens (2 bits).
    """
    if len(data) < HEADER.size:
        raise StunDecodeError("shorter than a STUN header")
    mtype, length, cookie, tid = HEADER.unpack_from(data)
    if mtype & 0xC000:
        raise StunDecodeError("top bits of the message type are not zero")
    if cookie != MAGIC_COOKIE:
        raise StunDecodeError("no magic cookie (RFC 3489 message?)")
    if length % 4 or HEADER.size + length != len(data):
        raise StunDecodeError(f"length {length} does not match {len(data) - HEADER.size} bytes of attributes")
    method, cls = _split_type(mtype)
    xor_key = data[4:20]
    fields: dict[str, object] = {}
    unknown: list[tuple[int, bytes]] = []
    pos = HEADER.size
    seen_integrity = seen_fingerprint = False
    while pos < len(data):
        if len(data) - pos < 4:
            raise StunDecodeError("truncated attribute header")
        kind, size = struct.unpack_from("!HH", data, pos)
        start, end = pos + 4, pos + 4 + size
        if end > len(data):
            raise StunDecodeError(f"attribute 0x{kind:04x} overruns the message")
        value = data[start:end]
        if seen_fingerprint:
            raise StunDecodeError("attribute after FINGERPRINT")
        if kind == ATTR_FINGERPRINT:
            _check_fingerprint(data, pos, value)
            seen_fingerprint = True
        elif seen_integrity:
            pass  # RFC 5389 §15.4: attributes after MESSAGE-INTEGRITY (but FINGERPRINT) are ignored
        elif kind == ATTR_MESSAGE_INTEGRITY:
            _check_integrity(data, pos, value, integrity_key)
            seen_integrity = True
        else:
            _decode_attribute(kind, value, xor_key, fields, unknown)
        pos = end + (-size) % 4
    if pos != len(data):
        raise StunDecodeError("padding overruns the message")
    return StunMessage(
        method=method,
        message_class=cls,
        transaction_id=tid,
        unknown=tuple(unknown),
        fingerprint=seen_fingerprint,
        integrity=seen_integrity,
        **fields,  # type: ignore[arg-type]
    )


def _decode_attribute(
    kind: int, value: bytes, xor_key: bytes, fields: dict[str, object], unknown: list[tuple[int, bytes]]
) -> None:
    if kind == ATTR_XOR_MAPPED_ADDRESS:
        fields["xor_mapped_address"] = _unpack_address(value, xor_key)
    elif kind == ATTR_MAPPED_ADDRESS:
        fields["mapped_address"] = _unpack_address(value, None)
    elif kind == ATTR_USERNAME:
        fields["username"] = value
    elif kind == ATTR_SOFTWARE:
        fields["software"] = value.decode("utf-8", "replace")
    elif kind == ATTR_ERROR_CODE:
        if len(value) < 4:
            raise StunDecodeError("ERROR-CODE too short")
        fields["error_code"] = ((value[2] & 7) * 100 + value[3], value[4:].decode("utf-8", "replace"))
    elif len(unknown) < 32:  # bounded: a datagram may carry hundreds of tiny attributes
        unknown.append((kind, value))
    else:
        raise StunDecodeError("too many unknown attributes")


def _check_fingerprint(data: bytes, pos: int, value: bytes) -> None:
    if len(value) != 4 or pos + 8 != len(data):
        raise StunDecodeError("FINGERPRINT must be the last attribute, 4 bytes")
    expected = zlib.crc32(data[:pos]) ^ FINGERPRINT_XOR
    if struct.unpack("!I", value)[0] != expected:
        raise StunDecodeError("FINGERPRINT mismatch")


def _check_integrity(data: bytes, pos: int, value: bytes, key: bytes | None) -> None:
    if len(value) != 20:
        raise StunDecodeError("MESSAGE-INTEGRITY must be 20 bytes")
    if key is None:
        return
    head = data[:2] + struct.pack("!H", pos + 24 - HEADER.size) + data[4:pos]
    if not hmac.compare_digest(hmac.new(key, head, "sha1").digest(), value):
        raise StunDecodeError("MESSAGE-INTEGRITY mismatch")
