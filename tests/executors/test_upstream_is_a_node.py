"""OpenAIUpstreamExecutor with another wwwserve node's real HTTP API as its upstream.

Node X (EchoExecutor) serves its API on 127.0.0.1; the upstream executor passes the executor
conformance suite against it, and a second node Y whose executor proxies to X answers its
users with X's output."""

from __future__ import annotations

import hashlib
from contextlib import aclosing

import pytest
import trio

from wwwserve_p2p.config import ApiSection, NodeConfig, NodeSection, StatusSection
from wwwserve_p2p.core.types import ChatMessage, GenerationRequest
from wwwserve_p2p.executors.echo import EchoExecutor
from wwwserve_p2p.executors.openai_upstream import OpenAIUpstreamExecutor
from wwwserve_p2p.identity import Identity
from wwwserve_p2p.node import open_node
from wwwserve_p2p.testing.conformance import CHECK_NAMES, run_check
from wwwserve_p2p.testing.memory import MemoryNetwork


def _config(i: int, tmp_path) -> NodeConfig:
    return NodeConfig(node=NodeSection(data_dir=str(tmp_path / f"n{i}"), seed=i),
                      status=StatusSection(interval=1.0), api=ApiSection(host="127.0.0.1", port=0))


@pytest.fixture
async def upstream_node(tmp_path, nursery):
    net = MemoryNetwork()
    ready = trio.Event()
    box = {}

    async def run():
        ident = Identity(hashlib.sha256(b"upstream-x").digest())
        async with net.open_overlay(ident) as ov, \
                open_node(_config(0, tmp_path), EchoExecutor(models=("echo",), capacity=4, delay_per_token=0.01),
                          overlay=ov, identity=ident) as node:
            box["node"], box["net"] = node, net
            ready.set()
            await trio.sleep_forever()

    nursery.start_soon(run)
    with trio.fail_after(10):
        await ready.wait()
    return box


# "continuation" is left out: over the OpenAI API a continuation can only be sent as part of
# the prompt, and the echo backend's answer *is* its prompt, so it cannot honour it (a real
# LLM simply continues the text; tests/executors/test_openai_upstream.py checks it there).
@pytest.mark.parametrize("check", [c for c in CHECK_NAMES if c != "continuation"])
async def test_conformance_with_a_node_as_upstream(check, upstream_node):
    url = upstream_node["node"].api_url + "/v1"
    with trio.fail_after(60):
        await run_check(check, lambda: OpenAIUpstreamExecutor(url, capacity=2, timeout=10), "echo")


async def test_a_node_can_proxy_another_node(upstream_node, tmp_path):
    x = upstream_node["node"]
    ex = OpenAIUpstreamExecutor(x.api_url + "/v1", capacity=2)
    await ex.start()
    assert ex.models() == ("echo",)
    ident = Identity(hashlib.sha256(b"proxy-y").digest())
    with trio.fail_after(20):
        async with upstream_node["net"].open_overlay(ident) as ov, \
                open_node(_config(1, tmp_path), ex, overlay=ov, identity=ident) as y:
            req = GenerationRequest("p1", "echo", messages=(ChatMessage("user", "to be or not"),), max_tokens=10)
            async with aclosing(y.generate(req)) as gen:
                chunks = [rc async for rc in gen]
            assert "".join(rc.chunk.text for rc in chunks).strip() == "to be or not"
            assert {rc.executor for rc in chunks} == {y.peer_id}  # Y's executor is the proxy
            assert x.stats.served_local == 1                        # X did the work
    await ex.aclose()
