"""Records inside Noise transport messages (node/secure.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.errors import DecodeError, DecryptError, FrameTooLarge, LinkClosed, LocalProtocolError, RemoteProtocolError
from node.noise import CipherState
from node.secure import ChannelConfig, SecureChannel


def channels(config: ChannelConfig | None = None) -> tuple[SecureChannel, SecureChannel]:
    k1, k2 = bytes(32), bytes([1]) * 32
    a = SecureChannel(CipherState(k1), CipherState(k2), config)
    b = SecureChannel(CipherState(k2), CipherState(k1), config)
    return a, b


def deliver(frames: list[bytes], b: SecureChannel) -> list[bytes]:
    return [m for f in frames for m in b.open(f)]


def test_coalescing_batches_small_messages() -> None:
    a, b = channels()
    msgs = [bytes([i]) * 10 for i in range(100)]
    frames = a.seal(msgs)
    assert len(frames) == 1
    assert deliver(frames, b) == msgs
    frames = a.seal(msgs, coalesce=False)
    assert len(frames) == 100
    assert deliver(frames, b) == msgs


def test_large_message_is_chunked() -> None:
    a, b = channels(ChannelConfig(max_frame_size=1000))
    big = bytes(range(256)) * 20
    frames = a.seal([b"x", big, b"y"])
    assert all(len(f) <= 1000 for f in frames) and len(frames) > 5
    assert deliver(frames, b) == [b"x", big, b"y"]


def test_limits() -> None:
    a, b = channels(ChannelConfig(max_message_size=100))
    with pytest.raises(LocalProtocolError):
        a.seal([bytes(101)])
    big_a, _ = channels(ChannelConfig(max_frame_size=200, max_message_size=10_000))
    frames = big_a.seal([bytes(1000)])
    _, small_b = channels(ChannelConfig(max_frame_size=200, max_message_size=500))
    with pytest.raises(FrameTooLarge):
        deliver(frames, small_b)
    _, b2 = channels(ChannelConfig(max_frame_size=100))
    with pytest.raises(FrameTooLarge):
        b2.open(bytes(101))
    with pytest.raises(ValueError):
        ChannelConfig(max_frame_size=70000)


def test_replay_tamper_and_broken_channel() -> None:
    a, b = channels()
    f1, f2 = a.seal([b"one"]) + a.seal([b"two"])
    assert b.open(f1) == [b"one"]
    with pytest.raises(DecryptError):
        b.open(f1)  # replayed
    with pytest.raises(LinkClosed):
        b.open(f2)  # the channel broke: everything after is refused
    a, b = channels()
    frame = bytearray(a.seal([b"x"])[0])
    frame[0] ^= 1
    with pytest.raises(DecryptError):
        b.open(bytes(frame))


def test_bad_records() -> None:
    for record in (b"", b"\x09", b"\x01\x05ab", b"\x01"):
        a, b = channels()
        frame = a._send.encrypt_with_ad(b"", record)
        with pytest.raises(DecodeError):
            b.open(frame)
    a, b = channels()
    frames = [a._send.encrypt_with_ad(b"", r) for r in (b"\x02part", b"\x00whole")]
    b.open(frames[0])
    with pytest.raises(DecodeError):
        b.open(frames[1])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=3000), max_size=20), st.booleans())
def test_round_trip(msgs: list[bytes], coalesce: bool) -> None:
    a, b = channels(ChannelConfig(max_frame_size=1024))
    assert deliver(a.seal(msgs, coalesce=coalesce), b) == msgs


@given(st.binary(max_size=300))
def test_random_frames_only_remote_errors(data: bytes) -> None:
    _, b = channels()
    try:
        b.open(data)
    except RemoteProtocolError:
        pass
