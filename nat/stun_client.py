"""STUN client transactions over UDP (RFC 5389 §7.2.1): sans-I/O, the caller owns time.

A ``StunTransaction`` sends a Binding request at ``now``, retransmits after RTO, 2·RTO,
4·RTO... (``rc`` sends in all) and fails ``rm``·RTO after the last send. Defaults are the RFC's
(RTO 0.5 s, Rc 7, Rm 16: sends at 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s, timeout at 39.5 s);
timnode uses shorter ones for peer probes.

Contract (STYLE §3.2): ``start(now)``; then after ``receive_datagram()`` or ``handle_timer()``
send everything from ``datagrams_to_send()`` and read ``result`` / ``error``; re-arm one timer
from ``get_timer()`` (``None`` once finished). Bad or unrelated datagrams are ignored.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from nat.stun import Address, StunClass, StunDecodeError, StunMessage, binding_request, decode_message, encode_message

__all__ = ["StunConfig", "StunTimeout", "StunTransaction"]


class StunTimeout(TimeoutError):
    """No STUN response after all retransmissions."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StunConfig:
    rto: float = 0.5
    rc: int = 7
    rm: int = 16


class StunTransaction:
    """One Binding request to ``server`` and its retransmissions."""

    def __init__(self, server: Address, rng: random.Random, config: StunConfig | None = None) -> None:
        self.server = server
        self.config = config or StunConfig()
        self.transaction_id = rng.randbytes(12)
        self.request = encode_message(binding_request(self.transaction_id))
        self.result: Address | None = None
        self.error: Exception | None = None
        self._sends = 0
        self._timer: float | None = None
        self._interval = self.config.rto
        self._out: list[tuple[bytes, Address]] = []

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None

    def start(self, now: float) -> None:
        self._send(now)

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        return None if self.done else self._timer

    def handle_timer(self, now: float) -> None:
        if self.done or self._timer is None or now < self._timer:
            return
        if self._sends >= self.config.rc:
            self.error = StunTimeout(f"no STUN answer from {self.server[0]}:{self.server[1]}")
            self._timer = None
            return
        self._send(now)

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> bool:
        """Feed a datagram; True if it answered this transaction (success or error)."""
        if self.done:
            return False
        try:
            msg = decode_message(data)
        except StunDecodeError:
            return False
        if msg.transaction_id != self.transaction_id or msg.message_class not in (StunClass.SUCCESS, StunClass.ERROR):
            return False
        self._finish(msg)
        return True

    def _finish(self, msg: StunMessage) -> None:
        self._timer = None
        address = msg.xor_mapped_address or msg.mapped_address
        if msg.message_class == StunClass.SUCCESS and address is not None:
            self.result = address
        else:
            code = msg.error_code or (0, "no mapped address")
            self.error = ValueError(f"STUN error {code[0]} {code[1]}")

    def _send(self, now: float) -> None:
        self._out.append((self.request, self.server))
        self._sends += 1
        if self._sends >= self.config.rc:
            self._timer = now + self.config.rm * self.config.rto  # RFC 5389 §7.2.1: wait Rm*RTO
        else:
            self._timer = now + self._interval
            self._interval *= 2
