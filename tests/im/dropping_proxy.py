"""A WebSocket proxy on 127.0.0.1 between an SDK client and a node that drops connections on
cue: on a chosen request, after forwarding a request (its answer lost), or after a sync page."""

from __future__ import annotations

import asyncio
import contextlib

from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, ServerConnection, serve

from im.codec import JSON_SUBPROTOCOL, PROTO_SUBPROTOCOL, codec_for


class DroppingProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.drop_on: dict[str, int] = {}  # request kind -> drops left: the request never arrives
        self.drop_after: dict[str, int] = {}  # request kind -> drops left: it arrives, its answer is lost
        self.drop_after_page = False  # every connection dies right after its first sync page
        self.accepted = 0
        self._live: set[ServerConnection] = set()
        self._server: Server | None = None

    async def start(self) -> str:
        protocols = [PROTO_SUBPROTOCOL, JSON_SUBPROTOCOL]
        self._server = await serve(self._relay, "127.0.0.1", 0, subprotocols=protocols, compression=None)  # type: ignore[arg-type]
        return f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop_all()

    def drop_all(self) -> None:
        for down in list(self._live):
            down.transport.abort()

    async def _relay(self, down: ServerConnection) -> None:
        self.accepted += 1
        self._live.add(down)
        codec = codec_for(down.subprotocol)
        try:
            async with connect(self.upstream, subprotocols=[down.subprotocol], compression=None) as up:  # type: ignore[list-item]
                lost = asyncio.Event()

                async def client_to_node() -> None:
                    async for data in down:
                        kind = codec.decode_client(data).WhichOneof("op") or ""
                        if self.drop_on.get(kind, 0) > 0:
                            self.drop_on[kind] -= 1
                            return
                        await up.send(data)
                        if self.drop_after.get(kind, 0) > 0:
                            self.drop_after[kind] -= 1
                            lost.set()
                            await asyncio.sleep(0.5)
                            return

                async def node_to_client() -> None:
                    async for data in up:
                        if lost.is_set():
                            continue
                        await down.send(data)
                        if self.drop_after_page and codec.decode_server(data).WhichOneof("body") == "page":
                            return

                tasks = [asyncio.ensure_future(client_to_node()), asyncio.ensure_future(node_to_client())]
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in tasks:
                    task.cancel()
                up.transport.abort()
        except Exception:  # noqa: BLE001 - the node or the client went away: drop this pair
            pass
        finally:
            self._live.discard(down)
            with contextlib.suppress(Exception):
                down.transport.abort()
