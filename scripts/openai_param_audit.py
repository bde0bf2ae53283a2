"""Audit of the OpenAI request parameters at the API layer (issue 14a): for one example value
of every parameter in OpenAI's chat-completions and completions references, does the node
refuse it (400 naming it), turn it into something the executor receives (the parsed requests
differ from the same body without it), or accept it without any effect ("ignored")?

    PYTHONPATH=src .venv/bin/python scripts/openai_param_audit.py            # this tree
    cd /work/before && PYTHONPATH=src /work/main/.venv/bin/python /work/main/scripts/openai_param_audit.py

Prints one line per parameter and the totals. Executor-level refusals (a parameter the
executor cannot honour) happen later and are not counted here: this is the front door only.
"""

from __future__ import annotations

import dataclasses
import json

from wwwserve_p2p.api import openai_format as f

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
CHAT = {
    "audio": {"voice": "alloy", "format": "wav"}, "frequency_penalty": 1.0,
    "function_call": "auto", "functions": [TOOL["function"]], "logit_bias": {"5": 10},
    "logprobs": True, "max_completion_tokens": 5, "max_tokens": 5, "metadata": {"k": "v"},
    "modalities": ["text", "audio"], "n": 2, "parallel_tool_calls": True,
    "prediction": {"type": "content", "content": "x"}, "presence_penalty": 1.0,
    "prompt_cache_key": "k", "reasoning_effort": "low", "response_format": {"type": "json_object"},
    "safety_identifier": "s", "seed": 7, "service_tier": "flex", "stop": ["x"], "store": True,
    "stream": True, "stream_options": {"include_usage": True}, "temperature": 0.3,
    "tool_choice": "auto", "tools": [TOOL], "top_logprobs": 2, "top_p": 0.5, "user": "u",
    "verbosity": "low", "web_search_options": {},
}
COMPLETION = {
    "best_of": 3, "echo": True, "frequency_penalty": 1.0, "logit_bias": {"5": 10}, "logprobs": 2,
    "max_tokens": 5, "n": 2, "presence_penalty": 1.0, "seed": 7, "stop": ["x"], "stream": True,
    "stream_options": {"include_usage": True}, "suffix": "end", "temperature": 0.3, "top_p": 0.5,
    "user": "u",
}
NEEDS = {"top_logprobs": {"logprobs": True}, "stream_options": {"stream": True}}  # only act with another


def _shape(parsed) -> str:
    out = {k: v for k, v in dataclasses.asdict(parsed).items() if k not in ("created",)}

    def scrub(x):
        if isinstance(x, dict):
            return {k: scrub(v) for k, v in x.items() if k != "request_id"}
        if isinstance(x, (list, tuple)):
            return [scrub(v) for v in x]
        return x
    return json.dumps(scrub(out), sort_keys=True, default=str)


def audit(parse, base: dict, params: dict) -> dict[str, str]:
    out = {}
    for name, value in params.items():
        extra = NEEDS.get(name, {})
        try:
            ref = _shape(parse({**base, **extra}))
        except f.RequestValidationError:
            ref = ""
        try:
            got = _shape(parse({**base, **extra, name: value}))
        except f.RequestValidationError as exc:
            out[name] = f"refused (param={exc.param})"
            continue
        out[name] = "honoured (changes the request)" if got != ref else "IGNORED (accepted, no effect)"
    return out


def main() -> None:
    totals: dict[str, int] = {}
    for mode, parse, base, params in (
            ("chat", f.parse_chat_request, {"model": "m", "messages": [{"role": "user", "content": "x"}]}, CHAT),
            ("completions", f.parse_completion_request, {"model": "m", "prompt": "x"}, COMPLETION)):
        for name, verdict in audit(parse, base, params).items():
            print(f"{mode:12} {name:22} {verdict}")
            key = verdict.split(" ")[0]
            totals[f"{mode} {key}"] = totals.get(f"{mode} {key}", 0) + 1
    print(json.dumps(totals, sort_keys=True))


if __name__ == "__main__":
    main()
