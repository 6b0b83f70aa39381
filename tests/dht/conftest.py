"""Fixtures for the DHT tests: deterministic identities, cores, an instant in-memory hub, the sim seed.

``TIMNODE_SIM_SEED=n pytest tests/dht`` replays simulator tests with seed ``n``; a failing
test that used the ``seed`` fixture prints its seed in a report section.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Generator, Iterable
from typing import Any

import pytest

from dht.messages import PeerInfo
from dht.node import DhtConfig, DhtEvent, DhtProtocol
from dht.rpc import SendRequest, SendResponse
from node.identity import Identity

T0 = 1_800_000_000.0  # a wall-clock "now" for the tests


def identity(i: int) -> Identity:
    """The i-th deterministic test identity."""
    return Identity.from_seed(i.to_bytes(4, "big") * 8)


class Hub:
    """Delivers every queued command at once (no latency), until all cores are quiet."""

    def __init__(self, nodes: Iterable[DhtProtocol]) -> None:
        self.nodes = {n.peer: n for n in nodes}
        self.events: dict[bytes, list[DhtEvent]] = {p: [] for p in self.nodes}
        self.down: set[bytes] = set()
        self.delivered = 0

    def run(self, now: float) -> None:
        busy = True
        while busy:
            busy = False
            for peer, node in list(self.nodes.items()):
                for cmd in node.messages_to_send():
                    busy = True
                    assert isinstance(cmd, SendRequest | SendResponse)
                    target = self.nodes.get(cmd.peer)
                    if target is None or cmd.peer in self.down:
                        if isinstance(cmd, SendRequest):
                            node.request_failed(cmd.peer, cmd.request_id, now)
                        continue
                    self.delivered += 1
                    target.receive_message(peer, cmd.data, now)
                while (event := node.next_event()) is not None:
                    self.events[peer].append(event)

    def fire_timers(self, now: float) -> None:
        for node in self.nodes.values():
            timer = node.get_timer()
            if timer is not None and timer <= now:
                node.handle_timer(now)
        self.run(now)

    def last(self, node: DhtProtocol, kind: type[Any]) -> Any:
        matching = [e for e in self.events[node.peer] if isinstance(e, kind)]
        assert matching, f"no {kind.__name__} event"
        return matching[-1]


@pytest.fixture
def make_node() -> Callable[..., DhtProtocol]:
    """``make_node(i, server=True, **config)``: a core with identity ``i`` and a seeded rng."""

    def make(i: int, *, server: bool = True, **config: Any) -> DhtProtocol:
        cfg = DhtConfig(server=server, **config)
        return DhtProtocol(identity(i), config=cfg, rng=random.Random(i), addrs=(f"test:{i}",) if server else ())

    return make


@pytest.fixture
def network(make_node: Callable[..., DhtProtocol]) -> Callable[..., tuple[Hub, list[DhtProtocol]]]:
    """``network(n, **config)``: n server cores joined through node 0, bootstrapped at ``T0``."""

    def build(n: int, **config: Any) -> tuple[Hub, list[DhtProtocol]]:
        nodes = [make_node(i, **config) for i in range(n)]
        hub = Hub(nodes)
        first = PeerInfo(nodes[0].peer, nodes[0].addrs)
        for node in nodes[1:]:
            node.bootstrap([first], T0)
            hub.run(T0)
        for node in nodes:  # a second pass so early joiners learn of later ones
            node.bootstrap([], T0)
            hub.run(T0)
        return hub, nodes

    return build


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """The simulator seed: ``TIMNODE_SIM_SEED`` or a fixed default; reported when the test fails."""
    value = int(os.environ.get("TIMNODE_SIM_SEED", "20261123"))
    request.node._sim_seed = value
    return value


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    value = getattr(item, "_sim_seed", None)
    if report.failed and value is not None:
        report.sections.append(("simulation seed", f"seed={value}; replay with TIMNODE_SIM_SEED={value}"))
