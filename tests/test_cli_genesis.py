"""``wwwserve genesis`` as a user runs it: the file it writes defines the network a node joins."""

from __future__ import annotations

import json
import subprocess
import sys

from wwwserve_p2p.config import load_config
from wwwserve_p2p.identity import Identity


def wwwserve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wwwserve_p2p.cli", *args], capture_output=True, text=True,
                          timeout=60)


def test_genesis_writes_a_network_nodes_load(tmp_path):
    key_dir = tmp_path / "n1"
    Identity.load_or_create(key_dir)
    other = Identity.generate().peer_id
    out = tmp_path / "genesis.json"
    r = wwwserve("genesis", "--network", "mynet", "--out", str(out), "--alloc", f"{other}=2.5",
                 "--alloc-key-dir", str(key_dir), "--amount", "1500u", "--param", "unbonding_ms=60000")
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert data["allocations"] == {other: 2_500_000, Identity.load_or_create(key_dir).peer_id: 1500}
    assert data["params"]["unbonding_ms"] == 60000
    genesis = load_config(None, [f"ledger.genesis={out}"]).genesis()
    assert genesis.network == "mynet" and genesis.supply == 2_501_500
    assert genesis.network_id in r.stdout  # the id is printed for the operator
    # refuses to overwrite, and explains bad input
    again = wwwserve("genesis", "--network", "mynet", "--out", str(out))
    assert again.returncode == 2 and "--force" in again.stderr
    bad = wwwserve("genesis", "--network", "x", "--out", str(tmp_path / "g2.json"), "--alloc", "nobody=1")
    assert bad.returncode == 2 and "PeerId" in bad.stderr
    unknown = wwwserve("genesis", "--network", "x", "--out", str(tmp_path / "g3.json"), "--param", "speed=1")
    assert unknown.returncode == 2 and "unknown ledger parameter" in unknown.stderr
