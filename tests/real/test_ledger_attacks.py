"""Issue 18's free-rider attack on real node processes: a fresh identity with no credit asks
the network to serve it. Measured before the fix: served 12/12 times, leaving a debt it never
pays. Now every executor refuses it (it cannot afford a ticket) and the user gets a clear 503."""

from __future__ import annotations

import httpx
import openai
import pytest

from wwwserve_p2p.localnet import NodeSpec, start_network, stop_network, wait_for_mesh, write_network_genesis

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
    write_network_genesis(specs, tmp_path, "attack-real", credits=100, unfunded=("freerider",))
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
