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
