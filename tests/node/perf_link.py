"""Quick in-process measurement of peer links: ``python tests/node/perf_link.py``.

Run from the repository root (``PYTHONPATH=.``); not collected by pytest. Prints handshake
time (sans-I/O core, and dial over loopback WebSocket including identify) and one-way message
throughput with and without coalescing.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time

from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from node.handshake import HandshakeComplete, HandshakeProtocol
from node.identity import Identity
from node.link import SUBPROTOCOL, Handlers, Link, LinkConfig, accept, dial

KEY = bytes(32)


def core_handshake_ms(rounds: int = 200) -> float:
    a, b = Identity.generate(), Identity.generate()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        i = HandshakeProtocol(initiator=True, identity=a, network_key=KEY, now=0.0)
        r = HandshakeProtocol(initiator=False, identity=b, network_key=KEY, now=0.0)
        for src, dst in ((i, r), (r, i), (i, r)):  # message 1, 2, 3
            for d in src.data_to_send():
                dst.receive_data(d, 0.0)
        assert isinstance(r.next_event(), HandshakeComplete)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


async def link_numbers(messages: int, size: int) -> dict[str, float]:
    server_id = Identity.generate()
    received = asyncio.Event()
    count = 0

    def note(link: Link, body: bytes) -> None:
        nonlocal count
        count += 1
        if count % messages == 0:
            received.set()

    handlers = Handlers()
    handlers.add("/bench/1", note)
    links: list[Link] = []

    async def handler(ws: ServerConnection) -> None:
        link = await accept(ws, server_id, KEY, 5.0, handlers=handlers, config=LinkConfig(ping_interval=0))
        links.append(link)
        await link.wait_closed()

    out: dict[str, float] = {}
    async with serve(
        handler, "127.0.0.1", 0, subprotocols=[Subprotocol(SUBPROTOCOL)], compression=None, max_size=65536
    ) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        me = Identity.generate()
        dials = []
        for _ in range(30):
            start = time.perf_counter()
            link = await dial(url, me, KEY, server_id.peer_id, 5.0, config=LinkConfig(ping_interval=0))
            dials.append(time.perf_counter() - start)
            await link.close()
        out["dial_handshake_identify_ms_median"] = statistics.median(dials) * 1000
        body = bytes(size)
        for coalesce in (False, True):
            link = await dial(
                url, me, KEY, server_id.peer_id, 5.0, config=LinkConfig(ping_interval=0, coalesce=coalesce)
            )
            received.clear()
            frames_before = link.channel.frames_sent
            start = time.perf_counter()
            for _ in range(messages):
                await link.send("/bench/1", body)
            await received.wait()
            elapsed = time.perf_counter() - start
            name = "coalesced" if coalesce else "uncoalesced"
            out[f"msgs_per_s_{name}"] = messages / elapsed
            out[f"ws_messages_{name}"] = link.channel.frames_sent - frames_before
            await link.close()
    out["speedup"] = out["msgs_per_s_coalesced"] / out["msgs_per_s_uncoalesced"]
    return out


def main() -> int:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    result = {"core_handshake_ms_median": core_handshake_ms(), "messages": messages, "size": size}
    result.update(asyncio.run(link_numbers(messages, size)))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
