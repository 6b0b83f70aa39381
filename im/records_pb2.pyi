from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Account(_message.Message):
    __slots__ = ("user", "password_hash", "created_at", "token_generation")
    USER_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_HASH_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_GENERATION_FIELD_NUMBER: _ClassVar[int]
    user: str
    password_hash: str
    created_at: int
    token_generation: int
    def __init__(self, user: _Optional[str] = ..., password_hash: _Optional[str] = ..., created_at: _Optional[int] = ..., token_generation: _Optional[int] = ...) -> None: ...

class Token(_message.Message):
    __slots__ = ("user", "device", "expires_at", "generation")
    USER_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    user: str
    device: str
    expires_at: int
    generation: int
    def __init__(self, user: _Optional[str] = ..., device: _Optional[str] = ..., expires_at: _Optional[int] = ..., generation: _Optional[int] = ...) -> None: ...

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

class Relation(_message.Message):
    __slots__ = ("peer", "state", "text", "since", "blocked")
    PEER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    peer: str
    state: int
    text: str
    since: int
    blocked: bool
    def __init__(self, peer: _Optional[str] = ..., state: _Optional[int] = ..., text: _Optional[str] = ..., since: _Optional[int] = ..., blocked: _Optional[bool] = ...) -> None: ...

class ReadMarker(_message.Message):
    __slots__ = ("conversation", "up_to", "at")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    UP_TO_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    conversation: str
    up_to: int
    at: int
    def __init__(self, conversation: _Optional[str] = ..., up_to: _Optional[int] = ..., at: _Optional[int] = ...) -> None: ...

class PresenceSetting(_message.Message):
    __slots__ = ("status", "text", "fields")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    status: int
    text: str
    fields: _containers.ScalarMap[str, str]
    def __init__(self, status: _Optional[int] = ..., text: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Group(_message.Message):
    __slots__ = ("group", "name", "topic", "avatar_url", "fields", "owner", "join_policy", "max_members", "muted", "dissolved", "created_at")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    AVATAR_URL_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    JOIN_POLICY_FIELD_NUMBER: _ClassVar[int]
    MAX_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    MUTED_FIELD_NUMBER: _ClassVar[int]
    DISSOLVED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    group: str
    name: str
    topic: str
    avatar_url: str
    fields: _containers.ScalarMap[str, str]
    owner: str
    join_policy: int
    max_members: int
    muted: bool
    dissolved: bool
    created_at: int
    def __init__(self, group: _Optional[str] = ..., name: _Optional[str] = ..., topic: _Optional[str] = ..., avatar_url: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ..., owner: _Optional[str] = ..., join_policy: _Optional[int] = ..., max_members: _Optional[int] = ..., muted: _Optional[bool] = ..., dissolved: _Optional[bool] = ..., created_at: _Optional[int] = ...) -> None: ...

class GroupMembership(_message.Message):
    __slots__ = ("user", "state", "role", "since", "muted_until", "join_seq", "left_seq", "read_seq", "text")
    USER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    MUTED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    JOIN_SEQ_FIELD_NUMBER: _ClassVar[int]
    LEFT_SEQ_FIELD_NUMBER: _ClassVar[int]
    READ_SEQ_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    user: str
    state: int
    role: int
    since: int
    muted_until: int
    join_seq: int
    left_seq: int
    read_seq: int
    text: str
    def __init__(self, user: _Optional[str] = ..., state: _Optional[int] = ..., role: _Optional[int] = ..., since: _Optional[int] = ..., muted_until: _Optional[int] = ..., join_seq: _Optional[int] = ..., left_seq: _Optional[int] = ..., read_seq: _Optional[int] = ..., text: _Optional[str] = ...) -> None: ...

class UserGroup(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: str
    def __init__(self, group: _Optional[str] = ...) -> None: ...
