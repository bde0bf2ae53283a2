"""benchmarks/serving_speed.py --virtual --quick (Figs. 10-11) and quality_adversaries.py (issue 16),
both on in-memory nodes in virtual time (trio MockClock), so the host's load does not shape them.

What must hold whatever the seed: every request is answered; executors serving the same answers
tie every duel; the emulated A100 (twice the RTX3090's decode speed) serves more requests and
earns more than the RTX3090; a junk executor loses every duel and credit; duel books balance.
"""

from __future__ import annotations

import json


def test_serving_speed_virtual_quick(tmp_path, run_quick):
    out = tmp_path / "speed"
    run_quick("serving_speed.py", out, "--virtual", "--experiment", "hardware", timeout=600)
    res = json.loads((out / "results.json").read_text())
    assert res["requests"] == res["ok"] == 24 and res["mode"] == "virtual"
    c = res["classes"]
    assert list(c) == ["A100", "RTX4090", "RTX3090"]
    assert c["A100"]["ms_per_token"] < c["RTX4090"]["ms_per_token"] < c["RTX3090"]["ms_per_token"]
    assert sum(x["served"] for x in c.values()) >= 24
    assert c["A100"]["served"] > c["RTX3090"]["served"] and c["A100"]["earned"] > c["RTX3090"]["earned"]
    # the same (echo) answer from every class: every settled duel is a tie, win rate 0.5
    assert sum(x["duels"] for x in c.values()) == 2 * res["duels"]["settled"]
    assert all(x["won"] == x["lost"] == 0 and x["win_rate"] in (None, 0.5) for x in c.values())
    assert set(res["targets"]) == {"served_ordered_by_speed", "credit_ordered_by_speed", "win_rates_within_0.1"}
    assert (out / "serving_speed.png").stat().st_size > 5000 and (out / "results.md").exists()


def test_quality_adversaries_small(tmp_path, run_quick):
    out = tmp_path / "adv"
    run_quick("quality_adversaries.py", out, "--network", "judges", "--requests", "16", "--honest", "2",
              "--honest-judges", "2", "--colluders", "1", timeout=600)
    res = json.loads((out / "results.json").read_text())
    r = res["networks"]["judges"]
    assert r["requests"] == r["ok"] == 16
    c = r["classes"]
    assert set(c) == {"requester", "honest", "lazy", "junk", "honest-judge", "always-A", "colluder"}
    assert sum(x["won"] for x in c.values()) == sum(x["lost"] for x in c.values())
    assert sum(x["duels"] for x in c.values()) == 2 * r["duels"]["settled"] > 0
    assert r["credit_change_sum"] == 0  # credit moved between accounts, none created
    # the random-word answer never wins (the colluder backs the lazy one, the always-A judge is
    # outvoted by the two honest judges); an executor's credit change is what it earned for serving
    # plus the bonds of the duels it won minus those it lost
    assert c["junk"]["won"] == 0
    for cls in ("honest", "lazy", "junk"):
        x = c[cls]
        assert x["credit_change_total"] == x["earned_total"] + 20_000 * (x["won"] - x["lost"]), (cls, x)
    # an adversarial judge that was outvoted never changed an outcome (the honest votes decide)
    assert r["duels"]["outvoted_but_changed"] == 0
    assert (out / "quality_adversaries.png").stat().st_size > 5000
