"""HFExecutor: a causal LM from a local directory, run with transformers + torch on CPU/GPU.

Decoding is our own loop with a KV cache. Every step (prefill + first token, then one token
per step) runs on a worker thread through ``trio.to_thread.run_sync``; the event loop only
does string bookkeeping. Closing the generator or cancelling its consumer therefore stops
generation after at most the step in progress (one forward pass) and frees the slot.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from ..core.types import (FINISH_LENGTH, FINISH_STOP, GenerationChunk, GenerationRequest,
                          LoadSnapshot, Usage)
from ..errors import ConfigError, ExecutorError, ModelNotFound
from .base import Executor
from .echo import SlotGate


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

    Behaviour: prompt = ``request.prompt`` or, for chat, the tokenizer's chat template when it
    has one, else ``request.prompt_text()``; ``continuation`` is appended to the prompt text
    and only new text is emitted. ``temperature == 0`` is greedy; otherwise softmax sampling
    with nucleus ``top_p``, seeded by ``request.seed`` (same seed, same output on the same
    machine). Generation ends at the eos token (``"stop"``), before any ``stop`` string
    (``"stop"``), or after ``max_tokens`` tokens (``"length"``). Prompts longer than the
    context window keep their tail; long generations slide the window (the cache is
    recomputed on the last half of the window). One chunk per token whose text is complete
    (a token ending inside a UTF-8 character or a possible stop string is held back).
    Usage: ``prompt_tokens`` = tokens fed as prompt (after truncation), ``completion_tokens``
    = tokens generated (including a final eos).

    Construction loads the model synchronously (seconds for big models); in async code use
    ``await HFExecutor.open(...)``, which loads on a worker thread.

    :raises ModelNotFound: ``model_dir`` does not exist.
    :raises ExecutorError: the directory holds no loadable model/tokenizer.
    :raises ConfigError: invalid constructor arguments.
    """

    kind = "hf"

    def __init__(self, model_dir: Path, model_name: str | None = None, capacity: int = 1,
                 threads: int | None = None, delay_per_token: float = 0.0,
                 max_new_tokens_cap: int = 512, device: str = "cpu"):
        model_dir = Path(model_dir)
        name = model_name or model_dir.name
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

    async def aclose(self) -> None:
        # Weights are freed once the running generations (which hold references) finish.
        self._closed = True

    # -- worker-thread steps ------------------------------------------------------------------

    def _encode(self, request: GenerationRequest) -> list[int]:
        tok = self._tokenizer
        with self._tok_lock:
            if request.is_chat and getattr(tok, "chat_template", None):
                text = tok.apply_chat_template(
                    [{"role": m.role, "content": m.content} for m in request.messages],
                    tokenize=False, add_generation_prompt=True)
                ids = tok(text + request.continuation, add_special_tokens=False)["input_ids"]
            else:
                ids = tok(request.prompt_text() + request.continuation)["input_ids"]
        if not ids:
            start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
            ids = [start if start is not None else 0]
        return list(ids)

    def _prepare(self, request: GenerationRequest, max_new: int) -> _Decode:
        torch = self._torch
        ids = self._encode(request)
        reserve = min(max_new, self.context_length // 2)
        max_prompt = max(1, self.context_length - reserve)
        if len(ids) > max_prompt:
            ids = ids[-max_prompt:]
        seed = request.seed if request.seed is not None else int.from_bytes(os.urandom(8), "little")
        gen = torch.Generator().manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
        return _Decode(window=list(ids), all_ids=list(ids), generator=gen,
                       temperature=request.temperature, top_p=request.top_p,
                       prefix_offset=max(0, len(ids) - 6), read_offset=len(ids))

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
        st.window.append(token)
        if len(st.window) > self.context_length:  # slide: recompute on the last half
            st.window = st.window[-(self.context_length // 2):]
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

    # -- generation ---------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        self.check_request(request)
        if self._closed:
            raise ExecutorError(f"executor for {self._name!r} is closed")
        max_new = min(request.max_tokens, self.max_new_tokens_cap)
        stops = _StopMatcher(request.stop)
        n_generated = 0
        async with self._gate.slot():
            st = await trio.to_thread.run_sync(self._prepare, request, max_new)
            n_prompt = len(st.window)
            while True:
                token, piece = await trio.to_thread.run_sync(self._step, st)
                n_generated += 1
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
                    yield GenerationChunk(text)
                if self.delay_per_token > 0:
                    await trio.sleep(self.delay_per_token)
            if self.delay_per_token > 0:
                await trio.sleep(self.delay_per_token)
        # The slot is released before the final chunk (see EchoExecutor.generate).
        yield GenerationChunk(tail, finish, Usage(prompt_tokens=n_prompt,
                                                  completion_tokens=n_generated))
