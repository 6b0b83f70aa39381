"""The web chat client that every node serves at ``/``.

This package owns the browser client: static files in ``web/static/`` (``index.html``,
``app.js`` as a plain ES module, ``app.css``; no framework, no build step) that speak the
JSON mapping of the client protocol (``timnode.v1.json``, see ``docs/protocol.md``) over a
WebSocket to the node that served the page. It owns nothing on the node side beyond
:func:`static_routes`, which the node registers on its one port as plain-HTTP GET routes.

The client mirrors the Python SDK (``im/client.py``): request/response matching by id,
resume by token, sync from the last cursor after every (re)connect, de-duplication by
message id, coalesced delivery acks, sends retried with the same ``clientMsgId`` across
reconnects, full-jitter exponential backoff. ``?node=ws://127.0.0.1:PORT`` in the page's
URL overrides the WebSocket URL (development, or a page served from elsewhere).
"""

from __future__ import annotations

import mimetypes
from importlib import resources
from importlib.resources.abc import Traversable

__all__ = ["static_routes", "CONTENT_TYPES"]

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".webmanifest": "application/manifest+json",
}


def _content_type(name: str) -> str:
    dot = name.rfind(".")
    ext = name[dot:].lower() if dot >= 0 else ""
    if ext in CONTENT_TYPES:
        return CONTENT_TYPES[ext]
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def static_routes() -> dict[str, tuple[str, bytes]]:
    """URL path -> (content type, body) for every file under ``web/static/``.

    ``/`` and ``/index.html`` both serve ``index.html``, ``/dashboard`` serves
    ``dashboard.html`` (the admin dashboard); other files are served at
    ``/<relative path>`` (``/app.js``, ``/app.css``). Files are read once, here.
    """
    routes: dict[str, tuple[str, bytes]] = {}
    root = resources.files(__name__).joinpath("static")

    def walk(node: Traversable, prefix: str) -> None:
        for entry in sorted(node.iterdir(), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            else:
                routes[f"/{prefix}{entry.name}"] = (_content_type(entry.name), entry.read_bytes())

    walk(root, "")
    if "/index.html" in routes:
        routes["/"] = routes["/index.html"]
    if "/dashboard.html" in routes:
        routes["/dashboard"] = routes["/dashboard.html"]  # the admin dashboard (token login)
    return routes
