"""SimulatedExecutor: a performance model of one GPU inference server (kind ``"simulated"``).

It behaves like a vLLM-style server with continuous batching, but produces no real text: one
scheduler task per executor runs *engine steps* whose durations come from the roofline model
of :mod:`wwwserve_p2p.sim.profiles` and sleeps ``step / time_scale`` seconds on the trio clock
for each, so latency, queueing and throughput depend on the GPU, the model and the load exactly
as the model says — and deterministically under ``trio.testing.MockClock``.

Token accounting (a contract benchmarks rely on):

- ``usage.prompt_tokens`` = number of whitespace-separated words of ``request.prompt`` (for a
  chat request: of all message contents together).
- The answer is exactly ``request.max_tokens`` tokens, ``finish_reason="length"``, unless one of
  ``request.stop`` occurs in it: then the text ends before the stop string, the tokens
  generated up to and including the one that contained it are counted, and
  ``finish_reason="stop"``. (The vocabulary is lowercase words joined by single spaces, so
  ordinary stop strings such as ``"\\n\\n"`` never occur.)
- Each token is one word of a small fixed vocabulary, streamed as one chunk (``"word"`` for
  the first token of an answer, ``" word"`` after it); the words are a deterministic function
  of the prompt text, the executor's ``seed`` and the token position.
- ``continuation``: with ``k = len(continuation.split())`` words already delivered, the call
  produces tokens ``k .. k + max_tokens - 1`` of the same answer (so continuation + output is
  the uninterrupted answer); the continuation words are pre-filled together with the prompt.
  ``usage`` counts only what this call generated.
- ``temperature``, ``top_p`` and the request ``seed`` are validated, otherwise ignored.

Timing model (per executor, simulated seconds; see :class:`~.profiles.PerfModel`):

- Admission (FIFO, at the start of each step): the head of the queue is admitted while fewer
  than ``max_batch`` sequences run and its KV reservation fits: ``prompt + continuation +
  answer`` tokens are reserved for its whole life (no preemption). A request that could never
  fit (reservation > ``kv_tokens``) is refused with :class:`InvalidRequest`.
- A step (chunked prefill, like vLLM v1): every running sequence past its prompt decodes one
  token; the remaining budget of ``max_batched_tokens`` goes to prompt chunks of the sequences
  still pre-filling, oldest first. The step whose chunk completes a prompt also produces that
  sequence's first token. Its duration is ``PerfModel.step_time`` (optionally times a
  log-normal jitter of relative spread ``jitter``), and its effects (tokens) are applied when it
  ends.
- Pacing: steps sleep until ``start_of_busy_period + simulated_time / time_scale``. Steps
  shorter than ``min_sleep_s`` of wall time are run back to back (with a checkpoint) until
  their sum reaches it; if the event loop falls more than ``MAX_LAG_S`` behind, the schedule is
  re-anchored (the simulation then runs slower than ``time_scale``; counted in ``stats``).
- ``load()``: ``running`` = admitted sequences, ``queued`` = waiting ones, ``capacity`` =
  ``max_batch``, ``kv_usage`` = reserved KV tokens / ``kv_tokens``.
- Closing a stream early (``aclose()`` / cancellation) removes its sequence at once: its slot
  and KV reservation are free for the next step.

The scheduler is a trio *system task* started by the first :meth:`generate` of each
``trio.run`` (so the executor needs no nursery and can be built synchronously from a config).
"""

from __future__ import annotations

import logging
import math
import random
import zlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import trio

from ..core.types import (FINISH_LENGTH, FINISH_STOP, GenerationChunk, GenerationRequest,
                          LoadSnapshot, Usage)
from ..errors import ConfigError, ExecutorError, InvalidRequest
from ..executors.base import Executor
from .profiles import Efficiency, PerfModel, perf_model

log = logging.getLogger(__name__)

#: The words answers are made of (lowercase, no digits, no punctuation).
VOCAB: tuple[str, ...] = tuple(
    "the of and to in a is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there one all we their been has when who will "
    "more no if out so said what up its about into than them can only other new some could "
    "time these two may then do first any my now such like our over man me even most made "
    "after also did many before must through back years where much your way well down should "
    "because each just those people how too little state good very make world still own see "
    "men work long get here between both life being under never day same another know while "
    "last might us great old year off come since against go came right used take three".split())

#: Seconds the pacing may fall behind the trio clock before the schedule is re-anchored.
MAX_LAG_S = 0.25

_QUEUED, _RUNNING, _DONE, _GONE = "queued", "running", "done", "gone"


def count_prompt_tokens(request: GenerationRequest) -> int:
    """Prompt tokens of ``request`` by this executor's accounting: whitespace-separated words of
    ``prompt``, or of all message contents for a chat request."""
    if request.messages:
        return sum(len(m.content.split()) for m in request.messages)
    return len(request.prompt.split())


@dataclass
class SimStats:
    """Counters of one :class:`SimulatedExecutor` (simulated seconds and tokens).

    ``busy_s``: simulated time spent in steps; ``steps``: engine steps run; ``completed`` /
    ``cancelled``: sequences; ``prompt_tokens`` / ``generated_tokens``: pre-filled and
    generated tokens; ``lag_resets``: times the pacing fell more than ``MAX_LAG_S`` behind.
    """

    steps: int = 0
    busy_s: float = 0.0
    completed: int = 0
    cancelled: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    lag_resets: int = 0


class _Seq:
    __slots__ = ("prefill_total", "prefilled", "out_total", "generated", "kv", "state",
                 "event", "error")

    def __init__(self, prefill_total: int, out_total: int):
        self.prefill_total = prefill_total
        self.prefilled = 0
        self.out_total = out_total
        self.generated = 0
        self.kv = prefill_total + out_total
        self.state = _QUEUED
        self.event = trio.Event()
        self.error: str | None = None

    @property
    def context(self) -> int:
        return self.prefilled + self.generated


class SimulatedExecutor(Executor):
    """A simulated GPU inference server (see the module docstring for the full model).

    :param gpu: GPU profile name (``"A100"``/``"A100-80GB"``, ``"A100-40GB"``, ``"H100"``,
        ``"RTX4090"``, ``"RTX3090"``; see :data:`~.profiles.GPUS`).
    :param model: model profile name (``"llama-3-8b"``, ``"qwen3-8b"``, ``"qwen3-4b"``,
        ``"qwen3-0.6b"``, ``"qwen3-14b"``, ``"llama-3-70b"``; see :data:`~.profiles.MODELS`).
    :param models: model names advertised by :meth:`models` (default ``(model,)``).
    :param time_scale: >= 1; simulated durations are divided by it (60 replays an hour of trace
        in a minute).
    :param max_batch: concurrent sequences (default: from the KV capacity, see
        :attr:`~.profiles.PerfModel.default_max_batch`).
    :param kv_tokens: KV-cache capacity in tokens (default: from GPU memory, see
        :attr:`~.profiles.PerfModel.kv_capacity_tokens`); an explicit value is not checked
        against memory.
    :param max_batched_tokens: token budget of one step (decode tokens + prefill chunk),
        vLLM's ``max_num_batched_tokens``.
    :param seed: seeds the answer vocabulary and the jitter.
    :param jitter: relative spread (sigma of a log-normal factor) of step durations; 0 = exact.
    :param efficiency: overrides of :class:`~.profiles.Efficiency` fields (a TOML table).
    :param min_sleep_s: wall-clock granularity of the pacing (seconds).
    :raises ConfigError: unknown profile, model too large for the GPU, or an invalid value.
    """

    kind = "simulated"

    def __init__(self, gpu: str = "A100", model: str = "llama-3-8b",
                 models: tuple[str, ...] | None = None, time_scale: float = 1.0,
                 max_batch: int | None = None, kv_tokens: int | None = None,
                 max_batched_tokens: int = 2048, seed: int = 0, jitter: float = 0.0,
                 efficiency: Efficiency | dict[str, Any] | None = None,
                 min_sleep_s: float = 0.001):
        self.perf: PerfModel = perf_model(gpu, model, efficiency)
        if models is None:
            models = (model,)
        elif isinstance(models, str):
            models = (models,)
        models = tuple(models)
        if not models or not all(isinstance(m, str) and m for m in models):
            raise ConfigError(f"models must be a non-empty tuple of names, got {models!r}")
        self._models = models
        try:
            time_scale = float(time_scale)
        except (TypeError, ValueError):
            raise ConfigError(f"time_scale must be a number >= 1, got {time_scale!r}") from None
        if not (math.isfinite(time_scale) and time_scale >= 1.0):
            raise ConfigError(f"time_scale must be a finite number >= 1, got {time_scale}")
        self.time_scale = time_scale
        self.max_batch = self._positive_int("max_batch", max_batch, self.perf.default_max_batch)
        self.kv_tokens = self._positive_int("kv_tokens", kv_tokens,
                                            self.perf.kv_capacity_tokens)
        self.max_batched_tokens = self._positive_int("max_batched_tokens", max_batched_tokens, 0)
        if not (isinstance(jitter, (int, float)) and 0.0 <= jitter < 1.0):
            raise ConfigError(f"jitter must be in [0, 1), got {jitter!r}")
        self.jitter = float(jitter)
        if not (isinstance(min_sleep_s, (int, float)) and 0.0 <= min_sleep_s <= 1.0):
            raise ConfigError(f"min_sleep_s must be in [0, 1], got {min_sleep_s!r}")
        self.min_sleep_s = float(min_sleep_s)
        if not isinstance(seed, int):
            raise ConfigError(f"seed must be an integer, got {seed!r}")
        self.seed = seed
        self._rng = random.Random(seed)
        self.stats = SimStats()
        self._queue: deque[_Seq] = deque()
        self._running: list[_Seq] = []
        self._kv_reserved = 0
        self._closed = False
        self._wake = trio.Event()
        self._sched_token: object | None = None
        self._sched_alive = False
        self._sched_scope: trio.CancelScope | None = None

    @staticmethod
    def _positive_int(name: str, value: Any, default: int) -> int:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        return value

    # -- Executor interface -------------------------------------------------------------------

    def models(self) -> tuple[str, ...]:
        return self._models

    def load(self) -> LoadSnapshot:
        return LoadSnapshot(running=len(self._running), queued=len(self._queue),
                            capacity=self.max_batch,
                            kv_usage=min(1.0, self._kv_reserved / self.kv_tokens))

    def __repr__(self) -> str:
        return (f"SimulatedExecutor(gpu={self.perf.gpu.name!r}, model={self.perf.model.name!r}, "
                f"time_scale={self.time_scale:g}, max_batch={self.max_batch}, "
                f"kv_tokens={self.kv_tokens})")

    # -- the deterministic answer -------------------------------------------------------------

    def answer_words(self, request: GenerationRequest, start: int, n: int) -> list[str]:
        """Words ``start .. start + n - 1`` of the (infinite) answer to ``request``."""
        h = zlib.crc32(request.prompt_text().encode("utf-8")) ^ (self.seed * 0x9E3779B1)
        v = len(VOCAB)
        return [VOCAB[(h + 7 * i + (i * i) % 11) % v] for i in range(start, start + n)]

    def _plan_answer(self, request: GenerationRequest) -> tuple[list[str], str]:
        """(text of each generated token, finish reason) for this call."""
        offset = len(request.continuation.split())
        words = self.answer_words(request, offset, request.max_tokens)
        texts = [w if offset + i == 0 else " " + w for i, w in enumerate(words)]
        if request.continuation and request.continuation[-1].isspace() and texts:
            texts[0] = texts[0].lstrip(" ")
        stops = [s for s in request.stop if s]
        if stops:
            full = "".join(texts)
            cut = min((p for p in (full.find(s) for s in stops) if p >= 0), default=-1)
            if cut >= 0:
                pos = 0
                for i, t in enumerate(texts):
                    if pos + len(t) > cut:
                        return texts[:i] + [t[:cut - pos]], FINISH_STOP
                    pos += len(t)
        return texts, FINISH_LENGTH

    # -- generation ---------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Stream the simulated answer (see the module docstring).

        :raises ModelNotFound: unknown model.
        :raises InvalidRequest: invalid parameters, or prompt + continuation + ``max_tokens``
            exceeds ``kv_tokens`` (could never be admitted).
        :raises ExecutorError: the executor is closed (or was closed while waiting).
        """
        self.check_request(request)
        if self._closed:
            raise ExecutorError("the simulated executor is closed")
        texts, finish = self._plan_answer(request)
        prompt_tokens = count_prompt_tokens(request)
        prefill = max(1, prompt_tokens + len(request.continuation.split()))
        seq = _Seq(prefill, len(texts))
        if seq.kv > self.kv_tokens:
            raise InvalidRequest(
                f"prompt ({prefill} tokens incl. continuation) + max_tokens ({len(texts)}) "
                f"exceeds the KV capacity of {self.kv_tokens} tokens")
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=len(texts))
        self._ensure_scheduler()
        self._queue.append(seq)
        self._wake.set()
        emitted = 0
        last = len(texts) - 1
        try:
            while True:
                if seq.error is not None:
                    raise ExecutorError(seq.error)
                if emitted < min(seq.generated, last):
                    yield GenerationChunk(texts[emitted])
                    emitted += 1
                    continue
                if seq.state == _DONE:
                    break
                seq.event = trio.Event()
                await seq.event.wait()
        finally:
            self._release(seq)
        # The sequence left the batch when its last token was generated: a consumer that
        # stops reading after the final chunk does not hold capacity.
        yield GenerationChunk(texts[last], finish, usage)

    def _release(self, seq: _Seq) -> None:
        """Remove ``seq`` from the queue or the batch (idempotent; sync: runs on aclose)."""
        if seq.state == _QUEUED:
            try:
                self._queue.remove(seq)
            except ValueError:
                pass
        elif seq.state == _RUNNING:
            self._running.remove(seq)
            self._kv_reserved -= seq.kv
        else:
            return
        seq.state = _GONE
        self.stats.cancelled += 1
        self._wake.set()

    async def aclose(self) -> None:
        """Stop the scheduler; waiting and running streams fail with :class:`ExecutorError`.
        Idempotent; :meth:`load` still answers."""
        if self._closed:
            return
        self._closed = True
        if self._sched_scope is not None:
            self._sched_scope.cancel()
        self._fail_all("the simulated executor was closed")

    def _fail_all(self, why: str) -> None:
        for seq in [*self._queue, *self._running]:
            seq.state = _GONE
            seq.error = why
            seq.event.set()
        self._queue.clear()
        self._running.clear()
        self._kv_reserved = 0

    # -- the scheduler --------------------------------------------------------------------------

    def _ensure_scheduler(self) -> None:
        token = trio.lowlevel.current_trio_token()
        if self._sched_alive and self._sched_token is token:
            return
        if self._sched_token is not token:  # a new trio.run: anything left is stale
            self._fail_all("the trio run of this executor ended")
            self._wake = trio.Event()
        self._sched_token = token
        self._sched_alive = True
        trio.lowlevel.spawn_system_task(self._scheduler_main, name=f"{self!r} scheduler")

    async def _scheduler_main(self) -> None:
        try:
            with trio.CancelScope() as scope:
                self._sched_scope = scope
                await self._scheduler_loop()
        except Exception as exc:  # never crash the trio run (system task)
            log.exception("simulated executor scheduler failed")
            self._fail_all(f"simulated executor scheduler failed: {exc!r}")
        finally:
            self._sched_alive = False
            self._sched_scope = None

    def _admit(self) -> None:
        while (self._queue and len(self._running) < self.max_batch
               and self._kv_reserved + self._queue[0].kv <= self.kv_tokens):
            seq = self._queue.popleft()
            seq.state = _RUNNING
            self._running.append(seq)
            self._kv_reserved += seq.kv

    def _plan_step(self) -> tuple[list[tuple[_Seq, int]], float]:
        """The work of one step: ``(seq, n)`` with ``n = 0`` for a decode token, else a prompt
        chunk of ``n`` tokens; and its simulated duration."""
        plan: list[tuple[_Seq, int]] = []
        n_decode = ctx = 0
        for seq in self._running:
            if seq.prefilled >= seq.prefill_total:
                plan.append((seq, 0))
                n_decode += 1
                ctx += seq.context + 1
        budget = self.max_batched_tokens - n_decode
        chunks: list[tuple[int, int]] = []
        for seq in self._running:
            if budget <= 0:
                break
            if seq.prefilled < seq.prefill_total:
                n = min(seq.prefill_total - seq.prefilled, budget)
                plan.append((seq, n))
                chunks.append((seq.prefilled, n))
                budget -= n
        dt = self.perf.step_time(n_decode, ctx, chunks)
        if self.jitter and dt > 0:
            dt *= self._rng.lognormvariate(0.0, self.jitter)
        return plan, dt

    def _apply(self, plan: list[tuple[_Seq, int]], dt: float) -> None:
        st = self.stats
        st.steps += 1
        st.busy_s += dt
        finished = False
        for seq, n in plan:
            if seq.state != _RUNNING:  # cancelled during the step
                continue
            if n:
                seq.prefilled += n
                st.prompt_tokens += n
                if seq.prefilled < seq.prefill_total:
                    continue
            seq.generated += 1
            st.generated_tokens += 1
            if seq.generated >= seq.out_total:
                seq.state = _DONE
                self._kv_reserved -= seq.kv
                st.completed += 1
                finished = True
            seq.event.set()
        if finished:
            self._running = [s for s in self._running if s.state == _RUNNING]

    async def _scheduler_loop(self) -> None:
        next_wall: float | None = None
        while not self._closed:
            self._admit()
            plan, dt = self._plan_step() if self._running else ([], 0.0)
            if not plan:
                # idle (or nothing admissible): wait for a new request or a release
                next_wall = None
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            now = trio.current_time()
            if next_wall is None:
                next_wall = now
            elif now - next_wall > MAX_LAG_S:
                next_wall = now
                self.stats.lag_resets += 1
            next_wall += dt / self.time_scale
            if next_wall - now >= self.min_sleep_s:
                await trio.sleep_until(next_wall)
            else:
                await trio.lowlevel.checkpoint()
            self._apply(plan, dt)
