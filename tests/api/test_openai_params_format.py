"""Unit tests of the OpenAI parameter handling in api/openai_format.py (issue 14a): choice
fan-out, token-ID prompts, logprobs/penalties/logit_bias mapping, response shapes, and the
parameter table covering OpenAI's chat-completions and completions references."""

from __future__ import annotations

import pytest

from wwwserve_p2p.api.openai_format import (
    CHAT_PARAMS,
    COMPLETION_PARAMS,
    ChoiceResult,
    RequestValidationError,
    completion_response,
    error_for_exception,
    logprobs_json,
    parse_chat_request,
    parse_completion_request,
    sum_usage,
)
from wwwserve_p2p.core.types import TokenLogprob, Usage
from wwwserve_p2p.errors import RemoteError
from wwwserve_p2p.executors.base import invalid

USER = [{"role": "user", "content": "hi"}]

#: OpenAI's API reference, request body parameters (chat completions / legacy completions)
OPENAI_CHAT_REFERENCE = (
    "messages", "model", "audio", "frequency_penalty", "function_call", "functions", "logit_bias",
    "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities", "n",
    "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key", "reasoning_effort",
    "response_format", "safety_identifier", "seed", "service_tier", "stop", "store", "stream",
    "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user",
    "verbosity", "web_search_options")
OPENAI_COMPLETION_REFERENCE = (
    "model", "prompt", "best_of", "echo", "frequency_penalty", "logit_bias", "logprobs",
    "max_tokens", "n", "presence_penalty", "seed", "stop", "stream", "stream_options", "suffix",
    "temperature", "top_p", "user")


def test_the_parameter_tables_cover_the_openai_references():
    assert set(CHAT_PARAMS) == set(OPENAI_CHAT_REFERENCE)
    assert set(COMPLETION_PARAMS) == set(OPENAI_COMPLETION_REFERENCE)
    assert all(v.split(" ")[0] in ("honoured", "executor", "advisory", "refused")
               for v in (*CHAT_PARAMS.values(), *COMPLETION_PARAMS.values()))


def test_choices_fan_out_prompt_major_with_seeds():
    p = parse_completion_request({"model": "m", "prompt": ["a", "b"], "n": 3, "seed": 10})
    reqs = p.all_choices()
    assert [(r.prompt, r.seed) for r in reqs] == [("a", 10), ("a", 11), ("a", 12),
                                                   ("b", 10), ("b", 11), ("b", 12)]
    assert reqs[0] is p.request and len({r.request_id for r in reqs}) == 6
    assert all(r.request_id.startswith(p.request.request_id) for r in reqs)
    with pytest.raises(RequestValidationError) as info:
        parse_completion_request({"model": "m", "prompt": ["a"] * 9, "n": 16})
    assert info.value.param == "n"


def test_token_id_prompts():
    p = parse_completion_request({"model": "m", "prompt": [1, 2, 3]})
    assert p.request.prompt_ids == (1, 2, 3) and p.request.prompt == ""
    p = parse_completion_request({"model": "m", "prompt": [[1], [4, 5]]})
    assert [r.prompt_ids for r in p.all_choices()] == [(1,), (4, 5)]
    assert p.request.features_used() == (("prompt_ids", "prompt"),)


def test_executor_features_map_to_the_request():
    p = parse_chat_request({"model": "m", "messages": USER, "logprobs": True, "top_logprobs": 4,
                            "presence_penalty": 0.5, "frequency_penalty": -1,
                            "logit_bias": {"7": 5, "3": -2.5, "9": 0}})
    r = p.request
    assert (r.logprobs, r.presence_penalty, r.frequency_penalty) == (4, 0.5, -1.0)
    assert r.logit_bias == ((3, -2.5), (7, 5.0))  # sorted, zero biases dropped
    assert [f for f, _ in r.features_used()] == ["logprobs", "penalties", "penalties", "logit_bias"]
    assert parse_chat_request({"model": "m", "messages": USER, "logprobs": False}).request.logprobs is None
    c = parse_completion_request({"model": "m", "prompt": "x", "echo": True, "logprobs": 0, "max_tokens": 0})
    assert (c.request.echo, c.request.logprobs, c.request.max_tokens) == (True, 0, 0)


def test_logprobs_shapes():
    entries = (TokenLogprob("ab", None), TokenLogprob("c", -0.5, (("d", -0.25), ("c", -0.5))))
    comp = parse_completion_request({"model": "m", "prompt": "x", "logprobs": 2})
    assert logprobs_json(comp, entries, offset=3) == {
        "tokens": ["ab", "c"], "token_logprobs": [None, -0.5],
        "top_logprobs": [None, {"d": -0.25, "c": -0.5}], "text_offset": [3, 5]}
    chat = parse_chat_request({"model": "m", "messages": USER, "logprobs": True, "top_logprobs": 1})
    out = logprobs_json(chat, entries[1:])
    assert out == {"content": [{"token": "c", "logprob": -0.5, "bytes": [99], "top_logprobs": [
        {"token": "d", "logprob": -0.25, "bytes": [100]}, {"token": "c", "logprob": -0.5, "bytes": [99]}]}],
        "refusal": None}
    assert logprobs_json(parse_chat_request({"model": "m", "messages": USER}), entries) is None


def test_usage_counts_each_prompt_once_and_sums_completions():
    p = parse_completion_request({"model": "m", "prompt": ["a", "b"], "n": 2})
    u = sum_usage(p, [Usage(3, 1, 1), Usage(3, 2, 1), Usage(5, 4), Usage(5, 8)])
    assert u == Usage(8, 15, 1)
    body = completion_response(p, choices=[ChoiceResult(i, "t", "stop", Usage(3, 1)) for i in (3, 1, 0, 2)])
    assert [c["index"] for c in body["choices"]] == [0, 1, 2, 3]
    assert body["usage"] == {"prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10}
    assert "prompt_tokens_dropped" not in body["x_wwwserve"]


def test_executor_refusals_map_to_400_naming_the_parameter():
    status, body = error_for_exception(invalid("cannot honour 'logit_bias'", "logit_bias"))
    assert status == 400 and body["error"]["param"] == "logit_bias"
    status, body = error_for_exception(RemoteError("invalid_request", "bad"))
    assert status == 400 and body["error"]["code"] == "invalid_request"
