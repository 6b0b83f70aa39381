"""Record signing, the validation table (dropped and counted), presence merge, the store's expiry and limits."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from dht.ids import peer_record_key, presence_key
from dht.messages import Message, Put, PutResult, decode_message, encode_message
from dht.node import DhtProtocol
from dht.records import (
    Device,
    RecordEntry,
    RecordKind,
    RecordLimits,
    RecordStore,
    Rejection,
    Verifier,
    decode_peer_value,
    decode_presence_value,
    encode_peer_value,
    encode_presence_value,
    live_devices,
    merge_entries,
    sign_entry,
)
from dht.rpc import SendResponse

from .conftest import T0, identity

ALICE = presence_key("alice")


def presence(i: int, devices: list[Device], *, seq: int = 1, expires: float = T0 + 600, user: str = "alice",
             key: bytes | None = None) -> RecordEntry:
    value = encode_presence_value(user, devices)
    return sign_entry(identity(i), RecordKind.PRESENCE, key or presence_key(user), value, seq=seq,
                      expires_ms=int(expires * 1000))


def peer_record(signer: int, about: int, *, expires: float = T0 + 600) -> RecordEntry:
    key = peer_record_key(identity(about).peer_id.bytes)
    return sign_entry(identity(signer), RecordKind.PEER, key, encode_peer_value(["ws://h:7400"], [b"relay"]), seq=1,
                      expires_ms=int(expires * 1000))


def tamper(entry: RecordEntry, **changes: object) -> RecordEntry:
    return dataclasses.replace(entry, **changes)  # type: ignore[arg-type]


LIMITS = RecordLimits(max_entry_bytes=600, max_ttl=3600, max_clock_skew=60)
PHONE = [Device("phone")]

VALIDATION = [
    pytest.param(lambda: presence(1, PHONE), None, id="valid presence"),
    pytest.param(lambda: peer_record(2, 2), None, id="valid peer record"),
    pytest.param(lambda: presence(1, [], seq=2), None, id="valid withdrawal"),
    pytest.param(lambda: tamper(presence(1, PHONE), seq=2), Rejection.BAD_SIGNATURE, id="seq changed after signing"),
    pytest.param(lambda: tamper(presence(1, PHONE), signature=bytes(64)), Rejection.BAD_SIGNATURE, id="zero sig"),
    pytest.param(lambda: tamper(presence(1, PHONE), publisher=identity(3).peer_id.bytes), Rejection.BAD_SIGNATURE,
                 id="someone else's signature"),
    pytest.param(lambda: presence(1, PHONE, expires=T0), Rejection.EXPIRED, id="expired exactly now"),
    pytest.param(lambda: presence(1, PHONE, expires=T0 - 1), Rejection.EXPIRED, id="expired"),
    pytest.param(lambda: presence(1, PHONE, expires=T0 + 3660), None, id="max ttl plus skew is fine"),
    pytest.param(lambda: presence(1, PHONE, expires=T0 + 3661), Rejection.TOO_FAR_IN_FUTURE, id="too far ahead"),
    pytest.param(lambda: presence(1, [Device("d" * 40, "s" * 40)] * 8), Rejection.OVERSIZED, id="oversized"),
    pytest.param(lambda: peer_record(2, 4), Rejection.WRONG_PUBLISHER, id="peer record signed by another peer"),
    pytest.param(lambda: presence(1, PHONE, key=presence_key("bob")), Rejection.WRONG_KEY, id="presence under bob"),
    pytest.param(lambda: tamper(presence(1, PHONE), kind=9), Rejection.MALFORMED, id="unknown kind"),
    pytest.param(lambda: tamper(presence(1, PHONE), publisher=b"not a peer id"), Rejection.MALFORMED,
                 id="publisher is not a PeerId"),
    pytest.param(lambda: tamper(presence(1, PHONE), value=b"\xff\xff"), Rejection.MALFORMED, id="bad value"),
    pytest.param(lambda: tamper(presence(1, PHONE), key=b"short"), Rejection.MALFORMED, id="short key"),
    pytest.param(lambda: tamper(presence(1, PHONE), signature=b"x"), Rejection.MALFORMED, id="short signature"),
]


@pytest.mark.parametrize(("build", "reason"), VALIDATION)
def test_validation_table(build: Callable[[], RecordEntry], reason: Rejection | None) -> None:
    assert Verifier(LIMITS).validate(build(), T0) == reason


@pytest.mark.parametrize(("build", "reason"), VALIDATION)
def test_put_drops_and_counts(make_node: Callable[..., DhtProtocol], build: Callable[[], RecordEntry],
                              reason: Rejection | None) -> None:
    server = make_node(10, limits=LIMITS)
    entry = build()
    server.receive_message(b"client", encode_message(Message(request_id=7, server=False, body=Put((entry,)))), T0)
    [reply] = server.messages_to_send()
    assert isinstance(reply, SendResponse) and reply.request_id == 7
    assert decode_message(reply.data).body == PutResult(stored=0 if reason else 1)
    assert server.stats.rejected == ({reason: 1} if reason else {})
    assert (entry.key in server.store) == (reason is None)


def test_good_signatures_are_remembered() -> None:
    verifier = Verifier(LIMITS, cache_size=1)
    a, b = presence(1, PHONE), presence(2, PHONE)
    assert verifier.validate(a, T0) is None and verifier.validate(a, T0) is None
    assert verifier.validate(b, T0) is None  # evicts a from the one-slot cache
    assert verifier.validate(tamper(a, signature=bytes(64)), T0) is Rejection.BAD_SIGNATURE


def test_value_codecs() -> None:
    assert decode_presence_value(encode_presence_value("u", [Device("d", "away")])) == ("u", (Device("d", "away"),))
    assert decode_peer_value(encode_peer_value(["a"], [b"r"])) == (("a",), (b"r",))
    assert presence(1, []).is_tombstone() and not presence(1, PHONE).is_tombstone()
    assert not peer_record(2, 2).is_tombstone()


def test_presence_merge_several_publishers() -> None:
    store = RecordStore(RecordLimits())
    n1, n2 = presence(1, [Device("phone")], seq=5), presence(2, [Device("laptop"), Device("tablet", "away")], seq=1)
    assert store.put(n1) and store.put(n2)
    assert store.put(presence(1, [Device("phone", "busy")], seq=6))  # newer seq wins
    assert not store.put(presence(1, [Device("old")], seq=4))  # older seq is refused
    assert not store.put(presence(1, [Device("phone", "busy")], seq=6))  # the same again: nothing new
    entries = store.get(ALICE, T0)
    devices = sorted((pub, d.device_id, d.status) for pub, d, _ in live_devices(entries))
    p1, p2 = identity(1).peer_id.bytes, identity(2).peer_id.bytes
    assert devices == sorted([(p1, "phone", "busy"), (p2, "laptop", "online"), (p2, "tablet", "away")])


def test_withdraw_is_a_tombstone_that_outranks_older_entries() -> None:
    store = RecordStore(RecordLimits())
    store.put(presence(1, PHONE, seq=1))
    store.put(presence(2, PHONE, seq=1))
    assert store.put(presence(1, [], seq=2))
    assert not store.put(presence(1, PHONE, seq=1))  # a stale copy cannot resurrect the device
    merged = merge_entries(store.get(ALICE, T0), T0)
    assert [e.publisher for e in merged if not e.is_tombstone()] == [identity(2).peer_id.bytes]


def test_expiry_removes_entries_exactly_at_their_deadline() -> None:
    store = RecordStore(RecordLimits())
    store.put(presence(1, PHONE, expires=T0 + 10))
    store.put(presence(2, PHONE, expires=T0 + 20))
    store.put(presence(3, PHONE, seq=1, expires=T0 + 5))
    store.put(presence(3, PHONE, seq=2, expires=T0 + 30))  # supersedes the T0+5 heap item
    assert store.next_expiry() == T0 + 10  # the superseded T0+5 item is skipped
    assert store.expire(T0 + 5) == [] and len(store) == 3
    assert store.expire(T0 + 9.999) == [] and len(store) == 3
    assert store.expire(T0 + 10) == [] and len(store) == 2
    assert len(store.get(ALICE, T0 + 19)) == 2
    assert store.get(ALICE, T0 + 20) == [presence(3, PHONE, seq=2, expires=T0 + 30)]  # get hides the expired
    assert store.expire(T0 + 30) == [ALICE] and ALICE not in store and store.next_expiry() is None


def test_merge_entries_keeps_newest_live_per_publisher() -> None:
    old, new = presence(1, PHONE, seq=1), presence(1, PHONE, seq=2)
    gone = presence(2, PHONE, expires=T0 - 1)
    assert merge_entries([new, old, gone], T0) == [new]
    assert merge_entries([old, new], T0 + 601) == []


def test_store_limits() -> None:
    store = RecordStore(RecordLimits(max_keys=1, max_entries_per_key=2))
    assert store.put(presence(1, PHONE)) and store.put(presence(2, PHONE))
    assert not store.put(presence(3, PHONE))  # a third publisher under the key
    assert store.put(presence(1, PHONE, seq=2))  # an update of a held publisher is fine
    assert not store.put(presence(1, PHONE, user="bob"))  # a second key
    store.remove(ALICE, identity(1).peer_id.bytes)
    store.remove(ALICE, identity(2).peer_id.bytes)
    store.remove(ALICE, b"nobody")
    assert len(store) == 0 and store.keys() == []
