"""The write-ahead journal of a SQLite store in ``journal`` writer mode.

Why: with the writer process on the acknowledgement path, a durable send waits for a
round trip to another process and its ``COMMIT``; on a 2-core box at half the node's
maximum rate node, writer and load generator keep ~1.6 cores busy and the paced p99 was
30-80 ms. In journal mode the store's process appends each loop tick's batches to this file with one
``write(2)`` and acknowledges them once it returned (the bytes are in the kernel: they
survive ``kill -9`` of the node, as a SQLite commit under ``synchronous=NORMAL`` does);
the writer process, at a lower priority, commits them to SQLite behind
(``store.sqlite``), and reads see them through ``store.overlay`` meanwhile.

Files: ``PATH-journal.NNNNNNNN`` beside the database, mode 0600, a new one every
``SEGMENT_BYTES``; a segment is deleted once the writer committed all of it. A record is

    magic (1: plain, 2: sealed) | length (u32 LE) | CRC-32 of the body (u32 LE) | body

and its body is ``marshal`` (format 4) of the tick's batches ``((seal, ((kind, key,
value), ...)), ...)`` (``store.sqlite_wire``), sealed when the store seals: a 12-byte
random nonce and the AES-256-GCM-SIV (RFC 8452) ciphertext under the store's sealing key,
AAD ``timnode/store/journal/v1``. Replay (``SqliteStore.open``, whatever the writer mode)
applies every record of every segment in order, Inserts as Puts (each was checked when
acknowledged), so a replay of records already committed ends in the same state; it stops
at a segment's first record that is cut short or fails its CRC (a write torn by a crash).
"""

from __future__ import annotations

import logging
import marshal
import os
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESGCMSIV

from store.crypto import SealingKey
from store.errors import SealError, StoreUnavailable

__all__ = ["Journal", "SEGMENT_BYTES", "segment_paths"]

log = logging.getLogger("store.journal")

SEGMENT_BYTES = 16 << 20
_HEADER = struct.Struct("<BII")
_PLAIN, _SEALED = 1, 2
_AAD = b"timnode/store/journal/v1"
_NONCE = 12
_MARSHAL_VERSION = 4
#: batches as the writer process takes them: ``(seal, ((kind, key, value), ...))``
Batches = tuple[tuple[bool, tuple[tuple[int, bytes, bytes], ...]], ...]


def segment_paths(db_path: str) -> list[tuple[int, Path]]:
    """The journal segments of the database at ``db_path``, by number."""
    base = Path(db_path)
    pattern = re.compile(re.escape(base.name) + r"-journal\.(\d{8})")
    found = []
    if base.parent.is_dir():
        for entry in base.parent.iterdir():
            match = pattern.fullmatch(entry.name)
            if match:
                found.append((int(match[1]), entry))
    return sorted(found)


class Journal:
    """Appends ticks of batches to numbered segment files; replays and deletes them."""

    def __init__(self, db_path: str, sealing: SealingKey | None) -> None:
        self._db_path = db_path
        self._aead: AESGCMSIV | AESGCM | None = None
        if sealing is not None:
            self._aead = AESGCMSIV(sealing.key) if sealing.siv else AESGCM(sealing.key)
        self._fd = -1
        self._segment = 0
        self._size = 0
        self._released = 0  # segments below this number are deleted

    @property
    def segment(self) -> int:
        """The number of the segment appends go to."""
        return self._segment

    def replay(self) -> Iterator[Batches]:
        """Every tick recorded in the existing segments, in order.

        Raises:
            SealError: a sealed record that does not open under this store's key.
        """
        for number, path in segment_paths(self._db_path):
            data = path.read_bytes()
            offset = 0
            while offset < len(data):
                body_end = self._record_end(data, offset)
                if body_end < 0:
                    log.warning("= journal %s: a torn record at byte %d ends the replay of it", path.name, offset)
                    break
                yield self._decode(data[offset], data[offset + _HEADER.size : body_end], number)
                offset = body_end

    def start(self) -> None:
        """Open a new segment after every existing one."""
        existing = segment_paths(self._db_path)
        self._open_segment(existing[-1][0] + 1 if existing else 1)

    def append(self, batches: Batches) -> int:
        """Write one tick; the segment it landed in.

        Raises:
            OSError: the write failed (nothing of it may be assumed written).
        """
        if self._size >= SEGMENT_BYTES:
            self._open_segment(self._segment + 1)
        record = self._encode(batches)
        view = memoryview(record)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError:
            # part of the record may be there: the next ones go to a new segment, so a replay
            # of this one stops at the torn record and goes on with the next segment
            self._open_segment(self._segment + 1)
            raise
        self._size += len(record)
        return self._segment

    def release(self, below: int) -> None:
        """Delete the segments numbered below ``below`` (the writer committed all of them)."""
        if below <= self._released:
            return
        for number, path in segment_paths(self._db_path):
            if number < below and number != self._segment:
                path.unlink(missing_ok=True)
        self._released = below

    def remove_all(self) -> None:
        """Close and delete every segment (all of it is committed)."""
        self.close()
        for _, path in segment_paths(self._db_path):
            path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _open_segment(self, number: int) -> None:
        self.close()
        path = f"{self._db_path}-journal.{number:08d}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._segment, self._size = number, os.fstat(self._fd).st_size

    def _encode(self, batches: Batches) -> bytes:
        body = marshal.dumps(batches, _MARSHAL_VERSION)
        magic = _PLAIN
        if self._aead is not None:
            nonce = os.urandom(_NONCE)
            body = nonce + self._aead.encrypt(nonce, body, _AAD)
            magic = _SEALED
        return _HEADER.pack(magic, len(body), zlib.crc32(body)) + body

    @staticmethod
    def _record_end(data: bytes, offset: int) -> int:
        """Where the record at ``offset`` ends, or -1 if it is torn."""
        if offset + _HEADER.size > len(data):
            return -1
        magic, length, crc = _HEADER.unpack_from(data, offset)
        end: int = offset + _HEADER.size + length
        if magic not in (_PLAIN, _SEALED) or end > len(data) or zlib.crc32(data[offset + _HEADER.size : end]) != crc:
            return -1
        return end

    def _decode(self, magic: int, body: bytes, number: int) -> Batches:
        if magic == _SEALED:
            if self._aead is None:
                raise StoreUnavailable(f"journal segment {number} is sealed and this store has no sealing key")
            try:
                body = self._aead.decrypt(body[:_NONCE], body[_NONCE:], _AAD)
            except InvalidTag as exc:
                raise SealError(
                    f"journal segment {number} was sealed under another key: start the node once with the"
                    " data key it ran with to replay it"
                ) from exc
        decoded: Any = marshal.loads(body)
        return tuple((bool(seal), tuple((int(k), bytes(key), bytes(v)) for k, key, v in ops)) for seal, ops in decoded)
