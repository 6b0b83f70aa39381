"""Message codec: round trips, bounds, and arbitrary bytes raising nothing but DecodeError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dht.errors import DecodeError
from dht.messages import (
    MAX_PEERS,
    Body,
    FindNode,
    FindNodeResult,
    Get,
    GetResult,
    Message,
    PeerInfo,
    Ping,
    Pong,
    Put,
    PutResult,
    decode_message,
    encode_message,
)
from dht.records import RecordEntry, RecordKind

keys = st.binary(min_size=32, max_size=32)
u64 = st.integers(min_value=0, max_value=2**64 - 1)
addrs = st.lists(st.text(max_size=20), max_size=4).map(tuple)
peers = st.builds(PeerInfo, st.binary(min_size=1, max_size=40), addrs)
entries = st.builds(
    RecordEntry,
    kind=st.sampled_from([RecordKind.PRESENCE, RecordKind.PEER, 7]),
    key=keys,
    publisher=st.binary(max_size=40),
    seq=u64,
    expires_ms=u64,
    value=st.binary(max_size=64),
    signature=st.binary(max_size=64),
)
bodies: st.SearchStrategy[Body] = st.one_of(
    st.just(Ping()),
    st.just(Pong()),
    st.builds(FindNode, keys),
    st.builds(FindNodeResult, st.lists(peers, max_size=5).map(tuple)),
    st.builds(Get, keys),
    st.builds(GetResult, st.lists(entries, max_size=3).map(tuple), st.lists(peers, max_size=5).map(tuple)),
    st.builds(Put, st.lists(entries, max_size=3).map(tuple)),
    st.builds(PutResult, st.integers(min_value=0, max_value=2**32 - 1)),
)
messages = st.builds(Message, request_id=u64, server=st.booleans(), body=bodies, sender_addrs=addrs)


@given(messages)
def test_round_trip(msg: Message) -> None:
    data = encode_message(msg)
    assert decode_message(data) == msg
    assert encode_message(decode_message(data)) == data  # deterministic


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_decode_error(data: bytes) -> None:
    try:
        decode_message(data)
    except DecodeError:
        pass


@given(messages, st.data())
def test_mutated_messages_raise_only_decode_error(msg: Message, data: st.DataObject) -> None:
    raw = bytearray(encode_message(msg))
    if raw:
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        decode_message(bytes(raw))
    except DecodeError:
        pass


def test_known_encoding() -> None:
    ping = Message(request_id=1, server=True, body=Ping())
    assert encode_message(ping) == bytes.fromhex("0801 1001 5200")  # id=1, server=true, ping={}
    assert decode_message(bytes.fromhex("0801 1001 5200")) == ping


@pytest.mark.parametrize(
    ("msg", "problem"),
    [
        (Message(request_id=1, server=True, body=FindNode(b"short")), "a key is 32 bytes"),
        (Message(request_id=1, server=True, body=Get(bytes(33))), "a key is 32 bytes"),
        (Message(request_id=1, server=True, body=FindNodeResult((PeerInfo(b"p"),) * (MAX_PEERS + 1))), "peers"),
        (Message(request_id=1, server=True, body=FindNodeResult((PeerInfo(b""),))), "peer id"),
        (Message(request_id=1, server=True, body=FindNodeResult((PeerInfo(b"p", ("a" * 300,)),))), "addresses"),
        (Message(request_id=1, server=True, sender_addrs=("a",) * 17, body=Ping()), "addresses"),
    ],
)
def test_bounds(msg: Message, problem: str) -> None:
    with pytest.raises(DecodeError, match=problem):
        decode_message(encode_message(msg))


def test_no_body_and_oversize() -> None:
    with pytest.raises(DecodeError, match="without a body"):
        decode_message(b"")
    with pytest.raises(DecodeError, match="exceeds"):
        decode_message(b"\x00" * 10, max_size=5)
    with pytest.raises(TypeError):
        encode_message(Message(request_id=1, server=True, body=Body()))
    assert Message(request_id=1, server=True, body=Get(bytes(32))).is_request
    assert not Message(request_id=1, server=True, body=Pong()).is_request
