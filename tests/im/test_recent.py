"""``RecentMap``: bounded memory of the newest entries, dropped a generation at a time
(im/recent.py)."""

from __future__ import annotations

import gc

import pytest

from im.ids import EPOCH_MS, MessageIdGenerator
from im.recent import GENERATIONS, RecentMap, join_key, pack_ints, split_pair, unpack_ints


def _message_ids(count: int, per_ms: int = 8) -> list[int]:
    """Ids as a node makes them under load: ``per_ms`` a millisecond."""
    gen = MessageIdGenerator(3)
    return [gen.next_id(EPOCH_MS + 10_000 + i // per_ms) for i in range(count)]


@pytest.mark.parametrize("limit", [20_000, 20_003])
def test_holds_at_most_limit_and_always_the_newest_keys(limit: int) -> None:
    recent = RecentMap[int, int](limit)
    kept = (GENERATIONS - 1) * (limit // GENERATIONS)
    ids = _message_ids(10 * limit + 123)
    for n, message_id in enumerate(ids):
        recent.remember(message_id, n)
        assert len(recent) <= limit
        if n >= kept:
            assert ids[n - kept + 1] in recent  # the oldest of the newest ``kept``, at every step
    assert all(recent.get(message_id) == len(ids) - kept + i for i, message_id in enumerate(ids[-kept:]))
    assert not any(message_id in recent for message_id in ids[:-limit])


def test_entries_leave_a_whole_generation_at_a_time() -> None:
    # nothing is deleted from a dict, so none of them ever compacts (the pause this map avoids)
    recent = RecentMap[int, int](400)
    for n in range(1000):
        recent.remember(n, n)
    assert [len(generation) for generation in recent._older] == [100, 100, 100]
    assert len(recent._newest) == 0 and 699 not in recent and 700 in recent and 999 in recent


def test_tuple_keys_get_overwrite_and_clear() -> None:
    sent = RecentMap[tuple[str, str], tuple[int, int]](8)
    sent.remember(("alice", "c1"), (1, 10))
    for n in range(3):
        sent.remember(("filler", str(n)), (n, n))  # ("alice", "c1") is now in an older generation
    assert sent.get(("alice", "c1")) == (1, 10)
    sent.remember(("alice", "c1"), (2, 20))  # the newer value shadows the older one
    assert sent.get(("alice", "c1")) == (2, 20)
    assert ("alice", "c1") in sent and ("bob", "c1") not in sent
    assert sent.get(("bob", "c1")) is None
    sent.clear()
    assert len(sent) == 0 and ("filler", "0") not in sent and sent.get(("alice", "c1")) is None


def test_small_and_invalid_limits() -> None:
    tiny = RecentMap[int, int](GENERATIONS)
    for i in range(10):
        tiny.remember(i, i)
    assert len(tiny) <= GENERATIONS and all(i in tiny for i in (7, 8, 9)) and 6 not in tiny
    with pytest.raises(ValueError):
        RecentMap[int, int](GENERATIONS - 1)
    with pytest.raises(ValueError):
        RecentMap[int, int](10, generations=1)


def test_joined_keys_and_packed_values_round_trip() -> None:
    assert split_pair(join_key("alice", "bob")) == ("alice", "bob")
    assert split_pair(join_key("alice", "a\x00b")) == ("alice", "a\x00b")  # only the first NUL splits
    assert join_key("alice", "g", "x") != join_key("alice", "gx", "")
    top = (1 << 64) - 1
    for values in [(0, 0), (1, 2), (top, 0), (0, top), (top, top), (2**63 + 5, 1_700_000_000_000)]:
        assert unpack_ints(pack_ints(*values), 2) == values
    assert unpack_ints(pack_ints(7, 8, 9), 3) == (7, 8, 9)
    with pytest.raises(ValueError):
        pack_ints(-1)
    with pytest.raises(ValueError):
        pack_ints(1 << 64)


def test_maps_of_atomic_entries_stay_out_of_the_cyclic_collector() -> None:
    """What the messenger keeps (joined keys, packed values) leaves every dict untracked,
    so the collector never walks them; a tuple value would make the newest dict tracked."""
    atomic: RecentMap[str, int] = RecentMap(4000)
    with_tuples: RecentMap[int, tuple[str, str]] = RecentMap(4000)
    for i in range(10_500):
        atomic.remember(join_key("alice", f"cm-{i}"), pack_ints(i, 1_700_000_000_000 + i))
        with_tuples.remember(i, (f"a{i}", f"b{i}"))
    assert not any(gc.is_tracked(d) for d in (atomic._newest, *atomic._older))
    assert gc.is_tracked(with_tuples._newest)
    assert unpack_ints(atomic.get(join_key("alice", "cm-10499")) or 0, 2) == (10_499, 1_700_000_010_499)
