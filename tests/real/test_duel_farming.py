"""Issue 18's judge-penalty farming attack on real node processes.

A throwaway requester (no credit) sets up duels between two fake executors it owns, names two
fake judges it owns plus one honest judge, and asks the honest judge to vote; its fakes then
outvote it in a ``Verdict`` block it publishes (``duel_farmer.py``, a py-libp2p outsider in its
own process). Measured before issue 18 item 4 (d720675): the honest judge voted on every duel
and lost 20 % of the 1-credit judge bond per duel on every replica, paid to the fake judges.
Now it refuses (named judges are not a verifiable panel, a made-up pool disagrees with its
ledger, no fee is locked toward it) and verdicts of freely named panels move no judge credit:
the attacker's block reaches every replica and the honest judge loses nothing.

Standalone (the numbers of the report, also against the code before)::

    .venv/bin/python tests/real/test_duel_farming.py
    cd /work/before && PYTHONPATH=/work/before/src /work/main/.venv/bin/python /work/main/tests/real/test_duel_farming.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from wwwserve_p2p.localnet import NodeSpec, start_network, stop_network, wait_for_mesh, write_network_genesis

pytestmark = [pytest.mark.real, pytest.mark.slow]

FARMER = Path(__file__).with_name("duel_farmer.py")
NETWORK = "duel-farming-real"
CREDIT = 1_000_000
DUELS = 6
JUDGE_BOND = 1_000_000   # a judge's default duel.max_bond: the largest bond it accepts


def spec(name: str, judge: str) -> NodeSpec:
    return NodeSpec(name, {
        "node": {"network": NETWORK, "seed": 1},
        "status": {"interval": 1.0},
        "ledger": {"block_interval": 0.5, "sync_interval": 1.0},
        "duel": {"judge": judge, "judge_timeout": 120.0},
        "executor": {"kind": "echo", "models": ["m"], "capacity": 2}})


def judge_view(nodes, judge: str, fakes: list[str]) -> list[dict]:
    """The honest judge's account (and the fakes' balances) in every node's ledger view."""
    out = []
    for n in nodes:
        rows = {r["peer_id"]: r for r in httpx.get(n.api_url + "/ledger/accounts", timeout=10).json()["accounts"]}
        j = rows.get(judge, {})
        out.append({"node": n.name,
                    "judge_total": sum(j.get(k, 0) for k in ("balance", "stake", "unbonding", "locked")),
                    "judge_stake": j.get("stake", 0), "judge_minority": j.get("judge_minority", 0),
                    "fakes_balance": sum(rows.get(f, {}).get("balance", 0) for f in fakes)})
    return out


def run_attack(workdir: Path, duels: int = DUELS) -> dict:
    """Start the honest network, run the farmer, return what every replica shows."""
    specs = [spec("judge", "llm"), spec("peer", "none")]
    path = write_network_genesis(specs, workdir, NETWORK, credits=100)
    nodes = start_network(specs, workdir, ready_timeout=120)
    try:
        wait_for_mesh(nodes, timeout=90)
        judge = nodes[0]
        # the honest judge has staked (its stake policy) in every view: what penalties would take
        deadline = time.monotonic() + 120
        while not all(v["judge_stake"] > 0 for v in judge_view(nodes, judge.peer_id, [])):
            assert time.monotonic() < deadline, "the honest judge never staked"
            time.sleep(0.5)
        before = judge_view(nodes, judge.peer_id, [])
        params = {"genesis": str(path), "judge": {"peer_id": judge.peer_id, "multiaddr": judge.multiaddr},
                  "api_urls": [n.api_url for n in nodes], "duels": duels, "judge_bond": JUDGE_BOND,
                  "deadline_s": 120}
        proc = subprocess.run([sys.executable, str(FARMER), json.dumps(params)], capture_output=True, text=True,
                              timeout=600)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        assert proc.returncode == 0 and lines, f"farmer exited {proc.returncode}: {proc.stderr[-3000:]}"
        attack = json.loads(lines[-1])
        after = judge_view(nodes, judge.peer_id, attack["fakes"])
        return {"attack": attack, "before": before, "after": after,
                "judge_loss": [b["judge_total"] - a["judge_total"] for b, a in zip(before, after)]}
    finally:
        stop_network(nodes)


def test_fake_duel_farming_costs_the_honest_judge_nothing(tmp_path):
    res = run_attack(tmp_path)
    attack = res["attack"]
    # the attack reached the ledger: the farmer's Verdict block is on every replica
    assert attack["block_reached_every_node"], attack
    assert attack["entries"] == DUELS + 1
    # the honest judge voted on none of the duels (named panel / made-up pool, no locked fee)
    assert attack["votes"] == {}, attack
    assert len(attack["refusals"]) == DUELS + 1
    assert any("fee voucher is required" in r for r in attack["refusals"]), attack["refusals"]
    assert any("stake our ledger does not show" in r for r in attack["refusals"]), attack["refusals"]
    for b, a in zip(res["before"], res["after"]):
        assert a["judge_total"] == b["judge_total"], res          # the honest judge lost nothing
        assert a["judge_minority"] == 0 and a["fakes_balance"] == 0, res


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="issue-18-duels-") as tmp:
        result = run_attack(Path(tmp))
    print(json.dumps(result, indent=1))
