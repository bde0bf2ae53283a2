"""Issue 15: a malformed-input corpus against the real API app (an in-memory echo node):
no response >= 500 for any of it, and requests over the peer protocol's limits (stop
strings, messages, prompt size) are refused by the API with 400 instead of being sent to
peers that would call them malformed."""

from __future__ import annotations

import json

import httpx
import trio

from wwwserve_p2p.api import create_app
from wwwserve_p2p.executors import EchoExecutor
from wwwserve_p2p.testing.swarm import open_swarm

CHAT = "/v1/chat/completions"
COMP = "/v1/completions"


def msg(content="hi"):
    return [{"role": "user", "content": content}]


def corpus() -> list[tuple[str, str, bytes | str | dict]]:
    """(name, path, body): dicts are sent as JSON, bytes/str raw."""
    deep = "[" * 5000 + "]" * 5000
    return [
        ("deep array", CHAT, deep),
        ("deep object", CHAT, '{"a":' * 3000 + "1" + "}" * 3000),
        ("deep in messages", CHAT, '{"model":"echo","messages":' + "[" * 2000 + "]" * 2000 + "}"),
        ("lone surrogate in content", CHAT, '{"model":"echo","messages":[{"role":"user","content":"\\ud800"}]}'),
        ("lone surrogate in model", CHAT, '{"model":"\\udfff","messages":[{"role":"user","content":"x"}]}'),
        ("lone surrogate in prompt", COMP, '{"model":"echo","prompt":"a\\ud800b"}'),
        ("lone surrogate stream", CHAT, '{"model":"echo","stream":true,"messages":[{"role":"user","content":"\\ud800"}]}'),
        ("seed 2^63", CHAT, {"model": "echo", "messages": msg(), "seed": 2**63}),
        ("seed 2^64", COMP, {"model": "echo", "prompt": "x", "seed": 2**64}),
        ("seed -2^63-1", CHAT, {"model": "echo", "messages": msg(), "seed": -(2**63) - 1}),
        ("huge int max_tokens", CHAT, {"model": "echo", "messages": msg(), "max_tokens": 10**30}),
        ("huge int n", CHAT, {"model": "echo", "messages": msg(), "n": 10**20}),
        ("9 stop strings", CHAT, {"model": "echo", "messages": msg(), "stop": [f"s{i}" for i in range(9)]}),
        ("16 stop strings", COMP, {"model": "echo", "prompt": "x", "stop": [f"s{i}" for i in range(16)]}),
        ("257 messages", CHAT, {"model": "echo", "messages": msg() * 257}),
        ("prompt over 512 KiB", COMP, {"model": "echo", "prompt": "x" * (512 * 1024 + 1)}),
        ("content over 512 KiB", CHAT, {"model": "echo", "messages": msg("y" * (512 * 1024 + 1))}),
        ("not json", CHAT, b"\xff\xfe{"),
        ("empty", CHAT, b""),
        ("number", CHAT, "1e999999"),
        ("nan", CHAT, '{"model":"echo","messages":[{"role":"user","content":"x"}],"temperature":NaN}'),
        ("infinity", CHAT, '{"model":"echo","messages":[{"role":"user","content":"x"}],"top_p":Infinity}'),
        ("float max_tokens", CHAT, {"model": "echo", "messages": msg(), "max_tokens": 1.5}),
        ("null everything", CHAT, {"model": None, "messages": None}),
        ("messages object", CHAT, {"model": "echo", "messages": {"role": "user"}}),
        ("content list of junk", CHAT, {"model": "echo", "messages": [{"role": "user", "content": [1, None, {}]}]}),
        ("stop dict", CHAT, {"model": "echo", "messages": msg(), "stop": {"a": 1}}),
        ("logit_bias junk", CHAT, {"model": "echo", "messages": msg(), "logit_bias": {"x": "y"}}),
        ("huge key", CHAT, "{" + '"' + "k" * 900_000 + '":1}'),
        ("body over cap", CHAT, b"{" + b" " * (2 * 1024 * 1024) + b"}"),
        ("many keys", CHAT, "{" + ",".join(f'"k{i}":{i}' for i in range(50_000)) + "}"),
        ("unknown model", CHAT, {"model": "nope", "messages": msg()}),
        ("role junk", CHAT, {"model": "echo", "messages": [{"role": "x" * 100, "content": "y"}]}),
        ("prompt token ids huge", COMP, {"model": "echo", "prompt": [2**70]}),
        ("prompt nested list", COMP, {"model": "echo", "prompt": [[[[1]]]]}),
        ("temperature huge", CHAT, {"model": "echo", "messages": msg(), "temperature": 1e308}),
        ("array top level", COMP, [1, 2, 3]),
        ("string top level", COMP, '"x"'),
    ]


REFUSED = ("9 stop strings", "16 stop strings", "257 messages", "prompt over 512 KiB", "content over 512 KiB",
           "seed 2^63", "seed 2^64", "seed -2^63-1", "deep array", "deep object", "deep in messages",
           "lone surrogate in content", "lone surrogate in prompt", "lone surrogate stream")


async def test_no_server_error_for_any_malformed_input_and_protocol_limits_refused_with_400() -> None:
    bad: list[tuple[str, int, str]] = []
    async with open_swarm([EchoExecutor(models=("echo",))]) as swarm:
        app = create_app(swarm.nodes[0])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://n") as http:
            for name, path, body in corpus():
                raw = json.dumps(body).encode() if isinstance(body, (dict, list)) else \
                    body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
                with trio.fail_after(30):
                    r = await http.post(path, content=raw, headers={"content-type": "application/json"})
                if r.status_code >= 500 or (name in REFUSED and (r.status_code not in (400, 413)
                                                                  or not r.json()["error"]["message"])):
                    bad.append((name, r.status_code, r.text[:200]))
            # a valid request still works through the middleware
            r = await http.post(CHAT, json={"model": "echo", "messages": msg("a b c"), "seed": 2**63 - 1})
            assert r.status_code == 200 and "a b c" in r.json()["choices"][0]["message"]["content"]
    assert not bad, bad
