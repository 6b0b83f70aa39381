"""``im.wsframe`` builds exactly the frames websockets' own serializer builds (RFC 6455 5.2)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from im.wsframe import frame


@given(st.binary(max_size=300) | st.sampled_from([b"x" * 125, b"x" * 126, b"x" * 65535, b"x" * 65536]))
def test_binary_frames_match_websockets(payload: bytes) -> None:
    assert frame(payload) == Frame(Opcode.BINARY, payload).serialize(mask=False, extensions=[])


@given(st.text(max_size=200))
def test_text_frames_match_websockets(text: str) -> None:
    data = text.encode()
    assert frame(data, text=True) == Frame(Opcode.TEXT, data).serialize(mask=False, extensions=[])
