"""Request/response matching and timeouts for DHT RPCs (sans-I/O).

Links are reliable and ordered, so there is no retransmission: a request either gets its
response, fails (the transport reports ``request_failed``: no link, link closed), or times
out after ``timeout`` seconds. Ids are random 64-bit numbers from the injected ``rng``.

Contract: ``send_request()`` / ``send_response()`` queue commands; the owner drains them with
``commands_to_send()``; ``match()`` pairs an incoming response with its pending request;
``expire(now)`` returns the requests whose deadline passed; ``get_timer()`` is the earliest
deadline. Nothing here reads a clock.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

from dht.messages import Body, Message, encode_message

__all__ = ["Command", "PendingRequest", "RpcManager", "SendRequest", "SendResponse"]


class Command:
    """Base of what the DHT core asks its transport to do."""

    __slots__ = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SendRequest(Command):
    """Send ``data`` to ``peer`` as a request; feed the reply to ``receive_message``.

    If the transport cannot deliver it (no route, link closed), it calls
    ``DhtProtocol.request_failed(peer, request_id, now)``; otherwise the core times it out at
    ``deadline``.
    """

    peer: bytes
    request_id: int
    data: bytes
    deadline: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SendResponse(Command):
    """Send ``data`` to ``peer`` as the response to its request ``request_id``."""

    peer: bytes
    request_id: int
    data: bytes


@dataclass(slots=True, kw_only=True)
class PendingRequest:
    """A request in flight. ``owner`` is the core's tag (a lookup id, an eviction ping ...)."""

    peer: bytes
    request_id: int
    body: Body
    sent_at: float
    deadline: float
    owner: object


class RpcManager:
    """Pending requests by id; one deadline heap; an outbox of commands."""

    def __init__(self, rng: random.Random, timeout: float) -> None:
        self.rng = rng
        self.timeout = timeout
        self.pending: dict[int, PendingRequest] = {}
        self._deadlines: list[tuple[float, int]] = []
        self._outbox: list[Command] = []

    def send_request(
        self, peer: bytes, body: Body, now: float, *, owner: object, server: bool, addrs: tuple[str, ...] = ()
    ) -> PendingRequest:
        """Queue a request to ``peer``; it times out at ``now + timeout``."""
        request_id = self.rng.getrandbits(64)
        while request_id in self.pending:
            request_id = self.rng.getrandbits(64)
        deadline = now + self.timeout
        req = PendingRequest(peer=peer, request_id=request_id, body=body, sent_at=now, deadline=deadline, owner=owner)
        self.pending[request_id] = req
        heapq.heappush(self._deadlines, (deadline, request_id))
        data = encode_message(Message(request_id=request_id, server=server, sender_addrs=addrs, body=body))
        self._outbox.append(SendRequest(peer=peer, request_id=request_id, data=data, deadline=deadline))
        return req

    def send_response(
        self, peer: bytes, request_id: int, body: Body, *, server: bool, addrs: tuple[str, ...] = ()
    ) -> None:
        data = encode_message(Message(request_id=request_id, server=server, sender_addrs=addrs, body=body))
        self._outbox.append(SendResponse(peer=peer, request_id=request_id, data=data))

    def match(self, peer: bytes, request_id: int) -> PendingRequest | None:
        """Pop the pending request that ``peer``'s response ``request_id`` answers (None: stray)."""
        req = self.pending.get(request_id)
        if req is None or req.peer != peer:
            return None
        return self.pending.pop(request_id)

    def fail(self, peer: bytes, request_id: int) -> PendingRequest | None:
        """The transport could not deliver request ``request_id``; pop it."""
        return self.match(peer, request_id)

    def expire(self, now: float) -> list[PendingRequest]:
        """Pop and return every pending request whose deadline is ``<= now``."""
        expired = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, request_id = heapq.heappop(self._deadlines)
            req = self.pending.pop(request_id, None)
            if req is not None:
                expired.append(req)
        return expired

    def get_timer(self) -> float | None:
        while self._deadlines and self._deadlines[0][1] not in self.pending:
            heapq.heappop(self._deadlines)
        return self._deadlines[0][0] if self._deadlines else None

    def commands_to_send(self) -> list[Command]:
        out, self._outbox = self._outbox, []
        return out
