"""GPU and model profiles, and the roofline performance model of one inference server.

The model is deliberately simple and fully documented so that benchmark results can be traced
back to public numbers. Weights and KV cache are bf16 (2 bytes per value). One *engine step*
(one iteration of a vLLM-like continuous-batching server) processes a set of decode tokens
(one per running sequence) and prefill chunks; its duration is::

    t_step = step_overhead_s + n_seqs * per_seq_overhead_s + max(t_memory, t_compute)
    t_memory  = (streamed_weight_bytes + kv_bytes_per_token * context_tokens_read)
                / (mem_bandwidth * mem_bw_efficiency)
    t_compute = (2 * non_embedding_params * tokens            # dense matmuls, 2 FLOP / MAC
                 + 2 * vocab * hidden * n_seqs                # LM head, one row per sequence
                 + 4 * layers * q_dim * attended_pairs)       # QK^T and AV
                / (bf16_tensor_flops * mfu)

i.e. the classic roofline: a decode step reads every weight once plus the KV cache of every
running sequence (memory-bound; ~1 byte per FLOP at batch 1), while a prefill chunk of
thousands of tokens is bound by tensor-core throughput (compute-bound). ``attended_pairs`` is
the number of (query, key) pairs: ``context`` for one decode token, ``n*start + n*(n+1)/2`` for a
prefill chunk of ``n`` tokens after ``start`` cached ones.

Efficiency assumptions (:class:`Efficiency`, all overridable):

- ``mem_bw_efficiency = 0.80``: large GEMV kernels reach ~80-90 % of the datasheet DRAM
  bandwidth on both HBM and GDDR6X cards; 0.8 is the conservative end.
- ``mfu = 0.50``: model-FLOPs utilisation of compute-bound prefill, the usual 40-60 % range
  reported for vLLM / SGLang / TensorRT-LLM prefill of dense 7-14B models.
- ``step_overhead_s = 1.5 ms`` and ``per_seq_overhead_s = 30 us``: CPU-side scheduling, input
  preparation, sampling and detokenisation per engine step (dominant for sub-1B models).
- ``gpu_memory_utilization = 0.90`` (vLLM's default) and ``activation_reserve_gib = 1.0``:
  the KV cache gets ``memory * 0.90 - weights - 1 GiB``.

Resulting sanity points (context 1024 tokens per sequence): Llama-3-8B decodes at ~10.8 ms/token
on an A100-80GB at batch 1 (~92 tokens/s, in line with published single-stream vLLM numbers),
~21 ms on an RTX 4090 and ~23 ms on an RTX 3090; a 1024-token prompt pre-fills in ~95 ms on
the A100. Run ``python -m wwwserve_p2p.sim.profiles`` for the whole table (:func:`describe`).

GPU sources (dense, i.e. without 2:4 sparsity; memory as ``nvidia-smi`` reports it, GiB):

- A100: NVIDIA A100 Tensor Core GPU datasheet — BF16 Tensor Core 312 TFLOPS (624 with
  sparsity); 80 GB HBM2e (SXM) 2,039 GB/s; 40 GB HBM2 1,555 GB/s.
- H100 SXM: NVIDIA H100 Tensor Core GPU datasheet — BF16 Tensor Core 1,979 TFLOPS *with
  sparsity*, i.e. 989 dense; 80 GB HBM3, 3.35 TB/s.
- RTX 4090: NVIDIA Ada Lovelace GPU architecture whitepaper, appendix table — peak BF16 (and
  FP16) Tensor TFLOPS with FP32 accumulate 165.2 (330.4 with sparsity; FP16 accumulate 330.3);
  the often-quoted 82.6 TFLOPS is the non-tensor FP32/FP16 shader rate. 24 GB GDDR6X,
  1,008 GB/s.
- RTX 3090: NVIDIA Ampere GA102 GPU architecture whitepaper — peak BF16 (and FP16) Tensor
  TFLOPS with FP32 accumulate 71 (142 with sparsity; FP16 accumulate 142); 35.6 TFLOPS
  non-tensor FP32. 24 GB GDDR6X, 936 GB/s.

Frameworks run bf16 matmuls with FP32 accumulation, hence the FP32-accumulate rates above.

Model sources: the ``config.json`` / model cards on Hugging Face of meta-llama/Meta-Llama-3-8B,
meta-llama/Meta-Llama-3-70B, Qwen/Qwen3-0.6B, Qwen/Qwen3-4B, Qwen/Qwen3-8B and Qwen/Qwen3-14B
(layers, hidden size, intermediate size, attention / KV heads, head dim, vocabulary, tied
embeddings). Parameter counts are derived from them (:attr:`ModelProfile.params`) and match
the cards: 8.03 B, 70.6 B, 0.60 B (0.44 B non-embedding), 4.02 B (3.6 B), 8.19 B (6.95 B),
14.8 B (13.2 B).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..errors import ConfigError

GiB = 1024 ** 3
#: Bytes per value of weights and KV cache (bf16).
BYTES_PER_VALUE = 2
#: A GPU/model pair "fits" only if its KV cache holds at least this many tokens.
MIN_KV_TOKENS = 2048
#: Tokens of one "typical" sequence (prompt + answer), used to derive a default batch limit
#: from the KV capacity: ``max_batch = clamp(kv_tokens // 2048, 1, 256)`` (256 is vLLM's
#: default ``max_num_seqs``).
TYPICAL_SEQ_TOKENS = 2048
MAX_DEFAULT_BATCH = 256


@dataclass(frozen=True)
class GPUProfile:
    """One GPU model.

    :param memory_gib: device memory (GiB).
    :param bf16_tflops: dense BF16 tensor-core peak with FP32 accumulate (TFLOP/s).
    :param mem_bandwidth_gbs: DRAM bandwidth (GB/s, 10^9 bytes/s).
    :param source: where the numbers come from.
    """

    name: str
    memory_gib: float
    bf16_tflops: float
    mem_bandwidth_gbs: float
    source: str = ""


@dataclass(frozen=True)
class ModelProfile:
    """A dense decoder-only transformer (Llama / Qwen3 architecture: GQA attention, SwiGLU MLP).

    All sizes are counts (not bytes); weights and KV cache are bf16.
    """

    name: str
    n_layers: int
    hidden_size: int
    intermediate_size: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab_size: int
    tied_embeddings: bool
    source: str = ""

    @property
    def q_dim(self) -> int:
        """Width of the query projection (``n_heads * head_dim``)."""
        return self.n_heads * self.head_dim

    @property
    def layer_params(self) -> int:
        """Matmul parameters of one layer: q, k, v, o projections and the 3 SwiGLU matrices
        (norms are ignored: < 0.01 %)."""
        h, kv = self.hidden_size, self.n_kv_heads * self.head_dim
        attn = 2 * h * self.q_dim + 2 * h * kv
        return attn + 3 * h * self.intermediate_size

    @property
    def non_embedding_params(self) -> int:
        """Parameters of the transformer layers (excludes the embedding and the LM head)."""
        return self.n_layers * self.layer_params

    @property
    def embedding_params(self) -> int:
        """Parameters of the embedding table (``vocab * hidden``)."""
        return self.vocab_size * self.hidden_size

    @property
    def params(self) -> int:
        """Total parameters (the LM head counted once more when not tied to the embedding)."""
        heads = 1 if self.tied_embeddings else 2
        return self.non_embedding_params + heads * self.embedding_params

    @property
    def weight_bytes(self) -> int:
        """Bytes of all weights in bf16 (what must fit in GPU memory)."""
        return self.params * BYTES_PER_VALUE

    @property
    def streamed_weight_bytes(self) -> int:
        """Bytes read from DRAM by one forward step: all layers plus the LM head (the
        embedding lookup reads only a few rows)."""
        return (self.non_embedding_params + self.embedding_params) * BYTES_PER_VALUE

    @property
    def kv_bytes_per_token(self) -> int:
        """KV-cache bytes per token: K and V, every layer, every KV head, bf16."""
        return 2 * self.n_layers * self.n_kv_heads * self.head_dim * BYTES_PER_VALUE


@dataclass(frozen=True)
class Efficiency:
    """Efficiency and overhead assumptions of :class:`PerfModel` (see the module docstring)."""

    mem_bw_efficiency: float = 0.80
    mfu: float = 0.50
    step_overhead_s: float = 1.5e-3
    per_seq_overhead_s: float = 30e-6
    gpu_memory_utilization: float = 0.90
    activation_reserve_gib: float = 1.0

    def __post_init__(self) -> None:
        for f in ("mem_bw_efficiency", "mfu", "gpu_memory_utilization"):
            v = getattr(self, f)
            if not 0.0 < v <= 1.0:
                raise ConfigError(f"efficiency.{f} must be in (0, 1], got {v}")
        for f in ("step_overhead_s", "per_seq_overhead_s", "activation_reserve_gib"):
            if getattr(self, f) < 0:
                raise ConfigError(f"efficiency.{f} must be >= 0, got {getattr(self, f)}")

    @classmethod
    def from_options(cls, options: Efficiency | dict[str, Any] | None) -> Efficiency:
        """An :class:`Efficiency` from ``None`` (defaults), an instance, or a mapping of fields.

        :raises ConfigError: unknown field or invalid value.
        """
        if options is None:
            return cls()
        if isinstance(options, cls):
            return options
        if not isinstance(options, dict):
            raise ConfigError(f"efficiency must be a table of {[f.name for f in fields(cls)]}, "
                              f"got {options!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown efficiency option(s): {', '.join(unknown)}; "
                              f"allowed: {', '.join(sorted(known))}")
        try:
            return replace(cls(), **{k: float(v) for k, v in options.items()})
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"invalid efficiency options {options!r}: {exc}") from exc


_A100_SRC = "NVIDIA A100 Tensor Core GPU datasheet"
_H100_SRC = "NVIDIA H100 Tensor Core GPU datasheet (1,979 TFLOPS BF16 is with sparsity)"
_ADA_SRC = "NVIDIA Ada Lovelace GPU architecture whitepaper (BF16 tensor, FP32 accumulate)"
_GA102_SRC = "NVIDIA Ampere GA102 GPU architecture whitepaper (BF16 tensor, FP32 accumulate)"

#: GPU profiles by canonical name.
GPUS: dict[str, GPUProfile] = {g.name: g for g in (
    GPUProfile("A100-80GB", 80, 312.0, 2039.0, _A100_SRC + ", SXM 80 GB HBM2e"),
    GPUProfile("A100-40GB", 40, 312.0, 1555.0, _A100_SRC + ", 40 GB HBM2"),
    GPUProfile("H100-SXM", 80, 989.0, 3350.0, _H100_SRC),
    GPUProfile("RTX4090", 24, 165.2, 1008.0, _ADA_SRC),
    GPUProfile("RTX3090", 24, 71.0, 936.0, _GA102_SRC),
)}

_HF = "https://huggingface.co/"
#: Model profiles by canonical name.
MODELS: dict[str, ModelProfile] = {m.name: m for m in (
    ModelProfile("qwen3-0.6b", 28, 1024, 3072, 16, 8, 128, 151936, True, _HF + "Qwen/Qwen3-0.6B"),
    ModelProfile("qwen3-4b", 36, 2560, 9728, 32, 8, 128, 151936, True, _HF + "Qwen/Qwen3-4B"),
    ModelProfile("qwen3-8b", 36, 4096, 12288, 32, 8, 128, 151936, False, _HF + "Qwen/Qwen3-8B"),
    ModelProfile("llama-3-8b", 32, 4096, 14336, 32, 8, 128, 128256, False,
                 _HF + "meta-llama/Meta-Llama-3-8B"),
    ModelProfile("qwen3-14b", 40, 5120, 17408, 40, 8, 128, 151936, False, _HF + "Qwen/Qwen3-14B"),
    ModelProfile("llama-3-70b", 80, 8192, 28672, 64, 8, 128, 128256, False,
                 _HF + "meta-llama/Meta-Llama-3-70B"),
)}

_GPU_ALIASES = {"a100": "A100-80GB", "a100sxm": "A100-80GB", "h100": "H100-SXM",
                "4090": "RTX4090", "3090": "RTX3090"}
_MODEL_ALIASES = {"llama3-8b": "llama-3-8b", "meta-llama-3-8b": "llama-3-8b",
                  "llama-3.1-8b": "llama-3-8b", "llama3-70b": "llama-3-70b",
                  "meta-llama-3-70b": "llama-3-70b"}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def get_gpu(name: str | GPUProfile) -> GPUProfile:
    """The GPU profile called ``name`` (case, spaces, ``-`` and ``_`` ignored; ``"A100"`` is the
    80 GB SXM part, ``"H100"`` the SXM part).

    :raises ConfigError: unknown name (the message lists the known ones).
    """
    if isinstance(name, GPUProfile):
        return name
    key = _norm(str(name))
    for canon in GPUS:
        if _norm(canon) == key:
            return GPUS[canon]
    for alias, canon in _GPU_ALIASES.items():
        if _norm(alias) == key:
            return GPUS[canon]
    raise ConfigError(f"unknown GPU profile {name!r}; known: {', '.join(GPUS)} "
                      "(aliases: A100, H100)")


def get_model(name: str | ModelProfile) -> ModelProfile:
    """The model profile called ``name`` (case-insensitive; ``-``/``_``/``.`` ignored except
    that ``0.6b`` stays distinct from ``6b``).

    :raises ConfigError: unknown name (the message lists the known ones).
    """
    if isinstance(name, ModelProfile):
        return name
    key = str(name).lower().replace("_", "-")
    key = _MODEL_ALIASES.get(key, key)
    if key in MODELS:
        return MODELS[key]
    norm = _norm(key.replace(".", "p"))
    for canon in MODELS:
        if _norm(canon.replace(".", "p")) == norm:
            return MODELS[canon]
    raise ConfigError(f"unknown model profile {name!r}; known: {', '.join(MODELS)}")


@dataclass(frozen=True)
class PerfModel:
    """The roofline performance model of ``model`` served on one ``gpu`` (see module docstring).

    Build it with :func:`perf_model` (which checks that the model fits). All times are in
    seconds of simulated GPU time, all sizes in tokens unless stated.
    """

    gpu: GPUProfile
    model: ModelProfile
    efficiency: Efficiency = field(default_factory=Efficiency)

    # -- memory -------------------------------------------------------------------------------

    @property
    def usable_memory_bytes(self) -> float:
        """``memory * gpu_memory_utilization`` in bytes."""
        return self.gpu.memory_gib * GiB * self.efficiency.gpu_memory_utilization

    @property
    def kv_capacity_tokens(self) -> int:
        """Tokens the KV cache holds: ``(usable memory - weights - activation reserve) /
        kv_bytes_per_token`` (may be <= 0 when the model does not fit)."""
        free = (self.usable_memory_bytes - self.model.weight_bytes
                - self.efficiency.activation_reserve_gib * GiB)
        return int(free // self.model.kv_bytes_per_token)

    def check_fits(self) -> None:
        """:raises ConfigError: the weights do not fit, or leave room for fewer than
        :data:`MIN_KV_TOKENS` tokens of KV cache."""
        kv = self.kv_capacity_tokens
        if kv < MIN_KV_TOKENS:
            usable = self.usable_memory_bytes / GiB
            raise ConfigError(
                f"model {self.model.name} ({self.model.params / 1e9:.1f} B parameters, "
                f"{self.model.weight_bytes / GiB:.1f} GiB of bf16 weights) does not fit on "
                f"{self.gpu.name} ({self.gpu.memory_gib:g} GiB, {usable:.1f} GiB usable at "
                f"{self.efficiency.gpu_memory_utilization:.0%} utilisation with "
                f"{self.efficiency.activation_reserve_gib:g} GiB for activations): room for "
                f"{max(0, kv)} KV tokens, at least {MIN_KV_TOKENS} needed")

    @property
    def default_max_batch(self) -> int:
        """``clamp(kv_capacity_tokens // TYPICAL_SEQ_TOKENS, 1, MAX_DEFAULT_BATCH)``."""
        return max(1, min(MAX_DEFAULT_BATCH, self.kv_capacity_tokens // TYPICAL_SEQ_TOKENS))

    # -- time ---------------------------------------------------------------------------------

    def step_time(self, n_decode: int, decode_context: int,
                  prefill: tuple[tuple[int, int], ...] | list[tuple[int, int]] = ()) -> float:
        """Seconds of one engine step.

        :param n_decode: sequences producing one decode token each.
        :param decode_context: sum over those sequences of their context length (tokens in
            cache, including the new one).
        :param prefill: ``(start, n)`` chunks: ``n`` prompt tokens of one sequence whose first
            ``start`` tokens are already cached.
        :returns: ``step_overhead + n_seqs * per_seq_overhead + max(t_memory, t_compute)``;
            0.0 for an empty step.
        """
        n_seqs = n_decode + len(prefill)
        if n_seqs == 0:
            return 0.0
        m, e = self.model, self.efficiency
        tokens = n_decode
        kv_read = decode_context
        pairs = decode_context
        for start, n in prefill:
            tokens += n
            kv_read += start + n
            pairs += n * start + n * (n + 1) // 2
        flops = (2.0 * m.non_embedding_params * tokens + 2.0 * m.embedding_params * n_seqs
                 + 4.0 * m.n_layers * m.q_dim * pairs)
        t_compute = flops / (self.gpu.bf16_tflops * 1e12 * e.mfu)
        bytes_moved = m.streamed_weight_bytes + m.kv_bytes_per_token * kv_read
        t_memory = bytes_moved / (self.gpu.mem_bandwidth_gbs * 1e9 * e.mem_bw_efficiency)
        return e.step_overhead_s + n_seqs * e.per_seq_overhead_s + max(t_memory, t_compute)

    def decode_step_s(self, batch: int, context: int = 1024) -> float:
        """Seconds of a pure decode step of ``batch`` sequences of ``context`` tokens each
        (= the time per output token each of them sees)."""
        return self.step_time(batch, batch * context)

    def prefill_s(self, tokens: int) -> float:
        """Seconds to pre-fill a ``tokens``-token prompt alone, in one step (TTFT on an idle
        server without chunking)."""
        return self.step_time(0, 0, [(0, int(tokens))])

    def prefill_tokens_per_s(self, tokens: int = 1024) -> float:
        """Prefill throughput for a ``tokens``-token prompt alone (tokens/s)."""
        return tokens / self.prefill_s(tokens)


def perf_model(gpu: str | GPUProfile, model: str | ModelProfile,
               efficiency: Efficiency | dict[str, Any] | None = None) -> PerfModel:
    """The :class:`PerfModel` of ``model`` on ``gpu``.

    :raises ConfigError: unknown GPU or model, invalid efficiency, or the model does not fit.
    """
    pm = PerfModel(get_gpu(gpu), get_model(model), Efficiency.from_options(efficiency))
    pm.check_fits()
    return pm


def profile_table(gpus: tuple[str, ...] | None = None, models: tuple[str, ...] | None = None,
                  context: int = 1024, batches: tuple[int, ...] = (1, 32),
                  prompt_tokens: int = 1024) -> list[dict[str, Any]]:
    """One row per GPU x model: ``gpu``, ``model``, ``fits``, ``kv_tokens``, ``max_batch``,
    ``prefill_tok_s`` (a ``prompt_tokens`` prompt alone), ``ttft_ms`` (same), and
    ``decode_ms_b{B}`` for each batch ``B`` (``context`` tokens per sequence); numbers are
    ``None`` for pairs that do not fit."""
    rows = []
    for g in gpus or tuple(GPUS):
        for mname in models or tuple(MODELS):
            pm = PerfModel(get_gpu(g), get_model(mname))
            row: dict[str, Any] = {"gpu": pm.gpu.name, "model": pm.model.name}
            try:
                pm.check_fits()
            except ConfigError:
                row.update(fits=False, kv_tokens=None, max_batch=None, prefill_tok_s=None,
                           ttft_ms=None, **{f"decode_ms_b{b}": None for b in batches})
                rows.append(row)
                continue
            row.update(fits=True, kv_tokens=pm.kv_capacity_tokens, max_batch=pm.default_max_batch,
                       prefill_tok_s=pm.prefill_tokens_per_s(prompt_tokens),
                       ttft_ms=pm.prefill_s(prompt_tokens) * 1e3)
            for b in batches:
                row[f"decode_ms_b{b}"] = pm.decode_step_s(b, context) * 1e3
            rows.append(row)
    return rows


def describe(gpus: tuple[str, ...] | None = None, models: tuple[str, ...] | None = None,
             context: int = 1024, batches: tuple[int, ...] = (1, 32)) -> str:
    """A Markdown table of :func:`profile_table` (for docs and benchmark reports)."""
    rows = profile_table(gpus, models, context, batches)
    head = (["GPU", "model", "KV tokens", "max batch", "prefill tok/s", "TTFT 1k (ms)"]
            + [f"decode ms/tok b={b}" for b in batches])
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if not r["fits"]:
            cells = [r["gpu"], r["model"], "does not fit"] + [""] * (len(head) - 3)
        else:
            cells = [r["gpu"], r["model"], f"{r['kv_tokens']:,}", str(r["max_batch"]),
                     f"{r['prefill_tok_s']:,.0f}", f"{r['ttft_ms']:.0f}"]
            cells += [f"{r[f'decode_ms_b{b}']:.1f}" for b in batches]
        out.append("| " + " | ".join(cells) + " |")
    out.append(f"\nDecode with {context} tokens of context per sequence; bf16; efficiency "
               f"assumptions: {Efficiency()}.")
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover - documentation helper
    print(describe())
