"""The load generator's own WebSocket framing (bench/wsfast.py) against websockets' codec."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from bench.wsfast import PONG, FrameSplitter, client_frame

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 70000]


def parse_masked(data: bytes) -> list[Frame]:
    """Client frames as a server parses them (websockets: mask required)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames: list[Frame] = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=True)
        try:
            while True:
                next(parser)
        except StopIteration as done:
            frames.append(done.value)
    return frames


def server_frame(payload: bytes, opcode: Opcode = Opcode.BINARY, fin: bool = True) -> bytes:
    return Frame(opcode, payload, fin=fin).serialize(mask=False)


def split_all(stream: bytes, cuts: list[int]) -> tuple[list[bytes], bytes | None]:
    splitter = FrameSplitter()
    payloads: list[bytes] = []
    start = 0
    for cut in [*sorted(cuts), len(stream)]:
        got, rest = splitter.feed(stream[start:cut])
        payloads += got
        if rest is not None:
            return payloads, rest + stream[cut:]
        start = cut
    return payloads, None


def test_client_frames_parse_as_masked_binary_frames() -> None:
    payloads = [bytes(range(256)) * (size // 256) + b"x" * (size % 256) for size in SIZES]
    stream = b"".join(client_frame(p) for p in payloads)
    frames = parse_masked(stream)
    assert [bytes(f.data) for f in frames] == payloads
    assert all(f.opcode is Opcode.BINARY and f.fin for f in frames)


def test_masking_keys_differ_between_frames() -> None:
    keys = {client_frame(b"same payload")[2:6] for _ in range(3000)}  # crosses a pool refill
    assert len(keys) > 2990


def test_splitter_reassembles_frames_cut_anywhere() -> None:
    payloads = [b"a" * size for size in SIZES] + ["text é".encode()]
    stream = b"".join(server_frame(p) for p in payloads[:-1]) + server_frame(payloads[-1], Opcode.TEXT)
    for step in (1, 2, 3, 7, 100, 4096, len(stream)):
        got, rest = split_all(stream, list(range(step, len(stream), step)))
        assert got == payloads and rest is None


def test_splitter_keeps_pings_for_a_pong_and_goes_on() -> None:
    splitter = FrameSplitter()
    stream = server_frame(b"one") + server_frame(b"are you there", Opcode.PING) + server_frame(b"two")
    got, rest = splitter.feed(stream[:9])
    got2, rest2 = splitter.feed(stream[9:])
    assert got + got2 == [b"one", b"two"] and rest is None and rest2 is None
    assert splitter.pings == [b"are you there"]
    pong = parse_masked(client_frame(splitter.pings[0], PONG))
    assert [(f.opcode, bytes(f.data), f.fin) for f in pong] == [(Opcode.PONG, b"are you there", True)]


def test_splitter_hands_over_at_the_first_frame_it_does_not_take() -> None:
    fragment = server_frame(b"part", Opcode.BINARY, fin=False)
    close = Frame(Opcode.CLOSE, b"\x03\xe8bye").serialize(mask=False)
    masked = Frame(Opcode.BINARY, b"masked").serialize(mask=True)
    pong = server_frame(b"unasked", Opcode.PONG)
    for odd in (fragment, close, masked, pong):
        after = server_frame(b"after")
        got, rest = split_all(server_frame(b"one") + server_frame(b"two") + odd + after, [3, 9])
        assert got == [b"one", b"two"]
        assert rest == odd + after


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.binary(max_size=300) | st.sampled_from(SIZES).map(lambda size: b"z" * size), max_size=8),
    st.lists(st.integers(min_value=0, max_value=70000), max_size=20),
)
def test_splitter_round_trips_any_chunking(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(server_frame(p) for p in payloads)
    got, rest = split_all(stream, [c for c in cuts if c <= len(stream)])
    assert got == payloads and rest is None


async def test_client_answers_keepalive_pings_and_keeps_the_fast_path() -> None:
    """A real websockets server pinging every 50 ms closes a connection that does not pong
    within 100 ms; echoes sent between pings must all come back."""
    from websockets.asyncio.server import ServerConnection, serve

    from bench.wsclient import connect

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    received: list[bytes] = []
    async with serve(echo, "127.0.0.1", 0, ping_interval=0.05, ping_timeout=0.1) as server:
        port = server.sockets[0].getsockname()[1]
        client = await connect(f"ws://127.0.0.1:{port}", received.append)
        for i in range(20):
            client.send(b"echo %d" % i)
            await asyncio.sleep(0.03)
        await asyncio.sleep(0.2)
        assert client.is_open and client._splitter is not None  # pings answered on the fast path
        assert received == [b"echo %d" % i for i in range(20)]
        await client.close()
