"""A NAT test bed in Linux network namespaces: hosts behind routers on one bridged "internet".

Recipe (``/work/shared/reference/nat-testbed.md``, verified): every router masquerades on its
WAN interface, forwards only ESTABLISHED/RELATED inbound, and **drops NEW inbound packets in
INPUT** (without that drop a peer's early punch packet claims the 5-tuple in conntrack and
MASQUERADE has to pick another port: the mapping stops being endpoint-independent).

| kind | mapping | filtering | rules on top of the base |
|---|---|---|---|
| ``full-cone`` | EIM | EIF | inbound UDP to the WAN address is DNATed to the host (port kept) |
| ``address-restricted`` | EIM | ADF | the same DNAT, only from addresses the host sent to (``xt_recent``) |
| ``port-restricted`` | EIM | APDF | base only (Linux conntrack) |
| ``symmetric`` | APDM | APDF | ``MASQUERADE --random-fully`` |

Names: every namespace is ``tnat-<4 hex>-<role>`` (``PREFIX``); interfaces are created inside
the namespaces (``ip -n``), never in the root namespace, so nothing touches the machine's real
interfaces. Cleanup is guaranteed three ways: ``Testbed`` is a context manager, registers an
``atexit`` hook, and ``cleanup_all()`` (``python -m testnet --cleanup``) deletes every
namespace with our prefix (after killing the processes inside them, all started by us).
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import subprocess
from dataclasses import dataclass, field

__all__ = ["NAT_KINDS", "PREFIX", "Host", "Testbed", "TestbedError", "available", "cleanup_all"]

PREFIX = "tnat-"
NAT_KINDS = ("full-cone", "address-restricted", "port-restricted", "symmetric")
INTERNET = "198.51.100"  # TEST-NET-2 (RFC 5737): the bridged "internet"


class TestbedError(RuntimeError):
    """A command that builds the test bed failed."""


def available() -> str | None:
    """``None`` if the test bed can be built here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (apt-get install iproute2 iptables)"
    return None


def _run(*cmd: str, check: bool = True) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise TestbedError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


@dataclass(slots=True)
class Host:
    """A machine on the test bed: ``ns`` to run in, ``ip`` its own address."""

    name: str
    ns: str
    ip: str
    nat: str  # "public" or one of NAT_KINDS
    router_ns: str = ""
    wan_ip: str = ""  # the router's internet address (the NAT's public address)

    def exec_prefix(self) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.ns)

    def run(self, *cmd: str, check: bool = True) -> str:
        return _run(*self.exec_prefix(), *cmd, check=check)

    def conntrack(self) -> str:
        """``conntrack -L -p udp`` in the router (the NAT's mappings), "" without a router."""
        if not self.router_ns or shutil.which("conntrack") is None:
            return ""
        return _run("ip", "netns", "exec", self.router_ns, "conntrack", "-L", "-p", "udp", check=False)


@dataclass
class Testbed:
    """Build with ``add_public()`` / ``add_nat(kind)``; ``close()`` (or ``with``) removes everything."""

    __test__ = False  # not a pytest class

    tag: str = field(default_factory=lambda: secrets.token_hex(2))
    hosts: list[Host] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    _next_public: int = 10
    _next_nat: int = 1

    def __post_init__(self) -> None:
        reason = available()
        if reason:
            raise TestbedError(reason)
        atexit.register(self.close)
        self.inet = self._netns("inet")
        _run("ip", "-n", self.inet, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", self.inet, "link", "set", "br0", "up")
        _run("ip", "-n", self.inet, "link", "set", "lo", "up")

    def _netns(self, role: str) -> str:
        name = f"{PREFIX}{self.tag}-{role}"
        _run("ip", "netns", "add", name)
        self.namespaces.append(name)
        _run("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def _plug(self, ns: str, ifname: str, ip: str) -> None:
        """A veth from ``ns`` (``ifname``, ``ip``/24) to the internet bridge."""
        port = f"p{len(self.namespaces)}"
        _run("ip", "-n", ns, "link", "add", ifname, "type", "veth", "peer", "name", port, "netns", self.inet)
        _run("ip", "-n", self.inet, "link", "set", port, "master", "br0")
        _run("ip", "-n", self.inet, "link", "set", port, "up")
        _run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", ifname)
        _run("ip", "-n", ns, "link", "set", ifname, "up")

    def add_public(self, name: str) -> Host:
        """A host directly on the internet (no NAT)."""
        ip = f"{INTERNET}.{self._next_public}"
        self._next_public += 1
        ns = self._netns(name)
        self._plug(ns, "eth0", ip)
        host = Host(name, ns, ip, "public", wan_ip=ip)
        self.hosts.append(host)
        return host

    def add_nat(self, name: str, kind: str) -> Host:
        """A host behind its own router of NAT ``kind`` (see the module table)."""
        if kind not in NAT_KINDS:
            raise ValueError(f"unknown NAT kind {kind!r}; one of {', '.join(NAT_KINDS)}")
        index = self._next_nat
        self._next_nat += 1
        wan_ip, lan = f"{INTERNET}.{100 + index}", f"10.{index}.0"
        router, ns = self._netns(f"{name}-r"), self._netns(name)
        self._plug(router, "wan", wan_ip)
        _run("ip", "-n", router, "link", "add", "lan", "type", "veth", "peer", "name", "eth0", "netns", ns)
        _run("ip", "-n", router, "addr", "add", f"{lan}.1/24", "dev", "lan")
        _run("ip", "-n", router, "link", "set", "lan", "up")
        _run("ip", "-n", ns, "addr", "add", f"{lan}.2/24", "dev", "eth0")
        _run("ip", "-n", ns, "link", "set", "eth0", "up")
        _run("ip", "-n", ns, "route", "add", "default", "via", f"{lan}.1")
        _run("ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for rule in _nat_rules(kind, f"{lan}.2"):
            _run("ip", "netns", "exec", router, "iptables", *rule)
        host = Host(name, ns, f"{lan}.2", kind, router_ns=router, wan_ip=wan_ip)
        self.hosts.append(host)
        return host

    def netem(self, delay_ms: float = 0.0, loss_pct: float = 0.0) -> str:
        """``tc netem`` delay/loss on every router's WAN interface and every public host's ``eth0``.

        Returns what was applied, or why nothing was (``tc`` missing: a note, not an error).
        Egress only, so a packet between two shaped hosts sees the delay and loss twice.
        """
        if shutil.which("tc") is None:
            return "skipped: tc not installed (apt-get install iproute2)"
        spec = ["delay", f"{delay_ms:g}ms"] if delay_ms else []
        spec += ["loss", f"{loss_pct:g}%"] if loss_pct else []
        if not spec:
            return "none"
        done: list[tuple[str, str]] = []
        for host in self.hosts:
            ns, dev = (host.router_ns, "wan") if host.router_ns else (host.ns, "eth0")
            try:
                _run("ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev, "root", "netem", *spec)
            except TestbedError as exc:  # e.g. no sch_netem in this kernel: run unshaped, say so
                for ns_done, dev_done in done:
                    _run("ip", "netns", "exec", ns_done, "tc", "qdisc", "del", "dev", dev_done, "root", check=False)
                return f"skipped: netem unavailable ({str(exc).rsplit(':', 1)[-1].strip()})"
            done.append((ns, dev))
        return " ".join(spec) + f" on {len(self.hosts)} WAN interfaces (egress)"

    def close(self) -> None:
        for ns in reversed(self.namespaces):
            _kill_namespace(ns)
        self.namespaces.clear()
        atexit.unregister(self.close)

    def __enter__(self) -> Testbed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _nat_rules(kind: str, host_ip: str) -> list[tuple[str, ...]]:
    masquerade = ("-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE")
    rules: list[tuple[str, ...]] = [
        ("-P", "FORWARD", "DROP"),
        ("-A", "FORWARD", "-i", "wan", "-o", "lan", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED",
         "-j", "ACCEPT"),
        ("-A", "INPUT", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"),
        (*masquerade, "--random-fully") if kind == "symmetric" else masquerade,
    ]  # fmt: skip
    dnat = ("-j", "DNAT", "--to-destination", host_ip)
    if kind == "address-restricted":
        rules.append(("-A", "FORWARD", "-i", "lan", "-o", "wan", "-p", "udp", "-m", "recent", "--name", "peers",
                      "--rdest", "--set"))  # fmt: skip
        rules.append(("-t", "nat", "-A", "PREROUTING", "-i", "wan", "-p", "udp", "-m", "recent", "--name", "peers",
                      "--rsource", "--rcheck", "--seconds", "300", *dnat))  # fmt: skip
    elif kind == "full-cone":
        rules.append(("-t", "nat", "-A", "PREROUTING", "-i", "wan", "-p", "udp", *dnat))
    if kind in ("address-restricted", "full-cone"):
        rules.append(("-A", "FORWARD", "-i", "wan", "-o", "lan", "-p", "udp", "-m", "conntrack", "--ctstate", "DNAT",
                      "-j", "ACCEPT"))  # fmt: skip
    rules.append(("-A", "FORWARD", "-i", "lan", "-o", "wan", "-j", "ACCEPT"))
    return rules


def _kill_namespace(ns: str) -> None:
    pids = _run("ip", "netns", "pids", ns, check=False).split()
    for pid in pids:  # processes we started inside our own namespace
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    _run("ip", "netns", "delete", ns, check=False)


def cleanup_all(prefix: str = PREFIX) -> list[str]:
    """Delete every namespace whose name starts with ``prefix`` (ours); returns their names."""
    if not prefix.startswith(PREFIX):
        raise ValueError(f"refusing to clean namespaces outside {PREFIX}*")
    names = [line.split()[0] for line in _run("ip", "netns", "list", check=False).splitlines() if line.strip()]
    ours = [n for n in names if n.startswith(prefix)]
    for ns in ours:
        _kill_namespace(ns)
    return ours
