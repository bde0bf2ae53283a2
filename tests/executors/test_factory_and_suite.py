"""create_executor, the lazy import of torch, and that the conformance suite catches bugs."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import trio

from wwwserve_p2p.core.types import GenerationChunk, Usage
from wwwserve_p2p.errors import ConfigError
from wwwserve_p2p.executors import EchoExecutor, OpenAIUpstreamExecutor, create_executor
from wwwserve_p2p.testing.conformance import ConformanceError, run_check, run_conformance


def test_importing_executors_does_not_import_torch():
    code = ("import sys, wwwserve_p2p.executors as e, wwwserve_p2p.testing.conformance; "
            "e.create_executor('echo', {}); "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_create_executor_kinds_and_errors():
    ex = create_executor("echo", {"models": ["a", "b"], "capacity": 3, "peer_label": "p"})
    assert isinstance(ex, EchoExecutor) and ex.models() == ("a", "b")
    assert ex.load().capacity == 3
    assert isinstance(create_executor("openai", {"base_url": "http://x"}), OpenAIUpstreamExecutor)
    with pytest.raises(ConfigError, match="unknown executor kind 'vllm'"):
        create_executor("vllm", {})
    with pytest.raises(ConfigError, match="bogus"):
        create_executor("echo", {"bogus": 1})
    with pytest.raises(ConfigError, match="model_dir"):
        create_executor("hf", {})
    with pytest.raises(ConfigError, match="capacity"):
        create_executor("echo", {"capacity": 0})


class _NoChecks(EchoExecutor):
    """Skips validation: yields before raising, never raises ModelNotFound."""

    def check_request(self, request):
        pass


class _Blocking(EchoExecutor):
    async def generate(self, request):
        async for c in super().generate(request):
            if c.is_final:
                time.sleep(0.3)  # blocks the event loop
            yield c


class _NoFinal(EchoExecutor):
    async def generate(self, request):
        async for c in super().generate(request):
            yield GenerationChunk(c.text)


class _LeaksSlots(EchoExecutor):
    """Forgets to release its accounting when the stream is closed early."""

    leaked = 0

    async def generate(self, request):
        self.leaked += 1
        async for c in super().generate(request):
            yield c
        self.leaked -= 1  # not in a finally: skipped on aclose()/cancellation

    def load(self):
        snap = super().load()
        return type(snap)(running=snap.running + self.leaked, capacity=snap.capacity)


class _TooManyTokens(EchoExecutor):
    async def generate(self, request):
        async for c in super().generate(request):
            if c.is_final:
                c = GenerationChunk(c.text, c.finish_reason, Usage(0, request.max_tokens + 1))
            yield c


@pytest.mark.parametrize("cls, check, match", [
    (_NoChecks, "unknown_model", "ModelNotFound"),
    (_NoChecks, "invalid_params", "InvalidRequest"),
    (_Blocking, "loop_responsive", "late by"),
    (_NoFinal, "stream_shape", "finish_reason"),
    (_LeaksSlots, "early_close", "idle"),
    (_TooManyTokens, "max_tokens_one", "completion_tokens"),
])
async def test_suite_catches_broken_executors(cls, check, match):
    with trio.fail_after(20), pytest.raises(ConformanceError, match=match):
        await run_check(check, lambda: cls(capacity=2), "echo", idle_deadline=0.3)


async def test_run_conformance_reports_all_failures():
    with trio.fail_after(20), pytest.raises(ConformanceError) as info:
        await run_conformance(lambda: _NoChecks(), "echo")
    assert "[unknown_model]" in str(info.value) and "[invalid_params]" in str(info.value)


async def test_continuation_check_catches_repetition():
    class Repeats(EchoExecutor):
        async def generate(self, request):
            from dataclasses import replace
            async for c in super().generate(replace(request, continuation="")):
                yield c

    with trio.fail_after(10), pytest.raises(ConformanceError, match="continuation"):
        await run_check("continuation", Repeats, "echo")
