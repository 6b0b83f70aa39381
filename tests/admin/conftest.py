"""Fixtures for the admin API tests: a node with an admin token, and an HTTP helper."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from testnet.process import NodeProcess

TOKEN = "test-admin-token-0123456789abcdef"
PASSWORD = "correct-horse-battery"


@pytest.fixture
def admin_node(node_factory: Callable[..., NodeProcess]) -> NodeProcess:
    """A node with the admin API on (SQLite store, JSON logs)."""
    return node_factory("--admin-token", TOKEN, "--log-format", "json", name="admin")


def http(
    node: NodeProcess, method: str, path: str, token: str | None = TOKEN, params: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON body or text) of one plain-HTTP request to the node."""
    query = "?" + urllib.parse.urlencode(params) if params else ""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(
        node.http_url + path + query, method=method, headers=headers, data=b"" if method == "POST" else None
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as reply:
            status, head, body = reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as exc:
        status, head, body = exc.code, dict(exc.headers), exc.read()
    try:
        return status, head, json.loads(body)
    except ValueError:
        return status, head, body.decode(errors="replace")


async def ahttp(node: NodeProcess, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    return await asyncio.to_thread(http, node, method, path, **kwargs)
