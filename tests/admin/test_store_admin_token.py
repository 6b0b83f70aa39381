"""``/admin/store/*`` is part of the admin API: the admin token, 404 without one.

``timnode store`` talks to a running node with ``--token`` / ``TIMNODE_ADMIN_TOKEN``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

from testnet.process import NodeProcess
from tests.admin.conftest import TOKEN, http

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def store_cli(node: NodeProcess, *args: str, token: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TIMNODE_ADMIN_TOKEN"}
    if token:
        env["TIMNODE_ADMIN_TOKEN"] = token
    cmd = [sys.executable, "-m", "timnode", "store", *args, "--data-dir", str(node.data_dir), "--json"]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60, env=env)


def test_store_routes_take_the_admin_token(admin_node: NodeProcess) -> None:
    status, _, doc = http(admin_node, "GET", "/admin/store/status")
    assert status == 200 and doc["sharded"] is False
    assert http(admin_node, "GET", "/admin/store/status", token=None)[0] == 401
    assert http(admin_node, "GET", "/admin/store/status", token="wrong-token-0123456789")[0] == 401
    assert not (admin_node.data_dir / "store-admin.token").exists()

    out = store_cli(admin_node, "status", token=TOKEN)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["sharded"] is False
    out = store_cli(admin_node, "status", "--token", TOKEN)
    assert out.returncode == 0, out.stderr
    out = store_cli(admin_node, "status")
    assert out.returncode == 1 and "TIMNODE_ADMIN_TOKEN" in out.stderr
    out = store_cli(admin_node, "status", token="wrong-token-0123456789")
    assert out.returncode == 1 and "401" in out.stderr


def test_store_routes_are_404_without_an_admin_token(node_factory: Callable[..., NodeProcess]) -> None:
    node = node_factory(name="plain")
    assert http(node, "GET", "/admin/store/status")[0] == 404
    assert http(node, "GET", "/admin/store/add-shard", params={"url": "sqlite:///tmp/x.db"})[0] == 404
    assert not (node.data_dir / "store-admin.token").exists()
    out = store_cli(node, "status", token=TOKEN)
    assert out.returncode == 1 and "--admin-token" in out.stderr
