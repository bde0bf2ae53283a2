"""Optional request features in the executors (issue 14a): the echo executor's stop / echo /
logprobs, refusals naming the parameter for what an executor cannot honour, and the wire
round trip of the new request and chunk fields."""

from __future__ import annotations

import pytest

from wwwserve_p2p.core.types import GenerationChunk, GenerationRequest, TokenLogprob, Usage
from wwwserve_p2p.errors import InvalidRequest, MalformedMessage
from wwwserve_p2p.executors import EchoExecutor
from wwwserve_p2p.executors.base import echo_plan
from wwwserve_p2p.testing.conformance import collect
from wwwserve_p2p.wire import codec


def req(**kw) -> GenerationRequest:
    return GenerationRequest("r", "echo", **{"prompt": "one two three", **kw})


async def test_echo_stop_echo_and_logprobs():
    ex = EchoExecutor()
    chunks = await collect(ex, req(stop=("thr",)))
    assert "".join(c.text for c in chunks) == "one two " and chunks[-1].finish_reason == "stop"
    chunks = await collect(ex, req(echo=True, max_tokens=0, logprobs=1))
    assert len(chunks) == 1 and chunks[0].text == "one two three"
    assert [(e.token, e.logprob) for e in chunks[0].logprobs] == [("one", None), ("two", 0.0), ("three", 0.0)]
    assert chunks[0].usage == Usage(3, 0)
    chunks = await collect(ex, req(echo=True, max_tokens=2, logprobs=0))
    assert [c.text for c in chunks] == ["one two three", "one ", "two "]
    assert [e.token for c in chunks[1:] for e in c.logprobs] == ["one ", "two "]
    assert all(e.top == () for c in chunks[1:] for e in c.logprobs)  # k = 0: no alternatives


@pytest.mark.parametrize("kw,param", [
    ({"presence_penalty": 0.1}, "presence_penalty"), ({"frequency_penalty": 1.0}, "frequency_penalty"),
    ({"logit_bias": ((1, 2.0),)}, "logit_bias"), ({"prompt": "", "prompt_ids": (1, 2)}, "prompt"),
    ({"max_tokens": 0}, "max_tokens"),
])
async def test_echo_refuses_what_it_cannot_honour(kw, param):
    ex = EchoExecutor()
    with pytest.raises(InvalidRequest) as info:
        await collect(ex, req(**kw))
    assert info.value.param == param
    assert (ex.unsupported(req(**kw)) is not None) == (param != "max_tokens")


def test_echo_plan_after_redispatch():
    r = req(echo=True)
    assert echo_plan(r, "one two three") == (True, "")
    cont = GenerationRequest("r", "echo", prompt="one", echo=True, continuation="one partial")
    assert echo_plan(cont, "one") == (False, " partial")  # the echo was already delivered
    assert echo_plan(req(continuation="x"), "one two three") == (False, "x")


def test_wire_round_trip_of_the_features_and_bounds():
    r = GenerationRequest("r", "m", prompt_ids=(1, 2, 3), echo=True, max_tokens=0, logprobs=3,
                          presence_penalty=0.5, frequency_penalty=-1.0, logit_bias=((5, 2.0),))
    assert codec.decode_request(codec.encode_request(r, "n", 5))[0] == r
    plain = GenerationRequest("r", "m", prompt="x")
    assert codec.decode_request(codec.encode_request(plain, "n", 5))[0] == plain  # logprobs None
    c = GenerationChunk("x", "stop", Usage(1, 2, 3),
                        (TokenLogprob("a", None), TokenLogprob("b", -0.5, (("b", -0.5), ("c", -1.25)))))
    assert codec.decode_reply(codec.encode_reply(c)) == c
    assert codec.decode_reply(codec.encode_reply(GenerationChunk("y", logprobs=c.logprobs))).logprobs == c.logprobs
    with pytest.raises(MalformedMessage):  # max_tokens 0 only with echo
        codec.decode_request(codec.encode_request(GenerationRequest("r", "m", prompt="x", max_tokens=0), "n", 5))
    with pytest.raises(MalformedMessage):
        codec.decode_request(codec.encode_request(GenerationRequest("r", "m", prompt="x", logprobs=21), "n", 5))
    with pytest.raises(MalformedMessage):  # a positive log-probability is garbage
        codec.decode_reply(codec.encode_reply(GenerationChunk("x", logprobs=(TokenLogprob("a", 0.5),))))
