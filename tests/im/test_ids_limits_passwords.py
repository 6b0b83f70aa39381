"""Message ids, token bucket, login throttle and password hashing (exact values), and
where logins hash."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from im import accounts as accounts_module
from im.accounts import Accounts
from im.ids import EPOCH_MS, MessageIdGenerator, id_timestamp_ms
from im.keys import KeySchema
from im.limits import LoginThrottle, TokenBucket, address_key
from im.passwords import Argon2Params, hash_password, verify_password
from store.crypto import Keyring
from store.memory import MemoryStore

FAST = Argon2Params(memory_kib=64, iterations=1)


def test_ids_increase_and_encode_time() -> None:
    gen = MessageIdGenerator(5)
    t = EPOCH_MS + 10_000
    ids = [gen.next_id(t) for _ in range(5000)]  # more than 4096 in one ms: borrows the next ms
    assert ids == sorted(set(ids))
    assert id_timestamp_ms(ids[0]) == t
    back = gen.next_id(t - 5000)  # the clock stepped back
    assert back > ids[-1]


def test_ids_of_different_nodes_differ() -> None:
    t = EPOCH_MS + 1
    assert MessageIdGenerator(1).next_id(t) != MessageIdGenerator(2).next_id(t)


def test_token_bucket_exact() -> None:
    bucket = TokenBucket(rate=10, burst=2, now=0.0)
    assert bucket.take(0.0) == 0.0 and bucket.take(0.0) == 0.0
    assert abs(bucket.take(0.0) - 0.1) < 1e-9
    assert bucket.take(0.1) == 0.0
    assert TokenBucket(rate=0, burst=1, now=0).take(0) == 0.0  # unlimited


def test_login_throttle_backs_off_exponentially_and_resets() -> None:
    throttle = LoginThrottle(free=3, base=1.0, cap=8.0)
    for _ in range(3):
        assert throttle.retry_after("a", "u", 0.0) == 0.0
        throttle.failed("a", "u", 0.0)
    assert throttle.retry_after("a", "u", 0.0) == 1.0
    throttle.failed("a", "u", 1.0)
    assert throttle.retry_after("a", "u", 1.0) == 2.0
    assert throttle.retry_after("b", "u", 1.0) == 0.0  # another address is not slowed yet
    for _ in range(20):
        throttle.failed("a", "u", 1.0)
    assert throttle.retry_after("a", "u", 1.0) == 8.0  # capped
    assert throttle.retry_after("b", "u", 1.0) > 0  # the user is now slowed from any address
    throttle.succeeded("a", "u")
    assert throttle._delay(("a", "u"), 3, 1.0) == 0.0


def test_a_withdrawn_attempt_counts_no_failure() -> None:
    """Logins refused before their password was checked (KDF queue full, store down) must not
    lock the user out as if they had been wrong."""
    throttle = LoginThrottle(free=1, base=1.0)
    for _ in range(10):
        throttle.attempt("10.0.0.1", "alice", 0.0)
        throttle.withdraw("10.0.0.1", "alice")
    assert throttle.retry_after("10.0.0.1", "alice", 0.0) == 0.0
    assert throttle.retry_after("10.0.0.2", "alice", 0.0) == 0.0
    throttle.attempt("10.0.0.1", "alice", 0.0)
    throttle.attempt("10.0.0.1", "alice", 0.0)
    assert throttle.retry_after("10.0.0.1", "alice", 0.0) > 0


def test_clients_are_counted_by_ipv4_address_and_ipv6_64() -> None:
    assert address_key("203.0.113.7") == "203.0.113.7"
    assert address_key("::ffff:203.0.113.7") == "203.0.113.7"
    one_site = {address_key(f"2001:db8:1:2::{i:x}") for i in range(1, 1000)}
    assert one_site == {"2001:db8:1:2::/64"}
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("fe80::1%eth0") == "fe80::/64" and address_key("?") == "?"


def test_login_throttle_memory_is_bounded() -> None:
    throttle = LoginThrottle(max_entries=10)
    for i in range(100):
        throttle.failed(f"addr{i}", f"user{i}", 0.0)
    assert len(throttle._entries) <= 10


def test_password_hash_verifies_and_is_salted() -> None:
    one, two = hash_password("correct horse", FAST), hash_password("correct horse", FAST)
    assert one != two and one.startswith("argon2id$m=64,t=1,p=1$")
    assert verify_password("correct horse", one) and not verify_password("wrong horse", one)
    assert not verify_password("x", "garbage") and not verify_password("x", "argon2id$m=1$a$b")


async def test_logins_hash_in_a_pool_of_at_most_one_thread_per_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each KDF thread keeps its last run's ~19 MiB in its malloc arena, so concurrent
    registrations must not spread over the asyncio default executor's cores + 4 threads."""
    threads: set[str] = set()

    def spy(password: str) -> str:
        threads.add(threading.current_thread().name)
        return hash_password(password, FAST)

    monkeypatch.setattr(accounts_module, "hash_password", spy)
    store = MemoryStore()
    await store.open()
    accounts = Accounts(store, KeySchema(Keyring(b"k" * 32).blind), lambda: 0, 3600.0)
    await asyncio.gather(*(accounts.register(f"user{i}", "password123") for i in range(16)))
    assert threads and all(name.startswith("argon2") for name in threads)
    assert len(threads) <= min(4, os.cpu_count() or 1)
    assert await accounts.exists("user15")
