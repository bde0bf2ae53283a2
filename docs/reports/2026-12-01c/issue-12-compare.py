"""Before/after comparison of two (or more) slo_attainment.py --virtual JSONs on common SLO thresholds.
usage: compare.py OUT_PREFIX name=path.json [name=path.json ...]   (the last one sets the thresholds)"""
import json, sys, statistics
import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
out = sys.argv[1]; runs = [a.split("=", 1) for a in sys.argv[2:]]
data = {n: json.load(open(p)) for n, p in runs}
ref = data[runs[-1][0]]
STRATS = ["single", "centralized", "random", "p2c", "wwwserve"]
def att(records, T):
    return sum(1 for r in records if r["ok"] and r["latency"] <= T) / len(records)
lines = []
settings = list(ref["settings"])
for s in settings:
    T = ref["settings"][s]["median_slo_s"]
    lines.append(f"\n**{s}** ({ref['settings'][s]['description']}; {ref['settings'][s]['requests']} requests; SLO = {T:.2f} s, the after run's median threshold)\n")
    lines.append("| strategy | " + " | ".join(f"{n} attain@SLO | {n} mean (s) | {n} p99 (s)" for n, _ in runs) + " |")
    lines.append("|---|" + "---:|---:|---:|" * len(runs))
    for st in STRATS:
        row = [st]
        for n, _ in runs:
            sres = data[n]["settings"].get(s)
            if not sres or st not in sres["runs"]:
                row += ["-"] * 3; continue
            a = statistics.median(att(rep["records"], T) for rep in sres["runs"][st])
            sm = sres["summary"][st]
            row += [f"{a:.3f}", f"{sm['latency_mean_s']:.2f}", f"{sm['latency_p99_s']:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    for n, _ in runs:
        sres = data[n]["settings"].get(s)
        if not sres: continue
        w = statistics.median(att(rep["records"], T) for rep in sres["runs"]["wwwserve"])
        c = statistics.median(att(rep["records"], T) for rep in sres["runs"]["centralized"])
        si = statistics.median(att(rep["records"], T) for rep in sres["runs"]["single"])
        lines.append(f"- {n}: wwwserve / centralized = {w / c:.3f}x, wwwserve / single = {w / si:.2f}x")
lines.append("\nTargets as the script checks them (each run on its own thresholds):\n")
for n, _ in runs:
    lines.append(f"- **{n}**: " + "; ".join(f"[{'met' if t['met'] else 'MISSED'}] {t['setting']}: {t['target']} ({t['detail']})" for t in data[n]["targets"]))
open(out + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
fig, axes = plt.subplots(1, len(settings), figsize=(4.2 * len(settings), 3.8), squeeze=False)
styles = ["--", "-"]
colors = dict(zip(STRATS, ["tab:gray", "tab:blue", "tab:orange", "tab:green", "tab:red"]))
for ax, s in zip(axes[0], settings):
    th = ref["settings"][s]["thresholds_s"]
    for k, (n, _) in enumerate(runs):
        sres = data[n]["settings"].get(s)
        if not sres: continue
        for st in STRATS:
            ys = [statistics.median(att(rep["records"], T) for rep in sres["runs"][st]) for T in th]
            ax.plot(th, ys, styles[k % 2] if len(runs) == 2 else ["-.", "--", "-"][k % 3], color=colors[st],
                    label=f"{st} ({n})", lw=1.2)
    ax.set_title(s); ax.set_xlabel("latency SLO (s, model time)"); ax.set_ylim(0, 1.02); ax.grid(alpha=0.3)
axes[0][0].set_ylabel("SLO attainment (median of repeats)")
axes[0][-1].legend(fontsize=6, loc="lower right")
fig.tight_layout(); fig.savefig(out + ".png", dpi=110)
