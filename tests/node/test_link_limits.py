"""A peer cannot make a node's link buffer or spawn without bound."""

from __future__ import annotations

import asyncio

from node.errors import RequestFailed
from node.identity import Identity
from node.link import Handlers, LinkConfig, establish
from tests.node.test_droppable import MemStream


async def pair(handlers: Handlers, **config: int) -> tuple[object, object]:
    sa, sb = MemStream(False), MemStream(False)
    sa.peer, sb.peer = sb, sa
    cfg = LinkConfig(ping_interval=0, **config)
    return await asyncio.gather(
        establish(sa, Identity.generate(), bytes(32), initiator=True, config=cfg),  # type: ignore[arg-type]
        establish(sb, Identity.generate(), bytes(32), initiator=False, config=cfg, handlers=handlers),  # type: ignore[arg-type]
    )


def test_requests_beyond_the_inflight_cap_are_answered_busy() -> None:
    async def main() -> None:
        gate = asyncio.Event()

        async def slow(link: object, body: bytes) -> bytes:
            await gate.wait()
            return b"done"

        handlers = Handlers()
        handlers.add("/slow", slow)
        la, lb = await pair(handlers, max_inflight=3)
        calls = [asyncio.ensure_future(la.request("/slow", b"", timeout=5)) for _ in range(5)]  # type: ignore[attr-defined]
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(*calls, return_exceptions=True)
        busy = [r for r in results if isinstance(r, RequestFailed)]
        assert len(busy) == 2 and all("busy" in str(r) for r in busy)
        assert results.count(b"done") == 3 and lb._inflight == 0  # type: ignore[attr-defined]
        await la.close()  # type: ignore[attr-defined]

    asyncio.run(main())


def test_replies_piling_up_past_the_hard_limit_close_the_link() -> None:
    async def main() -> None:
        handlers = Handlers()
        handlers.add("/big", lambda link, body: b"x" * 4096)
        la, lb = await pair(handlers, hard_queued_bytes=64 * 1024)
        lb._wake = asyncio.Event()  # type: ignore[attr-defined]  # stall lb's writer: replies pile up
        frames = [la.request("/big", b"", timeout=2) for _ in range(40)]  # type: ignore[attr-defined]
        await asyncio.gather(*frames, return_exceptions=True)
        await asyncio.sleep(0.05)
        assert lb.closed  # type: ignore[attr-defined]

    asyncio.run(asyncio.wait_for(main(), 10))
