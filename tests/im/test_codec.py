"""Codec round trips (Hypothesis) and hostile input: decode raises DecodeError only."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from im import client_pb2 as pb
from im.codec import JsonCodec, ProtoCodec, codec_for
from im.errors import DecodeError

texts = st.text(max_size=40)
u64 = st.integers(min_value=0, max_value=2**64 - 1)


@st.composite
def sends(draw: st.DrawFn) -> pb.ClientFrame:
    req = pb.Send(to=draw(texts), type=draw(st.integers(0, 2**32 - 1)), client_msg_id=draw(texts))
    if draw(st.booleans()):
        req.text = draw(texts)
    else:
        req.data = draw(st.binary(max_size=64))
    req.ext.update(draw(st.dictionaries(texts, texts, max_size=4)))
    return pb.ClientFrame(id=draw(u64), send=req)


@st.composite
def messages(draw: st.DrawFn) -> pb.ServerFrame:
    msg = pb.Message(id=draw(u64), to=draw(texts), timestamp=draw(st.integers(-(2**63), 2**63 - 1)))
    setattr(msg, "from", draw(texts))
    msg.data = draw(st.binary(max_size=64))
    return pb.ServerFrame(id=0, message=msg)


client_frames = st.one_of(
    sends(),
    st.builds(lambda i, u, p: pb.ClientFrame(id=i, login=pb.Login(user=u, password=p)), u64, texts, texts),
    st.builds(lambda i, ids: pb.ClientFrame(id=i, delivery_ack=pb.DeliveryAck(ids=ids)), u64, st.lists(u64)),
)


@given(client_frames)
def test_client_frames_round_trip_in_both_codecs(frame: pb.ClientFrame) -> None:
    for codec in (ProtoCodec(), JsonCodec()):
        assert codec.decode_client(codec.encode(frame)) == frame


@given(messages())
def test_server_frames_round_trip_in_both_codecs(frame: pb.ServerFrame) -> None:
    for codec in (ProtoCodec(), JsonCodec()):
        assert codec.decode_server(codec.encode(frame)) == frame


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_random_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    try:
        ProtoCodec().decode_client(data)
    except DecodeError as exc:
        assert exc.code == pb.BAD_REQUEST


@settings(max_examples=500)
@given(st.text(max_size=200))
def test_random_text_raises_decode_error_only(text: str) -> None:
    try:
        JsonCodec().decode_client(text)
    except DecodeError as exc:
        assert exc.code == pb.BAD_REQUEST


def test_wrong_frame_kind_per_subprotocol() -> None:
    for codec, data in ((ProtoCodec(), "text"), (JsonCodec(), b"\x08\x01")):
        try:
            codec.decode_client(data)
        except DecodeError:
            continue
        raise AssertionError("expected DecodeError")


def test_json_mapping_is_canonical() -> None:
    frame = pb.ClientFrame(id=7, send=pb.Send(to="bob", text="hi", client_msg_id="c1"))
    text = JsonCodec().encode(frame)
    assert text == '{"id": "7", "send": {"to": "bob", "text": "hi", "clientMsgId": "c1"}}'
    assert (
        JsonCodec().decode_client('{"id": 7, "send": {"to": "bob", "client_msg_id": "c1"}}').send.client_msg_id == "c1"
    )


def test_deeply_nested_json_is_a_decode_error() -> None:
    try:
        JsonCodec().decode_client("[" * 100_000)
    except DecodeError:
        return
    raise AssertionError("expected DecodeError")


def test_codec_for_defaults_to_protobuf() -> None:
    assert isinstance(codec_for(None), ProtoCodec) and isinstance(codec_for("timnode.v1.json"), JsonCodec)
