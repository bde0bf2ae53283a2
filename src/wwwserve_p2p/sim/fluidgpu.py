"""An event-driven twin of :class:`~.executor.SimulatedExecutor` for the network simulator.

Same model (FIFO admission at step starts while ``running < max_batch`` and the KV
reservation ``prompt + answer`` fits; chunked prefill with a ``max_batched_tokens`` budget per
step, decode tokens first; step durations from :meth:`~.profiles.PerfModel.step_time`), but
instead of sleeping once per engine step it jumps over *segments*: runs of consecutive steps
whose batch composition does not change (nobody admitted, no prompt or answer completed). A
segment of ``k`` steps costs one event; its step time is evaluated at the segment's middle
context (the step time is linear in the context within a segment, so this is exact unless the
roofline switches between its memory and compute branch inside one segment). A request
therefore costs a handful of events instead of one per token, which is what lets 10,000 GPUs
run in one process. ``tests/sim/test_network_sim.py`` checks its throughput and latencies
against :class:`SimulatedExecutor` on trio's virtual clock.

Times are simulated seconds on the :class:`~.events.EventLoop` of the caller.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from ..core.types import LoadSnapshot
from .events import EventLoop
from .profiles import PerfModel

_QUEUED, _RUNNING, _DONE, _GONE = 0, 1, 2, 3


class StepTime:
    """:meth:`PerfModel.step_time` with its constants precomputed (the same formula; the
    model's properties are recomputed on every call otherwise, a third of a GPU event's cost)."""

    __slots__ = ("o0", "o_seq", "c_tok", "c_seq", "c_pair", "m0", "m_kv")

    def __init__(self, perf: PerfModel):
        m, e, g = perf.model, perf.efficiency, perf.gpu
        flops = g.bf16_tflops * 1e12 * e.mfu
        bw = g.mem_bandwidth_gbs * 1e9 * e.mem_bw_efficiency
        self.o0, self.o_seq = e.step_overhead_s, e.per_seq_overhead_s
        self.c_tok = 2.0 * m.non_embedding_params / flops
        self.c_seq = 2.0 * m.embedding_params / flops
        self.c_pair = 4.0 * m.n_layers * m.q_dim / flops
        self.m0 = m.streamed_weight_bytes / bw
        self.m_kv = m.kv_bytes_per_token / bw

    def __call__(self, n_decode: int, decode_context: int, prefill: list[tuple[int, int]]) -> float:
        n_seqs = n_decode + len(prefill)
        if n_seqs == 0:
            return 0.0
        tokens, kv_read, pairs = n_decode, decode_context, decode_context
        for start, n in prefill:
            tokens += n
            kv_read += start + n
            pairs += n * start + n * (n + 1) // 2
        t_compute = self.c_tok * tokens + self.c_seq * n_seqs + self.c_pair * pairs
        t_memory = self.m0 + self.m_kv * kv_read
        return self.o0 + n_seqs * self.o_seq + (t_memory if t_memory > t_compute else t_compute)


class Seq:
    """One request on a :class:`FluidGPU`: ``prefill_total`` prompt tokens, ``out_total``
    answer tokens. ``on_first(t)`` fires when its first token is produced, ``on_done(t)`` when
    its last is; ``t_first``/``t_done`` record them."""

    __slots__ = ("prefill_total", "prefilled", "out_total", "generated", "kv", "state",
                 "on_first", "on_done", "t_first", "t_done", "tag")

    def __init__(self, prompt: int, output: int, on_first: Callable[[float], None] | None = None,
                 on_done: Callable[[float], None] | None = None, tag: object = None):
        self.prefill_total = max(1, int(prompt))
        self.prefilled = 0
        self.out_total = max(1, int(output))
        self.generated = 0
        self.kv = self.prefill_total + self.out_total
        self.state = _QUEUED
        self.on_first = on_first
        self.on_done = on_done
        self.t_first = -1.0
        self.t_done = -1.0
        self.tag = tag


class FluidGPU:
    """A simulated GPU inference server driven by an :class:`EventLoop` (see module doc).

    :param loop: the simulator's event loop (its ``now`` is the current time).
    :param perf: the roofline model (``sim.profiles.perf_model(gpu, model)``).
    :param max_batch: concurrent sequences (default ``perf.default_max_batch``).
    :param kv_tokens: KV capacity in tokens (default ``perf.kv_capacity_tokens``).
    :param max_batched_tokens: token budget of one step.
    """

    __slots__ = ("loop", "perf", "step_time", "max_batch", "kv_tokens", "max_batched_tokens", "queue",
                 "running", "kv_reserved", "t0", "dt", "k", "plan", "version", "busy_s",
                 "completed", "closed")

    def __init__(self, loop: EventLoop, perf: PerfModel, max_batch: int | None = None,
                 kv_tokens: int | None = None, max_batched_tokens: int = 2048):
        self.loop = loop
        self.perf = perf
        self.step_time = StepTime(perf)
        self.max_batch = max_batch or perf.default_max_batch
        self.kv_tokens = kv_tokens or perf.kv_capacity_tokens
        self.max_batched_tokens = max_batched_tokens
        self.queue: deque[Seq] = deque()
        self.running: list[Seq] = []
        self.kv_reserved = 0
        self.t0 = 0.0      # start of the current segment
        self.dt = 0.0      # step time in the current segment
        self.k = 0         # steps in the current segment (0 = idle)
        self.plan: list[tuple[Seq, int]] = []
        self.version = 0
        self.busy_s = 0.0
        self.completed = 0
        self.closed = False

    # ------------------------------------------------------------------ interface
    def load(self) -> LoadSnapshot:
        return LoadSnapshot(len(self.running), len(self.queue), self.max_batch,
                            min(1.0, self.kv_reserved / self.kv_tokens))

    def load_value(self) -> float:
        """``self.load().load`` without building the snapshot."""
        return max((len(self.running) + len(self.queue)) / self.max_batch,
                   min(1.0, self.kv_reserved / self.kv_tokens))

    def accepting(self) -> bool:
        """``load().idle_slots > 0`` and no queue, without building the snapshot."""
        return not self.queue and len(self.running) < self.max_batch

    def fits(self, prompt: int, output: int) -> bool:
        return max(1, prompt) + max(1, output) <= self.kv_tokens

    def submit(self, seq: Seq) -> None:
        """Queue ``seq`` now (admitted at the next step start). A request that can never fit
        the KV cache raises ValueError (the real executor refuses it with InvalidRequest)."""
        if self.closed:
            raise RuntimeError("the GPU is closed")
        if seq.kv > self.kv_tokens:
            raise ValueError(f"request of {seq.kv} tokens exceeds the KV capacity {self.kv_tokens}")
        self._advance(self.loop.now)
        self.queue.append(seq)
        self._replan()

    def cancel(self, seq: Seq) -> int:
        """Remove ``seq`` (queued or running) now; returns the tokens it had generated."""
        if seq.state not in (_QUEUED, _RUNNING):
            return seq.generated
        self._advance(self.loop.now)
        if seq.state == _QUEUED:
            self.queue.remove(seq)
        elif seq.state == _RUNNING:
            self.running.remove(seq)
            self.kv_reserved -= seq.kv
        seq.state = _GONE
        self._replan()
        return seq.generated

    def fail_all(self) -> list[Seq]:
        """The GPU goes away: every queued and running sequence is dropped (returned)."""
        self._advance(self.loop.now)
        out = [*self.queue, *self.running]
        for s in out:
            s.state = _GONE
        self.queue.clear()
        self.running.clear()
        self.kv_reserved = 0
        self.k = 0
        self.version += 1
        self.closed = True
        return out

    # ------------------------------------------------------------------ the engine
    def _advance(self, now: float) -> None:
        """Apply the steps of the current segment that have started by ``now`` (a step in
        progress completes; arrivals are admitted at the next step start)."""
        if self.k <= 0 or self.dt <= 0:
            return
        if now <= self.t0:
            return
        j = min(self.k, int(-(-(now - self.t0) // self.dt)))  # ceil
        if j <= 0:
            return
        self._apply(j)

    def _apply(self, j: int) -> None:
        """Apply ``j`` steps of the plan (j <= k); completions only happen at step ``k``."""
        t_end = self.t0 + j * self.dt
        self.busy_s += j * self.dt
        finished = False
        for seq, n in self.plan:
            if seq.state != _RUNNING:
                continue
            if n:
                seq.prefilled += n * j
                if seq.prefilled < seq.prefill_total:
                    continue
                # the step that completes the prompt also produces the first token
                seq.prefilled = seq.prefill_total
                seq.generated += 1
                seq.t_first = t_end
                if seq.on_first is not None:
                    seq.on_first(t_end)
            else:
                seq.generated += j
            if seq.generated >= seq.out_total:
                seq.generated = seq.out_total
                seq.state = _DONE
                seq.t_done = t_end
                self.kv_reserved -= seq.kv
                self.completed += 1
                finished = True
                if seq.on_done is not None:
                    seq.on_done(t_end)
        if finished:
            self.running = [s for s in self.running if s.state == _RUNNING]
        self.t0 = t_end
        self.k -= j
        if self.k <= 0:
            self.k = 0

    def _admit(self) -> None:
        q, run = self.queue, self.running
        while q and len(run) < self.max_batch and self.kv_reserved + q[0].kv <= self.kv_tokens:
            s = q.popleft()
            s.state = _RUNNING
            run.append(s)
            self.kv_reserved += s.kv

    def _replan(self) -> None:
        """After a change: (re)plan a segment starting at ``t0`` (or now if idle)."""
        if self.k > 0:
            # a segment is in progress (its in-progress step already applied): restart at t0
            self.k = 0
        elif self.t0 < self.loop.now:
            self.t0 = self.loop.now
        self._admit()
        self.version += 1
        if not self.running:
            self.plan = []
            return
        plan: list[tuple[Seq, int]] = []
        n_decode = ctx = 0
        k = 1 << 30
        for s in self.running:
            if s.prefilled >= s.prefill_total:
                plan.append((s, 0))
                n_decode += 1
                ctx += s.prefilled + s.generated + 1
                k = min(k, s.out_total - s.generated)
        budget = self.max_batched_tokens - n_decode
        chunks = []
        for s in self.running:
            if budget <= 0:
                break
            if s.prefilled < s.prefill_total:
                rem = s.prefill_total - s.prefilled
                n = min(rem, budget)
                plan.append((s, n))
                budget -= n
                if n == rem:
                    k = 1
                else:  # the plan changes when rem < n (a smaller last chunk, or completion)
                    k = min(k, rem // n)
                chunks.append((s.prefilled, n))
        k = max(1, k)
        if chunks:
            mid = [(st + n * (k - 1) // 2, n) for st, n in chunks]
        else:
            mid = []
        dt = self.step_time(n_decode, ctx + n_decode * (k - 1) // 2, mid)
        self.plan, self.k, self.dt = plan, k, dt
        self.loop.at(self.t0 + k * dt, self._segment_end, self.version)

    def _segment_end(self, version: int) -> None:
        if version != self.version or self.k <= 0:
            return
        self._apply(self.k)
        self._replan()
