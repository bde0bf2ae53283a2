"""``wwwserve demo``: a small local WWW.Serve network serving real prompts.

Sends MT-bench questions through the official ``openai`` client, at a rate node 0 cannot
sustain alone, twice: first to node 0 running alone (one node process, no peers), then to node 0
of an N-node network on 127.0.0.1. It prints both side by side (latency and TTFT p50/p95, SLO
attainment at a stated SLO: latency <= 3 x node 0's fastest answer alone, or ``slo``), tables
per node of the network run, and writes ``results.json``.

What is real and what is emulated (printed by the demo too): the node processes, the libp2p
overlay, the HTTP API and client, the prompts, the ledger and the tokens (a tinyshakespeare model
trained here, run by torch on this CPU with one thread per process) are real. The accelerators
are emulated: on a CPU-only host more node processes add no hardware (four model processes
would share the cores node 0 alone had to itself), while a serving network is for providers that
each bring a GPU. Each node's executor is ``paced``
(:class:`~wwwserve_p2p.executors.paced.PacedExecutor`): every real token is released when the
node's emulated GPU would have produced it (roofline model of :mod:`wwwserve_p2p.sim.profiles`,
Llama-3-8B speeds, ~20 ms/token), and the model's own compute (a few ms/token) hides inside that
pace; the demo reads each node's measured compute share and late tokens from its log. Node 0 is
given one slot on purpose, so that alone it is queue-bound. ``paced=False`` runs the executors
at this CPU's own speed instead (then the network cannot beat node 0 alone on a small host).
"""

from __future__ import annotations

import copy
import json
import os
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .errors import WwwServeError
from .localnet import (NodeProcess, NodeSpec, start_network, stop_network, wait_for_ledger, wait_for_mesh,
                       write_network_genesis)
from .core.stats import percentile

MODEL = "shakespeare"
#: issue 12's headline target: network p50 latency <= this x node 0 alone
P50_TARGET = 0.3
#: s a node process may take to start (torch import + model load) and the overlay to form; a
#: loaded 2-core host has needed more than 120 s for four torch processes
READY_TIMEOUT_S = 300.0
#: the speed profile every node emulates (the tokens are the tiny tinyshakespeare model's)
EMULATED_MODEL = "llama-3-8b"


@dataclass
class DemoOptions:
    nodes: int = 4
    requests: int = 80
    rate: float = 2.0
    out_dir: Path = Path("results/demo")
    data_dir: Path = Path("data")
    corpus: Path | None = None
    questions: Path | None = None
    max_tokens: int = 64
    executor: str = "hf"
    seed: int = 0
    #: end-to-end latency SLO in s (None: 3 x node 0's fastest answer when alone)
    slo: float | None = None
    #: run node 0 alone first, for the side-by-side comparison
    alone: bool = True
    #: executors paced by emulated GPUs (False: at this CPU's own speed)
    paced: bool = True


#: (name, emulated GPU, slots, slowdown, what it is) of the four roles; nodes 4.. cycle over 1..3
ROLES = [("entry", "RTX3090", 1, 1.0, "1 slot on purpose (queue-bound alone)"),
         ("4090", "RTX4090", 4, 1.0, "4 slots"),
         ("3090", "RTX3090", 4, 1.0, "4 slots"),
         ("slow", "RTX3090", 2, 2.0, "2 slots, half speed on purpose")]


def node_specs(opts: DemoOptions, model_paths: dict[str, Path]) -> list[NodeSpec]:
    """Heterogeneous nodes cycling over :data:`ROLES`: each a ``paced`` executor (emulated GPU,
    slots) around the real tiny model (``hf``, one torch thread) or ``echo``; unpaced
    (``opts.paced`` False): the inner executor alone, the slow node 20 ms/token slower."""
    from .sim.profiles import perf_model

    specs = []
    for i in range(opts.nodes):
        name, gpu, cap, slowdown, what = ROLES[i] if i < len(ROLES) else \
            (f"extra{i}",) + ROLES[1 + i % 3][1:]
        if opts.executor == "hf":
            inner = {"kind": "hf", "model_dir": str(model_paths["tiny"]), "model_name": MODEL, "threads": 1}
            real = "tiny model"
        else:
            inner = {"kind": "echo", "models": [MODEL]}
            real = "echo"
        if opts.paced:
            ex: dict[str, Any] = {"kind": "paced", "gpu": gpu, "model": EMULATED_MODEL, "capacity": cap,
                                  "slowdown": slowdown, "inner": inner}
            ms = slowdown * perf_model(gpu, EMULATED_MODEL).decode_step_s(1, 512) * 1e3
            desc = f"{gpu}, {ms:.0f} ms/token, {what}"
        else:
            ex = {**inner, "capacity": cap, "delay_per_token": 0.02 if slowdown > 1 else 0.0}
            desc = f"{real} at this CPU's speed, {what}"
        specs.append(NodeSpec(f"{i}-{name}", {
            "node": {"network": f"wwwserve-demo-{opts.seed}", "seed": opts.seed * 100 + i, "log_level": "INFO"},
            # the default 2 s: peers turn suspect after 3 silent intervals, and on a loaded host
            # a node's event loop can lag a few seconds
            "status": {"interval": 2.0},
            # a loaded host's event loops lag seconds: a probe's offer or a commit that comes after the
            # default 2 s / 5 s was withdrawn and the request queued at node 0 while the executors idled
            "delegation": {"probe_timeout": 10.0, "commit_timeout": 15.0},
            "executor": ex}, description=desc))
    return specs


def explain(con: Console, opts: DemoOptions) -> None:
    """Print what is real and what is emulated in this run, and why."""
    cores = os.cpu_count() or 1
    tokens = (["  credit ledger, and every token: a tiny tinyshakespeare model trained here, run by",
               "  torch on this CPU with 1 thread per node"] if opts.executor == "hf"
              else ["  credit ledger, and every token (the echo executor)"])
    lines = ["[bold]real:[/bold] node processes, libp2p overlay, HTTP API, openai client, MT-bench prompts,",
             *tokens]
    if opts.paced:
        lines += [f"[bold]emulated:[/bold] the GPUs. This host has {cores} CPU core{'s' if cores > 1 else ''} and no GPU:",
                  "  more node processes would share its cores, not add hardware. Each real token is",
                  f"  released when the node's emulated GPU would produce it ({EMULATED_MODEL} speeds, roofline",
                  "  model of wwwserve_p2p/sim/profiles.py); the model's few ms per token hide inside that",
                  "  pace (its measured share is in the credits table). --unpaced: this CPU's own speed"]
    else:
        lines += ["[bold]unpaced:[/bold] every executor runs at this CPU's own speed; the node processes share",
                  "  its cores, so the network adds no hardware (drop --unpaced to emulate GPUs)"]
    for line in lines:
        con.print("    " + line)


def load_questions(path: Path, n: int) -> list[dict[str, Any]]:
    """First-turn MT-bench questions (question_id, category, text), at most ``n``."""
    out = []
    with open(path) as f:
        for line in f:
            q = json.loads(line)
            out.append({"question_id": q["question_id"], "category": q["category"], "text": q["turns"][0]})
    if not out:
        raise WwwServeError(f"no questions in {path}")
    return [out[i % len(out)] for i in range(n)]


def _send_one(client, q: dict[str, Any], max_tokens: int, seed: int) -> dict[str, Any]:
    rec: dict[str, Any] = {"question_id": q["question_id"], "category": q["category"]}
    t0 = time.monotonic()
    try:
        with client.chat.completions.with_streaming_response.create(
                model=MODEL, messages=[{"role": "user", "content": q["text"]}], max_tokens=max_tokens,
                temperature=0.8, seed=seed, stream=True,
                stream_options={"include_usage": True}) as resp:
            rec["executor"] = resp.headers.get("x-wwwserve-executor")
            text = []
            for chunk in resp.parse():
                if chunk.choices and chunk.choices[0].delta.content:
                    if not text:
                        rec["ttft_s"] = time.monotonic() - t0
                    text.append(chunk.choices[0].delta.content)
                if chunk.usage:
                    rec["completion_tokens"] = chunk.usage.completion_tokens
        rec["answer"] = "".join(text)
        rec["ok"] = True
    except Exception as exc:  # the demo reports every failure instead of stopping
        rec["ok"] = False
        rec["error"] = f"{type(exc).__name__}: {exc}"
    rec["latency_s"] = time.monotonic() - t0
    return rec


def run_demo(opts: DemoOptions) -> int:
    """Run the demo; returns a process exit code (0 if every request got an answer)."""
    import openai

    # a terminal: its width, at most 100; piped or redirected: 100 columns (every table fits)
    con = Console(width=min(100, Console().width) if sys.stdout.isatty() else 100)
    questions_path = opts.questions or (opts.corpus.parents[1] / "mt-bench" / "question.jsonl"
                                        if opts.corpus else Path("../shared/data/mt-bench/question.jsonl"))
    questions = load_questions(questions_path, opts.requests)
    model_paths: dict[str, Path] = {}
    if opts.executor == "hf":
        from .executors.training import ensure_models
        con.print("[bold]1/5[/bold] model: training (first run, ~2 min) or loading the cached tiny "
                  "tinyshakespeare model")
        model_paths = ensure_models(opts.data_dir, sizes=("tiny",), corpus=opts.corpus, progress=True)
    else:
        con.print("[bold]1/5[/bold] model: none (echo executor)")
    specs = node_specs(opts, model_paths)
    explain(con, opts)
    out = opts.out_dir
    out.mkdir(parents=True, exist_ok=True)
    alone: list[dict[str, Any]] = []
    if opts.alone:
        solo = copy.deepcopy(specs[0])
        write_network_genesis([solo], out / "alone", f"wwwserve-demo-{opts.seed}-alone", credits=100)
        con.print(f"[bold]2/5[/bold] node 0 alone ({solo.description}):")
        con.print(f"    {len(questions)} questions at {opts.rate:g} req/s (logs in {out}/alone/*/node.log)")
        if opts.paced:
            cap = _capacity_rps(solo.config["executor"], opts.max_tokens)
            con.print(f"    node 0 alone serves at most ~{cap:.2f} req/s of {opts.max_tokens}-token answers: "
                      f"{opts.rate / cap:.1f}x overloaded, so its queue grows")
        solo_nodes = start_network([solo], out / "alone", ready_timeout=READY_TIMEOUT_S)
        try:
            alone = _drive(solo_nodes[0], questions, opts, openai, con)
        finally:
            stop_network(solo_nodes)
        alone_pacing = pacing_from_log(solo_nodes[0].log_path)
        if alone_pacing:
            con.print(f"    node 0's model compute: {_share(alone_pacing)}")
    con.print(f"[bold]3/5[/bold] starting {len(specs)} node processes on 127.0.0.1 (logs in {out}/nodes/*/node.log)")
    genesis = write_network_genesis(specs, out / "nodes", f"wwwserve-demo-{opts.seed}", credits=100)
    con.print(f"    genesis {genesis}: 100 credits to each node")
    t_start = time.monotonic()
    nodes = start_network(specs, out / "nodes", ready_timeout=READY_TIMEOUT_S)
    try:
        waited = wait_for_mesh(nodes, timeout=READY_TIMEOUT_S)
        con.print(f"    overlay formed: every node sees {len(nodes) - 1} peers "
                  f"({time.monotonic() - t_start:.1f}s after launch, {waited:.1f}s after ready)")
        for n in nodes:
            con.print(f"    {n.name:<8} {n.peer_id[:10]}...{n.peer_id[-6:]} :{n.api_url.rsplit(':', 1)[-1]:<6}"
                      f"{n.spec.description}")
        entry = nodes[0]
        con.print(f"[bold]4/5[/bold] sending {len(questions)} MT-bench questions to {entry.name} "
                  f"({entry.api_url}/v1) at {opts.rate:g} req/s, max_tokens={opts.max_tokens}")
        records = _drive(entry, questions, opts, openai, con)
        try:
            converged = wait_for_ledger(nodes, timeout=30)
            con.print(f"    ledger converged on every node {converged:.1f}s after the last answer")
        except WwwServeError as exc:
            con.print(f"    [yellow]ledger not converged:[/yellow] {exc}")
        statuses = {n.name: n.status() for n in nodes}
    finally:
        stop_network(nodes)
    pacing = {n.name: pacing_from_log(n.log_path) for n in nodes}
    if opts.alone:
        pacing["_alone"] = alone_pacing
    return _report(con, nodes, statuses, records, opts, out, alone, pacing)


def _capacity_rps(executor: dict[str, Any], max_tokens: int, prompt_tokens: int = 30) -> float:
    """Requests/s a paced executor table sustains with ``max_tokens``-token answers (all slots busy)."""
    from .sim.profiles import perf_model

    pm = perf_model(executor["gpu"], executor["model"])
    cap = int(executor.get("capacity", 1))
    per = executor.get("slowdown", 1.0) * (pm.prefill_s(prompt_tokens)
                                           + (max_tokens - 1) * pm.decode_step_s(cap, prompt_tokens + max_tokens // 2))
    return cap / per


def pacing_from_log(path: Path) -> dict[str, Any] | None:
    """The last :meth:`~wwwserve_p2p.executors.paced.PacedExecutor.pacing_stats` a node logged
    (on shutdown), or None (unpaced, or the node did not shut down cleanly)."""
    from .executors.paced import STATS_LOG_PREFIX

    found = None
    try:
        with open(path, errors="replace") as f:
            for line in f:
                i = line.find(STATS_LOG_PREFIX)
                if i >= 0:
                    try:
                        found = json.loads(line[i + len(STATS_LOG_PREFIX):])
                    except ValueError:
                        continue
    except OSError:
        return None
    return found


def _share(st: dict[str, Any]) -> str:
    """'x % of the paced time, n of m tokens late' for a pacing-stats dict."""
    return (f"{st.get('compute_share', 0):.0%} of the paced time, {st.get('late_tokens', 0)} of "
            f"{st.get('tokens', 0)} tokens late")


def _drive(entry: NodeProcess, questions, opts: DemoOptions, openai, con: Console | None = None) -> list[dict[str, Any]]:
    """Send ``questions`` to ``entry`` at ``opts.rate`` (Poisson arrivals), each streamed by its own
    thread; a progress bar on a terminal, a line every 10 answers when the output is piped."""
    client = openai.OpenAI(base_url=entry.api_url + "/v1", api_key="not-needed", max_retries=0, timeout=300)
    rng = random.Random(opts.seed)
    records: list[dict[str, Any]] = []
    lock = threading.Lock()
    con = con or Console()
    t0 = time.monotonic()
    with Progress(TextColumn("    {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=con) as progress:
        task = progress.add_task("requests", total=len(questions), info="")
        with ThreadPoolExecutor(max_workers=min(64, len(questions))) as pool:
            at = 0.0

            def done(fut) -> None:
                rec = fut.result()
                with lock:
                    records.append(rec)
                    ok = sum(r["ok"] for r in records)
                    progress.update(task, advance=1, info=f"ok {ok}, errors {len(records) - ok}")
                    if not con.is_terminal and (len(records) % 10 == 0 or len(records) == len(questions)):
                        print(f"    {len(records)}/{len(questions)} answered ({ok} ok) after "
                              f"{time.monotonic() - t0:.0f} s", flush=True)

            for i, q in enumerate(questions):
                delay = t0 + at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                fut = pool.submit(_send_one, client, q, opts.max_tokens, opts.seed * 1000 + i)
                fut.add_done_callback(done)
                at += rng.expovariate(opts.rate)
    return records


def _side_stats(records: list[dict[str, Any]], slo: float) -> dict[str, Any]:
    """Answered, latency and TTFT p50/p95 (s), and the share of all requests (errors count as
    misses) answered within ``slo`` seconds."""
    ok = [r for r in records if r["ok"]]
    lat = [r["latency_s"] for r in ok]
    ttft = [r["ttft_s"] for r in ok if "ttft_s" in r]
    return {"requests": len(records), "ok": len(ok),
            "latency_p50_s": percentile(lat, 50), "latency_p95_s": percentile(lat, 95),
            "ttft_p50_s": percentile(ttft, 50), "ttft_p95_s": percentile(ttft, 95),
            "slo_attainment": sum(1 for x in lat if x <= slo) / len(records) if records else float("nan")}


def side_by_side(alone: list[dict[str, Any]], network: list[dict[str, Any]], slo: float | None) -> dict[str, Any]:
    """The headline: node 0's users served by node 0 alone vs by the network. ``slo`` None:
    3 x the fastest answer node 0 gave alone (its unloaded latency). Returns the SLO, both
    sides' :func:`_side_stats` and ``p50_ratio`` = network p50 / alone p50."""
    if slo is None:
        fastest = min((r["latency_s"] for r in alone if r["ok"]), default=None)
        slo = 3 * fastest if fastest else 10.0
    a, n = _side_stats(alone, slo), _side_stats(network, slo)
    ratio = n["latency_p50_s"] / a["latency_p50_s"] if a["latency_p50_s"] and a["latency_p50_s"] == a["latency_p50_s"] \
        else float("nan")
    return {"slo_s": slo, "alone": a, "network": n, "p50_ratio": ratio}


def _print_side_by_side(con: Console, cmp: dict[str, Any]) -> None:
    table = Table(title="node 0's users: node 0 alone vs the network",
                  caption=f"SLO: latency <= {cmp['slo_s']:.2f} s")
    for col in ("", "node 0 alone", "network", "network / alone"):
        table.add_column(col, justify="left" if not col else "right")
    a, n = cmp["alone"], cmp["network"]
    f = lambda x: "-" if x is None or x != x else f"{x:.2f}"  # noqa: E731
    for label, key in (("latency p50 (s)", "latency_p50_s"), ("latency p95 (s)", "latency_p95_s"),
                       ("TTFT p50 (s)", "ttft_p50_s"), ("TTFT p95 (s)", "ttft_p95_s")):
        r = n[key] / a[key] if a[key] and a[key] == a[key] and n[key] == n[key] else float("nan")
        table.add_row(label, f(a[key]), f(n[key]), f"{r:.2f}x" if r == r else "-")
    table.add_row("SLO attainment", f"{a['slo_attainment']:.1%}", f"{n['slo_attainment']:.1%}",
                  f"{n['slo_attainment'] - a['slo_attainment']:+.1%}")
    table.add_row("answered", f"{a['ok']}/{a['requests']}", f"{n['ok']}/{n['requests']}", "")
    con.print(table)
    r = cmp["p50_ratio"]
    verdict = "-" if r != r else ("met" if r <= P50_TARGET else "NOT met")
    con.print(f"    network p50 latency = {r:.2f} x node 0 alone (target <= {P50_TARGET:g}x: {verdict})")


def node_tables(per_node: dict[str, dict[str, Any]]) -> tuple[Table, Table]:
    """The per-node tables of the network run (each fits 100 columns): work (served locally,
    offloaded, accepted for others, answers executed for node 0's users and their latency) and
    credits plus the emulated GPU's model-compute share."""
    work = Table(title="per node: work (network run)")
    for col in ("node", "local", "offloaded", "for others", "executed", "p50 (s)", "p95 (s)"):
        work.add_column(col, justify="left" if col == "node" else "right", no_wrap=True)
    credits = Table(title="per node: credits and the emulated GPU")
    for col in ("node", "earned", "spent", "balance", "stake", "compute share", "late tokens"):
        credits.add_column(col, justify="left" if col == "node" else "right", no_wrap=True)
    f = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    for name, row in per_node.items():
        work.add_row(name, str(row["served_locally"]), str(row["offloaded"]), str(row["accepted_for_others"]),
                     str(row["answers_executed"]), f(row["latency_p50_s"]), f(row["latency_p95_s"]))
        pace = row.get("pacing") or {}
        credits.add_row(name, f"{row['credits_earned']:.3f}", f"{row['credits_spent']:.3f}", f"{row['balance']:.2f}",
                        f"{row['stake']:.2f}", f"{pace['compute_share']:.0%}" if pace else "-",
                        f"{pace['late_tokens']}/{pace['tokens']}" if pace else "-")
    return work, credits


def _report(con: Console, nodes: list[NodeProcess], statuses: dict, records, opts: DemoOptions, out: Path,
            alone: list[dict[str, Any]] | None = None, pacing: dict[str, Any] | None = None) -> int:
    by_peer = {n.peer_id: n.name for n in nodes}
    per_node = {}
    for n in nodes:
        st = statuses[n.name]["stats"]
        me = statuses[n.name]["ledger"]
        lat = [r["latency_s"] for r in records if r["ok"] and r.get("executor") == n.peer_id]
        per_node[n.name] = {
            "peer_id": n.peer_id, "description": n.spec.description, "served_locally": st["served_local"],
            "offloaded": st["offloaded"], "accepted_for_others": st["accepted_for_others"],
            "redispatched": st["redispatched"], "answers_executed": len(lat),
            "latency_p50_s": percentile(lat, 50) if lat else None,
            "latency_p95_s": percentile(lat, 95) if lat else None,
            "credits_earned": me["earned"] / 1e6, "credits_spent": me["spent"] / 1e6,
            "balance": me["balance"] / 1e6, "stake": me["stake"] / 1e6, "ledger_state": me["state_hash"],
            "pacing": (pacing or {}).get(n.name)}
    ok = [r for r in records if r["ok"]]
    lat = [r["latency_s"] for r in ok]
    ttft = [r["ttft_s"] for r in ok if "ttft_s" in r]
    summary = {"requests": len(records), "ok": len(ok), "errors": len(records) - len(ok),
               "latency_p50_s": percentile(lat, 50), "latency_p95_s": percentile(lat, 95),
               "ttft_p50_s": percentile(ttft, 50), "ttft_p95_s": percentile(ttft, 95),
               "executed_by": {by_peer.get(p, p): sum(1 for r in ok if r.get("executor") == p)
                               for p in sorted({r.get("executor") for r in ok}, key=str)}}
    con.print("[bold]5/5[/bold] results")
    cmp = side_by_side(alone, records, opts.slo) if alone else None
    if cmp is not None:
        _print_side_by_side(con, cmp)
        summary["side_by_side"] = cmp
    for table in node_tables(per_node):
        con.print(table)
    if opts.paced:
        con.print("    compute share: the time node processes waited for the real model's tokens, as a share "
                  "of the time requests held an emulated GPU's slot; late tokens: those the model delivered "
                  "after the emulated GPU's deadline (the host CPU, not the emulated GPU, set their pace)")
    hashes = {row["ledger_state"] for row in per_node.values()}
    con.print(f"    ledger: {'every node holds the same state ' + next(iter(hashes))[:16] if len(hashes) == 1 else 'nodes disagree: ' + ', '.join(h[:12] for h in hashes)}"
              "; the credit columns are in credits (1 = 1,000,000 micro-credits); each served request earns its executor "
              "price_base + price_per_token x tokens")
    con.print(f"    {summary['ok']}/{summary['requests']} answered, {summary['errors']} errors; latency p50 "
              f"{summary['latency_p50_s']:.2f}s p95 {summary['latency_p95_s']:.2f}s; TTFT p50 "
              f"{summary['ttft_p50_s']:.2f}s" if ok else "    no request succeeded")
    sample = next((r for r in ok if r.get("answer")), None)
    if sample:
        con.print(f"    sample answer (question {sample['question_id']}, by {by_peer.get(sample['executor'])}): "
                  f"{sample['answer'][:160]!r}")
    for r in records:
        if not r["ok"]:
            con.print(f"    [red]error[/red] question {r['question_id']}: {r['error']}")
    result = {"options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()},
              "summary": summary, "nodes": per_node, "requests": sorted(records, key=lambda r: r["question_id"]),
              "alone_requests": sorted(alone or [], key=lambda r: r["question_id"]),
              "alone_pacing": (pacing or {}).get("_alone")}
    path = out / "results.json"
    path.write_text(json.dumps(result, indent=2))
    con.print(f"    wrote {path}")
    return 0 if len(ok) == len(records) else 1
