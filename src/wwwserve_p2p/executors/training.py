"""Train small GPT-2-style causal language models on a text corpus, on CPU.

Model weights cannot be downloaded in this project, so tests, examples and benchmarks build
their own: a byte-level BPE tokenizer (``tokenizers``) and a tiny GPT-2 (``transformers``)
trained for a few thousand steps on e.g. ``tinyshakespeare/input.txt``. The result is saved
with ``save_pretrained`` so the *real* loading code
(``AutoTokenizer.from_pretrained(dir)`` + ``AutoModelForCausalLM.from_pretrained(dir)``,
as used by :class:`~wwwserve_p2p.executors.hf.HFExecutor`) loads it back.

Public API:

- :data:`SIZES`: the model sizes (``"tiny"``, ``"small"``) and their default training steps.
- :func:`train_tokenizer`: byte-level BPE tokenizer trained on a corpus, saved to a directory.
- :func:`train_model`: train one size into ``out_dir``; deterministic given ``seed``.
- :func:`ensure_models`: cached training under ``data_dir/models/<size>/``.
- :data:`CAPACITIES`: three sizes of increasing quality (``"nano"``, ``"tiny"``, ``"small"``).
- :func:`held_out_ids`, :func:`evaluate_model`: mean log-probability / perplexity of a model
  on the validation split held out from training.

A finished model directory contains a marker file (:data:`MARKER`, JSON training metadata)
written *last*; a directory without a marker matching the requested configuration is
(re)trained. torch/transformers/tokenizers are imported inside the functions, so importing
this module is cheap.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: Name of the metadata file written last into a finished model directory.
MARKER = "wwwserve_training.json"
#: Version of the training recipe; bump to invalidate caches when the recipe changes.
RECIPE_VERSION = 1
#: Special token used as eos, bos and pad.
EOS_TOKEN = "<|endoftext|>"
#: Default corpus, relative to the shared data directory.
DEFAULT_CORPUS = Path("tinyshakespeare") / "input.txt"


@dataclass(frozen=True)
class ModelSize:
    """Architecture and training defaults of one model size.

    ``n_layer``/``n_embd``/``n_head``: GPT-2 shape; ``n_positions``: context window in tokens;
    ``block``/``batch``: training sequence length and batch size; ``steps``: default number
    of optimizer steps; ``lr``: peak learning rate (linear warm-up then cosine decay).
    """

    n_layer: int
    n_embd: int
    n_head: int
    n_positions: int = 256
    block: int = 128
    batch: int = 16
    steps: int = 600
    lr: float = 2e-3


#: Model sizes. ``"tiny"`` and ``"small"`` together train in about 3 minutes on 2 CPU cores;
#: ``"nano"`` (one narrow layer, few steps) in seconds. Held-out quality is ordered
#: nano < tiny < small (see :func:`evaluate_model` and :data:`CAPACITIES`).
SIZES: dict[str, ModelSize] = {
    "nano": ModelSize(n_layer=1, n_embd=64, n_head=2, steps=500, lr=3e-3),
    "tiny": ModelSize(n_layer=2, n_embd=128, n_head=4, steps=400, lr=3e-3),
    "small": ModelSize(n_layer=4, n_embd=192, n_head=6, steps=650, lr=2e-3),
}

#: Three model capacities, weakest first: the local models of the incentive experiments
#: (e.g. ``ensure_models(data_dir, sizes=CAPACITIES)``).
CAPACITIES: tuple[str, ...] = ("nano", "tiny", "small")

#: Vocabulary size of the byte-level BPE tokenizer (incl. 256 byte symbols and the eos token).
VOCAB_SIZE = 1536


#: The tokenized corpus's last ``1 / HELD_OUT_DIVISOR`` (5 %) is held out from training: the
#: validation split (at least one training block + 1 tokens).
HELD_OUT_DIVISOR = 20


def _held_out_count(n_tokens: int, block: int) -> int:
    return max(block + 1, n_tokens // HELD_OUT_DIVISOR)


def _corpus_fingerprint(corpus: Path) -> dict[str, Any]:
    st = corpus.stat()
    return {"name": corpus.name, "bytes": st.st_size}


def train_tokenizer(corpus: Path, out_dir: Path, vocab_size: int = VOCAB_SIZE) -> Path:
    """Train a byte-level BPE tokenizer on ``corpus`` and save it into ``out_dir``.

    The tokenizer is wrapped as a ``PreTrainedTokenizerFast`` with :data:`EOS_TOKEN` as eos,
    bos and pad token, and saved with ``save_pretrained`` (loadable by ``AutoTokenizer``).
    Deterministic for a given corpus and ``vocab_size``.

    :returns: ``out_dir``.
    :raises ConfigError: the corpus does not exist.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = Path(corpus)
    if not corpus.is_file():
        raise ConfigError(f"training corpus not found: {corpus}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([str(corpus)], trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS_TOKEN, bos_token=EOS_TOKEN, pad_token=EOS_TOKEN,
        unk_token=EOS_TOKEN, clean_up_tokenization_spaces=False)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return out_dir


def _read_marker(model_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(model_dir) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _progress(total: int, desc: str, enabled: bool):
    """A progress bar with ``update(n)``, ``set_postfix_str(s)`` and ``close()``."""

    class _Null:
        def update(self, n: int = 1) -> None: ...
        def set_postfix_str(self, s: str) -> None: ...
        def close(self) -> None: ...

    if not enabled:
        return _Null()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dev dependency
        class _Print(_Null):
            def __init__(self) -> None:
                self.n = 0
                self.post = ""

            def update(self, n: int = 1) -> None:
                self.n += n
                if self.n % max(1, total // 10) == 0 or self.n == total:
                    print(f"{desc}: {self.n}/{total} {self.post}", flush=True)

            def set_postfix_str(self, s: str) -> None:
                self.post = s
        return _Print()
    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True)


def _training_config(corpus: Path, size: str, steps: int, seed: int, vocab_size: int) -> dict:
    return {"recipe": RECIPE_VERSION, "size": size, "arch": asdict(SIZES[size]), "steps": steps,
            "seed": seed, "vocab_size": vocab_size, "corpus": _corpus_fingerprint(corpus)}


def train_model(corpus: Path, out_dir: Path, size: str, steps: int | None = None, seed: int = 0,
                progress: bool = True, *, tokenizer_dir: Path | None = None,
                vocab_size: int = VOCAB_SIZE) -> Path:
    """Train a GPT-2-style causal LM of ``size`` on ``corpus`` and save it into ``out_dir``.

    :param corpus: a UTF-8 text file (e.g. tinyshakespeare ``input.txt``).
    :param out_dir: created if needed; receives ``config.json``, weights (safetensors), the
        tokenizer files and, last, the :data:`MARKER` metadata file (size, steps, seed, final
        train/validation loss in nats per token, seconds).
    :param size: a key of :data:`SIZES`.
    :param steps: optimizer steps; default ``SIZES[size].steps``. ``steps >= 1``.
    :param seed: all randomness (init, batches) derives from it: same inputs, same weights
        (on the same machine and thread count).
    :param progress: show a tqdm progress bar with the running loss.
    :param tokenizer_dir: a tokenizer saved by :func:`train_tokenizer` to reuse; by default a
        fresh one is trained on ``corpus``.
    :returns: ``out_dir``.
    :raises ConfigError: unknown size, ``steps < 1`` or missing corpus.
    """
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    if size not in SIZES:
        raise ConfigError(f"unknown model size {size!r}; known: {', '.join(SIZES)}")
    spec = SIZES[size]
    steps = spec.steps if steps is None else int(steps)
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    corpus = Path(corpus)
    if not corpus.is_file():
        raise ConfigError(f"training corpus not found: {corpus}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER).unlink(missing_ok=True)
    t0 = time.monotonic()

    if tokenizer_dir is None:
        tokenizer_dir = train_tokenizer(corpus, out_dir, vocab_size)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    text = corpus.read_text(encoding="utf-8")
    data = torch.tensor(tokenizer(text)["input_ids"], dtype=torch.long)
    n_val = _held_out_count(len(data), spec.block)
    if len(data) < n_val + spec.block + 2:
        raise ConfigError(f"corpus {corpus} is too small to train on ({len(data)} tokens)")
    train_data, val_data = data[:-n_val], data[-n_val:]

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=spec.n_positions, n_embd=spec.n_embd,
        n_layer=spec.n_layer, n_head=spec.n_head, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id)
    model = GPT2LMHeadModel(config)
    # transformers derives the loss from the class name, which for GPT2LMHeadModel matches no
    # known loss and logs "loss_type=None ... unrecognized" on the first step; name it instead
    model.loss_type = "ForCausalLM"
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, betas=(0.9, 0.98), weight_decay=0.05)
    warmup = max(1, steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return spec.lr * (step + 1) / warmup
        frac = (step - warmup) / max(1, steps - warmup)
        return spec.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    gen = torch.Generator().manual_seed(seed)
    offsets = torch.arange(spec.block + 1)

    def batch(source: torch.Tensor, n: int) -> torch.Tensor:
        starts = torch.randint(0, len(source) - spec.block - 1, (n, 1), generator=gen)
        return source[starts + offsets]

    bar = _progress(steps, f"train {size}", progress)
    ema = None
    try:
        for step in range(steps):
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            xy = batch(train_data, spec.batch)
            loss = model(input_ids=xy, labels=xy).loss  # the model shifts labels itself
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            value = float(loss.detach())
            ema = value if ema is None else 0.95 * ema + 0.05 * value
            bar.update(1)
            bar.set_postfix_str(f"loss {ema:.3f}")
    finally:
        bar.close()

    model.eval()
    with torch.no_grad():
        vgen_state = gen.get_state()
        gen.manual_seed(seed + 1)
        xy = batch(val_data, 32)
        val_loss = float(model(input_ids=xy, labels=xy).loss)
        gen.set_state(vgen_state)

    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    meta = _training_config(corpus, size, steps, seed, vocab_size)
    meta.update(train_loss=round(ema or 0.0, 4), val_loss=round(val_loss, 4),
                seconds=round(time.monotonic() - t0, 2),
                parameters=sum(p.numel() for p in model.parameters()),
                torch_threads=torch.get_num_threads())
    tmp = out_dir / (MARKER + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
    os.replace(tmp, out_dir / MARKER)
    return out_dir


def model_info(model_dir: Path) -> dict[str, Any] | None:
    """The training metadata of a finished model directory, or None if it has no marker."""
    return _read_marker(Path(model_dir))


def ensure_models(data_dir: Path, sizes: tuple[str, ...] = ("tiny", "small"),
                  corpus: Path | None = None, steps: int | None = None,
                  progress: bool = True, seed: int = 0) -> dict[str, Path]:
    """Return ``{size: model_dir}``, training the models that are not cached yet.

    Models live in ``data_dir/models/<size>/``; the tokenizer, trained once per data dir, in
    ``data_dir/models/_tokenizer/``. A cached model is reused when its marker file records
    the same recipe, size, steps, seed, vocabulary and corpus (name and byte size); otherwise
    (no marker: missing or half-written directory, or different settings) it is retrained.

    :param corpus: default ``data_dir/tinyshakespeare/input.txt``.
    :param steps: as in :func:`train_model` (``None``: each size's default).
    :raises ConfigError: unknown size or missing corpus.
    """
    data_dir = Path(data_dir)
    corpus = Path(corpus) if corpus is not None else data_dir / DEFAULT_CORPUS
    for size in sizes:
        if size not in SIZES:
            raise ConfigError(f"unknown model size {size!r}; known: {', '.join(SIZES)}")
    if not corpus.is_file():
        raise ConfigError(f"training corpus not found: {corpus}")
    root = data_dir / "models"
    out: dict[str, Path] = {}
    tok_dir = root / "_tokenizer"
    tok_marker = tok_dir / MARKER
    tok_meta = {"recipe": RECIPE_VERSION, "vocab_size": VOCAB_SIZE,
                "corpus": _corpus_fingerprint(corpus)}
    for size in sizes:
        model_dir = root / size
        n_steps = SIZES[size].steps if steps is None else int(steps)
        want = _training_config(corpus, size, n_steps, seed, VOCAB_SIZE)
        have = _read_marker(model_dir)
        if have is not None and all(have.get(k) == v for k, v in want.items()):
            out[size] = model_dir
            continue
        if _read_marker(tok_dir) != tok_meta:
            shutil.rmtree(tok_dir, ignore_errors=True)
            train_tokenizer(corpus, tok_dir, VOCAB_SIZE)
            tok_marker.write_text(json.dumps(tok_meta, sort_keys=True))
        shutil.rmtree(model_dir, ignore_errors=True)
        out[size] = train_model(corpus, model_dir, size, n_steps, seed, progress,
                                tokenizer_dir=tok_dir)
    return out


@dataclass(frozen=True)
class HeldOutScore:
    """Quality of a model on held-out text.

    ``mean_logprob``: mean natural-log probability per token (nats/token, <= 0; higher is
    better); ``perplexity`` = ``exp(-mean_logprob)``; ``tokens``: tokens scored;
    ``seconds``: wall time of the scoring; ``quantize``: the executor option used.
    """

    mean_logprob: float
    perplexity: float
    tokens: int
    seconds: float
    quantize: str = "none"


def held_out_ids(tokenizer: Any, corpus: Path, block: int = 128) -> list[int]:
    """Token ids of the validation split of ``corpus`` that :func:`train_model` holds out.

    The whole corpus is tokenized and its last 5 % (:data:`HELD_OUT_DIVISOR`; at least
    ``block + 1`` tokens) returned: exactly the tokens no model trained by :func:`train_model`
    with this tokenizer saw (all sizes use ``block=128``).

    :raises ConfigError: the corpus does not exist.
    """
    corpus = Path(corpus)
    if not corpus.is_file():
        raise ConfigError(f"corpus not found: {corpus}")
    ids = tokenizer(corpus.read_text(encoding="utf-8"))["input_ids"]
    return list(ids[-_held_out_count(len(ids), block):])


def evaluate_model(model_dir: Path, corpus: Path, *, max_tokens: int | None = None,
                   quantize: str = "none", threads: int | None = None) -> HeldOutScore:
    """Mean log-probability per token of a model on the held-out split of ``corpus``.

    Loads ``model_dir`` through :class:`~wwwserve_p2p.executors.hf.HFExecutor` (so
    ``quantize="int8"`` measures the int8 copy) and scores the first ``max_tokens`` tokens
    (all by default) of :func:`held_out_ids` with
    :meth:`~wwwserve_p2p.executors.hf.HFExecutor.sum_logprob`: sliding windows of the model's
    context, every token given at least half a window of left context (except the first
    ones). Values in nats/token are comparable across models that share a tokenizer (as all
    models of :func:`ensure_models` do). Blocking: seconds on CPU for the sizes here.

    :returns: a :class:`HeldOutScore`.
    :raises ConfigError: missing corpus or ``max_tokens < 2``.
    :raises ModelNotFound, ExecutorError: as :class:`HFExecutor` for a bad ``model_dir``.
    """
    from .hf import HFExecutor

    if max_tokens is not None and int(max_tokens) < 2:
        raise ConfigError(f"max_tokens must be >= 2, got {max_tokens}")
    ex = HFExecutor(Path(model_dir), quantize=quantize, threads=threads)  # type: ignore[arg-type]
    ids = held_out_ids(ex._tokenizer, Path(corpus))
    if max_tokens is not None:
        ids = ids[:int(max_tokens)]
    t0 = time.monotonic()
    total, n = ex.sum_logprob(ids, 1)
    mean = total / n
    return HeldOutScore(mean_logprob=mean, perplexity=math.exp(-mean), tokens=n,
                        seconds=time.monotonic() - t0, quantize=quantize)
