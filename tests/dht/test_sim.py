"""The DHT simulator at 1,000 nodes (issue 4, item 6) and its replayability.

One 1,000-node scenario runs per module (about a minute on two cores): join, 200 puts,
1,000 gets from random nodes, 30 % churn (crash + as many joins), one replication interval,
1,000 fresh gets; 1 % of all messages are lost throughout. ``TIMNODE_SIM_SEED`` replays it.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from dht.messages import PeerInfo
from testnet.sim import Packet, SimNetwork, run_scenario

SEED = int(os.environ.get("TIMNODE_SIM_SEED", "20261123"))


@pytest.fixture(scope="module")
def big() -> dict[str, Any]:
    return run_scenario(nodes=1000, seed=SEED, churn=0.3, loss=0.01)


def test_every_put_is_found_from_random_nodes(big: dict[str, Any], seed: int) -> None:
    assert big["join"]["bootstrapped"] == 1000
    assert big["put"]["completed"] == 200
    assert big["put"]["stored_min"] >= 15, big["put"]  # of k = 20, with 1 % loss
    get = big["get"]
    assert get["completed"] == get["lookups"] == 1000
    assert get["success_rate"] == 1.0, get
    assert 1 <= get["hops_mean"] <= 4, get  # ~log2(1000/20) ≈ 5.6 is the bound; alpha and k make it shorter


def test_records_are_found_after_30_percent_churn_and_republish(big: dict[str, Any], seed: int) -> None:
    churn = big["churn"]
    assert churn["crashed"] == churn["joined"] == 300
    assert churn["replicas_mean"] >= 19.0, churn  # the current k closest hold the records again (§2.5)
    after = big["get_after_churn"]
    assert after["completed"] == 1000
    assert after["success_rate"] == 1.0, after


def test_lookups_succeed_despite_message_loss(big: dict[str, Any], seed: int) -> None:
    net = big["network"]
    assert net["lost"] > 0.005 * net["messages"]
    assert net["rejected"] == 0  # nobody in the simulation forges records
    assert big["get"]["success_rate"] == big["get_after_churn"]["success_rate"] == 1.0


def test_same_seed_same_statistics(seed: int) -> None:
    args: dict[str, Any] = dict(nodes=150, seed=seed, churn=0.3, loss=0.02, duplicate=0.01, puts=20, gets=100)
    first, second = run_scenario(**args), run_scenario(**args)
    first.pop("timings"), second.pop("timings")
    assert first == second
    other = run_scenario(**{**args, "seed": seed + 1})
    other.pop("timings")
    assert other != first


def test_route_packet_is_seeded() -> None:
    def fates(seed: int) -> list[list[float]]:
        net = SimNetwork(seed, lambda a, b: 0.05, loss=0.3, duplicate=0.3, jitter=0.01)
        return [net.route_packet(Packet(b"a", b"b", b"")) for _ in range(200)]

    runs = fates(5)
    assert runs == fates(5) and runs != fates(6)
    assert any(f == [] for f in runs) and any(len(f) == 2 for f in runs)
    assert all(0.05 <= d <= 0.07 for f in runs for d in f)


def test_crashed_nodes_drop_messages_and_timers() -> None:
    from dht.node import DhtProtocol

    from .conftest import identity

    net = SimNetwork(1)
    a, b = (net.add_node(DhtProtocol(identity(i), addrs=(f"sim:{i}",))) for i in (1, 2))
    net.crash(b)
    net.call(a, lambda p: p.bootstrap([PeerInfo(b.addr)], net.now))
    net.run_until(net.now + 10)
    assert net.to_dead == 1 and a.proto.stats.timeouts == 1
    net.call(b, lambda p: p.bootstrap([], net.now))  # a crashed node does nothing
    assert b.events == []
