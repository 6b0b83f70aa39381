"""rtc link throughput: two aiortc peers + timnode Links in one process, inside a namespace we create.

    python tests/nat/perf_rtc.py            (root: builds a one-host test bed, runs inside it, cleans up)

ICE gathers on every interface, so this never runs in the root namespace: it re-executes itself
inside a fresh ``tnat-*`` namespace whose only interfaces are ``lo`` and the test bed's ``eth0``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time


async def inside() -> None:
    from nat.rtc import accept_answer, answer_offer, make_offer
    from node.identity import Identity
    from node.link import Handlers, LinkConfig, establish

    key = bytes(32)
    a_id, b_id = Identity.generate(), Identity.generate()
    start = time.perf_counter()
    sa, offer = await make_offer(None)
    sb, answer = await answer_offer(offer, None)
    await accept_answer(sa, answer)
    await asyncio.wait_for(asyncio.gather(sa.opened.wait(), sb.opened.wait()), 20)
    ice = time.perf_counter() - start
    got: list[int] = []
    hb = Handlers()
    hb.add("/bulk", lambda link, body: got.append(len(body)))
    from node.secure import ChannelConfig

    frame = int(sys.argv[2]) if len(sys.argv) > 2 else 65535
    config = LinkConfig(ping_interval=0, channel=ChannelConfig(max_frame_size=frame))
    la, lb = await asyncio.gather(
        establish(sa, a_id, key, initiator=True, expected_peer=b_id.peer_id, config=config),
        establish(sb, b_id, key, initiator=False, config=config, handlers=hb),
    )
    print(
        f"ICE+DTLS+SCTP open: {ice:.2f} s; Noise handshake over the data channel: "
        f"{time.perf_counter() - start - ice:.3f} s; {sa.selected_pair()}"
    )
    for size, count in ((16384, 256), (100, 20000)):
        got.clear()
        t0 = time.perf_counter()
        for _ in range(count):
            await la.send("/bulk", bytes(size))
        while len(got) < count:
            await asyncio.sleep(0.005)
        dt = time.perf_counter() - t0
        print(f"rtc: {count} x {size} B: {count / dt:,.0f} msgs/s, {count * size / dt / 1e6:.2f} MB/s")
    rtts = [await la.ping() for _ in range(50)]
    print(f"rtc ping RTT p50 {sorted(rtts)[25] * 1000:.2f} ms")
    await la.close()
    await lb.close()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--inside":
        asyncio.run(inside())
        return
    sys.path.insert(0, ".")
    from testnet.netns import Testbed

    with Testbed() as bed:
        host = bed.add_public("perf")
        subprocess.run(
            [*host.exec_prefix(), sys.executable, __file__, "--inside", *sys.argv[1:]], check=True, timeout=300
        )


if __name__ == "__main__":
    main()
