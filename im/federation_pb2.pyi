from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeviceInfo(_message.Message):
    __slots__ = ("device", "login_at_ms")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    LOGIN_AT_MS_FIELD_NUMBER: _ClassVar[int]
    device: str
    login_at_ms: int
    def __init__(self, device: _Optional[str] = ..., login_at_ms: _Optional[int] = ...) -> None: ...

class UserDevices(_message.Message):
    __slots__ = ("user", "devices", "seq", "status", "text", "fields")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    USER_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    user: str
    devices: _containers.RepeatedCompositeFieldContainer[DeviceInfo]
    seq: int
    status: int
    text: str
    fields: _containers.ScalarMap[str, str]
    def __init__(self, user: _Optional[str] = ..., devices: _Optional[_Iterable[_Union[DeviceInfo, _Mapping]]] = ..., seq: _Optional[int] = ..., status: _Optional[int] = ..., text: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("store_fingerprint", "durable", "users")
    STORE_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    DURABLE_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    store_fingerprint: str
    durable: bool
    users: _containers.RepeatedCompositeFieldContainer[UserDevices]
    def __init__(self, store_fingerprint: _Optional[str] = ..., durable: _Optional[bool] = ..., users: _Optional[_Iterable[_Union[UserDevices, _Mapping]]] = ...) -> None: ...

class Deliver(_message.Message):
    __slots__ = ("message", "expect_recipient")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EXPECT_RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    message: bytes
    expect_recipient: bool
    def __init__(self, message: _Optional[bytes] = ..., expect_recipient: _Optional[bool] = ...) -> None: ...

class Acked(_message.Message):
    __slots__ = ("by", "sender", "message_ids")
    BY_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    by: str
    sender: str
    message_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, by: _Optional[str] = ..., sender: _Optional[str] = ..., message_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class WhoHas(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: str
    def __init__(self, user: _Optional[str] = ...) -> None: ...

class Kick(_message.Message):
    __slots__ = ("user", "device", "reason", "message")
    USER_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    user: str
    device: str
    reason: int
    message: str
    def __init__(self, user: _Optional[str] = ..., device: _Optional[str] = ..., reason: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class Target(_message.Message):
    __slots__ = ("user", "device")
    USER_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    user: str
    device: str
    def __init__(self, user: _Optional[str] = ..., device: _Optional[str] = ...) -> None: ...

class Push(_message.Message):
    __slots__ = ("frame", "targets", "kind", "stream", "all_users")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    ALL_USERS_FIELD_NUMBER: _ClassVar[int]
    frame: bytes
    targets: _containers.RepeatedCompositeFieldContainer[Target]
    kind: str
    stream: bool
    all_users: bool
    def __init__(self, frame: _Optional[bytes] = ..., targets: _Optional[_Iterable[_Union[Target, _Mapping]]] = ..., kind: _Optional[str] = ..., stream: _Optional[bool] = ..., all_users: _Optional[bool] = ...) -> None: ...

class Hide(_message.Message):
    __slots__ = ("user", "viewer")
    USER_FIELD_NUMBER: _ClassVar[int]
    VIEWER_FIELD_NUMBER: _ClassVar[int]
    user: str
    viewer: str
    def __init__(self, user: _Optional[str] = ..., viewer: _Optional[str] = ...) -> None: ...

class Invalidate(_message.Message):
    __slots__ = ("users", "hides")
    USERS_FIELD_NUMBER: _ClassVar[int]
    HIDES_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedScalarFieldContainer[str]
    hides: _containers.RepeatedCompositeFieldContainer[Hide]
    def __init__(self, users: _Optional[_Iterable[str]] = ..., hides: _Optional[_Iterable[_Union[Hide, _Mapping]]] = ...) -> None: ...

class Forward(_message.Message):
    __slots__ = ("user", "device", "frame", "whole")
    USER_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    WHOLE_FIELD_NUMBER: _ClassVar[int]
    user: str
    device: str
    frame: bytes
    whole: bool
    def __init__(self, user: _Optional[str] = ..., device: _Optional[str] = ..., frame: _Optional[bytes] = ..., whole: _Optional[bool] = ...) -> None: ...

class SessionGone(_message.Message):
    __slots__ = ("user", "device")
    USER_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    user: str
    device: str
    def __init__(self, user: _Optional[str] = ..., device: _Optional[str] = ...) -> None: ...

class FedRequest(_message.Message):
    __slots__ = ("hello", "deliver", "acked", "presence", "who_has", "kick", "push", "invalidate", "forward", "session_gone")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    DELIVER_FIELD_NUMBER: _ClassVar[int]
    ACKED_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_FIELD_NUMBER: _ClassVar[int]
    WHO_HAS_FIELD_NUMBER: _ClassVar[int]
    KICK_FIELD_NUMBER: _ClassVar[int]
    PUSH_FIELD_NUMBER: _ClassVar[int]
    INVALIDATE_FIELD_NUMBER: _ClassVar[int]
    FORWARD_FIELD_NUMBER: _ClassVar[int]
    SESSION_GONE_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    deliver: Deliver
    acked: Acked
    presence: UserDevices
    who_has: WhoHas
    kick: Kick
    push: Push
    invalidate: Invalidate
    forward: Forward
    session_gone: SessionGone
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., deliver: _Optional[_Union[Deliver, _Mapping]] = ..., acked: _Optional[_Union[Acked, _Mapping]] = ..., presence: _Optional[_Union[UserDevices, _Mapping]] = ..., who_has: _Optional[_Union[WhoHas, _Mapping]] = ..., kick: _Optional[_Union[Kick, _Mapping]] = ..., push: _Optional[_Union[Push, _Mapping]] = ..., invalidate: _Optional[_Union[Invalidate, _Mapping]] = ..., forward: _Optional[_Union[Forward, _Mapping]] = ..., session_gone: _Optional[_Union[SessionGone, _Mapping]] = ...) -> None: ...

class FedReply(_message.Message):
    __slots__ = ("status", "error", "recipient_devices", "sender_devices", "hello", "devices", "kicked", "frame", "pushed")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OK: _ClassVar[FedReply.Status]
        GONE: _ClassVar[FedReply.Status]
        STORE_MISMATCH: _ClassVar[FedReply.Status]
        BAD_REQUEST: _ClassVar[FedReply.Status]
    OK: FedReply.Status
    GONE: FedReply.Status
    STORE_MISMATCH: FedReply.Status
    BAD_REQUEST: FedReply.Status
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_DEVICES_FIELD_NUMBER: _ClassVar[int]
    SENDER_DEVICES_FIELD_NUMBER: _ClassVar[int]
    HELLO_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    KICKED_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    PUSHED_FIELD_NUMBER: _ClassVar[int]
    status: FedReply.Status
    error: str
    recipient_devices: int
    sender_devices: int
    hello: Hello
    devices: UserDevices
    kicked: bool
    frame: bytes
    pushed: int
    def __init__(self, status: _Optional[_Union[FedReply.Status, str]] = ..., error: _Optional[str] = ..., recipient_devices: _Optional[int] = ..., sender_devices: _Optional[int] = ..., hello: _Optional[_Union[Hello, _Mapping]] = ..., devices: _Optional[_Union[UserDevices, _Mapping]] = ..., kicked: _Optional[bool] = ..., frame: _Optional[bytes] = ..., pushed: _Optional[int] = ...) -> None: ...
