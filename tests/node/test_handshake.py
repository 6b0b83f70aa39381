"""The peer handshake core, two sans-I/O sides in memory (node/handshake.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node.errors import (
    AbortCode,
    AuthenticationError,
    HandshakeAborted,
    HandshakeError,
    HandshakeTimeout,
    NetworkKeyMismatch,
    P2PError,
    PeerIdMismatch,
    RemoteProtocolError,
)
from node.handshake import ABORT, NOISE, HandshakeComplete, HandshakeFailed, HandshakeProtocol, Phase
from node.identity import Identity
from node.netkey import OPEN_NETWORK_KEY

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))
ALICE, BOB, MALLORY = Identity.generate(), Identity.generate(), Identity.generate()


def pair(
    key_i: bytes = KEY_A, key_r: bytes = KEY_A, responder: Identity = BOB, **kw: object
) -> tuple[HandshakeProtocol, HandshakeProtocol]:
    i = HandshakeProtocol(initiator=True, identity=ALICE, network_key=key_i, now=0.0, **kw)  # type: ignore[arg-type]
    r = HandshakeProtocol(initiator=False, identity=responder, network_key=key_r, now=0.0)
    return i, r


def transfer(src: HandshakeProtocol, dst: HandshakeProtocol, now: float = 1.0) -> list[bytes]:
    sent = src.data_to_send()
    for data in sent:
        dst.receive_data(data, now)
    return sent


def events(p: HandshakeProtocol) -> list[object]:
    out = []
    while (e := p.next_event()) is not None:
        out.append(e)
    return out


def run(i: HandshakeProtocol, r: HandshakeProtocol) -> tuple[list[object], list[object]]:
    for _ in range(3):
        transfer(i, r)
        transfer(r, i)
    return events(i), events(r)


def test_success_both_sides() -> None:
    i, r = pair(expected_peer=BOB.peer_id)
    ei, er = run(i, r)
    assert isinstance(ei[0], HandshakeComplete) and isinstance(er[0], HandshakeComplete)
    assert ei[0].remote_peer == BOB.peer_id and er[0].remote_peer == ALICE.peer_id
    assert ei[0].handshake_hash == er[0].handshake_hash
    assert i.phase is r.phase is Phase.DONE and i.get_timer() is None
    frames = ei[0].channel.seal([b"hello", b"world"])
    assert [m for f in frames for m in er[0].channel.open(f)] == [b"hello", b"world"]


def test_wire_sizes() -> None:
    i, r = pair()
    m1 = i.data_to_send()
    assert len(m1) == 1 and len(m1[0]) == 1 + 32 + 32 and m1[0][0] == NOISE


def test_network_key_mismatch_both_sides() -> None:
    i, r = pair(KEY_A, KEY_B)
    transfer(i, r)
    er = events(r)
    assert isinstance(er[0], HandshakeFailed) and isinstance(er[0].error, NetworkKeyMismatch)
    assert not er[0].remote and "network key mismatch" in str(er[0].error)
    abort = transfer(r, i)
    assert abort[0][:2] == bytes([ABORT, AbortCode.NETWORK_KEY_MISMATCH])
    ei = events(i)
    assert isinstance(ei[0], HandshakeFailed) and isinstance(ei[0].error, NetworkKeyMismatch)
    assert ei[0].remote and "network key mismatch" in str(ei[0].error)


def test_open_network_vs_private() -> None:
    i, r = pair(OPEN_NETWORK_KEY, KEY_A)
    _, er = run(i, r)
    assert isinstance(er[0], HandshakeFailed) and isinstance(er[0].error, NetworkKeyMismatch)


def test_prologue_alone_catches_mismatch_on_message_2() -> None:
    """A responder that skipped the tag check still cannot complete: message 2 fails to decrypt."""
    i, r = pair(KEY_A, KEY_B)
    m1 = i.data_to_send()[0]
    r._key = KEY_A  # pass the tag check, keep the KEY_B prologue
    r.receive_data(m1, 1.0)
    transfer(r, i)
    ei = events(i)
    assert isinstance(ei[0], HandshakeFailed) and isinstance(ei[0].error, NetworkKeyMismatch)


def test_peer_id_mismatch_mitm() -> None:
    i, r = pair(responder=MALLORY, expected_peer=BOB.peer_id)
    ei, er = run(i, r)
    assert isinstance(ei[0], HandshakeFailed) and isinstance(ei[0].error, PeerIdMismatch)
    assert ei[0].error.expected == str(BOB.peer_id) and ei[0].error.actual == str(MALLORY.peer_id)
    assert isinstance(er[0], HandshakeFailed) and isinstance(er[0].error, HandshakeAborted)
    assert er[0].error.code is AbortCode.PEER_ID_MISMATCH and er[0].remote


def test_tampered_messages() -> None:
    for index in (0, 1):  # message 2, then message 3
        i, r = pair()
        transfer(i, r)
        if index == 1:
            transfer(r, i)
            src, dst = i, r
        else:
            src, dst = r, i
        data = bytearray(src.data_to_send()[0])
        data[-3] ^= 0x40
        dst.receive_data(bytes(data), 1.0)
        ev = events(dst)
        assert isinstance(ev[0], HandshakeFailed) and isinstance(ev[0].error, HandshakeError)


def test_truncated_and_replayed() -> None:
    i, r = pair()
    m1 = i.data_to_send()[0]
    r.receive_data(m1[:40], 1.0)
    ev = events(r)
    assert isinstance(ev[0], HandshakeFailed) and isinstance(ev[0].error, HandshakeError)
    # message 1 replayed where message 3 is due
    i, r = pair()
    m1 = i.data_to_send()[0]
    r.receive_data(m1, 1.0)
    r.receive_data(m1, 1.0)
    ev = events(r)
    assert isinstance(ev[0], HandshakeFailed) and isinstance(ev[0].error, RemoteProtocolError)
    # message 3 of an old session replayed to a new responder session
    i1, r1 = pair()
    transfer(i1, r1)
    transfer(r1, i1)
    old_m3 = i1.data_to_send()[0]
    i2, r2 = pair()
    transfer(i2, r2)
    r2.receive_data(old_m3, 1.0)
    ev = events(r2)
    assert isinstance(ev[0], HandshakeFailed) and isinstance(ev[0].error, HandshakeError)


def test_forged_identity_signature() -> None:
    i2, r2 = pair()
    good = r2._signed_payload

    def forged() -> bytes:
        data = bytearray(good())
        data[-1] ^= 1  # break the signature
        return bytes(data)

    r2._signed_payload = forged  # type: ignore[method-assign]
    transfer(i2, r2)
    transfer(r2, i2)
    ev = events(i2)
    assert isinstance(ev[0], HandshakeFailed) and isinstance(ev[0].error, AuthenticationError)


def test_timeout_and_data_after_failure() -> None:
    i, r = pair(timeout=5.0)
    assert i.get_timer() == 5.0
    i.handle_timer(4.9)
    assert i.next_event() is None
    i.handle_timer(5.0)
    ev = events(i)
    assert isinstance(ev[0], HandshakeFailed) and isinstance(ev[0].error, HandshakeTimeout)
    assert i.data_to_send()[-1][:2] == bytes([ABORT, AbortCode.TIMEOUT])
    i.receive_data(b"\0" * 100, 6.0)
    assert i.next_event() is None and i.phase is Phase.FAILED


def test_unknown_kind_and_empty() -> None:
    for data in (b"", b"\x07abc", b"\x01"):
        _, r = pair()
        r.receive_data(data, 1.0)
        ev = events(r)
        assert isinstance(ev[0], HandshakeFailed)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=4), st.booleans())
def test_random_bytes_only_module_errors(chunks: list[bytes], as_initiator: bool) -> None:
    i, r = pair()
    target = i if as_initiator else r
    if not as_initiator:
        i.data_to_send()
    for c in chunks:
        target.receive_data(c, 1.0)
    for e in events(target):
        assert isinstance(e, HandshakeFailed | HandshakeComplete)
        if isinstance(e, HandshakeFailed):
            assert isinstance(e.error, P2PError)
