"""``RecentMap``: bounded, about FIFO over real message ids, unequal shards (im/recent.py)."""

from __future__ import annotations

import pytest

from im import recent
from im.ids import EPOCH_MS, MessageIdGenerator
from im.recent import RecentMap


def _message_ids(count: int, per_ms: int = 8) -> list[int]:
    """Ids as a node makes them under load: ``per_ms`` a millisecond, low bits a sequence."""
    gen = MessageIdGenerator(3)
    return [gen.next_id(EPOCH_MS + 10_000 + i // per_ms) for i in range(count)]


def test_holds_at_most_limit_and_the_newest_entries() -> None:
    limit = 20_000
    recent_ids = RecentMap[int, int](limit)
    ids = _message_ids(10 * limit)
    for n, message_id in enumerate(ids):
        recent_ids.remember(message_id, n)
        assert len(recent_ids) <= limit or n < limit
    assert len(recent_ids) <= limit
    newest = ids[-int(0.9 * limit) :]
    kept = sum(1 for message_id in newest if message_id in recent_ids)
    assert kept >= 0.97 * len(newest)  # shards get their share of keys within a few percent
    assert all(recent_ids.get(message_id) == len(ids) - 1 - i for i, message_id in enumerate(reversed(ids[-50:])))
    assert not any(message_id in recent_ids for message_id in ids[: -2 * limit])


def test_tuple_keys_get_pop_and_overwrite() -> None:
    sent = RecentMap[tuple[str, str], tuple[int, int]](1000)
    sent.remember(("alice", "c1"), (1, 10))
    sent.remember(("alice", "c1"), (2, 20))  # the newer value wins
    assert sent.get(("alice", "c1")) == (2, 20)
    assert ("alice", "c1") in sent and ("bob", "c1") not in sent
    assert sent.get(("bob", "c1")) is None
    assert sent.pop(("alice", "c1")) == (2, 20)
    assert sent.pop(("alice", "c1")) is None
    assert len(sent) == 0
    sent.remember(("carol", "c2"), (3, 30))
    sent.clear()
    assert ("carol", "c2") not in sent and len(sent) == 0


def test_shards_are_unequal_so_they_do_not_compact_together() -> None:
    shares = recent._shares(recent.SHARDS)
    assert sum(shares) == recent._SLOTS
    mean = recent._SLOTS / recent.SHARDS
    assert min(shares) == pytest.approx(0.5 * mean, rel=0.05)
    assert max(shares) == pytest.approx(1.5 * mean, rel=0.05)
    assert len(set(shares)) > recent.SHARDS // 2  # each shard reaches its resize points at its own time
    bounded = RecentMap[int, int](200_000)
    assert sum(bounded._bounds) <= 200_000
    # a shard's bound follows its share of the keys, so every key lives about as long
    assert {round(b / s) for b, s in zip(bounded._bounds, shares, strict=True)} <= {48, 49}


def test_small_and_invalid_limits() -> None:
    tiny = RecentMap[int, int](3)
    for i in range(100):
        tiny.remember(i, i)
    assert len(tiny) <= 3 and 99 in tiny
    with pytest.raises(ValueError):
        RecentMap[int, int](0)
