"""wwwserve demo: the side-by-side headline (node 0 alone vs the network) and its 100-column table."""

from __future__ import annotations

import io

from rich.console import Console

from wwwserve_p2p.demo import _print_side_by_side, side_by_side


def recs(latencies, ttft=0.1):
    return [{"ok": x is not None, "latency_s": x if x is not None else 99.0, "ttft_s": ttft} for x in latencies]


def test_side_by_side_ratio_slo_and_errors_count_as_misses():
    alone = recs([1.0, 5.0, 10.0, 20.0])
    network = recs([1.0, 1.5, 2.0, None])
    cmp = side_by_side(alone, network, None)
    assert cmp["slo_s"] == 3.0  # 3 x the fastest answer alone
    assert cmp["alone"]["slo_attainment"] == 0.25 and cmp["network"]["slo_attainment"] == 0.75
    assert cmp["p50_ratio"] == cmp["network"]["latency_p50_s"] / cmp["alone"]["latency_p50_s"] < 0.3
    assert side_by_side(alone, network, 12.0)["alone"]["slo_attainment"] == 0.75


def test_the_table_fits_100_columns():
    buf = io.StringIO()
    con = Console(file=buf, width=100, force_terminal=False)
    _print_side_by_side(con, side_by_side(recs([1.0, 8.0]), recs([1.2, 1.4]), None))
    lines = buf.getvalue().splitlines()
    assert lines and max(len(x) for x in lines) <= 100
    assert any("latency p50" in x and "x" in x for x in lines)


def _row(i):
    return {"served_locally": 40 - i, "offloaded": 40 + i, "accepted_for_others": 1000 + i, "answers_executed": 12,
            "latency_p50_s": 1.234, "latency_p95_s": 12.345, "credits_earned": 123.456, "credits_spent": 23.456,
            "balance": 1234.56, "stake": 1.0,
            "pacing": {"compute_share": 0.123, "late_tokens": 12345, "tokens": 123456} if i else None}


def test_per_node_tables_fit_100_columns_uncut_when_piped():
    from wwwserve_p2p.demo import node_tables

    buf = io.StringIO()
    con = Console(file=buf, width=100, force_terminal=False)  # what run_demo uses when stdout is piped
    for table in node_tables({f"{i}-extra{i}": _row(i) for i in range(6)}):
        con.print(table)
    out = buf.getvalue()
    lines = out.splitlines()
    assert max(len(x) for x in lines) <= 100
    assert "…" not in out  # no header or cell cut
    for header in ("offloaded", "for others", "executed", "earned", "balance", "compute share", "late tokens"):
        assert header in out
    assert "12345/123456" in out and "12%" in out and "1234.56" in out


def test_node_specs_pace_every_node_and_node_0_has_one_slot(tmp_path):
    from wwwserve_p2p.demo import DemoOptions, _capacity_rps, node_specs

    specs = node_specs(DemoOptions(nodes=5, executor="echo"), {})
    exs = [s.config["executor"] for s in specs]
    assert all(e["kind"] == "paced" and e["inner"]["kind"] == "echo" for e in exs)
    assert exs[0]["capacity"] == 1 and all(e["capacity"] >= 2 for e in exs[1:])
    assert exs[3]["slowdown"] > 1  # the deliberately slow node
    # node 0 alone cannot keep up with the default rate: its queue grows
    assert _capacity_rps(exs[0], DemoOptions().max_tokens) < DemoOptions().rate / 2
    unpaced = node_specs(DemoOptions(nodes=2, executor="echo", paced=False), {})
    assert unpaced[0].config["executor"]["kind"] == "echo"
    # every spec builds a working executor (the node builds it from this table)
    from wwwserve_p2p.executors import create_executor

    for e in exs:
        opts = dict(e)
        assert create_executor(opts.pop("kind"), opts).load().capacity == e["capacity"]
