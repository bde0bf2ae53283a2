"""Issue 18's free-rider attack on real node processes: a fresh identity with no credit asks
the network to serve it. Measured before the fix: served 12/12 times, leaving a debt it never
pays. Now every executor refuses it (it cannot afford a ticket) and the user gets a clear 503."""

from __future__ import annotations

import httpx
import openai
import pytest

from wwwserve_p2p.config import write_genesis
from wwwserve_p2p.core.ledger import Genesis, LedgerParams
from wwwserve_p2p.identity import Identity
from wwwserve_p2p.localnet import NodeSpec, start_network, stop_network, wait_for_mesh

pytestmark = pytest.mark.real


def spec(name: str, model: str) -> NodeSpec:
    return NodeSpec(name, {
        "node": {"network": "attack-real", "seed": 1},
        "status": {"interval": 1.0},
        "ledger": {"block_interval": 0.5, "sync_interval": 1.0},
        "delegation": {"max_attempts": 2, "max_retries": 2},
        "executor": {"kind": "echo", "models": [model], "capacity": 2}})


def test_a_fresh_identity_with_no_credit_is_never_served(tmp_path):
    specs = [spec("freerider", "front"), spec("exec1", "m"), spec("exec2", "m")]
    # genesis: credit for the two executors only, no overdraft
    allocs = tuple((Identity.load_or_create(tmp_path / s.name).peer_id, 100_000_000) for s in specs[1:])
    path = tmp_path / "genesis.json"
    write_genesis(Genesis("attack-real", LedgerParams(overdraft=0), allocs), path)
    for s in specs:
        s.config["ledger"]["genesis"] = str(path)
    nodes = start_network(specs, tmp_path, ready_timeout=120)
    try:
        wait_for_mesh(nodes, timeout=90)
        rider = nodes[0]
        client = openai.OpenAI(base_url=rider.api_url + "/v1", api_key="none", max_retries=0, timeout=60)
        for i in range(6):
            with pytest.raises(openai.APIStatusError) as info:
                client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"hi {i}"}],
                                               max_tokens=8)
            assert info.value.status_code == 503
            assert "cannot afford" in str(info.value)
        for ex in nodes[1:]:
            st = httpx.get(ex.api_url + "/status", timeout=10).json()
            assert st["stats"]["accepted_for_others"] == 0
        acc = {a["peer_id"]: a for a in httpx.get(nodes[1].api_url + "/ledger/accounts", timeout=10).json()["accounts"]}
        assert acc.get(rider.peer_id, {}).get("spent", 0) == 0
    finally:
        stop_network(nodes)
