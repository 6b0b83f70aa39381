"""``/admin/store/reseal``: one reseal at a time, answered 202 with progress while it runs
(a request's handling ends at websockets' 10 s open timeout), then 200 with the report."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import pytest

from store import Keyring, MemoryStore, SealedStore
from store.reseal import ResealReport
from timnode import store_admin


async def test_concurrent_reseal_requests_share_one_reseal_and_see_its_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(store_admin, "RESEAL_WAIT", 0.05)
    release = asyncio.Event()
    started: list[ResealReport] = []

    async def slow_reseal(store: SealedStore, *, report: ResealReport, page: int = 500) -> ResealReport:
        started.append(report)
        report.records, report.resealed = 10, 4
        await release.wait()
        report.records, report.resealed = 20, 7
        return report

    monkeypatch.setattr(store_admin, "reseal", slow_reseal)
    routes = store_admin._Routes(SealedStore(MemoryStore(), Keyring(secrets.token_bytes(32))), lambda request: None)
    first, second = await asyncio.gather(routes._run_reseal(), routes._run_reseal())
    assert len(started) == 1  # the second request waited on the same reseal
    for reply in (first, second):
        assert status_and_body(reply) == (202, {"records": 10, "resealed": 4, "running": True})
    release.set()
    assert status_and_body(await routes._run_reseal()) == (200, {"records": 20, "resealed": 7})
    release.clear()
    assert status_and_body(await routes._run_reseal())[0] == 202 and len(started) == 2  # a new one
    release.set()
    assert status_and_body(await routes._run_reseal())[0] == 200


def status_and_body(reply: Any) -> tuple[int, dict[str, Any]]:
    return reply.status, json.loads(reply.body)
