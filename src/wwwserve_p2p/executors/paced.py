"""PacedExecutor (kind ``"paced"``): real tokens from an inner executor, released on the
schedule of an emulated accelerator.

Why: on a CPU-only machine a few model processes share a few cores, so adding nodes adds no
hardware and a network of CPU executors cannot serve faster than one node. A serving network is
for providers that each bring an accelerator. This executor keeps everything real except the
accelerator's speed: the inner executor (``hf``: a real model; ``echo``: no torch) computes
every token, and each token is handed out no earlier than the emulated GPU would produce it,
according to the roofline model of :mod:`wwwserve_p2p.sim.profiles` (the same numbers as the
``simulated`` executor). When the inner model's own compute per token is well below the
emulated step time, the host CPU is not the bottleneck and the timing is the emulated GPU's.

Timing model (seconds, trio clock), for a request that got one of ``capacity`` slots at ``t0``:

- ``p`` prompt tokens = whitespace-separated words of the prompt (all message contents for chat)
  plus those of ``continuation``, as the ``simulated`` executor counts them;
- the first token is released at ``t0 + slowdown * prefill_s(p)``;
- token ``k + 1`` is released ``slowdown * decode_step_s(b, p + k)`` after token ``k``, where
  ``b`` = requests holding a slot at that moment (the emulated server batches them: a memory-bound
  decode step barely grows with the batch);
- the deadlines are absolute: the inner executor computes the next token while the schedule
  runs, and a token it delivers after its deadline is released at once (counted as ``late``).
  Each chunk of the inner executor counts as one token (``hf`` and ``echo`` stream one chunk per
  token); the final chunk is released at the deadline of the last token of
  ``usage.completion_tokens``.

Slots: the executor has ``capacity`` slots of its own (FIFO, :class:`~.echo.SlotGate`); the inner
executor is built with the same capacity, so it never queues. ``load()`` is the paced slots'.
A slot is held until the last token's deadline, then released before the final chunk (as every
executor here does).

``pacing_stats()`` reports, over every request served so far: ``tokens``, ``late_tokens``,
``paced_s`` (wall time requests held a slot), ``compute_s`` (time spent waiting for the inner
executor's chunks: its compute plus the host's scheduling delays) and ``compute_share`` =
``compute_s / paced_s`` (small: the emulated GPU sets the pace; near 1: the host CPU does).
:meth:`PacedExecutor.aclose` logs them (INFO, :data:`STATS_LOG_PREFIX` + JSON), which is how
``wwwserve demo`` reads them from its node logs.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import trio

from ..core.types import GenerationChunk, GenerationRequest, LoadSnapshot
from ..errors import ConfigError, InvalidRequest
from .base import Executor
from .echo import SlotGate

log = logging.getLogger(__name__)

#: Prefix of the log line (INFO) with :meth:`PacedExecutor.pacing_stats` as JSON, written on close.
STATS_LOG_PREFIX = "pacing stats "


def _prompt_words(request: GenerationRequest) -> int:
    """Prompt tokens by the simulated executor's accounting (words), plus the continuation's."""
    if request.messages:
        n = sum(len(m.content.split()) for m in request.messages)
    elif request.prompt_ids:
        n = len(request.prompt_ids)
    else:
        n = len(request.prompt.split())
    return max(1, n + len(request.continuation.split()))


class PacedExecutor(Executor):
    """An inner executor's real tokens, paced by an emulated GPU (see the module docstring).

    :param inner: the inner executor (built with at least ``capacity`` slots, so it never queues;
        :func:`~wwwserve_p2p.executors.create_executor` builds it from the ``inner`` table of a
        config, ``kind`` plus its options, with our ``capacity``).
    :param gpu: GPU profile emulated (``"A100"``, ``"H100"``, ``"RTX4090"``, ``"RTX3090"``, ...;
        :data:`~wwwserve_p2p.sim.profiles.GPUS`).
    :param model: model profile whose speed is emulated (``"llama-3-8b"``, ``"qwen3-4b"``, ...;
        :data:`~wwwserve_p2p.sim.profiles.MODELS`); the tokens are the inner model's.
    :param capacity: concurrent requests (the emulated server's batch limit), >= 1.
    :param slowdown: every emulated time is multiplied by it (>= 1; 2 = a GPU at half speed).
    :param efficiency: overrides of :class:`~wwwserve_p2p.sim.profiles.Efficiency` fields.
    :raises ConfigError: unknown profile, a model that does not fit the GPU, a bad value, or an
        invalid inner table.
    """

    kind = "paced"

    def __init__(self, inner: Executor, gpu: str = "A100", model: str = "llama-3-8b",
                 capacity: int = 1, slowdown: float = 1.0, efficiency: dict[str, Any] | None = None):
        from ..sim.profiles import perf_model

        if not isinstance(inner, Executor):
            raise ConfigError("executor.inner must be a table with a kind (e.g. kind = \"hf\")")
        if isinstance(inner, PacedExecutor):
            raise ConfigError("executor.inner cannot itself be paced")
        try:
            slowdown = float(slowdown)
        except (TypeError, ValueError):
            raise ConfigError(f"slowdown must be a number >= 1, got {slowdown!r}") from None
        if not (math.isfinite(slowdown) and slowdown >= 1.0):
            raise ConfigError(f"slowdown must be a finite number >= 1, got {slowdown}")
        self.perf = perf_model(gpu, model, efficiency)
        self._gate = SlotGate(capacity)
        self.slowdown = slowdown
        self.inner = inner
        self.features = inner.features
        if callable(getattr(inner, "score", None)):
            self.score = inner.score  # the likelihood judge of duels uses the real model
        self._closed = False
        self._tokens = 0
        self._late = 0
        self._paced_s = 0.0
        self._compute_s = 0.0
        self._requests = 0

    # -- timing ---------------------------------------------------------------------------------

    def first_token_s(self, prompt_tokens: int) -> float:
        """Emulated seconds from a slot to the first token of a ``prompt_tokens``-token prompt."""
        return self.slowdown * self.perf.prefill_s(max(1, int(prompt_tokens)))

    def token_s(self, batch: int, context: int) -> float:
        """Emulated seconds between two tokens of one request with ``context`` tokens in cache,
        while ``batch`` requests hold a slot."""
        return self.slowdown * self.perf.decode_step_s(max(1, int(batch)), max(1, int(context)))

    def describe(self) -> str:
        """One line: what is emulated and its speed, e.g. for a demo's node list."""
        return (f"{self.perf.model.name} on {self.perf.gpu.name}{f' x{self.slowdown:g} slower' if self.slowdown > 1 else ''}"
                f", {self._gate.capacity} slot{'s' if self._gate.capacity > 1 else ''}: "
                f"{self.token_s(1, 512) * 1e3:.1f} ms/token")

    def pacing_stats(self) -> dict[str, Any]:
        """Counters over every request so far (see the module docstring)."""
        return {"gpu": self.perf.gpu.name, "model": self.perf.model.name, "slowdown": self.slowdown,
                "capacity": self._gate.capacity, "requests": self._requests, "tokens": self._tokens,
                "late_tokens": self._late, "paced_s": round(self._paced_s, 3),
                "compute_s": round(self._compute_s, 3),
                "compute_share": round(self._compute_s / self._paced_s, 4) if self._paced_s > 0 else 0.0,
                "ms_per_token_b1": round(self.token_s(1, 512) * 1e3, 2)}

    # -- Executor -------------------------------------------------------------------------------

    def models(self) -> tuple[str, ...]:
        return self.inner.models()

    def load(self) -> LoadSnapshot:
        return self._gate.snapshot()

    def unsupported(self, request: GenerationRequest) -> InvalidRequest | None:
        return self.inner.unsupported(request)

    async def start(self) -> None:
        await self.inner.start()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            log.info("%s%s", STATS_LOG_PREFIX, json.dumps(self.pacing_stats(), sort_keys=True))
        await self.inner.aclose()

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        self.check_request(request)
        final: GenerationChunk | None = None
        async with self._gate.slot():
            t0 = trio.current_time()
            prompt = _prompt_words(request)
            deadline = t0 + self.first_token_s(prompt)
            sent = 0
            try:
                async with aclosing(self.inner.generate(request)) as chunks:
                    asked = trio.current_time()
                    async for chunk in chunks:
                        got = trio.current_time()
                        self._compute_s += got - asked
                        if chunk.is_final:
                            tokens = chunk.usage.completion_tokens if chunk.usage else sent + 1
                            for k in range(max(1, sent), tokens):  # token k -> k + 1
                                deadline += self.token_s(self._gate.running, prompt + k)
                            final = chunk
                            break
                        if sent:
                            deadline += self.token_s(self._gate.running, prompt + sent)
                        sent += 1
                        self._tokens += 1
                        await self._release_at(deadline, got)
                        yield chunk
                        asked = trio.current_time()
                if final is not None:
                    self._tokens += max(1, tokens - sent)
                    await self._release_at(deadline, trio.current_time())
                    self._requests += 1
            finally:
                self._paced_s += trio.current_time() - t0
        if final is not None:
            yield final

    async def _release_at(self, deadline: float, got: float) -> None:
        """Wait until ``deadline`` for a token the inner executor delivered at ``got`` (at once,
        counted as late, when ``got`` is past it)."""
        if got > deadline:
            self._late += 1
            await trio.lowlevel.checkpoint()
        else:
            await trio.sleep_until(deadline)
