"""One IM user on one test-bed node, driven over stdin/stdout (JSON lines); run inside a namespace.

``ip netns exec NS python -m testnet.im_probe --url ws://127.0.0.1:7400 --user u-pub1`` registers
``--user`` on the node at ``--url`` through the SDK (``im.client.Client``) and prints
``{"ready": true}`` (or ``{"error": ...}`` and exits 1). It then reads one line
``{"to": [users], "expect": [users], "timeout": seconds}``, sends one message to every user
in ``to`` (all at once), waits until a message from every user in ``expect`` arrived or the
timeout passed, and prints ``{"sent": {user: "ok" | error}, "received": {user: ms}}``:
``ms`` is the time from the message's timestamp (set by the sender's node when it accepted the
send) to its arrival here; every namespace reads the same kernel clock. The client
connects to the node's own address inside the namespace, so nothing leaves the test bed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from im.client import Client, MessageEvent

__all__ = ["main"]

TAG = "testnet-probe"


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _send(client: Client, to: str, timeout: float) -> str:
    try:
        await client.send(to, text=f"{TAG}: {client.user} -> {to}", timeout=timeout)
    except Exception as exc:  # ImError (e.g. USER_NOT_FOUND), TimeoutError, ConnectionLost
        return f"{type(exc).__name__}: {exc}"[:160]
    return "ok"


async def _run(url: str, user: str, password: str) -> int:
    try:
        client = Client(url, user, password, register=True, backoff=(0.2, 1.0))
        await asyncio.wait_for(client.connect(), 20)
    except Exception as exc:
        _emit({"error": f"{type(exc).__name__}: {exc}"[:200]})
        return 1
    _emit({"ready": True})
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    order = json.loads(line or "{}")
    timeout = float(order.get("timeout", 20.0))
    expect = set(order.get("expect", ()))
    start = time.monotonic()
    received: dict[str, float] = {}

    async def receive() -> None:
        async for event in client.events():
            if isinstance(event, MessageEvent) and event.message.text.startswith(TAG):
                latency = max(0.0, time.time() * 1000 - event.message.timestamp)  # one kernel clock for all namespaces
                received.setdefault(getattr(event.message, "from"), round(latency, 1))
                if expect <= received.keys():
                    return

    receiver = asyncio.create_task(receive())
    results = await asyncio.gather(*(_send(client, to, timeout) for to in order.get("to", ())))
    if expect - received.keys():
        try:
            await asyncio.wait_for(asyncio.shield(receiver), max(0.1, timeout - (time.monotonic() - start)))
        except TimeoutError:
            pass
    receiver.cancel()
    _emit({"sent": dict(zip(order.get("to", ()), results, strict=True)), "received": received})
    await client.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testnet.im_probe", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:7400")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", default="testnet-pw-1")
    args = parser.parse_args(argv)
    return asyncio.run(_run(args.url, args.user, args.password))


if __name__ == "__main__":
    sys.exit(main())
