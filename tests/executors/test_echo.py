"""EchoExecutor: conformance and its deterministic answer."""

from __future__ import annotations

import time

import pytest
import trio

from wwwserve_p2p.core.types import ChatMessage, GenerationRequest
from wwwserve_p2p.errors import ConfigError
from wwwserve_p2p.executors import EchoExecutor
from wwwserve_p2p.testing.conformance import CHECK_NAMES, collect, run_check, run_conformance


def req(prompt="a b c d e", **kw) -> GenerationRequest:
    return GenerationRequest(request_id="r", model=kw.pop("model", "echo"), prompt=prompt, **kw)


@pytest.mark.parametrize("check", CHECK_NAMES)
async def test_conformance(check):
    with trio.fail_after(30):
        await run_check(check, lambda: EchoExecutor(capacity=2), "echo", exact_continuation=True)


async def test_conformance_all_at_once_with_delay():
    with trio.fail_after(60):
        await run_conformance(lambda: EchoExecutor(capacity=3, delay_per_token=0.001), "echo",
                              exact_continuation=True)


async def test_answer_chunks_and_usage():
    chunks = await collect(EchoExecutor(), req("hello   big\nworld"))
    assert [c.text for c in chunks] == ["hello ", "big ", "world"]
    assert [c.finish_reason for c in chunks] == [None, None, "stop"]
    assert chunks[-1].usage.prompt_tokens == 3 and chunks[-1].usage.completion_tokens == 3


async def test_max_tokens_cuts_with_length():
    chunks = await collect(EchoExecutor(), req(max_tokens=2))
    assert "".join(c.text for c in chunks) == "a b "
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].usage.completion_tokens == 2


async def test_chat_uses_last_user_message():
    r = GenerationRequest("r", "echo", messages=(
        ChatMessage("system", "sys words"), ChatMessage("user", "first one"),
        ChatMessage("assistant", "ok"), ChatMessage("user", "second question here")))
    chunks = await collect(EchoExecutor(), r)
    assert "".join(c.text for c in chunks) == "second question here"
    assert chunks[-1].usage.prompt_tokens == 3


@pytest.mark.parametrize("cont, expected", [
    ("a b ", "c d e"),
    ("a b", " c d e"),
    ("a b c", " d e"),
    ("a b c d e", ""),
    ("a ", "b c d e"),
])
async def test_continuation_prefix(cont, expected):
    chunks = await collect(EchoExecutor(), req(continuation=cont))
    assert "".join(c.text for c in chunks) == expected
    assert chunks[-1].finish_reason == "stop"


async def test_continuation_partial_word_counts_as_one_token():
    chunks = await collect(EchoExecutor(), req("alpha beta gamma", continuation="alpha be",
                                               max_tokens=1))
    assert [c.text for c in chunks] == ["ta "]
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].usage.completion_tokens == 1


async def test_continuation_not_a_prefix_resumes_at_word_index():
    chunks = await collect(EchoExecutor(), req(continuation="x y"))
    assert "".join(c.text for c in chunks) == " c d e"
    chunks = await collect(EchoExecutor(), req(continuation="x y "))
    assert "".join(c.text for c in chunks) == "c d e"


async def test_peer_label_prefixes_answer():
    chunks = await collect(EchoExecutor(peer_label="A"), req("hi there"))
    assert "".join(c.text for c in chunks) == "[A] hi there"
    assert chunks[-1].usage.prompt_tokens == 2


async def test_delay_uses_trio_clock(autojump_clock):
    ex = EchoExecutor(delay_per_token=10.0)
    t0, w0 = trio.current_time(), time.monotonic()
    chunks = await collect(ex, req("one two three four"))
    assert trio.current_time() - t0 == pytest.approx(40.0)
    assert time.monotonic() - w0 < 5
    assert len(chunks) == 4


async def test_capacity_counts_running_and_queued(autojump_clock):
    ex = EchoExecutor(capacity=1, delay_per_token=1.0)
    async with trio.open_nursery() as n:
        for _ in range(3):
            n.start_soon(collect, ex, req())
        await trio.sleep(0.5)
        load = ex.load()
        assert (load.running, load.queued, load.capacity) == (1, 2, 1)
        assert load.load == 3.0
    assert ex.load().running == ex.load().queued == 0


def test_config_errors():
    with pytest.raises(ConfigError):
        EchoExecutor(models=())
    with pytest.raises(ConfigError):
        EchoExecutor(capacity=0)
    with pytest.raises(ConfigError):
        EchoExecutor(delay_per_token=-1)
    assert EchoExecutor(models="m").models() == ("m",)
