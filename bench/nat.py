"""NAT traversal: time to a direct link per NAT pair, and rtc / relay / ws link throughput (root).

``python -m bench nat [--json] [--rounds N] [--punch-timeout S] [--bulk N] [--messages N]``

Everything runs inside network namespaces this benchmark creates (``testnet.netns.Testbed``:
two public hosts, one host behind each NAT kind), so ICE and STUN never touch the machine's
interfaces; the namespaces are deleted at the end (also on error or Ctrl-C). Without root it
prints why and exits 2.

- **punch**: for every pair of hosts (public and the four NAT kinds), ``--rounds`` times: a
  helper process in each host's namespace (``python -m bench.nat --inside-ice offer|answer``),
  the offer/answer relayed by this process over pipes (the rendezvous), STUN at ``pub1``
  (``nat.stun_server``). A round is timed in the offering process from the start of
  ``nat.rtc.make_offer`` (candidate gathering, STUN) to a timnode ``Link`` established over the
  data channel (ICE + DTLS + SCTP + Noise XX + Identify): the *time to direct link*. Pairs
  RFC 4787 predicts to fail (a symmetric NAT against a port-filtering one) are tried once with
  ``--punch-timeout`` and reported as ``relay``.
- **links**: one process in ``pub2``'s namespace with seven ``LinkManager`` nodes on
  127.0.0.1 of that namespace: a ``ws`` pair, an ``rtc`` pair (ICE over host candidates)
  and a ``relay`` pair (a circuit through a third node, ``nat.relay``). On each: ``--bulk``
  16 KiB messages (MB/s), ``--messages`` 100-byte messages (msgs/s) and 200 pings (RTT p50),
  so ``ratio_*`` compare rtc and relay with ws in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import os
import random
import select
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.report import emit, note, percentile, rounded

__all__ = ["SUMMARY", "main"]

SUMMARY = "NAT traversal: time to direct link p50/p95 per NAT pair; rtc vs relay vs ws msgs/s and MB/s (root)"
KEY = bytes(range(32))
STUN_PORT = 3478
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- helpers that run inside a namespace ------------------------------------------------------------


def _say(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _readline() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def _inside_ice(role: str, stun: str, timeout: float) -> None:
    """Line protocol: ready; (offer) go -> {offer}, {answer} -> {result}; (answer) {offer} -> {answer}, {result}."""
    from nat.rtc import accept_answer, answer_offer, make_offer
    from node.identity import Identity
    from node.link import LinkConfig, establish

    me = Identity.generate()
    config = LinkConfig(ping_interval=0)
    _say({"ready": True})
    while True:
        line = (await _readline()).strip()
        if not line or line == "quit":
            return
        start = time.perf_counter()
        stream = None
        try:
            if role == "offer":
                stream, offer = await make_offer(stun)
                _say({"offer": offer.hex()})
                await accept_answer(stream, bytes.fromhex(json.loads(await _readline())["answer"]))
            else:
                stream, answer = await answer_offer(bytes.fromhex(json.loads(line)["offer"]), stun)
                _say({"answer": answer.hex()})
            async with asyncio.timeout(timeout):
                await stream.opened.wait()
                if stream.closed:
                    raise ConnectionError("ICE failed")
                ice = time.perf_counter() - start
                link = await establish(stream, me, KEY, initiator=role == "offer", config=config)
            total = time.perf_counter() - start
            _say({"ok": True, "ice_s": ice, "total_s": total, "pair": stream.selected_pair()})
            await link.close("bench")
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            _say({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:200], "total_s": time.perf_counter() - start})
        if stream is not None:
            await stream.close()


async def _inside_stun() -> None:
    from nat.stun_server import start_stun_endpoint

    endpoint = await start_stun_endpoint("0.0.0.0", STUN_PORT)
    _say({"ready": True})
    await _readline()  # until the parent closes stdin
    endpoint.close()


async def _inside_links(bulk: int, messages: int) -> None:
    """ws, rtc and relay pairs of LinkManagers in this (private) namespace; one JSON result line."""
    from nat.relay import Circuit, RelayService
    from nat.rtc import accept_answer, answer_offer, make_offer
    from node.identity import Identity, PeerId
    from node.link import SUBPROTOCOL, establish
    from node.manager import LinkManager, ManagerConfig
    from node.server import PortServer

    made: list[tuple[LinkManager, PortServer, RelayService]] = []

    async def node() -> tuple[LinkManager, PortServer, RelayService]:
        manager = LinkManager(Identity.generate(), KEY, ManagerConfig(keepalive=0), rng=random.Random(len(made)))
        server = PortServer("127.0.0.1", 0, max_frame_bytes=65536)
        server.add_subprotocol(SUBPROTOCOL, manager.accept)
        await server.start()
        manager.set_listen_addrs([f"ws://127.0.0.1:{server.bound_port}"])
        await manager.start()

        async def on_circuit(circuit: Circuit, direction: str) -> None:
            link = await establish(circuit, manager.identity, KEY, initiator=False, config=manager.link_config(),
                                   handlers=manager.handlers)  # fmt: skip
            manager.adopt(link, "inbound", "relay")

        made.append((manager, server, RelayService(manager, on_circuit)))
        return made[-1]

    async def until(cond: Callable[[], bool], timeout: float = 120.0) -> None:
        async with asyncio.timeout(timeout):
            while not cond():
                await asyncio.sleep(0.002)

    async def measure(a: LinkManager, b: LinkManager) -> dict[str, float]:
        peer: PeerId = b.local_peer
        got: list[int] = []
        b.handle("/bench/bulk", lambda p, body: got.append(len(body)))
        out: dict[str, float] = {}
        for name, size, count in (("bulk", 16384, bulk), ("small", 100, messages)):
            got.clear()
            t0 = time.perf_counter()
            for _ in range(count):
                await a.send(peer, "/bench/bulk", bytes(size))
            await until(functools.partial(_at_least, got, count))
            dt = time.perf_counter() - t0
            out[f"{name}_msgs_per_s"], out[f"{name}_mb_per_s"] = count / dt, count * size / dt / 1e6
        link = next(e.link for e in a.entries() if e.link.remote_peer == peer)
        rtts = [await link.ping() * 1000 for _ in range(200)]
        out["rtt_p50_ms"] = percentile(rtts, 50)
        return out

    result: dict[str, Any] = {}
    try:
        (wa, _, _), (wb, wsrv, _) = await node(), await node()
        await wa.connect(f"ws://127.0.0.1:{wsrv.bound_port}")
        await until(lambda: wa.transport_of(wb.local_peer) == "ws")
        result["ws"] = await measure(wa, wb)

        (ra, _, relay_a), (rr, rsrv, _), (rb, _, _) = await node(), await node(), await node()
        for m in (ra, rb):
            m.set_listen_addrs([])
            await m.connect(f"ws://127.0.0.1:{rsrv.bound_port}")
        await until(lambda: rr.is_linked(ra.local_peer) and rr.is_linked(rb.local_peer))
        circuit = await relay_a.connect(rr.local_peer, rb.local_peer)
        link = await establish(circuit, ra.identity, KEY, initiator=True, expected_peer=rb.local_peer,
                               config=ra.link_config(), handlers=ra.handlers)  # fmt: skip
        ra.adopt(link, "outbound", "relay")
        await until(lambda: rb.transport_of(ra.local_peer) == "relay")
        result["relay"] = await measure(ra, rb)

        (ta, _, _), (tb, _, _) = await node(), await node()
        sa, offer = await make_offer(None)
        sb, answer = await answer_offer(offer, None)
        await accept_answer(sa, answer)
        await asyncio.wait_for(asyncio.gather(sa.opened.wait(), sb.opened.wait()), 30)
        la, lb = await asyncio.gather(
            establish(sa, ta.identity, KEY, initiator=True, config=ta.link_config(), handlers=ta.handlers),
            establish(sb, tb.identity, KEY, initiator=False, config=tb.link_config(), handlers=tb.handlers),
        )
        ta.adopt(la, "outbound", "rtc")
        tb.adopt(lb, "inbound", "rtc")
        result["rtc"] = await measure(ta, tb)
        result["rtc"]["pair"] = sa.selected_pair()
    finally:
        for manager, server, relay in made:
            relay.close()
            await manager.stop()
            await server.stop()
    _say(result)


def _at_least(got: list[int], count: int) -> bool:
    return len(got) >= count


# -- the parent ------------------------------------------------------------------------------------


def _spawn(prefix: tuple[str, ...], *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "bench.nat", *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT,
    )  # fmt: skip


def _read(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    try:
        doc: dict[str, Any] = json.loads(line)
    except ValueError:
        return {"ok": False, "error": f"no answer in {timeout:.0f} s" if not ready else f"exited ({proc.poll()})"}
    return doc


def _write(proc: subprocess.Popen[str], obj: Any) -> None:
    assert proc.stdin is not None
    proc.stdin.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
    proc.stdin.flush()


def _stop(proc: subprocess.Popen[str]) -> None:
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _punch_pair(a: Any, b: Any, stun: str, rounds: int, timeout: float) -> list[dict[str, Any]]:
    offerer = _spawn(a.exec_prefix(), "--inside-ice", "offer", "--stun", stun, "--punch-timeout", str(timeout))
    answerer = _spawn(b.exec_prefix(), "--inside-ice", "answer", "--stun", stun, "--punch-timeout", str(timeout))
    results = []
    try:
        if not (_read(offerer, 60).get("ready") and _read(answerer, 60).get("ready")):
            return [{"ok": False, "error": "helper not ready"}]
        for _ in range(rounds):
            _write(offerer, "go")
            offer = _read(offerer, 30)
            if "offer" not in offer:
                results.append(offer)
                break
            _write(answerer, offer)
            answer = _read(answerer, 30)
            if "answer" not in answer:
                results.append(answer)
                break
            _write(offerer, answer)
            results.append(_read(offerer, timeout + 30))
            _read(answerer, timeout + 30)
    finally:
        for proc in (offerer, answerer):
            _write_quietly(proc)
            _stop(proc)
    return results


def _write_quietly(proc: subprocess.Popen[str]) -> None:
    try:
        _write(proc, "quit")
    except (BrokenPipeError, ValueError, OSError):
        pass


def run(args: argparse.Namespace) -> dict[str, Any]:
    from testnet.netns import NAT_KINDS, Testbed
    from testnet.real import KIND, SHORT, expected_transport

    started = time.monotonic()
    punch: dict[str, Any] = {}
    with Testbed() as bed:
        pub1, pub2 = bed.add_public("pub1"), bed.add_public("pub2")
        hosts = [pub2] + [bed.add_nat(f"{SHORT[k]}1", k) for k in NAT_KINDS]
        stun_proc = _spawn(pub1.exec_prefix(), "--stun-server")
        try:
            if not _read(stun_proc, 60).get("ready"):
                raise RuntimeError("STUN helper did not start")
            stun = f"{pub1.ip}:{STUN_PORT}"
            for a, b in itertools.combinations(hosts, 2):
                name = f"{KIND[a.nat]}/{KIND[b.nat]}"
                expected = expected_transport(a.nat, b.nat)
                if expected == "ws":
                    expected = "rtc"  # a public host's host candidate answers every check
                rounds = args.rounds if expected == "rtc" else 1
                note(f"punch {name}: {rounds} round(s), expected {expected}")
                tries = _punch_pair(a, b, stun, rounds, args.punch_timeout)
                ok = [t["total_s"] for t in tries if t.get("ok")]
                ice = [t["ice_s"] for t in tries if t.get("ok")]
                punch[name] = {
                    "expected": "direct" if expected == "rtc" else "relay",
                    "link": "direct" if ok else "relay",
                    "ok": len(ok), "rounds": len(tries),
                    "p50_s": rounded(percentile(ok, 50)) if ok else None,
                    "p95_s": rounded(percentile(ok, 95)) if ok else None,
                    "ice_p50_s": rounded(percentile(ice, 50)) if ice else None,
                    "errors": sorted({str(t.get("error")) for t in tries if not t.get("ok")})[:3],
                }  # fmt: skip
                got = punch[name]
                note(f"  -> {got['link']} {got['ok']}/{got['rounds']} p50 {got['p50_s']} s")
        finally:
            _stop(stun_proc)
        note("links: ws, relay, rtc in one process (namespace of pub2)")
        proc = _spawn(pub2.exec_prefix(), "--inside-links", "--bulk", str(args.bulk), "--messages", str(args.messages))
        try:
            links = _read(proc, 300)
        finally:
            _stop(proc)
    result: dict[str, Any] = {"benchmark": "nat", "rounds": args.rounds, "punch_timeout_s": args.punch_timeout,
                              "bulk": args.bulk, "messages": args.messages, "punch": punch}  # fmt: skip
    result["links"] = {t: {k: (rounded(v) if isinstance(v, float) else v) for k, v in links.get(t, {}).items()}
                       for t in ("ws", "rtc", "relay")}  # fmt: skip
    if "error" in links:
        result["links_error"] = links["error"]
    ws = result["links"]["ws"]
    for t in ("rtc", "relay"):
        for k in ("small_msgs_per_s", "bulk_mb_per_s"):
            mine, base = result["links"][t].get(k), ws.get(k)
            result[f"ratio_{t}_ws_{k}"] = rounded(mine / base) if mine and base else None
    result["punch_as_rfc4787"] = all(p["link"] == p["expected"] for p in punch.values())
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def table_rows(r: dict[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for name, p in r["punch"].items():
        text = f"{p['link']} {p['ok']}/{p['rounds']}"
        text += f" p50 {p['p50_s']:.2f} p95 {p['p95_s']:.2f} s" if p["ok"] else ""
        rows.append((f"punch {name}", text))
    for t in ("ws", "rtc", "relay"):
        lk = r["links"][t]
        rows += [(f"{t} 100 B msgs/s", lk.get("small_msgs_per_s")), (f"{t} 16 KiB MB/s", lk.get("bulk_mb_per_s")),
                 (f"{t} RTT p50 ms", lk.get("rtt_p50_ms"))]  # fmt: skip
    rows += [(k, v) for k, v in r.items() if k.startswith("ratio_")]
    rows.append(("punch results as RFC 4787 predicts", r["punch_as_rfc4787"]))
    return rows


def main(argv: list[str]) -> int:
    """``python -m bench nat``: 0, 1 if a pair did not link as RFC 4787 predicts, 2 without root."""
    ap = argparse.ArgumentParser(prog="python -m bench nat", description=SUMMARY)
    ap.add_argument("--json", action="store_true", help="print only the JSON object on stdout")
    ap.add_argument("--rounds", type=int, default=5, help="punches per NAT pair (default 5)")
    ap.add_argument("--punch-timeout", type=float, default=10.0, help="seconds before a punch counts as failed")
    ap.add_argument("--bulk", type=int, default=512, help="16 KiB messages per link (default 512)")
    ap.add_argument("--messages", type=int, default=20_000, help="100-byte messages per link (default 20000)")
    ap.add_argument("--inside-ice", choices=("offer", "answer"), help=argparse.SUPPRESS)
    ap.add_argument("--inside-links", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--stun-server", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--stun", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.inside_ice:
        asyncio.run(_inside_ice(args.inside_ice, args.stun, args.punch_timeout))
        return 0
    if args.stun_server:
        asyncio.run(_inside_stun())
        return 0
    if args.inside_links:
        asyncio.run(_inside_links(args.bulk, args.messages))
        return 0
    from testnet.netns import available

    reason = available()
    if reason:
        print(f"bench nat: {reason}; it builds network namespaces (run as root, e.g. in .ci/run)", file=sys.stderr)
        return 2
    result = run(args)
    emit(result, "bench nat", table_rows(result), args.json)
    return 0 if result["punch_as_rfc4787"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
