"""Errors of the DHT layer (``dht/``), rooted in the peer layer's ``P2PError``.

    node.errors.P2PError
    └── DhtError
        ├── LocalProtocolError(DhtError, node.errors.LocalProtocolError)
        │                          the API was misused (bad key length, client-mode put, ...)
        ├── RemoteProtocolError    a peer broke the protocol
        │   ├── DecodeError(ValueError)  bytes that do not decode to a ``dht.messages`` message
        │   └── RecordRejected(reason)   a record entry failed validation; ``reason`` is a
        │                                ``dht.records.Rejection`` (bad signature, expired, ...)
        └── RpcTimeout(TimeoutError)     no response before ``DhtConfig.rpc_timeout``

The sans-I/O core never raises on remote input (STYLE §3.2): it drops, counts
(``DhtProtocol.stats``) and logs. ``RecordRejected`` and ``RpcTimeout`` exist for callers
that validate records themselves or turn a failed lookup into an exception.
"""

from __future__ import annotations

from typing import Any

from node import errors as node_errors

__all__ = ["DecodeError", "DhtError", "LocalProtocolError", "RecordRejected", "RemoteProtocolError", "RpcTimeout"]


class DhtError(node_errors.P2PError):
    """Root of the DHT layer's errors."""


class LocalProtocolError(DhtError, node_errors.LocalProtocolError):
    """The DHT API was used in a way it does not allow."""


class RemoteProtocolError(DhtError):
    """A peer sent something the DHT protocol does not allow."""


class DecodeError(RemoteProtocolError, ValueError):
    """Bytes that do not decode to a DHT message or record."""


class RecordRejected(RemoteProtocolError):
    """A record entry failed validation. ``reason`` is a ``dht.records.Rejection``."""

    def __init__(self, message: str, *, reason: Any) -> None:
        super().__init__(message)
        self.reason = reason


class RpcTimeout(DhtError, TimeoutError):
    """A DHT request got no response in time."""
