"""Node configuration: one dataclass, a TOML file and command-line flags.

Every field of :class:`NodeConfig` is a TOML key (``max_devices = 3``; dashes and
underscores are equivalent) and a flag (``--max-devices 3``). Precedence: built-in
defaults < ``--config FILE`` < flags given on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import tomllib
from dataclasses import dataclass, field
from typing import Any

__all__ = ["NodeConfig", "ConfigError", "add_node_flags", "config_from_args", "default_data_dir"]


class ConfigError(ValueError):
    """A configuration file or flag value that cannot be used."""


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "timnode")


@dataclass
class NodeConfig:
    """Everything a node can be told. Field metadata ``help`` becomes the flag's help."""

    listen: str = field(default="0.0.0.0:7400", metadata={"help": "HOST:PORT for clients and peers (WebSocket)"})
    data_dir: str = field(default_factory=default_data_dir, metadata={"help": "directory for keys and the store"})
    store: str = field(default="", metadata={"help": "store URL (default sqlite:///<data-dir>/store.db)"})
    no_store: bool = field(default=False, metadata={"help": "online delivery only: nothing is stored"})
    data_key: str = field(
        default="", metadata={"help": "data key (hex value or file) sealing the store; default <data-dir>/data.key"}
    )
    log_level: str = field(default="info", metadata={"help": "debug, info, warning or error"})
    log_format: str = field(default="text", metadata={"help": "text or json (one JSON object per line)"})
    no_mdns: bool = field(default=False, metadata={"help": "do not advertise or browse on the LAN (mDNS)"})
    no_stun: bool = field(default=False, metadata={"help": "do not answer STUN on UDP at the node's port number"})
    no_nat_traversal: bool = field(
        default=False, metadata={"help": "no relays and no ICE hole punching (reachability checks only)"}
    )
    max_relays: int = field(
        default=0, metadata={"help": "relays a private node reserves at most (0: every public peer it dialled)"}
    )
    relay_max_bytes: int = field(
        default=128 * 1024 * 1024, metadata={"help": "bytes a relayed circuit may carry (both ways; 0: no limit)"}
    )
    relay_max_seconds: float = field(
        default=1800.0, metadata={"help": "seconds a relayed circuit may last (0: no limit)"}
    )
    advertise: str = field(default="", metadata={"help": "address peers should dial (default: the listen address)"})
    max_frame_bytes: int = field(default=65536, metadata={"help": "largest WebSocket frame a client may send"})
    max_message_bytes: int = field(default=16384, metadata={"help": "largest message body (text or data)"})
    max_payload_bytes: int = field(
        default=1048576, metadata={"help": "largest body sent in chunks (chunk_start/chunk/chunk_end)"}
    )
    group_max_members: int = field(default=2000, metadata={"help": "default and largest max_members of a group"})
    room_grace: float = field(default=60.0, metadata={"help": "seconds an empty room is kept before it expires"})
    max_connections: int = field(default=10000, metadata={"help": "client connections at most"})
    max_conns_per_ip: int = field(default=64, metadata={"help": "client connections per remote address (0: no limit)"})
    rate_limit: float = field(default=200.0, metadata={"help": "requests per second per connection (0: no limit)"})
    rate_burst: int = field(default=400, metadata={"help": "request burst per connection"})
    max_devices: int = field(default=5, metadata={"help": "sessions per account at once"})
    device_policy: str = field(default="kick-oldest", metadata={"help": "when over max-devices: kick-oldest or refuse"})
    auth_timeout: float = field(default=10.0, metadata={"help": "seconds a connection may stay without login"})
    token_ttl: float = field(default=30 * 86400.0, metadata={"help": "seconds a session token stays valid"})
    idle_timeout: float = field(default=120.0, metadata={"help": "close clients silent this long (keepalive pings)"})
    bootstrap: list[str] = field(
        default_factory=list,
        metadata={"help": "peer to join, HOST:PORT[/p2p/PEERID] (repeatable or comma-separated)"},
    )
    network_key: str = field(
        default="", metadata={"help": "network key (tnk1-... value or file); default: the OPEN network"}
    )
    max_links: int = field(default=64, metadata={"help": "peer links at most"})
    keepalive: float = field(default=15.0, metadata={"help": "seconds between pings on a peer link (0: off)"})
    keepalive_timeout: float = field(default=10.0, metadata={"help": "a peer not answering a ping this long is dead"})
    handshake_timeout: float = field(default=10.0, metadata={"help": "seconds a peer handshake may take"})
    reconnect_max: float = field(default=30.0, metadata={"help": "longest wait between redials of a lost peer"})
    pex_interval: float = field(default=30.0, metadata={"help": "seconds between peer exchanges (0: on link-up only)"})
    dht_mode: str = field(
        default="auto",
        metadata={"help": "DHT role: server (answer queries), client, or auto (client while NATed/private)"},
    )
    presence_ttl: float = field(
        default=3600.0, metadata={"help": "seconds a published DHT presence entry lives (republished at half)"}
    )
    recall_window: float = field(default=120.0, metadata={"help": "seconds a sender may recall a message (0: none)"})
    edit_window: float = field(default=900.0, metadata={"help": "seconds a sender may edit a message (0: no limit)"})
    stranger_policy: str = field(
        default="allow", metadata={"help": "who may message a user: allow (anyone) or friends-only"}
    )
    offline_notice: bool = field(
        default=True, metadata={"help": "tell watchers and friends when a user's last device leaves"}
    )
    admin_token: str = field(
        default="", metadata={"help": "bearer token of the admin API at /admin (value or a file); none: no admin API"}
    )

    def resolved_store_url(self) -> str:
        if self.no_store:
            return "memory://"
        if self.store:
            return self.store
        return "sqlite://" + str(pathlib.Path(self.data_dir).expanduser().resolve() / "store.db")

    def listen_host_port(self) -> tuple[str, int]:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigError(f"--listen wants HOST:PORT, got {self.listen!r}")
        return host.strip("[]") or "0.0.0.0", int(port)

    def resolved_admin_token(self) -> str:
        """``admin_token``, read from the file it names when it names one ("" = admin API off)."""
        value = self.admin_token.strip()
        if value and os.path.isfile(os.path.expanduser(value)):
            with open(os.path.expanduser(value)) as fh:
                value = fh.read().strip()
        elif value.startswith(("/", "~", "./", "../")):  # a path, never a token: not its own name
            raise ConfigError(f"--admin-token names a file that does not exist: {value}")
        return value

    def bootstrap_addrs(self) -> list[str]:
        """``bootstrap`` split on commas (flags repeat, TOML gives a list or a string)."""
        items = [self.bootstrap] if isinstance(self.bootstrap, str) else self.bootstrap
        return [part.strip() for item in items for part in str(item).split(",") if part.strip()]

    def validate(self) -> None:
        self.listen_host_port()
        if self.max_links < 1:
            raise ConfigError("max_links must be at least 1")
        if self.keepalive < 0 or self.keepalive_timeout <= 0 or self.handshake_timeout <= 0:
            raise ConfigError("keepalive must be >= 0; keepalive_timeout and handshake_timeout > 0")
        if self.device_policy not in ("kick-oldest", "refuse"):
            raise ConfigError("device_policy must be kick-oldest or refuse")
        if self.log_format not in ("text", "json"):
            raise ConfigError("log_format must be text or json")
        if self.max_devices < 1:
            raise ConfigError("max_devices must be at least 1")
        if self.admin_token and len(self.resolved_admin_token()) < 16:
            raise ConfigError("admin_token must be at least 16 characters (try: openssl rand -hex 32)")
        if self.max_message_bytes > self.max_frame_bytes:
            raise ConfigError("max_message_bytes must not exceed max_frame_bytes")
        if self.max_payload_bytes < self.max_message_bytes:
            raise ConfigError("max_payload_bytes must be at least max_message_bytes")
        if self.group_max_members < 2:
            raise ConfigError("group_max_members must be at least 2")
        if self.dht_mode not in ("auto", "server", "client"):
            raise ConfigError("dht_mode must be auto, server or client")
        if self.max_relays < 0:
            raise ConfigError("max_relays must be 0 (no limit) or more")
        if self.relay_max_bytes < 0 or self.relay_max_seconds < 0:
            raise ConfigError("relay_max_bytes and relay_max_seconds must be 0 (no limit) or more")
        if not 1.0 <= self.presence_ttl <= 86400.0:
            raise ConfigError("presence_ttl must be between 1 and 86400 seconds")
        if self.stranger_policy not in ("allow", "friends-only"):
            raise ConfigError("stranger_policy must be allow or friends-only")
        if self.recall_window < 0 or self.edit_window < 0:
            raise ConfigError("recall_window and edit_window must be >= 0 (0: no limit)")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_node_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and one flag per NodeConfig field (default None = not given)."""
    parser.add_argument("--config", metavar="FILE", help="TOML file; every key is also a flag")
    for f in dataclasses.fields(NodeConfig):
        help_text = f.metadata.get("help", "")
        if f.type in ("bool", bool) and f.default is True:  # --offline-notice / --no-offline-notice
            parser.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif f.type in ("bool", bool):
            parser.add_argument(_flag(f.name), action="store_true", default=None, help=help_text)
        elif str(f.type).startswith("list"):
            parser.add_argument(_flag(f.name), action="append", default=None, metavar=f.name.upper(), help=help_text)
        else:
            kind = {"int": int, "float": float}.get(str(f.type), str)
            parser.add_argument(_flag(f.name), type=kind, default=None, metavar=f.name.upper(), help=help_text)


def _load_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    known = {f.name: f for f in dataclasses.fields(NodeConfig)}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"unknown key {key!r} in {path}")
        out[name] = value
    return out


def config_from_args(args: argparse.Namespace) -> NodeConfig:
    """Defaults, then the TOML file, then explicit flags."""
    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        values.update(_load_toml(args.config))
    for f in dataclasses.fields(NodeConfig):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    try:
        config = NodeConfig(**values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from exc
    config.validate()
    return config
