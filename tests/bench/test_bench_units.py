"""Pure pieces of the bench harness: statistics helpers and the wire dialects."""

from __future__ import annotations

import math

import pytest

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
