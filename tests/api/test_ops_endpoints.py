"""Operator endpoints and metrics (issue 14 part B): /health (503 until ready), /version, the
dashboard page/assets/data, /admin/transfer, vLLM-style executor metrics counting local and
delegated work, the libp2p noise filter and its metric, and the automatic Receive of a
transfer (in-memory swarm, virtual time)."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import trio

from wwwserve_p2p import EchoExecutor, GenerationRequest, NodeConfig, open_node
from wwwserve_p2p.api import create_app
from wwwserve_p2p.config import LedgerSection
from wwwserve_p2p.core.ledger import Genesis, LedgerParams
from wwwserve_p2p.core.policy import OffloadPolicy
from wwwserve_p2p.logs import Libp2pNoiseFilter, classify, install_libp2p_filter, suppressed_counts
from wwwserve_p2p.metrics import NodeMetrics
from wwwserve_p2p.testing.swarm import collect_text, open_swarm, swarm_identity

CREDIT = 1_000_000


def asgi(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node")


def sample(node_or_metrics: Any, name: str, labels: dict[str, str]) -> float:
    m = getattr(node_or_metrics, "metrics", node_or_metrics)
    return m.registry.get_sample_value(name, labels) or 0.0


class StartingNode:
    peer_id = "12D3KooWStarting"
    ready = False

    def __init__(self) -> None:
        self.metrics = NodeMetrics()

    def status(self) -> dict[str, Any]:
        return {"peer_id": self.peer_id}


async def test_health_is_503_until_ready_then_200_and_needs_no_key(tmp_path):
    from wwwserve_p2p.api.auth import KeysFile
    KeysFile(tmp_path / "k.json").add("a")
    node = StartingNode()
    async with asgi(create_app(node, keys_file=str(tmp_path / "k.json"))) as http:
        r = await http.get("/health")
        assert r.status_code == 503 and r.json()["status"] == "starting" and r.headers["retry-after"] == "1"
        node.ready = True
        r = await http.get("/health")
        assert r.status_code == 200 and r.json() == {"status": "ok", "peer_id": node.peer_id}
        assert (await http.get("/v1/models")).status_code == 401  # keys on: /v1 needs one, /health not


async def test_version_dashboard_page_assets_data_and_metrics_of_a_local_request():
    async with open_node(NodeConfig.embedded(), EchoExecutor(models=("echo",))) as node:
        assert node.ready
        app = create_app(node)
        async with asgi(app) as http:
            v = (await http.get("/version")).json()
            assert v["version"] and v["network_id"] == node.network_id and v["peer_id"] == node.peer_id
            assert "/wwwserve/delegate/1" in v["protocols"]
            for path in ("/", "/dashboard"):
                page = await http.get(path)
                assert page.status_code == 200 and "text/html" in page.headers["content-type"]
                assert 'src="dashboard/static/dashboard.js"' in page.text and "http" not in page.text.split(
                    "<body>")[1].replace("http://www.w3.org", "")  # no CDN
            js = await http.get("/dashboard/static/dashboard.js")
            assert js.status_code == 200 and "dashboard/data" in js.text and "javascript" in js.headers["content-type"]
            assert (await http.get("/dashboard/static/nope.js")).status_code == 404
            r = await http.post("/v1/completions", json={"model": "echo", "prompt": "one two three", "max_tokens": 2})
            assert r.status_code == 200
            data = (await http.get("/dashboard/data")).json()
        assert data["unit"] == "credits" and data["node"]["peer_id"] == node.peer_id
        assert data["node"]["models"] == ["echo"] and data["peers"] == []
        assert data["history"][-1]["requests"] == 1 and data["history"][-1]["latency_sum_s"] > 0
        assert data["ledger"]["state_hash"] == node.ledger.state_hash()
        assert {h["author"] for h in data["ledger"]["heads"]} <= {node.peer_id}
        # the request ran on our executor: counted as local work under the vLLM-style names
        assert sample(node, "wwwserve_tokens_generated_total", {"origin": "local"}) == 2
        lab = {"model_name": "echo", "origin": "local"}
        assert sample(node, "wwwserve_generation_tokens_total", lab) == 2
        assert sample(node, "wwwserve_prompt_tokens_total", lab) == 3
        assert sample(node, "wwwserve_time_per_output_token_seconds_count", lab) == 1
        assert sample(node, "wwwserve_time_to_first_token_seconds_count", lab) == 1
        assert sample(node, "wwwserve_request_queue_time_seconds_count", {"model_name": "echo"}) == 1


async def test_transfer_endpoint_only_with_admin_and_validates(tmp_path):
    async with open_node(NodeConfig.embedded(), EchoExecutor(models=("echo",))) as node:
        async with asgi(create_app(node)) as http:
            assert (await http.post("/admin/transfer", json={})).status_code == 404  # admin off
        other = swarm_identity(7, 1).peer_id
        async with asgi(create_app(node, admin=True)) as http:
            for body, code in (({"to": "nope", "amount": 5}, "invalid_value"),
                               ({"to": other, "amount": -1}, "invalid_value"),
                               ({"to": node.peer_id, "amount": 5}, "invalid_value"),
                               ({"to": other, "amount": 10**15}, "insufficient_funds"),
                               ([1], "invalid_value")):
                r = await http.post("/admin/transfer", json=body)
                assert r.status_code == 400 and r.json()["error"]["code"] == code, (body, r.text)
            # a dev network has no allocations: nothing provable to spend
            r = await http.post("/admin/transfer", json={"to": other, "credits": 1})
            assert r.status_code == 400 and "insufficient funds" in r.json()["error"]["message"]


async def test_a_transfer_is_received_automatically_by_the_recipient(autojump_clock):
    genesis = Genesis("ops-transfer", LedgerParams(), ((swarm_identity(0, 0).peer_id, 100 * CREDIT),))
    config = NodeConfig(policy=OffloadPolicy(stake=0), ledger=LedgerSection(block_interval=0.5, sync_interval=1.0))
    async with open_swarm([EchoExecutor(models=("a",)), EchoExecutor(models=("b",))], config=config,
                          genesis=genesis) as swarm:
        alice, bob = swarm.nodes
        await trio.sleep(3)
        assert bob.ledger.account(bob.peer_id).balance == 0
        with trio.fail_after(60):
            spendable = alice.ledger.spendable(alice.peer_id)
            out = alice.transfer(bob.peer_id, 10 * CREDIT)
            assert out["spendable_after"] == spendable - 10 * CREDIT and out["to"] == bob.peer_id
            while not (bob.ledger.account(bob.peer_id).balance == 10 * CREDIT
                       and alice.ledger.account(bob.peer_id).balance == 10 * CREDIT
                       and alice.ledger.in_flight() == 0):
                await trio.sleep(0.5)
        assert bob.ledger.provable(bob.peer_id) == 10 * CREDIT  # its own Receive proves it


async def test_work_for_peers_is_counted_as_peer_tokens(autojump_clock):
    async with open_swarm([EchoExecutor(models=("a",)), EchoExecutor(models=("b",))]) as swarm:
        server, client = swarm.nodes
        await trio.sleep(3)
        with trio.fail_after(60):
            text = await collect_text(client, GenerationRequest("r1", "a", prompt="for a peer", max_tokens=4))
        assert text == "for a peer"
        assert sample(server, "wwwserve_tokens_generated_total", {"origin": "peer"}) == 3
        assert sample(server, "wwwserve_generation_tokens_total", {"model_name": "a", "origin": "peer"}) == 3
        assert sample(server, "wwwserve_tokens_generated_total", {"origin": "local"}) == 0
        assert sample(client, "wwwserve_tokens_generated_total", {"origin": "peer"}) == 0
        assert sample(client, "wwwserve_request_queue_time_seconds_count", {"model_name": "a"}) == 1


def test_libp2p_noise_is_lowered_to_debug_and_counted(caplog):
    def record(name: str, msg: str, level: int = logging.WARNING) -> logging.LogRecord:
        return logging.LogRecord(name, level, __file__, 1, msg, (), None)

    noise = record("libp2p.kad_dht.kad_dht", "FIND_NODE key is not a valid PeerId (29 bytes), ignoring")
    assert classify(noise) == "dht_find_node_key"
    assert classify(record("libp2p.kad_dht.peer_routing", "Failed to open stream to X: y")) == "dht_open_stream"
    assert classify(record("libp2p.kad_dht.provider_store", "something new")) == "dht_other"
    assert classify(record("libp2p.network.swarm", "Failed to open stream")) is None  # not the DHT
    assert classify(record("wwwserve_p2p.node", "FIND_NODE key is not a valid PeerId")) is None
    assert classify(record("libp2p.kad_dht.kad_dht", "FIND_NODE key", logging.INFO)) is None
    before = suppressed_counts().get("dht_find_node_key", 0)
    f = Libp2pNoiseFilter()
    root = logging.getLogger()
    old = root.level
    try:
        root.setLevel(logging.INFO)
        assert f.filter(noise) is False and noise.levelname == "DEBUG"
        root.setLevel(logging.DEBUG)
        assert f.filter(record("libp2p.kad_dht.kad_dht", "FIND_NODE key is not a valid PeerId")) is True
    finally:
        root.setLevel(old)
    assert f.filter(record("libp2p.host", "a real problem")) is True
    assert suppressed_counts()["dht_find_node_key"] == before + 2
    assert sample(NodeMetrics(), "wwwserve_log_suppressed_total", {"pattern": "dht_find_node_key"}) == before + 2
    # installed on the DHT loggers themselves: counted once, kept out of every handler
    install_libp2p_filter(handlers=[])
    caplog.set_level(logging.INFO)
    dht = logging.getLogger("libp2p.kad_dht.peer_routing")
    old_level = dht.level
    try:
        dht.setLevel(logging.WARNING)
        n = suppressed_counts().get("dht_open_stream", 0)
        dht.warning("Failed to open stream to %s: gone", "12D3KooWGone")
        dht.warning("something else entirely")
    finally:
        dht.setLevel(old_level)
    assert suppressed_counts()["dht_open_stream"] == n + 1
    assert "12D3KooWGone" not in caplog.text  # lowered to DEBUG: not shown at INFO
