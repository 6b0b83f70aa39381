"""Network keys: generation, parsing (value or file), derivations, and the open-network warning."""

from __future__ import annotations

import pathlib

import pytest

from node import netkey
from node.errors import NetworkKeyError


def test_generate_and_parse() -> None:
    text = netkey.generate()
    assert text.startswith("tnk1-") and len(text) == 5 + 64
    key = netkey.parse_network_key(text)
    assert len(key) == 32
    assert netkey.parse_network_key(text.removeprefix("tnk1-")) == key
    assert netkey.format_network_key(key) == text
    assert netkey.generate() != text


def test_parse_file(tmp_path: pathlib.Path) -> None:
    text = netkey.generate()
    path = tmp_path / "net.key"
    path.write_text(text + "\n")
    assert netkey.parse_network_key(str(path)) == netkey.parse_network_key(text)
    path.write_text("nope")
    with pytest.raises(NetworkKeyError):
        netkey.parse_network_key(str(path))


@pytest.mark.parametrize("bad", ["", "tnk1-", "tnk1-" + "zz" * 32, "hunter2", "tnk1-" + "00" * 31])
def test_parse_rejects_without_echoing(bad: str) -> None:
    with pytest.raises(NetworkKeyError) as info:
        netkey.parse_network_key(bad)
    if len(bad) > 8:
        assert bad not in str(info.value)


def test_open_network_warns(caplog: pytest.LogCaptureFixture) -> None:
    assert netkey.resolve_network_key(None) == netkey.OPEN_NETWORK_KEY
    assert "ANYONE can join" in caplog.text
    assert netkey.is_open(netkey.OPEN_NETWORK_KEY)
    assert netkey.fingerprint(netkey.OPEN_NETWORK_KEY) == "open"


def test_derivations_differ_and_do_not_log_key(caplog: pytest.LogCaptureFixture) -> None:
    text = netkey.generate()
    key = netkey.resolve_network_key(text)
    assert text not in caplog.text and key.hex() not in caplog.text
    assert netkey.network_id(key) != netkey.network_id(netkey.OPEN_NETWORK_KEY)
    assert len(netkey.fingerprint(key)) == 8
