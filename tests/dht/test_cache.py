"""Lookup cache: TTL, LRU bound, invalidation; fresh=True bypasses it in the core."""

from __future__ import annotations

from collections.abc import Callable

from dht.cache import LookupCache
from dht.ids import presence_key
from dht.node import DhtProtocol, GetCompleted
from dht.records import Device

from .conftest import T0, Hub


def test_ttl_boundaries() -> None:
    cache: LookupCache[str] = LookupCache(ttl=30.0)
    cache.put(b"k", "v", now=100.0)
    assert cache.get(b"k", 100.0) == "v"
    assert cache.get(b"k", 129.999) == "v"
    assert cache.get(b"k", 130.0) is None  # expired exactly at stored_at + ttl
    assert len(cache) == 0
    assert (cache.hits, cache.misses) == (2, 1)


def test_lru_bound_and_invalidate() -> None:
    cache: LookupCache[int] = LookupCache(ttl=10.0, max_entries=2)
    cache.put(b"a", 1, 0.0)
    cache.put(b"b", 2, 0.0)
    assert cache.get(b"a", 1.0) == 1  # a is now the most recently used
    cache.put(b"c", 3, 0.0)
    assert cache.get(b"b", 1.0) is None
    assert cache.get(b"a", 1.0) == 1
    cache.invalidate(b"a")
    assert cache.get(b"a", 1.0) is None
    LookupCache[int](ttl=0).put(b"x", 1, 0.0)  # ttl 0 disables caching


def test_get_uses_cache_until_ttl_and_fresh_bypasses(network: Callable[..., tuple[Hub, list[DhtProtocol]]]) -> None:
    hub, nodes = network(8, cache_ttl=30.0)
    nodes[1].put_presence("alice", [Device("phone")], T0)
    hub.run(T0)
    asker = nodes[5]
    asker.get(presence_key("alice"), T0 + 1)
    hub.run(T0 + 1)
    first = hub.last(asker, GetCompleted)
    assert not first.cached and len(first.entries) == 1

    sent = hub.delivered
    asker.get(presence_key("alice"), T0 + 30.9)
    hub.run(T0 + 30.9)
    assert hub.last(asker, GetCompleted).cached
    assert hub.delivered == sent  # answered locally

    asker.get(presence_key("alice"), T0 + 31.0)  # the entry expired at T0 + 1 + 30
    hub.run(T0 + 31.0)
    assert not hub.last(asker, GetCompleted).cached

    sent = hub.delivered
    asker.get(presence_key("alice"), T0 + 32, fresh=True)
    hub.run(T0 + 32)
    event = hub.last(asker, GetCompleted)
    assert not event.cached and hub.delivered > sent
