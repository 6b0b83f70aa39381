"""Frames between the event loop and the SQLite writer process (``store.sqlite_writer``).

A frame is a 4-byte little-endian length and a ``marshal`` payload: both ends are the same
interpreter, and marshal is the fastest codec the standard library has for tuples of bytes.
Batches travel as ``(seal, ops)``: ``seal`` asks the writer to seal the values (see
``SealedStore``), ``ops`` are tuples ``(kind, key, value)`` (kind 0 Put, 1 Insert, 2 Delete); outcomes
as ``None`` (applied), ``(1, key)`` (KeyExists) or ``(2, reason)`` (StoreUnavailable).
"""

from __future__ import annotations

import marshal
import struct
from collections.abc import Iterator, Sequence
from typing import Any

from store.api import Insert, Op, Put
from store.errors import KeyExists, StoreUnavailable
from store.sqlite_commit import Outcome, Wire, decode_ops

__all__ = ["FrameReader", "Wire", "encode_frame", "encode_ops", "decode_ops", "encode_outcome", "decode_outcome"]

_LEN = struct.Struct("<I")
MAX_FRAME = 1 << 30

def encode_frame(message: Any) -> bytes:
    """One frame: length prefix + marshal payload."""
    payload = marshal.dumps(message)
    return _LEN.pack(len(payload)) + payload


class FrameReader:
    """Reassembles frames from a byte stream."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[Any]:
        """Take ``data``; yield every frame now complete."""
        buffer = self._buffer
        buffer += data
        offset = 0
        while len(buffer) - offset >= 4:
            (size,) = _LEN.unpack_from(buffer, offset)
            if size > MAX_FRAME:
                raise ValueError(f"sqlite writer frame of {size} bytes")
            end = offset + 4 + size
            if len(buffer) < end:
                break
            yield marshal.loads(bytes(buffer[offset + 4 : end]))
            offset = end
        del buffer[:offset]


def encode_ops(ops: Sequence[Op]) -> Wire:
    """A batch as plain tuples for marshal."""
    return tuple(
        (0, op.key, op.value) if type(op) is Put else (1, op.key, op.value) if type(op) is Insert else (2, op.key, b"")
        for op in ops
    )


def encode_outcome(outcome: Outcome) -> tuple[int, Any] | None:
    """An outcome of ``commit_group`` as marshal-able data."""
    if outcome is None:
        return None
    if isinstance(outcome, KeyExists):
        return (1, outcome.key)
    return (2, str(outcome))


def decode_outcome(wire: tuple[int, Any] | None) -> Outcome:
    """The outcome ``encode_outcome`` made."""
    if wire is None:
        return None
    if wire[0] == 1:
        return KeyExists(bytes(wire[1]))
    return StoreUnavailable(str(wire[1]))
