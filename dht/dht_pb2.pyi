from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecordKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECORD_KIND_UNSPECIFIED: _ClassVar[RecordKind]
    PRESENCE: _ClassVar[RecordKind]
    PEER: _ClassVar[RecordKind]
RECORD_KIND_UNSPECIFIED: RecordKind
PRESENCE: RecordKind
PEER: RecordKind

class Peer(_message.Message):
    __slots__ = ("id", "addrs")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRS_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    addrs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[bytes] = ..., addrs: _Optional[_Iterable[str]] = ...) -> None: ...

class RecordEntry(_message.Message):
    __slots__ = ("kind", "key", "publisher", "seq", "expires_ms", "value", "signature")
    KIND_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_MS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    kind: RecordKind
    key: bytes
    publisher: bytes
    seq: int
    expires_ms: int
    value: bytes
    signature: bytes
    def __init__(self, kind: _Optional[_Union[RecordKind, str]] = ..., key: _Optional[bytes] = ..., publisher: _Optional[bytes] = ..., seq: _Optional[int] = ..., expires_ms: _Optional[int] = ..., value: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class PresenceDevice(_message.Message):
    __slots__ = ("device_id", "status")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    status: str
    def __init__(self, device_id: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class PresenceValue(_message.Message):
    __slots__ = ("user", "devices")
    USER_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    user: str
    devices: _containers.RepeatedCompositeFieldContainer[PresenceDevice]
    def __init__(self, user: _Optional[str] = ..., devices: _Optional[_Iterable[_Union[PresenceDevice, _Mapping]]] = ...) -> None: ...

class PeerValue(_message.Message):
    __slots__ = ("addrs", "relays")
    ADDRS_FIELD_NUMBER: _ClassVar[int]
    RELAYS_FIELD_NUMBER: _ClassVar[int]
    addrs: _containers.RepeatedScalarFieldContainer[str]
    relays: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, addrs: _Optional[_Iterable[str]] = ..., relays: _Optional[_Iterable[bytes]] = ...) -> None: ...

class PingRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PingResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FindNodeRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    def __init__(self, key: _Optional[bytes] = ...) -> None: ...

class FindNodeResponse(_message.Message):
    __slots__ = ("closer",)
    CLOSER_FIELD_NUMBER: _ClassVar[int]
    closer: _containers.RepeatedCompositeFieldContainer[Peer]
    def __init__(self, closer: _Optional[_Iterable[_Union[Peer, _Mapping]]] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    def __init__(self, key: _Optional[bytes] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("entries", "closer")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    CLOSER_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[RecordEntry]
    closer: _containers.RepeatedCompositeFieldContainer[Peer]
    def __init__(self, entries: _Optional[_Iterable[_Union[RecordEntry, _Mapping]]] = ..., closer: _Optional[_Iterable[_Union[Peer, _Mapping]]] = ...) -> None: ...

class PutRequest(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[RecordEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[RecordEntry, _Mapping]]] = ...) -> None: ...

class PutResponse(_message.Message):
    __slots__ = ("stored",)
    STORED_FIELD_NUMBER: _ClassVar[int]
    stored: int
    def __init__(self, stored: _Optional[int] = ...) -> None: ...

class DhtMessage(_message.Message):
    __slots__ = ("request_id", "server", "sender_addrs", "ping", "pong", "find_node", "find_node_result", "get", "get_result", "put", "put_result")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    SENDER_ADDRS_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    PONG_FIELD_NUMBER: _ClassVar[int]
    FIND_NODE_FIELD_NUMBER: _ClassVar[int]
    FIND_NODE_RESULT_FIELD_NUMBER: _ClassVar[int]
    GET_FIELD_NUMBER: _ClassVar[int]
    GET_RESULT_FIELD_NUMBER: _ClassVar[int]
    PUT_FIELD_NUMBER: _ClassVar[int]
    PUT_RESULT_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    server: bool
    sender_addrs: _containers.RepeatedScalarFieldContainer[str]
    ping: PingRequest
    pong: PingResponse
    find_node: FindNodeRequest
    find_node_result: FindNodeResponse
    get: GetRequest
    get_result: GetResponse
    put: PutRequest
    put_result: PutResponse
    def __init__(self, request_id: _Optional[int] = ..., server: _Optional[bool] = ..., sender_addrs: _Optional[_Iterable[str]] = ..., ping: _Optional[_Union[PingRequest, _Mapping]] = ..., pong: _Optional[_Union[PingResponse, _Mapping]] = ..., find_node: _Optional[_Union[FindNodeRequest, _Mapping]] = ..., find_node_result: _Optional[_Union[FindNodeResponse, _Mapping]] = ..., get: _Optional[_Union[GetRequest, _Mapping]] = ..., get_result: _Optional[_Union[GetResponse, _Mapping]] = ..., put: _Optional[_Union[PutRequest, _Mapping]] = ..., put_result: _Optional[_Union[PutResponse, _Mapping]] = ...) -> None: ...
