"""Engine events: messages of types 3-31 that the node writes on a user's behalf.

Recall, edit, burn, read markers and roster changes are told to every device of both
parties as a ``Message`` whose ``type`` is an engine code (``MessageType`` in
proto/client.proto, docs/protocol.md §6) and whose ``ref`` names the message (or read
position) the event is about. Like a 1:1 message, an event is written to both parties'
inboxes (not to the conversation: ``history`` never returns events) in the same store
batch as the change it announces, so a device that syncs later replays the events in id
order, and is pushed to every online device but the acting one (which has its response).

In no-store mode the event is only pushed.

Across nodes, :attr:`EventLog.remote` (set by im/federation.py) pushes the event to the
parties' devices on other nodes too (one copy per destination node); with a shared store
those devices would also find it on their next sync.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from im import client_pb2 as pb
from im.ids import MessageIdGenerator
from im.keys import KeySchema
from im.sessions import Push, Session, SessionRegistry
from store.api import Op, Put, RecordStore

__all__ = ["EventLog", "RemotePush", "is_engine_type", "message_rows"]

#: pushes a frame to the devices of ``users`` on other nodes; the last argument names the
#: kind of push for counters ("event", "typing", ...). Set by im/federation.py.
RemotePush = Callable[[Iterable[str], pb.ServerFrame, str], None]

FIRST_ENGINE_TYPE = 2
FIRST_APP_TYPE = 32


def is_engine_type(message_type: int) -> bool:
    """Types 2-31: system messages and engine events (never user content to amend)."""
    return FIRST_ENGINE_TYPE <= message_type < FIRST_APP_TYPE


def message_rows(keys: KeySchema, message: pb.Message) -> list[bytes]:
    """The store keys holding copies of a 1:1 message: both inboxes and the conversation."""
    sender = getattr(message, "from")
    rows = [keys.inbox(sender, message.id)]
    if message.to != sender:
        rows.append(keys.inbox(message.to, message.id))
    rows.append(keys.conversation(sender, message.to, message.id))
    return rows


class EventLog:
    """Builds, stores and pushes engine events; loads stored messages for the features."""

    def __init__(
        self,
        *,
        store: RecordStore,
        keys: KeySchema,
        registry: SessionRegistry,
        ids: MessageIdGenerator,
        now_ms: Callable[[], int],
        durable: bool,
    ) -> None:
        self.store = store
        self.keys = keys
        self.registry = registry
        self._ids = ids
        self.now_ms = now_ms
        self.durable = durable
        self.remote: RemotePush | None = None  # other nodes (im/federation.py)

    def new(self, kind: int, actor: str, to: str, *, ref: int = 0, text: str = "", device: str = "") -> pb.Message:
        now = self.now_ms()
        event = pb.Message(to=to, type=kind, id=self._ids.next_id(now), timestamp=now, ref=ref, from_device=device)
        if text:
            event.text = text
        setattr(event, "from", actor)
        return event

    async def record(self, event: pb.Message, ops: Sequence[Op] = (), origin: Session | None = None) -> None:
        """Write ``ops`` and the event (one batch), then push the event to both parties."""
        writes = list(ops)
        if self.durable:
            raw = event.SerializeToString()
            actor = getattr(event, "from")
            writes.append(Put(self.keys.inbox(actor, event.id), raw))
            if event.to != actor:
                writes.append(Put(self.keys.inbox(event.to, event.id), raw))
        if writes:
            await self.store.write(writes)
        self.push(event, origin)

    def push(self, event: pb.Message, origin: Session | None = None) -> int:
        """Push to every device of both parties except ``origin``; the number of pushes."""
        push = Push(pb.ServerFrame(message=event))
        actor = getattr(event, "from")
        count = 0
        for user in (actor, event.to) if event.to != actor else (actor,):
            for target in self.registry.sessions_of(user):
                if target is not origin:
                    target.sink.push(push)
                    count += 1
        if self.remote is not None:
            self.remote((actor, event.to), push.frame, "event")
        return count

    async def load(self, user: str, message_id: int) -> pb.Message | None:
        """The copy of a message in ``user``'s inbox, or None."""
        if not self.durable or message_id <= 0:
            return None
        raw = await self.store.get(self.keys.inbox(user, message_id))
        return pb.Message.FromString(raw) if raw is not None else None
