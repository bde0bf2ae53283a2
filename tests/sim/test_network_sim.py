"""The discrete-event network simulator (wwwserve_p2p.sim.network) and its parts: the fluid GPU
matches SimulatedExecutor, runs are deterministic, stake-weighted selection gives
stake-proportional shares through the real core, gossip reaches every node, failure detection
follows the peer table's thresholds, and the CLI writes its reports."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import trio
import trio.testing

from wwwserve_p2p.core.types import GenerationRequest
from wwwserve_p2p.sim import SimulatedExecutor, perf_model
from wwwserve_p2p.sim.events import EventLoop
from wwwserve_p2p.sim.fluidgpu import FluidGPU, Seq
from wwwserve_p2p.sim.gossip import GossipParams, build_mesh, mesh_hops, run_stream
from wwwserve_p2p.sim.netmodel import NetConfig, NetModel, great_circle_km
from wwwserve_p2p.sim.network import SimConfig, Simulation, compare, main

ROOT = Path(__file__).resolve().parents[2]

LENGTHS = [(300, 120), (1200, 40), (80, 300), (2000, 200), (500, 500), (40, 20), (900, 90)]


def _real_latencies(arrivals: list[tuple[float, int, int]], max_batch: int) -> list[tuple[float, float]]:
    """(ttft, e2e) per request on the trio SimulatedExecutor under MockClock."""
    out: list[tuple[float, float]] = [(0.0, 0.0)] * len(arrivals)

    async def main_() -> None:
        ex = SimulatedExecutor("A100", "qwen3-8b", models=("llm",), max_batch=max_batch, min_sleep_s=0.0)

        async def one(i: int, t: float, p: int, o: int) -> None:
            await trio.sleep_until(t)
            req = GenerationRequest(f"r{i}", "llm", prompt="w " * p, max_tokens=o, temperature=0.0)
            first = None
            async for ch in ex.generate(req):
                if first is None:
                    first = trio.current_time() - t
            out[i] = (first, trio.current_time() - t)

        async with trio.open_nursery() as n:
            for i, (t, p, o) in enumerate(arrivals):
                n.start_soon(one, i, t, p, o)
        await ex.aclose()

    trio.run(main_, clock=trio.testing.MockClock(autojump_threshold=0))
    return out


def _fluid_latencies(arrivals: list[tuple[float, int, int]], max_batch: int) -> list[tuple[float, float]]:
    loop = EventLoop()
    gpu = FluidGPU(loop, perf_model("A100", "qwen3-8b"), max_batch)
    seqs: list[Seq] = []

    def submit(arg) -> None:
        seqs.append(arg)
        gpu.submit(arg)

    for i, (t, p, o) in enumerate(arrivals):
        s = Seq(p, o, tag=t)
        loop.at(t, submit, s)
    loop.run_until(1e6)
    by_arrival = sorted(seqs, key=lambda s: arrivals.index(next(a for a in arrivals if a[0] == s.tag)))
    return [(s.t_first - s.tag, s.t_done - s.tag) for s in by_arrival]


def test_fluid_gpu_matches_simulated_executor() -> None:
    """Same arrivals on both: mean TTFT and mean e2e latency within 3 %, makespan within 1 %."""
    arrivals = [(0.37 * i, *LENGTHS[i % len(LENGTHS)]) for i in range(60)]
    real = _real_latencies(arrivals, 4)
    fluid = _fluid_latencies(arrivals, 4)
    for k in (0, 1):
        r = sum(x[k] for x in real) / len(real)
        f = sum(x[k] for x in fluid) / len(fluid)
        assert abs(f - r) / r < 0.03, (k, r, f)
    mr = max(a[0] + x[1] for a, x in zip(arrivals, real))
    mf = max(a[0] + x[1] for a, x in zip(arrivals, fluid))
    assert abs(mf - mr) / mr < 0.01


def _small(strategy: str = "wwwserve", seed: int = 3, **kw) -> Simulation:
    wl = [[(0.05 + 0.45 * k + 0.01 * i, *LENGTHS[(i + k) % len(LENGTHS)]) for k in range(40)] if i % 3 == 0 else []
          for i in range(12)]
    cfg = SimConfig(nodes=12, duration=25.0, strategy=strategy, seed=seed, workload=wl,
                    net=NetConfig(kind="geo"), **kw)
    return Simulation(cfg).run()


def test_same_seed_same_result_and_seed_matters() -> None:
    a, b = _small(seed=3), _small(seed=3)
    assert list(a.res_e2e) == list(b.res_e2e) and a.stats == b.stats
    assert a.summary()["completed"] == 4 * 40
    c = _small(seed=4)
    assert list(c.res_e2e) != list(a.res_e2e)


def test_offloading_beats_single_on_skewed_load() -> None:
    """A third of the nodes get all requests: offloading (real dispatch) must cut latency."""
    single, www, central = _small("single"), _small("wwwserve"), _small("centralized")
    assert www.stats["offloaded"] > 0 and single.stats["offloaded"] == 0
    s, w = single.summary(), www.summary()
    assert w["e2e_mean_s"] < 0.8 * s["e2e_mean_s"]
    cmp_ = compare({"single": single, "centralized": central, "wwwserve": www})
    assert cmp_["at_median"]["wwwserve"] > cmp_["at_median"]["single"]


def _shares(strategy: str, stakes: tuple[int, ...]) -> Counter:
    """One busy source (slot 0); executors 1..5 with the given stakes; probe_extra = 0 so the
    executor is exactly the core's first pick."""
    wl = [[(0.02 + 0.25 * k, 60, 30) for k in range(800)]] + [[] for _ in range(5)]
    cfg = SimConfig(nodes=6, duration=200.0, strategy=strategy, seed=11, workload=wl, stakes=stakes,
                    policy={"probe_extra": 0, "exploration_share": 0.0, "target_load": 0.0},
                    net=NetConfig(kind="local", loss=0.0), max_batch=8)
    sim = Simulation(cfg)
    served: Counter = Counter()
    orig = sim._commit

    def commit(r, ex):
        served[ex.slot] += 1
        orig(r, ex)

    sim._commit = commit  # type: ignore[method-assign]
    sim.run()
    assert sim.summary()["failed"] == 0
    return served


def test_stake_proportional_selection_shares() -> None:
    """Known answer: the executor of an offloaded request is chosen with probability
    stake / total stake (Efraimidis-Spirakis first pick in core.selection)."""
    stakes = (1_000_000, 1_000_000, 2_000_000, 3_000_000, 4_000_000, 5_000_000)
    served = _shares("wwwserve", stakes)
    total = sum(served.values())
    assert total >= 700
    exp = {i: stakes[i] / sum(stakes[1:]) for i in range(1, 6)}
    for i in range(1, 6):
        sd = math.sqrt(exp[i] * (1 - exp[i]) / total)
        assert abs(served[i] / total - exp[i]) < 4 * sd, (i, served[i] / total, exp[i])
    uni = _shares("random", stakes)
    tot = sum(uni.values())
    for i in range(1, 6):
        assert abs(uni[i] / tot - 0.2) < 4 * math.sqrt(0.16 / tot)


def test_gossip_reaches_every_node_and_repairs_loss() -> None:
    net = NetModel(NetConfig(kind="geo", loss=0.0), 300, seed=2)
    p = GossipParams()
    mesh = build_mesh(300, p, seed=2)
    assert all(len(m) == 6 for m in mesh[0])
    assert min(mesh_hops(mesh[0], 0)) == 0 and -1 not in mesh_hops(mesh[0], 0)
    r = run_stream(net, p, 8, 5.0, seed=2, mesh=mesh)
    # every node forwards its first copy to its D - 1 other mesh peers: ~D - 1 copies per node
    assert r["delivery"] == 1.0 and abs(r["copies_recv_per_msg"] - 5.0) < 0.1
    lossy = NetModel(NetConfig(kind="geo", loss=0.05), 300, seed=2)
    r2 = run_stream(lossy, p, 8, 5.0, seed=2, mesh=mesh)
    assert r2["delivery"] > 0.999 and r2["recovered_by_gossip"] >= 0
    no_gossip = run_stream(lossy, GossipParams(D_lazy=0), 8, 5.0, seed=2, mesh=mesh)
    assert no_gossip["ihave_per_node_per_s"] == 0.0
    assert r2["last_ms"]["p50"] < 1000.0


def test_geo_model_known_distances() -> None:
    # New York - London great circle is about 5,570 km
    assert abs(great_circle_km(40.71, -74.01, 51.51, -0.13) - 5570) < 30
    net = NetModel(NetConfig(kind="geo"), 500, seed=1)
    st = net.rtt_stats(2000, 1)
    assert 20 < st["p50_ms"] < 200 and st["p99_ms"] < 500


def test_failure_detection_under_churn() -> None:
    wl = [[(0.5 * k + 0.01 * i, 100, 50) for k in range(100)] for i in range(40)]
    cfg = SimConfig(nodes=40, duration=50.0, strategy="wwwserve", seed=5, workload=wl, churn_per_min=10.0,
                    observers=40, net=NetConfig(kind="geo"))
    s = Simulation(cfg).run().summary()
    fd = s["failure_detection"]
    assert s["stats"]["leaves"] > 0 and fd["suspect_after_s"]["n"] > 0
    # suspect after 3 silent intervals of 2 s, seen at the next half-interval sweep: [6, 8) s
    # after the last status, which is up to ~2.2 s before the departure
    assert 3.5 <= fd["suspect_after_s"]["p50"] <= 8.5
    assert fd["false_suspicions"] == 0
    assert s["failed"] == 0  # requests on departed executors were re-dispatched by the core


def test_cli_quick_small(tmp_path: Path) -> None:
    rc = main(["--quick", "--nodes", "30", "--duration", "20", "--strategies", "centralized,wwwserve",
               "--no-progress", "--out", str(tmp_path)])
    assert rc == 0
    res = json.loads((tmp_path / "sim_network.json").read_text())
    assert set(res["runs"]) == {"centralized", "wwwserve"}
    assert res["runs"]["wwwserve"]["requests"] > 100
    assert (tmp_path / "sim_network.md").read_text().startswith("# Network simulator")
    assert (tmp_path / "sim_network.png").stat().st_size > 1000


@pytest.mark.slow
def test_cli_quick_subprocess(tmp_path: Path) -> None:
    """``python -m wwwserve_p2p.sim.network --quick`` as a user runs it (200 nodes, 120 s)."""
    proc = subprocess.run([sys.executable, "-m", "wwwserve_p2p.sim.network", "--quick", "--strategies",
                           "centralized,wwwserve", "--no-progress", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((tmp_path / "sim_network.json").read_text())
    assert res["options"]["nodes"] == 200
    assert res["comparison"]["wwwserve_over_centralized"] > 0.8
