"""Chunked payloads: bodies larger than one frame, uploaded in pieces and delivered whole.

``chunk_start`` names an upload (client-chosen id, per session), its total size and a
template (a ``send``, ``group_send`` or ``room_send`` with an empty body); ``chunk`` appends
the next piece (``offset`` must equal the bytes received so far, so a retried piece is
refused rather than duplicated); ``chunk_end`` assembles the body and runs the template as
if it had been sent in one frame, within ``max_payload`` (``--max-payload-bytes``) instead of
the one-frame limit. A declared size over the maximum, or more bytes than declared, is
TOO_LARGE; a ``chunk``/``chunk_end`` for an unknown or expired upload is UPLOAD_UNKNOWN.

Memory is bounded: a session has at most ``max_uploads`` uploads open, the node reserves each
upload's declared size against ``max_buffered`` (over it: RATE_LIMITED with retry_after), an
upload idle for ``timeout`` seconds is dropped (:meth:`ChunkAssembler.expire_due`, sans-I/O),
and a closed session's uploads are dropped at once.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from im import client_pb2 as pb
from im.errors import ImError
from im.sessions import Session

__all__ = ["ChunkAssembler", "ChunkOptions", "Upload"]

UPLOAD_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@dataclass(frozen=True, slots=True)
class ChunkOptions:
    max_payload: int = 1 << 20  # --max-payload-bytes
    timeout: float = 30.0  # seconds an upload may sit idle
    max_uploads: int = 4  # open uploads per session
    max_buffered: int = 64 << 20  # declared bytes reserved across the node


@dataclass(eq=False, slots=True)
class Upload:
    start: pb.ChunkStart
    last_at: float
    parts: list[bytes] = field(default_factory=list)
    received: int = 0


class _Conn(Protocol):
    session: Session | None


Handler = Callable[[_Conn, pb.ClientFrame], Awaitable[pb.ServerFrame]]
#: runs a completed upload: (session, its ChunkStart, the whole body) -> the template's response
Deliver = Callable[[Session, pb.ChunkStart, bytes], Awaitable[pb.ServerFrame]]


class ChunkAssembler:
    """Open uploads per session; the delivery of whole bodies is ``deliver``'s job."""

    def __init__(self, *, deliver: Deliver, now: Callable[[], float], options: ChunkOptions | None = None) -> None:
        self._deliver = deliver
        self._now = now
        self.options = options or ChunkOptions()
        self._uploads: dict[Session, dict[str, Upload]] = {}
        self.reserved = 0
        self.stats = {"completed": 0, "expired": 0, "refused": 0}

    def start(self, session: Session, req: pb.ChunkStart) -> pb.ChunkAccepted:
        o = self.options
        if not UPLOAD_ID.fullmatch(req.upload):
            raise ImError(pb.BAD_REQUEST, "upload ids are 1-64 characters of A-Z a-z 0-9 . _ : -")
        if req.WhichOneof("template") is None:
            raise ImError(pb.BAD_REQUEST, "chunk_start needs a send, group_send or room_send template")
        if req.size > o.max_payload:
            self.stats["refused"] += 1
            raise ImError(pb.TOO_LARGE, f"payload of {req.size} bytes; the limit is {o.max_payload}")
        mine = self._uploads.setdefault(session, {})
        if req.upload in mine:
            raise ImError(pb.CONFLICT, "an upload with this id is open")
        if len(mine) >= o.max_uploads:
            raise ImError(pb.TOO_LARGE, f"at most {o.max_uploads} uploads open per session")
        if self.reserved + req.size > o.max_buffered:
            raise ImError(pb.RATE_LIMITED, "the node is buffering too many uploads; try later", retry_after=o.timeout)
        mine[req.upload] = Upload(start=req, last_at=self._now())
        self.reserved += req.size
        return pb.ChunkAccepted(upload=req.upload)

    def _upload(self, session: Session, upload: str) -> Upload:
        found = self._uploads.get(session, {}).get(upload)
        if found is None or found.last_at + self.options.timeout <= self._now():
            if found is not None:
                self._drop(session, upload)
            raise ImError(pb.UPLOAD_UNKNOWN, "no such upload (never started, finished or timed out)")
        return found

    def add(self, session: Session, req: pb.Chunk) -> pb.ChunkAccepted:
        up = self._upload(session, req.upload)
        if req.offset != up.received:
            raise ImError(pb.BAD_REQUEST, f"offset {req.offset}: {up.received} bytes received so far")
        if up.received + len(req.data) > up.start.size:
            self._drop(session, req.upload)
            raise ImError(pb.TOO_LARGE, f"more than the declared {up.start.size} bytes; upload dropped")
        up.parts.append(req.data)
        up.received += len(req.data)
        up.last_at = self._now()
        return pb.ChunkAccepted(upload=req.upload, received=up.received)

    async def end(self, session: Session, req: pb.ChunkEnd) -> pb.ServerFrame:
        up = self._upload(session, req.upload)
        if up.received != up.start.size:
            raise ImError(pb.BAD_REQUEST, f"{up.received} of {up.start.size} bytes received")
        self._drop(session, req.upload)
        body = b"".join(up.parts)
        up.parts.clear()
        reply = await self._deliver(session, up.start, body)
        self.stats["completed"] += 1
        return reply

    def _drop(self, session: Session, upload: str) -> None:
        mine = self._uploads.get(session)
        if mine is None:
            return
        up = mine.pop(upload, None)
        if up is not None:
            self.reserved -= up.start.size
        if not mine:
            del self._uploads[session]

    def forget(self, session: Session) -> None:
        for upload in list(self._uploads.get(session, ())):
            self._drop(session, upload)

    def expire_due(self, now: float) -> int:
        """Drop uploads idle for ``timeout``; return how many."""
        expired = [
            (s, name)
            for s, mine in self._uploads.items()
            for name, up in mine.items()
            if up.last_at + self.options.timeout <= now
        ]
        for s, name in expired:
            self._drop(s, name)
        self.stats["expired"] += len(expired)
        return len(expired)

    def open_uploads(self) -> int:
        return sum(len(m) for m in self._uploads.values())

    def handlers(self) -> dict[str, Handler]:
        return {"chunk_start": self._h_start, "chunk": self._h_chunk, "chunk_end": self._h_end}

    async def _h_start(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        return pb.ServerFrame(chunk_accepted=self.start(conn.session, frame.chunk_start))

    async def _h_chunk(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        return pb.ServerFrame(chunk_accepted=self.add(conn.session, frame.chunk))

    async def _h_end(self, conn: _Conn, frame: pb.ClientFrame) -> pb.ServerFrame:
        assert conn.session is not None
        return await self.end(conn.session, frame.chunk_end)
