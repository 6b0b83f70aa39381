"""The physical layout of a sharded store's shards (see ``store.sharded``).

A record lives at ``slot (2 bytes) || key`` (``PFX[slot]``); keys starting ``0xFFFF`` are
the sharded store's own:

    0xFFFF "map"                   the shard map (JSON, ``ShardMap``), in the root
    0xFFFF "v/" version (8 bytes)  claimed by the commit of that map version, in the root
    0xFFFF "n/" member             a member's heartbeat, JSON ``{"at": unix seconds}``, in the root
    0xFFFF "r/" member "/" at      a dead member's intents were rolled forward, in the root
    0xFFFF "i/" txid               an intent: the other shards' ops of a cross-shard batch
    0xFFFF "a/" txid               a marker: this shard applied its part of batch ``txid``

A txid is ``time_ns (8) || counter (4) || member_tag (4)``. Intents hold ops encoded by
``encode_ops``: per op a tag byte (1 Put, 2 Insert, 3 Delete), the key length (4 bytes) and
key, then for Put/Insert the value length and value.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import AsyncIterator, Sequence

from store.api import Delete, Insert, Op, Put, RecordStore, prefix_end
from store.shardmap import SLOT_COUNT

__all__ = [
    "SYSTEM_PREFIX", "MAP_KEY", "INTENT_PREFIX", "APPLIED_PREFIX", "MEMBER_PREFIX", "VERSION_PREFIX",
    "REAPED_PREFIX", "PFX", "encode_ops", "decode_ops", "version_key", "member_tag", "pages", "scan_all",
]  # fmt: skip

SYSTEM_PREFIX = b"\xff\xff"
MAP_KEY = SYSTEM_PREFIX + b"map"
INTENT_PREFIX = SYSTEM_PREFIX + b"i/"
APPLIED_PREFIX = SYSTEM_PREFIX + b"a/"
MEMBER_PREFIX = SYSTEM_PREFIX + b"n/"  # + member id: JSON {"at": unix seconds} (nodes sharing the store)
VERSION_PREFIX = SYSTEM_PREFIX + b"v/"  # + map version (8 bytes): the fence of map commits
REAPED_PREFIX = SYSTEM_PREFIX + b"r/"  # + member id "/" heartbeat time: that death was handled
PFX = [slot.to_bytes(2, "big") for slot in range(SLOT_COUNT + 1)]
_LEN = struct.Struct(">I")
_TAGS: dict[type, int] = {Put: 1, Insert: 2, Delete: 3}


def encode_ops(ops: Sequence[Op]) -> bytes:
    """Serialise ops for an intent record: tag, key length, key[, value length, value]."""
    out = bytearray()
    for op in ops:
        out.append(_TAGS[type(op)])
        out += _LEN.pack(len(op.key)) + op.key
        if type(op) is not Delete:
            out += _LEN.pack(len(op.value)) + op.value  # type: ignore[union-attr]
    return bytes(out)


def decode_ops(raw: bytes) -> list[Op]:
    ops: list[Op] = []
    pos = 0
    while pos < len(raw):
        tag = raw[pos]
        (klen,) = _LEN.unpack_from(raw, pos + 1)
        key = raw[pos + 5 : pos + 5 + klen]
        pos += 5 + klen
        if tag == 3:
            ops.append(Delete(key))
            continue
        (vlen,) = _LEN.unpack_from(raw, pos)
        value = raw[pos + 4 : pos + 4 + vlen]
        pos += 4 + vlen
        ops.append(Put(key, value) if tag == 1 else Insert(key, value))
    return ops


def version_key(version: int) -> bytes:
    """The root's record claimed by the commit of shard map ``version``."""
    return VERSION_PREFIX + version.to_bytes(8, "big")


def member_tag(member_id: str) -> bytes:
    """The 4 bytes ending the txids of a member's intents."""
    return hashlib.blake2b(member_id.encode(), digest_size=4).digest()


async def pages(
    shard: RecordStore, start: bytes, stop: bytes, page: int = 1000
) -> AsyncIterator[list[tuple[bytes, bytes]]]:
    """The rows of ``shard`` in ``[start, stop)``, a page at a time."""
    while True:
        chunk = await shard.scan(start, stop, limit=page)
        if chunk:
            yield chunk
        if len(chunk) < page:
            return
        start = chunk[-1][0] + b"\x00"


async def scan_all(shard: RecordStore, prefix: bytes) -> list[tuple[bytes, bytes]]:
    """Every row of ``shard`` whose key starts with ``prefix``."""
    return [row async for chunk in pages(shard, prefix, prefix_end(prefix)) for row in chunk]
