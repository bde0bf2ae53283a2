"""OpenAIUpstreamExecutor against a small OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

from dataclasses import replace

import pytest
import trio

from exec_fakes import CountingExecutor, ServerControl, start_openai_server
from wwwserve_p2p.core.types import ChatMessage, GenerationRequest
from wwwserve_p2p.errors import ConfigError, ExecutorError, InvalidRequest, ModelNotFound
from wwwserve_p2p.executors import EchoExecutor, OpenAIUpstreamExecutor, create_executor
from wwwserve_p2p.executors.openai_upstream import parse_prometheus
from wwwserve_p2p.testing.conformance import CHECK_NAMES, collect, run_check


def req(prompt="count:", **kw) -> GenerationRequest:
    kw.setdefault("max_tokens", 5)
    return GenerationRequest(request_id="r", model=kw.pop("model", "counter"), prompt=prompt,
                             **kw)


def text(chunks) -> str:
    return "".join(c.text for c in chunks)


@pytest.fixture
async def server(nursery):
    control = ServerControl()
    url = await start_openai_server(nursery, CountingExecutor(capacity=16), control)
    return url, control


@pytest.fixture
async def upstream(server):
    ex = OpenAIUpstreamExecutor(server[0], capacity=2, timeout=10)
    await ex.start()
    yield ex
    await ex.aclose()


@pytest.mark.parametrize("check", CHECK_NAMES)
async def test_conformance(check, server):
    with trio.fail_after(40):
        await run_check(check, lambda: OpenAIUpstreamExecutor(server[0], capacity=2, timeout=10),
                        "counter", exact_continuation=True)


async def test_conformance_against_echo_backend(nursery):
    url = await start_openai_server(nursery, EchoExecutor(capacity=4))
    with trio.fail_after(40):
        for check in ("stream_shape", "unknown_model", "early_close", "queued"):
            await run_check(check, lambda: OpenAIUpstreamExecutor(url + "/v1", capacity=1),
                            "echo")


async def test_discovery_and_models_before_start(server):
    ex = OpenAIUpstreamExecutor(server[0])
    with pytest.raises(ExecutorError, match="start"):
        ex.models()
    chunks = await collect(ex, req())  # generate() starts it
    assert ex.models() == ("counter",)
    assert text(chunks) == " 1 2 3 4 5"
    assert chunks[-1].usage.completion_tokens == 5 and chunks[-1].finish_reason == "length"
    await ex.aclose()
    await ex.aclose()


async def test_request_body_and_auth(server):
    url, control = server
    ex = OpenAIUpstreamExecutor(url, models=("counter",), api_key="sk-test")
    r = req(temperature=0.3, top_p=0.5, seed=9, stop=("x",), max_tokens=3)
    await collect(ex, r)
    body = control.requests[-1]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert (body["prompt"], body["max_tokens"], body["temperature"], body["top_p"],
            body["seed"], body["stop"]) == ("count:", 3, 0.3, 0.5, 9, ["x"])
    assert control.headers[-1]["authorization"] == "Bearer sk-test"
    await collect(ex, replace(r, presence_penalty=0.5, frequency_penalty=-1.0, logit_bias=((7, 2.0),)))
    body = control.requests[-1]  # forwarded (issue 14a)
    assert (body["presence_penalty"], body["frequency_penalty"], body["logit_bias"]) == (0.5, -1.0, {"7": 2.0})
    with pytest.raises(InvalidRequest, match="cannot honour 'logprobs'"):
        await collect(ex, replace(r, logprobs=1))
    await ex.aclose()


async def test_chat_and_chat_continuation(upstream, server):
    msgs = (ChatMessage("user", "count from 10"),)
    r = GenerationRequest("r", "counter", messages=msgs, max_tokens=3)
    assert text(await collect(upstream, r)) == " 11 12 13"
    chunks = await collect(upstream, GenerationRequest("r", "counter", messages=msgs,
                                                       max_tokens=2, continuation=" 11 12"))
    assert text(chunks) == " 13 14"
    sent = server[1].requests[-1]["messages"]
    assert sent[-2] == {"role": "assistant", "content": " 11 12"} and sent[-1]["role"] == "user"


async def test_completion_continuation_is_appended(upstream, server):
    chunks = await collect(upstream, req("go", continuation=" 1 2", max_tokens=2))
    assert text(chunks) == " 3 4"
    assert server[1].requests[-1]["prompt"] == "go 1 2"


async def test_usage_counted_when_upstream_sends_none(upstream, server):
    server[1].send_usage = False
    chunks = await collect(upstream, req(max_tokens=4))
    assert chunks[-1].usage.completion_tokens == 4 and chunks[-1].usage.prompt_tokens == 0


async def test_upstream_404_is_model_not_found(server):
    ex = OpenAIUpstreamExecutor(server[0], models=("ghost", "counter"))
    gen = ex.generate(req(model="ghost"))
    with pytest.raises(ModelNotFound, match="ghost"):
        await gen.__anext__()
    await ex.aclose()


async def test_upstream_400_is_invalid_request(upstream):
    with pytest.raises(InvalidRequest, match="1000"):
        await collect(upstream, req(max_tokens=5000))


async def test_upstream_500_is_executor_error_with_message(upstream):
    with pytest.raises(ExecutorError, match="backend exploded") as info:
        await collect(upstream, req("EXPLODE"))
    assert not isinstance(info.value, (InvalidRequest, ModelNotFound))


async def test_stream_dying_midway_raises_after_chunks(upstream):
    got = []
    with pytest.raises(ExecutorError):
        async for c in upstream.generate(req("DIE", max_tokens=10)):
            got.append(c)
    assert 1 <= len(got) < 10
    with trio.fail_after(5):
        while upstream.load().running:
            await trio.sleep(0.01)


async def test_unreachable_upstream():
    with trio.socket.socket() as s:  # a port nobody listens on
        await s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ex = OpenAIUpstreamExecutor(f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(ExecutorError, match="discovery"):
        await ex.start()
    ex2 = OpenAIUpstreamExecutor(f"http://127.0.0.1:{port}", models=("m",), timeout=2)
    with pytest.raises(ExecutorError):
        await collect(ex2, req(model="m"))
    assert ex2.load().running == 0
    await ex.aclose()
    await ex2.aclose()


async def test_load_reads_vllm_metrics(upstream, server):
    control = server[1]
    control.extra_running, control.extra_waiting, control.kv_usage = 5, 3, 0.75
    with trio.fail_after(5):
        while upstream.load().kv_usage != 0.75:
            await trio.sleep(0.02)
    load = upstream.load()
    assert (load.running, load.queued, load.capacity) == (5, 3, 2)
    assert load.load == 4.0


async def test_load_without_metrics_endpoint(upstream, server):
    server[1].metrics = False
    for _ in range(5):
        assert upstream.load().running == 0
        await trio.sleep(0.02)
    assert upstream._m_at is None


def test_parse_prometheus():
    text = ('# HELP x\n# TYPE vllm:num_requests_running gauge\n'
            'vllm:num_requests_running{model_name="a"} 2.0\n'
            'vllm:num_requests_running{model_name="b"} 1\nfoo 1e3\nbad line\nnan_metric NaN\n')
    assert parse_prometheus(text) == {"vllm:num_requests_running": [2.0, 1.0], "foo": [1000.0]}


def test_construction_and_factory():
    with pytest.raises(ConfigError):
        OpenAIUpstreamExecutor("localhost:8000")
    with pytest.raises(ConfigError):
        OpenAIUpstreamExecutor("http://h", models=())
    ex = create_executor("openai", {"base_url": "http://h:1/v1/", "models": ["a", "b"]})
    assert ex.base_url == "http://h:1" and ex.models() == ("a", "b")
    # load() outside trio never raises
    assert ex.load().running == 0
