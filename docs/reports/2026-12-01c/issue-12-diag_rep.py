"""stake sweep rep with log counters: reputation events per peer, re-dispatch reasons."""
import sys, json, logging, re, collections
repo = sys.argv[1]; reps = [int(x) for x in sys.argv[2].split(",")]; key = sys.argv[3] if len(sys.argv) > 3 else "stake"
variant = sys.argv[4] if len(sys.argv) > 4 else "base"
sys.path.insert(0, repo + "/benchmarks")
import slo_attainment as B
from wwwserve_p2p.sim.workload import load_azure_trace, poisson_antiphase
import wwwserve_p2p.services.delegation as D
if variant == "norank":
    from wwwserve_p2p.core.reputation import Reputation
    Reputation.rank = lambda self, peers, now, exclude=(), keep=1: set()
if variant == "nodeadline":
    orig = D.Requester._deadline_for
    def _dl(self, attempt, offer, model, n_attempt=0):
        orig(self, attempt, offer, model, n_attempt); attempt.first_token_s = self.config.first_token_timeout
    D.Requester._deadline_for = _dl
cnt = collections.Counter(); peers = {}
import wwwserve_p2p.sim.executor as SE, trio as _trio
SLOW = []; ALLT = []; SLOW_ALL = []
_og = SE.SimulatedExecutor.generate
async def _gen(self, request):
    t0 = _trio.current_time(); pt = SE.count_prompt_tokens(request)
    ahead = sum(s.prefill_total - s.prefilled for s in self._running) + sum(s.prefill_total for s in self._queue)
    nrun = len(self._running); nq = len(self._queue); first = True
    async for ch in _og(self, request):
        if first:
            first = False; dt = _trio.current_time() - t0; ALLT.append(dt)
            if dt > 0.49: SLOW.append((round(dt,3), pt, ahead, nrun, nq))
        yield ch
SE.SimulatedExecutor.generate = _gen
DL = {}; OBS = []
_odl = D.Requester._deadline_for
def _dl2(self, attempt, offer, model, n_attempt=0):
    _odl(self, attempt, offer, model, n_attempt)
    DL[id(attempt)] = (offer.expected_ttft_s, attempt.first_token_s, n_attempt, attempt)
D.Requester._deadline_for = _dl2
_oobs = D.Requester._observe_ttft
def _obs2(self, model, seconds):
    _oobs(self, model, seconds)
    OBS.append(seconds)
D.Requester._observe_ttft = _obs2
_open = D.Requester._penalise
def _pen2(self, peer_id, exc, missed=False):
    _open(self, peer_id, exc, missed)
    for k,(adv, dl, n, att) in list(DL.items()):
        if att.peer_id == peer_id and att.missed_deadline:
            cnt["miss_adv%.2f_dl%.2f_n%d_t%.0f" % (adv, dl, n, D.trio.current_time())] += 1
D.Requester._penalise = _pen2
class H(logging.Handler):
    def emit(self, rec):
        m = rec.getMessage()
        r = re.match(r"reputation of (\S+): (\w+)", m)
        if r: cnt["rep_" + r.group(2)] += 1; cnt["pen_" + r.group(1)[-4:]] += 1
        if "re-dispatching" in m:
            cnt["redispatch"] += 1
            r2 = re.search(r"executor (\S+) failed", m); cnt["rd_" + r2.group(1)[-4:]] += 1
            cnt["why_" + re.sub(r"[0-9.]+", "N", m.split("(", 1)[1])[:60]] += 1
lg = logging.getLogger("wwwserve_p2p"); lg.setLevel(logging.INFO); lg.addHandler(H())
TRACE = "/work/shared/data/azure-llm-trace-2023/conv.csv"
args = B.parse_args(["--sweep", "--virtual", "--trace", TRACE])
trace = load_azure_trace(TRACE)
kind = B.Kind("A100", "8b")
cal = B.calibrate(kind, B.token_sample(trace, B.Clip(args.max_prompt, args.max_output), args.seed), args.max_batch, args.seed)
c = cal["throughput_rps"]; rate = args.sweep_source_factor * c
ts = args.time_scale or max(1.0, round(args.wall_rate / rate, 2)); dur = args.duration or args.run_wall * ts
src_reqs = B.to_reqs(poisson_antiphase(1, dur, rate, rate, args.seed, token_source=trace), B.Clip(args.max_prompt, args.max_output))
pols = [{"accept_frequency": v} for v in (0.25, 0.5, 0.75, 1.0)] if key == "accept" else [{"stake": v * 1_000_000} for v in (1, 2, 4, 8)]
out = []
for rep in reps:
    SLOW_ALL.append(list(SLOW)); SLOW.clear(); ALLT.clear()
    vplan = B.SettingPlan(f"sweep-{key}", [kind] * 5, src_reqs, dur, 1.0, "", {})
    run = B.run_virtual(f"sweep/{key}", vplan, "wwwserve", args, rep, B.Progressbar(0) if False else type("P",(),{"done":lambda s,r:None,"log":lambda s,t:None,"describe":lambda s,t:None})(), [None] + pols)
    s = run["summary"]
    out.append({"acc": [p["accepted_for_others"] for p in s["per_node"][1:]], "src": s["per_node"][0], "ids": [i[-4:] for i in run["records"] and [] or []],
                "late": {k: v for k, v in s.items() if k.startswith("late_")}, "lat": round(s["latency_mean_s"], 2)})
import statistics
dls = [v[1] for v in DL.values()]; advs=[v[0] for v in DL.values()]
cnt["obs_p50"] = round(statistics.median(OBS),3); cnt["obs_p99"] = round(sorted(OBS)[int(.99*len(OBS))],3); cnt["obs_max"]=round(max(OBS),3)
cnt["dl_min"] = round(min(dls),3); cnt["dl_p50"] = round(statistics.median(dls),3); cnt["adv_p50"]=round(statistics.median(advs),3)
cnt["slow_runs"] = SLOW[:20]; cnt["slow_all"]=SLOW_ALL; ALLT.sort(); cnt["exec_ttft_q"] = [round(ALLT[int(q*len(ALLT))-1],3) for q in (.5,.9,.95,.99,1.0)]
print(json.dumps({"variant": variant, "key": key, "runs": out, "counts": dict(cnt), "dur": dur, "n": len(src_reqs)}))
