"""docs/protocol.md must keep up with proto/client.proto and im/gateway.py.

Checks (no node process): every ClientFrame operation, ServerFrame body, ErrorCode,
KickReason and gateway close code is mentioned; every example block tagged
```json client / ```json server parses strictly into a ClientFrame / ServerFrame; and
every operation and body kind has at least one example.
"""

from __future__ import annotations

import pathlib
import re

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from im import client_pb2 as pb
from im import gateway

DOC_PATH = pathlib.Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
BLOCK = re.compile(r"^```json (client|server)\n(.*?)^```", re.S | re.M)


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC_PATH.read_text(encoding="utf-8")


def _oneof_fields(message: type[Message], oneof: str) -> list[tuple[str, str]]:
    return [(f.name, f.json_name) for f in message.DESCRIPTOR.oneofs_by_name[oneof].fields]


def _gateway_close_codes() -> list[int]:
    text = gateway.__doc__ or ""
    section = text[text.index("Close codes") :]
    codes = sorted({int(c) for c in re.findall(r"\b([14]\d{3})\b", section)})
    assert codes, "no close codes found in im/gateway.py's docstring"
    return codes


def _blocks(doc: str) -> list[tuple[str, Message]]:
    out: list[tuple[str, Message]] = []
    for kind, body in BLOCK.findall(doc):
        frame: Message = pb.ClientFrame() if kind == "client" else pb.ServerFrame()
        try:
            json_format.Parse(body, frame)
        except json_format.ParseError as exc:
            pytest.fail(f"```json {kind} block does not parse: {exc}\n{body}")
        out.append((kind, frame))
    return out


@pytest.mark.parametrize("name,json_name", _oneof_fields(pb.ClientFrame, "op"))
def test_every_operation_is_documented(doc: str, name: str, json_name: str) -> None:
    assert f"`{json_name}`" in doc, f"operation {json_name} missing from docs/protocol.md"
    if name != json_name:
        assert f"`{name}`" in doc, f"operation {name} (proto name) missing from docs/protocol.md"


@pytest.mark.parametrize("name,json_name", _oneof_fields(pb.ServerFrame, "body"))
def test_every_server_body_is_documented(doc: str, name: str, json_name: str) -> None:
    assert f"`{json_name}`" in doc, f"ServerFrame body {json_name} missing from docs/protocol.md"


@pytest.mark.parametrize("name", pb.ErrorCode.keys())
def test_every_error_code_is_documented(doc: str, name: str) -> None:
    value = pb.ErrorCode.Value(name)
    assert re.search(rf"\|\s*`{name}`\s*\|\s*{value}\s*\|", doc), f"ErrorCode {name} ({value}) not in the table"


@pytest.mark.parametrize("name", pb.KickReason.keys())
def test_every_kick_reason_is_documented(doc: str, name: str) -> None:
    assert f"`{name}`" in doc, f"KickReason {name} missing from docs/protocol.md"


@pytest.mark.parametrize("code", _gateway_close_codes())
def test_every_close_code_is_documented(doc: str, code: int) -> None:
    assert re.search(rf"^\|\s*{code}\s*\|", doc, re.M), f"close code {code} not in the close-code table"


def test_kick_close_codes_match_the_gateway(doc: str) -> None:
    for reason, code in gateway.KICK_CLOSE_CODES.items():
        name = pb.KickReason.Name(reason)
        assert re.search(rf"\|\s*`{name}`\s*\|\s*{code}\s*\|", doc), f"{name} should close with {code}"


def test_examples_parse_and_cover_every_operation(doc: str) -> None:
    blocks = _blocks(doc)
    ops = {frame.WhichOneof("op") for kind, frame in blocks if kind == "client"}
    bodies = {frame.WhichOneof("body") for kind, frame in blocks if kind == "server"}
    assert None not in ops, "a ```json client block carries no operation"
    assert None not in bodies, "a ```json server block carries no body"
    missing_ops = {name for name, _ in _oneof_fields(pb.ClientFrame, "op")} - ops
    missing_bodies = {name for name, _ in _oneof_fields(pb.ServerFrame, "body")} - bodies
    assert not missing_ops, f"no example request for {sorted(missing_ops)}"
    assert not missing_bodies, f"no example for ServerFrame bodies {sorted(missing_bodies)}"


def test_example_framing_rules(doc: str) -> None:
    for kind, frame in _blocks(doc):
        if kind == "client":
            continue
        body = frame.WhichOneof("body")
        assert isinstance(frame, pb.ServerFrame)
        if body in ("message", "presence", "delivered", "kicked", "typing", "group_message", "room_message", "stream"):
            assert frame.id == 0, f"push {body} must carry id 0"
        elif body != "error":
            assert frame.id > 0, f"response {body} must echo a request id"
