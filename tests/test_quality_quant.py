"""benchmarks/quality_incentives.py --quantization --quick (Fig. 9): real node processes, the
``small`` model against its fp8 / int4-g128 / int4-g32 / int2-g32 copies, duels judged by a
likelihood judge.

Uses the same model cache as tests/test_quality_incentives.py (80 training steps, under the
git-ignored ``data/test-quality-incentives/``), so only the first run of either test trains.
The assertions are structural: 12 requests (5 duels settled in a run at load ~10) cannot order five classes that differ by a few
thousandths of a nat per token.
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import pytest

MODEL_CACHE = Path(__file__).resolve().parent.parent / "data" / "test-quality-incentives"
LEVELS = ["fp8", "int4-g128", "int4-g32", "int2-g32"]


@pytest.mark.real
@pytest.mark.slow
def test_quality_quantization_quick(tmp_path, run_quick):
    out = tmp_path / "qq"
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    with open(MODEL_CACHE / ".lock", "w") as lock:  # one run at a time trains into / reads the cache
        fcntl.flock(lock, fcntl.LOCK_EX)
        run_quick("quality_incentives.py", out, "--quantization", "--train-steps", "80",
                  "--data-dir", str(MODEL_CACHE), timeout=900)
    res = json.loads((out / "results.json").read_text())
    assert res["experiment"] == "quantization"
    assert res["requests"] == res["ok"] == 12
    settled = res["duels"]["as_requester"]["settled"]
    assert settled >= 1 and res["duels"]["settled_in_ledger"] == settled  # 0 if judges hold no stake
    classes = res["classes"]
    assert list(classes) == ["source", *LEVELS]
    assert sum(c["won"] for c in classes.values()) == sum(c["lost"] for c in classes.values())
    assert sum(c["duels"] for c in classes.values()) == 2 * settled
    for name, c in classes.items():
        # every class advertises the same model; the executor kind names its quantization
        assert c["advertised"]["models"] == ["shakespeare"]
        assert c["advertised"]["executor"] == ("hf" if name == "source" else f"hf-{name}")
        assert c["held_out_tokens"] > 400 and c["held_out_mean_logprob"] < 0
        lo, hi = c["delta_ci95"]
        assert lo <= c["delta_vs_source"] <= hi
        if c["duels"]:
            assert c["win_rate_ci95"][0] <= c["win_rate"] <= c["win_rate_ci95"][1]
    assert classes["source"]["delta_vs_source"] == 0.0
    # 2 bits per weight lose held-out likelihood even on an 80-step model
    assert classes["int2-g32"]["held_out_mean_logprob"] < classes["source"]["held_out_mean_logprob"]
    assert set(res["targets"]) >= {"win_rate_source_gt_fp8", "win_rate_fp8_gt_int4-g128",
                                   "win_rate_int4-g32_below_source", "held_out_logprob_source_gt_fp8",
                                   "duels_ge_150"}
    assert res["targets"]["duels_ge_150"] is False  # 12 requests
    assert len(res["credit_curve"]) >= 2
    assert (out / "results.md").read_text().startswith("| class |")
    assert (out / "quality_incentives.png").stat().st_size > 5000
