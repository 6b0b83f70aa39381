"""Fixtures for the browser tests: headless Debian chromium driven by Playwright.

* ``browser``: a chromium (``/usr/bin/chromium``, never a downloaded build). When it
  cannot start, the test fails if ``CI`` is set and is skipped (with the reason) otherwise.
* ``app_url(node)``: the page URL for a node: the node's own ``/`` when it serves the web
  client, else an in-test HTTP server on 127.0.0.1 serving ``web.static_routes()`` with
  ``?node=ws://127.0.0.1:PORT``.
* ``pages``: opens pages in fresh browser contexts; on a failing test every page's
  screenshot (and its console log) is saved under ``artifacts/``.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from testnet.process import NodeProcess

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # Never talk to anything but this machine's loopback.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--proxy-server=direct://",
    "--proxy-bypass-list=*",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"browser tests need chromium: {reason}")
    print(f"\nSKIP browser tests: {reason}")
    pytest.skip(reason)


_FAILED = pytest.StashKey[bool]()


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """Remember a failing test body so the ``pages`` fixture saves screenshots at teardown."""
    if call.when == "call" and call.excinfo is not None and not call.excinfo.errisinstance(pytest.skip.Exception):
        item.stash[_FAILED] = True


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:  # pragma: no cover - depends on the machine
        _unavailable(f"the playwright package is not installed ({exc})")
    exe = next((p for p in CHROMIUM_CANDIDATES if os.path.exists(p)), None) or shutil.which("chromium")
    if exe is None:
        _unavailable("no chromium binary (apt-get install chromium)")
    async with async_playwright() as pw:
        try:
            b = await pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, timeout=60_000)
        except Exception as exc:  # noqa: BLE001 - any launch failure means "no browser here"
            _unavailable(f"chromium did not start: {str(exc).splitlines()[0]}")
        try:
            yield b
        finally:
            await b.close()


class Pages:
    """Opens pages, each in its own browser context (own localStorage: one user each)."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser
        self.opened: list[tuple[str, Any, list[str]]] = []

    async def new(self, name: str, url: str) -> Any:
        assert re.match(r"^http://127\.0\.0\.1:\d+/", url), url
        context = await self.browser.new_context(viewport={"width": 1100, "height": 720})
        page = await context.new_page()
        log: list[str] = []
        page.on("console", lambda m: log.append(f"[{m.type}] {m.text}"))
        page.on("pageerror", lambda e: log.append(f"[pageerror] {e}"))
        page.set_default_timeout(20_000)
        self.opened.append((name, page, log))
        await page.goto(url)
        return page

    def errors(self) -> list[str]:
        return [line for _, _, log in self.opened for line in log if line.startswith("[pageerror]")]


@pytest.fixture
async def pages(browser: Any, request: pytest.FixtureRequest) -> AsyncIterator[Pages]:
    p = Pages(browser)
    yield p
    if request.node.stash.get(_FAILED, False):
        ARTIFACTS.mkdir(exist_ok=True)
        for name, page, log in p.opened:
            stem = f"{request.node.name}-{name}".replace("/", "_")
            try:
                await page.screenshot(path=str(ARTIFACTS / f"{stem}.png"), full_page=True)
            except Exception as exc:  # noqa: BLE001 - best effort
                log.append(f"[screenshot failed] {exc}")
            (ARTIFACTS / f"{stem}.console.txt").write_text("\n".join(log) + "\n")
        print(f"\nscreenshots saved in {ARTIFACTS}")
    for _, page, _ in p.opened:
        try:
            await page.context.close()
        except Exception:  # noqa: BLE001 - browser may be gone already
            pass


class _StaticHandler(BaseHTTPRequestHandler):
    routes: dict[str, tuple[str, bytes]] = {}

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        path = self.path.split("?", 1)[0]
        entry = self.routes.get(path)
        if entry is None:
            self.send_error(404)
            return
        content_type, body = entry
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def static_server() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving ``web.static_routes()``; yields its base URL."""
    from web import static_routes

    handler = type("Handler", (_StaticHandler,), {"routes": static_routes()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def node_serves_client(node: NodeProcess) -> bool:
    try:
        with urllib.request.urlopen(node.http_url + "/", timeout=5) as reply:
            return reply.status == 200 and b'src="app.js"' in reply.read()
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture
def app_url(static_server: str) -> Callable[[NodeProcess], str]:
    """The web client's URL for a node (the node's own ``/`` once routes are wired)."""

    def make(node: NodeProcess) -> str:
        if node_serves_client(node):
            return node.http_url + "/"
        return f"{static_server}/?node={node.url}"

    return make
