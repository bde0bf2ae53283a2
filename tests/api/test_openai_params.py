"""Every OpenAI chat/completions parameter through a real node with the official ``openai``
client: honoured (the test shows its effect) or refused with a 400 naming it (issue 14a).

Two echo nodes: ``a`` offloads every request it can to ``b``, so each honoured parameter here
also crosses the overlay (the delegation request carries it; ``X-WWWServe-Executor`` is b).
The echo model's answer is the prompt's words (deterministic; every token has logprob 0).
What needs a real model (temperature, seed, penalties, logit bias, token-ID prompts, real
logprobs) is in test_openai_params_hf.py.
"""

from __future__ import annotations

import httpx
import openai
import pytest

from openai_nodes import ECHO, echo_network
from wwwserve_p2p.localnet import wait_for_mesh

pytestmark = pytest.mark.real

MSG = [{"role": "user", "content": "alpha beta gamma delta"}]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with echo_network(tmp_path_factory.mktemp("openai-params")) as nodes:
        yield nodes


@pytest.fixture(scope="module")
def a(net):
    return net[0]


@pytest.fixture(scope="module")
def b(net):
    return net[1]


@pytest.fixture(scope="module")
def client(a):
    with openai.OpenAI(base_url=a.api_url + "/v1", api_key="x", max_retries=0, timeout=30) as c:
        yield c


def _rejected(node) -> float:
    text = httpx.get(node.api_url + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("wwwserve_delegated_total") and 'decision="rejected"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _on_b(net, call):
    """``call()`` (a ``with_raw_response`` request to a) until b executed it: on a loaded
    machine b may look suspect to a for a moment and a then serves the request itself."""
    a, b = net
    for _ in range(8):
        raw = call()
        if raw.headers["x-wwwserve-executor"] == b.peer_id:
            return raw
        wait_for_mesh(net, timeout=30)
    raise AssertionError("a never offloaded the request to b")


# ------------------------------------------------------------------ honoured (effect shown)

def test_chat_basics_run_on_the_peer(client, net):
    raw = _on_b(net, lambda: client.chat.completions.with_raw_response.create(
        model=ECHO, messages=MSG, max_tokens=3))  # offloaded, parameters kept
    r = raw.parse()
    assert r.choices[0].message.content == "alpha beta gamma "  # max_tokens=3: cut
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3
    r = client.chat.completions.create(model=ECHO, messages=MSG, max_completion_tokens=2)
    assert r.choices[0].message.content == "alpha beta "


def test_stop_cuts_before_the_stop_string(client):
    r = client.chat.completions.create(model=ECHO, messages=MSG, stop=["gam", "zzz"])
    assert r.choices[0].message.content == "alpha beta " and r.choices[0].finish_reason == "stop"
    r = client.completions.create(model=ECHO, prompt="one two three", stop="two")
    assert r.choices[0].text == "one "


def test_n_gives_n_choices(client):
    r = client.chat.completions.create(model=ECHO, messages=MSG, n=3, max_tokens=2)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert all(c.message.content == "alpha beta " for c in r.choices)
    assert r.usage.completion_tokens == 6 and r.usage.prompt_tokens == 4  # prompt counted once
    stream = client.chat.completions.create(model=ECHO, messages=MSG, n=2, stream=True,
                                            stream_options={"include_usage": True})
    texts = {0: "", 1: ""}
    usage = None
    for chunk in stream:
        for c in chunk.choices:
            texts[c.index] += c.delta.content or ""
        usage = chunk.usage or usage
    assert texts == {0: "alpha beta gamma delta", 1: "alpha beta gamma delta"}
    assert usage.completion_tokens == 8


def test_best_of_equal_to_n_is_accepted(client):
    r = client.completions.create(model=ECHO, prompt="x y", n=2, best_of=2)
    assert len(r.choices) == 2


def test_several_prompts_one_choice_each(client):
    r = client.completions.create(model=ECHO, prompt=["one two", "three"], max_tokens=5)
    assert [(c.index, c.text) for c in r.choices] == [(0, "one two"), (1, "three")]
    r = client.completions.create(model=ECHO, prompt=["p q", "r"], n=2)
    assert [c.text for c in r.choices] == ["p q", "p q", "r", "r"]


def test_chat_logprobs_and_top_logprobs(client, net):
    raw = _on_b(net, lambda: client.chat.completions.with_raw_response.create(
        model=ECHO, messages=MSG, logprobs=True, top_logprobs=1, max_tokens=2))
    content = raw.parse().choices[0].logprobs.content
    assert [t.token for t in content] == ["alpha ", "beta "]
    assert all(t.logprob == 0.0 and [x.token for x in t.top_logprobs] == [t.token] for t in content)
    r = client.chat.completions.create(model=ECHO, messages=MSG, max_tokens=2)
    assert r.choices[0].logprobs is None  # not asked, not given


def test_chat_logprobs_streamed(client):
    stream = client.chat.completions.create(model=ECHO, messages=MSG, logprobs=True, stream=True)
    tokens = [t.token for chunk in stream for c in chunk.choices if c.logprobs
              for t in c.logprobs.content]
    assert tokens == ["alpha ", "beta ", "gamma ", "delta"]


def test_completion_echo_logprobs_and_max_tokens_zero(client, net):
    raw = _on_b(net, lambda: client.completions.with_raw_response.create(
        model=ECHO, prompt="to be or", echo=True, logprobs=1, max_tokens=0))
    c = raw.parse().choices[0]
    assert c.text == "to be or"  # the prompt, nothing generated
    assert c.logprobs.tokens == ["to", "be", "or"]
    assert c.logprobs.token_logprobs == [None, 0.0, 0.0]
    assert c.logprobs.top_logprobs[0] is None and c.logprobs.top_logprobs[1] == {"be": 0.0}
    r = client.completions.create(model=ECHO, prompt="to be", echo=True, max_tokens=5)
    assert r.choices[0].text == "to beto be"  # prompt, then the echo model's answer
    assert r.usage.completion_tokens == 2


def test_completion_logprobs_text_offset(client):
    r = client.completions.create(model=ECHO, prompt="ab cd ef", logprobs=0)
    lp = r.choices[0].logprobs
    assert lp.tokens == ["ab ", "cd ", "ef"] and lp.text_offset == [0, 3, 6]


def test_advisory_and_noop_values_accepted(client):
    r = client.chat.completions.create(
        model=ECHO, messages=MSG, max_tokens=1, user="u-1", safety_identifier="s",
        prompt_cache_key="k", store=False, service_tier="auto", modalities=["text"],
        response_format={"type": "text"}, tool_choice="none", presence_penalty=0,
        frequency_penalty=0, logit_bias={}, seed=3, temperature=0.5, top_p=0.9)
    assert r.choices[0].message.content == "alpha "


def test_models_and_model_by_id(client):
    assert ECHO in [m.id for m in client.models.list()]
    m = client.models.retrieve(ECHO)
    assert m.id == ECHO and m.object == "model"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert info.value.body["code"] == "model_not_found"


# ------------------------------------------------------------------ refused (message shown)

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
CHAT_REFUSED = [
    ("tools", {"tools": [TOOL]}, "tool calling"),
    ("tool_choice", {"tool_choice": "auto"}, "tool calling"),
    ("parallel_tool_calls", {"parallel_tool_calls": True}, "tool"),
    ("functions", {"functions": [TOOL["function"]]}, "function calling"),
    ("function_call", {"function_call": "auto"}, "function calling"),
    ("response_format", {"response_format": {"type": "json_object"}}, "JSON"),
    ("response_format", {"response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "object"}}}}, "JSON"),
    ("audio", {"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
    ("modalities", {"modalities": ["text", "audio"]}, "text"),
    ("prediction", {"prediction": {"type": "content", "content": "x"}}, "predicted"),
    ("reasoning_effort", {"reasoning_effort": "low"}, "reasoning"),
    ("verbosity", {"verbosity": "low"}, "verbosity"),
    ("web_search_options", {"web_search_options": {}}, "web search"),
    ("metadata", {"metadata": {"k": "v"}}, "stored"),
    ("store", {"store": True}, "stored"),
    ("service_tier", {"service_tier": "flex"}, "auto"),
    ("stream_options.include_obfuscation", {"stream": True, "stream_options": {
        "include_obfuscation": True}}, "padded"),
    ("top_logprobs", {"top_logprobs": 2}, "requires 'logprobs'"),
    ("top_logprobs", {"logprobs": True, "top_logprobs": 21}, "[0, 20]"),
    ("n", {"n": 17}, "[1, 16]"),
    ("max_tokens", {"max_tokens": 0}, ">= 1"),
    ("presence_penalty", {"presence_penalty": 3}, "[-2, 2]"),
    ("logit_bias", {"logit_bias": {"x": 1}}, "token ids"),
    ("messages[0].name", {"messages": [{"role": "user", "content": "x", "name": "bob"}]},
     "not supported"),
    ("messages[0].role", {"messages": [{"role": "tool", "content": "x", "tool_call_id": "1"}]},
     "tool"),
    ("no_such_param", {"extra_body": {"no_such_param": 1}}, "Unrecognized"),
]


@pytest.mark.parametrize("param,kwargs,words", CHAT_REFUSED, ids=[c[0] for c in CHAT_REFUSED])
def test_chat_parameter_refused_with_400(client, param, kwargs, words):
    kwargs = {"model": ECHO, "messages": MSG, **kwargs}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(**kwargs)
    err = info.value.body
    assert info.value.status_code == 400 and err["param"] == param, err
    assert words in err["message"] and err["type"] == "invalid_request_error"


COMPLETION_REFUSED = [
    ("suffix", {"suffix": "end"}, "fill-in-the-middle"),
    ("best_of", {"best_of": 3}, "best_of"),
    ("logprobs", {"logprobs": 6}, "[0, 5]"),
    ("max_tokens", {"max_tokens": 0}, "0 only with echo"),
    ("echo", {"extra_body": {"echo": "yes"}}, "boolean"),
    ("prompt", {"prompt": [[1, 2], "x"]}, "token ids"),
]


@pytest.mark.parametrize("param,kwargs,words", COMPLETION_REFUSED, ids=[c[0] for c in COMPLETION_REFUSED])
def test_completion_parameter_refused_with_400(client, param, kwargs, words):
    kwargs = {"model": ECHO, "prompt": "x", **kwargs}
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(**kwargs)
    err = info.value.body
    assert err["param"] == param and words in err["message"], err


# ------------------------------------------------------------------ executor capabilities

@pytest.mark.parametrize("param,kwargs", [
    ("presence_penalty", {"presence_penalty": 0.5}),
    ("frequency_penalty", {"frequency_penalty": -0.5}),
    ("logit_bias", {"logit_bias": {"12": 3}}),
])
def test_what_the_echo_peer_cannot_honour_is_declined_then_refused(client, net, param, kwargs):
    """``b``'s echo executor cannot apply penalties or a logit bias: it declines the probe
    (its ``rejected`` counter grows), ``a`` queues locally and its own echo executor refuses
    with a 400 naming the parameter (every time; b is probed whenever a sees it alive)."""
    b = net[1]
    for _ in range(8):
        before = _rejected(b)
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model=ECHO, messages=MSG, **kwargs)
        assert info.value.body["param"] == param
        assert f"cannot honour '{param}'" in info.value.body["message"]
        if _rejected(b) >= before + 1:
            return
        wait_for_mesh(net, timeout=30)
    raise AssertionError("b never saw (and declined) the probe")


def test_token_id_prompt_refused_by_the_echo_executor(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=ECHO, prompt=[1, 2, 3])
    assert info.value.body["param"] == "prompt" and "cannot honour" in info.value.body["message"]


# ------------------------------------------------------------------ LiteLLM and LangChain

@pytest.mark.slow  # importing litellm alone takes 10-50 s on 2 loaded cores
def test_litellm_honoured_and_refused(a, b, monkeypatch):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download at import
    litellm = pytest.importorskip("litellm")
    kw = {"model": f"openai/{ECHO}", "api_base": a.api_url + "/v1", "api_key": "x", "num_retries": 0}
    r = litellm.completion(messages=MSG, max_tokens=3, stop=["gamma"], **kw)
    assert r.choices[0].message.content == "alpha beta " and r.choices[0].finish_reason == "stop"
    r = litellm.completion(messages=MSG, n=2, max_tokens=1, logprobs=True, top_logprobs=1, **kw)
    assert [c.message.content for c in r.choices] == ["alpha ", "alpha "]
    assert r.choices[0].logprobs["content"][0]["token"] == "alpha "
    chunks = list(litellm.completion(messages=MSG, stream=True, **kw))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "alpha beta gamma delta"
    with pytest.raises(litellm.BadRequestError, match="tool calling"):
        litellm.completion(messages=MSG, tools=[TOOL], **kw)
    with pytest.raises(litellm.BadRequestError, match="presence_penalty"):
        litellm.completion(messages=MSG, presence_penalty=1.0, **kw)


def test_langchain_honoured_and_refused(a):
    pytest.importorskip("langchain_openai")
    from langchain_core.messages import HumanMessage
    from langchain_openai import ChatOpenAI, OpenAI
    from pydantic import BaseModel

    llm = ChatOpenAI(model=ECHO, base_url=a.api_url + "/v1", api_key="x", max_retries=0,
                     max_tokens=2, stop=["zzz"])
    assert llm.invoke("one two three").content == "one two "
    assert "".join(c.content for c in llm.stream("four five")) == "four five"
    lp = ChatOpenAI(model=ECHO, base_url=a.api_url + "/v1", api_key="x", max_retries=0,
                    logprobs=True, top_logprobs=1).invoke("six seven")
    assert [t["token"] for t in lp.response_metadata["logprobs"]["content"]] == ["six ", "seven"]
    many = ChatOpenAI(model=ECHO, base_url=a.api_url + "/v1", api_key="x", max_retries=0, n=2)
    gens = many.generate([[HumanMessage("eight nine")]]).generations[0]
    assert [g.text for g in gens] == ["eight nine", "eight nine"]

    class Answer(BaseModel):
        text: str

    with pytest.raises(openai.BadRequestError) as info:  # structured output: refused, not None
        llm.with_structured_output(Answer).invoke("x")
    assert info.value.body["param"] == "response_format"
    with pytest.raises(openai.BadRequestError) as info:
        llm.with_structured_output(Answer, method="function_calling").invoke("x")
    assert info.value.body["param"] in ("tools", "tool_choice")
    legacy = OpenAI(model=ECHO, base_url=a.api_url + "/v1", api_key="x", max_retries=0,
                    max_tokens=3, logprobs=0)
    assert legacy.invoke("ten eleven twelve thirteen") == "ten eleven twelve "
