"""``python -m testnet --sim``: the NAT scenario on modelled RFC 4787 NATs, in-process (no root)."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from testnet.__main__ import main
from testnet.natsim import Nat, run_nat_sim
from testnet.real import expected_transport

KINDS = ("full-cone", "address-restricted", "port-restricted", "symmetric")


def test_mapping_behaviour() -> None:
    rng = random.Random(1)
    cone, sym = Nat("port-restricted", "203.0.113.1", rng), Nat("symmetric", "203.0.113.2", rng)
    inside, s1, s2 = ("10.0.0.2", 7400), ("198.51.100.10", 7400), ("198.51.100.11", 7400)
    assert cone.outbound(inside, s1) == cone.outbound(inside, s2) == ("203.0.113.1", 7400)  # EIM keeps the port
    assert sym.outbound(inside, s1) != sym.outbound(inside, s2)  # APDM: one mapping per destination
    assert sym.outbound(inside, s1) == sym.outbound(inside, s1)


@pytest.mark.parametrize(
    ("kind", "same_ip_other_port", "other_ip"),
    [("full-cone", True, True), ("address-restricted", True, False), ("port-restricted", False, False),
     ("symmetric", False, False)],
)  # fmt: skip
def test_filtering_behaviour(kind: str, same_ip_other_port: bool, other_ip: bool) -> None:
    nat = Nat(kind, "203.0.113.1", random.Random(1))
    inside, peer = ("10.0.0.2", 7400), ("198.51.100.10", 7400)
    port = nat.outbound(inside, peer)[1]
    assert nat.inbound(peer, port) == inside  # the endpoint we sent to always gets in
    assert (nat.inbound(("198.51.100.10", 9999), port) == inside) is same_ip_other_port
    assert (nat.inbound(("198.51.100.77", 7400), port) == inside) is other_ip
    assert nat.inbound(peer, port + 1 if port < 65535 else 1024) is None  # no mapping: dropped


def test_every_pair_links_as_rfc4787_predicts() -> None:
    result = run_nat_sim([k for k in KINDS for _ in (1, 2)])  # two of each: same-kind pairs too
    assert result["linked_ok"] and result["ok"], [p for p in result["pairs"] if p["transport"] != p["expected"]]
    seen = {}
    for p in result["pairs"]:
        seen[frozenset((p["nat_a"], p["nat_b"]))] = p["link"]
        assert p["seconds"] is not None and p["seconds"] > 0
    for a, b in itertools.combinations_with_replacement(("public", *KINDS), 2):
        want = {"ws": "direct", "rtc": "direct", "relay": "relay"}[expected_transport(a, b)]
        assert seen[frozenset((a, b))] == want, (a, b)
    assert seen[frozenset(("symmetric",))] == "relay"
    assert seen[frozenset(("symmetric", "port-restricted"))] == "relay"
    assert seen[frozenset(("symmetric", "address-restricted"))] == "direct"
    assert seen[frozenset(("port-restricted",))] == "direct"
    assert result["sent"] == result["delivered"] == 10 * 9


def test_loss_and_delay_still_link_and_deliver() -> None:
    result = run_nat_sim(KINDS, delay_ms=40, loss_pct=10, seed=3)
    assert result["lost"] > 0 and result["ok"], result["pairs"]
    punched = [p["seconds"] for p in result["pairs"] if p["transport"] == "rtc"]
    assert min(punched) > 0.2  # several 40 ms one-way trips before a punch
    assert run_nat_sim(KINDS, delay_ms=40, loss_pct=10, seed=3)["pairs"] == result["pairs"]  # replayable


def test_cli_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sim", "--json", "--nat", "restricted", "--nat", "symmetric"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["sent"] == doc["delivered"] == 12
    kinds = {"public", "full-cone", "restricted", "port-restricted", "symmetric"}
    for p in doc["pairs"]:
        assert p["a"] in kinds and p["b"] in kinds and p["link"] in ("direct", "relay", "failed")
        assert isinstance(p["seconds"], float)
    assert {(p["a"], p["b"]) for p in doc["pairs"]} >= {("restricted", "symmetric"), ("public", "public")}


def test_cli_matrix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sim"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["pub1", "pub2", "full1", "addr1", "port1", "sym1"]
    assert "every pair linked as RFC 4787 predicts" in out and "time to link" in out
