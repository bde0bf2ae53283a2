"""HFExecutor: a causal LM from a local directory, run with transformers + torch on CPU/GPU.

Decoding is our own loop with a KV cache. Every step (prefill + first token, then one token
per step) runs on a worker thread through ``trio.to_thread.run_sync``; the event loop only
does string bookkeeping. Closing the generator or cancelling its consumer therefore stops
generation after at most the step in progress (one forward pass) and frees the slot.

It can also *score* a text (:meth:`HFExecutor.score`: mean token log-probability of an
answer given a prompt; the likelihood judge of duels) and serve an int8 weight-quantized
copy of its model (``quantize="int8"``; :func:`quantize_int8_`), or an fp8 / group-wise int4
copy (``quantize="fp8"``, ``"int4-g128"``, ``"int4-g32"``; :mod:`.quant`).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import trio

from ..core.types import (FINISH_LENGTH, FINISH_STOP, GenerationChunk, GenerationRequest,
                          LoadSnapshot, TokenLogprob, Usage)
from ..errors import ConfigError, ExecutorError, InvalidRequest, ModelNotFound
from .base import Executor, echo_plan, invalid
from .echo import SlotGate
# QUANTIZE_MODES: the named values of the ``quantize`` option (re-exported from .quant)
from .quant import QUANTIZE_MODES, fake_quantize_, parse_quantize  # noqa: F401


def _int8_modules():
    """The torch modules of the int8 path (defined lazily: torch is imported on first use)."""
    global _INT8
    if _INT8 is not None:
        return _INT8
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Int8Linear(nn.Module):
        """``y = x @ (q * scale[:, None]).T + bias``: a linear layer with int8 weights.

        ``qweight``: int8 ``[out_features, in_features]`` in [-127, 127]; ``scale``: float32
        ``[out_features]`` (per output channel); ``bias``: float ``[out_features]`` or None.
        The weight is dequantized to the activation dtype on every forward (weight-only
        quantization: activations and accumulation stay in floating point).
        """

        def __init__(self, qweight, scale, bias):
            super().__init__()
            self.in_features = int(qweight.shape[1])
            self.out_features = int(qweight.shape[0])
            self.register_buffer("qweight", qweight)
            self.register_buffer("scale", scale)
            self.bias = None if bias is None else nn.Parameter(bias.detach().clone(),
                                                               requires_grad=False)

        def dequantized(self, dtype=torch.float32):
            """The float weight ``[out_features, in_features]`` this layer computes with."""
            return self.qweight.to(dtype) * self.scale.to(dtype)[:, None]

        def forward(self, x):
            return F.linear(x, self.dequantized(x.dtype), self.bias)

        def extra_repr(self) -> str:
            return f"in_features={self.in_features}, out_features={self.out_features}, int8"

    class Int8Embedding(nn.Module):
        """An embedding table stored as int8 rows with one float32 scale per row."""

        def __init__(self, qweight, scale, padding_idx=None):
            super().__init__()
            self.num_embeddings, self.embedding_dim = (int(d) for d in qweight.shape)
            self.padding_idx = padding_idx
            self.register_buffer("qweight", qweight)
            self.register_buffer("scale", scale)

        def dequantized(self, dtype=torch.float32):
            return self.qweight.to(dtype) * self.scale.to(dtype)[:, None]

        def forward(self, ids):
            return F.embedding(ids, self.qweight).to(torch.float32) * self.scale[ids][..., None]

        def extra_repr(self) -> str:
            return f"{self.num_embeddings}, {self.embedding_dim}, int8"

    _INT8 = (Int8Linear, Int8Embedding)
    return _INT8


_INT8: Any = None


def quantize_rows_int8(weight: Any) -> tuple[Any, Any]:
    """Symmetric per-row int8 quantization of a 2-D float tensor ``[rows, cols]``.

    ``scale[r] = max(|weight[r]|) / 127`` (1.0 for an all-zero row) and
    ``q[r] = round(weight[r] / scale[r])`` clamped to [-127, 127], so ``q * scale`` is within
    ``scale / 2`` of ``weight`` elementwise and each row takes at most 255 distinct values.

    :returns: ``(q, scale)``: int8 ``[rows, cols]`` and float32 ``[rows]``.
    """
    import torch

    w = weight.detach().to(torch.float32)
    amax = w.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
    q = torch.clamp(torch.round(w / scale[:, None]), -127, 127).to(torch.int8)
    return q, scale


def quantize_int8_(model: Any) -> dict[str, int]:
    """Quantize ``model`` in place to int8 weights (weight-only, per output channel).

    What is quantized: the weight of every ``torch.nn.Linear`` and every transformers
    ``Conv1D`` (GPT-2's attention ``c_attn``/``c_proj`` and MLP ``c_fc``/``c_proj``; a
    ``Conv1D`` weight ``[in, out]`` is transposed to ``[out, in]``), each replaced by an
    ``Int8Linear`` with one scale per output feature (:func:`quantize_rows_int8`); this
    includes the LM head. When the LM head's weight is tied to the input embedding (GPT-2's
    ``wte``), the embedding is replaced by an ``Int8Embedding`` that shares the LM head's int8
    table and scales (one scale per token row), so the tied matrix is stored once, in int8.
    What stays in floating point: biases, LayerNorms, position embeddings (GPT-2's ``wpe``),
    an untied input embedding, and all activations (weights are dequantized per forward).

    Note ``torch.ao.quantization.quantize_dynamic`` alone would catch only GPT-2's LM head:
    the transformer blocks use ``Conv1D``, not ``nn.Linear``.

    :returns: counts: ``modules`` (layers replaced), ``int8_params`` (weights now stored as
        int8), ``float_params`` (parameters left in floating point).
    """
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    Int8Linear, Int8Embedding = _int8_modules()
    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    in_emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    tied = (isinstance(out_emb, nn.Linear) and isinstance(in_emb, nn.Embedding)
            and out_emb.weight is in_emb.weight)
    targets = [(name, mod) for name, mod in model.named_modules()
               if isinstance(mod, (nn.Linear, Conv1D))]
    shared = None
    n_int8 = 0
    for name, mod in targets:
        weight = mod.weight.t() if isinstance(mod, Conv1D) else mod.weight
        q, scale = quantize_rows_int8(weight)
        if mod is out_emb and tied:
            shared = (q, scale)
        new = Int8Linear(q.to(weight.device), scale.to(weight.device), mod.bias)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, new)
        n_int8 += q.numel()
    if shared is not None:
        model.set_input_embeddings(Int8Embedding(shared[0], shared[1], in_emb.padding_idx))
    float_params = sum(p.numel() for p in model.parameters())
    return {"modules": len(targets), "int8_params": n_int8, "float_params": float_params}


def _trained_block(model_dir: Path) -> int | None:
    """The training sequence length recorded by training.py's marker file, if any."""
    import json

    try:
        meta = json.loads((Path(model_dir) / "wwwserve_training.json").read_text())
        block = int(meta["arch"]["block"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return block if block >= 2 else None


def window_plan(n_ids: int, first: int, context: int) -> list[tuple[int, int, int]]:
    """How :meth:`HFExecutor.sum_logprob` covers target positions ``first .. n_ids - 1``.

    Each triple ``(start, t0, end)`` is one forward pass over ``ids[start:end]`` (at most
    ``context`` tokens) that scores the tokens at positions ``t0 .. end - 1``, each given
    all the tokens before it inside the window. A window scores at most ``max(1, context //
    2)`` tokens and always ends at its last target, so every token sees at least ``context -
    context // 2`` tokens of left context when the text is long enough (the beginning of a
    long prompt is cut, the end kept).

    :param n_ids: number of token ids; ``first``: first target position, ``1 <= first``.
    :param context: the model's context window in tokens (``>= 2``).
    """
    step = max(1, context // 2)
    out = []
    t0 = max(1, first)
    while t0 < n_ids:
        end = min(n_ids, t0 + step)
        out.append((max(0, end - context), t0, end))
        t0 = end
    return out


class _StopMatcher:
    """Cuts streamed text before the first occurrence of any stop string.

    ``feed(piece)`` returns ``(text_to_emit, stopped)``. Text that could be the beginning of a
    stop string is held back until it is disambiguated; ``flush()`` returns what is held.
    """

    def __init__(self, stops: tuple[str, ...]):
        self.stops = tuple(s for s in stops if s)
        self.held = ""

    def feed(self, piece: str) -> tuple[str, bool]:
        if not self.stops:
            return piece, False
        text = self.held + piece
        hits = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.held = ""
            return text[:min(hits)], True
        keep = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(text)), keep, -1):
                if text.endswith(s[:k]):
                    keep = k
                    break
        self.held = text[len(text) - keep:] if keep else ""
        return text[:len(text) - keep], False

    def flush(self) -> str:
        out, self.held = self.held, ""
        return out


@dataclass
class _Decode:
    """State of one generation; touched only by the worker thread while a step runs."""

    window: list[int]              # token ids in the model's context window
    all_ids: list[int]             # prompt + generated ids, for incremental detokenisation
    generator: Any                 # torch.Generator
    temperature: float
    top_p: float
    past: Any = None               # KV cache
    prefix_offset: int = 0
    read_offset: int = 0
    top_k_logprobs: int | None = None  # request.logprobs
    presence: float = 0.0
    frequency: float = 0.0
    bias: Any = None               # dense logit bias [vocab] (float32) or None
    counts: dict[int, int] | None = None  # generated token -> occurrences (penalties)
    last_logprob: TokenLogprob | None = None  # of the token chosen by the last step


class HFExecutor(Executor):
    """Serves one causal LM loaded from a local directory (``save_pretrained`` layout).

    :param model_dir: directory with ``config.json``, weights and tokenizer files; loaded with
        ``local_files_only=True`` (nothing is downloaded).
    :param model_name: name served; default the directory name.
    :param capacity: concurrent generations (each on its own worker thread); more are queued.
    :param threads: if set, ``torch.set_num_threads(threads)`` (process-wide).
    :param delay_per_token: extra seconds awaited after each token (a deliberately slow node).
    :param max_new_tokens_cap: hard cap on generated tokens per request; ``max_tokens`` above it
        is clamped (the answer then ends with ``finish_reason="length"``).
    :param device: torch device of the model (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
    :param quantize: ``"none"`` (weights as stored) or ``"int8"``: weight-only int8
        quantization with one scale per output channel of every linear/``Conv1D`` layer,
        incl. the LM head and its tied input embedding (see :func:`quantize_int8_` for exactly
        what is quantized); about 4x smaller matrices, slightly worse outputs. ``"fp8"``,
        ``"int4-g128"``, ``"int4-g32"`` (any ``"int<b>-g<N>"``): weight-only fp8 e4m3 /
        group-wise round-to-nearest integers, applied as fake quantization (the weights are
        rounded once at load, compute stays float32; formulas in :mod:`.quant`). The counts
        are in :attr:`quantization`. Without ``model_name`` a quantized executor serves
        ``"<directory>-<quantize>"`` (e.g. ``small-int4-g32``).

    Behaviour: prompt = ``request.prompt`` or, for chat, the tokenizer's chat template when it
    has one, else ``request.prompt_text()``; ``continuation`` is appended to the prompt text
    and only new text is emitted. ``temperature == 0`` is greedy; otherwise softmax sampling
    with nucleus ``top_p``, seeded by ``request.seed`` (same seed, same output on the same
    machine). Generation ends at the eos token (``"stop"``), before any ``stop`` string
    (``"stop"``), or after ``max_tokens`` tokens (``"length"``). Prompts longer than the
    context window keep their tail; long generations slide the window (the cache is
    recomputed on the last half of the window). One chunk per token whose text is complete
    (a token ending inside a UTF-8 character or a possible stop string is held back).
    Prompt cut: a prompt longer than ``trained_context - min(max_tokens, trained_context //
    2)`` tokens keeps its tail; the tokens cut are reported in ``usage.prompt_tokens_dropped``
    (and by the HTTP API as ``x_wwwserve.prompt_tokens_dropped``). ``max_tokens`` above
    ``max_new_tokens_cap`` is refused (:class:`InvalidRequest`, param ``max_tokens``).
    Usage: ``prompt_tokens`` = tokens of the prompt as given (dropped ones included),
    ``completion_tokens`` = tokens generated (including a final eos).

    Optional features (all of ``GenerationRequest.features_used()``): token-ID prompts (ids
    checked against the vocabulary), ``echo`` (the prompt text first; with ``max_tokens=0``
    only that), ``logprobs`` (one :class:`TokenLogprob` per generated token, eos included,
    and with ``echo`` per prompt token; log-probabilities are the model's raw next-token
    distribution, before temperature, penalties, bias and nucleus; echoed prompt tokens are
    scored over sliding windows exactly as :meth:`sum_logprob` does), OpenAI's
    ``presence_penalty`` / ``frequency_penalty`` (``logit[t] -= presence * (count[t] > 0) +
    frequency * count[t]`` over the tokens generated so far) and ``logit_bias`` (added to
    the logits; applied before greedy choice and sampling).

    Scoring: :meth:`score` returns the mean log-probability of an answer given a prompt
    under this model (the likelihood judge of duels, :mod:`wwwserve_p2p.judging`).

    Construction loads the model synchronously (seconds for big models); in async code use
    ``await HFExecutor.open(...)``, which loads on a worker thread.

    :raises ModelNotFound: ``model_dir`` does not exist.
    :raises ExecutorError: the directory holds no loadable model/tokenizer.
    :raises ConfigError: invalid constructor arguments.
    """

    kind = "hf"
    features = frozenset({"prompt_ids", "echo", "logprobs", "penalties", "logit_bias"})

    def __init__(self, model_dir: Path, model_name: str | None = None, capacity: int = 1,
                 threads: int | None = None, delay_per_token: float = 0.0,
                 max_new_tokens_cap: int = 512, device: str = "cpu",
                 quantize: str = "none"):
        model_dir = Path(model_dir)
        scheme = parse_quantize(quantize)  # ConfigError naming the accepted values
        # a quantized copy says so in its default model id (an explicit model_name is kept)
        name = model_name or (model_dir.name if quantize == "none" else f"{model_dir.name}-{quantize}")
        if delay_per_token < 0:
            raise ConfigError(f"delay_per_token must be >= 0, got {delay_per_token}")
        if int(max_new_tokens_cap) < 1:
            raise ConfigError(f"max_new_tokens_cap must be >= 1, got {max_new_tokens_cap}")
        if threads is not None and int(threads) < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        self._gate = SlotGate(capacity)
        if not model_dir.is_dir():
            err = ModelNotFound(name)
            err.args = (f"model {name!r}: directory {model_dir} does not exist",)
            raise err

        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads is not None:
            torch.set_num_threads(int(threads))
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True)
            model = model.to(device)
        except Exception as exc:  # transformers raises OSError, ValueError, KeyError, ...
            raise ExecutorError(f"cannot load model {name!r} from {model_dir}: {exc}") from exc
        model.eval()
        #: ``{"mode": ...}`` plus the counts returned by :func:`quantize_int8_` (int8) or
        #: :func:`~.quant.fake_quantize_` (fp8, int<b>-g<N>).
        self.quantization: dict[str, Any] = {"mode": quantize}
        if quantize != "none":  # GET /status shows "executor": "hf-int4-g32" etc.
            self.kind = f"hf-{quantize}"
        if quantize == "int8":
            with torch.no_grad():
                self.quantization.update(quantize_int8_(model))
        elif scheme.fake:  # fp8 / int<b>-g<N>: weights rounded once, compute stays float
            with torch.no_grad():
                self.quantization.update(fake_quantize_(model, scheme))
        self.device = model.device
        self._torch = torch
        self._model = model
        self._tokenizer = tokenizer
        self._tok_lock = threading.Lock()  # fast tokenizers are not safe for concurrent use
        self._name = name
        self.model_dir = model_dir
        self.delay_per_token = float(delay_per_token)
        self.max_new_tokens_cap = int(max_new_tokens_cap)
        cfg = model.config
        ctx = (getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)
               or getattr(tokenizer, "model_max_length", None))
        self.context_length = int(ctx) if ctx and int(ctx) < 10_000_000 else 2048
        #: Longest sequence the model was trained on: the ``block`` recorded by
        #: :mod:`~wwwserve_p2p.executors.training` in the model directory, else
        #: :attr:`context_length`. Scoring windows never exceed it (position embeddings beyond
        #: it were never trained), and generation keeps its window within it too.
        self.trained_context = min(self.context_length, _trained_block(model_dir)
                                   or self.context_length)
        eos = getattr(cfg, "eos_token_id", None)
        if eos is None:
            eos = tokenizer.eos_token_id
        self._eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        self._closed = False

    @classmethod
    async def open(cls, model_dir: Path, **kwargs: Any) -> HFExecutor:
        """Construct on a worker thread (loading does not block the event loop)."""
        return await trio.to_thread.run_sync(lambda: cls(model_dir, **kwargs))

    def models(self) -> tuple[str, ...]:
        return (self._name,)

    def load(self) -> LoadSnapshot:
        return self._gate.snapshot()

    @property
    def vocab_size(self) -> int:
        """Rows of the model's output distribution (token ids are ``0 .. vocab_size - 1``)."""
        return int(getattr(self._model.config, "vocab_size", 0) or len(self._tokenizer))

    def unsupported(self, request: GenerationRequest) -> InvalidRequest | None:
        """The base checks plus: ``max_tokens`` above :attr:`max_new_tokens_cap`, token ids of
        the prompt or of ``logit_bias`` outside the vocabulary."""
        problem = super().unsupported(request)
        if problem is not None:
            return problem
        if request.max_tokens > self.max_new_tokens_cap:
            return invalid(f"max_tokens={request.max_tokens} exceeds this executor's limit of "
                           f"{self.max_new_tokens_cap} generated tokens for {self._name!r}",
                           "max_tokens")
        vocab = self.vocab_size
        if any(not 0 <= t < vocab for t in request.prompt_ids):
            return invalid(f"prompt token ids must be in [0, {vocab}) for {self._name!r}", "prompt")
        if any(not 0 <= t < vocab for t, _ in request.logit_bias):
            return invalid(f"logit_bias token ids must be in [0, {vocab}) for {self._name!r}",
                           "logit_bias")
        return None

    async def aclose(self) -> None:
        # Weights are freed once the running generations (which hold references) finish.
        self._closed = True

    # -- worker-thread steps ------------------------------------------------------------------

    def _encode(self, request: GenerationRequest, continuation: str | None = None) -> list[int]:
        """Token ids of the prompt of ``request`` (+ its continuation, default
        ``request.continuation``), never empty."""
        tok = self._tokenizer
        cont = request.continuation if continuation is None else continuation
        request = replace(request, continuation=cont)
        with self._tok_lock:
            if request.prompt_ids:
                ids = list(request.prompt_ids)
                if cont:
                    ids += tok(cont, add_special_tokens=False)["input_ids"]
            elif request.is_chat and getattr(tok, "chat_template", None):
                text = tok.apply_chat_template(
                    [{"role": m.role, "content": m.content} for m in request.messages],
                    tokenize=False, add_generation_prompt=True)
                ids = tok(text + request.continuation, add_special_tokens=False)["input_ids"]
            else:
                ids = tok(request.prompt_text() + request.continuation)["input_ids"]
        return self._non_empty(list(ids))

    def _non_empty(self, ids: list[int]) -> list[int]:
        tok = self._tokenizer
        if not ids:
            start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
            ids = [start if start is not None else 0]
        return list(ids)

    def _prepare(self, request: GenerationRequest, max_new: int,
                 ids: list[int]) -> tuple[_Decode, int]:
        """The decoding state for prompt ``ids`` and how many prompt tokens were cut."""
        torch = self._torch
        # generation stays within the positions the model was trained on (trained_context)
        reserve = min(max(1, max_new), self.trained_context // 2)
        max_prompt = max(1, self.trained_context - reserve)
        dropped = max(0, len(ids) - max_prompt)
        ids = ids[dropped:]
        seed = request.seed if request.seed is not None else int.from_bytes(os.urandom(8), "little")
        gen = torch.Generator().manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
        bias = None
        if request.logit_bias:
            bias = torch.zeros(self.vocab_size, dtype=torch.float32)
            for t, b in request.logit_bias:
                bias[t] += float(b)
        penalised = bool(request.presence_penalty or request.frequency_penalty)
        return _Decode(window=list(ids), all_ids=list(ids), generator=gen,
                       temperature=request.temperature, top_p=request.top_p,
                       prefix_offset=max(0, len(ids) - 6), read_offset=len(ids),
                       top_k_logprobs=request.logprobs, presence=request.presence_penalty,
                       frequency=request.frequency_penalty, bias=bias,
                       counts={} if penalised else None), dropped

    def _token_text(self, token: int) -> str:
        with self._tok_lock:
            return self._tokenizer.decode([token], skip_special_tokens=False)

    def _logprob_entry(self, logp: Any, token: int, k: int) -> TokenLogprob:
        """The :class:`TokenLogprob` of ``token`` from a log-softmax row ``logp`` [vocab]."""
        top: tuple[tuple[str, float], ...] = ()
        if k > 0:
            values, order = self._torch.topk(logp, min(k, int(logp.shape[-1])))
            top = tuple((self._token_text(int(i)), float(v)) for v, i in zip(values, order))
        return TokenLogprob(self._token_text(token), float(logp[token]), top)

    def prompt_logprobs(self, ids: list[int], k: int) -> list[TokenLogprob]:
        """One :class:`TokenLogprob` per token of ``ids`` (blocking, worker thread): the first
        has logprob None, every other its log-probability given the tokens before it, over
        the windows of :func:`window_plan` (the same as :meth:`sum_logprob`), with its ``k``
        most likely alternatives."""
        torch = self._torch
        out = [TokenLogprob(self._token_text(ids[0]), None, ())] if ids else []
        with torch.inference_mode():
            for start, t0, end in window_plan(len(ids), 1, self.trained_context):
                window = torch.tensor([ids[start:end]], dtype=torch.long, device=self.device)
                logits = self._model(input_ids=window, use_cache=False).logits[0].float()
                logp = torch.log_softmax(logits[t0 - start - 1:end - start - 1], dim=-1).cpu()
                for j, pos in enumerate(range(t0, end)):
                    out.append(self._logprob_entry(logp[j], ids[pos], k))
        return out

    def _step(self, st: _Decode) -> tuple[int, str]:
        """Run one forward pass, pick the next token; returns (token id, newly complete text)."""
        torch = self._torch
        with torch.inference_mode():
            if st.past is None:
                inp = torch.tensor([st.window], dtype=torch.long, device=self.device)
            else:
                inp = torch.tensor([st.window[-1:]], dtype=torch.long, device=self.device)
            out = self._model(input_ids=inp, past_key_values=st.past, use_cache=True)
            st.past = out.past_key_values
            logits = out.logits[0, -1].float().cpu()
            raw = logits
            if st.bias is not None:
                logits = logits + st.bias
            if st.counts:
                idx = torch.tensor(list(st.counts), dtype=torch.long)
                cnt = torch.tensor(list(st.counts.values()), dtype=torch.float32)
                logits = logits.clone()
                logits[idx] -= st.presence + st.frequency * cnt
            if st.temperature <= 0.0:
                token = int(torch.argmax(logits))
            else:
                probs = torch.softmax(logits / st.temperature, dim=-1)
                if st.top_p < 1.0:
                    sorted_p, order = torch.sort(probs, descending=True)
                    cum = torch.cumsum(sorted_p, dim=-1)
                    sorted_p[(cum - sorted_p) >= st.top_p] = 0.0
                    probs = torch.zeros_like(probs).scatter_(0, order, sorted_p)
                token = int(torch.multinomial(probs, 1, generator=st.generator))
            if st.top_k_logprobs is not None:
                st.last_logprob = self._logprob_entry(torch.log_softmax(raw, dim=-1), token,
                                                      st.top_k_logprobs)
        if st.counts is not None:
            st.counts[token] = st.counts.get(token, 0) + 1
        st.window.append(token)
        if len(st.window) > self.trained_context:  # slide: recompute on the last half
            st.window = st.window[-(self.trained_context // 2):]
            st.past = None
        if token in self._eos_ids:
            return token, ""
        st.all_ids.append(token)
        return token, self._detok(st)

    def _detok(self, st: _Decode) -> str:
        # Incremental detokenisation (as in TGI): decode a few ids of left context so that
        # tokenizers that drop leading spaces (sentencepiece) render correctly.
        with self._tok_lock:
            prefix = self._tokenizer.decode(st.all_ids[st.prefix_offset:st.read_offset],
                                            skip_special_tokens=True)
            text = self._tokenizer.decode(st.all_ids[st.prefix_offset:], skip_special_tokens=True)
        if len(text) > len(prefix) and not text.endswith("\ufffd"):
            st.prefix_offset, st.read_offset = st.read_offset, len(st.all_ids)
            return text[len(prefix):]
        return ""

    # -- scoring ------------------------------------------------------------------------------

    def sum_logprob(self, ids: list[int], first: int) -> tuple[float, int]:
        """Sum of the natural-log probabilities of ``ids[first:]``, each given the ids before it.

        Blocking (forward passes on the calling thread): call it from a worker thread, as
        :meth:`score` does. Texts longer than the context window are covered by
        :func:`window_plan` (the beginning is cut; every token keeps at least half a window
        of left context). Windows are at most :attr:`trained_context` tokens long.

        :param ids: token ids; ``first``: index of the first scored token (``>= 1``: the first
            token of a text has no prediction).
        :returns: ``(sum of log-probabilities in nats, number of tokens scored)``; ``(0.0, 0)``
            when nothing is scored.
        """
        torch = self._torch
        total, count = 0.0, 0
        with torch.inference_mode():
            for start, t0, end in window_plan(len(ids), first, self.trained_context):
                window = torch.tensor([ids[start:end]], dtype=torch.long, device=self.device)
                logits = self._model(input_ids=window, use_cache=False).logits[0].float()
                # logits at window position j predict the token at absolute position start+j+1
                pred = logits[t0 - start - 1:end - start - 1]
                logp = torch.log_softmax(pred, dim=-1)
                targets = window[0, t0 - start:end - start].unsqueeze(1)
                total += float(logp.gather(1, targets).sum())
                count += end - t0
        return total, count

    def _prompt_ids(self, prompt: str | GenerationRequest) -> list[int]:
        if isinstance(prompt, GenerationRequest):
            return self._encode(prompt)
        with self._tok_lock:
            ids = self._tokenizer(prompt)["input_ids"]
        return self._non_empty(list(ids))

    def _score_sync(self, prompt: str | GenerationRequest, answer: str) -> tuple[float, int]:
        prompt_ids = self._prompt_ids(prompt)
        with self._tok_lock:
            answer_ids = list(self._tokenizer(answer, add_special_tokens=False)["input_ids"])
        if not answer_ids:
            return -math.inf, 0
        total, n = self.sum_logprob(prompt_ids + answer_ids, len(prompt_ids))
        return total / n, n

    async def score(self, prompt: str | GenerationRequest, answer: str) -> tuple[float, int]:
        """Mean log-probability per token of ``answer`` following ``prompt``, under this model.

        The prompt is encoded exactly as :meth:`generate` encodes it: a ``str`` as the
        completion prompt ``GenerationRequest(prompt=prompt)`` (plain text, no chat template),
        a :class:`GenerationRequest` through its chat template / ``prompt_text()`` plus its
        ``continuation``. The answer is tokenized on its own (no special tokens) and appended
        (answer text is not merged with the prompt's last token). When prompt + answer exceed
        the window (:attr:`trained_context` tokens) the end of the prompt is kept; an answer
        longer than half the window is scored in several windows (:func:`window_plan`).

        Runs on a worker thread and occupies one of the executor's slots while it runs (it
        counts in :meth:`load` like a generation).

        :returns: ``(mean log-probability in nats per token (<= 0), number of answer
            tokens)``; ``(-inf, 0)`` for an answer of no tokens (e.g. ``""``).
        :raises ExecutorError: the executor is closed.
        """
        if self._closed:
            raise ExecutorError(f"executor for {self._name!r} is closed")
        if not answer:
            return -math.inf, 0
        async with self._gate.slot():
            return await trio.to_thread.run_sync(self._score_sync, prompt, answer)

    # -- generation ---------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        self.check_request(request)
        if self._closed:
            raise ExecutorError(f"executor for {self._name!r} is closed")
        max_new = request.max_tokens
        stops = _StopMatcher(request.stop)
        n_generated = 0
        k = request.logprobs
        lps: list[TokenLogprob] = []  # logprobs of tokens not yet handed out in a chunk

        def take() -> tuple[TokenLogprob, ...]:
            out = tuple(lps)
            lps.clear()
            return out

        async with self._gate.slot():
            echo_text = self._echo_text(request) if request.echo else ""
            do_echo, continuation = echo_plan(request, echo_text)
            ids = await trio.to_thread.run_sync(self._encode, request, continuation)
            n_prompt = len(ids)
            if do_echo:
                if k is not None:
                    prompt_ids = ids if not continuation else await trio.to_thread.run_sync(
                        self._encode, request, "")
                    lps += await trio.to_thread.run_sync(self.prompt_logprobs, prompt_ids, k)
            if max_new == 0:  # only the echo (or nothing, if it was already delivered)
                final = GenerationChunk(echo_text if do_echo else "", FINISH_LENGTH,
                                        Usage(prompt_tokens=n_prompt), take())
            else:
                if do_echo:
                    yield GenerationChunk(echo_text, logprobs=take())
                st, dropped = await trio.to_thread.run_sync(self._prepare, request, max_new, ids)
                while True:
                    token, piece = await trio.to_thread.run_sync(self._step, st)
                    n_generated += 1
                    if st.last_logprob is not None:
                        lps.append(st.last_logprob)
                    if token in self._eos_ids:
                        finish, tail = FINISH_STOP, stops.flush()
                        break
                    text, stopped = stops.feed(piece)
                    if stopped:
                        finish, tail = FINISH_STOP, text
                        break
                    if n_generated >= max_new:
                        finish, tail = FINISH_LENGTH, text + stops.flush()
                        break
                    if text:
                        yield GenerationChunk(text, logprobs=take())
                    if self.delay_per_token > 0:
                        await trio.sleep(self.delay_per_token)
                if self.delay_per_token > 0:
                    await trio.sleep(self.delay_per_token)
                final = GenerationChunk(tail, finish, Usage(prompt_tokens=n_prompt,
                                                            completion_tokens=n_generated,
                                                            prompt_tokens_dropped=dropped),
                                        take())
        # The slot is released before the final chunk (see EchoExecutor.generate).
        yield final

    def _echo_text(self, request: GenerationRequest) -> str:
        """The text an ``echo`` answer starts with: the prompt as given (a token-ID prompt
        decoded, special tokens shown)."""
        if request.prompt_ids:
            with self._tok_lock:
                return self._tokenizer.decode(list(request.prompt_ids), skip_special_tokens=False)
        return request.prompt_text()
