from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_CODE_UNSPECIFIED: _ClassVar[ErrorCode]
    BAD_REQUEST: _ClassVar[ErrorCode]
    UNAUTHENTICATED: _ClassVar[ErrorCode]
    AUTH_FAILED: _ClassVar[ErrorCode]
    FORBIDDEN: _ClassVar[ErrorCode]
    NOT_FOUND: _ClassVar[ErrorCode]
    CONFLICT: _ClassVar[ErrorCode]
    TOO_LARGE: _ClassVar[ErrorCode]
    UNKNOWN_OPERATION: _ClassVar[ErrorCode]
    DEVICE_LIMIT: _ClassVar[ErrorCode]
    RATE_LIMITED: _ClassVar[ErrorCode]
    ALREADY_LOGGED_IN: _ClassVar[ErrorCode]
    RECIPIENT_OFFLINE: _ClassVar[ErrorCode]
    INTERNAL: _ClassVar[ErrorCode]
    STORE_UNAVAILABLE: _ClassVar[ErrorCode]

class KickReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KICK_REASON_UNSPECIFIED: _ClassVar[KickReason]
    REPLACED: _ClassVar[KickReason]
    DEVICE_LIMIT_KICK: _ClassVar[KickReason]
    SHUTDOWN: _ClassVar[KickReason]
    FLOOD: _ClassVar[KickReason]
    ADMIN: _ClassVar[KickReason]
    AUTH_TIMEOUT: _ClassVar[KickReason]
ERROR_CODE_UNSPECIFIED: ErrorCode
BAD_REQUEST: ErrorCode
UNAUTHENTICATED: ErrorCode
AUTH_FAILED: ErrorCode
FORBIDDEN: ErrorCode
NOT_FOUND: ErrorCode
CONFLICT: ErrorCode
TOO_LARGE: ErrorCode
UNKNOWN_OPERATION: ErrorCode
DEVICE_LIMIT: ErrorCode
RATE_LIMITED: ErrorCode
ALREADY_LOGGED_IN: ErrorCode
RECIPIENT_OFFLINE: ErrorCode
INTERNAL: ErrorCode
STORE_UNAVAILABLE: ErrorCode
KICK_REASON_UNSPECIFIED: KickReason
REPLACED: KickReason
DEVICE_LIMIT_KICK: KickReason
SHUTDOWN: KickReason
FLOOD: KickReason
ADMIN: KickReason
AUTH_TIMEOUT: KickReason

class ClientFrame(_message.Message):
    __slots__ = ("id", "register", "login", "resume", "logout", "send", "delivery_ack", "sync", "history", "subscribe", "unsubscribe", "ping")
    ID_FIELD_NUMBER: _ClassVar[int]
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    LOGOUT_FIELD_NUMBER: _ClassVar[int]
    SEND_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ACK_FIELD_NUMBER: _ClassVar[int]
    SYNC_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    UNSUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    id: int
    register: Register
    login: Login
    resume: Resume
    logout: Logout
    send: Send
    delivery_ack: DeliveryAck
    sync: Sync
    history: History
    subscribe: Subscribe
    unsubscribe: Unsubscribe
    ping: Ping
    def __init__(self, id: _Optional[int] = ..., register: _Optional[_Union[Register, _Mapping]] = ..., login: _Optional[_Union[Login, _Mapping]] = ..., resume: _Optional[_Union[Resume, _Mapping]] = ..., logout: _Optional[_Union[Logout, _Mapping]] = ..., send: _Optional[_Union[Send, _Mapping]] = ..., delivery_ack: _Optional[_Union[DeliveryAck, _Mapping]] = ..., sync: _Optional[_Union[Sync, _Mapping]] = ..., history: _Optional[_Union[History, _Mapping]] = ..., subscribe: _Optional[_Union[Subscribe, _Mapping]] = ..., unsubscribe: _Optional[_Union[Unsubscribe, _Mapping]] = ..., ping: _Optional[_Union[Ping, _Mapping]] = ...) -> None: ...

class ServerFrame(_message.Message):
    __slots__ = ("id", "error", "session", "sent", "page", "presences", "ok", "pong", "message", "presence", "delivered", "kicked")
    ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    PRESENCES_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    PONG_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    KICKED_FIELD_NUMBER: _ClassVar[int]
    id: int
    error: Error
    session: Session
    sent: Sent
    page: MessagePage
    presences: PresenceList
    ok: Ok
    pong: Pong
    message: Message
    presence: Presence
    delivered: Delivered
    kicked: Kicked
    def __init__(self, id: _Optional[int] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., session: _Optional[_Union[Session, _Mapping]] = ..., sent: _Optional[_Union[Sent, _Mapping]] = ..., page: _Optional[_Union[MessagePage, _Mapping]] = ..., presences: _Optional[_Union[PresenceList, _Mapping]] = ..., ok: _Optional[_Union[Ok, _Mapping]] = ..., pong: _Optional[_Union[Pong, _Mapping]] = ..., message: _Optional[_Union[Message, _Mapping]] = ..., presence: _Optional[_Union[Presence, _Mapping]] = ..., delivered: _Optional[_Union[Delivered, _Mapping]] = ..., kicked: _Optional[_Union[Kicked, _Mapping]] = ...) -> None: ...

class Register(_message.Message):
    __slots__ = ("user", "password", "device")
    USER_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    user: str
    password: str
    device: str
    def __init__(self, user: _Optional[str] = ..., password: _Optional[str] = ..., device: _Optional[str] = ...) -> None: ...

class Login(_message.Message):
    __slots__ = ("user", "password", "device")
    USER_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    user: str
    password: str
    device: str
    def __init__(self, user: _Optional[str] = ..., password: _Optional[str] = ..., device: _Optional[str] = ...) -> None: ...

class Resume(_message.Message):
    __slots__ = ("token", "device")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    token: str
    device: str
    def __init__(self, token: _Optional[str] = ..., device: _Optional[str] = ...) -> None: ...

class Logout(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Send(_message.Message):
    __slots__ = ("to", "type", "text", "data", "ext", "client_msg_id")
    class ExtEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TO_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    EXT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    to: str
    type: int
    text: str
    data: bytes
    ext: _containers.ScalarMap[str, str]
    client_msg_id: str
    def __init__(self, to: _Optional[str] = ..., type: _Optional[int] = ..., text: _Optional[str] = ..., data: _Optional[bytes] = ..., ext: _Optional[_Mapping[str, str]] = ..., client_msg_id: _Optional[str] = ...) -> None: ...

class DeliveryAck(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ids: _Optional[_Iterable[int]] = ...) -> None: ...

class Sync(_message.Message):
    __slots__ = ("after", "limit")
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    after: int
    limit: int
    def __init__(self, after: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class History(_message.Message):
    __slots__ = ("peer", "before", "limit")
    PEER_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    peer: str
    before: int
    limit: int
    def __init__(self, peer: _Optional[str] = ..., before: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class Subscribe(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, users: _Optional[_Iterable[str]] = ...) -> None: ...

class Unsubscribe(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, users: _Optional[_Iterable[str]] = ...) -> None: ...

class Ping(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message", "retry_after")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    code: ErrorCode
    message: str
    retry_after: float
    def __init__(self, code: _Optional[_Union[ErrorCode, str]] = ..., message: _Optional[str] = ..., retry_after: _Optional[float] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("user", "device", "token", "token_expires_at", "acked_cursor", "server_time", "node", "store")
    USER_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ACKED_CURSOR_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    user: str
    device: str
    token: str
    token_expires_at: int
    acked_cursor: int
    server_time: int
    node: str
    store: bool
    def __init__(self, user: _Optional[str] = ..., device: _Optional[str] = ..., token: _Optional[str] = ..., token_expires_at: _Optional[int] = ..., acked_cursor: _Optional[int] = ..., server_time: _Optional[int] = ..., node: _Optional[str] = ..., store: _Optional[bool] = ...) -> None: ...

class Sent(_message.Message):
    __slots__ = ("message_id", "timestamp", "duplicate", "delivered_devices")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_DEVICES_FIELD_NUMBER: _ClassVar[int]
    message_id: int
    timestamp: int
    duplicate: bool
    delivered_devices: int
    def __init__(self, message_id: _Optional[int] = ..., timestamp: _Optional[int] = ..., duplicate: _Optional[bool] = ..., delivered_devices: _Optional[int] = ...) -> None: ...

class MessagePage(_message.Message):
    __slots__ = ("messages", "more", "cursor")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    more: bool
    cursor: int
    def __init__(self, messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., more: _Optional[bool] = ..., cursor: _Optional[int] = ...) -> None: ...

class PresenceList(_message.Message):
    __slots__ = ("presences",)
    PRESENCES_FIELD_NUMBER: _ClassVar[int]
    presences: _containers.RepeatedCompositeFieldContainer[Presence]
    def __init__(self, presences: _Optional[_Iterable[_Union[Presence, _Mapping]]] = ...) -> None: ...

class Ok(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Pong(_message.Message):
    __slots__ = ("server_time",)
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    server_time: int
    def __init__(self, server_time: _Optional[int] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("to", "type", "text", "data", "ext", "client_msg_id", "id", "timestamp", "from_device")
    class ExtEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TO_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    EXT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    FROM_DEVICE_FIELD_NUMBER: _ClassVar[int]
    to: str
    type: int
    text: str
    data: bytes
    ext: _containers.ScalarMap[str, str]
    client_msg_id: str
    id: int
    timestamp: int
    from_device: str
    def __init__(self, to: _Optional[str] = ..., type: _Optional[int] = ..., text: _Optional[str] = ..., data: _Optional[bytes] = ..., ext: _Optional[_Mapping[str, str]] = ..., client_msg_id: _Optional[str] = ..., id: _Optional[int] = ..., timestamp: _Optional[int] = ..., from_device: _Optional[str] = ..., **kwargs) -> None: ...

class Presence(_message.Message):
    __slots__ = ("user", "online", "since", "devices")
    USER_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    user: str
    online: bool
    since: int
    devices: int
    def __init__(self, user: _Optional[str] = ..., online: _Optional[bool] = ..., since: _Optional[int] = ..., devices: _Optional[int] = ...) -> None: ...

class Delivered(_message.Message):
    __slots__ = ("by", "message_ids")
    BY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    by: str
    message_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, by: _Optional[str] = ..., message_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class Kicked(_message.Message):
    __slots__ = ("reason", "message")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reason: KickReason
    message: str
    def __init__(self, reason: _Optional[_Union[KickReason, str]] = ..., message: _Optional[str] = ...) -> None: ...
