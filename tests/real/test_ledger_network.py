"""The credit ledger across 6 real node processes on 127.0.0.1 (real libp2p, HTTP API, SQLite).

Random offloaded traffic through the OpenAI API; afterwards every node must report the same
ledger state hash. Then the network is split into two groups that refuse each other's peers
(``PUT /admin/denied-peers``), both sides trade, the split heals, and everything converges
with nothing lost.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from wwwserve_p2p.localnet import (NodeSpec, ledger_states, start_network, stop_network, wait_for_ledger,
                                   wait_for_mesh, write_network_genesis)

pytestmark = [pytest.mark.real, pytest.mark.slow]

# 6, not 8: on 2 cores, 8 real nodes under this traffic lose delegation probes (the executor's
# handler never starts; issue 13's open finding, also at 09f3d70), so nothing is offloaded and
# the ledger checks below test nothing: CI at 7bf8bb3 failed that way
N = 6
PROMPT = "alpha beta gamma delta epsilon zeta eta theta"


def spec(i: int) -> NodeSpec:
    # capacity 1 and a per-token delay: concurrent requests overflow and get offloaded
    return NodeSpec(f"n{i}", {
        "node": {"network": "ledger-real", "log_level": "INFO", "seed": i},
        "status": {"interval": 1.0},
        "policy": {"target_load": 0.5},
        # claim every request (payment channels batch claims by default): the tests compare
        # earned with spent right after the ledgers converge
        "ledger": {"block_interval": 0.5, "sync_interval": 1.0, "claim_every": 1},
        "api": {"admin": True},
        "executor": {"kind": "echo", "models": ["m"], "capacity": 1, "delay_per_token": 0.03}})


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    specs = [spec(i) for i in range(N)]
    work = tmp_path_factory.mktemp("ledgernet")
    write_network_genesis(specs, work, "ledger-real", credits=100)
    nodes = start_network(specs, work, ready_timeout=120)
    try:
        wait_for_mesh(nodes, timeout=90)
        yield nodes
    finally:
        stop_network(nodes)


def chat(node, i: int) -> str:
    # generous: on 2 busy cores a py-libp2p stream occasionally stalls and the request is only
    # re-dispatched after delegation.chunk_timeout (10 s), possibly more than once
    r = httpx.post(node.api_url + "/v1/chat/completions", timeout=180, json={
        "model": "m", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 16, "seed": i})
    r.raise_for_status()
    return r.headers.get("x-wwwserve-executor", "")


def traffic(nodes, n_requests: int, seed: int) -> list[str]:
    """``n_requests`` chats, 16 at a time, each to a node drawn from ``nodes``: their executors."""
    rng = random.Random(seed)
    targets = [rng.choice(nodes) for _ in range(n_requests)]
    with ThreadPoolExecutor(16) as pool:
        executors = list(pool.map(chat, targets, range(n_requests)))
    offloaded = sum(e != t.peer_id for e, t in zip(executors, targets))
    # the premise of the ledger checks below: some work crossed nodes (each entry node has
    # capacity 1 and gets several requests at once)
    assert offloaded > 0, "no request was offloaded; the entry nodes' delegation log:\n" + "\n".join(
        ln for n in nodes for ln in n.log_tail(400).splitlines() if "wwwserve_p2p.delegation" in ln)[-6000:]
    return executors


def accounts(node) -> dict[str, dict]:
    data = httpx.get(node.api_url + "/ledger/accounts", timeout=10).json()
    return {a["peer_id"]: a for a in data["accounts"]}


def deny(node, peers: list[str]) -> None:
    r = httpx.put(node.api_url + "/admin/denied-peers", json={"peers": peers}, timeout=10)
    r.raise_for_status()


def test_random_traffic_then_every_node_reports_the_same_state(net):
    # entry nodes drawn from three of the six: the other three have room, so work is offloaded
    executors = traffic(net[:3], 48, seed=1)
    ids = {n.peer_id: n for n in net}
    assert all(e in ids for e in executors)
    t0 = time.monotonic()
    wait_for_ledger(net, timeout=30)
    converged = time.monotonic() - t0
    acc = accounts(net[0])
    earned = sum(a["earned"] for a in acc.values())
    spent = sum(a["spent"] for a in acc.values())
    assert earned == spent > 0  # offloaded work was paid, and only between these nodes
    # credit in open payment channels is still its requester's (``locked``): nothing was minted or lost
    assert sum(a["balance"] + a["stake"] + a["unbonding"] + a["locked"] for a in acc.values()) == N * 100_000_000
    print(f"ledger converged {converged:.2f}s after traffic stopped; {earned} micro-credits paid")


def test_partition_both_sides_trade_then_heal_and_converge(net):
    wait_for_ledger(net, timeout=30)
    side_a, side_b = net[: N // 2], net[N // 2:]
    ids_a, ids_b = [n.peer_id for n in side_a], [n.peer_id for n in side_b]
    before = accounts(net[0])
    try:
        for n in side_a:
            deny(n, ids_b)
        for n in side_b:
            deny(n, ids_a)
        wait_for_mesh(side_a, timeout=30)
        wait_for_mesh(side_b, timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # each side sees only its own members alive
            views = [{p["peer_id"] for p in n.status()["peers"] if p["state"] == "alive"} for n in net]
            if all(v <= set(ids_a) for v in views[: N // 2]) and all(v <= set(ids_b) for v in views[N // 2:]):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the two sides still see each other")
        # one entry node per side gets more than it can serve: it offloads to its side-mates
        ex_a = traffic(side_a[:1], 16, seed=2)
        ex_b = traffic(side_b[:1], 16, seed=3)
        assert set(ex_a) <= set(ids_a) and set(ex_b) <= set(ids_b)  # nobody crossed the split
        wait_for_ledger(side_a, timeout=30)
        wait_for_ledger(side_b, timeout=30)
        states = ledger_states(net)
        assert states[side_a[0].name] != states[side_b[0].name]

    finally:
        for n in net:
            deny(n, [])
    t0 = time.monotonic()
    wait_for_ledger(net, timeout=60)
    healed = time.monotonic() - t0
    after = accounts(net[N - 1])

    paid_a = sum(after[p]["spent"] - before.get(p, {}).get("spent", 0) for p in ids_a)
    paid_b = sum(after[p]["spent"] - before.get(p, {}).get("spent", 0) for p in ids_b)
    earned_a = sum(after[p]["earned"] - before.get(p, {}).get("earned", 0) for p in ids_a)
    earned_b = sum(after[p]["earned"] - before.get(p, {}).get("earned", 0) for p in ids_b)
    # both sides' trades survived the merge, each side paid only its own members
    assert paid_a == earned_a > 0 and paid_b == earned_b > 0
    assert sum(a["balance"] + a["stake"] + a["unbonding"] + a["locked"] for a in after.values()) == N * 100_000_000
    print(f"converged {healed:.2f}s after the partition healed")


def test_sigkilled_node_restarts_with_its_blocks_and_catches_up(net, tmp_path_factory):
    """SIGKILL a node while it serves and writes blocks; restarted on the same data dir it holds
    every block it acknowledged (its chain on peers is never longer) and converges."""
    from wwwserve_p2p.localnet import start_node

    wait_for_ledger(net, timeout=30)
    victim = net[3]
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(chat, net[0], 900 + i) for i in range(12)]
        time.sleep(0.8)  # mid-traffic: claims and voids are being sealed
        victim.kill()
        for f in futures:
            f.result()  # every user request still gets exactly one answer (failover)
    others = [n for n in net if n is not victim]
    wait_for_ledger(others, timeout=30)
    seen_by_peers = accounts(net[0])[victim.peer_id]["height"]
    workdir = victim.config_path.parent.parent
    restarted = start_node(victim.spec, workdir, bootstrap=[net[0].multiaddr], ready_timeout=60)
    net[3] = restarted  # the module fixture stops it at the end
    mine = httpx.get(restarted.api_url + "/ledger", timeout=10).json()
    assert mine["me"]["height"] >= seen_by_peers  # nothing it published was lost
    wait_for_mesh(net, timeout=60)
    wait_for_ledger(net, timeout=60)
    blocks = httpx.get(restarted.api_url + "/ledger/blocks", params={"author": restarted.peer_id}, timeout=10).json()
    chain = blocks["blocks"]
    assert [b["height"] for b in chain] == list(range(1, len(chain) + 1))
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(chain, chain[1:]))


def test_wwwserve_ledger_cli_prints_the_accounts(net):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "wwwserve_p2p.cli", "ledger", "--url", net[0].api_url, "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    import json
    data = json.loads(out.stdout)
    assert {a["peer_id"] for a in data["accounts"]} >= {n.peer_id for n in net}
    table = subprocess.run([sys.executable, "-m", "wwwserve_p2p.cli", "ledger", "--url", net[0].api_url],
                           capture_output=True, text=True, timeout=60, env={"COLUMNS": "200", **__import__("os").environ})
    assert table.returncode == 0 and "accounts seen by" in table.stdout and "state" in table.stdout
    bad = subprocess.run([sys.executable, "-m", "wwwserve_p2p.cli", "ledger", "--url", "http://127.0.0.1:9"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "cannot reach http://127.0.0.1:9/ledger" in bad.stderr
    assert "is the node running" in bad.stderr and "Traceback" not in bad.stderr
