"""Droppable messages over a real ``rtc`` link (aiortc ICE + DTLS + SCTP), inside a network
namespace this test creates (root; skipped with a printed reason otherwise).

The namespace has only a loopback and a veth pair of its own (10.99.0.1, 10.99.0.2), so ICE
never sees the host's interfaces; both peers run in one process inside it (``python -m
tests.nat.test_netns_streams``, which prints a JSON result). The namespace is deleted at the
end, also on failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from testnet.netns import PREFIX, available

pytestmark = pytest.mark.slow

REASON = available()
if REASON:
    print(f"tests/nat/test_netns_streams.py skipped: {REASON}")


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, f"ip {' '.join(args)}: {proc.stderr.strip()}"


def test_droppable_frames_on_the_unordered_rtc_channel() -> None:
    if REASON:
        pytest.skip(REASON)
    ns = f"{PREFIX}s7rtc-{os.getpid()}"
    _ip("netns", "add", ns)
    try:
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        _ip("-n", ns, "addr", "add", "10.99.0.1/24", "dev", "v0")
        _ip("-n", ns, "addr", "add", "10.99.0.2/24", "dev", "v1")
        _ip("-n", ns, "link", "set", "v0", "up")
        _ip("-n", ns, "link", "set", "v1", "up")
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        proc = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "tests.nat.test_netns_streams"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=root,
            env={**os.environ, "PYTHONPATH": root},
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
    print(result)
    assert result["unordered"] is True
    trickle = result["trickle"]
    assert trickle["received"] >= trickle["sent"] * 0.9  # an idle channel loses (almost) nothing
    assert trickle["on_data_channel"] == trickle["received"]  # all of them on `data`, none on `ctl`
    flood = result["flood"]
    assert flood["dropped"] > 0  # 4000 frames queued in one go: the oldest went
    assert 0 < flood["received"] <= 256  # never more than the queue bound (LinkConfig.droppable_queue)
    assert result["reliable_after"] is True and result["rejected"] == 0


async def probe() -> dict[str, object]:
    from nat.rtc import accept_answer, answer_offer, make_offer
    from node.identity import Identity
    from node.link import Handlers, LinkConfig, establish

    sa, offer = await make_offer(None)
    sb, answer = await answer_offer(offer, None)
    await accept_answer(sa, answer)
    await asyncio.wait_for(asyncio.gather(sa.opened.wait(), sb.opened.wait()), 30)
    got: list[bytes] = []
    reliable: list[bytes] = []
    hb = Handlers()
    hb.add("/live", lambda link, body: got.append(body))
    hb.add("/ctl", lambda link, body: reliable.append(body))
    config = LinkConfig(ping_interval=0)
    a_id, b_id = Identity.generate(), Identity.generate()
    la, lb = await asyncio.gather(
        establish(sa, a_id, bytes(32), initiator=True, expected_peer=b_id.peer_id, config=config),
        establish(sb, b_id, bytes(32), initiator=False, config=config, handlers=hb),
    )
    for _ in range(100):  # the data channel opens with ctl; wait until it is usable
        if sa.unordered_ready():
            break
        await asyncio.sleep(0.05)
    for i in range(100):
        la.send_droppable("/live", i.to_bytes(4, "big") + bytes(500))
        await asyncio.sleep(0.002)
    await asyncio.sleep(1.0)
    trickle = {"sent": 100, "received": len(got), "on_data_channel": lb.unordered_stats["received"]}
    before = len(got)
    for i in range(4000):  # no await in between: the link's queue (256) drops the oldest
        la.send_droppable("/live", i.to_bytes(4, "big") + bytes(1000))
    await asyncio.sleep(2.0)
    flood = {"dropped": la.dropped, "received": len(got) - before}
    await la.send("/ctl", b"still here")
    await asyncio.sleep(0.5)
    result = {
        "unordered": la.transport_unordered,
        "pair": sa.selected_pair(),
        "trickle": trickle,
        "flood": flood,
        "reliable_after": reliable == [b"still here"],
        "rejected": lb.unordered_stats["rejected"],
    }
    await la.close()
    await lb.close()
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(probe())))
