#!/usr/bin/env python3
"""Experiments of issue 17 on the network simulator (``wwwserve_p2p.sim.network``).

Sub-commands (each writes ``<out>/<name>.{json,md,png}``):

  slo       SLO attainment of WWW.Serve vs centralized (and single) at ``--nodes`` (e.g. 1000):
            the trace setting of benchmarks/slo_attainment.py (A100 / Qwen3-8B, max batch 4,
            Azure conv trace windows at load 0.7), each strategy in its own process (``--jobs``),
            the benchmark's metric (attainment at the middle of a 0..pooled-p95 threshold grid).
  gossip    status gossip cost per node vs N: message-level GossipSub (D=6, D_lo=4, D_hi=12,
            D_lazy=6, heartbeat 1 s) on the geographic network for a few messages per N gives
            copies received/sent per node per message and IHAVE traffic; with the real encoded
            status size (wire.codec.encode_status) and two CPU cost models (this process's
            measured decode + Ed25519 verify, and py-libp2p's measured CPU per delivery from a
            gossip_latency.py result) it reports messages, bytes and CPU per node per second,
            and the largest N under 1 % of a core and 1 % of a 100 Mbit/s link.
  ledger    ledger bytes and verifications per node per second vs the network's delegated
            request rate, every node replicating every block, before (one claim per request)
            and after payment channels (``--channel-requests`` requests per channel, open +
            close entries), and the request rate each design sustains per node core.
  validate  the simulator against the real benchmarks at 5 and 16 nodes: replays the exact
            request lists of benchmarks/slo_attainment.py (its own planning code, imported
            read-only) on the simulator with a 127.0.0.1 network and the benchmark's status
            interval x time scale, and gossip_latency.py's stream on a local network with
            py-libp2p's CPU costs fitted on the 5-node run; compares with result JSONs of the
            real benchmarks given by ``--real-slo DIR`` (per N) and ``--real-gossip DIR``.

    python benchmarks/sim_scale.py slo --nodes 1000 --duration 600 --jobs 3
    python benchmarks/sim_scale.py gossip --sizes 16,100,1000,10000
    python benchmarks/sim_scale.py ledger --from results/sim_scale/slo_1000.json
    python benchmarks/sim_scale.py validate --real-slo 5=/tmp/slo5 --real-gossip 5=/tmp/g5,16=/tmp/g16

The machine this ran on was shared (2 cores, several agents): the simulator's results do not
depend on it (virtual time), its wall times do; CPU seconds are reported beside them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import harness
from wwwserve_p2p.sim.network import _clean  # JSON-safe copy (non-finite floats -> null)

HERE = Path(__file__).resolve().parent


# ------------------------------------------------------------------------------------ slo
def _run_one(job: dict) -> dict:
    from wwwserve_p2p.sim.netmodel import NetConfig
    from wwwserve_p2p.sim.network import SimConfig, Simulation

    net = NetConfig(**job.pop("net", {}))
    t0 = time.process_time()
    sim = Simulation(SimConfig(net=net, **job)).run()
    e2e, ttft = sim.latencies()
    return {"summary": sim.summary(), "e2e": e2e, "ttft": ttft, "cpu_s": time.process_time() - t0}


class _Lat:
    """Duck-typed stand-in for a Simulation in network.compare (its latencies only)."""

    def __init__(self, e2e, ttft):
        self._l = (e2e, ttft)

    def latencies(self):
        return self._l


def run_jobs(jobs: list[dict], n_jobs: int) -> list[dict]:
    if n_jobs <= 1 or len(jobs) == 1:
        return [_run_one(dict(j)) for j in jobs]
    with mp.get_context("fork").Pool(min(n_jobs, len(jobs))) as pool:
        return pool.map(_run_one, [dict(j) for j in jobs])


def cmd_slo(a: argparse.Namespace) -> dict:
    from wwwserve_p2p.sim.network import compare

    strategies = a.strategies.split(",")
    jobs = [dict(nodes=a.nodes, duration=a.duration, strategy=s, seed=a.seed, load=a.load, gpu=a.gpu,
                 model=a.model, max_batch=a.max_batch, view=a.view, churn_per_min=a.churn) for s in strategies]
    t0 = time.monotonic()
    outs = run_jobs(jobs, a.jobs)
    cmp_ = compare({s: _Lat(o["e2e"], o["ttft"]) for s, o in zip(strategies, outs)})
    res = {"nodes": a.nodes, "duration_s": a.duration, "gpu": a.gpu, "model": a.model, "load": a.load,
           "view": a.view, "churn_per_min": a.churn, "wall_s": time.monotonic() - t0,
           "runs": {s: dict(o["summary"], cpu_s=o["cpu_s"]) for s, o in zip(strategies, outs)},
           "comparison": cmp_}
    lines = [f"**Simulated network, N={a.nodes}, {a.duration:g} simulated s, {a.gpu}/{a.model} x batch {a.max_batch}, "
             f"trace load {a.load}, churn {a.churn} %/min**", "",
             "| strategy | requests | failed | offloaded | e2e p50 s | e2e p99 s | attainment @ median SLO | CPU s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in strategies:
        r = res["runs"][s]
        lines.append(f"| {s} | {r['requests']} | {r['failed']} | {r['offload_share']:.1%} | {r['e2e_p50_s']:.2f} | "
                     f"{r['e2e_p99_s']:.2f} | {cmp_['at_median'][s]:.3f} | {r['cpu_s']:.0f} |")
    if "wwwserve_over_centralized" in cmp_:
        lines += ["", f"- WWW.Serve / centralized at the median SLO ({cmp_['median_slo_s']:.2f} s): "
                  f"**{cmp_['wwwserve_over_centralized']:.3f}** (target >= 0.95)"]
    harness.write_report(Path(a.out), f"slo_{a.nodes}", _clean(res), lines,
                         plots=dict([_plot_curves(cmp_, f"N={a.nodes}", f"slo_{a.nodes}")]))
    return res


def _plot_curves(cmp_: dict, title: str, name: str):
    def draw(plt):
        fig, ax = plt.subplots(figsize=(6, 4))
        for s, att in cmp_["attainment"].items():
            ax.plot(cmp_["thresholds_s"], att, label=s)
        ax.axvline(cmp_["median_slo_s"], color="grey", ls=":", lw=1)
        ax.set_xlabel("end-to-end latency SLO (s)")
        ax.set_ylabel("SLO attainment")
        ax.set_title(f"simulated network, {title}")
        ax.legend()
        fig.tight_layout()
        return fig
    return (name, draw)


# ------------------------------------------------------------------------------------ gossip
def status_bytes() -> int:
    """Encoded size of a realistic status (wire.codec.encode_status): two multiaddrs, one
    model, an API URL, a ledger digest, the judge flag."""
    from wwwserve_p2p.core.types import LoadSnapshot, PeerStatus
    from wwwserve_p2p.wire import codec

    pid = "12D3KooW" + "A" * 44
    st = PeerStatus(pid, 1764600000000, 123456, ("qwen3-8b",), LoadSnapshot(2, 1, 4, 0.42), True, 4_000_000, 1, 4,
                    (f"/ip4/203.0.113.7/tcp/4001/p2p/{pid}", f"/ip6/2001:db8::7/tcp/4001/p2p/{pid}"),
                    "https://gpu-7.example.net:8000", "ab" * 32, True)
    return len(codec.encode_status(st, "mainnet-" + "f" * 16))


def measured_verify_cost(n: int = 2000) -> dict[str, float]:
    """CPU seconds (this process) to decode one status and verify one Ed25519 signature."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from wwwserve_p2p.core.types import LoadSnapshot, PeerStatus
    from wwwserve_p2p.wire import codec

    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    st = PeerStatus("12D3KooW" + "A" * 44, 1, 1, ("m",), LoadSnapshot(1, 0, 4, 0.1), True, 1, 0, 4)
    data = codec.encode_status(st, "net")
    sig = key.sign(data)
    t = time.process_time()
    for _ in range(n):
        pub.verify(sig, data)
    verify = (time.process_time() - t) / n
    t = time.process_time()
    for _ in range(n):
        codec.decode_status(data, "net")
    decode = (time.process_time() - t) / n
    return {"verify_s": verify, "decode_s": decode}


#: bytes around a status on the wire: pubsub Message (from 38, seqno 8, topic ~40, signature 64,
#: protobuf tags ~10) + RPC framing 4 + yamux header 12 + Noise length + tag 18 + TCP/IP 52
ENVELOPE_BYTES = 38 + 8 + 40 + 64 + 10 + 4 + 12 + 18 + 52
#: bytes per message id in an IHAVE (py-libp2p: from + seqno) and per IHAVE frame overhead
IHAVE_ID_BYTES, IHAVE_FRAME_BYTES = 46, 100


def cmd_gossip(a: argparse.Namespace) -> dict:
    from wwwserve_p2p.sim.gossip import GossipParams, build_mesh, run_stream
    from wwwserve_p2p.sim.netmodel import NetConfig, NetModel

    sizes = [int(x) for x in a.sizes.split(",")]
    sb = status_bytes()
    costs = measured_verify_cost()
    eff_cost = costs["verify_s"] + costs["decode_s"]  # per first copy
    eff_dup = 5e-6  # per duplicate: message-id hash + seen-cache lookup (assumption)
    py_cost = a.py_cpu_per_delivery
    if a.real_gossip:
        d = json.loads((Path(a.real_gossip) / "gossip_latency.json").read_text())
        py_cost = d["summary"]["overlay"]["cpu_s_per_delivery"]
    pub_rate = a.publish_rate  # status publishes per node per second
    rows = []
    for n in sizes:
        p = GossipParams(msg_bytes=sb + ENVELOPE_BYTES)
        net = NetModel(NetConfig(kind="geo", loss=a.loss), n, seed=a.seed)
        msgs = max(2, min(20, int(20000 / n)))
        t0 = time.process_time()
        r = run_stream(net, p, msgs, 5.0, seed=a.seed, mesh=build_mesh(n, p, a.seed))
        msg_rate = n * pub_rate  # statuses published network-wide per second
        recv = msg_rate * r["copies_recv_per_msg"]
        sent = msg_rate * r["copies_sent_per_msg"]
        ids_in_window = min(5000, msg_rate * p.history_gossip * p.heartbeat)
        ihave_frames = p.D_lazy / p.heartbeat if n > p.D + 1 else 0.0
        ihave_bytes = ihave_frames * (IHAVE_FRAME_BYTES + ids_in_window * IHAVE_ID_BYTES)
        data_bytes = (recv + sent) * (sb + ENVELOPE_BYTES)
        deliveries = msg_rate * (n - 1) / n  # first copies per node per second
        rows.append({
            "nodes": n, "sample_messages": msgs, "sim_cpu_s": time.process_time() - t0,
            "delivery": r["delivery"], "first_ms": r["first_ms"], "last_ms": r["last_ms"], "mean_hops": r["mean_hops"],
            "copies_recv_per_msg": r["copies_recv_per_msg"], "copies_sent_per_msg": r["copies_sent_per_msg"],
            "msgs_per_node_s": recv + sent + 2 * ihave_frames, "deliveries_per_node_s": deliveries,
            "bytes_per_node_s": data_bytes + 2 * ihave_bytes, "ihave_bytes_per_node_s": 2 * ihave_bytes,
            "cpu_efficient_core_share": deliveries * eff_cost + (recv - deliveries) * eff_dup,
            "cpu_pylibp2p_core_share": deliveries * py_cost,
        })
        print(f"N={n}: {rows[-1]['msgs_per_node_s']:.0f} msg/s, {rows[-1]['bytes_per_node_s'] / 1e3:.1f} kB/s per node, "
              f"last p50 {r['last_ms']['p50']:.0f} ms", file=sys.stderr)
    # per-node costs are ~linear in N (copies per message ~ D - 1): fit per-N slopes at the largest N
    last = rows[-1]
    link = 0.01 * 100e6 / 8  # 1 % of 100 Mbit/s in bytes/s
    per_n_bytes = last["bytes_per_node_s"] / last["nodes"]
    per_n_eff = last["cpu_efficient_core_share"] / last["nodes"]
    per_n_py = last["cpu_pylibp2p_core_share"] / last["nodes"]
    limits = {"link_1pct_bytes_s": link, "max_n_link_1pct": link / per_n_bytes,
              "max_n_cpu_1pct_efficient": 0.01 / per_n_eff, "max_n_cpu_1pct_pylibp2p": 0.01 / per_n_py}
    res = {"status_bytes": sb, "envelope_bytes": ENVELOPE_BYTES, "publish_rate_per_node_s": pub_rate,
           "costs": {**costs, "efficient_per_first_copy_s": eff_cost, "efficient_per_duplicate_s": eff_dup,
                     "pylibp2p_per_delivery_s": py_cost}, "rows": rows, "limits": limits, "loss": a.loss}
    lines = [f"**Status gossip cost per node vs N** (status {sb} B + {ENVELOPE_BYTES} B envelope, "
             f"{pub_rate:g} publishes per node per s, D=6 mesh, D_lazy=6, heartbeat 1 s, loss {a.loss})", "",
             "| N | msgs/node/s | kB/node/s | % of 100 Mbit/s | CPU % of a core (verify+decode) | CPU % (py-libp2p as measured) | "
             "last-receipt p50 / p99 ms | mean hops |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['nodes']} | {r['msgs_per_node_s']:.0f} | {r['bytes_per_node_s'] / 1e3:.1f} | "
                     f"{r['bytes_per_node_s'] * 8 / 100e6:.2%} | {r['cpu_efficient_core_share']:.2%} | "
                     f"{r['cpu_pylibp2p_core_share']:.1%} | {r['last_ms']['p50']:.0f} / {r['last_ms']['p99']:.0f} | "
                     f"{r['mean_hops']:.2f} |")
    lines += ["", f"- largest N under 1 % of a 100 Mbit/s link: **{limits['max_n_link_1pct']:.0f}**; under 1 % of a core: "
              f"**{limits['max_n_cpu_1pct_efficient']:.0f}** (decode {costs['decode_s'] * 1e6:.0f} us + Ed25519 verify "
              f"{costs['verify_s'] * 1e6:.0f} us per status, measured here), **{limits['max_n_cpu_1pct_pylibp2p']:.1f}** "
              f"with py-libp2p's measured {py_cost * 1e3:.1f} ms CPU per delivery"]

    def draw(plt):
        fig, ax = plt.subplots(1, 2, figsize=(10, 4))
        ns = [r["nodes"] for r in rows]
        ax[0].loglog(ns, [r["bytes_per_node_s"] * 8 / 1e6 for r in rows], "o-", label="status gossip")
        ax[0].axhline(1.0, color="red", ls=":", label="1 % of 100 Mbit/s")
        ax[0].set_xlabel("nodes")
        ax[0].set_ylabel("Mbit/s per node")
        ax[0].legend()
        ax[1].loglog(ns, [100 * r["cpu_efficient_core_share"] for r in rows], "o-", label="decode + verify")
        ax[1].loglog(ns, [100 * r["cpu_pylibp2p_core_share"] for r in rows], "s-", label="py-libp2p measured")
        ax[1].axhline(1.0, color="red", ls=":", label="1 % of a core")
        ax[1].set_xlabel("nodes")
        ax[1].set_ylabel("% of a core per node")
        ax[1].legend()
        fig.tight_layout()
        return fig

    harness.write_report(Path(a.out), "gossip_cost", _clean(res), lines, plots={"gossip_cost": draw})
    return res


# ------------------------------------------------------------------------------------ ledger
def cmd_ledger(a: argparse.Namespace) -> dict:
    base = json.loads(Path(a.from_json).read_text()) if a.from_json else None
    per_req = {
        "before": {"entries": 1.0, "bytes": a.claim_bytes, "verifies": 1.0},
        "after": {"entries": 2.0 / a.channel_requests, "bytes": 2.0 * a.claim_bytes / a.channel_requests,
                  "verifies": 2.0 / a.channel_requests},
    }
    rates = [10, 100, 1000, 10_000, 100_000, 1_000_000]
    sim_rate = None
    if base:
        run = base["runs"].get("wwwserve") or next(iter(base["runs"].values()))
        sim_rate = run["delegated_rate"]
        rates = sorted(set(rates + [round(sim_rate, 1)]))
    rows = []
    for r in rates:
        row = {"delegated_req_s": r}
        for k, c in per_req.items():
            row[k] = {"entries_per_node_s": r * c["entries"], "bytes_per_node_s": r * c["bytes"],
                      "verifies_per_node_s": r * c["verifies"],
                      "core_share": r * c["verifies"] * a.verify_us * 1e-6}
        rows.append(row)
    sustain = {k: 1.0 / (c["verifies"] * a.verify_us * 1e-6) for k, c in per_req.items()}
    link = {k: (0.01 * 100e6 / 8) / c["bytes"] for k, c in per_req.items()}
    res = {"per_request": per_req, "verify_us": a.verify_us, "channel_requests": a.channel_requests,
           "rows": rows, "sustained_req_s_per_core": sustain, "req_s_at_1pct_of_100mbit": link,
           "simulated_delegated_rate": sim_rate, "from": a.from_json}
    lines = [f"**Ledger cost per node vs the network's delegated request rate** (every node replicates and verifies every "
             f"block; {a.verify_us:g} us per claim verified and applied = the measured 10,400/s per core; before: one "
             f"claim ({a.claim_bytes:g} B) per request; after: payment channels, open + close per "
             f"{a.channel_requests} requests)", "",
             "| delegated req/s (network) | before: verif./node/s | before: kB/node/s | before: % core | "
             "after: verif./node/s | after: kB/node/s | after: % core |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        b, f = r["before"], r["after"]
        mark = " (simulated)" if sim_rate is not None and r["delegated_req_s"] == round(sim_rate, 1) else ""
        lines.append(f"| {r['delegated_req_s']:g}{mark} | {b['verifies_per_node_s']:.0f} | {b['bytes_per_node_s'] / 1e3:.1f} | "
                     f"{b['core_share']:.1%} | {f['verifies_per_node_s']:.1f} | {f['bytes_per_node_s'] / 1e3:.2f} | "
                     f"{f['core_share']:.2%} |")
    lines += ["", f"- one node core sustains **{sustain['before']:.0f}** delegated req/s network-wide before, "
              f"**{sustain['after']:.0f}** after; 1 % of a 100 Mbit/s link carries {link['before']:.0f} and {link['after']:.0f} req/s"]
    harness.write_report(Path(a.out), "ledger_cost", _clean(res), lines)
    return res


# ------------------------------------------------------------------------------------ validate
def _load_bench(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(HERE))
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def cmd_validate(a: argparse.Namespace) -> dict:
    from wwwserve_p2p.sim.gossip import GossipParams, run_stream
    from wwwserve_p2p.sim.netmodel import NetConfig, NetModel
    from wwwserve_p2p.sim.network import compare
    from wwwserve_p2p.sim.workload import load_azure_trace

    slo = _load_bench("slo_attainment")
    real_slo = dict(x.split("=", 1) for x in a.real_slo.split(",")) if a.real_slo else {}
    real_g = dict(x.split("=", 1) for x in a.real_gossip.split(",")) if a.real_gossip else {}
    trace = load_azure_trace(slo.DEFAULT_TRACE)
    out: dict[str, Any] = {"slo": {}, "gossip": {}, "tolerance": {"slo_abs": a.tol_slo, "gossip_rel": a.tol_gossip}}
    for n in [int(x) for x in a.sizes.split(",")]:
        bargs = slo.parse_args(["--nodes", str(n), "--settings", a.settings, "--strategies", "single,centralized,wwwserve",
                                *a.bench_args.split()])
        cache: dict = {}
        for setting in bargs.settings:
            plan = slo.plan_setting(setting, bargs, trace, cache)
            wl: list[list] = [[] for _ in range(n)]
            for r in plan.requests:
                wl[r.src].append((r.arrival, r.prompt, r.output))
            jobs = [dict(nodes=n, duration=plan.duration, strategy=s, seed=bargs.seed, workload=wl, view=n - 1,
                         gpu=plan.kinds[0].gpu, model=slo.MODEL_PROFILES[plan.kinds[0].model], max_batch=bargs.max_batch,
                         status_interval=bargs.status_interval * plan.time_scale, hop_cost_s=0.002 * plan.time_scale,
                         net={"kind": "local", "loss": 0.0}, probe_timeout=2.0 * plan.time_scale)
                    for s in ("single", "centralized", "wwwserve")]
            outs = run_jobs(jobs, a.jobs)
            sims = {s: _Lat(o["e2e"], o["ttft"]) for s, o in zip(("single", "centralized", "wwwserve"), outs)}
            cmp_ = compare(sims)
            row: dict[str, Any] = {"sim": cmp_["at_median"], "sim_median_slo_s": cmp_["median_slo_s"],
                                   "sim_mean_s": {s: o["summary"]["e2e_mean_s"] for s, o in zip(sims, outs)},
                                   "sim_offload_share": {s: o["summary"]["offload_share"] for s, o in zip(sims, outs)},
                                   "time_scale": plan.time_scale, "requests": len(plan.requests)}
            if str(n) in real_slo:
                d = json.loads((Path(real_slo[str(n)]) / "slo_attainment.json").read_text())
                st = d["settings"].get(setting)
                if st:
                    # the real run's own grid, applied to the simulated latencies too
                    th = st["thresholds_s"]
                    mid = len(th) // 2 - 1
                    from wwwserve_p2p.sim.network import attainment
                    row["real"] = {s: st["summary"][s]["attainment_at_median_slo"] for s in st["summary"]}
                    row["sim_on_real_grid"] = {s: attainment(o["e2e"], th)[mid] for s, o in zip(sims, outs)}
                    row["real_mean_s"] = {s: st["summary"][s]["latency_mean_s"] for s in st["summary"]}
                    row["real_client_lag_p99_ms"] = {s: st["summary"][s].get("client_lag_p99_ms") for s in st["summary"]}
                    row["real_median_slo_s"] = st["median_slo_s"]
            out["slo"][f"{setting}/{n}"] = row
            print(f"validate slo {setting} N={n}: {row}", file=sys.stderr)
    # gossip: fit py-libp2p's CPU per copy on the smallest real run, predict the others
    gsizes = sorted(int(k) for k in real_g)
    if gsizes:
        reals = {k: json.loads((Path(real_g[str(k)]) / "gossip_latency.json").read_text()) for k in gsizes}
        base = reals[gsizes[0]]["summary"]["overlay"]
        cfg0 = reals[gsizes[0]]["config"]
        copies0 = base["dups_per_delivery"] + 1.0
        per_copy = base["cpu_s_per_delivery"] / copies0  # send + receive of one copy
        params = dict(cpu_send_s=0.75 * per_copy, cpu_recv_s=0.25 * per_copy, cpu_deliver_s=0.0005)
        for k in gsizes:
            rg = reals[k]["summary"]["overlay"]
            c = reals[k]["config"]
            size = int(c.get("size", 1024))
            rate = float(c.get("rate", 5.0))
            msgs = int(c.get("messages", 60))
            net = NetModel(NetConfig(kind="local", loss=0.0), k, seed=a.seed)
            res_own = run_stream(net, GossipParams(msg_bytes=size, **params), msgs, rate, seed=a.seed)
            res_host = run_stream(net, GossipParams(msg_bytes=size, host_cores=2, **params), msgs, rate, seed=a.seed,
                                  background_util=rg.get("idle_cpu_per_node", 0.0) * k)
            out["gossip"][str(k)] = {"real": {"first_p50": rg["first_ms"]["p50"], "last_p50": rg["last_ms"]["p50"],
                                              "last_p99": rg["last_ms"]["p99"], "dups": rg["dups_per_delivery"],
                                              "delivery": rg["delivery"]},
                                     "sim_own_core": _gsum(res_own), "sim_shared_2_cores": _gsum(res_host),
                                     "fitted_on": gsizes[0], "cpu_per_copy_s": per_copy}
        out["gossip_config"] = {"fit": params, "base_config": cfg0}
    lines = _validate_lines(out)
    harness.write_report(Path(a.out), "sim_validation", _clean(out), lines)
    return out


def _gsum(r: dict) -> dict:
    return {"first_p50": r["first_ms"]["p50"], "last_p50": r["last_ms"]["p50"], "last_p99": r["last_ms"]["p99"],
            "dups": r["dups_per_delivery"], "delivery": r["delivery"], "slowdown": r.get("slowdown", 1.0)}


def _validate_lines(out: dict) -> list[str]:
    lines = [f"**Simulator vs the real benchmarks** (tolerance: attainment +-{out['tolerance']['slo_abs']}, "
             f"gossip latency +-{out['tolerance']['gossip_rel']:.0%})", "",
             "| setting / N | strategy | real attainment | sim attainment (real grid) | sim (own grid) | real mean s | sim mean s | within |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    tol = out["tolerance"]["slo_abs"]
    for key, row in out["slo"].items():
        for s in row["sim"]:
            real = row.get("real", {}).get(s)
            simg = row.get("sim_on_real_grid", {}).get(s)
            ok = "" if real is None else ("yes" if abs(real - simg) <= tol else "no")
            rm = row.get("real_mean_s", {}).get(s)
            lines.append(f"| {key} | {s} | {'' if real is None else f'{real:.3f}'} | {'' if simg is None else f'{simg:.3f}'} | "
                         f"{row['sim'][s]:.3f} | {'' if rm is None else f'{rm:.2f}'} | {row['sim_mean_s'][s]:.2f} | {ok} |")
    if out["gossip"]:
        lines += ["", "| N | real first p50 ms | real last p50 / p99 ms | real dups | sim (own core) last p50 / p99 | "
                  "sim (2 shared cores) first p50 / last p50 / p99 | sim dups |", "|---:|---:|---:|---:|---:|---:|---:|"]
        for k, g in out["gossip"].items():
            r, o, h = g["real"], g["sim_own_core"], g["sim_shared_2_cores"]
            lines.append(f"| {k} | {r['first_p50']:.1f} | {r['last_p50']:.0f} / {r['last_p99']:.0f} | {r['dups']:.2f} | "
                         f"{o['last_p50']:.0f} / {o['last_p99']:.0f} | {h['first_p50']:.1f} / {h['last_p50']:.0f} / "
                         f"{h['last_p99']:.0f} (x{h['slowdown']:.1f}) | {h['dups']:.2f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("slo")
    s.add_argument("--nodes", type=int, default=1000)
    s.add_argument("--duration", type=float, default=600.0)
    s.add_argument("--strategies", default="single,centralized,wwwserve")
    s.add_argument("--load", type=float, default=0.7)
    s.add_argument("--gpu", default="A100")
    s.add_argument("--model", default="qwen3-8b")
    s.add_argument("--max-batch", type=int, default=4)
    s.add_argument("--view", type=int, default=None)
    s.add_argument("--churn", type=float, default=0.0)
    s.add_argument("--jobs", type=int, default=3)
    g = sub.add_parser("gossip")
    g.add_argument("--sizes", default="16,100,1000,10000")
    g.add_argument("--loss", type=float, default=0.001)
    g.add_argument("--publish-rate", type=float, default=0.5, help="status publishes per node per s (default 1/2 s)")
    g.add_argument("--py-cpu-per-delivery", type=float, default=0.022, help="s; overridden by --real-gossip")
    g.add_argument("--real-gossip", default=None, help="a gossip_latency.py --out dir (py-libp2p CPU per delivery)")
    lg = sub.add_parser("ledger")
    lg.add_argument("--from", dest="from_json", default=None, help="an slo_N.json: marks its simulated delegated rate")
    lg.add_argument("--claim-bytes", type=float, default=420.0)
    lg.add_argument("--verify-us", type=float, default=96.0, help="us per claim verified and applied (10,400/s)")
    lg.add_argument("--channel-requests", type=int, default=100, help="requests per payment channel (open + close)")
    v = sub.add_parser("validate")
    v.add_argument("--sizes", default="5,16")
    v.add_argument("--settings", default="fluctuating")
    v.add_argument("--real-slo", default="", help="N=DIR,... of slo_attainment.py --out dirs")
    v.add_argument("--real-gossip", default="", help="N=DIR,... of gossip_latency.py --out dirs")
    v.add_argument("--bench-args", default="", help="extra slo_attainment.py options the real runs used (quoted)")
    v.add_argument("--tol-slo", type=float, default=0.1)
    v.add_argument("--tol-gossip", type=float, default=0.5)
    v.add_argument("--jobs", type=int, default=3)
    for sp in (s, g, lg, v):
        sp.add_argument("--seed", type=int, default=1)
        sp.add_argument("--out", default="results/sim_scale")
    a = p.parse_args(argv)
    {"slo": cmd_slo, "gossip": cmd_gossip, "ledger": cmd_ledger, "validate": cmd_validate}[a.cmd](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
