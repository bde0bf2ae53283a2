"""benchmarks/quality_incentives.py --quick (Figs. 8 and 9): real node processes, duels on,
likelihood judges.

Models are trained for a few steps (80) on first use and cached in the git-ignored
``data/test-quality-incentives/`` (``ensure_models`` retrains when the recipe, size, steps, seed
or corpus differ), so later runs skip the training, which is most of a first run's time on
2 cores; both tests share the cache. The assertions are about what must hold whatever the noise
of a few duels: every user request is answered, duels settle on the replicated ledger with one
winner and one loser each, and a model far worse than another loses. They cannot order classes
that differ by a few thousandths of a nat per token (the quantized copies) from 12 requests.
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import pytest

#: the tests' models, kept between runs (the benchmark's cache is keyed by training steps)
MODEL_CACHE = Path(__file__).resolve().parent.parent / "data" / "test-quality-incentives"
LEVELS = ["fp8", "int4-g128", "int4-g32", "int2-g32"]


def run_benchmark(run_quick, out: Path, *args: str) -> dict:
    """Run ``quality_incentives.py --quick *args`` on the shared model cache; its results.json."""
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    with open(MODEL_CACHE / ".lock", "w") as lock:  # one run at a time trains into / reads the cache
        fcntl.flock(lock, fcntl.LOCK_EX)
        run_quick("quality_incentives.py", out, *args, "--train-steps", "80", "--data-dir", str(MODEL_CACHE),
                  timeout=900)
    return json.loads((out / "results.json").read_text())


def check_duel_books(res: dict, out: Path, requests: int, min_settled: int) -> dict:
    """Checks common to both experiments; returns the per-class results."""
    assert res["requests"] == res["ok"] == requests
    settled = res["duels"]["as_requester"]["settled"]
    # 0 settled would mean no duel could start (e.g. judges holding no stake)
    assert settled >= min_settled and res["duels"]["settled_in_ledger"] == settled
    classes = res["classes"]
    # every settled duel has one winner and one loser, or a tie for both
    assert sum(c["won"] for c in classes.values()) == sum(c["lost"] for c in classes.values())
    assert sum(c["duels"] for c in classes.values()) == 2 * settled
    assert len(res["credit_curve"]) >= 2
    assert (out / "results.md").read_text().startswith("| class |")
    assert (out / "quality_incentives.png").stat().st_size > 5000
    return classes


@pytest.mark.real
@pytest.mark.slow
def test_quality_incentives_quick(tmp_path, run_quick):
    out = tmp_path / "qi"
    res = run_benchmark(run_quick, out)
    classes = check_duel_books(res, out, requests=40, min_settled=10)
    assert set(classes) == {"nano", "tiny", "small", "small-int8", "random"}
    assert classes["random"]["win_rate"] < classes["small"]["win_rate"]
    assert set(res["targets"]) == {"win_rates_ordered_by_capacity", "largest_minus_smallest_ge_0.10",
                                   "quantized_below_source", "random_le_0.20", "credit_ordered_by_capacity"}


@pytest.mark.real
@pytest.mark.slow
def test_quality_quantization_quick(tmp_path, run_quick):
    """``--quantization`` (Fig. 9): the ``small`` model against its fp8 / int4 / int2 copies."""
    out = tmp_path / "qq"
    res = run_benchmark(run_quick, out, "--quantization")
    assert res["experiment"] == "quantization"
    classes = check_duel_books(res, out, requests=12, min_settled=1)
    assert list(classes) == ["source", *LEVELS]
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
