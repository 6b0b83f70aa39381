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


def test_fabric_flags_and_toml(tmp_path: pathlib.Path) -> None:
    import argparse

    from timnode.config import add_node_flags, config_from_args

    parser = argparse.ArgumentParser()
    add_node_flags(parser)
    args = parser.parse_args(["--bootstrap", "a:1,b:2", "--bootstrap", "c:3/p2p/x", "--max-links", "7"])
    config = config_from_args(args)
    assert config.bootstrap_addrs() == ["a:1", "b:2", "c:3/p2p/x"] and config.max_links == 7
    for value in ('["a:1", "b:2"]', '"a:1,b:2"'):
        toml = tmp_path / "node.toml"
        toml.write_text(f"bootstrap = {value}\nkeepalive = 3.5\nnetwork-key = 'k'\n")
        config = config_from_args(parser.parse_args(["--config", str(toml)]))
        assert config.bootstrap_addrs() == ["a:1", "b:2"] and config.keepalive == 3.5 and config.network_key == "k"


def test_bad_network_key_exits_2_without_echoing_it(tmp_path: pathlib.Path) -> None:
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "timnode", "--data-dir", str(tmp_path), "--no-mdns", "--no-store",
           "--listen", "127.0.0.1:0", "--network-key", "tnk1-secret-typo"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "network key" in done.stderr and "secret-typo" not in done.stderr


def test_peers_command_reports_an_unreachable_node(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["peers", "--node", "127.0.0.1:1"]) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_an_admin_token_path_that_does_not_exist_is_refused(tmp_path: pathlib.Path) -> None:
    """A typo in --admin-token /path must not make the path itself the bearer token."""
    from timnode.config import ConfigError, NodeConfig

    missing = str(tmp_path / "admin-token-typo")
    with pytest.raises(ConfigError, match="does not exist"):
        NodeConfig(admin_token=missing, data_dir=str(tmp_path)).resolved_admin_token()
    token_file = tmp_path / "admin.token"
    token_file.write_text("a-long-enough-admin-token\n")
    assert NodeConfig(admin_token=str(token_file), data_dir=str(tmp_path)).resolved_admin_token() == (
        "a-long-enough-admin-token"
    )
    assert NodeConfig(admin_token="inline-token-0123456789").resolved_admin_token() == "inline-token-0123456789"
