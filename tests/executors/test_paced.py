"""PacedExecutor: an inner executor's real tokens on an emulated GPU's schedule (the demo's executors)."""

from __future__ import annotations

from contextlib import aclosing

import pytest
import trio

from wwwserve_p2p.core.types import GenerationRequest
from wwwserve_p2p.errors import ConfigError
from wwwserve_p2p.executors import EXECUTOR_KINDS, create_executor
from wwwserve_p2p.executors.echo import EchoExecutor
from wwwserve_p2p.executors.paced import PacedExecutor
from wwwserve_p2p.testing.conformance import CHECK_NAMES, run_check

PROMPT = " ".join(f"w{i}" for i in range(40))


def paced(capacity=2, **kw):
    return create_executor("paced", {"inner": {"kind": "echo", "models": ["echo"]}, "gpu": "RTX3090",
                                     "model": "llama-3-8b", "capacity": capacity, **kw})


async def timed(ex, max_tokens=10, prompt=PROMPT):
    """(arrival time of every chunk, final chunk) of one request, relative to its start."""
    t0 = trio.current_time()
    times, final = [], None
    async with aclosing(ex.generate(GenerationRequest("r", "echo", prompt=prompt, max_tokens=max_tokens))) as gen:
        async for chunk in gen:
            times.append(trio.current_time() - t0)
            final = chunk
    return times, final


async def test_tokens_follow_the_emulated_schedule(autojump_clock):
    ex = paced(capacity=1)
    assert isinstance(ex, PacedExecutor) and "paced" in EXECUTOR_KINDS
    times, final = await timed(ex, max_tokens=10)
    assert final.is_final and final.usage.completion_tokens == 10 and len(times) == 10
    ttft = ex.first_token_s(40)
    assert times[0] == pytest.approx(ttft, rel=1e-6)
    # every later token one decode step of the emulated GPU after the previous one
    for k in range(1, 10):
        assert times[k] - times[k - 1] == pytest.approx(ex.token_s(1, 40 + k), rel=1e-6)
    assert 0.018 < ex.token_s(1, 50) < 0.03  # Llama-3-8B on an RTX 3090: ~22 ms/token
    st = ex.pacing_stats()
    assert st["tokens"] == 10 and st["requests"] == 1 and st["late_tokens"] == 0
    assert st["paced_s"] == pytest.approx(times[-1], abs=1e-3) and st["compute_share"] < 0.01
    assert ex.load().running == 0


async def test_slots_queue_and_slowdown(autojump_clock):
    ex = paced(capacity=1)
    slow = paced(capacity=1, slowdown=2.0)
    one, _ = await timed(ex, max_tokens=5)
    two, _ = await timed(slow, max_tokens=5)
    assert two[-1] == pytest.approx(2 * one[-1], rel=1e-6)
    ends = []

    async def run():
        ends.append((await timed(ex, max_tokens=5))[0][-1])

    async with trio.open_nursery() as n:
        n.start_soon(run)
        n.start_soon(run)
        await trio.sleep(0.001)
        assert ex.load().running == 1 and ex.load().queued == 1  # one slot: the second waits
    assert max(ends) == pytest.approx(2 * one[-1], rel=1e-3)


async def test_a_slow_inner_executor_is_counted_late(autojump_clock):
    # an inner executor slower (0.1 s/token) than the emulated GPU (~22 ms): tokens come at its pace
    ex = create_executor("paced", {"inner": {"kind": "echo", "models": ["echo"], "delay_per_token": 0.1},
                                   "gpu": "RTX3090", "capacity": 1})
    times, _ = await timed(ex, max_tokens=5)
    assert times[-1] == pytest.approx(0.5, abs=0.01)
    st = ex.pacing_stats()
    assert st["late_tokens"] >= 4 and st["compute_share"] > 0.9


def test_bad_options():
    with pytest.raises(ConfigError):
        create_executor("paced", {"inner": {"models": ["echo"]}})
    with pytest.raises(ConfigError):
        create_executor("paced", {"inner": {"kind": "paced", "inner": {"kind": "echo"}}})
    with pytest.raises(ConfigError):
        PacedExecutor(PacedExecutor(EchoExecutor()))
    with pytest.raises(ConfigError):
        paced(slowdown=0.5)
    with pytest.raises(ConfigError):
        paced(gpu="no-such-gpu")


@pytest.mark.parametrize("check", CHECK_NAMES)
async def test_conformance(check):
    await run_check(check, lambda: PacedExecutor(EchoExecutor(models=("echo",), capacity=2), gpu="H100", model="qwen3-0.6b",
                                                 capacity=2), "echo")


def test_inner_is_a_real_echo_executor():
    ex = paced()
    assert isinstance(ex.inner, EchoExecutor) and ex.inner.models() == ("echo",) and ex.load().capacity == 2
    assert "RTX3090" in ex.describe() and "ms/token" in ex.describe()


async def test_close_logs_the_stats_once(autojump_clock, caplog):
    import json
    import logging

    from wwwserve_p2p.executors.paced import STATS_LOG_PREFIX

    ex = paced()
    await timed(ex, max_tokens=3)
    with caplog.at_level(logging.INFO, logger="wwwserve_p2p.executors.paced"):
        await ex.aclose()
        await ex.aclose()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(STATS_LOG_PREFIX)]
    assert len(lines) == 1 and json.loads(lines[0][len(STATS_LOG_PREFIX):])["tokens"] == 3
