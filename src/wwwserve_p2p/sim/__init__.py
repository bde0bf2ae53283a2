"""Simulation: a GPU inference-server performance model and request workloads.

- :mod:`.profiles`: GPU and model profiles (public datasheet / model-card numbers) and the
  roofline :class:`PerfModel` (prefill and decode step times, KV capacity).
- :mod:`.executor`: :class:`SimulatedExecutor`, an :class:`~wwwserve_p2p.executors.base.Executor`
  that replays that model with continuous batching on the trio clock (kind ``"simulated"``).
- :mod:`.workload`: the Azure LLM inference trace, per-node trace windows and Poisson
  anti-phase load, as per-node lists of :class:`TraceRequest`.
- :mod:`.network` (``python -m wwwserve_p2p.sim.network``): a discrete-event simulator of
  5-10,000 nodes driving the real core (peer table, dispatch, selection, acceptance), with
  :mod:`.events` (virtual clock), :mod:`.fluidgpu` (event-driven twin of the executor),
  :mod:`.netmodel` (geographic RTT, bandwidth, loss) and :mod:`.gossip` (GossipSub at the
  message level).
"""

from __future__ import annotations

from .executor import SimStats, SimulatedExecutor, count_prompt_tokens
from .profiles import (GPUS, MODELS, Efficiency, GPUProfile, ModelProfile, PerfModel, describe,
                       get_gpu, get_model, perf_model, profile_table)
from .workload import (CONV_OUTPUT_TOKENS, CONV_PROMPT_TOKENS, LogNormalTokens, TraceRequest,
                       load_azure_trace, node_windows, poisson_antiphase, synthetic_prompt,
                       to_request)

__all__ = ["CONV_OUTPUT_TOKENS", "CONV_PROMPT_TOKENS", "GPUS", "MODELS", "Efficiency",
           "GPUProfile", "LogNormalTokens", "ModelProfile", "PerfModel", "SimStats",
           "SimulatedExecutor", "TraceRequest", "count_prompt_tokens", "describe", "get_gpu",
           "get_model", "load_azure_trace", "node_windows", "perf_model", "poisson_antiphase",
           "profile_table", "synthetic_prompt", "to_request"]
