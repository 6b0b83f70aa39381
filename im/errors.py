"""IM errors. Each carries the wire ``ErrorCode`` it is answered with.

ImError(code)              answered to the client as Error{code, message}
├── DecodeError            a frame that is not a valid ClientFrame (BAD_REQUEST)
└── RateLimited            over the connection's token bucket (RATE_LIMITED, retry_after)
"""

from __future__ import annotations

from im import client_pb2 as pb

__all__ = ["ImError", "DecodeError", "RateLimited", "Code"]

Code = pb.ErrorCode


class ImError(Exception):
    """An error answered to the client with ``code`` (a ``pb.ErrorCode`` value)."""

    def __init__(self, code: int, message: str, *, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"ImError({pb.ErrorCode.Name(self.code)}, {self.message!r})"


class DecodeError(ImError, ValueError):
    """Bytes or text that do not decode to a ClientFrame."""

    def __init__(self, message: str) -> None:
        super().__init__(pb.BAD_REQUEST, message)


class RateLimited(ImError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(pb.RATE_LIMITED, "request rate over the limit", retry_after=retry_after)
