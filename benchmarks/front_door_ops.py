"""What an operator sees (issue 14): token counter and log noise, old code vs new, same run.

For each source tree (``--before SRC`` and the current one), start 3 real ``wwwserve node``
processes (echo executor): A serves ``a``, B and C serve ``m``. Send ``--local`` requests for
``a`` to A (served by A itself) and ``--offloaded`` requests for ``m`` to A (served by B or
C), stop C (a departed peer), wait ``--after-departure`` seconds, then read A's and B's
``/metrics`` and count the WARNING/ERROR lines of every node's log.

Reported per tree: A's and B's ``wwwserve_tokens_generated_total`` (all label values summed)
against the completion tokens the clients received, WARNING+ERROR log lines (and how many
mention C after it left), and ``wwwserve_log_suppressed_total``. Writes
``results/front_door/results.json``, ``results.md`` and ``log_lines.png``.

    python benchmarks/front_door_ops.py --before /work/before/src      # ~2 min
    python benchmarks/front_door_ops.py --quick --before /work/before/src
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from wwwserve_p2p.localnet import NodeSpec, start_network, stop_network, wait_for_mesh  # noqa: E402


def spec(name: str, models: list[str]) -> NodeSpec:
    return NodeSpec(name, {"node": {"network": "front-door-ops", "log_level": "INFO"}, "status": {"interval": 1.0},
                           "executor": {"kind": "echo", "models": models, "capacity": 4, "delay_per_token": 0.0}})


def metric_sum(text: str, name: str) -> float:
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M))


def run_tree(src: Path, work: Path, local: int, offloaded: int, linger: float) -> dict:
    os.environ["PYTHONPATH"] = str(src)
    nodes = start_network([spec("a", ["a"]), spec("b", ["m"]), spec("c", ["m"])], work, ready_timeout=120)
    try:
        wait_for_mesh(nodes, timeout=60)
        a, b, c = nodes
        client = openai.OpenAI(base_url=a.api_url + "/v1", api_key="none", max_retries=0, timeout=60)
        tokens = {"local": 0, "offloaded": 0}
        for kind, model, n in (("local", "a", local), ("offloaded", "m", offloaded)):
            for i in range(n):
                r = client.completions.create(model=model, prompt=" ".join(f"w{j}" for j in range(6)), max_tokens=6)
                tokens[kind] += r.usage.completion_tokens
        c.terminate()
        t_left = time.time()
        time.sleep(linger)  # what the remaining nodes log about the departed peer
        ma = httpx.get(a.api_url + "/metrics", timeout=10).text
        mb = httpx.get(b.api_url + "/metrics", timeout=10).text
    finally:
        stop_network(nodes)
    lines = warn = after = about_c = 0
    for n in nodes:
        for line in n.log_path.read_text(errors="replace").splitlines():
            lines += 1
            if " WARNING " in line or " ERROR " in line:
                warn += 1
                if n.name != "c" and c.peer_id in line:
                    about_c += 1
        # lines after C left: by timestamp prefix "YYYY-mm-dd HH:MM:SS,mmm"
        for line in n.log_path.read_text(errors="replace").splitlines():
            try:
                t = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S"))
            except ValueError:
                continue
            if n.name != "c" and t >= int(t_left) and (" WARNING " in line or " ERROR " in line):
                after += 1
    return {"src": str(src), "client_tokens": tokens,
            "a_tokens_generated_total": metric_sum(ma, "wwwserve_tokens_generated_total"),
            "b_tokens_generated_total": metric_sum(mb, "wwwserve_tokens_generated_total"),
            "log_lines": lines, "warning_or_error_lines": warn, "warnings_after_c_left": after,
            "warnings_naming_c": about_c, "a_log_suppressed_total": metric_sum(ma, "wwwserve_log_suppressed_total")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, help="src/ directory of the old code (e.g. /work/before/src)")
    p.add_argument("--local", type=int, default=40)
    p.add_argument("--offloaded", type=int, default=20)
    p.add_argument("--after-departure", type=float, default=30.0)
    p.add_argument("--quick", action="store_true", help="10 local, 5 offloaded, 10 s after departure")
    p.add_argument("--out", default=str(ROOT / "results" / "front_door"))
    args = p.parse_args()
    if args.quick:
        args.local, args.offloaded, args.after_departure = 10, 5, 10.0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="front-door-") as tmp:
        for name, src in (("before", Path(args.before)), ("after", ROOT / "src")):
            results[name] = run_tree(src, Path(tmp) / name, args.local, args.offloaded, args.after_departure)
            print(name, json.dumps(results[name]), flush=True)
    results["settings"] = {"local": args.local, "offloaded": args.offloaded, "after_departure_s": args.after_departure,
                           "note": "2-core machine shared with other agents"}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    rows = ["| | before | after |", "|---|---|---|"]
    for key in ("client_tokens", "a_tokens_generated_total", "b_tokens_generated_total", "log_lines",
                "warning_or_error_lines", "warnings_after_c_left", "warnings_naming_c", "a_log_suppressed_total"):
        rows.append(f"| {key} | {results['before'][key]} | {results['after'][key]} |")
    (out / "results.md").write_text("# front door: token counter and log noise\n\n" + "\n".join(rows) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        keys = ["warning_or_error_lines", "warnings_after_c_left"]
        fig, ax = plt.subplots(figsize=(6, 3))
        for i, name in enumerate(("before", "after")):
            ax.bar([k + i * 0.4 for k in range(len(keys))], [results[name][k] for k in keys], 0.4, label=name)
        ax.set_xticks([k + 0.2 for k in range(len(keys))], keys)
        ax.set_ylabel("log lines")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "log_lines.png", dpi=100)
    except ImportError:
        pass
    print((out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
