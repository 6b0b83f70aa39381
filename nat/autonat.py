"""Reachability (AutoNAT-style dial-back) and NAT mapping behaviour: the sans-I/O core.

Protocol ``/timnode/autonat/1`` over an existing peer link (libp2p AutoNAT v1, simplified):
the asker sends ``DialBackRequest(port)``; the peer dials ``ws://<the asker's address as the
peer sees it>:<port>`` (never any other host: no amplification towards third parties), runs
the full timnode handshake proving the asker's PeerId (a Identify agent ending in ``+probe`` so
the asker does not keep it as a link), closes it and answers ``DialBackResponse(ok, error)``.

``Reachability`` collects answers: **public** after ``confirmations`` (2) successes from
different peers, **private** after ``confirmations`` failures and no success, else
``unknown``. Results expire after ``ttl`` seconds so a changed network is noticed.

Mapping behaviour (RFC 4787 §4.1, RFC 5780 §4.3): the node sends STUN Binding requests from its
one UDP port to two peers at different addresses; the same mapped address and port for both
means **endpoint-independent** (cone NATs, or no NAT), different ones mean
**endpoint-dependent** (symmetric NAT: hole punching to another endpoint-dependent or
port-restricted peer cannot work, the link stays relayed). ``no-nat`` when the mapped
address is one of our own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from nat.stun import Address

__all__ = [
    "AUTONAT_PROTOCOL",
    "DialBackRequest",
    "DialBackResponse",
    "MappingObservations",
    "Reachability",
    "ReachabilityConfig",
    "decode_json",
]

AUTONAT_PROTOCOL = "/timnode/autonat/1"

PUBLIC, PRIVATE, UNKNOWN = "public", "private", "unknown"
EIM, EDM, NO_NAT = "endpoint-independent", "endpoint-dependent", "no-nat"


class NatDecodeError(ValueError):
    """A nat protocol message that does not decode."""


def decode_json(data: bytes, keys: dict[str, type | tuple[type, ...]]) -> dict[str, object]:
    """A JSON object with exactly typed ``keys`` (missing ones absent); raises ``NatDecodeError``."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NatDecodeError("not JSON") from exc
    if not isinstance(obj, dict):
        raise NatDecodeError("not a JSON object")
    out: dict[str, object] = {}
    for key, kind in keys.items():
        if key in obj:
            if not isinstance(obj[key], kind) or isinstance(obj[key], bool) and kind is int:
                raise NatDecodeError(f"{key} has the wrong type")
            out[key] = obj[key]
    return out


@dataclass(frozen=True, slots=True)
class DialBackRequest:
    port: int

    def encode(self) -> bytes:
        return json.dumps({"port": self.port}).encode()

    @classmethod
    def decode(cls, data: bytes) -> DialBackRequest:
        port = decode_json(data, {"port": int}).get("port")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise NatDecodeError("port out of range")
        return cls(port)


@dataclass(frozen=True, slots=True)
class DialBackResponse:
    ok: bool
    error: str = ""
    observed: str = ""  # host the dialler used

    def encode(self) -> bytes:
        return json.dumps({"ok": self.ok, "error": self.error, "observed": self.observed}).encode()

    @classmethod
    def decode(cls, data: bytes) -> DialBackResponse:
        obj = decode_json(data, {"ok": bool, "error": str, "observed": str})
        if "ok" not in obj:
            raise NatDecodeError("no ok")
        return cls(bool(obj["ok"]), str(obj.get("error", ""))[:200], str(obj.get("observed", ""))[:100])


@dataclass(frozen=True, slots=True, kw_only=True)
class ReachabilityConfig:
    confirmations: int = 2
    ttl: float = 600.0


@dataclass(slots=True)
class Reachability:
    """Dial-back answers per peer (key: peer text) -> public / private / unknown."""

    config: ReachabilityConfig = field(default_factory=ReachabilityConfig)
    answers: dict[str, tuple[bool, float]] = field(default_factory=dict)

    def record(self, peer: str, ok: bool, now: float) -> None:
        self.answers[peer] = (ok, now)
        if len(self.answers) > 64:  # bounded: keep the newest
            oldest = min(self.answers, key=lambda k: self.answers[k][1])
            del self.answers[oldest]

    def status(self, now: float) -> str:
        fresh = [ok for ok, at in self.answers.values() if now - at <= self.config.ttl]
        successes = sum(fresh)
        if successes >= self.config.confirmations:
            return PUBLIC
        if successes == 0 and len(fresh) >= self.config.confirmations:
            return PRIVATE
        return UNKNOWN

    def counts(self, now: float) -> tuple[int, int]:
        fresh = [ok for ok, at in self.answers.values() if now - at <= self.config.ttl]
        return sum(fresh), len(fresh) - sum(fresh)


@dataclass(slots=True)
class MappingObservations:
    """STUN answers: server address -> our mapped address as that server saw it."""

    local_hosts: set[str] = field(default_factory=set)
    mapped: dict[Address, Address] = field(default_factory=dict)

    def record(self, server: Address, mapped: Address) -> None:
        self.mapped[server] = mapped
        if len(self.mapped) > 16:
            del self.mapped[next(iter(self.mapped))]

    def behaviour(self) -> str:
        """``unknown`` until two servers at different IPs answered."""
        by_ip = {server[0]: mapped for server, mapped in self.mapped.items()}
        if not by_ip:
            return UNKNOWN
        if all(m[0] in self.local_hosts for m in by_ip.values()):
            return NO_NAT if len(by_ip) >= 1 else UNKNOWN
        if len(by_ip) < 2:
            return UNKNOWN
        return EIM if len(set(by_ip.values())) == 1 else EDM

    def public_address(self) -> Address | None:
        for mapped in self.mapped.values():
            return mapped
        return None
