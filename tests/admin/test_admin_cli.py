"""``timnode admin ...`` (im/admin_cli.py) against a real node process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from im.client import Client
from testnet.process import NodeProcess
from tests.admin.conftest import PASSWORD, TOKEN

pytestmark = pytest.mark.slow


def admin(
    node: NodeProcess | str, *args: str, token: str | None = TOKEN, env_token: bool = False
) -> subprocess.CompletedProcess[str]:
    target = node if isinstance(node, str) else node.url.removeprefix("ws://")
    env = dict(os.environ)
    env.pop("TIMNODE_ADMIN_TOKEN", None)
    argv = [sys.executable, "-m", "timnode", "admin", "--node", target]
    if token is not None and env_token:
        env["TIMNODE_ADMIN_TOKEN"] = token
    elif token is not None:
        argv += ["--token", token]
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=60, env=env)


def test_status_human_and_json(admin_node: NodeProcess) -> None:
    out = admin(admin_node, "status", env_token=True)
    assert out.returncode == 0, out.stderr
    assert admin_node.info["node"] in out.stdout and "users online" in out.stdout and "memory" in out.stdout
    doc = json.loads(admin(admin_node, "--json", "status").stdout)
    assert doc["node"] == admin_node.info["node"]
    for command in ("peers", "dht", "sessions", "store", "blocked"):
        result = admin(admin_node, command)
        assert result.returncode == 0 and result.stdout.strip(), (command, result.stderr)
        assert isinstance(json.loads(admin(admin_node, "--json", command).stdout), dict)


def test_errors_and_exit_codes(admin_node: NodeProcess) -> None:
    missing = admin(admin_node, "status", token=None)
    assert missing.returncode == 2 and "TIMNODE_ADMIN_TOKEN" in missing.stderr
    wrong = admin(admin_node, "status", token="not-the-token-at-all")
    assert wrong.returncode == 1 and "401" in wrong.stderr
    unreachable = admin("127.0.0.1:1", "status")
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr
    assert admin(admin_node, "kick").returncode == 2  # argparse: USER is required


async def test_sessions_kick_block_broadcast(admin_node: NodeProcess) -> None:
    async with Client(admin_node.url, "erin", PASSWORD, register=True, device="tablet") as erin:
        sessions = admin(admin_node, "sessions")
        assert "erin" in sessions.stdout and "tablet" in sessions.stdout and "127.0.0.1" in sessions.stdout
        sent = admin(admin_node, "broadcast", "hello from ops", "--to", "erin")
        assert sent.returncode == 0 and "1 recipients" in sent.stdout and "to erin" in sent.stdout
        kick = admin(admin_node, "--json", "kick", "erin", "tablet")
        assert json.loads(kick.stdout)["kicked"] == 1
        await erin.close()
    block = admin(admin_node, "block", "erin", "--reason", "abuse")
    assert block.returncode == 0 and "blocked erin" in block.stdout
    assert "erin" in admin(admin_node, "blocked").stdout and "abuse" in admin(admin_node, "blocked").stdout
    assert "unblocked erin" in admin(admin_node, "unblock", "erin").stdout
    assert "no blocked accounts" in admin(admin_node, "blocked").stdout
    everyone = admin(admin_node, "--json", "broadcast", "to all", "--to", "all")
    assert json.loads(everyone.stdout)["recipients"] == 1
