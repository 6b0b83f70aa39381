"""Wire dialects of the chat load: the node's protobuf protocol and the raw relay's frames.

The load generator speaks through a :class:`Dialect` so the node and the raw relay
carry exactly the same load shape: per message one request from the sender
(answered once), one push to the recipient, and batched delivery acks that the
server answers and turns into a push back to the sender.

Raw relay frames (big-endian), header ``kind:u8 id:u64`` then a body:

====================  =========  ==================================================
frame                 direction  body
====================  =========  ==================================================
HELLO  (1)            c -> s     user name (UTF-8)
SEND   (2)            c -> s     ``len:u8 dest`` then the payload
DACK   (3)            c -> s     ``len:u8 dest`` then acked ids, ``u64`` each
OK     (10)           s -> c     empty (answers id)
ERROR  (11)           s -> c     ``code:u16`` (480: recipient offline)
PUSH   (20)           s -> c     payload; header id = relay-assigned message id
DELIVERED (21)        s -> c     ids, ``u64`` each
====================  =========  ==================================================

Decoded server frames are ``(kind, number, value)`` tuples, kinds below; tuples
rather than dataclasses because this runs for every frame of the hot loop.
"""

from __future__ import annotations

import struct
from typing import Any, Protocol

from im import client_pb2 as pb

__all__ = [
    "DELIVERED",
    "OTHER",
    "PUSH",
    "REPLY",
    "RELAY_DACK",
    "RELAY_DELIVERED",
    "RELAY_ERROR",
    "RELAY_HELLO",
    "RELAY_OK",
    "RELAY_PUSH",
    "RELAY_SEND",
    "HEADER",
    "Decoded",
    "Dialect",
    "NodeDialect",
    "RelayDialect",
    "dialect_for",
]

# decoded kinds: (REPLY, request id, error code or 0) (PUSH, message id, payload)
# (DELIVERED, 0, count of ids) (OTHER, 0, None)
REPLY, PUSH, DELIVERED, OTHER = 1, 2, 3, 4
Decoded = tuple[int, int, Any]  # value's type depends on the kind (see above)

RELAY_HELLO, RELAY_SEND, RELAY_DACK = 1, 2, 3
RELAY_OK, RELAY_ERROR, RELAY_PUSH, RELAY_DELIVERED = 10, 11, 20, 21
HEADER = struct.Struct(">BQ")
_CODE = struct.Struct(">H")


class Dialect(Protocol):
    """Encodes the generator's requests and decodes the server's frames."""

    subprotocol: str | None

    def hello(self, req_id: int, user: str, password: str) -> bytes: ...
    def send(self, req_id: int, to: str, payload: bytes, client_msg_id: str) -> bytes: ...
    def delivery_ack(self, req_id: int, to: str, ids: list[int]) -> bytes: ...
    def decode(self, frame: bytes) -> Decoded: ...


class NodeDialect:
    """``timnode.v1.proto``: each frame one ClientFrame / ServerFrame (proto/client.proto)."""

    subprotocol: str | None = "timnode.v1.proto"

    def __init__(self) -> None:
        #: the node's send epoch, as the SDK keeps it (``im.send_epoch``): one per node
        self.send_epoch = ""

    def hello(self, req_id: int, user: str, password: str) -> bytes:
        register = pb.Register(user=user, password=password, device="bench")
        return pb.ClientFrame(id=req_id, register=register).SerializeToString()

    def send(self, req_id: int, to: str, payload: bytes, client_msg_id: str) -> bytes:
        if self.send_epoch:
            client_msg_id = f"{self.send_epoch}:{client_msg_id}"
        body = pb.Send(to=to, type=1, data=payload, client_msg_id=client_msg_id)
        return pb.ClientFrame(id=req_id, send=body).SerializeToString()

    def delivery_ack(self, req_id: int, to: str, ids: list[int]) -> bytes:
        return pb.ClientFrame(id=req_id, delivery_ack=pb.DeliveryAck(ids=ids)).SerializeToString()

    def decode(self, frame: bytes) -> Decoded:
        msg = pb.ServerFrame.FromString(frame)
        body = msg.WhichOneof("body")
        if msg.id:
            if body == "sent":
                if msg.sent.send_epoch:
                    self.send_epoch = msg.sent.send_epoch
            elif body == "session" and msg.session.send_epoch:
                self.send_epoch = msg.session.send_epoch
            return (REPLY, msg.id, int(msg.error.code) if body == "error" else 0)
        if body == "message":
            return (PUSH, msg.message.id, msg.message.data)
        if body == "delivered":
            return (DELIVERED, 0, len(msg.delivered.message_ids))
        return (OTHER, 0, body)


class RelayDialect:
    """The raw relay's frames (table in the module docstring)."""

    subprotocol: str | None = None

    def hello(self, req_id: int, user: str, password: str) -> bytes:
        return HEADER.pack(RELAY_HELLO, req_id) + user.encode()

    def send(self, req_id: int, to: str, payload: bytes, client_msg_id: str) -> bytes:
        dest = to.encode()
        return HEADER.pack(RELAY_SEND, req_id) + bytes((len(dest),)) + dest + payload

    def delivery_ack(self, req_id: int, to: str, ids: list[int]) -> bytes:
        dest = to.encode()
        packed = struct.pack(f">{len(ids)}Q", *ids)
        return HEADER.pack(RELAY_DACK, req_id) + bytes((len(dest),)) + dest + packed

    def decode(self, frame: bytes) -> Decoded:
        kind, number = HEADER.unpack_from(frame)
        if kind == RELAY_PUSH:
            return (PUSH, number, frame[HEADER.size :])
        if kind == RELAY_OK:
            return (REPLY, number, 0)
        if kind == RELAY_ERROR:
            return (REPLY, number, _CODE.unpack_from(frame, HEADER.size)[0])
        if kind == RELAY_DELIVERED:
            return (DELIVERED, 0, (len(frame) - HEADER.size) // 8)
        return (OTHER, 0, kind)


def dialect_for(name: str) -> Dialect:
    """``"node"`` or ``"relay"``."""
    if name == "node":
        return NodeDialect()
    if name == "relay":
        return RelayDialect()
    raise ValueError(f"unknown dialect {name!r}")
