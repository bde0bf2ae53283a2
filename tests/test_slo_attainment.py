"""benchmarks/slo_attainment.py: the metric helpers, the centralized dispatcher's rule, the
workload plans (identical for every strategy), and its --quick mode end to end on real node
processes (JSON shape and sane values; never timings: the CI machine has 2 cores).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "slo_attainment.py"


def test_attainment_counts_errors_as_misses_and_is_monotone(bench):
    values = [1.0, 2.0, None, 3.0, 0.5]
    th = [0.1, 0.5, 1.0, 2.5, 10.0]
    att = bench.attainment(values, th)
    assert att == [0.0, 0.2, 0.4, 0.6, 0.8]  # the error never attains
    assert att == sorted(att)
    assert bench.attainment([], th) == [] or all(math.isnan(a) for a in bench.attainment([], th))
    g = bench.grid(8.0, 4)
    assert g == [2.0, 4.0, 6.0, 8.0]
    assert bench.grid(math.nan, 2) == [0.5, 1.0]


def test_percentile_matches_numpy_linear(harness):
    pct = harness.percentile  # what the benchmark's latency percentiles use
    xs = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert pct(xs, 50) == 3.0 and pct(xs, 0) == 1.0 and pct(xs, 100) == 5.0
    assert pct(xs, 90) == pytest.approx(4.6)
    assert math.isnan(pct([], 50))


def test_centralized_rule_keeps_below_0_6_else_least_loaded(bench):
    d = bench.Dispatcher(["a", "b", "c"], [4, 4, 4])
    d.inflight = [2, 3, 1]  # loads 0.5, 0.75, 0.25
    assert d.choose(0) == 0  # 0.5 < 0.6: stays at its source
    assert d.choose(1) == 2 and d.redirected == 1  # 0.75: to the least loaded
    d.kv = [0.0, 0.0, 0.9]  # the KV cache counts too
    assert d.choose(1) == 0
    d.inflight = [4, 4, 4]
    d.kv = [0.0, 0.0, 0.0]
    assert d.choose(2) == 2  # all equal: a tie keeps the request at its source


def test_policies_of_the_strategies(bench):
    assert bench.policy_for("single") == {"offload_frequency": 0.0, "participate": False}
    assert bench.policy_for("centralized") == bench.policy_for("single")
    assert bench.policy_for("wwwserve") == {"selection": "stake"}
    assert bench.policy_for("p2c", {"probe_extra": 4}) == {"selection": "p2c", "probe_extra": 4}
    from wwwserve_p2p.core.policy import OffloadPolicy

    for s in bench.STRATEGIES:  # every table is a valid [policy] section
        OffloadPolicy(**bench.policy_for(s))


def test_calibration_orders_the_node_kinds(bench):
    lengths = [(500, 100), (1200, 200), (300, 50)] * 4
    a100 = bench.calibrate(bench.Kind("A100", "8b"), lengths, 4)
    r3090 = bench.calibrate(bench.Kind("RTX3090", "8b"), lengths, 4)
    small = bench.calibrate(bench.Kind("A100", "0.6b"), lengths, 4)
    assert a100["max_batch"] == 4
    assert small["throughput_rps"] > a100["throughput_rps"] > r3090["throughput_rps"] > 0
    assert r3090["solo_latency_s"] > a100["solo_latency_s"] > small["solo_latency_s"] > 0


@pytest.mark.parametrize("setting", [pytest.param("models", marks=pytest.mark.slow),
                                     pytest.param("gpus", marks=pytest.mark.slow), "fluctuating", "trace", "bursty"])
def test_plans_are_deterministic_and_within_the_wall_rate(bench, setting):
    args = bench.parse_args(["--nodes", "5", "--run-wall", "20", "--settings", setting])
    from wwwserve_p2p.sim.workload import load_azure_trace

    trace = load_azure_trace(bench.DEFAULT_TRACE)
    cache: dict = {}
    p1 = bench.plan_setting(setting, args, trace, cache)
    p2 = bench.plan_setting(setting, args, trace, cache)
    assert p1.requests == p2.requests and p1.requests  # the same workload for every strategy
    with_users = {0, 3, 4} if setting == "bursty" else set(range(5))  # bursty: nodes 1 and 2 idle
    assert {r.src for r in p1.requests} == with_users
    assert all(0 <= r.arrival < p1.duration and r.prompt >= 1 and 1 <= r.output <= args.max_output
               for r in p1.requests)
    assert [r.arrival for r in p1.requests] == sorted(r.arrival for r in p1.requests)
    assert p1.time_scale >= 1 and p1.duration == pytest.approx(20 * p1.time_scale)
    offered_wall = len(p1.requests) / (p1.duration / p1.time_scale)
    assert offered_wall < 2.0 * args.wall_rate  # Poisson noise around the budget, never far above
    assert len(p1.kinds) == 5 and set(p1.calibration) == {k.label for k in p1.kinds}


@pytest.mark.real
@pytest.mark.slow
def test_slo_attainment_quick(tmp_path, run_quick):
    out = tmp_path / "bench"
    run_quick(SCRIPT.name, out, timeout=420)
    res = json.loads((out / "slo_attainment.json").read_text())
    assert res["options"]["nodes"] == 3 and res["units"].startswith("seconds of model time")
    assert list(res["settings"]) == ["fluctuating"]
    sres = res["settings"]["fluctuating"]
    strategies = ["single", "centralized", "random", "p2c", "wwwserve"]
    assert sorted(sres["summary"]) == sorted(strategies) == sorted(sres["attainment"])
    th, tth = sres["thresholds_s"], sres["ttft_thresholds_s"]
    assert th == sorted(th) and th[0] > 0 and tth == sorted(tth) and tth[0] > 0
    assert sres["median_slo_s"] in th and sres["median_ttft_slo_s"] in tth
    for s in strategies:
        for curve, grid in ((sres["attainment"][s], th), (sres["ttft_attainment"][s], tth)):
            assert len(curve) == len(grid)
            assert all(0.0 <= a <= 1.0 for a in curve)
            assert curve == sorted(curve)  # monotone in the threshold
        sm = sres["summary"][s]
        assert sm["errors_total"] == 0, (s, sm["error_samples"])  # every request answered
        assert sm["requests"] == sm["ok"] == sres["requests"] > 0
        assert 0 < sm["ttft_mean_s"] <= sm["latency_mean_s"] <= sm["latency_p99_s"]
        assert 0.0 <= sm["attainment_at_median_slo"] <= 1.0
        assert sm["host_cpu_util"] > 0 and sm["node_cpu_s"] > 0
        run = sres["runs"][s][0]
        assert len(run["records"]) == sres["requests"]
        assert all(r["ok"] and r["latency"] >= r["ttft"] > 0 for r in run["records"])
    assert sres["summary"]["single"]["served_elsewhere"] == 0  # no offloading at all
    assert sres["summary"]["centralized"]["served_elsewhere"] == sres["summary"]["centralized"]["offloaded_by_nodes"]
    assert {t["target"] for t in res["targets"]} >= {"wwwserve >= single", "wwwserve >= 0.97x centralized"}
    md = (out / "slo_attainment.md").read_text()
    assert "| setting | strategy | attain@SLO |" in md and "model time" in md
    assert (out / "slo_fluctuating.png").stat().st_size > 1000
