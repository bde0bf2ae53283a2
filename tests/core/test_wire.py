import pytest
import trio
from hypothesis import given, strategies as st

from wwwserve_p2p.core.types import (ChatMessage, ErrorReply, GenerationChunk, GenerationRequest,
                                     LoadSnapshot, Offer, PeerStatus, Usage)
from wwwserve_p2p.errors import MalformedMessage, RequestTimeout
from wwwserve_p2p.wire import codec
from wwwserve_p2p.wire.framing import FrameReader, encode_uvarint, frame
from wwwserve_p2p._pb import overlay_pb2


class BytesStream:
    """A Stream over a fixed byte string, delivered in pieces of ``step`` bytes."""

    remote_peer = "X"
    protocol = "/t"

    def __init__(self, data: bytes, step: int = 3, hang: bool = False):
        self.data, self.step, self.hang = data, step, hang

    async def read(self, max_bytes=65536):
        if not self.data:
            if self.hang:
                await trio.sleep_forever()
            return b""
        out, self.data = self.data[: min(self.step, max_bytes)], self.data[min(self.step, max_bytes):]
        return out


def test_status_roundtrip_and_network_check():
    s = PeerStatus("p", 3, 9, ("a", "b"), LoadSnapshot(1, 2, 4, 0.25), True, 7, 1, 4, ("/ip4/1.2.3.4/tcp/1",), "http://x")
    assert codec.decode_status(codec.encode_status(s, "net"), "net") == s
    with pytest.raises(MalformedMessage, match="another network"):
        codec.decode_status(codec.encode_status(s, "net"), "other")


def test_request_and_reply_roundtrip():
    r = GenerationRequest("r1", "m", messages=(ChatMessage("user", "hi"),), max_tokens=5, temperature=0.0,
                          top_p=0.5, stop=("\n",), seed=4, continuation="ab", route=("P",))
    got, net, t = codec.decode_request(codec.encode_request(r, "n", 1234))
    assert (got, net, t) == (r, "n", 1234)
    for reply in (Offer(True, "", 0.5), Offer(False, "busy", 1.0), GenerationChunk("x"),
                  GenerationChunk("y", "length", Usage(3, 4)), ErrorReply("c", "m")):
        assert codec.decode_reply(codec.encode_reply(reply)) == reply


@given(st.binary(max_size=300))
def test_decoders_never_raise_anything_but_malformed(data):
    for fn in (lambda d: codec.decode_status(d, "n"), codec.decode_request, codec.decode_reply, codec.decode_decision):
        try:
            fn(data)
        except MalformedMessage:
            pass


def test_field_bounds_rejected():
    m = overlay_pb2.DelegateRequest(request_id="r", model="m", max_tokens=0)
    with pytest.raises(MalformedMessage, match="max_tokens"):
        codec.decode_request(m.SerializeToString())
    m = overlay_pb2.DelegateRequest(request_id="r", model="m", max_tokens=3, temperature=float("nan"))
    with pytest.raises(MalformedMessage, match="temperature"):
        codec.decode_request(m.SerializeToString())
    m = overlay_pb2.DelegateResponse(final=overlay_pb2.Final(finish_reason="bogus"))
    with pytest.raises(MalformedMessage):
        codec.decode_reply(m.SerializeToString())
    with pytest.raises(MalformedMessage, match="empty"):
        codec.decode_reply(b"")


def test_uvarint():
    assert encode_uvarint(0) == b"\x00" and encode_uvarint(300) == b"\xac\x02"


async def test_framing_reads_split_frames_and_eof():
    r = FrameReader(BytesStream(frame(b"hello") + frame(b"") + frame(b"x" * 1000), step=2), 2000)
    assert await r.read_frame(1) == b"hello"
    assert await r.read_frame(1) == b""
    assert await r.read_frame(1) == b"x" * 1000
    assert await r.read_frame(1) is None


@pytest.mark.parametrize("data,match", [
    (encode_uvarint(5000) + b"x", "exceeds the cap"),
    (frame(b"hello")[:4], "inside a frame"),
    (b"\xff" * 11, "longer than 10"),
    (b"\x85", "inside a frame length"),
])
async def test_framing_rejects_bad_frames(data, match):
    with pytest.raises(MalformedMessage, match=match):
        await FrameReader(BytesStream(data), 4096).read_frame(1)


async def test_framing_deadline(autojump_clock):
    with pytest.raises(RequestTimeout) as info:
        await FrameReader(BytesStream(frame(b"ab")[:2], hang=True), 100).read_frame(2.0)
    assert info.value.may_have_processed  # the default: the remote may be working on it


async def test_framing_deadline_of_an_uncommitted_probe_says_not_processed(autojump_clock):
    reader = FrameReader(BytesStream(b"", hang=True), 100)
    with pytest.raises(RequestTimeout) as info:
        await reader.read_frame(2.0, may_have_processed=False)
    assert info.value.may_have_processed is False
