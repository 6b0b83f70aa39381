"""The encrypted link after the handshake: records inside Noise transport messages.

Each link frame on the wire (one WebSocket message, one datagram of another transport) is
one Noise transport message (Noise rev. 34 §5.1 EncryptWithAd with empty ad), at most
``max_frame_size`` <= 65535 bytes (§3). Its plaintext is a *record*::

    0x00 WHOLE  <message>                      one complete message
    0x01 BATCH  (<uvarint len><message>)+      several small messages coalesced
    0x02 PART   <bytes>                        first/middle part of a large message
    0x03 LAST   <bytes>                        final part; the message is complete

Messages are opaque here (the link layer puts serialized ``LinkFrame``s in them). Nonces are
implicit counters (§5.1), so a replayed, reordered, dropped or tampered frame fails to
authenticate: ``open()`` raises ``DecryptError`` and the channel is broken for good (the link
must close). Like a codec, ``SecureChannel`` raises on bad input instead of queueing events;
every exception it raises on remote input is a ``RemoteProtocolError``.

``datagram`` (set by the handshake) seals *droppable* messages for an unordered transport
channel under keys derived from the same session, with explicit nonces and a replay window,
so loss and reordering there never break this channel (``node/droppable.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from node.droppable import DatagramChannel
from node.errors import DecodeError, FrameTooLarge, LinkClosed, LocalProtocolError, RemoteProtocolError
from node.multiformats import decode_varint, encode_varint
from node.noise import MAX_MESSAGE, TAGLEN, CipherState

__all__ = ["ChannelConfig", "SecureChannel", "WHOLE", "BATCH", "PART", "LAST"]

WHOLE, BATCH, PART, LAST = 0, 1, 2, 3


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelConfig:
    """Limits of a secure channel.

    Attributes:
        max_frame_size: largest Noise transport message sent or accepted (<= 65535).
        max_message_size: largest message, after reassembly of parts.
    """

    max_frame_size: int = MAX_MESSAGE
    max_message_size: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        if not TAGLEN + 64 <= self.max_frame_size <= MAX_MESSAGE:
            raise ValueError(f"max_frame_size must be in {TAGLEN + 64}..{MAX_MESSAGE}")


class SecureChannel:
    """Seals outgoing messages into frames and opens incoming frames into messages."""

    def __init__(
        self,
        send: CipherState,
        receive: CipherState,
        config: ChannelConfig | None = None,
        datagram: DatagramChannel | None = None,
    ) -> None:
        self.config = config or ChannelConfig()
        #: the same session's unordered-channel ciphers (explicit nonces, ``node/droppable.py``)
        self.datagram = datagram
        self._send = send
        self._receive = receive
        self._partial: bytearray | None = None
        self._broken: str | None = None
        self.frames_sent = 0
        self.frames_received = 0

    @property
    def max_record(self) -> int:
        """Largest record plaintext: the frame minus the AEAD tag."""
        return self.config.max_frame_size - TAGLEN

    def seal(self, messages: Iterable[bytes], *, coalesce: bool = True) -> list[bytes]:
        """Encrypt ``messages`` in order into frames, batching small ones when ``coalesce``.

        Raises:
            LocalProtocolError: a message over ``max_message_size``, or the channel is broken.
        """
        if self._broken is not None:
            raise LocalProtocolError(f"secure channel is broken: {self._broken}")
        records: list[bytes] = []
        batch: list[bytes] = []
        batch_size = 1
        room = self.max_record
        for message in messages:
            if len(message) > self.config.max_message_size:
                raise LocalProtocolError(f"message of {len(message)} bytes over max_message_size")
            entry = encode_varint(len(message)) + message
            if coalesce and batch_size + len(entry) <= room:
                batch.append(message)
                batch_size += len(entry)
                continue
            records += self._flush(batch)
            batch, batch_size = [], 1
            if coalesce and 1 + len(entry) <= room:
                batch, batch_size = [message], 1 + len(entry)
            else:
                records += self._split(message)
        records += self._flush(batch)
        frames = [self._send.encrypt_with_ad(b"", record) for record in records]
        self.frames_sent += len(frames)
        return frames

    def _flush(self, batch: list[bytes]) -> list[bytes]:
        if not batch:
            return []
        if len(batch) == 1:
            return [bytes([WHOLE]) + batch[0]]
        return [bytes([BATCH]) + b"".join(encode_varint(len(m)) + m for m in batch)]

    def _split(self, message: bytes) -> list[bytes]:
        step = self.max_record - 1
        if len(message) <= step:
            return [bytes([WHOLE]) + message]
        chunks = [message[i : i + step] for i in range(0, len(message), step)]
        return [bytes([PART]) + c for c in chunks[:-1]] + [bytes([LAST]) + chunks[-1]]

    def open(self, frame: bytes) -> list[bytes]:
        """Decrypt one frame; return the messages it completes (possibly none).

        Raises:
            DecryptError: authentication failed (tampered, replayed, reordered, wrong key).
            FrameTooLarge: the frame or a reassembled message is over its limit.
            DecodeError: a malformed record.
            LinkClosed: the channel broke on an earlier frame.
        """
        if self._broken is not None:
            raise LinkClosed(f"secure channel is broken: {self._broken}")
        try:
            return self._open(frame)
        except RemoteProtocolError as exc:
            self._broken = str(exc)
            raise

    def _open(self, frame: bytes) -> list[bytes]:
        if len(frame) > self.config.max_frame_size:
            raise FrameTooLarge(f"frame of {len(frame)} bytes", size=len(frame), limit=self.config.max_frame_size)
        record = self._receive.decrypt_with_ad(b"", frame)
        self.frames_received += 1
        if not record:
            raise DecodeError("empty record")
        kind, body = record[0], record[1:]
        if kind in (PART, LAST):
            return self._reassemble(kind, body)
        if self._partial is not None:
            raise DecodeError("a whole record inside a partial message")
        if kind == WHOLE:
            return [body]
        if kind == BATCH:
            return _parse_batch(body)
        raise DecodeError(f"unknown record kind {kind}")

    def _reassemble(self, kind: int, body: bytes) -> list[bytes]:
        partial = self._partial if self._partial is not None else bytearray()
        partial += body
        if len(partial) > self.config.max_message_size:
            raise FrameTooLarge(
                "reassembled message over max_message_size",
                size=len(partial),
                limit=self.config.max_message_size,
            )
        if kind == PART:
            self._partial = partial
            return []
        self._partial = None
        return [bytes(partial)]


def _parse_batch(body: bytes) -> list[bytes]:
    messages: list[bytes] = []
    offset = 0
    while offset < len(body):
        length, offset = decode_varint(body, offset)
        if offset + length > len(body):
            raise DecodeError("truncated message in batch")
        messages.append(body[offset : offset + length])
        offset += length
    if not messages:
        raise DecodeError("empty batch")
    return messages
