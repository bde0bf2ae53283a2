"""Workloads: the Azure trace loader, per-node windows, Poisson anti-phase load."""

from __future__ import annotations

import os
from contextlib import aclosing
from pathlib import Path

import pytest
import trio

from wwwserve_p2p.errors import ConfigError
from wwwserve_p2p.sim import (LogNormalTokens, SimulatedExecutor, TraceRequest, load_azure_trace,
                              node_windows, poisson_antiphase, synthetic_prompt, to_request)

DATA_DIR = Path(os.environ.get("WWWSERVE_DATA_DIR",
                               Path(__file__).resolve().parents[2].parent / "shared" / "data"))
CONV = DATA_DIR / "azure-llm-trace-2023" / "conv.csv"
needs_trace = pytest.mark.skipif(not CONV.is_file(), reason=f"{CONV} not present")


@pytest.fixture(scope="module")
def conv() -> list[TraceRequest]:
    if not CONV.is_file():
        pytest.skip(f"{CONV} not present")
    return load_azure_trace(CONV)


def write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# -- loading -----------------------------------------------------------------------------------


@needs_trace
def test_load_real_conv_trace(conv):
    assert len(conv) == 19366
    # first row: 2023-11-16 18:15:46.6805900,374,44; the second arrives 4.3145790 s later
    assert conv[0] == TraceRequest(0.0, 374, 44)
    assert conv[1].arrival_s == pytest.approx(4.314579, abs=1e-6)
    assert (conv[1].prompt_tokens, conv[1].output_tokens) == (396, 109)
    assert all(a.arrival_s <= b.arrival_s for a, b in zip(conv, conv[1:]))
    assert 3400 < conv[-1].arrival_s < 3600  # one hour
    assert min(r.prompt_tokens for r in conv) >= 1 and max(r.output_tokens for r in conv) <= 1000
    assert load_azure_trace(CONV, limit=10) == conv[:10]


def test_any_csv_with_the_columns(tmp_path):
    p = write(tmp_path, "id,timestamp,ContextTokens,GeneratedTokens\n"
                        "a,2023-01-01 00:00:10.5,10,5\n"
                        "b,2023-01-01 00:00:02,20,6\n"
                        "\n"
                        "c,2023-01-02 00:00:00.0000001,30,7\n")
    tr = load_azure_trace(p)
    assert [(round(r.arrival_s, 6), r.prompt_tokens) for r in tr] == \
        [(0.0, 20), (8.5, 10), (86398.0, 30)]
    num = write(tmp_path, "TIMESTAMP,ContextTokens,GeneratedTokens\n5,1,2\n3.5,3,4\n", "n.csv")
    assert load_azure_trace(num) == [TraceRequest(0.0, 3, 4), TraceRequest(1.5, 1, 2)]


@pytest.mark.parametrize("text, match", [
    ("TIMESTAMP,ContextTokens\n2023-01-01 00:00:00,1\n", r"lacks column\(s\) GeneratedTokens"),
    ("a,b\n1,2\n", "lacks column.*TIMESTAMP, ContextTokens, GeneratedTokens; found: a, b"),
    ("", "empty"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n", "no data rows"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-01-01 00:00:00,1,2\nyesterday,1,2\n",
     "line 3: malformed row"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-01-01 00:00:00,-1,2\n", "line 2"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-01-01 00:00:00,1\n", "line 2"),
])
def test_bad_csv_gives_a_clear_error(tmp_path, text, match):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError, match=match) as info:
        load_azure_trace(p)
    assert str(p) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read trace .*nope.csv"):
        load_azure_trace(tmp_path / "nope.csv")


# -- node windows ------------------------------------------------------------------------------


@needs_trace
def test_node_windows_differ_per_node(conv):
    streams = node_windows(conv, 4, 600.0)
    assert len(streams) == 4
    for s in streams:
        assert s and all(0 <= r.arrival_s < 600 for r in s)
        assert all(a.arrival_s <= b.arrival_s for a, b in zip(s, s[1:]))
        assert 1000 < len(s) < 5000  # ~5.4 req/s on average
    firsts = [(s[0].prompt_tokens, s[0].output_tokens) for s in streams]
    assert len(set(firsts)) == 4
    # load over time differs between nodes: per-minute counts are not all equal
    per_min = [[sum(1 for r in s if m * 60 <= r.arrival_s < (m + 1) * 60) for m in range(10)]
               for s in streams]
    assert len({tuple(c) for c in per_min}) == 4
    # node 0 starts at the beginning of the trace
    assert streams[0][0] == conv[0]


def test_node_windows_offsets_wrap_scale_and_clip():
    trace = [TraceRequest(float(t), 100 + t, 10 + t) for t in range(100)]  # 1 req/s, 100 s
    a, b = node_windows(trace, 2, 10.0, offsets_s=[0.0, 95.0])
    assert [r.prompt_tokens for r in a] == list(range(100, 110))
    # wraps around the end: 95..99 then 0..4
    assert [r.prompt_tokens for r in b] == [195, 196, 197, 198, 199, 100, 101, 102, 103, 104]
    assert [r.arrival_s for r in b] == [float(t) for t in range(10)]
    (fast,) = node_windows(trace, 1, 10.0, offsets_s=[0.0], rate_scale=2.0)
    assert len(fast) == 20 and fast[-1].arrival_s == 9.5
    thin = node_windows(trace, 3, 50.0, rate_scale=0.5, seed=1)
    assert thin == node_windows(trace, 3, 50.0, rate_scale=0.5, seed=1)
    assert thin != node_windows(trace, 3, 50.0, rate_scale=0.5, seed=2)
    assert all(10 < len(s) < 40 for s in thin)
    (clipped,) = node_windows(trace, 1, 50.0, max_prompt_tokens=120, max_output_tokens=15)
    assert max(r.prompt_tokens for r in clipped) == 120
    assert max(r.output_tokens for r in clipped) == 15
    for kw in ({"n_nodes": 0}, {"window_s": 0}, {"window_s": 500}, {"rate_scale": 0},
               {"offsets_s": [0.0]}):
        args = {"n_nodes": 2, "window_s": 10.0, **kw}
        with pytest.raises(ConfigError):
            node_windows(trace, **args)
    with pytest.raises(ConfigError, match="empty"):
        node_windows([], 1, 1.0)


# -- Poisson anti-phase ------------------------------------------------------------------------


def test_poisson_antiphase_rates_and_determinism():
    streams = poisson_antiphase(4, 200.0, high_rate=5.0, low_rate=0.5, seed=7)
    assert len(streams) == 4
    for i, s in enumerate(streams):
        assert all(0 <= r.arrival_s < 200 for r in s)
        assert all(a.arrival_s <= b.arrival_s for a, b in zip(s, s[1:]))
        first = sum(1 for r in s if r.arrival_s < 100)
        second = len(s) - first
        busy, quiet = (first, second) if i < 2 else (second, first)
        assert 400 < busy < 600 and 20 < quiet < 90  # Poisson(500), Poisson(50)
        assert all(1 <= r.prompt_tokens <= 8192 and 1 <= r.output_tokens <= 1000 for r in s)
    assert poisson_antiphase(4, 200.0, 5.0, 0.5, seed=7) == streams
    assert poisson_antiphase(4, 200.0, 5.0, 0.5, seed=8) != streams
    # a node's stream depends only on (seed, index)
    assert poisson_antiphase(6, 200.0, 5.0, 0.5, seed=7)[0] == streams[0]
    prompts = sorted(r.prompt_tokens for s in streams for r in s)
    assert 500 < prompts[len(prompts) // 2] < 1100  # median ~760 (conversation trace)
    # odd count: the extra node joins the first (busy-first) group
    (only,) = poisson_antiphase(1, 100.0, 4.0, 0.0, seed=1)
    assert only and all(r.arrival_s < 50 for r in only)


def test_poisson_antiphase_token_specs():
    (s,) = poisson_antiphase(1, 50.0, 2.0, 2.0, seed=0, prompt_tokens=64, output_tokens=8)
    assert {(r.prompt_tokens, r.output_tokens) for r in s} == {(64, 8)}
    src = [TraceRequest(0.0, 11, 3), TraceRequest(1.0, 22, 0)]
    (s,) = poisson_antiphase(1, 50.0, 2.0, 2.0, seed=0, token_source=src)
    assert {(r.prompt_tokens, r.output_tokens) for r in s} == {(11, 3), (22, 1)}
    (s,) = poisson_antiphase(1, 50.0, 2.0, 2.0, prompt_tokens=LogNormalTokens(100, 0.0))
    assert {r.prompt_tokens for r in s} == {100}
    with pytest.raises(ConfigError):
        poisson_antiphase(1, 50.0, 2.0, 2.0, prompt_tokens=0)
    with pytest.raises(ConfigError):
        poisson_antiphase(1, 50.0, -1.0, 2.0)
    with pytest.raises(ConfigError):
        poisson_antiphase(0, 50.0, 1.0, 2.0)


# -- replay ------------------------------------------------------------------------------------


def test_synthetic_prompt_and_request():
    assert len(synthetic_prompt(1234).split()) == 1234
    r = to_request(TraceRequest(0.0, 40, 7), "id-1", "m", seed=3)
    assert len(r.prompt.split()) == 40 and r.max_tokens == 7 and r.seed == 3 and r.model == "m"


async def test_replay_antiphase_through_simulated_executors(autojump_clock):
    """Two simulated servers under anti-phase load: each is busier in its busy half."""
    streams = poisson_antiphase(2, 40.0, high_rate=3.0, low_rate=0.5, seed=3,
                                prompt_tokens=LogNormalTokens(400, 0.5, hi=2000),
                                output_tokens=LogNormalTokens(60, 0.5, hi=200))
    executors = [SimulatedExecutor(gpu="RTX3090", model="qwen3-4b", max_batch=4)
                 for _ in streams]
    latency: list[dict[str, list[float]]] = [{"first": [], "second": []} for _ in streams]
    t0 = trio.current_time()

    async def client(node: int, i: int, tr: TraceRequest) -> None:
        await trio.sleep_until(t0 + tr.arrival_s)
        start = trio.current_time()
        request = to_request(tr, f"{node}-{i}", "qwen3-4b")
        async with aclosing(executors[node].generate(request)) as g:
            async for c in g:
                if c.is_final:
                    assert c.usage.completion_tokens == tr.output_tokens
        half = "first" if tr.arrival_s < 20 else "second"
        latency[node][half].append(trio.current_time() - start)

    async with trio.open_nursery() as n:
        for node, s in enumerate(streams):
            for i, tr in enumerate(s):
                n.start_soon(client, node, i, tr)
    mean = [{h: sum(v) / len(v) for h, v in lat.items()} for lat in latency]
    assert mean[0]["first"] > mean[0]["second"] and mean[1]["second"] > mean[1]["first"]
    for ex in executors:
        assert ex.load().running == ex.load().queued == 0
        await ex.aclose()
