"""The committed protobuf modules are exactly what the pinned protoc generates from proto/."""

from __future__ import annotations

import pathlib

import pytest

from timnode.protogen import ROOT, generate


def test_generated_code_is_fresh(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (the dev extra) generates the code")
    for path in generate(tmp_path):
        committed = ROOT / path.relative_to(tmp_path)
        assert committed.exists(), f"{committed} is missing: run python -m timnode.protogen"
        assert committed.read_bytes() == path.read_bytes(), f"{committed} is stale: run python -m timnode.protogen"


def test_protobuf_runs_the_upb_backend() -> None:
    from google.protobuf.internal import api_implementation

    assert api_implementation.Type() == "upb"
