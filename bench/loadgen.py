"""The chat load generator that runs inside each worker process (see :mod:`bench.pool`).

Each pair is a sender connection and a receiver connection, two users. The hot
path is plain callbacks from :class:`bench.wsclient.WsClient`: an answered send
frees a window slot and, in the closed-loop phase, immediately sends the next
message; a pushed message is timed and its id queued for a batched delivery ack
(flushed at 256 ids or after 50 ms, as the SDKs do).

Timing: the sender puts ``time.monotonic_ns()`` in the first 8 bytes of the
payload; CLOCK_MONOTONIC is system-wide on Linux, so the receiver (even in another
process) subtracts it directly. A phase runs ``warmup`` seconds, then counts the
messages *received* during a ``duration`` window (ended early after ``messages``
deliveries when that cap is set), then stops sending and drains what is in flight.

Deviation from STYLE.md 3.1 (only ``aio.py`` touches asyncio): this is a harness,
not a library core; its whole job is driving sockets.
"""

from __future__ import annotations

import asyncio
import struct
import time
from dataclasses import dataclass, field

from bench.wire import DELIVERED, PUSH, REPLY, Dialect, dialect_for
from bench.wsclient import WsClient, connect

__all__ = ["Generator", "OpenResult", "PhaseResult", "PhaseSpec", "Target"]

_TS = struct.Struct(">Q")
#: delivery acks are batched as the SDKs batch them (``im/client.py``, ``web/static/client.js``)
ACK_BATCH = 256
ACK_DELAY = 0.050
PACED_MAX_OUTSTANDING = 256
PACER_TICK = 0.001


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Where to connect and which (sender, receiver) users to bring up."""

    url: str
    dialect: str  # "node" or "relay"
    pairs: tuple[tuple[str, str], ...]
    password: str = "bench-password-0"
    concurrency: int = 16  # registrations in flight (Argon2id on the node)


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseSpec:
    """One measured phase: ``window`` (closed loop, W in flight per sender) or ``paced``."""

    mode: str
    warmup: float
    duration: float
    window: int = 8
    rate: float = 0.0  # paced: messages/s for this process
    messages: int = 0  # end the window after this many deliveries (0: duration only)
    payload_size: int = 64
    drain: float = 5.0


@dataclass(slots=True, kw_only=True)
class OpenResult:
    """Outcome of bringing up the pairs of a :class:`Target`."""

    pairs: int
    errors: int
    seconds: float
    first_error: str = ""


@dataclass(slots=True, kw_only=True)
class PhaseResult:
    """What one process measured in one phase."""

    delivered: int = 0
    window_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    sent: int = 0
    acked: int = 0
    pushes: int = 0
    receipts: int = 0
    errors: int = 0
    skipped: int = 0
    undrained: int = 0
    cpu_s: float = 0.0  # this generator process, whole phase


class PhaseStats:
    """Live counters of the running phase; the hot path writes here."""

    def __init__(self, spec: PhaseSpec, start: float) -> None:
        self.spec = spec
        self.window_start = start + spec.warmup
        self.window_end = self.window_start + spec.duration
        self.sending = True
        self.closed_loop = spec.mode == "window"
        self.result = PhaseResult()

    def record_push(self, payload: bytes) -> None:
        """Time one pushed message and count it if inside the window."""
        now_ns = time.monotonic_ns()
        now = now_ns / 1e9
        self.result.pushes += 1
        if self.window_start <= now < self.window_end and len(payload) >= 8:
            res = self.result
            res.delivered += 1
            res.latencies_ms.append((now_ns - _TS.unpack_from(payload)[0]) / 1e6)
            if res.delivered == self.spec.messages:
                self.window_end = now

    def in_window(self, now: float) -> bool:
        """True while ``now`` is inside the measured window."""
        return self.window_start <= now < self.window_end


class PairLink:
    """One sender/receiver pair and its two connections."""

    def __init__(self, gen: Generator, sender: str, receiver: str) -> None:
        self.gen = gen
        self.sender = sender
        self.receiver = receiver
        self.a: WsClient | None = None
        self.b: WsClient | None = None
        self.a_req = 0
        self.b_req = 0
        self.outstanding = 0
        self.waiters: dict[tuple[str, int], asyncio.Future[int]] = {}
        self.pending_ids: list[int] = []
        self.ack_timer: asyncio.TimerHandle | None = None

    async def open(self, target: Target) -> None:
        """Connect and register both users.

        Raises:
            RuntimeError: the server answered the registration with an error.
        """
        dialect = self.gen.dialect
        self.a = await connect(target.url, self.on_sender_frame, dialect.subprotocol)
        await self._hello(self.a, "a", self.sender, target.password)
        self.b = await connect(target.url, self.on_receiver_frame, dialect.subprotocol)
        await self._hello(self.b, "b", self.receiver, target.password)

    async def _hello(self, conn: WsClient, side: str, user: str, password: str) -> None:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiters[(side, 1)] = future
        if side == "a":
            self.a_req = 1
        else:
            self.b_req = 1
        conn.send(self.gen.dialect.hello(1, user, password))
        code = await asyncio.wait_for(future, 30.0)
        if code:
            raise RuntimeError(f"register {user}: error {code}")

    def send_one(self) -> None:
        """Send one timestamped message to the partner."""
        assert self.a is not None
        self.a_req += 1
        payload = _TS.pack(time.monotonic_ns()) + self.gen.padding
        self.a.send(self.gen.dialect.send(self.a_req, self.receiver, payload, str(self.a_req)))
        self.outstanding += 1
        self.gen.stats.result.sent += 1

    def on_sender_frame(self, frame: bytes) -> None:
        """Sender side: send answers free the window; Delivered pushes are counted."""
        kind, number, value = self.gen.dialect.decode(frame)
        stats = self.gen.stats
        if kind == REPLY:
            waiter = self.waiters.pop(("a", number), None) if self.waiters else None
            if waiter is not None:
                waiter.set_result(int(value))
                return
            self.outstanding -= 1
            stats.result.acked += 1
            if value:
                stats.result.errors += 1
            if stats.closed_loop and stats.sending:
                self.send_one()
        elif kind == DELIVERED:
            stats.result.receipts += int(value)

    def on_receiver_frame(self, frame: bytes) -> None:
        """Receiver side: time pushes, batch their delivery acks."""
        kind, number, value = self.gen.dialect.decode(frame)
        if kind == PUSH:
            self.gen.stats.record_push(value)
            self.pending_ids.append(number)
            if len(self.pending_ids) >= ACK_BATCH:
                self.flush_acks()
            elif self.ack_timer is None:
                self.ack_timer = asyncio.get_running_loop().call_later(ACK_DELAY, self.flush_acks)
        elif kind == REPLY:
            waiter = self.waiters.pop(("b", number), None) if self.waiters else None
            if waiter is not None:
                waiter.set_result(int(value))
            elif value:
                self.gen.stats.result.errors += 1

    def flush_acks(self) -> None:
        """Send one delivery ack for every id received since the last one."""
        if self.ack_timer is not None:
            self.ack_timer.cancel()
            self.ack_timer = None
        if not self.pending_ids or self.b is None:
            return
        ids, self.pending_ids = self.pending_ids, []
        self.b_req += 1
        self.b.send(self.gen.dialect.delivery_ack(self.b_req, self.sender, ids))

    async def close(self) -> None:
        """Close both connections."""
        for conn in (self.a, self.b):
            if conn is not None:
                await conn.close()


class Generator:
    """All pairs of one worker process and the phases run over them."""

    def __init__(self) -> None:
        self.dialect: Dialect = dialect_for("relay")
        self.links: list[PairLink] = []
        self.padding = b""
        self.stats = PhaseStats(PhaseSpec(mode="idle", warmup=0.0, duration=0.0), 0.0)
        self.stats.sending = False

    async def open(self, target: Target) -> OpenResult:
        """Connect and register every pair, ``target.concurrency`` at a time."""
        start = time.monotonic()
        self.dialect = dialect_for(target.dialect)
        gate = asyncio.Semaphore(max(1, target.concurrency))
        links = [PairLink(self, a, b) for a, b in target.pairs]
        outcomes = await asyncio.gather(*(self._open_one(link, target, gate) for link in links))
        errors = [text for text in outcomes if text]
        self.links = [link for link, text in zip(links, outcomes, strict=True) if not text]
        first = errors[0] if errors else ""
        seconds = time.monotonic() - start
        return OpenResult(pairs=len(self.links), errors=len(errors), seconds=seconds, first_error=first)

    async def _open_one(self, link: PairLink, target: Target, gate: asyncio.Semaphore) -> str:
        async with gate:
            try:
                await link.open(target)
            except Exception as exc:  # refused handshakes, errors, timeouts: report, don't crash the worker
                await link.close()
                return f"{type(exc).__name__}: {exc}"
        return ""

    async def run_phase(self, spec: PhaseSpec) -> PhaseResult:
        """Run one phase over all open pairs and return its measurements."""
        self.padding = b"x" * max(0, spec.payload_size - _TS.size)
        cpu_start = time.process_time()
        stats = self.stats = PhaseStats(spec, time.monotonic())
        if not self.links:
            return stats.result
        if stats.closed_loop:
            for link in self.links:
                for _ in range(spec.window):
                    link.send_one()
            await self._wait_window(stats)
        else:
            await self._pace(stats, spec.rate)
        stats.sending = False
        await self._drain(spec.drain)
        stats.result.cpu_s = time.process_time() - cpu_start
        return self._finish(stats)

    async def _wait_window(self, stats: PhaseStats) -> None:
        while time.monotonic() < stats.window_end:
            await asyncio.sleep(min(0.05, max(0.0, stats.window_end - time.monotonic())))

    async def _pace(self, stats: PhaseStats, rate: float) -> None:
        """Open loop: one send every 1/rate s, round-robin over the senders."""
        interval = 1.0 / max(rate, 1e-3)
        links, count = self.links, len(self.links)
        due, turn = time.monotonic(), 0
        while True:
            now = time.monotonic()
            if now >= stats.window_end:
                return
            while due <= now:
                link = links[turn % count]
                turn += 1
                if link.outstanding >= PACED_MAX_OUTSTANDING:
                    stats.result.skipped += 1
                else:
                    link.send_one()
                    if stats.in_window(now):
                        stats.result.lag_ms.append((time.monotonic() - due) * 1e3)
                due += interval
            # >= 1 ms: loops round shorter timers down to 0 and the pacer would spin, taking
            # CPU from the server; whatever fell due meanwhile goes out at the next wake-up
            await asyncio.sleep(max(PACER_TICK, due - time.monotonic()))

    async def _drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(link.outstanding for link in self.links):
            await asyncio.sleep(0.01)
        await asyncio.sleep(ACK_DELAY * 2)
        for link in self.links:
            link.flush_acks()
        await asyncio.sleep(0.05)

    def _finish(self, stats: PhaseStats) -> PhaseResult:
        res = stats.result
        res.window_s = max(0.0, min(stats.window_end, time.monotonic()) - stats.window_start)
        res.undrained = sum(link.outstanding for link in self.links)
        lost = sum(1 for link in self.links if not (link.a and link.a.is_open and link.b and link.b.is_open))
        res.errors += lost
        return res

    async def close(self) -> int:
        """Close every connection; returns how many pairs were closed."""
        count = len(self.links)
        await asyncio.gather(*(link.close() for link in self.links))
        self.links = []
        return count
