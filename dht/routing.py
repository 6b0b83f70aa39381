"""k-buckets and the routing table (Maymounkov & Mazières 2002, §2.2, §2.4, §4.1).

Rules, all in this file:

1. A bucket lists at most ``k`` contacts, least-recently seen (LRS) first (§2.2).
2. A contact that talks to us moves to the tail. A new contact joins the tail while there is
   room. When the bucket is full, the newcomer goes to the bucket's replacement cache (§4.1)
   and the caller is told to PING the LRS contact, at most one such ping per bucket at a time.
3. The LRS contact answers: it moves to the tail and stays (live nodes are never evicted).
   It does not: it is evicted and the most recently seen replacement takes its place.
4. A contact that fails ``max_failures`` RPCs in a row is evicted, at once if a replacement
   is waiting (§4.1: "unresponsive ones can be evicted and replaced").

Buckets are indexed by common prefix length with our id (0 = farthest half of the space),
as in the libp2p Kademlia spec; this is the paper's §2.4 tree with the unsplit buckets
flattened. Only servers enter a routing table (``DhtProtocol`` enforces this).
The table never reads a clock: every method that records a sighting takes ``now``.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from dht.ids import KEY_BITS, bucket_index, key_to_int, node_id
from dht.messages import PeerInfo

__all__ = ["Contact", "KBucket", "RoutingTable"]


@dataclass(slots=True, eq=False)
class Contact:
    """A DHT server we know: PeerId bytes, its Kademlia id and addresses."""

    peer: bytes
    addrs: tuple[str, ...] = ()
    last_seen: float = 0.0
    failures: int = 0
    id: bytes = field(init=False)
    id_int: int = field(init=False, repr=False)
    _info: PeerInfo | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self.id = node_id(self.peer)
        self.id_int = int.from_bytes(self.id, "big")

    def info(self) -> PeerInfo:
        """This contact as advertised in responses."""
        if self._info is None or self._info.addrs != self.addrs:
            self._info = PeerInfo(self.peer, self.addrs)
        return self._info


class KBucket:
    """Up to ``k`` contacts in LRS order plus a replacement cache (rules 1-4 above)."""

    def __init__(self, k: int, replacement_size: int) -> None:
        self.k = k
        self.replacement_size = replacement_size
        self.contacts: OrderedDict[bytes, Contact] = OrderedDict()
        self.replacements: OrderedDict[bytes, Contact] = OrderedDict()
        self.pinging: bytes | None = None  # the LRS contact being checked (rule 2)
        self.last_lookup = 0.0

    def __len__(self) -> int:
        return len(self.contacts)

    def __contains__(self, peer: object) -> bool:
        return peer in self.contacts

    def is_full(self) -> bool:
        return len(self.contacts) >= self.k

    def head(self) -> Contact | None:
        """The least-recently seen contact."""
        return next(iter(self.contacts.values()), None)

    def update(self, contact: Contact, now: float) -> Contact | None:
        """Record a sighting of ``contact``; return the LRS contact to PING, if any (rules 2-3)."""
        known = self.contacts.get(contact.peer)
        if known is not None:
            known.last_seen, known.failures = now, 0
            if contact.addrs:
                known.addrs = contact.addrs
            self.contacts.move_to_end(contact.peer)
            if self.pinging == contact.peer:
                self.pinging = None
            return None
        contact.last_seen, contact.failures = now, 0
        if not self.is_full():
            self.replacements.pop(contact.peer, None)
            self.contacts[contact.peer] = contact
            return None
        self._add_replacement(contact)
        if self.pinging is not None:
            return None
        head = self.head()
        self.pinging = head.peer if head else None
        return head

    def _add_replacement(self, contact: Contact) -> None:
        self.replacements[contact.peer] = contact
        self.replacements.move_to_end(contact.peer)
        while len(self.replacements) > self.replacement_size:
            self.replacements.popitem(last=False)

    def remove(self, peer: bytes) -> Contact | None:
        """Drop ``peer`` (or its replacement-cache entry); promote the newest replacement."""
        self.replacements.pop(peer, None)
        if self.contacts.pop(peer, None) is None:
            return None
        if self.pinging == peer:
            self.pinging = None
        if not self.replacements:
            return None
        _, promoted = self.replacements.popitem(last=True)
        self.contacts[promoted.peer] = promoted
        return promoted

    def record_failure(self, peer: bytes, max_failures: int) -> bool:
        """Count a failed RPC to ``peer``; evict per rule 4. True when it was evicted."""
        contact = self.contacts.get(peer)
        if contact is None:
            self.replacements.pop(peer, None)
            return False
        contact.failures += 1
        if contact.failures >= max_failures or self.replacements or self.pinging == peer:
            self.remove(peer)
            return True
        return False


class RoutingTable:
    """256 k-buckets indexed by common prefix length with our id (§2.2, §2.4)."""

    def __init__(self, own_id: bytes, k: int = 20, replacement_size: int | None = None, max_failures: int = 2) -> None:
        self.own_id = own_id
        self.own_int = key_to_int(own_id)
        self.k = k
        self.max_failures = max_failures
        self.replacement_size = k if replacement_size is None else replacement_size
        self.buckets = [KBucket(k, self.replacement_size) for _ in range(KEY_BITS)]
        self.depth = 0  # an upper bound of the deepest non-empty bucket

    def __len__(self) -> int:
        return sum(len(b) for b in self.buckets)

    def __contains__(self, peer: object) -> bool:
        return isinstance(peer, bytes) and peer in self._bucket(peer)

    def __iter__(self) -> Iterator[Contact]:
        for bucket in self.buckets:
            yield from bucket.contacts.values()

    def _bucket(self, peer: bytes) -> KBucket:
        return self.buckets[bucket_index(self.own_id, node_id(peer))]

    def get(self, peer: bytes) -> Contact | None:
        if node_id(peer) == self.own_id:
            return None
        return self._bucket(peer).contacts.get(peer)

    def update(self, peer: bytes, addrs: Iterable[str], now: float) -> Contact | None:
        """Record that ``peer`` (a server) talked to us; return the LRS contact to PING, if any."""
        contact = Contact(peer, tuple(addrs))
        if contact.id_int == self.own_int:
            return None
        index = bucket_index(self.own_id, contact.id)
        self.depth = max(self.depth, index)
        return self.buckets[index].update(contact, now)

    def remove(self, peer: bytes) -> None:
        """Drop ``peer`` from its bucket, promoting a replacement (rule 3)."""
        if node_id(peer) != self.own_id:
            self._bucket(peer).remove(peer)

    def record_failure(self, peer: bytes) -> bool:
        """Count a failed RPC to ``peer``; True when it was evicted (rule 4)."""
        if node_id(peer) == self.own_id:
            return False
        return self._bucket(peer).record_failure(peer, self.max_failures)

    def closest(self, target: bytes, count: int | None = None, exclude: bytes | None = None) -> list[Contact]:
        """The ``count`` (default k) contacts closest to ``target`` by XOR, closest first.

        Buckets partition distances to ``target``: with ``i`` = bucket of ``target``, bucket
        ``i`` holds the closest contacts, then buckets ``> i`` together, then ``i-1``, ``i-2``,
        ..., each group wholly farther than the previous one, so only one group is sorted partly.
        """
        t = key_to_int(target)
        want = count or self.k
        d = t ^ self.own_int
        top = KEY_BITS - d.bit_length() if d else KEY_BITS
        groups: list[list[Contact]] = []
        if top < KEY_BITS:
            groups.append(list(self.buckets[top].contacts.values()))
        groups.append([c for b in self.buckets[top + 1 : self.depth + 1] for c in b.contacts.values()])
        out: list[Contact] = []
        for group in itertools.chain(groups, ([*self.buckets[j].contacts.values()] for j in range(top - 1, -1, -1))):
            if exclude is not None:
                group = [c for c in group if c.peer != exclude]
            if not group:
                continue
            room = want - len(out)
            if len(group) <= room:
                out += sorted(group, key=lambda c: c.id_int ^ t)
            else:
                out += heapq.nsmallest(room, group, key=lambda c: c.id_int ^ t)
            if len(out) >= want:
                break
        return out

    def touch(self, target: bytes, now: float) -> None:
        """Note a lookup of ``target`` for bucket refresh bookkeeping (§2.3)."""
        if key_to_int(target) != self.own_int:
            self.buckets[bucket_index(self.own_id, target)].last_lookup = now

    def stale_buckets(self, now: float, interval: float) -> list[int]:
        """Indices of buckets not looked up within ``interval`` (§2.3 refresh), up to one past the deepest."""
        deepest = max((i for i, b in enumerate(self.buckets) if b.contacts), default=-1)
        return [i for i in range(min(deepest + 2, KEY_BITS)) if now - self.buckets[i].last_lookup >= interval]
