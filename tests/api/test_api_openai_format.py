"""Unit tests of the pure OpenAI request/response format layer."""

from __future__ import annotations

import pytest

from wwwserve_p2p.api.openai_format import (
    DEFAULT_MAX_TOKENS,
    RequestValidationError,
    decode_json_body,
    error_for_exception,
    models_list,
    parse_chat_request,
    parse_completion_request,
    stream_chunk,
    usage_chunk,
)
from wwwserve_p2p.core.types import ChatMessage, ModelCard, Usage
from wwwserve_p2p.errors import (
    InvalidRequest,
    ModelNotFound,
    NoExecutorAvailable,
    RemoteError,
    RequestTimeout,
)

USER = [{"role": "user", "content": "hi"}]


def test_chat_defaults_and_ids():
    p = parse_chat_request({"model": "m", "messages": USER})
    rq = p.request
    assert p.chat and not p.stream and not p.include_usage
    assert rq.request_id.startswith("chatcmpl-") and len(rq.request_id) == len("chatcmpl-") + 32
    assert rq.messages == (ChatMessage("user", "hi"),)
    assert rq.max_tokens == DEFAULT_MAX_TOKENS
    assert (rq.temperature, rq.top_p, rq.stop, rq.seed) == (1.0, 1.0, (), None)
    assert parse_chat_request({"model": "m", "messages": USER}).request.request_id != rq.request_id


def test_chat_all_params():
    p = parse_chat_request({
        "model": "m",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": None},
        ],
        "max_completion_tokens": 7, "temperature": 0, "top_p": 0.5, "stop": ["x", "", "y"],
        "seed": 3, "stream": True, "stream_options": {"include_usage": True}, "n": 1,
    })
    rq = p.request
    assert rq.messages == (ChatMessage("system", "be brief"), ChatMessage("user", "ab"),
                           ChatMessage("assistant", ""))
    assert (rq.max_tokens, rq.temperature, rq.top_p, rq.stop, rq.seed) == (7, 0.0, 0.5, ("x", "y"), 3)
    assert p.stream and p.include_usage


def test_max_tokens_above_the_cap_is_refused_not_capped():
    with pytest.raises(RequestValidationError, match="limit of 50 tokens") as info:
        parse_chat_request({"model": "m", "messages": USER, "max_tokens": 10**6}, max_tokens_cap=50)
    assert info.value.param == "max_tokens"
    assert parse_chat_request({"model": "m", "messages": USER, "max_tokens": 50},
                              max_tokens_cap=50).request.max_tokens == 50


def test_completion_prompt_forms():
    assert parse_completion_request({"model": "m", "prompt": "abc"}).request.prompt == "abc"
    p = parse_completion_request({"model": "m", "prompt": ["abc"], "stop": "\n"})
    assert p.request.prompt == "abc" and p.request.stop == ("\n",) and not p.chat
    assert p.request.request_id.startswith("cmpl-")
    assert not p.request.is_chat


@pytest.mark.parametrize("body,param", [
    ({"messages": USER}, "model"),
    ({"model": "", "messages": USER}, "model"),
    ({"model": "m"}, "messages"),
    ({"model": "m", "messages": []}, "messages"),
    ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ({"model": "m", "messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
     "messages[0].content"),
    ({"model": "m", "messages": USER, "n": 0}, "n"),
    ({"model": "m", "messages": USER, "n": 17}, "n"),
    ({"model": "m", "messages": USER, "unknown_field": 1}, "unknown_field"),
    ({"model": "m", "messages": USER, "max_tokens": 0}, "max_tokens"),
    ({"model": "m", "messages": USER, "max_tokens": True}, "max_tokens"),
    ({"model": "m", "messages": USER, "temperature": 3}, "temperature"),
    ({"model": "m", "messages": USER, "top_p": 0}, "top_p"),
    ({"model": "m", "messages": USER, "stop": [1]}, "stop"),
    ({"model": "m", "messages": USER, "seed": "x"}, "seed"),
    ({"model": "m", "messages": USER, "stream": "yes"}, "stream"),
    ({"model": "m", "messages": USER, "stream_options": {"include_usage": 1}},
     "stream_options.include_usage"),
])
def test_chat_invalid(body, param):
    with pytest.raises(RequestValidationError) as info:
        parse_chat_request(body)
    assert info.value.param == param
    status, err = error_for_exception(info.value)
    assert status == 400 and err["error"]["param"] == param
    assert err["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("prompt", [None, 3, [], ["a", 1], [[1], ["a"]], [[]], [-1]])
def test_completion_invalid_prompt(prompt):
    with pytest.raises(RequestValidationError):
        parse_completion_request({"model": "m", "prompt": prompt})


@pytest.mark.parametrize("body", [b"{", b"[1]", b"\xff\xfe\x00", b""])
def test_decode_json_body_invalid(body):
    with pytest.raises(RequestValidationError):
        decode_json_body(body)


def test_error_mapping():
    assert error_for_exception(ModelNotFound("m"))[0] == 404
    assert error_for_exception(ModelNotFound("m"))[1]["error"]["code"] == "model_not_found"
    assert error_for_exception(InvalidRequest("x"))[0] == 400
    assert error_for_exception(NoExecutorAvailable("x"))[0] == 503
    assert error_for_exception(RequestTimeout("x", may_have_processed=False))[0] == 504
    assert error_for_exception(RemoteError("oom", "x"))[1]["error"]["code"] == "oom"
    assert error_for_exception(RemoteError("oom", "x"))[0] == 502
    status, body = error_for_exception(KeyError("secret"))
    assert status == 500 and "secret" not in body["error"]["message"]
    assert error_for_exception(ExceptionGroup("g", [ModelNotFound("m")]))[0] == 404
    for exc in (ModelNotFound("m"), InvalidRequest("x"), KeyError()):
        assert set(error_for_exception(exc)[1]["error"]) == {"message", "type", "param", "code"}


def test_stream_chunks_shape():
    p = parse_chat_request({"model": "m", "messages": USER, "stream": True,
                            "stream_options": {"include_usage": True}})
    first = stream_chunk(p, text="He", first=True)
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "He"}
    assert first["usage"] is None
    last = stream_chunk(p, text="", finish_reason="stop", executors=["A", "B", "A"])
    assert last["choices"][0]["delta"] == {} and last["choices"][0]["finish_reason"] == "stop"
    assert last["x_wwwserve"] == {"executor": "A", "executors": ["A", "B"]}
    u = usage_chunk(p, Usage(2, 3))
    assert u["choices"] == [] and u["usage"] == {"prompt_tokens": 2, "completion_tokens": 3,
                                                  "total_tokens": 5}


def test_models_list():
    out = models_list([ModelCard("a", True, ("P",)), ModelCard("b", False, ("Q", "R"))])
    assert out["object"] == "list"
    assert [(m["id"], m["owned_by"]) for m in out["data"]] == [("a", "local"), ("b", "network")]
    assert out["data"][1]["x_wwwserve"] == {"local": False, "peers": ["Q", "R"]}
