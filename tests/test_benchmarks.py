"""The benchmarks' --quick modes run and produce their JSON, table and plot."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import pytest


def test_harness_statistics(harness):
    assert harness.percentiles([1.0, 2.0, 3.0, 4.0, 5.0]) == {"p50": 3.0, "p95": pytest.approx(4.8),
                                                               "p99": pytest.approx(4.96)}
    assert list(harness.percentiles([1.0], (50, 99.9))) == ["p50", "p99.9"]
    assert harness.median(x for x in (3.0, 1.0, 2.0)) == 2.0 and math.isnan(harness.median([]))
    assert harness.medians({"a": [1, 5, 2], "b": []})["a"] == 2 and math.isnan(harness.medians({"b": []})["b"])


def test_harness_reads_cpu_and_memory_of_this_and_child_processes(harness):
    own = harness.proc_cpu_seconds()
    while harness.proc_cpu_seconds() - own < 0.02:  # burn a little CPU
        pass
    assert harness.proc_cpu_seconds(os.getpid()) > 0 and harness.proc_rss_mib(os.getpid()) > 1
    child = subprocess.Popen([sys.executable, "-c", "import time\nt = time.process_time()\n"
                              "while time.process_time() - t < 0.3: pass\ntime.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while harness.proc_cpu_seconds(child.pid) < 0.2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert harness.proc_cpu_seconds(child.pid) >= 0.2
    finally:
        child.kill()
        child.wait()
    assert math.isnan(harness.proc_cpu_seconds(child.pid)) and harness.proc_cpu_seconds(child.pid, missing=0.0) == 0.0
    assert math.isnan(harness.proc_rss_mib(child.pid))


def test_harness_report_writes_json_markdown_and_plots(harness, tmp_path, capsys):
    def draw(plt):
        fig, ax = plt.subplots()
        ax.plot([1, 2], [3, 4])
        return fig

    written = harness.write_report(tmp_path / "out", "thing", {"x": 1}, ["| a |", "|---|"], plots={"thing_plot": draw})
    assert [p.name for p in written] == ["thing.json", "thing.md", "thing_plot.png"]
    assert json.loads(written[0].read_text()) == {"x": 1}
    assert written[1].read_text() == "| a |\n|---|\n"
    assert written[2].stat().st_size > 1000 and "thing_plot.png" in capsys.readouterr().out
    with harness.progress_bar(info=True) as progress:  # not a terminal here: draws nothing, still counts
        task = progress.add_task("t", total=2, info="")
        progress.update(task, advance=2, info="done")
    assert progress.tasks[0].completed == 2


@pytest.mark.real
@pytest.mark.slow
def test_delegation_overhead_quick(tmp_path, run_quick):
    out = tmp_path / "bench"
    run_quick("delegation_overhead.py", out, timeout=120)
    res = json.loads((out / "delegation_overhead.json").read_text())
    s = res["summary"]
    assert s["direct"]["p50_ms"] > 0 and s["overlay"]["p50_ms"] > s["direct"]["p50_ms"]
    assert s["overlay"]["rps"] > 0 and len(res["samples_ms"]["overlay"]) == 30
    assert (out / "delegation_overhead.md").read_text().startswith("| path |")
    assert (out / "delegation_overhead.png").stat().st_size > 1000


@pytest.mark.real
@pytest.mark.slow
def test_ledger_throughput_quick(tmp_path, run_quick):
    out = tmp_path / "bench"
    run_quick("ledger_throughput.py", out, timeout=300)
    res = json.loads((out / "ledger_throughput.json").read_text())
    s = res["summary"]
    # structure and consistency, never speed: the fold alone is faster than fold + checks
    assert s["apply_fold_eps"] > s["apply_checked_eps"] > 0 and s["ed25519_vps"] > 0
    assert s["sync_entries"] == 10_000 and res["sync"][0]["stored_blocks"] == res["sync"][0]["blocks"] >= 10
    assert len(res["heal_rounds"]) == 1 and len(res["heal_rounds"][0]["per_node_s"]) == 6
    assert (out / "ledger_throughput.md").read_text().startswith("| measurement |")
    assert (out / "ledger_throughput.png").stat().st_size > 1000
