"""Training: caching of ensure_models, determinism, and loading through AutoModel."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from wwwserve_p2p.errors import ConfigError  # noqa: E402
from wwwserve_p2p.executors import training  # noqa: E402


@pytest.fixture
def data_dir(tmp_path, small_corpus):
    (tmp_path / "tinyshakespeare").mkdir()
    shutil.copy(small_corpus, tmp_path / "tinyshakespeare" / "input.txt")
    return tmp_path


@pytest.fixture
def count_training(monkeypatch):
    calls = []
    real = training.train_model

    def counting(corpus, out_dir, size, *args, **kwargs):
        calls.append(size)
        return real(corpus, out_dir, size, *args, **kwargs)

    monkeypatch.setattr(training, "train_model", counting)
    return calls


def test_ensure_models_caches_and_retrains_without_marker(data_dir, count_training):
    dirs = training.ensure_models(data_dir, sizes=("tiny",), steps=2, progress=False)
    assert dirs == {"tiny": data_dir / "models" / "tiny"}
    assert count_training == ["tiny"]
    meta = json.loads((dirs["tiny"] / training.MARKER).read_text())
    assert meta["size"] == "tiny" and meta["steps"] == 2 and meta["train_loss"] > 0

    # cached: not retrained
    assert training.ensure_models(data_dir, sizes=("tiny",), steps=2, progress=False) == dirs
    assert count_training == ["tiny"]

    # half-written directory (no marker): retrained
    (dirs["tiny"] / training.MARKER).unlink()
    training.ensure_models(data_dir, sizes=("tiny",), steps=2, progress=False)
    assert count_training == ["tiny", "tiny"]
    assert (dirs["tiny"] / training.MARKER).is_file()

    # different settings: retrained, tokenizer reused
    tok_mtime = (data_dir / "models" / "_tokenizer" / "tokenizer.json").stat().st_mtime_ns
    training.ensure_models(data_dir, sizes=("tiny",), steps=3, progress=False)
    assert count_training == ["tiny"] * 3
    assert (data_dir / "models" / "_tokenizer" / "tokenizer.json").stat().st_mtime_ns == tok_mtime


def test_trained_model_loads_with_auto_classes_and_is_deterministic(tmp_path, small_corpus):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok_dir = training.train_tokenizer(small_corpus, tmp_path / "tok", vocab_size=1024)
    a = training.train_model(small_corpus, tmp_path / "a", "tiny", steps=3, seed=5,
                             progress=False, tokenizer_dir=tok_dir, vocab_size=1024)
    b = training.train_model(small_corpus, tmp_path / "b", "tiny", steps=3, seed=5,
                             progress=False, tokenizer_dir=tok_dir, vocab_size=1024)
    tok = AutoTokenizer.from_pretrained(a, local_files_only=True)
    assert tok.eos_token == training.EOS_TOKEN and tok.pad_token == training.EOS_TOKEN
    assert tok.decode(tok("Speak, speak.")["input_ids"]) == "Speak, speak."
    ma = AutoModelForCausalLM.from_pretrained(a, local_files_only=True)
    mb = AutoModelForCausalLM.from_pretrained(b, local_files_only=True)
    assert ma.config.n_layer == training.SIZES["tiny"].n_layer
    assert ma.config.vocab_size == len(tok) <= 1024
    sa, sb = ma.state_dict(), mb.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert training.model_info(a)["train_loss"] == training.model_info(b)["train_loss"]


def test_errors(tmp_path, small_corpus):
    with pytest.raises(ConfigError, match="size"):
        training.train_model(small_corpus, tmp_path / "x", "huge")
    with pytest.raises(ConfigError, match="corpus"):
        training.train_model(tmp_path / "missing.txt", tmp_path / "x", "tiny")
    with pytest.raises(ConfigError, match="steps"):
        training.train_model(small_corpus, tmp_path / "x", "tiny", steps=0)
    with pytest.raises(ConfigError, match="corpus"):
        training.ensure_models(tmp_path)


def test_three_capacities_are_defined_weakest_first():
    assert training.CAPACITIES == ("nano", "tiny", "small")
    params = [s.n_layer * s.n_embd ** 2 for s in map(training.SIZES.__getitem__,
                                                     training.CAPACITIES)]
    assert params == sorted(params) and len(set(params)) == 3
    # the existing recipes (and so the caches of data/models/{tiny,small}) are unchanged
    assert training.SIZES["tiny"] == training.ModelSize(2, 128, 4, steps=400, lr=3e-3)
    assert training.SIZES["small"] == training.ModelSize(4, 192, 6, steps=650, lr=2e-3)


def test_ensure_models_trains_all_capacities(data_dir, count_training):
    dirs = training.ensure_models(data_dir, sizes=training.CAPACITIES, steps=2, progress=False)
    assert list(dirs) == list(training.CAPACITIES) == count_training
    assert training.model_info(dirs["nano"])["arch"]["n_layer"] == 1


def test_held_out_ids_are_the_validation_split(tiny_model_dir, small_corpus):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    ids = tok(small_corpus.read_text(encoding="utf-8"))["input_ids"]
    held = training.held_out_ids(tok, small_corpus)
    assert held == ids[-(len(ids) // 20):] and len(held) > 129
    with pytest.raises(ConfigError, match="corpus"):
        training.held_out_ids(tok, small_corpus.parent / "missing.txt")


def test_evaluate_model_ranks_more_training_higher(tmp_path, tiny_model_dir, small_corpus):
    import math

    barely = training.train_model(small_corpus, tmp_path / "barely", "tiny", steps=3, seed=0,
                                  progress=False, tokenizer_dir=tiny_model_dir)
    good = training.evaluate_model(tiny_model_dir, small_corpus, max_tokens=1500)
    bad = training.evaluate_model(barely, small_corpus, max_tokens=1500)
    assert good.tokens == bad.tokens == 1499
    assert bad.mean_logprob < good.mean_logprob < 0
    assert math.isclose(good.perplexity, math.exp(-good.mean_logprob))
    q = training.evaluate_model(tiny_model_dir, small_corpus, max_tokens=1500, quantize="int8")
    assert q.quantize == "int8" and abs(q.mean_logprob - good.mean_logprob) < 0.02
    with pytest.raises(ConfigError, match="max_tokens"):
        training.evaluate_model(tiny_model_dir, small_corpus, max_tokens=1)
