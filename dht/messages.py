"""DHT wire messages: typed dataclasses over ``proto/dht.proto`` (``timnode.dht.v1``).

The four Kademlia RPCs of Maymounkov & Mazières 2002, §2.3, in libp2p's shape: PING,
FIND_NODE (closer peers with addresses), GET (entries + closer peers; the paper's
FIND_VALUE) and PUT (the paper's STORE). Every message is a ``Message`` envelope:
``request_id`` pairs a response with its request, ``server`` says whether the sender answers
DHT queries (only servers enter routing tables), ``sender_addrs`` are its listen addresses.

``decode_message`` checks sizes and lengths and raises only ``dht.errors.DecodeError``;
record signatures are checked later, by ``dht.records.Verifier``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError as ProtobufDecodeError

from dht import dht_pb2 as pb
from dht.errors import DecodeError
from dht.ids import KEY_BYTES
from dht.records import RecordEntry, RecordKind

__all__ = [
    "MAX_MESSAGE_BYTES",
    "Body",
    "FindNode",
    "FindNodeResult",
    "Get",
    "GetResult",
    "Message",
    "PeerInfo",
    "Ping",
    "Pong",
    "Put",
    "PutResult",
    "Request",
    "Response",
    "decode_message",
    "encode_message",
]

MAX_MESSAGE_BYTES = 256 * 1024
MAX_PEERS = 64  # closer peers per response
MAX_ADDRS = 16  # addresses per peer
MAX_ADDR_CHARS = 256
MAX_PEER_ID_BYTES = 128
MAX_ENTRIES = 256


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """A DHT server as advertised in responses: PeerId bytes and listen addresses."""

    peer: bytes
    addrs: tuple[str, ...] = ()


class Body:
    """Base of the message bodies."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Ping(Body):
    pass


@dataclass(frozen=True, slots=True)
class Pong(Body):
    pass


@dataclass(frozen=True, slots=True)
class FindNode(Body):
    key: bytes


@dataclass(frozen=True, slots=True)
class FindNodeResult(Body):
    closer: tuple[PeerInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class Get(Body):
    key: bytes


@dataclass(frozen=True, slots=True)
class GetResult(Body):
    entries: tuple[RecordEntry, ...] = ()
    closer: tuple[PeerInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class Put(Body):
    entries: tuple[RecordEntry, ...]


@dataclass(frozen=True, slots=True)
class PutResult(Body):
    stored: int = 0


Request = Ping | FindNode | Get | Put
Response = Pong | FindNodeResult | GetResult | PutResult


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One DHT message: a request or the response with the same ``request_id``."""

    request_id: int
    server: bool
    body: Body
    sender_addrs: tuple[str, ...] = ()

    @property
    def is_request(self) -> bool:
        return isinstance(self.body, Ping | FindNode | Get | Put)


# -- encoding ---------------------------------------------------------------------------------


def _add_peers(field: Any, peers: Iterable[PeerInfo]) -> None:
    for info in peers:
        field.add(id=info.peer, addrs=info.addrs)


def _entry_pb(e: RecordEntry) -> pb.RecordEntry:
    return pb.RecordEntry(
        kind=e.kind,  # type: ignore[arg-type]  # unknown kinds round-trip as ints
        key=e.key,
        publisher=e.publisher,
        seq=e.seq,
        expires_ms=e.expires_ms,
        value=e.value,
        signature=e.signature,
    )


def encode_message(msg: Message) -> bytes:
    """Serialize ``msg`` (deterministic protobuf)."""
    out = pb.DhtMessage(request_id=msg.request_id, server=msg.server, sender_addrs=list(msg.sender_addrs))
    match msg.body:
        case Ping():
            out.ping.SetInParent()
        case Pong():
            out.pong.SetInParent()
        case FindNode(key=key):
            out.find_node.key = key
        case FindNodeResult(closer=closer):
            out.find_node_result.SetInParent()
            _add_peers(out.find_node_result.closer, closer)
        case Get(key=key):
            out.get.key = key
        case GetResult(entries=entries, closer=closer):
            out.get_result.SetInParent()
            out.get_result.entries.extend(_entry_pb(e) for e in entries)
            _add_peers(out.get_result.closer, closer)
        case Put(entries=entries):
            out.put.SetInParent()
            out.put.entries.extend(_entry_pb(e) for e in entries)
        case PutResult(stored=stored):
            out.put_result.stored = stored
        case _:
            raise TypeError(f"not a DHT message body: {msg.body!r}")
    return out.SerializeToString(deterministic=True)


# -- decoding ---------------------------------------------------------------------------------


def _key(key: bytes) -> bytes:
    if len(key) != KEY_BYTES:
        raise DecodeError(f"a key is {KEY_BYTES} bytes, got {len(key)}")
    return key


def _addrs(addrs: Iterable[str]) -> tuple[str, ...]:
    out = tuple(addrs)
    if out and (len(out) > MAX_ADDRS or max(map(len, out)) > MAX_ADDR_CHARS):
        raise DecodeError("too many or too long addresses")
    return out


def _peers(peers: Iterable[pb.Peer]) -> tuple[PeerInfo, ...]:
    out = []
    for p in peers:
        peer, addrs = p.id, tuple(p.addrs)
        if not 0 < len(peer) <= MAX_PEER_ID_BYTES:
            raise DecodeError("bad peer id length")
        if addrs and (len(addrs) > MAX_ADDRS or max(map(len, addrs)) > MAX_ADDR_CHARS):
            raise DecodeError("too many or too long addresses")
        out.append(PeerInfo(peer, addrs))
    if len(out) > MAX_PEERS:
        raise DecodeError(f"more than {MAX_PEERS} peers")
    return tuple(out)


def _entries(entries: Sequence[pb.RecordEntry]) -> tuple[RecordEntry, ...]:
    if len(entries) > MAX_ENTRIES:
        raise DecodeError(f"more than {MAX_ENTRIES} entries")
    return tuple(
        RecordEntry(
            kind=RecordKind(e.kind) if e.kind in (1, 2) else int(e.kind),
            key=e.key,
            publisher=e.publisher,
            seq=e.seq,
            expires_ms=e.expires_ms,
            value=e.value,
            signature=e.signature,
        )
        for e in entries
    )


def _body(msg: pb.DhtMessage) -> Body:
    which = msg.WhichOneof("body")
    match which:
        case "ping":
            return Ping()
        case "pong":
            return Pong()
        case "find_node":
            return FindNode(_key(msg.find_node.key))
        case "find_node_result":
            return FindNodeResult(_peers(msg.find_node_result.closer))
        case "get":
            return Get(_key(msg.get.key))
        case "get_result":
            r = msg.get_result
            return GetResult(_entries(r.entries), _peers(r.closer))
        case "put":
            return Put(_entries(msg.put.entries))
        case "put_result":
            return PutResult(msg.put_result.stored)
    raise DecodeError("a DHT message without a body")


def decode_message(data: bytes, *, max_size: int = MAX_MESSAGE_BYTES) -> Message:
    """Parse one DHT message.

    Raises:
        DecodeError: too large, not protobuf, no body, or a field out of bounds.
    """
    if len(data) > max_size:
        raise DecodeError(f"a DHT message of {len(data)} bytes exceeds {max_size}")
    msg = pb.DhtMessage()
    try:
        msg.ParseFromString(data)
    except (ProtobufDecodeError, ValueError) as exc:
        raise DecodeError(f"not a DhtMessage: {exc}") from exc
    return Message(
        request_id=msg.request_id, server=msg.server, sender_addrs=_addrs(msg.sender_addrs), body=_body(msg)
    )
