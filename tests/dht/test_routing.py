"""k-bucket rules (Kademlia §2.2, §4.1) as a table, and RoutingTable.closest against brute force."""

from __future__ import annotations

import heapq
import random

import pytest

from dht.ids import bucket_index, node_id
from dht.routing import Contact, KBucket, RoutingTable

K = 3


def full_bucket() -> KBucket:
    bucket = KBucket(K, replacement_size=2)
    for i, peer in enumerate([b"a", b"b", b"c"]):
        assert bucket.update(Contact(peer), float(i)) is None
    return bucket


def order(bucket: KBucket) -> list[bytes]:
    return list(bucket.contacts)


# (steps, expected contacts LRS-first, expected replacements oldest-first, expected pinging)
# steps: ("see", peer) -> update; expected ping target follows as a third element
CASES = [
    pytest.param([("see", b"a", None)], [b"b", b"c", b"a"], [], None, id="known contact moves to tail"),
    pytest.param([("see", b"d", b"a")], [b"a", b"b", b"c"], [b"d"], b"a", id="full: newcomer cached, ping LRS"),
    pytest.param([("see", b"d", b"a"), ("see", b"e", None)], [b"a", b"b", b"c"], [b"d", b"e"], b"a",
                 id="one ping per bucket at a time"),
    pytest.param([("see", b"d", b"a"), ("see", b"e", None), ("see", b"f", None)], [b"a", b"b", b"c"],
                 [b"e", b"f"], b"a", id="replacement cache is bounded, oldest dropped"),
    pytest.param([("see", b"d", b"a"), ("see", b"a", None)], [b"b", b"c", b"a"], [b"d"], None,
                 id="LRS answers: stays, moves to tail, newcomer stays cached"),
    pytest.param([("see", b"d", b"a"), ("remove", b"a", None)], [b"b", b"c", b"d"], [], None,
                 id="LRS silent: evicted, newest replacement promoted"),
    pytest.param([("see", b"d", b"a"), ("see", b"e", None), ("remove", b"a", None)], [b"b", b"c", b"e"], [b"d"],
                 None, id="promotion takes the most recently seen replacement"),
    pytest.param([("remove", b"b", None)], [b"a", b"c"], [], None, id="remove without replacements"),
    pytest.param([("fail", b"b", None)], [b"a", b"b", b"c"], [], None, id="one failure is tolerated"),
    pytest.param([("fail", b"b", None), ("fail", b"b", None)], [b"a", b"c"], [], None,
                 id="max_failures in a row evicts"),
    pytest.param([("fail", b"b", None), ("see", b"b", None), ("fail", b"b", None)], [b"a", b"c", b"b"], [], None,
                 id="a sighting resets the failure count"),
    pytest.param([("see", b"d", b"a"), ("fail", b"b", None)], [b"a", b"c", b"d"], [], b"a",
                 id="a failure evicts at once when a replacement waits"),
]


@pytest.mark.parametrize(("steps", "contacts", "replacements", "pinging"), CASES)
def test_bucket_rules(
    steps: list[tuple[str, bytes, bytes | None]],
    contacts: list[bytes],
    replacements: list[bytes],
    pinging: bytes | None,
) -> None:
    bucket = full_bucket()
    for t, (op, peer, ping) in enumerate(steps, start=10):
        if op == "see":
            lrs = bucket.update(Contact(peer), float(t))
            assert (lrs.peer if lrs else None) == ping
        elif op == "remove":
            bucket.remove(peer)
        else:
            bucket.record_failure(peer, max_failures=2)
    assert order(bucket) == contacts
    assert list(bucket.replacements) == replacements
    assert bucket.pinging == pinging


def test_sighting_records_time_and_addresses() -> None:
    bucket = KBucket(K, 2)
    bucket.update(Contact(b"a", ("x",)), 1.0)
    bucket.update(Contact(b"a", ()), 2.0)  # no addresses: keep the known ones
    bucket.update(Contact(b"b"), 3.0)
    head = bucket.head()
    assert head is not None and head.peer == b"a" and head.last_seen == 2.0 and head.addrs == ("x",)
    bucket.update(Contact(b"a", ("y",)), 4.0)
    assert bucket.contacts[b"a"].addrs == ("y",)


def test_table_places_by_common_prefix_and_ignores_self() -> None:
    own = b"own"
    table = RoutingTable(node_id(own), k=K)
    assert table.update(own, (), 0.0) is None and len(table) == 0
    table.update(b"p1", ("addr",), 0.0)
    assert b"p1" in table and table.get(b"p1") is not None and table.get(own) is None
    assert b"p1" in table.buckets[bucket_index(node_id(own), node_id(b"p1"))]
    table.remove(b"p1")
    table.remove(own)
    assert b"p1" not in table and not table.record_failure(b"p1") and not table.record_failure(own)


def test_closest_matches_brute_force() -> None:
    rng = random.Random(7)
    table = RoutingTable(node_id(b"me"), k=20)
    for _ in range(2000):
        table.update(rng.randbytes(38), (), 0.0)
    everyone = list(table)
    assert len(table) == len(everyone) > 100
    for _ in range(200):
        target = rng.choice([rng.randbytes(32), rng.choice(everyone).id, table.own_id])
        t = int.from_bytes(target, "big")
        exclude = rng.choice(everyone).peer
        for count in (1, 5, 20, 40):
            expect = heapq.nsmallest(count + 1, everyone, key=lambda c: c.id_int ^ t)
            expect = [c for c in expect if c.peer != exclude][:count]
            assert table.closest(target, count, exclude=exclude) == expect


def test_stale_buckets_for_refresh() -> None:
    table = RoutingTable(node_id(b"me"), k=20)
    rng = random.Random(1)
    for _ in range(50):
        table.update(rng.randbytes(38), (), 0.0)
    deepest = max(i for i, b in enumerate(table.buckets) if b.contacts)
    assert table.stale_buckets(100.0, 60.0) == list(range(deepest + 2))
    far = (int.from_bytes(table.own_id, "big") ^ (1 << 255)).to_bytes(32, "big")
    table.touch(far, 90.0)  # a lookup into bucket 0
    table.touch(table.own_id, 90.0)  # our own id has no bucket
    assert 0 not in table.stale_buckets(100.0, 60.0)
    assert 0 in table.stale_buckets(150.0, 60.0)
