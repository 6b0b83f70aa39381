"""The admin dashboard (web/static/dashboard.*) in headless chromium against a real node.

Token login, live figures from /admin/status and /metrics, a non-zero message rate while
SDK clients chat, charts drawn; screenshots land in artifacts/ on failure (conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from im.client import Client
from testnet.process import NodeProcess
from tests.web.conftest import Pages

pytestmark = pytest.mark.slow

TOKEN = "dashboard-test-token-0123456789"
PASSWORD = "correct-horse-battery"


def expect(locator: Any) -> Any:
    from playwright.async_api import expect as pw_expect

    return pw_expect(locator)


async def chatter(url: str, stop: asyncio.Event) -> int:
    """Two SDK clients sending messages to each other until ``stop``; returns how many were sent."""
    sent = 0
    async with (
        Client(url, "dash-a", PASSWORD, register=True) as a,
        Client(url, "dash-b", PASSWORD, register=True) as b,
    ):
        while not stop.is_set():
            await a.send("dash-b", f"ping {sent}")
            await b.send("dash-a", f"pong {sent}")
            sent += 2
            await asyncio.sleep(0.05)
    return sent


async def test_dashboard_login_live_figures_and_charts(node_factory: Callable[..., NodeProcess], pages: Pages) -> None:
    node = node_factory("--admin-token", TOKEN, name="dash")
    page = await pages.new("dashboard", node.http_url + "/dashboard")
    await expect(page.locator("#login-form")).to_be_visible()

    await page.fill("#token-input", "not-the-token")
    await page.click("#login-btn")
    await expect(page.locator("#login-error")).to_have_text("Wrong token.")

    await page.fill("#token-input", TOKEN)
    await page.click("#login-btn")
    await expect(page.locator("#main-view")).to_be_visible()
    await expect(page.locator("#node-id")).to_have_text(str(node.info["node"]))
    await expect(page.locator("#fig-store")).to_have_text("sqlite")
    await expect(page.locator("#fig-dht")).not_to_have_text("–")

    stop = asyncio.Event()
    traffic = asyncio.create_task(chatter(node.url, stop))
    try:
        await page.wait_for_function(
            "() => parseFloat(document.getElementById('fig-rate-in').dataset.value) > 0", timeout=20_000
        )
        await page.wait_for_function(
            "() => parseFloat(document.getElementById('fig-rate-out').dataset.value) > 0", timeout=20_000
        )
        assert float(await page.locator("#fig-rate-in").text_content() or "0") > 0
        await expect(page.locator("#fig-connections")).to_have_text("2")
        await expect(page.locator("#fig-online")).to_have_text("2")
        await page.wait_for_function(
            "() => parseInt(document.getElementById('chart-rate').dataset.points) >= 2", timeout=10_000
        )
        assert int(await page.locator("#chart-latency").get_attribute("data-points") or "0") > 0
        assert int(await page.locator("#chart-conns").get_attribute("data-points") or "0") >= 2
        deliveries = (await page.locator("#fig-deliveries").text_content() or "0").replace(",", "")
        assert int(deliveries) > 0
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            assert await traffic > 0

    # the token survives a reload of the tab (sessionStorage), not a logout
    await page.reload()
    await expect(page.locator("#main-view")).to_be_visible()
    await page.click("#logout-btn")
    await expect(page.locator("#login-form")).to_be_visible()
    assert await page.evaluate("() => sessionStorage.length") == 0
    assert pages.errors() == []


async def test_dashboard_without_admin_api(node: NodeProcess, pages: Pages) -> None:
    page = await pages.new("dashboard", node.http_url + "/dashboard")
    await page.fill("#token-input", TOKEN)
    await page.click("#login-btn")
    await expect(page.locator("#login-error")).to_contain_text("no admin API")
