"""Server-to-client WebSocket data frames, built once per payload (RFC 6455 section 5.2).

A server's frames are not masked (RFC 6455 section 5.1), so the frame of a push is the same
bytes for every recipient: ``Push`` frames its payload once per codec and the gateway's
outboxes write those bytes to each connection's transport, where going through the
connection's sans-I/O protocol would build and serialize a frame object per connection
(``websockets.frames.Frame.serialize``, the largest cost of a paced push). Only what the
node sends: final, unfragmented frames, no extension (the port negotiates no compression).
"""

from __future__ import annotations

import struct

__all__ = ["frame", "header"]

_FIN_BINARY = 0x82  # FIN + opcode 0x2 (binary)
_FIN_TEXT = 0x81  # FIN + opcode 0x1 (text)
_LEN16 = struct.Struct("!BBH")
_LEN64 = struct.Struct("!BBQ")


def frame(payload: bytes, *, text: bool = False) -> bytes:
    """One complete unmasked data frame carrying ``payload`` (UTF-8 already, for text)."""
    return header(_FIN_TEXT if text else _FIN_BINARY, len(payload)) + payload


def header(first: int, size: int, mask_bit: int = 0) -> bytes:
    """A frame's first byte, then its payload length in 7, 16 or 64 bits, with ``mask_bit``
    (0x80: a masking key follows, as in a client's frames) in the second byte."""
    if size < 126:
        return bytes((first, mask_bit | size))
    if size < 1 << 16:
        return _LEN16.pack(first, mask_bit | 126, size)
    return _LEN64.pack(first, mask_bit | 127, size)
