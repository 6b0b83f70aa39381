"""Record placement: partition prefix -> slot -> shard (pure, no I/O).

A record is placed by its *partition prefix*, ``partition_of(key)``: the first 17 bytes of
the key (the IM layer's kind byte + 16-byte blinded user/pair hash, see ``im/keys.py``);
a key shorter than that is its own partition. Every key of one prefix scan therefore
lives on one shard. The partition is hashed to one of ``SLOT_COUNT`` slots::

    slot_of(key) = int(blake2b(partition_of(key), digest_size=8)) mod 4096

(4096 divides 2**64, so slots are uniform). The hash is fixed forever: changing it or the
slot count means moving every record. Slots are assigned to shards by a ``ShardMap``.

Why 4096 slots (tim uses 1,048,576 ranges): a slot is the unit a rebalance freezes, copies
and flips. 4096 spreads load within 1/4096 over up to a few hundred shards, keeps the map
small (a few KiB, stored as runs), and a slot of a 100-million-record store holds ~25k
records, copied in well under a second. tim's static sharding never moves a range, so it
can afford a million of them; a moving design pays per slot for the freeze and the flip.

On a shard a record's *physical* key is ``slot (2 bytes, big-endian) || key``, so a slot is
one contiguous key range (copied and deleted by range scans) and a partition's keys keep
their order. Physical keys starting ``0xFFFF`` are the sharded store's own records.

The *root* shard (``ShardMap.root``, shard 0 unless the root was moved off a removed shard)
stores the map and the members registry. ``store_id`` names the store itself: it is set
when the map is created (from the first root's URL) and never changes, so nodes can tell
that they serve the same store whatever its placement.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "SLOT_COUNT",
    "PARTITION_BYTES",
    "PARTITION_FUNCTION",
    "partition_of",
    "slot_of",
    "ShardMap",
    "public_url",
]

SLOT_COUNT = 4096
PARTITION_BYTES = 17
PARTITION_FUNCTION = "blake2b-64(key[:17]) mod 4096"


def partition_of(key: bytes) -> bytes:
    """The bytes that place ``key``: its first 17 bytes (all of a shorter key)."""
    return key[:PARTITION_BYTES]


def slot_of(key: bytes) -> int:
    """The slot of ``key`` (stable across processes, builds and machines)."""
    digest = hashlib.blake2b(key[:PARTITION_BYTES], digest_size=8).digest()
    return int.from_bytes(digest, "big") % SLOT_COUNT


def public_url(url: str) -> str:
    """``url`` without a password, in the user part or in the query (``?password=``, which
    asyncpg takes too), for status output, logs and fingerprints."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if "password" not in k.lower()]
    query = parts.query if len(kept) == len(pairs) else urlencode(kept)  # unchanged unless stripped
    if parts.password is None and query == parts.query:
        return url
    netloc = parts.netloc
    if parts.password is not None:
        host = parts.hostname or ""
        netloc = f"{parts.username}@{host}" if parts.username else host
        if parts.port:
            netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _store_id(root_url: str) -> str:
    return hashlib.sha256(public_url(root_url).encode()).hexdigest()[:32]


def _runs(slots: list[int]) -> list[list[int]]:
    """``[[first_slot, last_slot, shard], ...]``: the slot array run-length encoded."""
    runs: list[list[int]] = []
    for slot, shard in enumerate(slots):
        if runs and runs[-1][2] == shard and runs[-1][1] == slot - 1:
            runs[-1][1] = slot
        else:
            runs.append([slot, slot, shard])
    return runs


def _unruns(runs: list[list[int]]) -> list[int]:
    slots = [-1] * SLOT_COUNT
    for first, last, shard in runs:
        slots[first : last + 1] = [shard] * (last - first + 1)
    if -1 in slots:
        raise ValueError("shard map leaves slots unassigned")
    return slots


@dataclass
class ShardMap:
    """Which shard owns each slot, plus the journal of a rebalance in progress.

    ``moves`` (slot -> target shard) are the slots still to move; ``cleanup`` lists
    ``(slot, former owner)`` pairs whose rows are still to delete; ``removing`` are shards
    to drop from the map once they own no slot. Shard ids are never reused; shard ``root``
    (0 until the root is removed) stores this map; ``frozen`` and ``leader`` describe a
    coordinated step of several members (``store.rebalance``).
    """

    version: int = 1
    shards: dict[int, str] = field(default_factory=dict)
    slots: list[int] = field(default_factory=lambda: [0] * SLOT_COUNT)
    moves: dict[int, int] = field(default_factory=dict)
    cleanup: list[tuple[int, int]] = field(default_factory=list)
    removing: list[int] = field(default_factory=list)
    next_id: int = 1
    frozen: list[int] = field(default_factory=list)
    leader: str = ""
    root: int = 0
    store_id: str = ""

    def __post_init__(self) -> None:
        if not self.store_id and 0 in self.shards:  # maps written before store_id had root 0
            self.store_id = _store_id(self.shards[0])

    @classmethod
    def single(cls, root_url: str) -> ShardMap:
        return cls(shards={0: root_url})

    @property
    def root_url(self) -> str:
        return self.shards[self.root]

    @classmethod
    def even(cls, urls: list[str]) -> ShardMap:
        """A fresh map over ``urls`` (the first is the root), slots split in even runs."""
        if len(set(urls)) != len(urls) or not urls:
            raise ValueError("shard URLs must be distinct and at least one")
        n = len(urls)
        return cls(
            shards=dict(enumerate(urls)), slots=[slot * n // SLOT_COUNT for slot in range(SLOT_COUNT)], next_id=n
        )

    @property
    def busy(self) -> bool:
        """A rebalance is in progress (slots to move, rows to delete or shards to drop)."""
        return bool(self.moves or self.cleanup or self.removing)

    def slot_counts(self) -> dict[int, int]:
        counts = dict.fromkeys(self.shards, 0)
        for shard in self.slots:
            counts[shard] += 1
        return counts

    def shard_id(self, url: str) -> int | None:
        for sid, known in self.shards.items():
            if known == url:
                return sid
        return None

    def encode(self) -> bytes:
        doc = {
            "format": 1,
            "partition": PARTITION_FUNCTION,
            "version": self.version,
            "shards": {str(k): v for k, v in sorted(self.shards.items())},
            "slots": _runs(self.slots),
            "moves": {str(k): v for k, v in sorted(self.moves.items())},
            "cleanup": [list(pair) for pair in self.cleanup],
            "removing": self.removing,
            "next_id": self.next_id,
            "id": self.store_id,
        }
        if self.root:  # the root moved off shard 0 (which was removed)
            doc["root"] = self.root
        if self.frozen:  # slots every node must hold writes to (a coordinated step copying them)
            doc["frozen"] = self.frozen
        if self.leader:  # the member running the rebalance
            doc["leader"] = self.leader
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> ShardMap:
        doc: dict[str, Any] = json.loads(raw)
        if doc.get("format") != 1 or doc.get("partition") != PARTITION_FUNCTION:
            raise ValueError("unknown shard map format or partition function")
        return cls(
            version=int(doc["version"]),
            shards={int(k): str(v) for k, v in doc["shards"].items()},
            slots=_unruns(doc["slots"]),
            moves={int(k): int(v) for k, v in doc["moves"].items()},
            cleanup=[(int(a), int(b)) for a, b in doc["cleanup"]],
            removing=[int(x) for x in doc["removing"]],
            next_id=int(doc["next_id"]),
            frozen=[int(x) for x in doc.get("frozen", [])],
            leader=str(doc.get("leader", "")),
            root=int(doc.get("root", 0)),
            store_id=str(doc.get("id", "")),
        )

    def describe(self) -> dict[str, Any]:
        """The placement (no secrets): partition function, shards and their slot runs."""
        return {
            "partition": PARTITION_FUNCTION,
            "slots": SLOT_COUNT,
            "shards": {str(k): public_url(v) for k, v in sorted(self.shards.items())},
            "assignment": _runs(self.slots),
        }

    def fingerprint(self) -> str:
        """SHA-256 (hex) of ``describe()``: equal on every node that places records alike."""
        canonical = json.dumps(self.describe(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def identity(self) -> str:
        """SHA-256 (hex) of the store's id and placement function: equal on every node serving
        this store, before, during and after any rebalance (unlike ``fingerprint()``)."""
        doc = {"partition": PARTITION_FUNCTION, "slots": SLOT_COUNT, "store": self.store_id}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def next_root(self) -> int:
        """The shard that takes the root role when the root is removed (the oldest staying one)."""
        return min(sid for sid in self.shards if sid not in self.removing)

    def plan_add(self, url: str) -> int:
        """Add shard ``url`` and schedule moves that even out slots; returns its id."""
        if self.busy:
            raise ValueError("a rebalance is already in progress")
        if self.shard_id(url) is not None:
            raise ValueError("that shard is already in the map")
        sid = self.next_id
        self.next_id += 1
        self.shards[sid] = url
        want = SLOT_COUNT // len(self.shards)
        counts = self.slot_counts()
        # take the highest slots of the fullest shards first (deterministic)
        for slot in range(SLOT_COUNT - 1, -1, -1):
            if len(self.moves) >= want:
                break
            owner = self.slots[slot]
            if counts[owner] > want:
                counts[owner] -= 1
                self.moves[slot] = sid
        self.version += 1
        return sid

    def plan_remove(self, url: str) -> int:
        """Schedule moving every slot of shard ``url`` to the others; returns its id."""
        if self.busy:
            raise ValueError("a rebalance is already in progress")
        sid = self.shard_id(url)
        if sid is None:
            raise ValueError("that shard is not in the map")
        if len(self.shards) == 1:
            raise ValueError("the only shard cannot be removed")
        counts = {k: v for k, v in self.slot_counts().items() if k != sid}
        for slot, owner in enumerate(self.slots):
            if owner == sid:
                target = min(counts, key=lambda k: (counts[k], k))
                counts[target] += 1
                self.moves[slot] = target
        self.removing.append(sid)
        self.version += 1
        return sid
