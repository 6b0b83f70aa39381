"""Real nodes behind real NATs in network namespaces (root; skipped with a reason otherwise).

One test bed run covers: reachability (public nodes: public; NATed: private), mapping
behaviour (port-restricted: endpoint-independent; symmetric: endpoint-dependent), ICE hole
punching between two port-restricted cone NATs (``rtc``), and symmetric-symmetric /
symmetric-port-restricted falling back to ``relay`` after a failed punch, the DHT mode that
follows reachability (``/healthz``), and IM over it all: one SDK user per node, every user
messages every other node's user, all delivered (``delivered`` matrix). ICE runs only
inside the namespaces this test creates; they are removed at the end, also on failure.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from testnet.netns import PREFIX, Testbed, available, cleanup_all

pytestmark = pytest.mark.slow

REASON = available()
if REASON:
    print(f"tests/nat/test_netns.py skipped: {REASON}")


@pytest.fixture(scope="module")
def result() -> Any:
    if REASON:
        pytest.skip(REASON)
    from testnet.real import format_matrix, run_real

    outcome = run_real(("port-restricted", "port-restricted", "symmetric", "symmetric"), timeout=90)
    print(format_matrix(outcome))
    return outcome


def _whole(value: Any) -> str:
    """``value`` in full for an assertion message (pytest shortens a dict's repr)."""
    return json.dumps(value, sort_keys=True, default=str)


def _pair(result: Any, a: str, b: str) -> dict[str, Any]:
    for p in result["pairs"]:
        if {p["node_a"], p["node_b"]} == {a, b}:
            return dict(p)
    raise AssertionError(f"no pair {a} {b}")


def test_work_directory_is_deleted(result: Any) -> None:
    assert result["workdir_kept"] is False
    assert not os.path.exists(result["workdir"]), result["workdir"]


def test_reachability_and_mapping(result: Any) -> None:
    by_name = {n["name"]: n for n in result["nodes"]}
    for name in ("pub1", "pub2"):
        assert by_name[name]["reachability"] == "public", by_name[name]
        assert by_name[name]["nat_mapping"] == "no-nat"
    for name in ("port1", "port2", "sym1", "sym2"):
        assert by_name[name]["reachability"] == "private", by_name[name]
        assert by_name[name]["relays"], by_name[name]
    assert by_name["port1"]["nat_mapping"] == "endpoint-independent"
    assert by_name["sym1"]["nat_mapping"] == "endpoint-dependent"
    assert by_name["port1"]["public_address"] == by_name["port1"]["public_address"].split(":")[0] + ":7400"


def test_dht_mode_follows_reachability(result: Any) -> None:
    modes = {n["name"]: n["dht_mode"] for n in result["nodes"]}
    assert modes == {"pub1": "server", "pub2": "server", "port1": "client", "port2": "client", "sym1": "client",
                     "sym2": "client"}, modes  # fmt: skip


def test_every_user_reaches_every_other_node(result: Any) -> None:
    delivered = result["delivered_ms"]
    assert result["sent"] == result["delivered"] == 30
    lost = [f"{a}->{b}: {v}" for a, row in delivered.items() for b, v in row.items() if not isinstance(v, float)]
    assert not lost, lost
    assert sum(len(row) for row in delivered.values()) == 6 * 5
    for pair in result["pairs"]:  # over ws, rtc and relay links alike
        assert isinstance(pair["delivered_ab"], float) and isinstance(pair["delivered_ba"], float), pair


def test_port_restricted_pair_punches_to_rtc(result: Any) -> None:
    pair = _pair(result, "port1", "port2")
    assert pair["transport"] == pair["transport_b_side"] == "rtc", pair
    assert pair["rtt_ms"] is not None  # a ping crossed the encrypted rtc link
    assert pair["punch"]["state"] == "rtc" and pair["punch"]["ice_s"] < 15


@pytest.mark.parametrize(("a", "b"), [("sym1", "sym2"), ("port1", "sym1"), ("port2", "sym2")])
def test_symmetric_pairs_stay_relayed(result: Any, a: str, b: str) -> None:
    pair = _pair(result, a, b)
    assert pair["transport"] == pair["transport_b_side"] == "relay", _whole(pair)
    assert pair["rtt_ms"] is not None  # the relayed link carries pings
    assert pair["punch"]["state"] == "failed", _whole(pair)


def test_everything_as_rfc4787_predicts_and_cleaned_up(result: Any) -> None:
    assert result["ok"], _whole(result["pairs"])
    for pair in result["pairs"]:  # the JSON contract
        assert pair["a"] in ("public", "port-restricted", "symmetric") and pair["b"] in ("public", "port-restricted",
                                                                                          "symmetric")  # fmt: skip
        assert pair["link"] == ("relay" if pair["expected"] == "relay" else "direct"), pair
        assert isinstance(pair["seconds"], float), pair
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert PREFIX not in names or all(not line.startswith(PREFIX) for line in names.splitlines())


def test_testbed_cleanup_paths() -> None:
    if REASON:
        pytest.skip(REASON)
    bed = Testbed()
    host = bed.add_nat("x", "port-restricted")
    assert host.ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    removed = cleanup_all(f"{PREFIX}{bed.tag}")  # only this bed's: other runs may be live
    assert host.ns in removed and host.router_ns in removed
    assert host.ns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    bed.close()  # idempotent after an outside cleanup
    with pytest.raises(ValueError):
        cleanup_all("other")
