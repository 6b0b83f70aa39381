"""The web client's group conversations, typing indicators, read receipts and system
messages, in a real headless chromium against a real node process (tests/web/conftest.py).

Screenshots of every page are saved in artifacts/ when a test fails.
"""

from __future__ import annotations

import asyncio
import secrets
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from im import client_pb2 as pb
from im.client import Client, GroupMessageEvent
from testnet.process import NodeProcess
from tests.web.conftest import Pages
from tests.web.test_browser import PASSWORD, add_contact, bubbles, expect, register, send

pytestmark = pytest.mark.slow


def group_item(page: Any, name: str) -> Any:
    return page.locator("li.contact.group", has=page.locator(".name", has_text=name))


async def group_texts(client: Client, want: set[str], timeout: float = 15.0) -> set[str]:
    """Texts of group pushes the SDK client gets until it has seen every text of ``want``."""
    got: set[str] = set()
    deadline = asyncio.get_running_loop().time() + timeout
    while not want <= got:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"SDK client saw {got}, wanted {want}"
        event = await client.next_event(left)
        if isinstance(event, GroupMessageEvent):
            got.add(event.message.text)
    return got


async def test_group_two_browsers_and_an_sdk_user(
    node: NodeProcess, app_url: Callable[[NodeProcess], str], pages: Pages
) -> None:
    url = app_url(node)
    carol = Client(node.url, "carol", PASSWORD, register=True)
    await carol.connect()
    alice = await pages.new("alice", url)
    bob = await pages.new("bob", url)
    await register(alice, "alice")
    await register(bob, "bob")

    # alice creates "Team" with bob; both see the group and the "created" notice
    await alice.fill("#group-name-input", "Team <b>1</b>")
    await alice.fill("#group-members-input", "bob")
    await alice.click("#group-create-btn")
    await expect(alice.locator("#conv-name")).to_have_text("Team <b>1</b>")
    await expect(alice.locator("li.notice")).to_have_text(["alice created the group with bob"])
    await expect(alice.locator("#conv-sub")).to_contain_text("2 members: alice, bob")
    gid = (await alice.locator("#group-id").text_content() or "").strip()
    assert gid.startswith("g"), gid
    bob_team = group_item(bob, "Team <b>1</b>")
    await expect(bob_team).to_be_visible()
    await expect(bob_team).to_have_attribute("data-group", gid)

    # carol (SDK) joins the open group by id: a "joined" notice for alice
    await carol.group_action(gid, pb.GROUP_APPLY)
    await expect(alice.locator("li.notice").last).to_have_text("carol joined")
    await expect(alice.locator("#conv-sub")).to_contain_text("3 members")

    # alice writes: carol gets the push; bob (group not open) gets an unread badge
    await send(alice, "hello team")
    await expect(bubbles(alice, "hello team", mine=True)).to_have_attribute("data-state", "sent")
    await group_texts(carol, {"hello team"})
    await expect(bob_team.locator(".badge")).to_have_attribute("data-count", "1")
    await expect(bob_team.locator(".preview")).to_have_text("alice: hello team")

    # carol writes from the SDK: alice (open) sees it with the sender's name; bob's badge is 2
    await carol.group_send(gid, "hi from carol")
    carol_msg = bubbles(alice, "hi from carol", mine=False)
    await expect(carol_msg).to_have_count(1)
    await expect(carol_msg.locator(".from")).to_have_text("carol")
    await expect(bob_team.locator(".badge")).to_have_attribute("data-count", "2")
    assert await bob.title() == "(2) timnode"

    # bob opens the group: everything since his join, badge cleared, read position moved
    await bob_team.click()
    await expect(bob.locator("li.msg .text")).to_have_text(["hello team", "hi from carol"])
    await expect(bob.locator("li.notice")).to_have_text(["alice created the group with bob", "carol joined"])
    await expect(bob_team.locator(".badge")).to_have_attribute("data-count", "0")
    await send(bob, "bob here")
    await expect(bubbles(alice, "bob here", mine=False)).to_have_count(1)
    await group_texts(carol, {"bob here"})

    async def bob_unread() -> int:
        for _ in range(50):
            groups = {g.group: g for g in await carol_probe.my_groups()}
            if groups[gid].unread == 0:
                return 0
            await asyncio.sleep(0.1)
        return int(groups[gid].unread)

    async with Client(node.url, "bob", PASSWORD, device="probe") as carol_probe:
        assert await bob_unread() == 0  # bob's page sent groupRead

    # a reload catches up with groupSync: a message sent while bob's page was away arrives once
    await bob.reload()
    await expect(bob.locator("#status")).to_have_attribute("data-state", "online")
    await carol.group_send(gid, "while you reloaded")
    await expect(group_item(bob, "Team <b>1</b>").locator(".preview")).to_have_text("carol: while you reloaded")
    await group_item(bob, "Team <b>1</b>").click()
    await expect(bob.locator("li.msg .text")).to_have_text(
        ["hello team", "hi from carol", "bob here", "while you reloaded"]
    )

    # bob leaves: alice sees the notice; the group is gone from bob's list
    await bob.click("#leave-group-btn")
    await expect(alice.locator("li.notice").last).to_have_text("bob left")
    await expect(group_item(bob, "Team <b>1</b>")).to_have_count(0)
    assert await alice.locator("#message-list b, #contacts b").count() == 0
    await carol.close()
    assert pages.errors() == []


async def test_typing_indicator_and_read_receipts(
    node: NodeProcess, app_url: Callable[[NodeProcess], str], pages: Pages
) -> None:
    url = app_url(node)
    alice = await pages.new("alice", url)
    bob = await pages.new("bob", url)
    await register(alice, "alice")
    await register(bob, "bob")
    await add_contact(alice, "bob")
    await send(alice, "are you there?")
    mine = bubbles(alice, "are you there?", mine=True)
    await expect(mine).to_have_attribute("data-state", "delivered")
    await asyncio.sleep(0.5)
    await expect(mine).to_have_attribute("data-read", "false")  # bob has not opened it

    # bob opens the conversation: alice sees "read"
    await bob.locator('li.contact[data-user="alice"]').click()
    await expect(bubbles(bob, "are you there?", mine=False)).to_have_count(1)
    await expect(mine).to_have_attribute("data-read", "true")
    await expect(mine.locator(".tick")).to_have_attribute("title", "read")
    await expect(mine.locator(".tick")).to_have_text("✓✓")

    # bob types: alice sees it; bob clears the box: it goes away
    typing = alice.locator("#typing")
    await expect(typing).to_be_hidden()
    await bob.locator("#composer-input").press_sequentially("yes, I")
    await expect(typing).to_be_visible()
    await expect(typing).to_have_text("bob is typing…")
    await bob.fill("#composer-input", "")
    await expect(typing).to_be_hidden()

    # bob types and stops: the indicator goes away by itself (idle stop, then the TTL)
    await bob.locator("#composer-input").press_sequentially("hmm")
    await expect(typing).to_be_visible()
    await expect(typing).to_be_hidden(timeout=15_000)

    # bob types and sends: the message replaces the indicator; bob reads alice's reply
    await bob.locator("#composer-input").press_sequentially(" ok")
    await expect(typing).to_be_visible()
    await bob.press("#composer-input", "Enter")
    await expect(bubbles(alice, "hmm ok", mine=False)).to_have_count(1)
    await expect(typing).to_be_hidden()
    await send(alice, "great")
    await expect(bubbles(alice, "great", mine=True)).to_have_attribute("data-read", "true")
    # bob's own message is not "read" until alice's page (open conversation) marks it
    await expect(bubbles(bob, "hmm ok", mine=True)).to_have_attribute("data-read", "true")

    # alice's typing shows at bob's too (both directions)
    await alice.locator("#composer-input").press_sequentially("one more")
    await expect(bob.locator("#typing")).to_have_text("alice is typing…")
    assert pages.errors() == []


async def test_system_broadcast_is_shown(
    node_factory: Callable[..., NodeProcess], app_url: Callable[[NodeProcess], str], pages: Pages
) -> None:
    token = secrets.token_hex(16)
    node = node_factory("--admin-token", token, name="admin")
    page = await pages.new("sue", app_url(node))
    await register(page, "sue")
    banner = page.locator("#system-banner")
    await expect(banner).to_be_hidden()

    def broadcast(text: str) -> None:
        query = urllib.parse.urlencode({"text": text, "to": "all"})
        request = urllib.request.Request(
            f"{node.http_url}/admin/broadcast?{query}",
            method="POST",
            data=b"",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert reply.status == 200

    text = "Maintenance at 22:00 UTC <img src=x onerror=alert(1)>"
    await asyncio.to_thread(broadcast, text)
    await expect(banner).to_be_visible()
    await expect(banner.locator(".system-line")).to_have_count(1)
    await expect(banner.locator(".system-line")).to_contain_text(f"System: {text}")
    assert await banner.locator("img").count() == 0
    # it is not a conversation with an empty user name
    assert await page.locator('li.contact[data-user=""]').count() == 0
    await page.click("#system-dismiss")
    await expect(banner).to_be_hidden()

    # a later login (first sync) shows it too
    other = await pages.new("sue2", app_url(node))
    await other.fill("#login-user", "sue")
    await other.fill("#login-password", PASSWORD)
    await other.click("#login-btn")
    await expect(other.locator("#system-banner .system-text")).to_have_text(text)
    assert pages.errors() == []
