#!/usr/bin/env python3
"""Quality incentives (WWW.Serve paper, Figs. 8-9, at small scale): do duels and judges pay
better models more?

Real ``wwwserve node`` processes on 127.0.0.1:

- one **requester** (serves nothing the users ask for, so every request is offloaded) with
  ``duel.duel_rate`` 1.0: every request goes to two stake-selected executors;
- **executors** of five classes, all advertising the model ``shakespeare``: three capacities of
  small GPT-2 models trained on tinyshakespeare (``nano`` < ``tiny`` < ``small``, see
  :data:`wwwserve_p2p.executors.training.CAPACITIES`), an int8 weight-quantized copy of the
  largest (``small-int8``), and a **random responder** (uniformly random tokens of the
  models' BPE vocabulary);
- **judges** (``--judges``, default 3) that serve nothing and judge with the *likelihood*
  method (mean token log-probability of each answer under their own ``small`` model).

Prompts are the openings of speeches from the held-out end of tinyshakespeare (never seen in
training), sent through the official ``openai`` client to the requester's completions API with
temperature 0.8 and a per-request seed. Outputs (``--out``): ``results.json``, ``results.md``
and ``quality_incentives.png`` (win rate per class; credit over time per node, like the
paper's figures). Win rates and credits are read from the replicated ledger (every node
computes the same, see DESIGN §4/§6).

Targets (issue 4): win rates ordered by capacity with >= 0.10 between the largest and the
smallest, the quantized class below its full-precision source, the random responder <= 0.20,
and credit curves in the same order.

    python benchmarks/quality_incentives.py            # ~5-8 min on 2 cores (models cached)
    python benchmarks/quality_incentives.py --quick    # ~2 min, run by tests/test_quality_incentives.py
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import harness
import httpx
from rich.console import Console
from rich.table import Table

from wwwserve_p2p.cli import find_corpus
from wwwserve_p2p.localnet import (NodeProcess, NodeSpec, start_network, stop_network, wait_for_ledger,
                                   wait_for_mesh, write_network_genesis)

MODEL = "shakespeare"
#: executor classes: name -> (trained size or None for the random responder, quantize option)
CLASSES: dict[str, tuple[str | None, str]] = {
    "nano": ("nano", "none"), "tiny": ("tiny", "none"), "small": ("small", "none"),
    "small-int8": ("small", "int8"), "random": (None, "none"),
}
CAPACITY_ORDER = ("nano", "tiny", "small")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Writes results.json, results.md and quality_incentives.png to --out.")
    p.add_argument("--requests", type=int, default=200, help="user requests (each one duel) [200]")
    p.add_argument("--concurrency", type=int, default=2,
                   help="requests in flight at once; each needs two idle executors for its duel [2]")
    p.add_argument("--max-tokens", type=int, default=40, help="max_tokens per answer [40]")
    p.add_argument("--judges", type=int, default=3, help="dedicated judge nodes (likelihood method) [3]")
    p.add_argument("--executor-bond", type=int, default=20_000,
                   help="micro-credits the losing executor forfeits to the winner [20000]")
    p.add_argument("--data-dir", type=Path, default=Path("data"), help="model cache [data]")
    p.add_argument("--corpus", type=Path, default=None, help="tinyshakespeare input.txt [../shared/data/...]")
    p.add_argument("--out", type=Path, default=Path("results/quality_incentives"), help="output dir")
    p.add_argument("--train-steps", type=int, default=None,
                   help="train every size for this many steps instead of its default (use with a separate "
                        "--data-dir: the cache is keyed by steps)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="fewer requests (40) and 2 judges, for CI")
    args = p.parse_args(argv)
    if args.quick:
        args.requests = min(args.requests, 40)
        args.judges = min(args.judges, 2)
    if args.requests < 1 or args.concurrency < 1 or args.judges < 1:
        p.error("--requests, --concurrency and --judges must be >= 1")
    return args


def held_out_prompts(corpus: Path, n: int, seed: int) -> list[str]:
    """``n`` speech openings (speaker line + first line) from the last 5 % of the corpus, which
    training holds out (:data:`wwwserve_p2p.executors.training.HELD_OUT_DIVISOR`)."""
    text = corpus.read_text(encoding="utf-8")
    tail = text[len(text) - len(text) // 20:]
    speeches = [s.strip().split("\n") for s in tail.split("\n\n")]
    openings = [f"{s[0]}\n{s[1]}\n" for s in speeches if len(s) >= 2 and s[0].endswith(":") and len(s[1]) > 10]
    if not openings:
        raise SystemExit(f"no speech openings found in {corpus}")
    rng = random.Random(seed)
    return [rng.choice(openings) for _ in range(n)]


def node_specs(args: argparse.Namespace, paths: dict[str, Path]) -> list[NodeSpec]:
    net = f"quality-incentives-{args.seed}"
    common = {"status": {"interval": 1.0}, "ledger": {"block_interval": 1.0}}

    def spec(name: str, executor: dict, desc: str, **sections) -> NodeSpec:
        cfg = {"node": {"network": net, "seed": args.seed * 100 + len(specs), "log_level": "INFO"},
               **{k: dict(v) for k, v in common.items()}, "executor": executor}
        for k, v in sections.items():
            cfg.setdefault(k, {}).update(v)
        return NodeSpec(name, cfg, desc)

    specs: list[NodeSpec] = []
    specs.append(spec("requester", {"kind": "echo", "models": ["front"]}, "requester, duel_rate 1.0",
                      policy={"participate": False},
                      duel={"duel_rate": 1.0, "judges_k": args.judges, "executor_bond": args.executor_bond,
                            "judge": "none", "answer_timeout": 300.0}))
    for cls, (size, quant) in CLASSES.items():
        if size is None:
            # uniformly random tokens of the models' own BPE vocabulary
            ex = {"kind": "random", "models": [MODEL], "capacity": 1, "seed": args.seed,
                  "vocab_path": str(Path(paths["small"]).parent / "_tokenizer")}
        else:
            ex = {"kind": "hf", "model_dir": str(paths[size]), "model_name": MODEL, "capacity": 1, "threads": 1,
                  "quantize": quant}
        specs.append(spec(f"exec-{cls}", ex, f"executor: {cls}", duel={"judge": "none"},
                          policy={"max_delegated": 2}))
    for j in range(args.judges):
        specs.append(spec(f"judge-{j}", {"kind": "hf", "model_dir": str(paths["small"]), "model_name": "judge",
                                         "capacity": 1, "threads": 1},
                          "judge: likelihood under the small model", policy={"participate": False},
                          duel={"judge": "likelihood", "max_judging": 1, "judge_timeout": 120.0}))
    return specs


def _send(client, prompt: str, max_tokens: int, seed: int) -> dict[str, Any]:
    t0 = time.monotonic()
    try:
        text = []
        for chunk in client.completions.create(model=MODEL, prompt=prompt, max_tokens=max_tokens, temperature=0.8,
                                               seed=seed, stream=True):
            if chunk.choices and chunk.choices[0].text:
                text.append(chunk.choices[0].text)
        return {"ok": True, "latency_s": time.monotonic() - t0, "answer": "".join(text)}
    except Exception as exc:  # reported, never fatal
        return {"ok": False, "latency_s": time.monotonic() - t0, "error": f"{type(exc).__name__}: {exc}"}


def _accounts(node: NodeProcess) -> dict[str, dict[str, Any]]:
    rows = httpx.get(node.api_url + "/ledger/accounts", timeout=10).json()["accounts"]
    return {a["peer_id"]: a for a in rows}


def _credit(a: dict[str, Any]) -> int:
    return a["balance"] + a["stake"] + a["unbonding"]


def drive(args, requester: NodeProcess, prompts: list[str], nodes: list[NodeProcess], con: Console):
    """Send the prompts; sample every executor's credit from the requester's ledger view each second."""
    import openai

    client = openai.OpenAI(base_url=requester.api_url + "/v1", api_key="none", max_retries=0, timeout=600)
    records: list[dict[str, Any]] = []
    curve: list[dict[str, Any]] = []
    stop = threading.Event()
    t0 = time.monotonic()

    def sample() -> None:
        while not stop.wait(1.0):
            try:
                accs = _accounts(requester)
            except (httpx.HTTPError, ValueError, KeyError):
                continue
            curve.append({"t": round(time.monotonic() - t0, 2), "credit": {p: _credit(a) for p, a in accs.items()},
                          "duels": sum(a["duels"] for a in accs.values()) // 2})

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with harness.progress_bar(con, info=True) as progress:
        task = progress.add_task("requests", total=len(prompts), info="")
        lock = threading.Lock()

        def one(i: int) -> None:
            rec = _send(client, prompts[i], args.max_tokens, args.seed * 100_000 + i)
            with lock:
                records.append(rec)
                ok = sum(r["ok"] for r in records)
                settled = curve[-1]["duels"] if curve else 0
                progress.update(task, advance=1, info=f"ok {ok}, errors {len(records) - ok}, duels settled ~{settled}")

        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            list(pool.map(one, range(len(prompts))))
        # let the last duels finish judging and settle
        deadline = time.monotonic() + 300
        progress.update(task, description="settling")
        while time.monotonic() < deadline:
            st = httpx.get(requester.api_url + "/status", timeout=10).json()["duels"]["as_requester"]
            if st["settled"] + st["abandoned"] >= st["started"]:
                break
            time.sleep(1.0)
    try:
        wait_for_ledger(nodes, timeout=60)
    finally:
        stop.set()
        sampler.join()
    accs = _accounts(requester)
    curve.append({"t": round(time.monotonic() - t0, 2), "credit": {p: _credit(a) for p, a in accs.items()},
                  "duels": sum(a["duels"] for a in accs.values()) // 2})
    return records, curve


def pairwise(requester: NodeProcess, cls_of: dict[str, str]) -> dict[str, dict[str, list[int]]]:
    """Class x class [wins, losses, ties] from the requester's Verdict entries."""
    out: dict[str, dict[str, list[int]]] = {}
    me = httpx.get(requester.api_url + "/ledger", timeout=10).json()["me"]["peer_id"]
    lo = 1
    while True:
        page = httpx.get(requester.api_url + "/ledger/blocks", params={"author": me, "from": lo, "limit": 100},
                         timeout=30).json()
        for blk in page["blocks"]:
            for e in blk["entries"]:
                if e.get("t") != "verdict":
                    continue
                a, b = e["duel"]["executors"]
                votes = [v["choice"] for v in e["votes"]]
                na, nb = votes.count("A"), votes.count("B")
                ca, cb = cls_of.get(a, a[-6:]), cls_of.get(b, b[-6:])
                ra = 0 if na > nb else 1 if nb > na else 2
                out.setdefault(ca, {}).setdefault(cb, [0, 0, 0])[ra] += 1
                out.setdefault(cb, {}).setdefault(ca, [0, 0, 0])[(1, 0, 2)[ra]] += 1
        if len(page["blocks"]) < 100:
            break
        lo += 100
    return out


def evaluate(summary: dict[str, dict[str, Any]]) -> dict[str, bool]:
    wr = {c: summary[c]["win_rate"] if summary[c]["win_rate"] is not None else float("nan") for c in summary}
    credit = {c: summary[c]["credit_change"] for c in summary}
    order = [c for c in CAPACITY_ORDER if c in wr]
    return {
        "win_rates_ordered_by_capacity": all(wr[a] < wr[b] for a, b in zip(order, order[1:])),
        "largest_minus_smallest_ge_0.10": wr["small"] - wr["nano"] >= 0.10,
        "quantized_below_source": wr["small-int8"] < wr["small"],
        "random_le_0.20": wr["random"] <= 0.20,
        "credit_ordered_by_capacity": all(credit[a] < credit[b] for a, b in zip(order, order[1:])),
    }


def plot(summary, curve, cls_of, plt):
    """Win rate per class and credit over time per executor, as one figure."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    classes = list(summary)
    ax1.bar(classes, [summary[c]["win_rate"] or 0 for c in classes], color="#4c72b0")
    ax1.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax1.set_ylabel("duel win rate (ties count half)")
    ax1.set_ylim(0, 1)
    ax1.set_title("Win rate per executor class")
    for i, c in enumerate(classes):
        ax1.text(i, (summary[c]["win_rate"] or 0) + 0.02, f"{summary[c]['duels']} duels", ha="center", fontsize=8)
    peer_of = {c: p for p, c in cls_of.items()}
    for c in classes:
        p = peer_of[c]
        pts = [(s["t"], s["credit"].get(p)) for s in curve if s["credit"].get(p) is not None]
        if pts:
            base = pts[0][1]
            ax2.plot([t for t, _ in pts], [(v - base) / 1e6 for _, v in pts], label=c)
    ax2.set_xlabel("time since first request (s)")
    ax2.set_ylabel("credit change (credits: balance + stake)")
    ax2.set_title("Credit over time per executor")
    ax2.legend()
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    con = harness.console()
    corpus = find_corpus(args.corpus)
    from wwwserve_p2p.executors.training import ensure_models, evaluate_model

    con.print("[bold]1/4[/bold] models: nano, tiny, small trained on tinyshakespeare (cached in "
              f"{args.data_dir}/models)")
    paths = ensure_models(args.data_dir, sizes=("nano", "tiny", "small"), corpus=corpus, steps=args.train_steps,
                          progress=True)
    quality = {}
    for cls, (size, quant) in CLASSES.items():
        if size is not None:
            s = evaluate_model(paths[size], corpus, max_tokens=4000, quantize=quant)
            quality[cls] = {"held_out_mean_logprob": round(s.mean_logprob, 4), "perplexity": round(s.perplexity, 2)}
    con.print("    held-out mean log-prob (nats/token): "
              + ", ".join(f"{c} {q['held_out_mean_logprob']:.3f}" for c, q in quality.items()))
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    specs = node_specs(args, paths)
    write_network_genesis(specs, out / "nodes", f"quality-incentives-{args.seed}", credits=100)
    con.print(f"[bold]2/4[/bold] starting {len(specs)} node processes (logs in {out}/nodes/*/node.log)")
    nodes = start_network(specs, out / "nodes")
    try:
        wait_for_mesh(nodes, timeout=120)
        requester = nodes[0]
        cls_of = {n.peer_id: n.name.removeprefix("exec-") for n in nodes if n.name.startswith("exec-")}
        # judges advertise themselves in their status; wait until the requester sees them all
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            accs = httpx.get(requester.api_url + "/status", timeout=10).json()
            if sum(1 for p in accs["peers"] if p["state"] == "alive") >= len(nodes) - 1:
                break
            time.sleep(0.5)
        prompts = held_out_prompts(corpus, args.requests, args.seed)
        con.print(f"[bold]3/4[/bold] {len(prompts)} held-out prompts to {requester.api_url}/v1/completions, "
                  f"{args.concurrency} at a time, every request a duel judged by {args.judges} likelihood judges")
        t_run = time.monotonic()
        records, curve = drive(args, requester, prompts, nodes, con)
        wall = time.monotonic() - t_run
        accs = _accounts(requester)
        pw = pairwise(requester, cls_of)
        status = httpx.get(requester.api_url + "/status", timeout=10).json()["duels"]
    finally:
        stop_network(nodes)
    start = curve[0]["credit"] if curve else {}
    summary: dict[str, dict[str, Any]] = {}
    for peer, cls in cls_of.items():
        a = accs.get(peer, {})
        summary[cls] = {"peer_id": peer, "duels": a.get("duels", 0), "won": a.get("duels_won", 0),
                        "lost": a.get("duels_lost", 0), "tied": a.get("duels_tied", 0), "win_rate": a.get("win_rate"),
                        "earned": a.get("earned", 0), "credit_change": _credit(a) - start.get(peer, 100_000_000)
                        if a else 0, **quality.get(cls, {})}
    ok = sum(r["ok"] for r in records)
    targets = evaluate(summary)
    result = {"options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "requests": len(records), "ok": ok, "wall_s": round(wall, 1), "duels": status,
              "classes": summary, "pairwise": pw, "targets": targets, "credit_curve": curve}
    md = ["| class | held-out log-prob | duels | won | lost | tied | win rate | credit change (credits) |",
          "|---|---|---|---|---|---|---|---|"]
    table = Table(title=f"quality incentives: {ok}/{len(records)} answered in {wall:.0f} s, "
                        f"{status['as_requester']['settled']} duels settled")
    for col in ("class", "held-out log-prob", "duels", "won", "lost", "tied", "win rate", "credit change"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for cls, s in summary.items():
        lp = s.get("held_out_mean_logprob")
        cells = [cls, "-" if lp is None else f"{lp:.3f}", str(s["duels"]), str(s["won"]), str(s["lost"]), str(s["tied"]),
                 "-" if s["win_rate"] is None else f"{s['win_rate']:.3f}", f"{s['credit_change'] / 1e6:+.4f}"]
        table.add_row(*cells)
        md.append("| " + " | ".join(cells) + " |")
    md.append("")
    md.append("| target | met |")
    md.append("|---|---|")
    md += [f"| {k} | {'yes' if v else 'no'} |" for k, v in targets.items()]
    con.print("[bold]4/4[/bold] results")
    con.print(table)
    for k, v in targets.items():
        con.print(f"    {'[green]met[/green]' if v else '[red]missed[/red]'}  {k}")
    harness.write_report(out, "results", result, md,
                         plots={"quality_incentives": lambda plt: plot(summary, curve, cls_of, plt)}, con=con)
    return 0 if ok == len(records) else 1


if __name__ == "__main__":
    sys.exit(main())
