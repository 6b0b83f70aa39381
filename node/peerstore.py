"""Known peers, their addresses and when to dial them: the link manager's sans-I/O core.

``PeerBook`` never reads a clock or touches a socket (STYLE §3.2/3.3): every method that
depends on time takes ``now`` (seconds, the caller's monotonic clock), randomness comes from
an injected ``random.Random``. The asyncio adapter (``node/manager.py``) asks ``due(now)``
for dial targets, reports ``dial_failed`` / ``link_up`` / ``link_down``, and re-arms one timer
from ``get_timer()``.

Two kinds of entries:

- *bootstrap* addresses (``--bootstrap host:port[/p2p/<PeerId>]``): pinned, never forgotten,
  dialled whenever the peer behind them is not linked;
- *peers* learned from peer exchange, mDNS, inbound links or upper layers: dialled while not
  linked, with full-jitter exponential backoff (AWS "Exponential Backoff and Jitter":
  ``sleep = uniform(0, min(cap, base * 2**failures))``), forgotten after ``forget_after``
  seconds without a link or a fresh sighting.

Addresses are ``ws://host:port`` URLs (the transport is the scheme). ``parse_addr`` reads the
user forms; ``dialable_addrs`` turns a peer's advertised listen addresses into ones we can
dial, replacing an unspecified host (``0.0.0.0``) with the address the link came from.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from node.errors import DecodeError
from node.identity import PeerId

__all__ = [
    "BackoffConfig",
    "DialTarget",
    "PeerBook",
    "PeerRecord",
    "dialable_addrs",
    "format_addr",
    "parse_addr",
    "split_host_port",
]

MAX_ADDRS_PER_PEER = 8  # bounded: addresses come from peers (pex) and the LAN (mDNS)
_UNSPECIFIED = ("", "0.0.0.0", "::")


def split_host_port(text: str) -> tuple[str, int]:
    """``host:port`` / ``[v6]:port`` -> (host, port). Raises ``DecodeError``."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise DecodeError(f"not HOST:PORT: {text!r}")
    return host.strip("[]"), int(port)


def format_addr(host: str, port: int) -> str:
    """``ws://host:port`` (IPv6 hosts bracketed)."""
    return f"ws://[{host}]:{port}" if ":" in host else f"ws://{host}:{port}"


def parse_addr(text: str) -> tuple[str, PeerId | None]:
    """Parse ``host:port``, ``ws://host:port``, either with ``/p2p/<PeerId>``.

    Returns:
        (``ws://host:port``, the expected PeerId or None).

    Raises:
        DecodeError: not an address, or a PeerId that does not decode.
    """
    text = text.strip()
    body, sep, peer_text = text.partition("/p2p/")
    peer = PeerId.from_base58(peer_text.strip("/")) if sep else None
    body = body.removeprefix("ws://").rstrip("/")
    host, port = split_host_port(body)
    return format_addr(host, port), peer


def dialable_addrs(listen_addrs: Iterable[str], remote_host: str = "") -> tuple[str, ...]:
    """A peer's advertised ``listen_addrs`` made dialable: unspecified hosts become ``remote_host``.

    Malformed entries are dropped (they come from the peer); at most ``MAX_ADDRS_PER_PEER``.
    """
    out: list[str] = []
    for text in listen_addrs:
        try:
            url, _ = parse_addr(text)
            host, port = split_host_port(url.removeprefix("ws://"))
        except DecodeError:
            continue
        if host in _UNSPECIFIED:
            if not remote_host:
                continue
            url = format_addr(remote_host, port)
        if url not in out:
            out.append(url)
    return tuple(out[:MAX_ADDRS_PER_PEER])


@dataclass(frozen=True, slots=True, kw_only=True)
class BackoffConfig:
    base: float = 0.5  # first retry within [0, 2 * base)
    cap: float = 30.0
    forget_after: float = 600.0  # a peer neither linked nor seen this long is dropped
    stable_after: float = 5.0  # a link that lived less than this counts as a failed dial (flapping)
    max_peers: int = 1000  # bound on learned peers (peer-controlled input)


@dataclass(frozen=True, slots=True)
class DialTarget:
    """Dial ``url``, proving ``expected`` if set. ``key`` names the book entry for feedback."""

    key: str
    url: str
    expected: PeerId | None


@dataclass(slots=True)
class PeerRecord:
    peer: PeerId
    addrs: list[str] = field(default_factory=list)
    source: str = ""
    last_seen: float = 0.0
    linked: bool = False
    linked_at: float = 0.0
    failures: int = 0
    next_dial_at: float = 0.0


@dataclass(slots=True)
class _Bootstrap:
    url: str
    expected: PeerId | None
    learned: PeerId | None = None
    failures: int = 0
    next_dial_at: float = 0.0


class PeerBook:
    """Known peers and bootstrap addresses with dial backoff (sans-I/O, see module docstring)."""

    def __init__(self, local: PeerId, config: BackoffConfig | None = None, rng: random.Random | None = None) -> None:
        self.local = local
        self.config = config or BackoffConfig()
        self.rng = rng or random.Random()
        self._peers: dict[PeerId, PeerRecord] = {}
        self._boot: dict[str, _Bootstrap] = {}

    # -- input ------------------------------------------------------------------------------------

    def add_bootstrap(self, url: str, expected: PeerId | None = None) -> None:
        self._boot.setdefault(url, _Bootstrap(url, expected))

    def learn(self, peer: PeerId, addrs: Iterable[str], now: float, source: str) -> bool:
        """Record addresses for ``peer``; return True if the peer is new. Ignores ourselves."""
        if peer == self.local:
            return False
        record = self._peers.get(peer)
        new = record is None
        if record is None:
            if len(self._peers) >= self.config.max_peers and not self._evict(now):
                return False
            record = self._peers[peer] = PeerRecord(peer, source=source, next_dial_at=now)
        fresh = [url for url in dict.fromkeys(addrs) if url not in record.addrs]
        record.addrs[:0] = fresh  # newest first
        del record.addrs[MAX_ADDRS_PER_PEER:]
        record.last_seen = now
        return new

    def link_up(self, peer: PeerId, addrs: Iterable[str], now: float, via: str = "") -> None:
        """A link to ``peer`` is up (``via``: the URL we dialled, if outbound)."""
        self.learn(peer, addrs, now, "link")
        record = self._peers.get(peer)
        if record is not None:
            record.linked, record.linked_at = True, now
        boot = self._boot.get(via)
        if boot is not None:
            boot.learned = peer

    def link_down(self, peer: PeerId, now: float) -> None:
        """The link to ``peer`` is gone: schedule a reconnect (and its bootstrap entry's).

        A link that was up at least ``stable_after`` seconds resets the failure count; a shorter
        one (the peer refused it: too many links, shutting down) counts as a failure, so a
        peer that keeps refusing is redialled with growing backoff rather than in a loop.
        """
        record = self._peers.get(peer)
        stable = record is not None and now - record.linked_at >= self.config.stable_after
        entries: list[PeerRecord | _Bootstrap] = [b for b in self._boot.values() if b.learned == peer]
        if record is not None:
            record.linked, record.last_seen = False, now
            entries.append(record)
        for entry in entries:
            entry.failures = 0 if stable else entry.failures + 1
            entry.next_dial_at = now + self._backoff(entry.failures)

    def dial_failed(self, key: str, now: float) -> int:
        """A dial of ``key`` (a ``DialTarget.key``) failed; return its failure count."""
        entry: PeerRecord | _Bootstrap | None = self._boot.get(key) or self._by_key(key)
        if entry is None:
            return 0
        entry.failures += 1
        entry.next_dial_at = now + self._backoff(entry.failures)
        if isinstance(entry, PeerRecord) and entry.addrs:
            entry.addrs.append(entry.addrs.pop(0))  # try the next address next time
        return entry.failures

    def is_self(self, key: str) -> None:
        """The entry ``key`` turned out to be this node: never dial it again."""
        self._boot.pop(key, None)

    def forget(self, peer: PeerId) -> None:
        self._peers.pop(peer, None)

    # -- output -----------------------------------------------------------------------------------

    def due(self, now: float, linked: set[PeerId]) -> list[DialTarget]:
        """Entries to dial now: not linked, backoff expired. Bootstrap entries first."""
        out: list[DialTarget] = []
        for boot in self._boot.values():
            peer = boot.learned or boot.expected
            if peer not in linked and boot.next_dial_at <= now:
                out.append(DialTarget(boot.url, boot.url, boot.expected))
        boot_peers = {b.learned or b.expected for b in self._boot.values()}
        for record in list(self._peers.values()):
            if record.peer in linked or record.peer in boot_peers:
                continue
            if now - record.last_seen > self.config.forget_after:
                del self._peers[record.peer]
            elif record.addrs and record.next_dial_at <= now:
                out.append(DialTarget(record.peer.to_base58(), record.addrs[0], record.peer))
        return out

    def get_timer(self, linked: set[PeerId]) -> float | None:
        """When the next entry becomes due (None: nothing to dial)."""
        times = [b.next_dial_at for b in self._boot.values() if (b.learned or b.expected) not in linked]
        times += [r.next_dial_at for r in self._peers.values() if r.peer not in linked and r.addrs]
        return min(times, default=None)

    def get(self, peer: PeerId) -> PeerRecord | None:
        return self._peers.get(peer)

    def __len__(self) -> int:
        return len(self._peers)

    # -- internals --------------------------------------------------------------------------------

    def _backoff(self, failures: int) -> float:
        """Full jitter, with a floor of base/10 so that a burst of failures cannot spin."""
        ceiling = min(self.config.cap, self.config.base * 2 ** min(failures, 30))
        return max(self.config.base / 10, self.rng.uniform(0, ceiling))

    def _by_key(self, key: str) -> PeerRecord | None:
        try:
            return self._peers.get(PeerId.from_base58(key))
        except DecodeError:
            return None

    def _evict(self, now: float) -> bool:
        """Drop the stalest unlinked peer to make room; False if all are linked."""
        candidates = [r for r in self._peers.values() if not r.linked]
        if not candidates:
            return False
        del self._peers[min(candidates, key=lambda r: r.last_seen).peer]
        return True
