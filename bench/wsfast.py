"""Data frames of an open WebSocket, framed and parsed without websockets' generators.

The load generator shares two cores with the server it measures, so the work it does per
message inflates what it reports: at paced rates websockets' sans-I/O parser (a generator
per frame, a StreamReader) and ``send_binary`` (a ``Frame`` object and a 4-byte
``secrets`` read per frame) were a fifth of the generator's CPU. Once the handshake is
done, :class:`bench.wsclient.WsClient` frames and parses the common case here:

* ``client_frame``: one final binary frame (the header of ``im.wsframe``, which builds the
  node's frames, with the mask bit), masked as RFC 6455 section 5.3 requires, with a
  masking key from a pool of ``secrets`` bytes (one read per 1,024 frames, still
  unpredictable) and websockets' C ``apply_mask``.
* ``FrameSplitter``: complete, final, unmasked text or binary frames without extension
  bits, the frames the measured servers send while the connection is open (section 5.2),
  and pings (keepalive, every 20 s on a node), whose payloads it keeps for the caller to
  answer with a pong (section 5.5.2). Anything else (a close, a fragment) stops it; the
  caller hands the bytes from that frame on to the websockets core, which then parses the
  rest of the connection (close handshake, errors).
"""

from __future__ import annotations

import secrets

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - pure-Python websockets build
    from websockets.utils import apply_mask

from im.wsframe import header

__all__ = ["PONG", "FrameSplitter", "client_frame"]

_POOL_BYTES = 4096
_FIN = 0x80
_FIN_PING = 0x89
PONG = 0xA
_MASKED = 0x80


class _MaskKeys:
    """4-byte masking keys sliced from a buffer of ``secrets.token_bytes``."""

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def next(self) -> bytes:
        if self._at >= len(self._pool):
            self._pool, self._at = secrets.token_bytes(_POOL_BYTES), 0
        key = self._pool[self._at : self._at + 4]
        self._at += 4
        return key


_keys = _MaskKeys()


def client_frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """One final, masked frame carrying ``payload`` (RFC 6455 section 5.2), binary unless
    ``opcode`` says otherwise (``PONG``)."""
    key = _keys.next()
    return header(_FIN | opcode, len(payload), _MASKED) + key + apply_mask(payload, key)


class FrameSplitter:
    """Splits a server's byte stream into data frame payloads while they are simple."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.pings: list[bytes] = []  # payloads of the pings received, for the caller to answer

    def feed(self, data: bytes) -> tuple[list[bytes], bytes | None]:
        """The payloads of the complete data frames now buffered, and None; or, at the first
        frame that is neither a final unmasked text/binary frame nor a ping, the payloads
        before it and every byte from it on (the splitter must not be fed again)."""
        buf = self._buffer
        buf += data
        payloads: list[bytes] = []
        pos, end = 0, len(buf)
        while end - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            if first not in (0x81, 0x82, _FIN_PING) or second & _MASKED or (first == _FIN_PING and second > 125):
                rest = bytes(buf[pos:])
                buf.clear()
                return payloads, rest
            size, head = second, 2
            if size == 126:
                if end - pos < 4:
                    break
                size, head = (buf[pos + 2] << 8) | buf[pos + 3], 4
            elif size == 127:
                if end - pos < 10:
                    break
                size, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if end - pos < head + size:
                break
            start = pos + head
            pos = start + size
            (self.pings if first == _FIN_PING else payloads).append(bytes(buf[start:pos]))
        del buf[:pos]
        return payloads, None
