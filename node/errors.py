"""Errors of the peer layer (``node/``). Every error a peer can cause is a ``RemoteProtocolError``.

    P2PError
    ├── LocalProtocolError         the API was misused (a bug on our side)
    ├── IdentityError              the identity key file is missing, unreadable or corrupt
    ├── NetworkKeyError(ValueError) a --network-key value or file that is not a network key
    ├── RemoteProtocolError        the peer (or the path to it) broke the protocol
    │   ├── DecodeError(ValueError)  bytes that do not decode (base58, multihash, protobuf, frames)
    │   ├── HandshakeError(code)     the peer handshake failed; ``code`` is the wire ``AbortCode``
    │   │   ├── NetworkKeyMismatch   the two sides hold different network keys
    │   │   ├── PeerIdMismatch       the peer proved another PeerId than the one dialled (MITM test)
    │   │   ├── AuthenticationError  bad identity key or signature in the handshake payload
    │   │   └── HandshakeAborted     the peer aborted the handshake with a reason of its own
    │   ├── DecryptError             a transport message failed authentication (tamper, replay, reorder)
    │   └── FrameTooLarge            a frame or reassembled message over the configured limit
    ├── HandshakeTimeout(TimeoutError) the handshake did not complete in time
    ├── RequestTimeout(TimeoutError)   no response to a request in time
    ├── RequestFailed(code)        the peer's handler answered a request with an error
    └── LinkClosed                 the link is closed; ``reason`` says why

Adapters translate ``InvalidTag``, ``struct.error`` and protobuf's ``DecodeError`` at the
boundary with ``raise ... from exc`` (STYLE §3.5).
"""

from __future__ import annotations

import enum

__all__ = [
    "AbortCode",
    "AuthenticationError",
    "DecodeError",
    "DecryptError",
    "FrameTooLarge",
    "HandshakeAborted",
    "HandshakeError",
    "HandshakeTimeout",
    "IdentityError",
    "LinkClosed",
    "LocalProtocolError",
    "NetworkKeyError",
    "NetworkKeyMismatch",
    "P2PError",
    "PeerIdMismatch",
    "RemoteProtocolError",
    "RequestFailed",
    "RequestTimeout",
]


class AbortCode(enum.IntEnum):
    """Wire codes of a handshake abort (``node/handshake.py``) and link close codes (4000 + code)."""

    NORMAL = 0
    NETWORK_KEY_MISMATCH = 1
    HANDSHAKE_FAILED = 2
    PEER_ID_MISMATCH = 3
    AUTHENTICATION_FAILED = 4
    PROTOCOL_ERROR = 5
    TIMEOUT = 6
    SHUTDOWN = 7


class P2PError(Exception):
    """Root of the peer layer's errors."""


class LocalProtocolError(P2PError):
    """The API was used in a way the protocol does not allow (for example, sending out of turn)."""


class IdentityError(P2PError):
    """The identity key file cannot be used."""


class NetworkKeyError(P2PError, ValueError):
    """A network key value or file that does not hold a network key."""


class RemoteProtocolError(P2PError):
    """The remote peer sent something the protocol does not allow."""


class DecodeError(RemoteProtocolError, ValueError):
    """Bytes or text that do not decode."""


class HandshakeError(RemoteProtocolError):
    """The peer handshake failed. ``code`` is the ``AbortCode`` sent to (or received from) the peer."""

    code: AbortCode = AbortCode.HANDSHAKE_FAILED

    def __init__(self, message: str, *, code: AbortCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.reason = message


class NetworkKeyMismatch(HandshakeError):
    """The peer holds another network key (or none): it is not a member of this network."""

    code = AbortCode.NETWORK_KEY_MISMATCH


class PeerIdMismatch(HandshakeError):
    """The dialled peer proved a PeerId other than the expected one."""

    code = AbortCode.PEER_ID_MISMATCH

    def __init__(self, message: str, *, expected: str = "", actual: str = "") -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class AuthenticationError(HandshakeError):
    """The handshake payload's identity key or signature does not verify."""

    code = AbortCode.AUTHENTICATION_FAILED


class HandshakeAborted(HandshakeError):
    """The peer aborted the handshake with a code other than a network key mismatch."""


class DecryptError(RemoteProtocolError):
    """A Noise message failed AEAD authentication: tampered, replayed, reordered or wrong key."""


class FrameTooLarge(RemoteProtocolError):
    """A frame or a reassembled message is larger than the configured maximum."""

    def __init__(self, message: str, *, size: int = 0, limit: int = 0) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class HandshakeTimeout(P2PError, TimeoutError):
    """The handshake did not complete before its deadline."""


class RequestTimeout(P2PError, TimeoutError):
    """A request got no response before its deadline."""


class RequestFailed(P2PError):
    """The peer answered a request with ``ErrorInfo{code, message}`` (no handler, handler error)."""

    NO_HANDLER = 404
    HANDLER_ERROR = 500

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class LinkClosed(P2PError):
    """The link is closed. ``reason`` is the local or remote close reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
