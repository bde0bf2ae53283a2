"""SimulatedExecutor and the profiles: conformance, token accounting and the timing model.

Timing tests run under trio's MockClock (``autojump_clock``): simulated seconds pass
instantly and every number is deterministic.
"""

from __future__ import annotations

from contextlib import aclosing

import pytest
import trio

from wwwserve_p2p.core.types import ChatMessage, GenerationRequest
from wwwserve_p2p.errors import ConfigError, ExecutorError, InvalidRequest, ModelNotFound
from wwwserve_p2p.executors import EXECUTOR_KINDS, create_executor
from wwwserve_p2p.sim import (GPUS, MODELS, SimulatedExecutor, describe, perf_model,
                              profile_table)
from wwwserve_p2p.sim.profiles import get_gpu, get_model
from wwwserve_p2p.testing.conformance import CHECK_NAMES, run_check

MODEL = "qwen3-0.6b"


def words(n: int) -> str:
    return " ".join(["word"] * n)


def req(rid: str = "r", n_prompt: int = 100, max_tokens: int = 16, **kw) -> GenerationRequest:
    base = dict(request_id=rid, model=kw.pop("model", MODEL), prompt=words(n_prompt),
                max_tokens=max_tokens, temperature=0.0)
    base.update(kw)
    return GenerationRequest(**base)


async def timed(ex: SimulatedExecutor, request: GenerationRequest):
    """(arrival, [(time, chunk)]) of one generation, on the trio clock."""
    t0 = trio.current_time()
    out = []
    async with aclosing(ex.generate(request)) as gen:
        async for c in gen:
            out.append((trio.current_time(), c))
    return t0, out


# -- conformance -------------------------------------------------------------------------------


@pytest.mark.parametrize("check", CHECK_NAMES)
async def test_conformance_under_mock_clock(check, autojump_clock):
    await run_check(check, lambda: SimulatedExecutor(gpu="A100", model=MODEL, max_batch=3),
                    MODEL, exact_continuation=True)


async def test_conformance_loop_responsive_in_real_time():
    with trio.fail_after(20):
        await run_check("loop_responsive",
                        lambda: SimulatedExecutor(gpu="RTX4090", model=MODEL, time_scale=50),
                        MODEL, max_loop_lag=0.1)


# -- construction and profiles ----------------------------------------------------------------


def test_create_executor_simulated_options():
    assert "simulated" in EXECUTOR_KINDS
    ex = create_executor("simulated", {"gpu": "RTX 4090", "model": "qwen3-4b",
                                       "models": ["a", "b"], "time_scale": 60, "max_batch": 8,
                                       "kv_tokens": 5000, "seed": 3,
                                       "efficiency": {"mfu": 0.4}})
    assert isinstance(ex, SimulatedExecutor)
    assert ex.models() == ("a", "b") and ex.time_scale == 60.0
    assert ex.perf.gpu.name == "RTX4090" and ex.perf.model.name == "qwen3-4b"
    assert ex.perf.efficiency.mfu == 0.4
    snap = ex.load()
    assert (snap.running, snap.queued, snap.capacity, snap.kv_usage) == (0, 0, 8, 0.0)
    default = create_executor("simulated", {"model": "llama-3-8b"})
    assert default.models() == ("llama-3-8b",)
    assert default.kv_tokens == default.perf.kv_capacity_tokens > 100_000
    assert 1 <= default.max_batch <= 256


@pytest.mark.parametrize("options, match", [
    ({"gpu": "TPUv9"}, "unknown GPU profile 'TPUv9'"),
    ({"model": "gpt-5"}, "unknown model profile 'gpt-5'"),
    ({"gpu": "RTX4090", "model": "qwen3-14b"}, "qwen3-14b .* does not fit on RTX4090"),
    ({"gpu": "A100", "model": "llama-3-70b"}, "does not fit on A100-80GB"),
    ({"time_scale": 0.5}, "time_scale"),
    ({"max_batch": 0}, "max_batch"),
    ({"kv_tokens": -5}, "kv_tokens"),
    ({"efficiency": {"mfu": 2.0}}, "mfu"),
    ({"efficiency": {"speed": 1}}, "speed"),
    ({"turbo": True}, "turbo"),
])
def test_invalid_options_raise_config_error(options, match):
    with pytest.raises(ConfigError, match=match):
        create_executor("simulated", options)


def test_model_profiles_match_model_cards():
    expected = {"llama-3-8b": 8.03e9, "llama-3-70b": 70.55e9, "qwen3-0.6b": 0.596e9,
                "qwen3-4b": 4.02e9, "qwen3-8b": 8.19e9, "qwen3-14b": 14.77e9}
    for name, params in expected.items():
        assert MODELS[name].params == pytest.approx(params, rel=0.005), name
    assert MODELS["llama-3-8b"].kv_bytes_per_token == 128 * 1024  # 2*32 layers*8 heads*128*2 B
    assert MODELS["qwen3-0.6b"].non_embedding_params == pytest.approx(0.44e9, rel=0.01)
    assert get_model("Qwen3-0.6B") is MODELS["qwen3-0.6b"]
    assert get_gpu("a100") is GPUS["A100-80GB"] and get_gpu("rtx_3090") is GPUS["RTX3090"]


def test_roofline_sanity():
    pm = {g: perf_model(g, "llama-3-8b") for g in ("A100", "RTX4090", "RTX3090")}
    # memory-bound decode: ~ weights / bandwidth
    assert 0.009 < pm["A100"].decode_step_s(1) < 0.013
    assert pm["A100"].decode_step_s(1) < pm["RTX4090"].decode_step_s(1) \
        < pm["RTX3090"].decode_step_s(1)
    assert pm["A100"].prefill_s(1024) < pm["RTX4090"].prefill_s(1024) \
        < pm["RTX3090"].prefill_s(1024)
    for p in pm.values():
        assert p.decode_step_s(1) < p.decode_step_s(8) < p.decode_step_s(32) \
            < p.decode_step_s(128)
        assert p.decode_step_s(1, context=8192) > p.decode_step_s(1, context=128)
        # compute-bound prefill: ~ linear in tokens, far cheaper per token than decode
        assert p.prefill_s(4096) > 3.5 * p.prefill_s(1024)
        assert p.prefill_s(1024) / 1024 < p.decode_step_s(1) / 20
    small = perf_model("A100", "qwen3-0.6b")
    assert small.decode_step_s(1) < pm["A100"].decode_step_s(1) / 3
    assert small.kv_capacity_tokens > pm["A100"].kv_capacity_tokens


def test_profile_table_and_describe():
    rows = profile_table(("A100", "RTX4090", "RTX3090"), ("llama-3-8b", "qwen3-14b"))
    assert len(rows) == 6
    by = {(r["gpu"], r["model"]): r for r in rows}
    assert by[("RTX4090", "qwen3-14b")]["fits"] is False
    assert by[("A100-80GB", "qwen3-14b")]["fits"] is True
    r = by[("A100-80GB", "llama-3-8b")]
    assert r["decode_ms_b1"] < r["decode_ms_b32"] and r["prefill_tok_s"] > 5000
    text = describe()
    assert "| A100-80GB | llama-3-8b |" in text and "does not fit" in text


# -- token accounting --------------------------------------------------------------------------


async def test_token_accounting_and_continuation(autojump_clock):
    ex = SimulatedExecutor(gpu="A100", model=MODEL)
    _, out = await timed(ex, req(n_prompt=37, max_tokens=10))
    chunks = [c for _, c in out]
    assert len(chunks) == 10 and all(c.finish_reason is None for c in chunks[:-1])
    assert chunks[-1].finish_reason == "length"
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (37, 10)
    full = "".join(c.text for c in chunks)
    assert len(full.split()) == 10 and full == full.strip()

    cont = "".join(c.text for c in chunks[:4])
    _, out2 = await timed(ex, req(n_prompt=37, max_tokens=6, continuation=cont))
    assert cont + "".join(c.text for _, c in out2) == full
    assert out2[-1][1].usage.completion_tokens == 6

    chat = req(prompt="", messages=(ChatMessage("system", words(5)),
                                    ChatMessage("user", words(7))), max_tokens=3)
    _, out3 = await timed(ex, chat)
    assert out3[-1][1].usage.prompt_tokens == 12 and out3[-1][1].usage.completion_tokens == 3

    stop_word = full.split()[5]
    first = full.index(" " + stop_word + " ") if (" " + stop_word + " ") in full else \
        full.index(" " + stop_word)
    _, out4 = await timed(ex, req(n_prompt=37, max_tokens=10, stop=(" " + stop_word,)))
    text = "".join(c.text for _, c in out4)
    assert text == full[:first] and out4[-1][1].finish_reason == "stop"
    assert out4[-1][1].usage.completion_tokens <= 10

    with pytest.raises(ModelNotFound):
        await timed(ex, req(model="nope"))
    await ex.aclose()


# -- timing model ------------------------------------------------------------------------------


async def test_ttft_follows_the_model_and_grows_with_prompt(autojump_clock):
    ex = SimulatedExecutor(gpu="A100", model="llama-3-8b")
    ttft = {}
    for n in (100, 1000, 4000):
        t0, out = await timed(ex, req(model="llama-3-8b", n_prompt=n, max_tokens=2))
        ttft[n] = out[0][0] - t0
    assert ttft[100] < ttft[1000] < ttft[4000]
    assert ttft[1000] == pytest.approx(ex.perf.prefill_s(1000), rel=1e-6)
    # 4000 tokens exceed the 2048-token step budget: pre-filled in two chunks
    assert ttft[4000] > ex.perf.prefill_s(2048) + ex.perf.prefill_s(1952) * 0.99
    await ex.aclose()


async def test_per_token_time_grows_with_batch(autojump_clock):
    async def inter_token(batch: int) -> float:
        ex = SimulatedExecutor(gpu="RTX3090", model="llama-3-8b", max_batch=64)
        gaps: list[float] = []

        async def one(i: int) -> None:
            _, out = await timed(ex, req(f"r{i}", n_prompt=200, max_tokens=40,
                                         model="llama-3-8b"))
            if i == 0:
                ts = [t for t, _ in out]
                gaps.extend(b - a for a, b in zip(ts[5:], ts[6:]))  # steady decode

        async with trio.open_nursery() as n:
            for i in range(batch):
                n.start_soon(one, i)
        await ex.aclose()
        return sum(gaps) / len(gaps)

    t1, t8, t32 = await inter_token(1), await inter_token(8), await inter_token(32)
    assert t1 < t8 < t32
    pm = perf_model("RTX3090", "llama-3-8b")
    assert t1 == pytest.approx(pm.decode_step_s(1, 200 + 20), rel=0.01)


async def test_saturated_executor_queues_then_drains(autojump_clock):
    ex = SimulatedExecutor(gpu="A100", model=MODEL, max_batch=2)
    arrived: list[int] = []
    finished: list[int] = []

    async def one(i: int) -> None:
        arrived.append(i)  # trio starts tasks in no fixed order; no checkpoint until enqueued
        await timed(ex, req(f"r{i}", n_prompt=50, max_tokens=20))
        finished.append(i)

    async with trio.open_nursery() as n:
        for i in range(6):
            n.start_soon(one, i)
        await trio.sleep(0.01)
        snap = ex.load()
        assert snap.running == 2 and snap.queued == 4 and snap.load == 3.0
    assert sorted(finished) == list(range(6))
    # FIFO (two requests finish in the same step, in either order)
    assert [set(finished[k:k + 2]) for k in (0, 2, 4)] == [set(arrived[k:k + 2]) for k in (0, 2, 4)]
    snap = ex.load()
    assert (snap.running, snap.queued, snap.kv_usage) == (0, 0, 0.0)
    assert ex.stats.completed == 6 and ex.stats.generated_tokens == 120
    await ex.aclose()


async def test_kv_capacity_limits_admission(autojump_clock):
    ex = SimulatedExecutor(gpu="A100", model=MODEL, max_batch=8, kv_tokens=1000)
    seen = []

    async def watch() -> None:
        while True:
            seen.append(ex.load())
            await trio.sleep(0.002)

    async with trio.open_nursery() as outer:
        outer.start_soon(watch)
        async with trio.open_nursery() as n:
            for i in range(5):  # 100 + 300 = 400 KV tokens each: two fit in 1000
                n.start_soon(timed, ex, req(f"r{i}", n_prompt=100, max_tokens=300))
        outer.cancel_scope.cancel()
    assert max(s.running for s in seen) == 2
    assert max(s.queued for s in seen) >= 1
    assert max(s.kv_usage for s in seen) == pytest.approx(0.8)
    with pytest.raises(InvalidRequest, match="KV capacity"):
        await timed(ex, req(n_prompt=900, max_tokens=200))
    await ex.aclose()


async def test_cancellation_frees_slot_and_kv_promptly(autojump_clock):
    ex = SimulatedExecutor(gpu="A100", model="llama-3-8b", max_batch=1)
    gen_a = ex.generate(req("a", n_prompt=100, max_tokens=500, model="llama-3-8b"))
    await gen_a.__anext__()
    assert ex.load().running == 1 and ex.load().kv_usage > 0
    b_first = trio.Event()
    t_close = None

    async def b() -> None:
        async with aclosing(ex.generate(req("b", n_prompt=100, max_tokens=3,
                                            model="llama-3-8b"))) as g:
            async for _ in g:
                b_first.set()

    async with trio.open_nursery() as n:
        n.start_soon(b)
        await trio.sleep(0.05)
        assert ex.load().queued == 1 and not b_first.is_set()
        await gen_a.aclose()
        t_close = trio.current_time()
        assert ex.load().running == 0  # freed at once, before the next step
        await b_first.wait()
        # at most the step in flight plus B's own prefill
        assert trio.current_time() - t_close < 2 * ex.perf.decode_step_s(1, 200) \
            + ex.perf.prefill_s(100)
    assert ex.load().running == ex.load().queued == 0 and ex.stats.cancelled == 1
    await ex.aclose()


async def test_time_scale_divides_wall_durations(autojump_clock):
    durations = {}
    for scale in (1.0, 10.0):
        ex = SimulatedExecutor(gpu="RTX4090", model="qwen3-4b", time_scale=scale)
        t0, out = await timed(ex, req(n_prompt=500, max_tokens=30, model="qwen3-4b"))
        durations[scale] = out[-1][0] - t0
        await ex.aclose()
    assert durations[1.0] == pytest.approx(10 * durations[10.0], rel=1e-6)
    assert durations[1.0] == pytest.approx(
        ex.perf.prefill_s(500) + sum(ex.perf.decode_step_s(1, 500 + k) for k in range(1, 30)),
        rel=1e-3)


async def test_faster_gpu_and_smaller_model_finish_sooner(autojump_clock):
    async def duration(gpu: str, model: str) -> float:
        ex = SimulatedExecutor(gpu=gpu, model=model)
        t0, out = await timed(ex, req(n_prompt=800, max_tokens=50, model=model))
        await ex.aclose()
        return out[-1][0] - t0

    a100, r4090, r3090 = [await duration(g, "llama-3-8b") for g in ("A100", "RTX4090", "RTX3090")]
    assert a100 < r4090 < r3090
    assert await duration("A100", "qwen3-0.6b") < a100 / 3


async def test_closed_executor_fails_waiting_streams(autojump_clock):
    ex = SimulatedExecutor(gpu="A100", model=MODEL, max_batch=1)
    gen = ex.generate(req(max_tokens=100))
    await gen.__anext__()
    await ex.aclose()
    with pytest.raises(ExecutorError, match="closed"):
        await gen.__anext__()
    await gen.aclose()
    with pytest.raises(ExecutorError, match="closed"):
        await timed(ex, req())
    await ex.aclose()
    assert ex.load().running == 0


def test_one_executor_across_two_trio_runs():
    ex = SimulatedExecutor(gpu="A100", model=MODEL, time_scale=1000)

    async def once() -> int:
        _, out = await timed(ex, req(max_tokens=5))
        return out[-1][1].usage.completion_tokens

    assert trio.run(once) == 5
    assert trio.run(once) == 5


async def test_deterministic_with_jitter(autojump_clock):
    async def run(seed: int) -> list[float]:
        ex = SimulatedExecutor(gpu="A100", model=MODEL, seed=seed, jitter=0.2)
        t0, out = await timed(ex, req(max_tokens=20))
        await ex.aclose()
        return [t - t0 for t, _ in out]

    a, b, c = await run(1), await run(1), await run(2)
    assert a == pytest.approx(b, rel=1e-9, abs=1e-12) and a != pytest.approx(c, rel=1e-3)
