"""PeerBook (sans-I/O): addresses, due dials, backoff with exact deadlines, forgetting; dedupe rule."""

from __future__ import annotations

import random

import pytest

from node.errors import DecodeError
from node.identity import Identity, PeerId
from node.manager import _keep_new
from node.peerstore import BackoffConfig, PeerBook, dialable_addrs, parse_addr

A, B, C = (Identity.from_seed(bytes([i]) * 32).peer_id for i in (1, 2, 3))


def book(**kw: float) -> PeerBook:
    return PeerBook(A, BackoffConfig(**kw), random.Random(7))  # type: ignore[arg-type]


def test_parse_addr_forms() -> None:
    assert parse_addr("127.0.0.1:7400") == ("ws://127.0.0.1:7400", None)
    assert parse_addr("ws://h:1/") == ("ws://h:1", None)
    assert parse_addr("[::1]:7400") == ("ws://[::1]:7400", None)
    assert parse_addr(f"10.0.0.1:7400/p2p/{B}") == ("ws://10.0.0.1:7400", B)
    for bad in ("nohost", "h:0", "h:70000", ":7400", "h:12/p2p/notapeer"):
        with pytest.raises(DecodeError):
            parse_addr(bad)


def test_dialable_addrs_substitutes_unspecified_and_drops_garbage() -> None:
    got = dialable_addrs(["ws://0.0.0.0:7400", "ws://10.0.0.2:7400", "junk", "ws://10.0.0.2:7400"], "192.0.2.1")
    assert got == ("ws://192.0.2.1:7400", "ws://10.0.0.2:7400")
    assert dialable_addrs(["ws://0.0.0.0:7400"]) == ()
    assert len(dialable_addrs([f"ws://10.0.0.1:{p}" for p in range(1, 50)])) == 8


def test_bootstrap_is_due_until_linked_then_after_link_down() -> None:
    pb = book(base=1.0, cap=8.0)
    pb.add_bootstrap("ws://h:1")
    [t] = pb.due(0.0, set())
    assert (t.url, t.expected) == ("ws://h:1", None)
    pb.link_up(B, ["ws://h:1"], 0.0, via="ws://h:1")
    assert pb.due(0.0, {B}) == []
    assert pb.get_timer({B}) is None
    pb.link_down(B, 10.0)
    timer = pb.get_timer(set())
    assert timer is not None and 10.0 < timer <= 11.0  # failures reset: within [0, base)
    assert [t.key for t in pb.due(11.0, set())] == ["ws://h:1"]  # the peer itself rides on the bootstrap entry


def test_full_jitter_backoff_doubles_ceiling_up_to_cap() -> None:
    pb = book(base=1.0, cap=8.0)
    pb.add_bootstrap("ws://h:1")
    rng = random.Random(7)
    for failures, ceiling in ((1, 2.0), (2, 4.0), (3, 8.0), (4, 8.0), (9, 8.0)):
        while pb._boot["ws://h:1"].failures < failures - 1:
            pb.dial_failed("ws://h:1", 0.0)
            rng.random()
        assert pb.dial_failed("ws://h:1", 0.0) == failures
        expected = max(0.1, rng.uniform(0, ceiling))
        assert pb.get_timer(set()) == pytest.approx(expected)


def test_learned_peer_dialed_with_expected_id_rotating_addresses() -> None:
    pb = book(base=1.0)
    assert pb.learn(B, ["ws://a:1", "ws://b:2"], 0.0, "pex")
    assert not pb.learn(B, ["ws://a:1"], 0.0, "pex")
    assert not pb.learn(A, ["ws://me:1"], 0.0, "pex")  # ourselves
    [t] = pb.due(0.0, set())
    assert (t.url, t.expected) == ("ws://a:1", B)
    pb.dial_failed(t.key, 0.0)
    [t] = pb.due(100.0, set())
    assert t.url == "ws://b:2"


def test_unlinked_peers_are_forgotten_and_the_book_is_bounded() -> None:
    pb = book(forget_after=60.0, max_peers=2)
    pb.learn(B, ["ws://b:1"], 0.0, "pex")
    pb.learn(C, ["ws://c:1"], 10.0, "pex")
    other = Identity.from_seed(b"\x09" * 32).peer_id
    pb.learn(other, ["ws://o:1"], 20.0, "pex")  # evicts the stalest (B)
    assert pb.get(B) is None and len(pb) == 2
    assert {t.expected for t in pb.due(71.0, set())} == {other}  # C (seen at 10) forgotten at 71


def test_is_self_drops_the_bootstrap_entry() -> None:
    pb = book()
    pb.add_bootstrap("ws://me:1")
    pb.is_self("ws://me:1")
    assert pb.due(0.0, set()) == []


@pytest.mark.parametrize("local,remote", [(A, B), (B, A)])
def test_simultaneous_dial_both_sides_keep_the_same_link(local: PeerId, remote: PeerId) -> None:
    # the link dialled by the smaller PeerId survives, whichever side completes first
    smaller_dials = local.bytes < remote.bytes
    keep_out = _keep_new(local, remote, "inbound", "outbound")
    keep_in = _keep_new(local, remote, "outbound", "inbound")
    assert keep_out == smaller_dials and keep_in == (not smaller_dials)
    # the remote's view with roles swapped agrees about which link (dialled by whom) survives
    assert _keep_new(remote, local, "outbound", "inbound") == keep_out
    assert _keep_new(local, remote, "inbound", "inbound")  # a redial replaces the old link


def test_short_lived_links_count_as_failures_so_refusals_back_off() -> None:
    pb = book(base=1.0, cap=64.0, stable_after=5.0)
    pb.learn(B, ["ws://b:1"], 0.0, "pex")
    now = 0.0
    for expected_failures in (1, 2, 3):
        pb.link_up(B, ["ws://b:1"], now)
        pb.link_down(B, now + 0.1)  # "too many links": closed at once
        assert pb.get(B).failures == expected_failures  # type: ignore[union-attr]
        now += 0.2
    pb.link_up(B, ["ws://b:1"], now)
    pb.link_down(B, now + 6.0)  # was stable: back to quick reconnects
    assert pb.get(B).failures == 0  # type: ignore[union-attr]
