"""Time-ordered 64-bit message ids (Snowflake layout).

    | 41 bits: ms since 2025-01-01 UTC | 10 bits: node | 12 bits: sequence |

Ids from one node strictly increase, even if the wall clock steps back (the generator
keeps the last timestamp and borrows from the future until the clock catches up).
Sans-I/O: the caller passes ``now_ms``.
"""

from __future__ import annotations

__all__ = ["EPOCH_MS", "MessageIdGenerator", "id_minus_ms", "id_timestamp_ms"]

EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
_SEQ_BITS = 12
_NODE_BITS = 10
_SEQ_MASK = (1 << _SEQ_BITS) - 1


def id_minus_ms(message_id: int, ms: int) -> int:
    """The smallest id that is at most ``ms`` milliseconds older than ``message_id``."""
    return max(0, message_id - (ms << (_SEQ_BITS + _NODE_BITS)))


def id_timestamp_ms(message_id: int) -> int:
    """The Unix time (ms) encoded in an id."""
    return (message_id >> (_SEQ_BITS + _NODE_BITS)) + EPOCH_MS


class MessageIdGenerator:
    """Strictly increasing ids for one node."""

    def __init__(self, node_bits: int) -> None:
        if not 0 <= node_bits < (1 << _NODE_BITS):
            raise ValueError("node_bits out of range")
        self._node = node_bits
        self._last_ms = 0
        self._seq = 0

    def next_id(self, now_ms: int) -> int:
        ms = max(now_ms - EPOCH_MS, self._last_ms)
        if ms == self._last_ms:
            self._seq = (self._seq + 1) & _SEQ_MASK
            if self._seq == 0:
                ms += 1  # 4096 ids in this ms: borrow the next one
        else:
            self._seq = 0
        self._last_ms = ms
        return (ms << (_SEQ_BITS + _NODE_BITS)) | (self._node << _SEQ_BITS) | self._seq
