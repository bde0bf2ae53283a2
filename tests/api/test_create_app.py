"""``create_app``: the node's ASGI app mounted inside another Starlette app (called through
httpx's ASGI transport and a real Hypercorn server), and its per-route HTTP metrics labels."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import trio
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from wwwserve_p2p.api import create_app
from wwwserve_p2p.api.app import OTHER_ROUTE_LABEL
from wwwserve_p2p.core.types import GenerationChunk, GenerationRequest, ModelCard, RoutedChunk, Usage
from wwwserve_p2p.executors import EchoExecutor
from wwwserve_p2p.metrics import NodeMetrics
from wwwserve_p2p.testing.swarm import open_swarm

DEADLINE = 30.0


class LedgerNode:
    """A minimal ServingNode with the ledger and admin endpoints' methods."""

    peer_id = "12D3KooWSelf"

    def __init__(self) -> None:
        self.metrics = NodeMetrics()
        self.denied: list[str] = []

    def model_cards(self) -> list[ModelCard]:
        return [ModelCard("m", True)]

    async def generate(self, request: GenerationRequest) -> AsyncIterator[RoutedChunk]:
        yield RoutedChunk(GenerationChunk(text="hi", finish_reason="stop",
                                          usage=Usage(1, 1)), self.peer_id)

    def status(self) -> dict[str, Any]:
        return {"peer_id": self.peer_id}

    def ledger_summary(self) -> dict[str, Any]:
        return {"blocks": 0}

    def ledger_accounts(self) -> dict[str, Any]:
        return {"accounts": {}}

    def ledger_blocks(self, author: str, lo: int = 1, hi: int | None = None, limit: int = 100) -> dict[str, Any]:
        return {"blocks": []}

    def deny_peers(self, peers: list[str]) -> list[str]:
        self.denied = list(peers)
        return self.denied

    def transfer(self, to: str, amount: int) -> dict[str, Any]:
        return {"to": to, "amount": amount}


def http_count(node: Any, path: str, status: int) -> float:
    return node.metrics.registry.get_sample_value(
        "wwwserve_http_requests_total", {"path": path, "status": str(status)}) or 0.0


def labels(node: Any) -> set[str]:
    return {s.labels["path"] for m in node.metrics.registry.collect() if m.name == "wwwserve_http_requests"
            for s in m.samples if s.name == "wwwserve_http_requests_total"}


async def test_every_route_has_its_own_metrics_label_and_unknown_paths_share_other():
    node = LedgerNode()
    app = create_app(node, admin=True)
    route_paths = {r.path for r in app.routes}
    assert {"/ledger", "/ledger/accounts", "/ledger/blocks", "/admin/denied-peers"} <= route_paths
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as http:
        for path in sorted(route_paths - {"/v1/chat/completions", "/v1/completions", "/admin/denied-peers",
                                          "/admin/transfer", "/dashboard/static/{name}",
                                          "/v1/models/{model_id:path}"}):
            assert (await http.get(path)).status_code == 200, path
        assert (await http.get("/v1/models/m")).status_code == 200
        assert (await http.get("/dashboard/static/dashboard.js")).status_code == 200
        assert (await http.post("/admin/transfer", json={"to": "p", "amount": 1})).status_code == 200
        assert (await http.put("/admin/denied-peers", json={"peers": ["12D3KooWBad"]})).status_code == 200
        assert node.denied == ["12D3KooWBad"]
        r = await http.post("/v1/completions", json={"model": "m", "prompt": "x"})
        assert r.status_code == 200 and r.json()["choices"][0]["text"] == "hi"
        r = await http.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 200
        assert (await http.get("/admin/denied-peers")).status_code == 405  # wrong method: its route
        assert (await http.get("/ledger/blocks?from=0")).status_code == 400
        for unknown in ("/nope", "/ledger/nope", "/v1/chat", "/admin"):
            assert (await http.get(unknown)).status_code == 404, unknown
    for path in route_paths:
        assert http_count(node, path, 200) == 1, path
    assert http_count(node, "/admin/denied-peers", 405) == 1
    assert http_count(node, "/ledger/blocks", 400) == 1
    assert http_count(node, OTHER_ROUTE_LABEL, 404) == 4
    assert labels(node) == route_paths | {OTHER_ROUTE_LABEL}


async def test_admin_route_absent_by_default_and_counted_as_other():
    node = LedgerNode()
    app = create_app(node)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as http:
        assert (await http.put("/admin/denied-peers", json={"peers": []})).status_code == 404
    assert http_count(node, OTHER_ROUTE_LABEL, 404) == 1


def host_app(node: Any) -> Starlette:
    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("host app")

    return Starlette(routes=[Route("/", home), Mount("/llm", app=create_app(node))])


async def test_create_app_mounted_in_another_starlette_app_serves_a_real_node():
    with trio.fail_after(DEADLINE):
        async with open_swarm([EchoExecutor(models=("echo",))]) as swarm:
            node = swarm[0]
            transport = httpx.ASGITransport(app=host_app(node))
            async with httpx.AsyncClient(transport=transport, base_url="http://host") as http:
                assert (await http.get("/")).text == "host app"
                r = await http.post("/llm/v1/chat/completions", json={
                    "model": "echo", "messages": [{"role": "user", "content": "hello mounted world"}],
                    "max_tokens": 16})
                assert r.status_code == 200, r.text
                assert "hello mounted world" in r.json()["choices"][0]["message"]["content"]
                assert r.headers["x-wwwserve-executor"] == node.peer_id
                models = (await http.get("/llm/v1/models")).json()
                assert "echo" in [m["id"] for m in models["data"]]
                assert (await http.get("/llm/status")).json()["peer_id"] == node.peer_id
                assert (await http.get("/llm/ledger")).status_code == 200
                assert (await http.get("/llm/nope")).status_code == 404
            # labels are the mounted app's own route templates, without the mount prefix
            assert http_count(node, "/v1/chat/completions", 200) == 1
            assert http_count(node, "/ledger", 200) == 1
            assert http_count(node, OTHER_ROUTE_LABEL, 404) == 1


async def test_create_app_mounted_under_hypercorn_streams():
    from hypercorn.config import Config
    from hypercorn.trio import serve

    with trio.fail_after(DEADLINE):
        async with open_swarm([EchoExecutor(models=("echo",))]) as swarm:
            node = swarm[0]
            hc = Config()
            hc.bind = ["127.0.0.1:0"]
            hc.errorlog = None
            async with trio.open_nursery() as inner:
                binds = await inner.start(serve, host_app(node), hc)
                base = binds[0]
                async with httpx.AsyncClient(base_url=base) as http:
                    async with http.stream("POST", "/llm/v1/chat/completions", json={
                            "model": "echo", "stream": True, "max_tokens": 16,
                            "messages": [{"role": "user", "content": "stream me please"}]}) as r:
                        assert r.status_code == 200
                        events = [line[6:] async for line in r.aiter_lines() if line.startswith("data: ")]
                assert events[-1] == "[DONE]"
                text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                               for e in events[:-1] if json.loads(e)["choices"])
                assert "stream me please" in text
                inner.cancel_scope.cancel()
