"""benchmarks/quality_incentives.py --quick: real node processes, duels on, likelihood judges.

Models are trained for a few steps (80) on first use and cached in the git-ignored
``data/test-quality-incentives/`` (``ensure_models`` retrains when the recipe, size, steps, seed
or corpus differ), so later runs skip the training, which is most of a first run's time on
2 cores. The assertions are about what must hold whatever the noise of 40 duels: every user
request is answered, duels settle on the replicated ledger, and a full-precision model beats
the random responder.
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import pytest

#: the test's models, kept between runs (the benchmark's cache is keyed by training steps)
MODEL_CACHE = Path(__file__).resolve().parent.parent / "data" / "test-quality-incentives"


@pytest.mark.real
@pytest.mark.slow
def test_quality_incentives_quick(tmp_path, run_quick):
    out = tmp_path / "qi"
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    with open(MODEL_CACHE / ".lock", "w") as lock:  # one run at a time trains into / reads the cache
        fcntl.flock(lock, fcntl.LOCK_EX)
        run_quick("quality_incentives.py", out, "--train-steps", "80", "--data-dir", str(MODEL_CACHE), timeout=900)
    res = json.loads((out / "results.json").read_text())
    assert res["requests"] == res["ok"] == 40
    settled = res["duels"]["as_requester"]["settled"]
    assert settled >= 10 and res["duels"]["settled_in_ledger"] == settled
    classes = res["classes"]
    assert set(classes) == {"nano", "tiny", "small", "small-int8", "random"}
    # every settled duel has one winner and one loser, or a tie for both
    assert sum(c["won"] for c in classes.values()) == sum(c["lost"] for c in classes.values())
    assert sum(c["duels"] for c in classes.values()) == 2 * settled
    assert classes["random"]["win_rate"] < classes["small"]["win_rate"]
    assert set(res["targets"]) == {"win_rates_ordered_by_capacity", "largest_minus_smallest_ge_0.10",
                                   "quantized_below_source", "random_le_0.20", "credit_ordered_by_capacity"}
    assert len(res["credit_curve"]) >= 2
    assert (out / "results.md").read_text().startswith("| class |")
    assert (out / "quality_incentives.png").stat().st_size > 5000
