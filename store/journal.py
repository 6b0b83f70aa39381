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
value), ...)), ...)`` (``store.sqlite_wire``), sealed when the store seals: the length and
bytes of the sealing key's header (format and key version, ``store.crypto``), a 12-byte
random nonce and the AES-256-GCM-SIV (RFC 8452) ciphertext under that key version, AAD
``timnode/store/journal/v1`` and the header; a replay opens it with that version's key.
Replay (``SqliteStore.open``, whatever the writer mode)
applies every record of every segment in order, Inserts as Puts (each was checked when
acknowledged), so a replay of records already committed ends in the same state; it stops
at a segment's first record that is cut short or fails its CRC (a write torn by a crash).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import marshal
import os
import re
import struct
import zlib
from collections.abc import Iterator, Sequence
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


def _aead(key: SealingKey) -> AESGCMSIV | AESGCM:
    return AESGCMSIV(key.key) if key.siv else AESGCM(key.key)


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

    def __init__(self, db_path: str, sealing: SealingKey | None, unsealing: Sequence[SealingKey] = ()) -> None:
        """``sealing`` seals new records; records sealed under another key version open with
        that version's key from ``unsealing``."""
        self._db_path = db_path
        self._sealing = sealing
        self._openers = {key.header: _aead(key) for key in (*unsealing, *([sealing] if sealing else []))}
        self._fd = -1
        self._segment = 0
        self._size = 0
        self._released = 0  # segments below this number are deleted
        self._lock_fd = -1

    @property
    def segment(self) -> int:
        """The number of the segment appends go to."""
        return self._segment

    def replay(self) -> Iterator[Batches]:
        """Every tick recorded in the existing segments, in order.

        Raises:
            SealError: a sealed record that does not open under this store's key.
        """
        segments = segment_paths(self._db_path)
        for number, path in segments:
            data = path.read_bytes()
            offset = 0
            while offset < len(data):
                body_end = self._record_end(data, offset)
                if body_end < 0:
                    last = number == segments[-1][0]
                    log.log(
                        logging.WARNING if last else logging.ERROR,
                        "= journal %s: a %s record at byte %d of %d ends the replay of this segment",
                        path.name, "torn" if last else "damaged", offset, len(data),
                    )  # fmt: skip
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
            # part of the record may be there: cut it off, and append to a new segment anyway,
            # so that a replay stops at a torn record only where nothing follows it
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
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

    def delete_segments(self) -> None:
        """Delete every segment (all of it is committed)."""
        for _, path in segment_paths(self._db_path):
            path.unlink(missing_ok=True)

    def remove_all(self) -> None:
        """Delete every segment and close."""
        self.delete_segments()
        self.close()

    def close(self) -> None:
        """Close the segment and give up the journal (``lock``)."""
        self._close_segment()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1

    def lock(self) -> None:
        """Own the journal (``flock`` on ``PATH-journal-lock``, held until ``close``): a second
        process would replay and delete segments this one still appends to.

        Raises:
            StoreUnavailable: another process holds it.
        """
        if self._lock_fd >= 0:
            return
        fd = os.open(f"{self._db_path}-journal-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise StoreUnavailable(f"another process has {self._db_path} open with its journal") from exc
        self._lock_fd = fd

    def _close_segment(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _open_segment(self, number: int) -> None:
        self._close_segment()
        path = f"{self._db_path}-journal.{number:08d}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._segment, self._size = number, os.fstat(self._fd).st_size

    def _encode(self, batches: Batches) -> bytes:
        body = marshal.dumps(batches, _MARSHAL_VERSION)
        magic = _PLAIN
        if self._sealing is not None:
            header = self._sealing.header
            nonce = os.urandom(_NONCE)
            sealed = self._openers[header].encrypt(nonce, body, _AAD + header)
            body = bytes((len(header),)) + header + nonce + sealed
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
            header = body[1 : 1 + body[0]]
            body = body[1 + len(header) :]
            aead = self._openers.get(header)
            if aead is None:
                raise StoreUnavailable(
                    f"journal segment {number} of {self._db_path} holds writes a crash left, sealed under a key"
                    " this store was not opened with: start the node on it once (or pass its --data-key)"
                )
            try:
                body = aead.decrypt(body[:_NONCE], body[_NONCE:], _AAD + header)
            except InvalidTag as exc:
                raise SealError(f"journal segment {number} failed authentication: another key or damage") from exc
        decoded: Any = marshal.loads(body)
        return tuple((bool(seal), tuple((int(k), bytes(key), bytes(v)) for k, key, v in ops)) for seal, ops in decoded)
