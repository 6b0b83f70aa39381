"""A lookup driven by hand with explicit ``now`` values and exact timers (STYLE §3.8.2), plus Lookup rules."""

from __future__ import annotations

from collections.abc import Callable

from dht.ids import node_id
from dht.lookup import CandidateState, Lookup
from dht.messages import FindNode, FindNodeResult, Message, PeerInfo, decode_message, encode_message
from dht.node import BootstrapCompleted, DhtProtocol
from dht.rpc import SendRequest

from .conftest import T0, identity


def sent(node: DhtProtocol) -> list[SendRequest]:
    out = node.messages_to_send()
    assert all(isinstance(c, SendRequest) for c in out)
    return out  # type: ignore[return-value]


def answer(node: DhtProtocol, req: SendRequest, now: float, closer: tuple[PeerInfo, ...] = ()) -> None:
    body = FindNodeResult(closer)
    node.receive_message(req.peer, encode_message(Message(request_id=req.request_id, server=True, body=body)), now)


def test_bootstrap_lookup_with_exact_timers(make_node: Callable[..., DhtProtocol]) -> None:
    a = make_node(100, k=4, alpha=2, rpc_timeout=5.0, refresh_on_join=False)
    others = sorted((identity(i).peer_id.bytes for i in range(200, 211)), key=lambda p: int.from_bytes(
        node_id(p), "big") ^ int.from_bytes(a.id, "big"))
    gateway, universe = others[-1], others[:-1]  # the gateway is farther than everyone it names
    silent, p2, p3, p4, p5 = universe[:5]

    assert a.get_timer() is None
    handle = a.bootstrap([PeerInfo(gateway, ("ws://gw",))], T0)
    [r] = sent(a)
    assert (r.peer, r.deadline) == (gateway, T0 + 5.0)
    assert isinstance(decode_message(r.data).body, FindNode) and decode_message(r.data).body == FindNode(a.id)
    assert a.get_timer() == T0 + 5.0

    answer(a, r, T0 + 1, tuple(PeerInfo(p) for p in universe))  # alpha = 2 requests to the two closest
    reqs = sent(a)
    assert [(q.peer, q.deadline) for q in reqs] == [(silent, T0 + 6.0), (p2, T0 + 6.0)]
    assert a.get_timer() == T0 + 6.0
    to_silent = reqs[0]

    answer(a, reqs[1], T0 + 2)
    [r3] = sent(a)
    assert (r3.peer, r3.deadline) == (p3, T0 + 7.0)
    answer(a, r3, T0 + 3)
    [r4] = sent(a)
    assert (r4.peer, r4.deadline) == (p4, T0 + 8.0)
    answer(a, r4, T0 + 4)
    assert sent(a) == []  # the window (silent, p2, p3, p4) waits for silent only
    assert a.next_event() is None and a.get_timer() == T0 + 6.0

    a.handle_timer(T0 + 5.999)
    assert sent(a) == [] and a.stats.timeouts == 0
    a.handle_timer(T0 + 6.0)  # silent times out: the window slides to p5
    [r5] = sent(a)
    assert (r5.peer, r5.deadline) == (p5, T0 + 11.0)
    assert a.stats.timeouts == 1 and a.get_timer() == T0 + 11.0

    answer(a, r5, T0 + 7)
    assert a.next_event() == BootstrapCompleted(handle=handle, table_size=5)
    assert sorted(c.peer for c in a.table) == sorted([gateway, p2, p3, p4, p5])
    assert silent not in a.table
    assert a.get_timer() == T0 + 3600.0  # only the bucket refresh is left (§2.3)

    answer(a, to_silent, T0 + 8)  # too late: the request is gone, the response is a stray
    assert a.stats.stray_responses == 1


def test_lookup_rules() -> None:
    target = bytes(32)
    peers = sorted((identity(i).peer_id.bytes for i in range(300, 306)),
                   key=lambda p: int.from_bytes(node_id(p), "big"))
    lookup = Lookup(target, [PeerInfo(p) for p in peers[3:]], k=2, alpha=3, own_peer=peers[0])
    first = lookup.next_queries()
    assert [c.peer for c in first] == peers[3:5]  # only the window of k = 2 is asked
    assert lookup.next_queries() == []
    lookup.on_success(peers[3], [PeerInfo(peers[0]), PeerInfo(peers[1]), PeerInfo(peers[2])])  # ourselves skipped
    assert peers[0] not in lookup.candidates
    assert lookup.candidates[peers[1]].hops == 2
    assert [c.peer for c in lookup.next_queries()] == peers[1:3]
    lookup.on_success(peers[3], [])  # a duplicate response changes nothing
    lookup.on_failure(peers[1])
    lookup.on_failure(peers[1])
    assert lookup.failed == 1 and lookup.candidates[peers[1]].state is CandidateState.FAILED
    lookup.on_success(peers[2], [])
    # the window (p2, p3) has answered: done, without waiting for p4 outside it
    assert lookup.next_queries() == [] and lookup.finished and lookup.inflight == 1
    assert [c.peer for c in lookup.closest()] == [peers[2], peers[3]]
    assert lookup.queried == 4


def test_lookup_without_candidates_finishes_at_once() -> None:
    lookup = Lookup(bytes(32), [])
    assert lookup.next_queries() == [] and lookup.finished and lookup.closest() == []
