"""``GET /metrics`` exports the defenses' counters that ``GET /status`` shows under ``defenses``
(issue 15): on an embedded node (memory overlay: no overlay counters) the peer table, offers
and reputation families; a collector whose source fails exports nothing instead of failing."""

from __future__ import annotations

import httpx
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from wwwserve_p2p import EchoExecutor, NodeConfig, open_node
from wwwserve_p2p.api import create_app
from wwwserve_p2p.metrics import NodeMetrics


def parse(text: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


async def test_metrics_export_the_status_defenses():
    async with open_node(NodeConfig.embedded(), EchoExecutor(models=("echo",))) as node:
        now = node.runtime.clock.monotonic()
        node.delegation.offers.grant("12D3KooWSquatter", False, now)       # one open unfunded lease
        assert "payment channel" in node.delegation.offers.grant("12D3KooWSquatter", False, now)
        node.requester.reputation.record("12D3KooWSilent", "timeout", now)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(node)), base_url="http://n") as h:
            status = (await h.get("/status")).json()["defenses"]
            m = parse((await h.get("/metrics")).text)
    assert m[("wwwserve_offers_open", ())] == status["offers"]["open"] == 1
    assert m[("wwwserve_offers_total", (("outcome", "granted"),))] == 1
    assert m[("wwwserve_offers_total", (("outcome", "refused_unfunded"),))] == 1
    assert m[("wwwserve_reputation_penalised_peers", ())] == len(status["reputation"]["penalised"]) == 1
    assert m[("wwwserve_reputation_events_total", (("kind", "timeout"),))] == 1
    assert m[("wwwserve_peer_table_peers", ())] == status["membership"]["peers"] == 0


def test_a_failing_source_exports_nothing():
    metrics = NodeMetrics()

    def broken():
        raise RuntimeError("node shutting down")

    metrics.watch_defenses(broken)
    text = generate_latest(metrics.registry).decode()
    assert "wwwserve_offers_open" not in text and "wwwserve_requests_total" in text
