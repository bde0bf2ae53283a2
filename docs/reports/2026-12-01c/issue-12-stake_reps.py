"""The stake sweep of benchmarks/slo_attainment.py --sweep --virtual (default policy), repeats rep=0..N-1."""
import sys, json
repo = sys.argv[1]; reps = [int(x) for x in sys.argv[2].split(",")]; key = sys.argv[3] if len(sys.argv) > 3 else "stake"
sys.path.insert(0, repo + "/benchmarks")
import slo_attainment as B
from wwwserve_p2p.sim.workload import load_azure_trace, poisson_antiphase
TRACE = "/work/shared/data/azure-llm-trace-2023/conv.csv"
args = B.parse_args(["--sweep", "--virtual", "--trace", TRACE])
trace = load_azure_trace(TRACE)
kind = B.Kind("A100", "8b")
cal = B.calibrate(kind, B.token_sample(trace, B.Clip(args.max_prompt, args.max_output), args.seed), args.max_batch, args.seed)
c = cal["throughput_rps"]
rate = args.sweep_source_factor * c
ts = args.time_scale or max(1.0, round(args.wall_rate / rate, 2))
dur = args.duration or args.run_wall * ts
src_reqs = B.to_reqs(poisson_antiphase(1, dur, rate, rate, args.seed, token_source=trace), B.Clip(args.max_prompt, args.max_output))
stakes = [1, 2, 4, 8]
src_pol = {"probe_extra": 0} if key == "stake_probe1" else None
pols = [{"accept_frequency": v} for v in (0.25, 0.5, 0.75, 1.0)] if key == "accept" else [{"stake": v * 1_000_000} for v in stakes]
out = []
with B.Progressbar(len(src_reqs) * len(reps)) as bar:
    for rep in reps:
        vplan = B.SettingPlan(f"sweep-{key}", [kind] * 5, src_reqs, dur, 1.0, "", {})
        run = B.run_virtual(f"sweep/{key}", vplan, "wwwserve", args, rep, bar, [src_pol] + pols)
        acc = [p["accepted_for_others"] for p in run["summary"]["per_node"][1:]]
        out.append(acc)
        bar.log(f"rep {rep}: {acc}")
print(json.dumps({"repo": repo, "key": key, "reps": reps, "accepted": out}))
