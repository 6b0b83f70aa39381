"""LAN discovery with mDNS / DNS-SD (RFC 6762, RFC 6763) through python-zeroconf's asyncio API.

Each node registers ``<PeerId>._timnode._tcp.local.`` with TXT records (RFC 6763 §6):

- ``id``: the PeerId (base58);
- ``net``: 16 hex digits of ``sha256("timnode mdns v1" || network_id(key))``, a commitment to the
  network (never the key, ``node/netkey.py``), so nodes of other networks are ignored without
  a dial;
- ``addrs``: up to three ``ws://host:port`` listen addresses, comma-separated.

It browses the same type; every other node of the same network is handed to
``on_found(peer, addrs)`` (the link manager dials it, proving its PeerId). Its own
advertisement is recognised by the PeerId and skipped. TXT content is peer-controlled: it is
parsed defensively and bad records are dropped with a debug line.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
from collections.abc import Callable

import ifaddr
from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from node import netkey
from node.errors import DecodeError
from node.identity import PeerId
from node.peerstore import dialable_addrs, format_addr

__all__ = ["SERVICE_TYPE", "MdnsDiscovery", "network_tag"]

log = logging.getLogger(__name__)

SERVICE_TYPE = "_timnode._tcp.local."
RESOLVE_TIMEOUT_MS = 3000
MAX_RESOLVING = 32  # bound on concurrent lookups triggered by (peer-controlled) announcements

FoundCallback = Callable[[PeerId, tuple[str, ...]], None]


def network_tag(key: bytes) -> str:
    """The ``net`` TXT value: a non-secret commitment to the network key."""
    return hashlib.sha256(b"timnode mdns v1" + netkey.network_id(key)).hexdigest()[:16]


def local_ipv4() -> list[str]:
    """Non-loopback IPv4 addresses of this host (for listening on 0.0.0.0)."""
    out = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ipaddress.ip_address(ip.ip).is_loopback:
                out.append(ip.ip)
    return out


class MdnsDiscovery:
    """Advertise this node and report other nodes of the same network on the LAN."""

    def __init__(
        self,
        peer: PeerId,
        network_key: bytes,
        host: str,
        port: int,
        listen_addrs: tuple[str, ...],
        on_found: FoundCallback,
    ) -> None:
        self.peer = peer
        self.tag = network_tag(network_key)
        self.port = port
        specific = host not in ("", "0.0.0.0")
        self.ips = [host] if specific else local_ipv4()
        self.interfaces: list[str] | InterfaceChoice = [host] if specific else InterfaceChoice.All
        self.listen_addrs = listen_addrs or tuple(format_addr(ip, port) for ip in self.ips)
        self.on_found = on_found
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._zc = AsyncZeroconf(interfaces=self.interfaces, ip_version=IPVersion.V4Only)
        name = str(self.peer)
        info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"{name}.{SERVICE_TYPE}",
            port=self.port,
            properties={"id": name, "net": self.tag, "addrs": ",".join(self.listen_addrs[:3])},
            parsed_addresses=self.ips,
            server=f"{name}.local.",
        )
        await self._zc.async_register_service(info)
        self._browser = AsyncServiceBrowser(self._zc.zeroconf, SERVICE_TYPE, handlers=[self._on_change])
        log.info("mDNS: advertising %s on %s", SERVICE_TYPE, ", ".join(self.ips) or "all interfaces")

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._browser is not None:
            await self._browser.async_cancel()
        if self._zc is not None:
            await self._zc.async_unregister_all_services()
            await self._zc.async_close()
        self._zc = self._browser = None

    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Removed or name.startswith(f"{self.peer}."):
            return
        if len(self._tasks) >= MAX_RESOLVING:
            log.debug("mDNS: too many lookups in flight, dropping %s", name)
            return
        task = asyncio.ensure_future(self._resolve(service_type, name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, service_type: str, name: str) -> None:
        assert self._zc is not None
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(self._zc.zeroconf, RESOLVE_TIMEOUT_MS):
            log.debug("mDNS: %s did not resolve", name)
            return
        found = self.parse(info)
        if found is not None:
            self.on_found(*found)

    def parse(self, info: AsyncServiceInfo) -> tuple[PeerId, tuple[str, ...]] | None:
        """(PeerId, dialable addresses) of an advertisement of another node of our network."""
        props = {k.decode(errors="replace"): (v or b"").decode(errors="replace") for k, v in info.properties.items()}
        if props.get("net") != self.tag:
            log.debug("mDNS: %s belongs to another network, ignored", info.name)
            return None
        try:
            peer = PeerId.from_base58(props.get("id", ""))
        except DecodeError:
            log.debug("mDNS: %s carries no valid PeerId", info.name)
            return None
        if peer == self.peer:
            return None
        seen = info.parsed_addresses(IPVersion.V4Only)
        listed = [a for a in props.get("addrs", "").split(",") if a][:3]
        addrs = dialable_addrs(listed + [format_addr(ip, info.port or 0) for ip in seen], seen[0] if seen else "")
        return (peer, addrs) if addrs else None
