from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PresenceStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRESENCE_STATUS_UNSPECIFIED: _ClassVar[PresenceStatus]
    AVAILABLE: _ClassVar[PresenceStatus]
    AWAY: _ClassVar[PresenceStatus]
    BUSY: _ClassVar[PresenceStatus]
    INVISIBLE: _ClassVar[PresenceStatus]

class FriendAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FRIEND_ACTION_UNSPECIFIED: _ClassVar[FriendAction]
    FRIEND_REQUEST: _ClassVar[FriendAction]
    FRIEND_ACCEPT: _ClassVar[FriendAction]
    FRIEND_REJECT: _ClassVar[FriendAction]
    FRIEND_REMOVE: _ClassVar[FriendAction]

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
    NOT_FRIENDS: _ClassVar[ErrorCode]
    BLOCKED: _ClassVar[ErrorCode]
    RECALL_WINDOW_EXPIRED: _ClassVar[ErrorCode]
    EDIT_WINDOW_EXPIRED: _ClassVar[ErrorCode]
    NOT_A_MEMBER: _ClassVar[ErrorCode]
    GROUP_DISSOLVED: _ClassVar[ErrorCode]
    BANNED: _ClassVar[ErrorCode]
    MUTED: _ClassVar[ErrorCode]
    GROUP_FULL: _ClassVar[ErrorCode]
    UPLOAD_UNKNOWN: _ClassVar[ErrorCode]

class ContactState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTACT_STATE_UNSPECIFIED: _ClassVar[ContactState]
    FRIEND: _ClassVar[ContactState]
    REQUEST_SENT: _ClassVar[ContactState]
    REQUEST_RECEIVED: _ClassVar[ContactState]

class MessageType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_TYPE_UNSPECIFIED: _ClassVar[MessageType]
    TYPE_NORMAL: _ClassVar[MessageType]
    TYPE_SYSTEM: _ClassVar[MessageType]
    TYPE_RECALL: _ClassVar[MessageType]
    TYPE_EDIT: _ClassVar[MessageType]
    TYPE_BURN: _ClassVar[MessageType]
    TYPE_READ: _ClassVar[MessageType]
    TYPE_FRIEND_REQUEST: _ClassVar[MessageType]
    TYPE_FRIEND_ACCEPTED: _ClassVar[MessageType]
    TYPE_FRIEND_REJECTED: _ClassVar[MessageType]
    TYPE_FRIEND_REMOVED: _ClassVar[MessageType]
    TYPE_GROUP_CREATED: _ClassVar[MessageType]
    TYPE_GROUP_INFO_CHANGED: _ClassVar[MessageType]
    TYPE_GROUP_DISSOLVED: _ClassVar[MessageType]
    TYPE_MEMBER_JOINED: _ClassVar[MessageType]
    TYPE_MEMBER_LEFT: _ClassVar[MessageType]
    TYPE_MEMBER_KICKED: _ClassVar[MessageType]
    TYPE_MEMBER_BANNED: _ClassVar[MessageType]
    TYPE_MEMBER_UNBANNED: _ClassVar[MessageType]
    TYPE_MEMBER_MUTED: _ClassVar[MessageType]
    TYPE_MEMBER_UNMUTED: _ClassVar[MessageType]
    TYPE_ROLE_CHANGED: _ClassVar[MessageType]
    TYPE_OWNER_CHANGED: _ClassVar[MessageType]
    TYPE_APPLICATION_REJECTED: _ClassVar[MessageType]
    TYPE_MEMBER_APPLIED: _ClassVar[MessageType]
    TYPE_ROOM_JOINED: _ClassVar[MessageType]

class KickReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KICK_REASON_UNSPECIFIED: _ClassVar[KickReason]
    REPLACED: _ClassVar[KickReason]
    DEVICE_LIMIT_KICK: _ClassVar[KickReason]
    SHUTDOWN: _ClassVar[KickReason]
    FLOOD: _ClassVar[KickReason]
    ADMIN: _ClassVar[KickReason]
    AUTH_TIMEOUT: _ClassVar[KickReason]
    CREDENTIALS_CHANGED: _ClassVar[KickReason]

class GroupRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GROUP_ROLE_UNSPECIFIED: _ClassVar[GroupRole]
    GROUP_MEMBER: _ClassVar[GroupRole]
    GROUP_ADMIN: _ClassVar[GroupRole]
    GROUP_OWNER: _ClassVar[GroupRole]

class JoinPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOIN_POLICY_UNSPECIFIED: _ClassVar[JoinPolicy]
    JOIN_OPEN: _ClassVar[JoinPolicy]
    JOIN_APPROVAL: _ClassVar[JoinPolicy]

class GroupAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GROUP_ACTION_UNSPECIFIED: _ClassVar[GroupAction]
    GROUP_APPLY: _ClassVar[GroupAction]
    GROUP_APPROVE: _ClassVar[GroupAction]
    GROUP_REJECT: _ClassVar[GroupAction]
    GROUP_INVITE: _ClassVar[GroupAction]
    GROUP_LEAVE: _ClassVar[GroupAction]
    GROUP_KICK: _ClassVar[GroupAction]
    GROUP_BAN: _ClassVar[GroupAction]
    GROUP_UNBAN: _ClassVar[GroupAction]
    GROUP_MUTE: _ClassVar[GroupAction]
    GROUP_UNMUTE: _ClassVar[GroupAction]
    GROUP_SET_ROLE: _ClassVar[GroupAction]
    GROUP_TRANSFER: _ClassVar[GroupAction]

class PublishPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PUBLISH_POLICY_UNSPECIFIED: _ClassVar[PublishPolicy]
    PUBLISH_ANYONE: _ClassVar[PublishPolicy]
    PUBLISH_OWNER: _ClassVar[PublishPolicy]
    PUBLISH_LISTED: _ClassVar[PublishPolicy]
PRESENCE_STATUS_UNSPECIFIED: PresenceStatus
AVAILABLE: PresenceStatus
AWAY: PresenceStatus
BUSY: PresenceStatus
INVISIBLE: PresenceStatus
FRIEND_ACTION_UNSPECIFIED: FriendAction
FRIEND_REQUEST: FriendAction
FRIEND_ACCEPT: FriendAction
FRIEND_REJECT: FriendAction
FRIEND_REMOVE: FriendAction
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
NOT_FRIENDS: ErrorCode
BLOCKED: ErrorCode
RECALL_WINDOW_EXPIRED: ErrorCode
EDIT_WINDOW_EXPIRED: ErrorCode
NOT_A_MEMBER: ErrorCode
GROUP_DISSOLVED: ErrorCode
BANNED: ErrorCode
MUTED: ErrorCode
GROUP_FULL: ErrorCode
UPLOAD_UNKNOWN: ErrorCode
CONTACT_STATE_UNSPECIFIED: ContactState
FRIEND: ContactState
REQUEST_SENT: ContactState
REQUEST_RECEIVED: ContactState
MESSAGE_TYPE_UNSPECIFIED: MessageType
TYPE_NORMAL: MessageType
TYPE_SYSTEM: MessageType
TYPE_RECALL: MessageType
TYPE_EDIT: MessageType
TYPE_BURN: MessageType
TYPE_READ: MessageType
TYPE_FRIEND_REQUEST: MessageType
TYPE_FRIEND_ACCEPTED: MessageType
TYPE_FRIEND_REJECTED: MessageType
TYPE_FRIEND_REMOVED: MessageType
TYPE_GROUP_CREATED: MessageType
TYPE_GROUP_INFO_CHANGED: MessageType
TYPE_GROUP_DISSOLVED: MessageType
TYPE_MEMBER_JOINED: MessageType
TYPE_MEMBER_LEFT: MessageType
TYPE_MEMBER_KICKED: MessageType
TYPE_MEMBER_BANNED: MessageType
TYPE_MEMBER_UNBANNED: MessageType
TYPE_MEMBER_MUTED: MessageType
TYPE_MEMBER_UNMUTED: MessageType
TYPE_ROLE_CHANGED: MessageType
TYPE_OWNER_CHANGED: MessageType
TYPE_APPLICATION_REJECTED: MessageType
TYPE_MEMBER_APPLIED: MessageType
TYPE_ROOM_JOINED: MessageType
KICK_REASON_UNSPECIFIED: KickReason
REPLACED: KickReason
DEVICE_LIMIT_KICK: KickReason
SHUTDOWN: KickReason
FLOOD: KickReason
ADMIN: KickReason
AUTH_TIMEOUT: KickReason
CREDENTIALS_CHANGED: KickReason
GROUP_ROLE_UNSPECIFIED: GroupRole
GROUP_MEMBER: GroupRole
GROUP_ADMIN: GroupRole
GROUP_OWNER: GroupRole
JOIN_POLICY_UNSPECIFIED: JoinPolicy
JOIN_OPEN: JoinPolicy
JOIN_APPROVAL: JoinPolicy
GROUP_ACTION_UNSPECIFIED: GroupAction
GROUP_APPLY: GroupAction
GROUP_APPROVE: GroupAction
GROUP_REJECT: GroupAction
GROUP_INVITE: GroupAction
GROUP_LEAVE: GroupAction
GROUP_KICK: GroupAction
GROUP_BAN: GroupAction
GROUP_UNBAN: GroupAction
GROUP_MUTE: GroupAction
GROUP_UNMUTE: GroupAction
GROUP_SET_ROLE: GroupAction
GROUP_TRANSFER: GroupAction
PUBLISH_POLICY_UNSPECIFIED: PublishPolicy
PUBLISH_ANYONE: PublishPolicy
PUBLISH_OWNER: PublishPolicy
PUBLISH_LISTED: PublishPolicy

class ClientFrame(_message.Message):
    __slots__ = ("id", "register", "login", "resume", "logout", "send", "delivery_ack", "sync", "history", "subscribe", "unsubscribe", "ping", "recall", "edit", "burn", "read", "typing", "set_presence", "friend", "block", "unblock", "roster", "set_profile", "get_profile", "change_password", "group_create", "group_info", "group_modify", "group_dissolve", "group_member", "group_members", "my_groups", "group_send", "group_sync", "group_read", "room_create", "room_join", "room_leave", "room_members", "room_send", "room_publishers", "stream_send", "chunk_start", "chunk", "chunk_end")
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
    RECALL_FIELD_NUMBER: _ClassVar[int]
    EDIT_FIELD_NUMBER: _ClassVar[int]
    BURN_FIELD_NUMBER: _ClassVar[int]
    READ_FIELD_NUMBER: _ClassVar[int]
    TYPING_FIELD_NUMBER: _ClassVar[int]
    SET_PRESENCE_FIELD_NUMBER: _ClassVar[int]
    FRIEND_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    UNBLOCK_FIELD_NUMBER: _ClassVar[int]
    ROSTER_FIELD_NUMBER: _ClassVar[int]
    SET_PROFILE_FIELD_NUMBER: _ClassVar[int]
    GET_PROFILE_FIELD_NUMBER: _ClassVar[int]
    CHANGE_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    GROUP_CREATE_FIELD_NUMBER: _ClassVar[int]
    GROUP_INFO_FIELD_NUMBER: _ClassVar[int]
    GROUP_MODIFY_FIELD_NUMBER: _ClassVar[int]
    GROUP_DISSOLVE_FIELD_NUMBER: _ClassVar[int]
    GROUP_MEMBER_FIELD_NUMBER: _ClassVar[int]
    GROUP_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    MY_GROUPS_FIELD_NUMBER: _ClassVar[int]
    GROUP_SEND_FIELD_NUMBER: _ClassVar[int]
    GROUP_SYNC_FIELD_NUMBER: _ClassVar[int]
    GROUP_READ_FIELD_NUMBER: _ClassVar[int]
    ROOM_CREATE_FIELD_NUMBER: _ClassVar[int]
    ROOM_JOIN_FIELD_NUMBER: _ClassVar[int]
    ROOM_LEAVE_FIELD_NUMBER: _ClassVar[int]
    ROOM_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    ROOM_SEND_FIELD_NUMBER: _ClassVar[int]
    ROOM_PUBLISHERS_FIELD_NUMBER: _ClassVar[int]
    STREAM_SEND_FIELD_NUMBER: _ClassVar[int]
    CHUNK_START_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    CHUNK_END_FIELD_NUMBER: _ClassVar[int]
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
    recall: Recall
    edit: Edit
    burn: Burn
    read: Read
    typing: Typing
    set_presence: SetPresence
    friend: Friend
    block: Block
    unblock: Unblock
    roster: GetRoster
    set_profile: SetProfile
    get_profile: GetProfile
    change_password: ChangePassword
    group_create: GroupCreate
    group_info: GroupGet
    group_modify: GroupModify
    group_dissolve: GroupDissolve
    group_member: GroupMember
    group_members: GroupMembers
    my_groups: MyGroups
    group_send: GroupSend
    group_sync: GroupSync
    group_read: GroupRead
    room_create: RoomCreate
    room_join: RoomJoin
    room_leave: RoomLeave
    room_members: RoomMembers
    room_send: RoomSend
    room_publishers: RoomPublishers
    stream_send: StreamSend
    chunk_start: ChunkStart
    chunk: Chunk
    chunk_end: ChunkEnd
    def __init__(self, id: _Optional[int] = ..., register: _Optional[_Union[Register, _Mapping]] = ..., login: _Optional[_Union[Login, _Mapping]] = ..., resume: _Optional[_Union[Resume, _Mapping]] = ..., logout: _Optional[_Union[Logout, _Mapping]] = ..., send: _Optional[_Union[Send, _Mapping]] = ..., delivery_ack: _Optional[_Union[DeliveryAck, _Mapping]] = ..., sync: _Optional[_Union[Sync, _Mapping]] = ..., history: _Optional[_Union[History, _Mapping]] = ..., subscribe: _Optional[_Union[Subscribe, _Mapping]] = ..., unsubscribe: _Optional[_Union[Unsubscribe, _Mapping]] = ..., ping: _Optional[_Union[Ping, _Mapping]] = ..., recall: _Optional[_Union[Recall, _Mapping]] = ..., edit: _Optional[_Union[Edit, _Mapping]] = ..., burn: _Optional[_Union[Burn, _Mapping]] = ..., read: _Optional[_Union[Read, _Mapping]] = ..., typing: _Optional[_Union[Typing, _Mapping]] = ..., set_presence: _Optional[_Union[SetPresence, _Mapping]] = ..., friend: _Optional[_Union[Friend, _Mapping]] = ..., block: _Optional[_Union[Block, _Mapping]] = ..., unblock: _Optional[_Union[Unblock, _Mapping]] = ..., roster: _Optional[_Union[GetRoster, _Mapping]] = ..., set_profile: _Optional[_Union[SetProfile, _Mapping]] = ..., get_profile: _Optional[_Union[GetProfile, _Mapping]] = ..., change_password: _Optional[_Union[ChangePassword, _Mapping]] = ..., group_create: _Optional[_Union[GroupCreate, _Mapping]] = ..., group_info: _Optional[_Union[GroupGet, _Mapping]] = ..., group_modify: _Optional[_Union[GroupModify, _Mapping]] = ..., group_dissolve: _Optional[_Union[GroupDissolve, _Mapping]] = ..., group_member: _Optional[_Union[GroupMember, _Mapping]] = ..., group_members: _Optional[_Union[GroupMembers, _Mapping]] = ..., my_groups: _Optional[_Union[MyGroups, _Mapping]] = ..., group_send: _Optional[_Union[GroupSend, _Mapping]] = ..., group_sync: _Optional[_Union[GroupSync, _Mapping]] = ..., group_read: _Optional[_Union[GroupRead, _Mapping]] = ..., room_create: _Optional[_Union[RoomCreate, _Mapping]] = ..., room_join: _Optional[_Union[RoomJoin, _Mapping]] = ..., room_leave: _Optional[_Union[RoomLeave, _Mapping]] = ..., room_members: _Optional[_Union[RoomMembers, _Mapping]] = ..., room_send: _Optional[_Union[RoomSend, _Mapping]] = ..., room_publishers: _Optional[_Union[RoomPublishers, _Mapping]] = ..., stream_send: _Optional[_Union[StreamSend, _Mapping]] = ..., chunk_start: _Optional[_Union[ChunkStart, _Mapping]] = ..., chunk: _Optional[_Union[Chunk, _Mapping]] = ..., chunk_end: _Optional[_Union[ChunkEnd, _Mapping]] = ...) -> None: ...

class ServerFrame(_message.Message):
    __slots__ = ("id", "error", "session", "sent", "page", "presences", "ok", "pong", "roster", "profile", "message", "presence", "delivered", "kicked", "typing", "group", "group_members", "groups", "group_page", "room", "chunk_accepted", "group_message", "room_message", "stream")
    ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    PRESENCES_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    PONG_FIELD_NUMBER: _ClassVar[int]
    ROSTER_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    KICKED_FIELD_NUMBER: _ClassVar[int]
    TYPING_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    GROUP_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    GROUP_PAGE_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    CHUNK_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    GROUP_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ROOM_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    id: int
    error: Error
    session: Session
    sent: Sent
    page: MessagePage
    presences: PresenceList
    ok: Ok
    pong: Pong
    roster: Roster
    profile: Profile
    message: Message
    presence: Presence
    delivered: Delivered
    kicked: Kicked
    typing: TypingNotice
    group: GroupInfo
    group_members: GroupMemberPage
    groups: GroupList
    group_page: GroupPage
    room: RoomInfo
    chunk_accepted: ChunkAccepted
    group_message: Message
    room_message: Message
    stream: StreamFrame
    def __init__(self, id: _Optional[int] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., session: _Optional[_Union[Session, _Mapping]] = ..., sent: _Optional[_Union[Sent, _Mapping]] = ..., page: _Optional[_Union[MessagePage, _Mapping]] = ..., presences: _Optional[_Union[PresenceList, _Mapping]] = ..., ok: _Optional[_Union[Ok, _Mapping]] = ..., pong: _Optional[_Union[Pong, _Mapping]] = ..., roster: _Optional[_Union[Roster, _Mapping]] = ..., profile: _Optional[_Union[Profile, _Mapping]] = ..., message: _Optional[_Union[Message, _Mapping]] = ..., presence: _Optional[_Union[Presence, _Mapping]] = ..., delivered: _Optional[_Union[Delivered, _Mapping]] = ..., kicked: _Optional[_Union[Kicked, _Mapping]] = ..., typing: _Optional[_Union[TypingNotice, _Mapping]] = ..., group: _Optional[_Union[GroupInfo, _Mapping]] = ..., group_members: _Optional[_Union[GroupMemberPage, _Mapping]] = ..., groups: _Optional[_Union[GroupList, _Mapping]] = ..., group_page: _Optional[_Union[GroupPage, _Mapping]] = ..., room: _Optional[_Union[RoomInfo, _Mapping]] = ..., chunk_accepted: _Optional[_Union[ChunkAccepted, _Mapping]] = ..., group_message: _Optional[_Union[Message, _Mapping]] = ..., room_message: _Optional[_Union[Message, _Mapping]] = ..., stream: _Optional[_Union[StreamFrame, _Mapping]] = ...) -> None: ...

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
    __slots__ = ("to", "type", "text", "data", "ext", "client_msg_id", "burn", "burn_seconds")
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
    BURN_FIELD_NUMBER: _ClassVar[int]
    BURN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    to: str
    type: int
    text: str
    data: bytes
    ext: _containers.ScalarMap[str, str]
    client_msg_id: str
    burn: bool
    burn_seconds: int
    def __init__(self, to: _Optional[str] = ..., type: _Optional[int] = ..., text: _Optional[str] = ..., data: _Optional[bytes] = ..., ext: _Optional[_Mapping[str, str]] = ..., client_msg_id: _Optional[str] = ..., burn: _Optional[bool] = ..., burn_seconds: _Optional[int] = ...) -> None: ...

class DeliveryAck(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ids: _Optional[_Iterable[int]] = ...) -> None: ...

class Sync(_message.Message):
    __slots__ = ("after", "limit", "unread")
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    UNREAD_FIELD_NUMBER: _ClassVar[int]
    after: int
    limit: int
    unread: bool
    def __init__(self, after: _Optional[int] = ..., limit: _Optional[int] = ..., unread: _Optional[bool] = ...) -> None: ...

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

class Recall(_message.Message):
    __slots__ = ("message_id",)
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    message_id: int
    def __init__(self, message_id: _Optional[int] = ...) -> None: ...

class Edit(_message.Message):
    __slots__ = ("message_id", "text")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    message_id: int
    text: str
    def __init__(self, message_id: _Optional[int] = ..., text: _Optional[str] = ...) -> None: ...

class Burn(_message.Message):
    __slots__ = ("message_id",)
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    message_id: int
    def __init__(self, message_id: _Optional[int] = ...) -> None: ...

class Read(_message.Message):
    __slots__ = ("conversation", "up_to")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    UP_TO_FIELD_NUMBER: _ClassVar[int]
    conversation: str
    up_to: int
    def __init__(self, conversation: _Optional[str] = ..., up_to: _Optional[int] = ...) -> None: ...

class Typing(_message.Message):
    __slots__ = ("to", "active")
    TO_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    to: str
    active: bool
    def __init__(self, to: _Optional[str] = ..., active: _Optional[bool] = ...) -> None: ...

class SetPresence(_message.Message):
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
    status: PresenceStatus
    text: str
    fields: _containers.ScalarMap[str, str]
    def __init__(self, status: _Optional[_Union[PresenceStatus, str]] = ..., text: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Friend(_message.Message):
    __slots__ = ("user", "action", "text")
    USER_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    user: str
    action: FriendAction
    text: str
    def __init__(self, user: _Optional[str] = ..., action: _Optional[_Union[FriendAction, str]] = ..., text: _Optional[str] = ...) -> None: ...

class Block(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: str
    def __init__(self, user: _Optional[str] = ...) -> None: ...

class Unblock(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: str
    def __init__(self, user: _Optional[str] = ...) -> None: ...

class GetRoster(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Profile(_message.Message):
    __slots__ = ("user", "nickname", "avatar_url", "fields", "updated_at")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    USER_FIELD_NUMBER: _ClassVar[int]
    NICKNAME_FIELD_NUMBER: _ClassVar[int]
    AVATAR_URL_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    user: str
    nickname: str
    avatar_url: str
    fields: _containers.ScalarMap[str, str]
    updated_at: int
    def __init__(self, user: _Optional[str] = ..., nickname: _Optional[str] = ..., avatar_url: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ..., updated_at: _Optional[int] = ...) -> None: ...

class SetProfile(_message.Message):
    __slots__ = ("profile",)
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    profile: Profile
    def __init__(self, profile: _Optional[_Union[Profile, _Mapping]] = ...) -> None: ...

class GetProfile(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: str
    def __init__(self, user: _Optional[str] = ...) -> None: ...

class ChangePassword(_message.Message):
    __slots__ = ("old_password", "new_password")
    OLD_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    NEW_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    old_password: str
    new_password: str
    def __init__(self, old_password: _Optional[str] = ..., new_password: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("user", "device", "token", "token_expires_at", "acked_cursor", "server_time", "node", "store", "send_epoch")
    USER_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ACKED_CURSOR_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    SEND_EPOCH_FIELD_NUMBER: _ClassVar[int]
    user: str
    device: str
    token: str
    token_expires_at: int
    acked_cursor: int
    server_time: int
    node: str
    store: bool
    send_epoch: str
    def __init__(self, user: _Optional[str] = ..., device: _Optional[str] = ..., token: _Optional[str] = ..., token_expires_at: _Optional[int] = ..., acked_cursor: _Optional[int] = ..., server_time: _Optional[int] = ..., node: _Optional[str] = ..., store: _Optional[bool] = ..., send_epoch: _Optional[str] = ...) -> None: ...

class Sent(_message.Message):
    __slots__ = ("message_id", "timestamp", "duplicate", "delivered_devices", "send_epoch", "seq")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_DEVICES_FIELD_NUMBER: _ClassVar[int]
    SEND_EPOCH_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    message_id: int
    timestamp: int
    duplicate: bool
    delivered_devices: int
    send_epoch: str
    seq: int
    def __init__(self, message_id: _Optional[int] = ..., timestamp: _Optional[int] = ..., duplicate: _Optional[bool] = ..., delivered_devices: _Optional[int] = ..., send_epoch: _Optional[str] = ..., seq: _Optional[int] = ...) -> None: ...

class MessagePage(_message.Message):
    __slots__ = ("messages", "more", "cursor", "unread")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    UNREAD_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    more: bool
    cursor: int
    unread: _containers.RepeatedCompositeFieldContainer[Unread]
    def __init__(self, messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., more: _Optional[bool] = ..., cursor: _Optional[int] = ..., unread: _Optional[_Iterable[_Union[Unread, _Mapping]]] = ...) -> None: ...

class Unread(_message.Message):
    __slots__ = ("conversation", "count", "read_up_to", "last_id")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    READ_UP_TO_FIELD_NUMBER: _ClassVar[int]
    LAST_ID_FIELD_NUMBER: _ClassVar[int]
    conversation: str
    count: int
    read_up_to: int
    last_id: int
    def __init__(self, conversation: _Optional[str] = ..., count: _Optional[int] = ..., read_up_to: _Optional[int] = ..., last_id: _Optional[int] = ...) -> None: ...

class Contact(_message.Message):
    __slots__ = ("user", "state", "text", "since")
    USER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    user: str
    state: ContactState
    text: str
    since: int
    def __init__(self, user: _Optional[str] = ..., state: _Optional[_Union[ContactState, str]] = ..., text: _Optional[str] = ..., since: _Optional[int] = ...) -> None: ...

class Roster(_message.Message):
    __slots__ = ("contacts", "blocked")
    CONTACTS_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    contacts: _containers.RepeatedCompositeFieldContainer[Contact]
    blocked: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, contacts: _Optional[_Iterable[_Union[Contact, _Mapping]]] = ..., blocked: _Optional[_Iterable[str]] = ...) -> None: ...

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
    __slots__ = ("to", "type", "text", "data", "ext", "client_msg_id", "id", "timestamp", "from_device", "burn", "burn_seconds", "ref", "edited_at", "recalled", "burn_at", "group", "seq", "room")
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
    BURN_FIELD_NUMBER: _ClassVar[int]
    BURN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    EDITED_AT_FIELD_NUMBER: _ClassVar[int]
    RECALLED_FIELD_NUMBER: _ClassVar[int]
    BURN_AT_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    to: str
    type: int
    text: str
    data: bytes
    ext: _containers.ScalarMap[str, str]
    client_msg_id: str
    id: int
    timestamp: int
    from_device: str
    burn: bool
    burn_seconds: int
    ref: int
    edited_at: int
    recalled: bool
    burn_at: int
    group: str
    seq: int
    room: str
    def __init__(self, to: _Optional[str] = ..., type: _Optional[int] = ..., text: _Optional[str] = ..., data: _Optional[bytes] = ..., ext: _Optional[_Mapping[str, str]] = ..., client_msg_id: _Optional[str] = ..., id: _Optional[int] = ..., timestamp: _Optional[int] = ..., from_device: _Optional[str] = ..., burn: _Optional[bool] = ..., burn_seconds: _Optional[int] = ..., ref: _Optional[int] = ..., edited_at: _Optional[int] = ..., recalled: _Optional[bool] = ..., burn_at: _Optional[int] = ..., group: _Optional[str] = ..., seq: _Optional[int] = ..., room: _Optional[str] = ..., **kwargs) -> None: ...

class Presence(_message.Message):
    __slots__ = ("user", "online", "since", "devices", "status", "text", "fields")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    USER_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    user: str
    online: bool
    since: int
    devices: int
    status: PresenceStatus
    text: str
    fields: _containers.ScalarMap[str, str]
    def __init__(self, user: _Optional[str] = ..., online: _Optional[bool] = ..., since: _Optional[int] = ..., devices: _Optional[int] = ..., status: _Optional[_Union[PresenceStatus, str]] = ..., text: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ...) -> None: ...

class TypingNotice(_message.Message):
    __slots__ = ("user", "to", "active", "ttl_ms")
    USER_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    user: str
    to: str
    active: bool
    ttl_ms: int
    def __init__(self, user: _Optional[str] = ..., to: _Optional[str] = ..., active: _Optional[bool] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

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

class GroupCreate(_message.Message):
    __slots__ = ("name", "topic", "avatar_url", "fields", "join_policy", "max_members", "members")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    AVATAR_URL_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    JOIN_POLICY_FIELD_NUMBER: _ClassVar[int]
    MAX_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    topic: str
    avatar_url: str
    fields: _containers.ScalarMap[str, str]
    join_policy: JoinPolicy
    max_members: int
    members: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., topic: _Optional[str] = ..., avatar_url: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ..., join_policy: _Optional[_Union[JoinPolicy, str]] = ..., max_members: _Optional[int] = ..., members: _Optional[_Iterable[str]] = ...) -> None: ...

class GroupGet(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: str
    def __init__(self, group: _Optional[str] = ...) -> None: ...

class GroupModify(_message.Message):
    __slots__ = ("group", "name", "topic", "avatar_url", "fields", "join_policy", "max_members", "muted")
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
    JOIN_POLICY_FIELD_NUMBER: _ClassVar[int]
    MAX_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    MUTED_FIELD_NUMBER: _ClassVar[int]
    group: str
    name: str
    topic: str
    avatar_url: str
    fields: _containers.ScalarMap[str, str]
    join_policy: JoinPolicy
    max_members: int
    muted: bool
    def __init__(self, group: _Optional[str] = ..., name: _Optional[str] = ..., topic: _Optional[str] = ..., avatar_url: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ..., join_policy: _Optional[_Union[JoinPolicy, str]] = ..., max_members: _Optional[int] = ..., muted: _Optional[bool] = ...) -> None: ...

class GroupDissolve(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: str
    def __init__(self, group: _Optional[str] = ...) -> None: ...

class GroupMember(_message.Message):
    __slots__ = ("group", "action", "user", "role", "seconds", "text")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    group: str
    action: GroupAction
    user: str
    role: GroupRole
    seconds: int
    text: str
    def __init__(self, group: _Optional[str] = ..., action: _Optional[_Union[GroupAction, str]] = ..., user: _Optional[str] = ..., role: _Optional[_Union[GroupRole, str]] = ..., seconds: _Optional[int] = ..., text: _Optional[str] = ...) -> None: ...

class GroupMembers(_message.Message):
    __slots__ = ("group", "after", "limit", "applications", "banned")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    APPLICATIONS_FIELD_NUMBER: _ClassVar[int]
    BANNED_FIELD_NUMBER: _ClassVar[int]
    group: str
    after: str
    limit: int
    applications: bool
    banned: bool
    def __init__(self, group: _Optional[str] = ..., after: _Optional[str] = ..., limit: _Optional[int] = ..., applications: _Optional[bool] = ..., banned: _Optional[bool] = ...) -> None: ...

class MyGroups(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GroupSend(_message.Message):
    __slots__ = ("to", "type", "text", "data", "ext", "client_msg_id", "group")
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
    GROUP_FIELD_NUMBER: _ClassVar[int]
    to: str
    type: int
    text: str
    data: bytes
    ext: _containers.ScalarMap[str, str]
    client_msg_id: str
    group: str
    def __init__(self, to: _Optional[str] = ..., type: _Optional[int] = ..., text: _Optional[str] = ..., data: _Optional[bytes] = ..., ext: _Optional[_Mapping[str, str]] = ..., client_msg_id: _Optional[str] = ..., group: _Optional[str] = ...) -> None: ...

class GroupSync(_message.Message):
    __slots__ = ("group", "after_seq", "limit")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    group: str
    after_seq: int
    limit: int
    def __init__(self, group: _Optional[str] = ..., after_seq: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class GroupRead(_message.Message):
    __slots__ = ("group", "seq")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    group: str
    seq: int
    def __init__(self, group: _Optional[str] = ..., seq: _Optional[int] = ...) -> None: ...

class GroupInfo(_message.Message):
    __slots__ = ("group", "name", "topic", "avatar_url", "fields", "owner", "join_policy", "max_members", "member_count", "muted", "dissolved", "created_at", "last_seq", "role")
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
    MEMBER_COUNT_FIELD_NUMBER: _ClassVar[int]
    MUTED_FIELD_NUMBER: _ClassVar[int]
    DISSOLVED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    group: str
    name: str
    topic: str
    avatar_url: str
    fields: _containers.ScalarMap[str, str]
    owner: str
    join_policy: JoinPolicy
    max_members: int
    member_count: int
    muted: bool
    dissolved: bool
    created_at: int
    last_seq: int
    role: GroupRole
    def __init__(self, group: _Optional[str] = ..., name: _Optional[str] = ..., topic: _Optional[str] = ..., avatar_url: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ..., owner: _Optional[str] = ..., join_policy: _Optional[_Union[JoinPolicy, str]] = ..., max_members: _Optional[int] = ..., member_count: _Optional[int] = ..., muted: _Optional[bool] = ..., dissolved: _Optional[bool] = ..., created_at: _Optional[int] = ..., last_seq: _Optional[int] = ..., role: _Optional[_Union[GroupRole, str]] = ...) -> None: ...

class GroupMemberEntry(_message.Message):
    __slots__ = ("user", "role", "since", "muted_until", "text")
    USER_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    MUTED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    user: str
    role: GroupRole
    since: int
    muted_until: int
    text: str
    def __init__(self, user: _Optional[str] = ..., role: _Optional[_Union[GroupRole, str]] = ..., since: _Optional[int] = ..., muted_until: _Optional[int] = ..., text: _Optional[str] = ...) -> None: ...

class GroupMemberPage(_message.Message):
    __slots__ = ("group", "members", "more", "cursor")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    group: str
    members: _containers.RepeatedCompositeFieldContainer[GroupMemberEntry]
    more: bool
    cursor: str
    def __init__(self, group: _Optional[str] = ..., members: _Optional[_Iterable[_Union[GroupMemberEntry, _Mapping]]] = ..., more: _Optional[bool] = ..., cursor: _Optional[str] = ...) -> None: ...

class GroupSummary(_message.Message):
    __slots__ = ("group", "name", "role", "last_seq", "read_seq", "unread", "dissolved")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    READ_SEQ_FIELD_NUMBER: _ClassVar[int]
    UNREAD_FIELD_NUMBER: _ClassVar[int]
    DISSOLVED_FIELD_NUMBER: _ClassVar[int]
    group: str
    name: str
    role: GroupRole
    last_seq: int
    read_seq: int
    unread: int
    dissolved: bool
    def __init__(self, group: _Optional[str] = ..., name: _Optional[str] = ..., role: _Optional[_Union[GroupRole, str]] = ..., last_seq: _Optional[int] = ..., read_seq: _Optional[int] = ..., unread: _Optional[int] = ..., dissolved: _Optional[bool] = ...) -> None: ...

class GroupList(_message.Message):
    __slots__ = ("groups",)
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[GroupSummary]
    def __init__(self, groups: _Optional[_Iterable[_Union[GroupSummary, _Mapping]]] = ...) -> None: ...

class GroupPage(_message.Message):
    __slots__ = ("group", "messages", "more", "cursor", "last_seq", "read_seq")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    READ_SEQ_FIELD_NUMBER: _ClassVar[int]
    group: str
    messages: _containers.RepeatedCompositeFieldContainer[Message]
    more: bool
    cursor: int
    last_seq: int
    read_seq: int
    def __init__(self, group: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[Message, _Mapping]]] = ..., more: _Optional[bool] = ..., cursor: _Optional[int] = ..., last_seq: _Optional[int] = ..., read_seq: _Optional[int] = ...) -> None: ...

class RoomCreate(_message.Message):
    __slots__ = ("room", "publish", "publishers")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    PUBLISHERS_FIELD_NUMBER: _ClassVar[int]
    room: str
    publish: PublishPolicy
    publishers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, room: _Optional[str] = ..., publish: _Optional[_Union[PublishPolicy, str]] = ..., publishers: _Optional[_Iterable[str]] = ...) -> None: ...

class RoomJoin(_message.Message):
    __slots__ = ("room",)
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: str
    def __init__(self, room: _Optional[str] = ...) -> None: ...

class RoomLeave(_message.Message):
    __slots__ = ("room",)
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: str
    def __init__(self, room: _Optional[str] = ...) -> None: ...

class RoomMembers(_message.Message):
    __slots__ = ("room",)
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: str
    def __init__(self, room: _Optional[str] = ...) -> None: ...

class RoomSend(_message.Message):
    __slots__ = ("to", "type", "text", "data", "ext", "room")
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
    ROOM_FIELD_NUMBER: _ClassVar[int]
    to: str
    type: int
    text: str
    data: bytes
    ext: _containers.ScalarMap[str, str]
    room: str
    def __init__(self, to: _Optional[str] = ..., type: _Optional[int] = ..., text: _Optional[str] = ..., data: _Optional[bytes] = ..., ext: _Optional[_Mapping[str, str]] = ..., room: _Optional[str] = ...) -> None: ...

class RoomPublishers(_message.Message):
    __slots__ = ("room", "publish", "add", "remove")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    ADD_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    room: str
    publish: PublishPolicy
    add: _containers.RepeatedScalarFieldContainer[str]
    remove: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, room: _Optional[str] = ..., publish: _Optional[_Union[PublishPolicy, str]] = ..., add: _Optional[_Iterable[str]] = ..., remove: _Optional[_Iterable[str]] = ...) -> None: ...

class RoomInfo(_message.Message):
    __slots__ = ("room", "owner", "members", "member_count", "publish", "publishers", "created_at")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    MEMBER_COUNT_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    PUBLISHERS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    room: str
    owner: str
    members: _containers.RepeatedScalarFieldContainer[str]
    member_count: int
    publish: PublishPolicy
    publishers: _containers.RepeatedScalarFieldContainer[str]
    created_at: int
    def __init__(self, room: _Optional[str] = ..., owner: _Optional[str] = ..., members: _Optional[_Iterable[str]] = ..., member_count: _Optional[int] = ..., publish: _Optional[_Union[PublishPolicy, str]] = ..., publishers: _Optional[_Iterable[str]] = ..., created_at: _Optional[int] = ...) -> None: ...

class StreamSend(_message.Message):
    __slots__ = ("to", "room", "seq", "data", "channel")
    TO_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    to: str
    room: str
    seq: int
    data: bytes
    channel: int
    def __init__(self, to: _Optional[str] = ..., room: _Optional[str] = ..., seq: _Optional[int] = ..., data: _Optional[bytes] = ..., channel: _Optional[int] = ...) -> None: ...

class StreamFrame(_message.Message):
    __slots__ = ("from_device", "to", "room", "seq", "data", "channel", "timestamp")
    FROM_FIELD_NUMBER: _ClassVar[int]
    FROM_DEVICE_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    from_device: str
    to: str
    room: str
    seq: int
    data: bytes
    channel: int
    timestamp: int
    def __init__(self, from_device: _Optional[str] = ..., to: _Optional[str] = ..., room: _Optional[str] = ..., seq: _Optional[int] = ..., data: _Optional[bytes] = ..., channel: _Optional[int] = ..., timestamp: _Optional[int] = ..., **kwargs) -> None: ...

class ChunkStart(_message.Message):
    __slots__ = ("upload", "size", "text", "send", "group_send", "room_send")
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SEND_FIELD_NUMBER: _ClassVar[int]
    GROUP_SEND_FIELD_NUMBER: _ClassVar[int]
    ROOM_SEND_FIELD_NUMBER: _ClassVar[int]
    upload: str
    size: int
    text: bool
    send: Send
    group_send: GroupSend
    room_send: RoomSend
    def __init__(self, upload: _Optional[str] = ..., size: _Optional[int] = ..., text: _Optional[bool] = ..., send: _Optional[_Union[Send, _Mapping]] = ..., group_send: _Optional[_Union[GroupSend, _Mapping]] = ..., room_send: _Optional[_Union[RoomSend, _Mapping]] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("upload", "offset", "data")
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    upload: str
    offset: int
    data: bytes
    def __init__(self, upload: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class ChunkEnd(_message.Message):
    __slots__ = ("upload",)
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    upload: str
    def __init__(self, upload: _Optional[str] = ...) -> None: ...

class ChunkAccepted(_message.Message):
    __slots__ = ("upload", "received")
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    upload: str
    received: int
    def __init__(self, upload: _Optional[str] = ..., received: _Optional[int] = ...) -> None: ...
