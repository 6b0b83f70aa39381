"""The web client (web/static) in a real headless chromium against a real node process.

Two browser sessions register, chat, see presence, unread badges and delivery receipts;
history pages in on scroll-up; the page reconnects after the node is killed and restarted
and a message sent meanwhile arrives exactly once; message text never becomes markup.
Screenshots of every page are saved in artifacts/ when a test fails (tests/web/conftest.py).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import Callable
from typing import Any

import pytest

from im.client import Client
from testnet.process import NodeProcess
from tests.web.conftest import Pages

pytestmark = pytest.mark.slow

PASSWORD = "correct-horse-battery"


def expect(locator: Any) -> Any:
    from playwright.async_api import expect as pw_expect

    return pw_expect(locator)


async def register(page: Any, user: str, password: str = PASSWORD) -> None:
    await page.fill("#login-user", user)
    await page.fill("#login-password", password)
    await page.click("#register-btn")
    await expect(page.locator("#status")).to_have_attribute("data-state", "online")
    await expect(page.locator("#me-name")).to_have_text(user)


async def login(page: Any, user: str, password: str = PASSWORD) -> None:
    await page.fill("#login-user", user)
    await page.fill("#login-password", password)
    await page.click("#login-btn")
    await expect(page.locator("#status")).to_have_attribute("data-state", "online")


async def add_contact(page: Any, user: str) -> None:
    await page.fill("#add-contact-input", user)
    await page.click("#add-contact-btn")
    await expect(page.locator(f'li.contact[data-user="{user}"]')).to_be_visible()


async def send(page: Any, text: str) -> None:
    await page.fill("#composer-input", text)
    await page.press("#composer-input", "Enter")


def bubbles(page: Any, text: str, *, mine: bool | None = None) -> Any:
    cls = "li.msg" + (".mine" if mine else ":not(.mine)" if mine is False else "")
    return page.locator(cls, has=page.locator(".text", has_text=text))


async def test_two_users_chat_presence_unread_and_receipts(
    node: NodeProcess, app_url: Callable[[NodeProcess], str], pages: Pages
) -> None:
    url = app_url(node)
    alice = await pages.new("alice", url)
    bob = await pages.new("bob", url)
    await expect(alice.locator("#login-form")).to_be_visible()
    await register(alice, "alice")
    await register(bob, "bob")

    # alice adds bob and sees him online
    await add_contact(alice, "bob")
    await expect(alice.locator('li.contact[data-user="bob"] .dot')).to_have_attribute("data-online", "true")
    await expect(alice.locator("#conv-name")).to_have_text("bob")
    await expect(alice.locator("#conv-sub")).to_have_text("online")

    # alice -> bob: appears in bob's window with an unread badge until he opens it
    await send(alice, "hello")
    await expect(bubbles(alice, "hello", mine=True)).to_have_count(1)
    bob_alice = bob.locator('li.contact[data-user="alice"]')
    await expect(bob_alice.locator(".badge")).to_have_attribute("data-count", "1")
    await expect(bob_alice.locator(".preview")).to_have_text("hello")
    await expect(bob_alice.locator(".dot")).to_have_attribute("data-online", "true")
    assert await bob.title() == "(1) timnode"
    await bob_alice.click()
    await expect(bubbles(bob, "hello", mine=False)).to_have_count(1)
    await expect(bob_alice.locator(".badge")).to_have_attribute("data-count", "0")
    assert await bob.title() == "timnode"

    # bob's page acknowledged it: alice sees the delivered tick
    hello = bubbles(alice, "hello", mine=True)
    await expect(hello).to_have_attribute("data-state", "delivered")
    await expect(hello.locator(".tick")).to_have_text("✓✓")

    # bob replies; alice has the conversation open, so no badge for her
    await send(bob, "hi alice")
    await expect(bubbles(alice, "hi alice", mine=False)).to_have_count(1)
    await expect(alice.locator('li.contact[data-user="bob"] .badge')).to_have_attribute("data-count", "0")
    await expect(bubbles(bob, "hi alice", mine=True)).to_have_attribute("data-state", "delivered")
    # message ids stay exact decimal strings (no float rounding in JS)
    ids = await alice.locator("li.msg").evaluate_all("els => els.map(e => e.dataset.id)")
    assert len(ids) == 2 and all(i.isdigit() and int(i) > 2**53 for i in ids) and int(ids[0]) < int(ids[1])

    # a reload right after a delivered push keeps the tick (it is saved when the page goes away)
    await bob.reload()
    await expect(bob.locator("#status")).to_have_attribute("data-state", "online")
    await bob.locator('li.contact[data-user="alice"]').click()
    await expect(bubbles(bob, "hi alice", mine=True)).to_have_attribute("data-state", "delivered")

    # bob goes away: alice sees him offline
    await bob.context.close()
    await expect(alice.locator('li.contact[data-user="bob"] .dot')).to_have_attribute("data-online", "false")
    await expect(alice.locator("#conv-sub")).to_have_text("offline")

    # a reload resumes with the stored token (no login form) and keeps contacts and the chat
    await alice.reload()
    await expect(alice.locator("#status")).to_have_attribute("data-state", "online")
    await expect(alice.locator("#login-view")).to_be_hidden()
    await alice.locator('li.contact[data-user="bob"]').click()
    await expect(bubbles(alice, "hello", mine=True)).to_have_attribute("data-state", "delivered")
    await expect(bubbles(alice, "hi alice", mine=False)).to_have_count(1)
    assert pages.errors() == []


async def test_history_loads_older_messages_on_scroll_up(
    node: NodeProcess, app_url: Callable[[NodeProcess], str], pages: Pages
) -> None:
    async with Client(node.url, "carol", PASSWORD, register=True) as carol:
        async with Client(node.url, "dave", PASSWORD, register=True) as dave:
            for i in range(120):
                await (dave if i % 10 == 9 else carol).send("dave" if i % 10 != 9 else "carol", f"msg {i:03d}")
    page = await pages.new("dave", app_url(node))
    await login(page, "dave")
    carol_item = page.locator('li.contact[data-user="carol"]')
    await expect(carol_item.locator(".preview")).to_have_text("You: msg 119")
    # a new device's first sync is not "unread"
    await expect(carol_item.locator(".badge")).to_have_attribute("data-count", "0")
    await carol_item.click()
    texts = page.locator("li.msg .text")
    await expect(texts.last).to_have_text("msg 119")
    await expect(texts).to_have_count(50)
    box = page.locator("#messages")
    assert await box.evaluate("e => e.scrollHeight - e.scrollTop - e.clientHeight < 5")  # at the newest

    for expected in (100, 120):
        await box.evaluate("e => { e.scrollTop = 0; e.dispatchEvent(new Event('scroll')); }")
        await expect(texts).to_have_count(expected)
        # the view stays where it was (older messages were inserted above it)
        assert await box.evaluate("e => e.scrollTop") > 100
    await expect(page.locator("#history-status")).to_have_text("Beginning of the conversation")
    got = await texts.all_text_contents()
    assert got == [f"msg {i:03d}" for i in range(120)]
    mine = await page.locator("li.msg.mine .text").all_text_contents()
    assert mine == [f"msg {i:03d}" for i in range(9, 120, 10)]
    assert pages.errors() == []


async def test_reconnects_after_node_restart_and_gets_missed_message_once(
    node: NodeProcess, app_url: Callable[[NodeProcess], str], pages: Pages
) -> None:
    port = node.url.rsplit(":", 1)[1]
    bob = Client(node.url, "bob", PASSWORD, register=True, backoff=(0.05, 0.5))
    await bob.connect()
    page = await pages.new("alice", app_url(node))
    await register(page, "alice")
    await add_contact(page, "bob")
    await send(page, "before the crash")
    await expect(bubbles(page, "before the crash", mine=True)).to_have_attribute("data-state", "delivered")

    os.kill(node.pid, signal.SIGKILL)
    node.proc.wait()  # type: ignore[union-attr]
    status = page.locator("#status")
    await expect(status).to_have_attribute("data-state", "reconnecting")
    await expect(status).to_contain_text("reconnecting")
    await expect(page.locator('li.contact[data-user="bob"] .dot')).to_have_attribute("data-online", "unknown")
    # let a few attempts fail so the page is in backoff when the node comes back
    await expect(status).to_have_attribute("data-attempt", re.compile(r"^([3-9]|[1-9][0-9]+)$"))

    node.listen = f"127.0.0.1:{port}"
    await asyncio.to_thread(node.start)
    await bob.send("alice", "sent while you were away")
    print("page state when the missed message was sent:", await status.get_attribute("data-state"))
    await expect(status).to_have_attribute("data-state", "online", timeout=30_000)
    await expect(bubbles(page, "sent while you were away", mine=False)).to_have_count(1)
    await expect(page.locator('li.contact[data-user="bob"] .dot')).to_have_attribute("data-online", "true")

    # live again: pushes work, sends from the page work, nothing arrives twice
    await bob.send("alice", "after the restart")
    await expect(bubbles(page, "after the restart", mine=False)).to_have_count(1)
    await send(page, "back online")
    await expect(bubbles(page, "back online", mine=True)).to_have_attribute("data-state", "delivered")
    await asyncio.sleep(1.0)
    for text in ("before the crash", "sent while you were away", "after the restart", "back online"):
        await expect(bubbles(page, text)).to_have_count(1)
    ids = await page.locator("li.msg").evaluate_all("els => els.map(e => e.dataset.id)")
    assert len(ids) == len(set(ids)) == 4
    await bob.close()
    assert pages.errors() == []


async def test_message_text_is_never_markup(
    node: NodeProcess, app_url: Callable[[NodeProcess], str], pages: Pages
) -> None:
    payloads = ["<img src=x onerror=alert(1)>", "<script>alert(2)</script>", '"><svg onload=alert(3)>']
    page = await pages.new("erin", app_url(node))
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
    await register(page, "erin")
    async with Client(node.url, "mallory", PASSWORD, register=True) as mallory:
        for p in payloads:
            await mallory.send("erin", p)
    item = page.locator('li.contact[data-user="mallory"]')
    await expect(item.locator(".preview")).to_have_text(payloads[-1])
    await item.click()
    await expect(page.locator("li.msg .text")).to_have_text(payloads)
    await send(page, payloads[0])
    await expect(bubbles(page, payloads[0], mine=True)).to_have_attribute("data-state", "sent")
    await asyncio.sleep(0.5)
    assert await page.locator("#message-list img, #message-list script, #message-list svg").count() == 0
    assert await page.locator("#contacts img, #contacts svg").count() == 0
    assert dialogs == []
    assert pages.errors() == []


async def test_same_device_elsewhere_stops_reconnecting(
    node: NodeProcess, app_url: Callable[[NodeProcess], str], pages: Pages
) -> None:
    page = await pages.new("frank", app_url(node))
    await register(page, "frank")
    device = await page.evaluate("() => window.timnode.client.device")
    assert device.startswith("web-")
    async with Client(node.url, "frank", PASSWORD, device=device, reconnect=False):
        status = page.locator("#status")
        await expect(status).to_have_attribute("data-state", "stopped")
        await expect(status).to_contain_text("signed in from another tab or window")
        await asyncio.sleep(1.5)  # it does not take the device back by itself
        await expect(status).to_have_attribute("data-state", "stopped")
    await page.click("#retry-btn")  # the user asks for it
    await expect(status).to_have_attribute("data-state", "online")
    assert pages.errors() == []
