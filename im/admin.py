"""The admin API: JSON over plain HTTP on the node's port, behind one bearer token.

Routes (all answer JSON; ``Authorization: Bearer <token>`` on every request)::

    GET  /admin/status     node status + live figures (the dashboard polls it)
    GET  /admin/peers      peer links with their link kind (transport), direction, RTT
    GET  /admin/dht        DHT summary ({"enabled": false} without a DHT)
    GET  /admin/sessions   online users: devices, login time, remote address
    GET  /admin/store      store backend facts, blocked accounts
    GET  /admin/blocked    blocked accounts
    POST /admin/kick       ?user=U[&device=D]          Kicked ADMIN, close 4005
    POST /admin/block      ?user=U[&reason=R]          refuse logins, kick its sessions (persisted)
    POST /admin/unblock    ?user=U
    POST /admin/broadcast  ?text=T[&to=USER|node|all]  a system message (im/admin_ops.py)

Parameters of POST requests are in the query string, and POST bodies must be empty: the
port is a websockets server whose HTTP parser refuses request bodies (it closes the
connection), see docs/operations.md. Without a configured token no ``/admin`` route is
registered at all (404). A missing token is 401; a wrong one is 401 and counts against a
node-wide failure bucket (burst 20, 1 per second): when it is empty every admin request is
answered 429 with ``Retry-After`` until it refills. Tokens are compared in constant time.
The handler sees the request only (not the TCP peer), hence a node-wide bucket.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.http11 import Request

from im.admin_ops import AdminOps
from im.errors import ImError
from im.limits import TokenBucket
from im.metrics import ImMetrics
from node.server import HttpReply, json_reply

__all__ = ["AdminApi", "AdminSources", "ROUTES", "FAILURE_BURST", "FAILURE_RATE"]

log = logging.getLogger(__name__)

FAILURE_BURST = 20
FAILURE_RATE = 1.0  # wrong-token attempts per second, sustained
_MAX_PARAM = 16384

Doc = dict[str, Any]
Source = Callable[[], "Doc | Awaitable[Doc]"]


@dataclass(frozen=True, slots=True)
class AdminSources:
    """Node-level documents the IM layer cannot build itself (the composition root provides them)."""

    status: Source
    peers: Source
    dht: Source
    store: Source


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


#: path -> (method, handler name)
ROUTES: dict[str, tuple[str, str]] = {
    "/admin/status": ("GET", "_status"),
    "/admin/peers": ("GET", "_peers"),
    "/admin/dht": ("GET", "_dht"),
    "/admin/sessions": ("GET", "_sessions"),
    "/admin/store": ("GET", "_store"),
    "/admin/blocked": ("GET", "_blocked"),
    "/admin/kick": ("POST", "_kick"),
    "/admin/block": ("POST", "_block"),
    "/admin/unblock": ("POST", "_unblock"),
    "/admin/broadcast": ("POST", "_broadcast"),
}


class AdminApi:
    """HTTP handlers for ``/admin/*`` (register :meth:`routes` on the port)."""

    def __init__(
        self,
        token: str,
        ops: AdminOps,
        sources: AdminSources,
        metrics: ImMetrics,
        now: Callable[[], float] | None = None,
    ) -> None:
        if not token:
            raise ValueError("the admin API needs a token")
        self._digest = hashlib.sha256(token.encode()).digest()
        self.ops = ops
        self.sources = sources
        self._now = now or (lambda: asyncio.get_running_loop().time())
        self._failures: TokenBucket | None = None
        self._locked_until = 0.0
        self._requests = metrics.set.counter(
            "timnode_admin_requests_total", "Admin API requests by route and HTTP status", ["route", "status"]
        )
        self._auth_failures = metrics.set.counter(
            "timnode_admin_auth_failures_total", "Admin API requests with a wrong token"
        )()

    def routes(self) -> dict[str, Callable[[Request], Awaitable[HttpReply]]]:
        return {path: self._bind(path) for path in ROUTES}

    def _bind(self, path: str) -> Callable[[Request], Awaitable[HttpReply]]:
        async def handle(request: Request) -> HttpReply:
            reply = await self.handle(path, request)
            self._requests(path.removeprefix("/admin/"), str(reply.status)).inc()
            return reply

        return handle

    # ------------------------------------------------------------------ request path

    async def handle(self, path: str, request: Request) -> HttpReply:
        method, name = ROUTES[path]
        refusal = self._authenticate(request)
        if refusal is not None:
            return refusal
        if request.method != method:
            return _error(405, f"use {method}", (("Allow", method),))
        try:
            params = _params(request.path)
            doc = await getattr(self, name)(params)
        except _BadRequest as exc:
            return _error(exc.status, exc.message)
        except ImError as exc:
            return _error(404 if exc.message == "no such user" else 400, exc.message)
        except ValueError as exc:
            return _error(400, str(exc))
        return json_reply(doc)

    def authenticate(self, request: Request) -> HttpReply | None:
        """None when ``request`` carries the admin token, else the 401/429 reply (routes outside
        this class, ``timnode/store_admin.py``, share the token and the wrong-token bucket)."""
        return self._authenticate(request)

    def _authenticate(self, request: Request) -> HttpReply | None:
        now = self._now()
        if now < self._locked_until:
            return _too_many(self._locked_until - now)
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if not header or scheme.lower() != "bearer":
            return _error(401, "admin token required", (("WWW-Authenticate", 'Bearer realm="timnode-admin"'),))
        if hmac.compare_digest(hashlib.sha256(presented.strip().encode()).digest(), self._digest):
            return None
        self._auth_failures.inc()
        if self._failures is None:
            self._failures = TokenBucket(FAILURE_RATE, FAILURE_BURST, now)
        wait = self._failures.take(now)
        if wait > 0:
            self._locked_until = now + wait
            log.warning("admin API: too many wrong tokens; refusing admin requests for %.1f s", wait)
            return _too_many(wait)
        log.info("admin API: wrong token")
        return _error(401, "wrong admin token", (("WWW-Authenticate", 'Bearer error="invalid_token"'),))

    # ------------------------------------------------------------------ reads

    async def _status(self, params: dict[str, str]) -> Doc:
        return await _resolve(self.sources.status)

    async def _peers(self, params: dict[str, str]) -> Doc:
        return await _resolve(self.sources.peers)

    async def _dht(self, params: dict[str, str]) -> Doc:
        return await _resolve(self.sources.dht)

    async def _sessions(self, params: dict[str, str]) -> Doc:
        users = self.ops.sessions()
        return {"users": users, "online_users": len(users), "sessions": sum(len(u["devices"]) for u in users)}

    async def _store(self, params: dict[str, str]) -> Doc:
        doc = await _resolve(self.sources.store)
        doc["blocked_accounts"] = len(await self.ops.blocked())
        return doc

    async def _blocked(self, params: dict[str, str]) -> Doc:
        return {"blocked": await self.ops.blocked()}

    # ------------------------------------------------------------------ mutations

    async def _kick(self, params: dict[str, str]) -> Doc:
        user = _required(params, "user")
        device = params.get("device", "")
        return {"user": user, "device": device, "kicked": self.ops.kick(user, device)}

    async def _block(self, params: dict[str, str]) -> Doc:
        return await self.ops.block(_required(params, "user"), params.get("reason", ""))

    async def _unblock(self, params: dict[str, str]) -> Doc:
        return await self.ops.unblock(_required(params, "user"))

    async def _broadcast(self, params: dict[str, str]) -> Doc:
        text = _required(params, "text")
        result = await self.ops.broadcast(text, params.get("to", "") or "node")
        return result.as_dict()


async def _resolve(source: Source) -> Doc:
    value = source()
    if inspect.isawaitable(value):
        value = await value
    assert isinstance(value, dict)
    return dict(value)


def _params(path: str) -> dict[str, str]:
    query = urlsplit(path).query
    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=False, max_num_fields=20)
    except ValueError as exc:
        raise _BadRequest(400, f"bad query string: {exc}") from None
    return {key: values[-1][:_MAX_PARAM] for key, values in parsed.items()}


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name, "")
    if not value:
        raise _BadRequest(400, f"parameter {name!r} is required (in the query string)")
    return value


def _error(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> HttpReply:
    reply = json_reply({"error": message}, status)
    return HttpReply(reply.status, reply.body, reply.content_type, headers)


def _too_many(wait: float) -> HttpReply:
    seconds = max(1, int(wait + 0.999))
    return _error(429, "too many wrong admin tokens; retry later", (("Retry-After", str(seconds)),))
