from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Account(_message.Message):
    __slots__ = ("user", "password_hash", "created_at")
    USER_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_HASH_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    user: str
    password_hash: str
    created_at: int
    def __init__(self, user: _Optional[str] = ..., password_hash: _Optional[str] = ..., created_at: _Optional[int] = ...) -> None: ...

class Token(_message.Message):
    __slots__ = ("user", "device", "expires_at")
    USER_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    user: str
    device: str
    expires_at: int
    def __init__(self, user: _Optional[str] = ..., device: _Optional[str] = ..., expires_at: _Optional[int] = ...) -> None: ...

class SendResult(_message.Message):
    __slots__ = ("message_id", "timestamp")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    message_id: int
    timestamp: int
    def __init__(self, message_id: _Optional[int] = ..., timestamp: _Optional[int] = ...) -> None: ...

class Cursor(_message.Message):
    __slots__ = ("acked",)
    ACKED_FIELD_NUMBER: _ClassVar[int]
    acked: int
    def __init__(self, acked: _Optional[int] = ...) -> None: ...
