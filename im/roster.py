"""Roster and blocklist: friend requests, mutual friendship, blocks, the stranger policy.

Each user's relations are records ``R | blind(user) | blind(peer) -> records.Relation``
(im/keys.py), one per peer the user has a friendship, a pending request or a block with.
A friendship is mutual: both users' records say FRIEND. A request is REQUEST_SENT on the
asker's side and REQUEST_RECEIVED on the other. ``blocked`` is one-sided.

The send path asks :meth:`Roster.check_send` for every message, so relations are cached
in memory per user (loaded by one prefix scan on first use, bounded LRU, refreshed after
``cache_ttl_ms`` so changes written by other nodes sharing the store are seen; a change
made here updates the cache at once). A plain send to a user whose relations are cached
costs two dict lookups and no store read.

Changes are told to the other user's devices and the actor's other devices as engine
events (types 7-10, im/events.py). A block is not told to the blocked user.

Across nodes: every change calls :attr:`Roster.on_change` with the users whose relations
changed; im/federation.py tells every linked node (INVALIDATE), which drops those users from
its cache (:meth:`Roster.forget`), so blocks and friendships apply network-wide at once
rather than after ``cache_ttl_ms``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from im import client_pb2 as pb
from im import records_pb2 as rec
from im.accounts import Accounts, validate_user
from im.errors import ImError
from im.events import EventLog
from im.sessions import Session
from store.api import Delete, Op, Put

__all__ = ["Roster", "STRANGER_POLICIES"]

STRANGER_POLICIES = ("allow", "friends-only")
_MAX_TEXT = 256
_CACHE_USERS = 100_000
_MAX_RELATIONS = 10_000  # friends + requests + blocks read per user


class _Relations:
    __slots__ = ("by_peer", "loaded_at")

    def __init__(self, by_peer: dict[str, rec.Relation], loaded_at: int) -> None:
        self.by_peer = by_peer
        self.loaded_at = loaded_at


class Roster:
    """Friendships, requests and blocks, with a per-user cache for the send path."""

    def __init__(
        self,
        *,
        events: EventLog,
        accounts: Accounts,
        stranger_policy: str = "allow",
        cache_ttl_ms: int = 60_000,
    ) -> None:
        if stranger_policy not in STRANGER_POLICIES:
            raise ValueError(f"stranger policy must be one of {STRANGER_POLICIES}")
        self._events = events
        self._store = events.store
        self._keys = events.keys
        self._accounts = accounts
        self._now_ms: Callable[[], int] = events.now_ms
        self.stranger_policy = stranger_policy
        self._ttl = cache_ttl_ms
        self._cache: OrderedDict[str, _Relations] = OrderedDict()
        #: called with the users whose relations changed here (im/federation.py)
        self.on_change: Callable[[list[str]], None] | None = None

    # ------------------------------------------------------------------ reading

    async def relations(self, user: str) -> dict[str, rec.Relation]:
        """``peer -> Relation`` for ``user``: from the cache, else one store scan."""
        entry = self._cache.get(user)
        if entry is not None and self._now_ms() - entry.loaded_at < self._ttl:
            return entry.by_peer
        start, end = self._keys.relations_range(user)
        by_peer: dict[str, rec.Relation] = {}
        for _, raw in await self._store.scan(start, end, limit=_MAX_RELATIONS):
            relation = rec.Relation.FromString(raw)
            by_peer[relation.peer] = relation
        self._cache[user] = _Relations(by_peer, self._now_ms())
        self._cache.move_to_end(user)
        if len(self._cache) > _CACHE_USERS:
            self._cache.popitem(last=False)
        return by_peer

    def forget(self, users: list[str]) -> None:
        """Drop cached relations (another node changed them in the shared store)."""
        for user in users:
            self._cache.pop(user, None)

    async def relation(self, user: str, peer: str) -> rec.Relation:
        """A copy of ``user``'s relation to ``peer`` (empty when there is none), safe to change."""
        relation = rec.Relation(peer=peer)
        found = (await self.relations(user)).get(peer)
        if found is not None:
            relation.CopyFrom(found)
        return relation

    async def blocks(self, user: str, peer: str) -> bool:
        """True when ``user`` blocked ``peer``."""
        relation = (await self.relations(user)).get(peer)
        return relation is not None and relation.blocked

    async def either_blocks(self, a: str, b: str) -> bool:
        return await self.blocks(a, b) or await self.blocks(b, a)

    async def friends(self, user: str) -> list[str]:
        return [peer for peer, r in (await self.relations(user)).items() if r.state == pb.FRIEND]

    async def are_friends(self, a: str, b: str) -> bool:
        relation = (await self.relations(a)).get(b)
        return relation is not None and relation.state == pb.FRIEND

    async def check_send(self, sender: str, to: str) -> None:
        """Raise BLOCKED / NOT_FRIENDS when ``sender`` may not message ``to``."""
        if sender == to:
            return
        theirs = (await self.relations(to)).get(sender)
        if theirs is not None and theirs.blocked:
            raise ImError(pb.BLOCKED, "this user does not accept messages from you")
        mine = (await self.relations(sender)).get(to)
        if mine is not None and mine.blocked:
            raise ImError(pb.BLOCKED, "you blocked this user; unblock them first")
        if self.stranger_policy == "friends-only" and (theirs is None or theirs.state != pb.FRIEND):
            if not await self._accounts.exists(to):
                raise ImError(pb.NOT_FOUND, "no such user")
            raise ImError(pb.NOT_FRIENDS, "this node lets only friends message each other: send a friend request")

    async def roster(self, user: str) -> pb.Roster:
        out = pb.Roster()
        for peer, relation in sorted((await self.relations(user)).items()):
            if relation.state:
                out.contacts.add(user=peer, state=relation.state, text=relation.text, since=relation.since)
            if relation.blocked:
                out.blocked.append(peer)
        return out

    # ------------------------------------------------------------------ changing

    async def _target(self, session: Session, user: str) -> None:
        validate_user(user)
        if user == session.user:
            raise ImError(pb.BAD_REQUEST, "that is you")
        if not await self._accounts.exists(user):
            raise ImError(pb.NOT_FOUND, "no such user")

    async def act(self, session: Session, user: str, action: int, text: str = "") -> None:
        """A ``Friend`` request: request, accept, reject or remove."""
        await self._target(session, user)
        if len(text) > _MAX_TEXT:
            raise ImError(pb.TOO_LARGE, f"a friend request's text is limited to {_MAX_TEXT} characters")
        me = session.user
        mine, theirs = await self.relation(me, user), await self.relation(user, me)
        if action in (pb.FRIEND_REQUEST, pb.FRIEND_ACCEPT) and (mine.blocked or theirs.blocked):
            raise ImError(pb.BLOCKED, "one of you blocked the other")
        now = self._now_ms()
        if action == pb.FRIEND_REQUEST:
            if mine.state == pb.FRIEND or mine.state == pb.REQUEST_SENT and mine.text == text:
                return
            if mine.state == pb.REQUEST_RECEIVED:
                action = pb.FRIEND_ACCEPT  # they asked first: asking back accepts
            else:
                _set(mine, pb.REQUEST_SENT, text, now)
                _set(theirs, pb.REQUEST_RECEIVED, text, now)
                await self._record(session, user, mine, theirs, pb.TYPE_FRIEND_REQUEST, text)
                return
        if action == pb.FRIEND_ACCEPT:
            if mine.state == pb.FRIEND:
                return
            if mine.state != pb.REQUEST_RECEIVED:
                raise ImError(pb.NOT_FOUND, "no pending friend request from this user")
            _set(mine, pb.FRIEND, "", now)
            _set(theirs, pb.FRIEND, "", now)
            await self._record(session, user, mine, theirs, pb.TYPE_FRIEND_ACCEPTED)
        elif action == pb.FRIEND_REJECT:
            if mine.state != pb.REQUEST_RECEIVED:
                raise ImError(pb.NOT_FOUND, "no pending friend request from this user")
            _set(mine, 0, "", now)
            _set(theirs, 0, "", now)
            await self._record(session, user, mine, theirs, pb.TYPE_FRIEND_REJECTED)
        elif action == pb.FRIEND_REMOVE:
            if mine.state not in (pb.FRIEND, pb.REQUEST_SENT):
                return
            _set(mine, 0, "", now)
            _set(theirs, 0, "", now)
            await self._record(session, user, mine, theirs, pb.TYPE_FRIEND_REMOVED)
        else:
            raise ImError(pb.BAD_REQUEST, "friend.action must be one of FRIEND_REQUEST/ACCEPT/REJECT/REMOVE")

    async def block(self, session: Session, user: str) -> None:
        """Block ``user`` (ends a friendship or pending request; the user is not told)."""
        await self._target(session, user)
        me, now = session.user, self._now_ms()
        mine, theirs = await self.relation(me, user), await self.relation(user, me)
        if mine.blocked:
            return
        mine.blocked, mine.since = True, now
        ended = mine.state != 0
        if ended:
            _set(mine, 0, "", now)
            _set(theirs, 0, "", now)
            mine.blocked = True
        await self._write(me, user, mine, theirs if ended else None)

    async def unblock(self, session: Session, user: str) -> None:
        validate_user(user)
        mine = await self.relation(session.user, user)
        if not mine.blocked:
            return
        mine.blocked, mine.since = False, self._now_ms()
        await self._write(session.user, user, mine, None)

    async def _record(
        self, session: Session, user: str, mine: rec.Relation, theirs: rec.Relation, kind: int, text: str = ""
    ) -> None:
        event = self._events.new(kind, session.user, user, text=text, device=session.device)
        await self._events.record(event, self._ops(session.user, user, mine, theirs), origin=session)
        self._remember(session.user, mine)
        self._remember(user, theirs)
        self._changed(session.user, user)

    async def _write(self, me: str, user: str, mine: rec.Relation, theirs: rec.Relation | None) -> None:
        await self._store.write(self._ops(me, user, mine, theirs))
        self._remember(me, mine)
        if theirs is not None:
            self._remember(user, theirs)
        self._changed(me, user)

    def _changed(self, *users: str) -> None:
        if self.on_change is not None:
            self.on_change(list(users))

    def _ops(self, me: str, user: str, mine: rec.Relation, theirs: rec.Relation | None) -> list[Op]:
        ops = [self._op(me, mine)]
        if theirs is not None:
            theirs.peer = me
            ops.append(self._op(user, theirs))
        return ops

    def _op(self, user: str, relation: rec.Relation) -> Op:
        key = self._keys.relation(user, relation.peer)
        if not relation.state and not relation.blocked:
            return Delete(key)
        return Put(key, relation.SerializeToString())

    def _remember(self, user: str, relation: rec.Relation) -> None:
        entry = self._cache.get(user)
        if entry is None:
            return
        if relation.state or relation.blocked:
            entry.by_peer[relation.peer] = relation
        else:
            entry.by_peer.pop(relation.peer, None)


def _set(relation: rec.Relation, state: int, text: str, now: int) -> None:
    relation.state = state
    relation.text = text
    relation.since = now
