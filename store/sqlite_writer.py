"""The SQLite writer process: group commit on a core of its own.

A node's event loop would otherwise spend most of a durable send inside SQLite (B-tree
inserts and WAL page writes, ~60 us of the ~130 us a 1:1 send cost on the loop thread), and
a writer *thread* cannot help: ``executemany`` takes the GIL back for every row, so under
load the thread waits up to the switch interval per row (measured: under 1,000 sends/s).
A process has its own GIL. ``store.sqlite`` starts one per store
(``python -P -m store.sqlite_writer FD PATH BUSY_TIMEOUT [NICE]``) over a socketpair:

parent -> child   ``("seal", header, siv, key)``  the sealing key (``store.crypto.SealingKey``)
                  ``("w", seq, batches)``  batches: ``[(seal, ((kind, key, value), ...)), ...]``,
                                          kind 0 Put, 1 Insert, 2 Delete; ``seal``: seal the
                                          values here (``SealedStore`` over this writer)
                  ``("q",)``              commit what came before, then exit
child -> parent   ``("ready", schema_version)`` or ``("fail", reason)`` once at start
                  ``("r", seq, outcomes, transactions)``  per ``w`` frame: ``None`` (applied),
                                          ``(1, key)`` KeyExists, ``(2, reason)`` unavailable
                  ``("bye",)``            after ``q``

Frames: ``store.sqlite_wire``. Whatever ``w`` frames have arrived when the previous transaction ends are
committed together in one transaction (``store.sqlite_commit.commit_group``): the parent
pipelines, the child groups. The reply is written only after ``COMMIT`` returned, so an
acknowledged batch survives ``kill -9`` of either process. On EOF (the parent died) the
child commits the complete frames it holds and exits; a partial frame was never
acknowledged. It ignores SIGINT and SIGTERM, which a terminal or a service manager sends
to the whole process group: the parent decides when it ends. ``store.sqlite_wal`` keeps the
WAL short (checkpoints) and written back, off the commit path.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
from collections import deque
from typing import Any

from store.crypto import Sealer, SealingKey
from store.errors import StoreUnavailable
from store.sqlite_commit import Outcome, commit_wire, connect_writer, migrate
from store.sqlite_wal import WalUpkeep
from store.sqlite_wire import FrameReader, Wire, encode_frame, encode_outcome

__all__ = ["main"]

MAX_GROUP_OPS = 20_000
_RECV = 1 << 20


class _Child:
    """The writer loop: read frames, commit them together, reply."""

    def __init__(self, sock: socket.socket, path: str, busy_timeout: float) -> None:
        self._sock = sock
        self._path = path
        self._busy_timeout = busy_timeout
        self._reader = FrameReader()
        self._ready: deque[Any] = deque()
        self._eof = False
        self._transactions = 0
        self._sealer: Sealer | None = None

    def run(self) -> int:
        try:
            conn = connect_writer(self._path, self._busy_timeout)
            version = migrate(conn)
            upkeep = WalUpkeep(conn, self._path, self._busy_timeout, sync_database=True)
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
            self._sock.sendall(encode_frame(("fail", f"sqlite open failed: {exc}")))
            return 1
        self._sock.sendall(encode_frame(("ready", version)))
        try:
            self._serve(conn, upkeep)
        finally:
            upkeep.close(conn)
            conn.close()
            upkeep.release()  # this process has no connection to the database left
        return 0

    def _serve(self, conn: Any, upkeep: WalUpkeep) -> None:
        while True:
            frames, quit_seen = self._take()
            if frames:
                self._commit(conn, frames, upkeep)
            if quit_seen:
                self._sock.sendall(encode_frame(("bye",)))
                return
            if self._eof and not self._ready:
                return

    def _take(self) -> tuple[list[tuple[int, list[tuple[bool, Wire]]]], bool]:
        """Block for one frame, then take every complete frame already here (up to a size cap)."""
        while not self._ready and not self._eof:
            self._receive()
        while not self._eof and select.select([self._sock], [], [], 0)[0]:
            self._receive()
        frames: list[tuple[int, list[tuple[bool, Wire]]]] = []
        size = 0
        while self._ready and size < MAX_GROUP_OPS:
            message = self._ready.popleft()
            if message[0] == "q":
                return frames, True
            if message[0] == "seal":
                self._sealer = Sealer(SealingKey(bytes(message[1]), bool(message[2]), bytes(message[3])))
                continue
            frames.append((message[1], message[2]))
            size += sum(len(ops) for _, ops in message[2])
        return frames, False

    def _receive(self) -> None:
        data = self._sock.recv(_RECV)
        if not data:
            self._eof = True
            return
        self._ready.extend(self._reader.feed(data))

    def _commit(self, conn: Any, frames: list[tuple[int, list[tuple[bool, Wire]]]], upkeep: WalUpkeep) -> None:
        wires = [batch for _, batches in frames for batch in batches]
        try:
            batches = self._sealed(wires)
        except Exception as exc:  # noqa: BLE001 - a bad value or no key: fail these batches, keep serving
            failed = StoreUnavailable(f"sqlite writer could not prepare the group: {exc}")
            outcomes: list[Outcome] = [failed] * len(wires)
        else:
            outcomes = commit_wire(conn, batches)
            self._transactions += 1
        replies = bytearray()
        start = 0
        for seq, part in frames:
            encoded = [encode_outcome(o) for o in outcomes[start : start + len(part)]]
            start += len(part)
            replies += encode_frame(("r", seq, encoded, self._transactions))
        try:
            self._sock.sendall(replies)
        except OSError:  # the parent is gone; what is committed stays committed
            self._eof = True
            self._ready.clear()
        upkeep.note(conn, sum(len(ops) for _, ops in wires))  # after the replies

    def _sealed(self, wires: list[tuple[bool, Wire]]) -> list[Wire]:
        """The group's batches, values sealed where asked, all in one ``Sealer.seal_many``."""
        items = [(key, value) for seal, ops in wires if seal for kind, key, value in ops if kind != 2]
        if not items:
            return [ops for _, ops in wires]
        if self._sealer is None:
            raise StoreUnavailable("no sealing key was sent")
        sealed = iter(self._sealer.seal_many(items))
        return [
            tuple((kind, key, value if kind == 2 else next(sealed)) for kind, key, value in ops) if seal else ops
            for seal, ops in wires
        ]


def main(argv: list[str]) -> int:
    """``python -P -m store.sqlite_writer FD PATH BUSY_TIMEOUT [NICE]``"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    fd, path, busy_timeout = int(argv[0]), argv[1], float(argv[2])
    if len(argv) > 3 and int(argv[3]) > 0:
        os.nice(int(argv[3]))  # before any thread starts: the checkpoint copies inherit it
    sock = socket.socket(fileno=fd)
    try:
        return _Child(sock, path, busy_timeout).run()
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
