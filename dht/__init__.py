"""Kademlia DHT: routing table, iterative lookups, signed records with expiry (see README.md).

The sans-I/O core is ``dht.node.DhtProtocol``; ``testnet.sim`` drives many of them on a
virtual clock, and ``dht.aio.DhtService`` runs one over the node's peer links (imported from
``dht.aio`` only: ``import dht`` stays free of asyncio).
"""

from __future__ import annotations

from dht.errors import DecodeError, DhtError, LocalProtocolError, RecordRejected, RemoteProtocolError, RpcTimeout
from dht.messages import PeerInfo
from dht.node import (
    BootstrapCompleted,
    DhtConfig,
    DhtEvent,
    DhtProtocol,
    DhtStats,
    FindNodeCompleted,
    GetCompleted,
    PutCompleted,
)
from dht.records import Device, RecordEntry, RecordKind, RecordLimits, Rejection, Signer
from dht.rpc import Command, SendRequest, SendResponse

__all__ = [
    "BootstrapCompleted",
    "Command",
    "DecodeError",
    "Device",
    "DhtConfig",
    "DhtError",
    "DhtEvent",
    "DhtProtocol",
    "DhtStats",
    "FindNodeCompleted",
    "GetCompleted",
    "LocalProtocolError",
    "PeerInfo",
    "PutCompleted",
    "RecordEntry",
    "RecordKind",
    "RecordLimits",
    "RecordRejected",
    "Rejection",
    "RemoteProtocolError",
    "RpcTimeout",
    "SendRequest",
    "SendResponse",
    "Signer",
]
