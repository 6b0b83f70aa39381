from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NoiseHandshakePayload(_message.Message):
    __slots__ = ("identity_key", "identity_sig", "extensions")
    IDENTITY_KEY_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_SIG_FIELD_NUMBER: _ClassVar[int]
    EXTENSIONS_FIELD_NUMBER: _ClassVar[int]
    identity_key: bytes
    identity_sig: bytes
    extensions: NoiseExtensions
    def __init__(self, identity_key: _Optional[bytes] = ..., identity_sig: _Optional[bytes] = ..., extensions: _Optional[_Union[NoiseExtensions, _Mapping]] = ...) -> None: ...

class NoiseExtensions(_message.Message):
    __slots__ = ("webtransport_certhashes", "stream_muxers")
    WEBTRANSPORT_CERTHASHES_FIELD_NUMBER: _ClassVar[int]
    STREAM_MUXERS_FIELD_NUMBER: _ClassVar[int]
    webtransport_certhashes: _containers.RepeatedScalarFieldContainer[bytes]
    stream_muxers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, webtransport_certhashes: _Optional[_Iterable[bytes]] = ..., stream_muxers: _Optional[_Iterable[str]] = ...) -> None: ...

class Identify(_message.Message):
    __slots__ = ("protocol_version", "agent", "listen_addrs", "observed_addr", "protocols")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    LISTEN_ADDRS_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_ADDR_FIELD_NUMBER: _ClassVar[int]
    PROTOCOLS_FIELD_NUMBER: _ClassVar[int]
    protocol_version: str
    agent: str
    listen_addrs: _containers.RepeatedScalarFieldContainer[str]
    observed_addr: str
    protocols: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, protocol_version: _Optional[str] = ..., agent: _Optional[str] = ..., listen_addrs: _Optional[_Iterable[str]] = ..., observed_addr: _Optional[str] = ..., protocols: _Optional[_Iterable[str]] = ...) -> None: ...

class ErrorInfo(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class LinkFrame(_message.Message):
    __slots__ = ("kind", "id", "protocol", "body", "error")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        MESSAGE: _ClassVar[LinkFrame.Kind]
        REQUEST: _ClassVar[LinkFrame.Kind]
        RESPONSE: _ClassVar[LinkFrame.Kind]
        PING: _ClassVar[LinkFrame.Kind]
        PONG: _ClassVar[LinkFrame.Kind]
        IDENTIFY: _ClassVar[LinkFrame.Kind]
        CLOSE: _ClassVar[LinkFrame.Kind]
    MESSAGE: LinkFrame.Kind
    REQUEST: LinkFrame.Kind
    RESPONSE: LinkFrame.Kind
    PING: LinkFrame.Kind
    PONG: LinkFrame.Kind
    IDENTIFY: LinkFrame.Kind
    CLOSE: LinkFrame.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    kind: LinkFrame.Kind
    id: int
    protocol: str
    body: bytes
    error: ErrorInfo
    def __init__(self, kind: _Optional[_Union[LinkFrame.Kind, str]] = ..., id: _Optional[int] = ..., protocol: _Optional[str] = ..., body: _Optional[bytes] = ..., error: _Optional[_Union[ErrorInfo, _Mapping]] = ...) -> None: ...

class PexPeer(_message.Message):
    __slots__ = ("peer_id", "addrs")
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRS_FIELD_NUMBER: _ClassVar[int]
    peer_id: bytes
    addrs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, peer_id: _Optional[bytes] = ..., addrs: _Optional[_Iterable[str]] = ...) -> None: ...

class PexResponse(_message.Message):
    __slots__ = ("peers",)
    PEERS_FIELD_NUMBER: _ClassVar[int]
    peers: _containers.RepeatedCompositeFieldContainer[PexPeer]
    def __init__(self, peers: _Optional[_Iterable[_Union[PexPeer, _Mapping]]] = ...) -> None: ...
