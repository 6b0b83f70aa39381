"""Structured logs of a real node: request ids on records; secrets and bodies never logged."""

from __future__ import annotations

import json
import re
import secrets

import pytest

from im.client import Client
from testnet.process import NodeProcess
from tests.admin.conftest import TOKEN, ahttp

pytestmark = pytest.mark.slow


async def test_json_log_has_request_ids_and_no_secrets(admin_node: NodeProcess) -> None:
    password = "pw-" + secrets.token_hex(12)
    body = "body-" + secrets.token_hex(12)
    system_text = "sys-" + secrets.token_hex(12)
    async with (
        Client(admin_node.url, "logan", password, register=True, use_json=True) as logan,
        Client(admin_node.url, "mia", password, register=True) as mia,
    ):
        await logan.send("mia", body)
        token = logan.token
        assert (await ahttp(admin_node, "POST", "/admin/broadcast", params={"text": system_text, "to": "all"}))[
            0
        ] == 200
        assert (await ahttp(admin_node, "GET", "/admin/status", token="wrong-" + TOKEN))[0] == 401
        await mia.ping()
    admin_node.stop()

    text = admin_node.log_path.read_text()
    for secret in (password, body, system_text, TOKEN, token):
        assert secret not in text, "a secret or a message body reached the log"
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert records and all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    ids = [r["request_id"] for r in records if "request_id" in r]
    assert ids and all(re.fullmatch(r"c\d+/r\d+", i) for i in ids)
    opened = [r for r in records if "session opened user=logan" in r["msg"]]
    assert opened and re.fullmatch(r"c\d+/r\d+", opened[0]["request_id"])


async def test_text_log_shows_request_ids(node_factory: object) -> None:
    node = node_factory()  # type: ignore[operator]
    async with Client(node.url, "tess", "pw-" + secrets.token_hex(8), register=True):
        pass
    node.stop()
    line = next(x for x in node.log_path.read_text().splitlines() if "account registered user=tess" in x)
    assert re.search(r"im\.service \[c\d+/r\d+\]: = account registered", line), line
