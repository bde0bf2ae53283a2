"""RandomTokenExecutor: the random responder passes the executor contract and is seeded."""

from __future__ import annotations

import json

import pytest
import trio

from wwwserve_p2p.core.types import ChatMessage, GenerationRequest
from wwwserve_p2p.errors import ConfigError
from wwwserve_p2p.executors import EXECUTOR_KINDS, RandomTokenExecutor, create_executor
from wwwserve_p2p.executors.random_tokens import FALLBACK_WORDS, load_vocabulary
from wwwserve_p2p.testing.conformance import CHECK_NAMES, collect, run_check


def text(chunks) -> str:
    return "".join(c.text for c in chunks)


def req(**kw) -> GenerationRequest:
    kw.setdefault("prompt", "ROMEO:\nBut soft, what light")
    kw.setdefault("max_tokens", 10)
    kw.setdefault("temperature", 0.0)
    return GenerationRequest("r", "random", **kw)


@pytest.mark.parametrize("check", CHECK_NAMES)
async def test_conformance(check):
    with trio.fail_after(30):
        await run_check(check, lambda: RandomTokenExecutor(capacity=2, seed=3), "random",
                        exact_continuation=True)


async def test_conformance_slow_and_fixed_length():
    with trio.fail_after(30):
        await run_check("early_close", lambda: RandomTokenExecutor(
            capacity=1, delay_per_token=0.01, answer_tokens=8), "random")


async def test_words_come_from_the_vocabulary_and_greedy_is_deterministic(tmp_path):
    vocab = tmp_path / "words.txt"
    vocab.write_text("thee thou thy\nhath  doth thee\n")
    ex = RandomTokenExecutor(seed=1, vocab_path=vocab)
    assert ex.vocabulary == ("doth", "hath", "thee", "thou", "thy")
    a = await collect(ex, req())
    assert text(a) == text(await collect(ex, req()))
    assert text(a) == text(await collect(RandomTokenExecutor(seed=1, vocab_path=vocab), req()))
    assert set(text(a).split()) <= set(ex.vocabulary)
    assert len(text(a).split()) == 10 and a[-1].finish_reason == "length"
    assert a[-1].usage.completion_tokens == 10 and a[-1].usage.prompt_tokens == 5
    other = RandomTokenExecutor(seed=2, vocab_path=vocab)
    assert text(await collect(other, req(max_tokens=30))) != text(
        await collect(ex, req(max_tokens=30)))


async def test_sampling_and_request_seeds():
    ex = RandomTokenExecutor(seed=5)
    s1 = text(await collect(ex, req(temperature=1.0, seed=9, max_tokens=20)))
    s2 = text(await collect(ex, req(temperature=1.0, seed=9, max_tokens=20)))
    s3 = text(await collect(ex, req(temperature=1.0, max_tokens=20)))
    s4 = text(await collect(ex, req(temperature=1.0, max_tokens=20)))
    assert s1 == s2 and s3 != s4


async def test_answer_tokens_and_chat():
    ex = RandomTokenExecutor(answer_tokens=4, models=["x", "y"])
    assert ex.models() == ("x", "y")
    r = GenerationRequest("r", "y", messages=(ChatMessage("user", "Hail"),), max_tokens=50,
                          temperature=0.0)
    chunks = await collect(ex, r)
    assert len(text(chunks).split()) == 4 and chunks[-1].finish_reason == "stop"
    cut = await collect(ex, GenerationRequest("r", "x", prompt="p", max_tokens=2))
    assert cut[-1].finish_reason == "length" and cut[-1].usage.completion_tokens == 2


def test_default_vocabulary_and_tokenizer_vocabulary(tmp_path):
    words = load_vocabulary()
    assert len(words) >= len(FALLBACK_WORDS) and words == tuple(sorted(words))
    tok = {"version": "1.0", "added_tokens": [
        {"id": 0, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False, "special": True}],
        "model": {"type": "WordLevel", "vocab": {"<|endoftext|>": 0, "good": 1, "night": 2},
                  "unk_token": "<|endoftext|>"},
        "pre_tokenizer": {"type": "Whitespace"}}
    pytest.importorskip("tokenizers")
    (tmp_path / "tokenizer.json").write_text(json.dumps(tok))
    assert load_vocabulary(tmp_path) == ("good", "night")
    assert load_vocabulary(tmp_path / "tokenizer.json") == ("good", "night")


def test_factory_and_errors(tmp_path):
    assert "random" in EXECUTOR_KINDS
    ex = create_executor("random", {"models": ["a"], "capacity": 3, "seed": 1})
    assert isinstance(ex, RandomTokenExecutor) and ex.load().capacity == 3
    with pytest.raises(ConfigError, match="not found"):
        RandomTokenExecutor(vocab_path=tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(ConfigError, match="no words"):
        RandomTokenExecutor(vocab_path=tmp_path / "empty.txt")
    for bad in ({"models": []}, {"capacity": 0}, {"delay_per_token": -1},
                {"answer_tokens": 0}):
        with pytest.raises(ConfigError):
            create_executor("random", bad)
