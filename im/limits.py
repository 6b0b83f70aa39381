"""Abuse limits, sans-I/O: a token bucket per connection, a login throttle, and the key
per-address limits count a client under.

The bucket and the throttle take ``now`` (seconds, monotonic) from the caller and never
read a clock.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["TokenBucket", "LoginThrottle", "address_key"]


class TokenBucket:
    """Classic token bucket: ``rate`` tokens/s, at most ``burst`` stored. rate <= 0: unlimited."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(max(burst, 1))
        self._tokens = self.burst
        self._at = now

    def take(self, now: float) -> float:
        """Take one token. Returns 0.0 on success, else seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


@dataclass(slots=True)
class _Failures:
    count: int
    last_at: float


class LoginThrottle:
    """Slows down repeated wrong passwords.

    After ``free`` failures for a (address, user) pair, or ``free * 4`` for a user from
    any address, the next attempt is refused until ``base * 2**(n - free)`` seconds
    (capped at ``cap``) after the last failure. A success clears the pair's count.
    Memory is bounded: the least recently failed entries are forgotten first.
    """

    def __init__(self, *, free: int = 3, base: float = 1.0, cap: float = 60.0, max_entries: int = 100_000) -> None:
        self.free = free
        self.base = base
        self.cap = cap
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], _Failures] = OrderedDict()

    def _delay(self, key: tuple[str, str], free: int, now: float) -> float:
        entry = self._entries.get(key)
        if entry is None or entry.count < free:
            return 0.0
        wait = min(self.cap, self.base * float(2 ** (entry.count - free)))
        return max(0.0, entry.last_at + wait - now)

    def retry_after(self, address: str, user: str, now: float) -> float:
        """Seconds until an attempt is allowed (0.0: allowed now)."""
        return max(self._delay((address, user), self.free, now), self._delay(("*", user), self.free * 4, now))

    def failed(self, address: str, user: str, now: float) -> None:
        for key in ((address, user), ("*", user)):
            entry = self._entries.pop(key, None) or _Failures(0, now)
            entry.count += 1
            entry.last_at = now
            self._entries[key] = entry
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def succeeded(self, address: str, user: str) -> None:
        """Clear the pair, and take back the provisional count ``attempt()`` added for the user."""
        self._entries.pop((address, user), None)
        self._take_back(("*", user))

    def withdraw(self, address: str, user: str) -> None:
        """Take back one ``attempt()`` whose password was never checked (refused, store down)."""
        self._take_back((address, user))
        self._take_back(("*", user))

    def _take_back(self, key: tuple[str, str]) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            entry.count -= 1
            if entry.count <= 0:
                del self._entries[key]

    def attempt(self, address: str, user: str, now: float) -> None:
        """Count an attempt as failed before its password is checked, so that parallel attempts
        already in flight are throttled too; ``succeeded()`` takes the count back."""
        self.failed(address, user, now)


def address_key(host: str) -> str:
    """The key the per-address limits count a client under: an IPv4 address as it is (also
    when mapped into IPv6), an IPv6 address by its /64, the smallest block a site is given
    (RFC 6177): one host holds a whole /64 and could otherwise open connections, and guess
    passwords, from as many addresses as it likes."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
