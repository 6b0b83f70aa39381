"""Client frame codecs: protobuf in binary frames, canonical proto3 JSON in text frames.

The WebSocket subprotocol picks the codec (``timnode.v1.proto`` or ``timnode.v1.json``).
Decoding never raises anything but :class:`im.errors.DecodeError`.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError as PbDecodeError

from im import client_pb2 as pb
from im.errors import DecodeError

__all__ = [
    "PROTO_SUBPROTOCOL",
    "JSON_SUBPROTOCOL",
    "SUBPROTOCOLS",
    "Codec",
    "ProtoCodec",
    "JsonCodec",
    "codec_for",
]

PROTO_SUBPROTOCOL = "timnode.v1.proto"
JSON_SUBPROTOCOL = "timnode.v1.json"
SUBPROTOCOLS = (PROTO_SUBPROTOCOL, JSON_SUBPROTOCOL)


M = TypeVar("M", pb.ClientFrame, pb.ServerFrame)


class Codec:
    """Encode ServerFrames / decode ClientFrames for one subprotocol (and the reverse for clients)."""

    subprotocol = ""
    binary = True

    def decode_client(self, data: bytes | str) -> pb.ClientFrame:
        return self._decode(data, pb.ClientFrame())

    def decode_server(self, data: bytes | str) -> pb.ServerFrame:
        return self._decode(data, pb.ServerFrame())

    def encode(self, frame: pb.ClientFrame | pb.ServerFrame) -> bytes | str:
        raise NotImplementedError

    def _decode(self, data: bytes | str, out: M) -> M:
        raise NotImplementedError


class ProtoCodec(Codec):
    subprotocol = PROTO_SUBPROTOCOL
    binary = True

    def encode(self, frame: pb.ClientFrame | pb.ServerFrame) -> bytes:
        return frame.SerializeToString()

    def _decode(self, data: bytes | str, out: M) -> M:
        if isinstance(data, str):
            raise DecodeError("text frame on the protobuf subprotocol; send binary frames")
        try:
            out.ParseFromString(data)
        except (PbDecodeError, ValueError, RuntimeError) as exc:
            raise DecodeError(f"not a valid frame: {exc}") from exc
        return out


class JsonCodec(Codec):
    subprotocol = JSON_SUBPROTOCOL
    binary = False

    def encode(self, frame: pb.ClientFrame | pb.ServerFrame) -> str:
        return json_format.MessageToJson(frame, indent=None, ensure_ascii=False)

    def _decode(self, data: bytes | str, out: M) -> M:
        if isinstance(data, bytes):
            raise DecodeError("binary frame on the JSON subprotocol; send text frames")
        try:
            json_format.Parse(data, out, ignore_unknown_fields=True)
        except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
            raise DecodeError(f"not a valid JSON frame: {exc}") from exc
        return out


_CODECS: dict[str, Codec] = {PROTO_SUBPROTOCOL: ProtoCodec(), JSON_SUBPROTOCOL: JsonCodec()}


def codec_for(subprotocol: str | None) -> Codec:
    """The codec for a negotiated subprotocol (protobuf when none was negotiated)."""
    return _CODECS.get(subprotocol or PROTO_SUBPROTOCOL, _CODECS[PROTO_SUBPROTOCOL])
