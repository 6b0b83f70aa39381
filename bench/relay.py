"""The raw WebSocket relay: the baseline the node's chat throughput is compared with.

No auth, no store, no protobuf: a connection names itself with HELLO, and SEND
forwards the payload to the named connection as a PUSH, then answers the sender;
DACK answers the acker and pushes DELIVERED to the named sender. The frame layout
is in :mod:`bench.wire`. Like the node it uses ``websockets.asyncio.server`` and
runs in its own process, so the load generator never shares its event loop::

    python -m bench.relay --port-file /tmp/relay.json   # writes {"url": ..., "pid": ...}

It serves until SIGTERM or SIGINT. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bench.wire import (
    HEADER,
    RELAY_DACK,
    RELAY_DELIVERED,
    RELAY_ERROR,
    RELAY_HELLO,
    RELAY_OK,
    RELAY_PUSH,
    RELAY_SEND,
)

__all__ = ["Relay", "main", "serve_relay"]

_OFFLINE = (480).to_bytes(2, "big")
_BAD = (400).to_bytes(2, "big")


class Relay:
    """Connection registry and frame forwarding."""

    def __init__(self) -> None:
        self.peers: dict[str, ServerConnection] = {}
        self.next_id = 0

    async def handle(self, ws: ServerConnection) -> None:
        """Serve one connection until it closes."""
        name: str | None = None
        try:
            async for data in ws:
                if isinstance(data, bytes) and len(data) >= HEADER.size:
                    name = await self.dispatch(ws, data, name)
        except ConnectionClosed:
            pass
        finally:
            if name is not None and self.peers.get(name) is ws:
                del self.peers[name]

    async def dispatch(self, ws: ServerConnection, data: bytes, name: str | None) -> str | None:
        """Act on one frame; returns the connection's (possibly new) name."""
        kind, req_id = HEADER.unpack_from(data)
        if kind == RELAY_SEND:
            await self.forward(ws, req_id, data, RELAY_PUSH)
        elif kind == RELAY_DACK:
            await self.forward(ws, req_id, data, RELAY_DELIVERED)
        elif kind == RELAY_HELLO:
            name = data[HEADER.size :].decode("utf-8", "replace")
            self.peers[name] = ws
            await ws.send(HEADER.pack(RELAY_OK, req_id))
        else:
            await ws.send(HEADER.pack(RELAY_ERROR, req_id) + _BAD)
        return name

    async def forward(self, ws: ServerConnection, req_id: int, data: bytes, push_kind: int) -> None:
        """Push the body after ``len:u8 dest`` to ``dest``, then answer the requester."""
        start = HEADER.size + 1
        end = start + data[HEADER.size]
        target = self.peers.get(data[start:end].decode("utf-8", "replace"))
        answer = HEADER.pack(RELAY_OK, req_id)
        if target is None:
            answer = HEADER.pack(RELAY_ERROR, req_id) + _OFFLINE
        else:
            number = 0
            if push_kind == RELAY_PUSH:
                self.next_id += 1
                number = self.next_id
            try:
                await target.send(HEADER.pack(push_kind, number) + data[end:])
            except ConnectionClosed:
                answer = HEADER.pack(RELAY_ERROR, req_id) + _OFFLINE
        await ws.send(answer)


def _write_port_file(path: str, url: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"url": url, "pid": os.getpid()}, fh)
    os.replace(tmp, path)


async def serve_relay(host: str, port: int, port_file: str | None) -> None:
    """Run the relay until SIGTERM/SIGINT."""
    relay = Relay()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(relay.handle, host, port, compression=None, max_size=None) as server:
        bound = next(iter(server.sockets)).getsockname()
        url = f"ws://{bound[0]}:{bound[1]}"
        if port_file:
            _write_port_file(port_file, url)
        await stop.wait()


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    parser.add_argument("--port-file", help="write {'url', 'pid'} JSON here once listening")
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Entry point: ``python -m bench.relay [--port-file F]``."""
    args = _parse(argv)
    from bench.loops import run

    run(serve_relay(args.host, args.port, args.port_file), args.loop)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
