"""Droppable link messages: the drop-oldest queue and the unordered-channel crypto (sans-I/O).

Some one-way messages (live stream data) are worth nothing late. ``Link.send_droppable``
puts them in a :class:`DropQueue` instead of the reliable queue: bounded in messages and
bytes, it drops its OLDEST entries when full, so a slow peer costs lost frames (counted),
never the node's memory, and never delays or displaces the reliable messages.

On a transport with an unordered, partial-reliability channel (``rtc``: the ``data``
WebRTC channel, ``maxRetransmits=0``) droppable messages travel there. The link's Noise
transport ciphers cannot be used for that: their nonces are implicit counters (Noise §5.1),
so one lost or reordered message breaks the channel for good. :class:`DatagramChannel`
seals them instead under keys derived from the same Noise session, with explicit nonces:

* keys: ``k_i2r, k_r2i = HKDF(ck, "timnode/unordered/1", 2)`` (Noise §4.3 HKDF, ``ck`` the
  final chaining key of the XX handshake; ``Split()`` itself uses an empty ``ikm``, so these
  keys are independent of the ordered channel's and known only to the two peers);
* datagram: ``counter (8 bytes, big-endian) || ChaCha20-Poly1305(k, nonce, record, ad)``
  with ``nonce = 4 zero bytes || counter little-endian`` (the Noise layout),
  ``ad = "timnode/dgram/1" || counter``; the sender's counter starts at 0 and only grows, so
  a (key, nonce) pair is never reused;
* record: the ``node.secure`` WHOLE / BATCH record (several small messages per datagram;
  never PART/LAST: a datagram is self-contained);
* replay protection: a sliding window (:class:`ReplayWindow`, 1024 counters, as IPsec's
  RFC 4303 §3.4.3): a counter below the window or already seen is rejected; the window
  moves only after a datagram authenticates, so forged datagrams cannot move it;
* a datagram that fails (short, forged, replayed, too old, malformed) is dropped and counted
  (``rejected``); it never closes the link, since loss and reordering are normal here.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from node.errors import DecodeError, DecryptError, FrameTooLarge, LocalProtocolError, RemoteProtocolError
from node.multiformats import decode_varint, encode_varint
from node.noise import TAGLEN, hkdf

__all__ = [
    "DATAGRAM_LABEL",
    "DatagramChannel",
    "DropQueue",
    "ReplayError",
    "ReplayWindow",
]

T = TypeVar("T")

DATAGRAM_LABEL = b"timnode/unordered/1"
_AD = b"timnode/dgram/1"
HEADER = 8
WHOLE, BATCH = 0, 1
_MAX_COUNTER = 2**64 - 1


class DropQueue(Generic[T]):
    """A FIFO bounded in items and in bytes that drops its OLDEST items when full."""

    __slots__ = ("limit", "max_bytes", "dropped", "_items", "_bytes")

    def __init__(self, limit: int, max_bytes: int = 0) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self.max_bytes = max_bytes  # 0: no byte bound
        self.dropped = 0
        self._items: deque[tuple[T, int]] = deque()
        self._bytes = 0

    def offer(self, item: T, size: int = 0) -> int:
        """Queue ``item`` (``size`` bytes); return how many old items were dropped for it.

        An item larger than ``max_bytes`` on its own is kept alone (the queue never refuses
        the newest item: it is the one worth most).
        """
        dropped = 0
        while self._items and (
            len(self._items) >= self.limit or (self.max_bytes and self._bytes + size > self.max_bytes)
        ):
            _, old = self._items.popleft()
            self._bytes -= old
            dropped += 1
        self._items.append((item, size))
        self._bytes += size
        self.dropped += dropped
        return dropped

    def take_all(self) -> list[T]:
        items = [item for item, _ in self._items]
        self.clear()
        return items

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)


class ReplayError(RemoteProtocolError):
    """A datagram counter already seen, or too old for the replay window."""


class ReplayWindow:
    """Which counters were accepted, over the last ``size`` below the highest (RFC 4303 §3.4.3)."""

    __slots__ = ("size", "highest", "_bits")

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self.highest = -1
        self._bits = 0  # bit i: counter highest - i was accepted

    def check(self, counter: int) -> None:
        """Raise ``ReplayError`` if ``counter`` must be refused (does not record it)."""
        if counter > self.highest:
            return
        offset = self.highest - counter
        if offset >= self.size:
            raise ReplayError(f"datagram {counter} is older than the replay window")
        if self._bits >> offset & 1:
            raise ReplayError(f"datagram {counter} replayed")

    def accept(self, counter: int) -> None:
        """Record ``counter`` (after ``check`` and authentication)."""
        if counter > self.highest:
            shift = counter - self.highest
            self._bits = ((self._bits << shift) | 1) & ((1 << self.size) - 1) if shift < self.size else 1
            self.highest = counter
        else:
            self._bits |= 1 << (self.highest - counter)


class DatagramChannel:
    """Seals and opens self-contained datagrams for the unordered channel (module docstring)."""

    def __init__(self, send_key: bytes, receive_key: bytes, *, max_datagram: int = 16384, window: int = 1024) -> None:
        self._send = ChaCha20Poly1305(send_key)
        self._receive = ChaCha20Poly1305(receive_key)
        self.max_datagram = max_datagram
        self.counter = 0  # next counter to send
        self.window = ReplayWindow(window)
        self.sent = 0
        self.received = 0
        self.rejected = 0

    @classmethod
    def from_chaining_key(cls, ck: bytes, *, initiator: bool, **kwargs: int) -> DatagramChannel:
        """The two ends' channels from the handshake's final chaining key."""
        k_i2r, k_r2i = hkdf(ck, DATAGRAM_LABEL, 2)
        send, receive = (k_i2r, k_r2i) if initiator else (k_r2i, k_i2r)
        return cls(send, receive, **kwargs)

    @property
    def max_message(self) -> int:
        """Largest message that fits one datagram on its own (larger ones go the reliable way)."""
        return self.max_datagram - HEADER - TAGLEN - 1

    def seal(self, messages: Iterable[bytes]) -> list[bytes]:
        """Pack ``messages`` (each <= ``max_message``) into as few datagrams as fit, in order."""
        out: list[bytes] = []
        batch: list[bytes] = []
        size = 1
        room = self.max_datagram - HEADER - TAGLEN
        for message in messages:
            if len(message) > self.max_message:
                raise LocalProtocolError(f"message of {len(message)} bytes over one datagram")
            entry = len(encode_varint(len(message))) + len(message)
            if batch and size + entry > room:
                out.append(self._seal_record(batch))
                batch, size = [], 1
            batch.append(message)
            size += entry
        if batch:
            out.append(self._seal_record(batch))
        return out

    def _seal_record(self, batch: list[bytes]) -> bytes:
        if len(batch) == 1:
            record = bytes([WHOLE]) + batch[0]
        else:
            record = bytes([BATCH]) + b"".join(encode_varint(len(m)) + m for m in batch)
        if self.counter >= _MAX_COUNTER:
            raise LocalProtocolError("datagram counter exhausted")
        counter, self.counter = self.counter, self.counter + 1
        header = struct.pack(">Q", counter)
        self.sent += 1
        return header + self._send.encrypt(_nonce(counter), record, _AD + header)

    def open(self, datagram: bytes) -> list[bytes]:
        """The messages of one datagram.

        Raises (the caller drops the datagram; ``rejected`` counts it):
            FrameTooLarge, DecodeError (short or malformed), DecryptError (forged, wrong key),
            ReplayError (seen, or older than the window).
        """
        try:
            return self._open(datagram)
        except RemoteProtocolError:
            self.rejected += 1
            raise

    def _open(self, datagram: bytes) -> list[bytes]:
        if len(datagram) > self.max_datagram:
            raise FrameTooLarge(f"datagram of {len(datagram)} bytes", size=len(datagram), limit=self.max_datagram)
        if len(datagram) < HEADER + TAGLEN + 1:
            raise DecodeError("datagram too short")
        header = datagram[:HEADER]
        (counter,) = struct.unpack(">Q", header)
        self.window.check(counter)
        try:
            record = self._receive.decrypt(_nonce(counter), datagram[HEADER:], _AD + header)
        except InvalidTag as exc:
            raise DecryptError("datagram failed authentication") from exc
        messages = _parse_record(record)
        self.window.accept(counter)
        self.received += 1
        return messages


def _nonce(counter: int) -> bytes:
    return struct.pack("<4xQ", counter)


def _parse_record(record: bytes) -> list[bytes]:
    if not record:
        raise DecodeError("empty datagram record")
    kind, body = record[0], record[1:]
    if kind == WHOLE:
        return [body]
    if kind != BATCH:
        raise DecodeError(f"datagram record kind {kind}")
    messages: list[bytes] = []
    offset = 0
    while offset < len(body):
        length, offset = decode_varint(body, offset)
        if offset + length > len(body):
            raise DecodeError("truncated message in datagram")
        messages.append(body[offset : offset + length])
        offset += length
    if not messages:
        raise DecodeError("empty datagram batch")
    return messages
