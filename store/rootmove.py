"""Move the root role off a shard being removed (``timnode store remove-shard`` of the root).

The root shard holds the shard map, the map version keys (the fence of map commits) and
the members registry (``store.shardkeys``). ``run_rebalance`` moves every slot off a
removed root like off any shard; before dropping it, ``move_root``:

1. prepares the new root, ``ShardMap.next_root()`` (the oldest shard that stays): copies
   the members' records there and writes the new map (root = that shard, version + 1)
   with its version key;
2. commits the same map in the old root, fenced like every map commit: from then on the
   old root's map *forwards* to the new root, and this process uses the new root (and
   rewrites its ``shards.json``);
3. copies again the members' records that are newer in the old root (members that
   registered or beat there meanwhile);
4. has every other live member reload the map (``Coordinator.sync``): each follows the
   forward, registers in the new root, reads the map there and rewrites its
   ``shards.json``; a member that does not answer aborts the step, which is retried.

The old root keeps its records: a node that was stopped meanwhile still names it in
``shards.json`` and follows the forward on its next start. Keep the old root's SQLite file
or PostgreSQL table until every node sharing the store has started once since. A crash
before step 2 redoes the move; after it, the resumed rebalance finds the root moved and
only drops the old shard from the map.
"""

from __future__ import annotations

import copy
import json
import logging

from store.api import Put, RecordStore
from store.sharded import ShardedStore
from store.shardkeys import MAP_KEY, MEMBER_PREFIX, REAPED_PREFIX, scan_all, version_key

__all__ = ["move_root"]

log = logging.getLogger(__name__)


async def move_root(store: ShardedStore) -> None:
    """Make ``store.map.next_root()`` the root; the current root must own no slot."""
    old_sid = store.root_id
    if any(sid == old_sid for sid in store.map.slots) or store.map.moves or store.map.cleanup:
        raise ValueError("the root still owns slots: move them first")
    new = copy.deepcopy(store.map)
    new.root = new.next_root()
    new.version += 1
    old, target = store.shard(old_sid), store.shard(new.root)
    await copy_members(old, target)
    await target.write([Put(version_key(new.version), b""), Put(MAP_KEY, new.encode())])
    await store.commit_map(new)  # the old root now forwards to the new one
    await copy_members(old, target)
    if store.coordinator is not None:
        await store.coordinator.sync(new.version)
    log.info("= root moved from shard %d to shard %d (map version %d)", old_sid, new.root, new.version)


async def copy_members(source: RecordStore, target: RecordStore) -> int:
    """Copy the members' records (and handled deaths) that are newer in ``source``; returns how many."""
    ops: list[Put] = []
    for prefix in (MEMBER_PREFIX, REAPED_PREFIX):
        there = dict(await scan_all(target, prefix))
        ops += [Put(k, v) for k, v in await scan_all(source, prefix) if _at(v) > _at(there.get(k))]
    if ops:
        await target.write(ops)
    return len(ops)


def _at(raw: bytes | None) -> float:
    """A member record's heartbeat time (-1 for none or a record without one)."""
    if not raw:
        return -1.0
    try:
        return float(json.loads(raw)["at"])
    except (ValueError, KeyError, TypeError):
        return -1.0
