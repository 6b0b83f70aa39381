"""Pure pieces of the bench harness: statistics helpers and the wire dialects."""

from __future__ import annotations

import math

import pytest

from bench.chat import ChatOptions, Merged, TargetRun, build_result, parse_args
from bench.report import median, percentile, rounded
from bench.wire import DELIVERED, HEADER, PUSH, RELAY_PUSH, REPLY, NodeDialect, RelayDialect
from im import client_pb2 as pb


def test_percentile_interpolates() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 100.0
    assert percentile(values, 99) == 99.01
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert math.isnan(percentile([], 50))
    assert rounded(math.nan) is None


def test_relay_dialect_frames() -> None:
    relay = RelayDialect()
    send = relay.send(7, "bob", b"payload", "x")
    assert HEADER.unpack_from(send) == (2, 7)
    assert send[HEADER.size + 1 : HEADER.size + 4] == b"bob"
    assert relay.decode(HEADER.pack(RELAY_PUSH, 5) + b"data") == (PUSH, 5, b"data")
    assert relay.decode(HEADER.pack(10, 7)) == (REPLY, 7, 0)
    assert relay.decode(HEADER.pack(21, 0) + bytes(16)) == (DELIVERED, 0, 2)


def test_node_dialect_frames() -> None:
    node = NodeDialect()
    frame = pb.ClientFrame.FromString(node.send(3, "bob", b"\x00" * 8, "3"))
    assert frame.id == 3 and frame.send.to == "bob" and frame.send.type == 1
    err = pb.ServerFrame(id=4, error=pb.Error(code=pb.CONFLICT)).SerializeToString()
    assert node.decode(err) == (REPLY, 4, 409)
    push = pb.ServerFrame(id=0, message=pb.Message(id=9, data=b"abc")).SerializeToString()
    assert node.decode(push) == (PUSH, 9, b"abc")
    done = pb.ServerFrame(id=0, delivered=pb.Delivered(by="bob", message_ids=[1, 2, 3])).SerializeToString()
    assert node.decode(done) == (DELIVERED, 0, 3)


def test_bench_nat_without_root_says_why_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import bench.nat
    import testnet.netns
    from bench.__main__ import discover

    assert "nat" in discover()
    monkeypatch.setattr(testnet.netns, "available", lambda: "needs root (network namespaces)")
    assert bench.nat.main(["--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "needs root" in captured.err


def _target_run(msgs_per_s: float, p99_spread: float, errors: int = 0) -> TargetRun:
    top = Merged(msgs_per_s=msgs_per_s, pushes=100, sent=100, receipts=90, errors=errors,
                 latencies_ms=[1.0, 2.0, 3.0], server_cpu_s=0.01, gen_cpu_s=0.005)
    half = Merged(msgs_per_s=msgs_per_s / 2, pushes=50, sent=50, receipts=40,
                  latencies_ms=[1.0] * 98 + [p99_spread] * 2, server_cpu_s=0.01, gen_cpu_s=0.005)
    return TargetRun(pairs=4, open_errors=0, register_s=0.5, top=top, half=half, half_rate=msgs_per_s / 2, rss_mb=50.0)


def test_chat_result_is_medians_of_rounds_and_ratio_is_per_round() -> None:
    opts = ChatOptions(pairs=4, rounds=3)
    nodes = [_target_run(1000.0, 5.0), _target_run(3000.0, 30.0, errors=1), _target_run(2000.0, 10.0)]
    raws = [_target_run(2000.0, 2.0), _target_run(10000.0, 2.0), _target_run(4000.0, 2.0)]
    result = build_result(opts, nodes, raws)
    assert result["rounds"] == 3 and result["pairs"] == 4 and isinstance(result["pairs"], int)
    assert result["msgs_per_s"] == 2000.0 and result["raw_msgs_per_s"] == 4000.0
    # per-round ratios 0.5, 0.3, 0.5: the median of those, not 2000 / 4000 by chance alone
    assert [r["ratio"] for r in result["rounds_detail"]] == [0.5, 0.3, 0.5]
    assert result["ratio"] == 0.5
    assert result["p99_ms"] == median([r["p99_ms"] for r in result["rounds_detail"]])
    assert result["p99_target_met"] is (result["p99_ms"] < 20)
    assert result["sent"] == 3 * 150 and result["errors"] == 1 and result["node_errors"] == 1


def test_chat_rounds_flag() -> None:
    assert parse_args([]).rounds == 3
    assert parse_args(["--rounds", "1"]).rounds == 1
    with pytest.raises(SystemExit):
        parse_args(["--rounds", "0"])
