"""Short fuzz run of every wire decoder and the framing reader (issue 15): for any bytes,
each decoder returns or raises MalformedMessage, nothing else. Inputs: random bytes and
mutations (bit flips, truncations, splices) of valid encodings. The long run (>= 1M inputs
per decoder) is ``benchmarks/fuzz.py``."""

from __future__ import annotations

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from wwwserve_p2p.core.types import LoadSnapshot, PeerStatus
from wwwserve_p2p.errors import MalformedMessage
from wwwserve_p2p.wire import codec, ledger_codec
from wwwserve_p2p.wire.framing import FrameReader, frame

NET = "fuzznet"
SEED = codec.encode_status(PeerStatus("12D3KooWA", 1, 2, ("m", "n"), LoadSnapshot(1, 2, 4), True, stake=5,
                                      addrs=("/ip4/1.2.3.4/tcp/1/p2p/12D3KooWA",)), NET)

DECODERS = {
    "status": lambda b: codec.decode_status(b, NET),
    "request": codec.decode_request,
    "decision": codec.decode_decision,
    "reply": codec.decode_reply,
    "judge_request": codec.decode_judge_request,
    "judge_response": codec.decode_judge_response,
    "block": ledger_codec.decode_block,
    "entry": ledger_codec.decode_entry,
    "ticket": ledger_codec.decode_ticket,
    "gossip": ledger_codec.decode_gossip,
    "sync_request": ledger_codec.decode_sync_request,
    "sync_response": ledger_codec.decode_sync_response,
}


def mutate(data: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, pos, val in ops:
        if not buf:
            buf.append(val)
            continue
        i = pos % len(buf)
        if kind == 0:
            buf[i] ^= 1 << (val % 8)
        elif kind == 1:
            del buf[i:]
        elif kind == 2:
            buf[i:i] = bytes([val]) * (1 + val % 7)
        else:
            buf[i] = val
    return bytes(buf)


inputs = hs.one_of(
    hs.binary(max_size=512),
    hs.builds(mutate, hs.just(SEED), hs.lists(hs.tuples(hs.integers(0, 3), hs.integers(0, 10**6),
                                                         hs.integers(0, 255)), max_size=8)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=inputs)
def test_every_decoder_raises_only_malformed_message(data: bytes) -> None:
    for name, decode in DECODERS.items():
        try:
            decode(data)
        except MalformedMessage:
            pass


class _BytesStream:
    remote_peer, protocol = "p", "/fuzz/1"

    def __init__(self, data: bytes, step: int):
        self.data, self.step = data, max(1, step)

    async def read(self, max_bytes: int = 65536) -> bytes:
        out, self.data = self.data[: min(max_bytes, self.step)], self.data[min(max_bytes, self.step):]
        return out


@settings(max_examples=200, deadline=None)
@given(data=hs.one_of(hs.binary(max_size=256), hs.builds(lambda p, cut: frame(p)[:cut] if cut else frame(p),
                                                         hs.binary(max_size=64), hs.integers(0, 70))),
       step=hs.integers(1, 17))
def test_frame_reader_raises_only_malformed_message(data: bytes, step: int) -> None:
    async def run() -> None:
        reader = FrameReader(_BytesStream(data, step), max_frame=128)
        try:
            while await reader.read_frame(5.0) is not None:
                pass
        except MalformedMessage:
            pass

    trio.run(run)
