"""DhtProtocol: client mode, LRS eviction pings, presence put/merge/withdraw, peer records, timers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dht.errors import LocalProtocolError
from dht.ids import peer_record_key, presence_key
from dht.messages import FindNode, Message, PeerInfo, Ping, Pong, PutResult, decode_message, encode_message
from dht.node import DhtProtocol, FindNodeCompleted, GetCompleted, PutCompleted
from dht.records import Device, decode_peer_value, live_devices
from dht.rpc import SendRequest, SendResponse

from .conftest import T0, Hub

Network = Callable[..., tuple[Hub, list[DhtProtocol]]]


def devices_of(event: GetCompleted) -> list[tuple[bytes, str]]:
    return sorted((pub, d.device_id) for pub, d, _ in live_devices(event.entries))


def test_client_mode_nodes_do_not_answer_and_stay_out_of_tables(
    make_node: Callable[..., DhtProtocol], network: Network
) -> None:
    hub, servers = network(6)
    client = make_node(50, server=False)
    hub.nodes[client.peer] = client
    hub.events[client.peer] = []
    client.bootstrap([PeerInfo(servers[0].peer, servers[0].addrs)], T0)
    hub.run(T0)
    assert len(client.table) == 6  # a client learns servers from their answers
    assert all(client.peer not in s.table for s in servers)  # ... but never enters their tables

    request = Message(request_id=9, server=True, sender_addrs=("ws://x",), body=FindNode(bytes(32)))
    client.receive_message(servers[1].peer, encode_message(request), T0)
    assert client.messages_to_send() == []
    assert client.stats.refused_client_mode == 1 and client.stats.requests_received == 1

    client.put_presence("carol", [Device("web")], T0)  # clients publish through servers
    hub.run(T0)
    assert hub.last(client, PutCompleted).stored == 6 and len(client.store) == 0
    servers[2].get(presence_key("carol"), T0)
    hub.run(T0)
    assert devices_of(hub.last(servers[2], GetCompleted)) == [(client.peer, "web")]

    client.set_server(True)  # became reachable: now it answers
    client.receive_message(servers[1].peer, encode_message(request), T0)
    [reply] = client.messages_to_send()
    assert isinstance(reply, SendResponse) and reply.request_id == 9


def test_full_bucket_pings_least_recently_seen(make_node: Callable[..., DhtProtocol]) -> None:
    a = make_node(1, k=1, rpc_timeout=5.0)
    # two peers that land in the same bucket of a's table
    peers = [make_node(i).peer for i in range(2, 200)]
    by_bucket: dict[int, list[bytes]] = {}
    for p in peers:
        by_bucket.setdefault(a.table.buckets.index(a.table._bucket(p)), []).append(p)
    old, new = next(v for v in by_bucket.values() if len(v) >= 2)[:2]

    def ping_from(peer: bytes, now: float) -> None:
        msg = Message(request_id=1, server=True, sender_addrs=("ws://p",), body=Ping())
        a.receive_message(peer, encode_message(msg), now)

    ping_from(old, T0)
    assert isinstance(decode_message(a.messages_to_send()[0].data).body, Pong)
    ping_from(new, T0 + 1)
    check, pong = a.messages_to_send()  # the eviction check is queued before the reply
    assert isinstance(pong, SendResponse) and isinstance(check, SendRequest)
    assert (check.peer, check.deadline) == (old, T0 + 6.0)
    assert isinstance(decode_message(check.data).body, Ping)
    assert a.get_timer() == T0 + 6.0
    a.handle_timer(T0 + 6.0)  # the LRS contact stayed silent: evicted, the newcomer promoted
    assert [c.peer for c in a.table] == [new]

    ping_from(old, T0 + 7)  # old is back: the bucket is full again, so new (now LRS) is checked
    check, _ = a.messages_to_send()
    assert check.peer == new
    reply = Message(request_id=check.request_id, server=True, body=Pong())
    a.receive_message(new, encode_message(reply), T0 + 8)  # it answers: it stays (§2.2)
    assert [c.peer for c in a.table] == [new] and list(a.table._bucket(new).replacements) == [old]


def test_presence_from_several_nodes_merge_and_withdraw(network: Network) -> None:
    hub, nodes = network(12)
    n3, n5, asker = nodes[3], nodes[5], nodes[9]
    n3.put_presence("alice", [Device("phone"), Device("tablet", "away")], T0)
    n5.put_presence("alice", [Device("laptop")], T0)
    hub.run(T0)
    assert hub.last(n3, PutCompleted).stored == hub.last(n3, PutCompleted).attempted == 11

    asker.get_presence("alice", T0 + 1)
    hub.run(T0 + 1)
    event = hub.last(asker, GetCompleted)
    assert devices_of(event) == sorted([(n3.peer, "phone"), (n3.peer, "tablet"), (n5.peer, "laptop")])
    assert event.hops >= 1 and event.queried >= 1

    n3.withdraw_presence("alice", T0 + 2)  # logout at n3
    hub.run(T0 + 2)
    asker.get_presence("alice", T0 + 3, fresh=True)
    hub.run(T0 + 3)
    assert devices_of(hub.last(asker, GetCompleted)) == [(n5.peer, "laptop")]

    n5.put_presence("bob", [Device("watch")], T0 + 4)
    hub.run(T0 + 4)
    assert len(n5.withdraw_all_presence(T0 + 5)) == 2  # shutdown: alice and bob
    hub.run(T0 + 5)
    for user in ("alice", "bob"):
        asker.get_presence(user, T0 + 6, fresh=True)
        hub.run(T0 + 6)
        assert hub.last(asker, GetCompleted).entries == ()


def test_peer_record_and_find_node(network: Network) -> None:
    hub, nodes = network(8)
    nodes[2].put_peer_record(["ws://10.0.0.2:7400"], [nodes[4].peer], T0)
    hub.run(T0)
    nodes[6].find_peer_record(nodes[2].peer, T0)
    hub.run(T0)
    [entry] = hub.last(nodes[6], GetCompleted).entries
    assert entry.key == peer_record_key(nodes[2].peer)
    assert decode_peer_value(entry.value) == (("ws://10.0.0.2:7400",), (nodes[4].peer,))

    nodes[6].find_node(nodes[3].id, T0)
    hub.run(T0)
    found = hub.last(nodes[6], FindNodeCompleted)
    assert found.closest[0].peer == nodes[3].peer and found.closest[0].addrs == ("test:3",)
    with pytest.raises(LocalProtocolError):
        nodes[6].get(b"short", T0)


def test_publisher_republishes_before_expiry_and_records_expire(network: Network) -> None:
    hub, nodes = network(6, record_ttl=100.0, republish_interval=60.0, replicate_interval=1000.0)
    pub, holder = nodes[1], nodes[4]
    pub.put_presence("dave", [Device("d")], T0)
    hub.run(T0)
    key = presence_key("dave")
    [first] = holder.store.get(key, T0)
    assert first.expires == T0 + 100.0
    assert pub.get_timer() == T0 + 60.0  # republish is the earliest timer

    hub.fire_timers(T0 + 60.0)  # re-signed with a higher seq and a new expiry
    [second] = holder.store.get(key, T0 + 60)
    assert second.seq > first.seq and second.expires == T0 + 160.0

    pub.withdraw_presence("dave", T0 + 61)  # no more refreshes; the tombstone lives until T0 + 160
    hub.run(T0 + 61)
    assert pub.get_timer() == T0 + 160.0  # no refresh at T0 + 120: only its own tombstone's expiry
    assert holder.store.get(key, T0 + 61)[0].is_tombstone()
    assert holder.store.next_expiry() == T0 + 160.0
    hub.fire_timers(T0 + 160.0)
    assert key not in holder.store and holder.store.next_expiry() is None


def test_storers_replicate_to_new_closest_nodes(network: Network, make_node: Callable[..., DhtProtocol]) -> None:
    hub, nodes = network(5, k=3, replicate_interval=100.0, replicate_jitter=0.0, refresh_on_join=False)
    nodes[0].put_presence("erin", [Device("e")], T0)
    hub.run(T0)
    key = presence_key("erin")
    holders = [n for n in nodes if key in n.store]
    assert len(holders) >= 3
    # a newcomer that is closer to the key than every holder but one
    newcomer = next(
        n for n in (make_node(i, k=3, replicate_interval=100.0, refresh_on_join=False) for i in range(100, 400))
        if sum(int.from_bytes(n.id, "big") ^ int.from_bytes(key, "big")
               < int.from_bytes(h.id, "big") ^ int.from_bytes(key, "big") for h in nodes) >= 4
    )
    hub.nodes[newcomer.peer] = newcomer
    hub.events[newcomer.peer] = []
    newcomer.bootstrap([PeerInfo(nodes[0].peer, nodes[0].addrs)], T0 + 1)
    hub.run(T0 + 1)
    assert key not in newcomer.store
    hub.fire_timers(T0 + 100.0)  # §2.5: storers push the key to the current k closest
    assert key in newcomer.store


def test_remote_garbage_is_counted_not_raised(make_node: Callable[..., DhtProtocol]) -> None:
    a = make_node(1)
    a.receive_message(b"peer", b"\xff\x00garbage", T0)
    a.receive_message(b"peer", encode_message(Message(request_id=42, server=True, body=Pong())), T0)
    assert (a.stats.decode_errors, a.stats.stray_responses) == (1, 1)
    a.find_node(bytes(32), T0)  # nobody to ask: completes at once
    assert isinstance(a.next_event(), FindNodeCompleted)
    # a wrong response type to a pending request counts as a failure of that peer
    a.bootstrap([PeerInfo(b"\x00\x24" + b"x" * 36)], T0)
    [req] = a.messages_to_send()
    assert isinstance(req, SendRequest)
    a.receive_message(req.peer, encode_message(Message(request_id=req.request_id, server=True, body=PutResult(1))), T0)
    assert a.stats.unexpected_responses == 1
    a.request_failed(req.peer, req.request_id, T0)  # already settled: ignored
    assert a.stats.transport_failures == 0


def test_ping_adds_a_server_to_the_table_and_not_a_client(make_node: Callable[..., DhtProtocol]) -> None:
    """What the adapter does on LinkUp: a PING; only a server's answer enters the table (§2.2)."""
    a, server, client = make_node(1), make_node(2), make_node(3, server=False)
    hub = Hub([a, server, client])
    a.ping(server.peer, T0)
    a.ping(client.peer, T0)  # a client answers nothing: the probe times out quietly
    a.ping(a.peer, T0)  # never ourselves
    hub.run(T0)
    assert server.peer in a.table and client.peer not in a.table
    assert a.addrs_of(server.peer) == server.addrs
    assert a.get_timer() == T0 + a.config.rpc_timeout
    a.handle_timer(T0 + a.config.rpc_timeout)
    assert a.stats.timeouts == 1 and len(a.table) == 1 and a.next_event() is None
    assert a.addrs_of(client.peer) == ()


def test_addrs_of_a_peer_only_a_running_lookup_knows(make_node: Callable[..., DhtProtocol]) -> None:
    """The adapter dials peers that are not linked with the addresses a lookup learned."""
    a = make_node(1)
    far = make_node(7)
    lookup_seed = PeerInfo(far.peer, ("ws://10.0.0.7:7400",))
    handle = a.bootstrap([lookup_seed], T0)
    assert handle in a.tasks and a.addrs_of(far.peer) == ("ws://10.0.0.7:7400",)
    [cmd] = a.messages_to_send()
    assert isinstance(cmd, SendRequest) and cmd.peer == far.peer
    a.request_failed(far.peer, cmd.request_id, T0)
    assert a.stats.transport_failures == 1 and a.addrs_of(far.peer) == ()
