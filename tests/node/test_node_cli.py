"""``timnode id`` and ``timnode keygen``."""

from __future__ import annotations

import pathlib

import pytest

from node.identity import PeerId
from node.netkey import parse_network_key
from timnode.cli import main


def test_id_creates_then_repeats(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["id", "--data-dir", str(tmp_path / "d")]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["id", "--data-dir", str(tmp_path / "d")]) == 0
    assert capsys.readouterr().out.strip() == first
    assert PeerId.from_base58(first).to_base58() == first
    assert (tmp_path / "d" / "identity.key").stat().st_mode & 0o777 == 0o600


def test_keygen(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen"]) == 0
    assert len(parse_network_key(capsys.readouterr().out.strip())) == 32
