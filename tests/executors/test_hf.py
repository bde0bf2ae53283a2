"""HFExecutor on a tiny model trained by the real training code and loaded from disk."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import trio

pytest.importorskip("torch")
pytest.importorskip("transformers")

from wwwserve_p2p.core.types import ChatMessage, GenerationRequest  # noqa: E402
from wwwserve_p2p.errors import ConfigError, ExecutorError, InvalidRequest, ModelNotFound  # noqa: E402
from wwwserve_p2p.executors import create_executor  # noqa: E402
from wwwserve_p2p.executors.hf import HFExecutor, _StopMatcher  # noqa: E402
from wwwserve_p2p.testing.conformance import CHECK_NAMES, collect, run_check  # noqa: E402

MODEL = "tiny-test"


@pytest.fixture
async def ex(tiny_model_dir):
    e = await HFExecutor.open(tiny_model_dir)
    yield e
    await e.aclose()


def req(prompt="ROMEO:\n", **kw) -> GenerationRequest:
    kw.setdefault("max_tokens", 24)
    kw.setdefault("temperature", 0.0)
    return GenerationRequest(request_id="r", model=MODEL, prompt=prompt, **kw)


def text(chunks) -> str:
    return "".join(c.text for c in chunks)


@pytest.mark.parametrize("check", CHECK_NAMES)
async def test_conformance(check, tiny_model_dir):
    with trio.fail_after(60):
        await run_check(check, lambda: HFExecutor.open(tiny_model_dir, capacity=2), MODEL)


async def test_name_defaults_to_dir_and_load(ex, tiny_model_dir):
    assert ex.models() == (tiny_model_dir.name,)
    assert ex.load().capacity == 1 and ex.context_length == 256


async def test_greedy_is_deterministic_and_seed_reproducible(ex):
    a = await collect(ex, req())
    b = await collect(ex, req())
    assert text(a) == text(b) and a[-1].usage.completion_tokens == 24
    assert a[-1].finish_reason == "length"
    s1 = await collect(ex, req(temperature=1.0, top_p=0.9, seed=11))
    s2 = await collect(ex, req(temperature=1.0, top_p=0.9, seed=11))
    s3 = await collect(ex, req(temperature=1.0, top_p=0.9, seed=12))
    assert text(s1) == text(s2)
    assert text(s1) != text(s3)


async def test_stop_string_cuts_before_it(ex):
    full = text(await collect(ex, req(max_tokens=40)))
    stop = full[12:15]
    assert len(stop) == 3
    chunks = await collect(ex, req(max_tokens=40, stop=("never-there", stop)))
    assert text(chunks) == full[:full.index(stop)]
    assert chunks[-1].finish_reason == "stop"


def test_stop_matcher_holds_back_prefixes():
    m = _StopMatcher(("END",))
    assert m.feed("abcE") == ("abc", False)
    assert m.feed("N") == ("", False)
    assert m.feed("Xy") == ("ENXy", False)
    assert m.feed("zzEN") == ("zz", False)
    assert m.feed("D tail") == ("", True)
    m = _StopMatcher(("ab", "b"))
    assert m.feed("xab") == ("x", True)


async def test_continuation_equals_prompt_plus_continuation(ex):
    a = await collect(ex, req("ROMEO:\nI will", continuation=" not be", max_tokens=12))
    b = await collect(ex, req("ROMEO:\nI will not be", max_tokens=12))
    assert text(a) == text(b)


async def test_chat_renders_prompt_text(ex):
    r = GenerationRequest("r", MODEL, messages=(ChatMessage("user", "Who art thou?"),),
                          max_tokens=5, temperature=0.0)
    chunks = await collect(ex, r)
    n_prompt = len(ex._tokenizer(r.prompt_text())["input_ids"])
    assert chunks[-1].usage.prompt_tokens == n_prompt
    assert text(chunks) == text(await collect(ex, req(r.prompt_text(), max_tokens=5)))


async def test_long_prompt_is_truncated_and_long_output_slides(ex):
    prompt = "Speak, speak, good citizens of Rome. " * 400
    chunks = await collect(ex, req(prompt, max_tokens=16))
    n_prompt = len(ex._tokenizer(prompt)["input_ids"])
    u = chunks[-1].usage  # truthful: every prompt token counted, the cut ones reported
    assert u.prompt_tokens == n_prompt and u.prompt_tokens_dropped > 0
    assert u.prompt_tokens - u.prompt_tokens_dropped == ex.trained_context - 16
    chunks = await collect(ex, req("ROMEO:\n" * 60, max_tokens=300, temperature=0.8, seed=1))
    assert chunks[-1].usage.completion_tokens == 300


async def test_max_new_tokens_cap_refuses_larger_max_tokens(tiny_model_dir):
    e = await HFExecutor.open(tiny_model_dir, max_new_tokens_cap=5, model_name="capped")
    with pytest.raises(InvalidRequest, match="limit of 5 generated tokens") as info:
        await collect(e, replace(req(max_tokens=50), model="capped"))
    assert info.value.param == "max_tokens"
    assert e.unsupported(replace(req(max_tokens=50), model="capped")) is not None
    chunks = await collect(e, replace(req(max_tokens=5), model="capped"))
    assert chunks[-1].usage.completion_tokens == 5 and chunks[-1].finish_reason == "length"


async def test_delay_per_token_slows_down(tiny_model_dir):
    e = await HFExecutor.open(tiny_model_dir, delay_per_token=0.05)
    t0 = time.monotonic()
    await collect(e, req(max_tokens=6))
    assert time.monotonic() - t0 >= 6 * 0.05


async def test_missing_and_invalid_dirs(tmp_path):
    with pytest.raises(ModelNotFound, match="does not exist"):
        HFExecutor(tmp_path / "nope")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{not json")
    with pytest.raises(ExecutorError, match="cannot load"):
        HFExecutor(tmp_path / "junk")
    with pytest.raises(ConfigError):
        HFExecutor(tmp_path / "junk", capacity=0)


def test_bad_device_is_executor_error(tiny_model_dir):
    with pytest.raises(ExecutorError, match="cannot load"):
        HFExecutor(tiny_model_dir, device="no-such-device")


def test_factory_builds_hf(tiny_model_dir):
    e = create_executor("hf", {"model_dir": str(tiny_model_dir), "model_name": "x",
                               "capacity": 2, "device": "cpu"})
    assert isinstance(e, HFExecutor) and e.models() == ("x",) and e.load().capacity == 2


async def test_chat_template_is_used_when_present(tiny_model_dir):
    e = await HFExecutor.open(tiny_model_dir, model_name="t")
    e._tokenizer.chat_template = ("{% for m in messages %}[{{ m.role }}] {{ m.content }}\n"
                                  "{% endfor %}[assistant]")
    r = GenerationRequest("r", "t", messages=(ChatMessage("user", "Hail"),), max_tokens=3,
                          temperature=0.0)
    chunks = await collect(e, r)
    rendered = "[user] Hail\n[assistant]"
    assert chunks[-1].usage.prompt_tokens == len(e._tokenizer(rendered)["input_ids"])


# -- scoring (the likelihood judge's primitive) --------------------------------------------------

def test_window_plan_covers_every_target_once():
    from wwwserve_p2p.executors.hf import window_plan

    for n, first, ctx in [(10, 1, 256), (300, 1, 128), (1000, 900, 128), (129, 5, 128),
                          (5, 4, 2), (1, 1, 8)]:
        plan = window_plan(n, first, ctx)
        covered = [t for _, t0, end in plan for t in range(t0, end)]
        assert covered == list(range(max(1, first), n))
        for start, t0, end in plan:
            assert end - start <= ctx and start < t0 < end + 1
            assert t0 - start >= min(t0, ctx - ctx // 2)  # at least half a window of context


async def test_score_is_a_mean_log_probability(ex):
    import math

    mean, n = await ex.score("ROMEO:\n", "I will not be")
    answer_ids = ex._tokenizer("I will not be", add_special_tokens=False)["input_ids"]
    assert n == len(answer_ids) and -20 < mean < 0
    # equals the log-probability of the tokens computed by hand with the model
    import torch
    ids = ex._tokenizer("ROMEO:\n")["input_ids"] + answer_ids
    with torch.no_grad():
        logp = torch.log_softmax(ex._model(input_ids=torch.tensor([ids])).logits[0], -1)
    by_hand = sum(float(logp[i - 1, ids[i]]) for i in range(len(ids) - n, len(ids))) / n
    assert math.isclose(mean, by_hand, rel_tol=1e-4)
    assert await ex.score("ROMEO:\n", "") == (-math.inf, 0)


async def test_score_conditions_like_generate(ex):
    chat = GenerationRequest("r", MODEL, messages=(ChatMessage("user", "Who art thou?"),))
    assert await ex.score(chat, " A friend.") == await ex.score(chat.prompt_text(), " A friend.")
    # a greedy answer is more likely under the model than the same words shuffled
    answer = text(await collect(ex, req(max_tokens=20)))
    shuffled = " ".join(reversed(answer.split()))
    assert (await ex.score("ROMEO:\n", answer))[0] > (await ex.score("ROMEO:\n", shuffled))[0]


async def test_score_runs_on_a_worker_thread_in_a_slot(ex, monkeypatch):
    import threading

    seen = []
    real = ex.sum_logprob

    def spy(ids, first):
        seen.append((threading.current_thread() is threading.main_thread(), ex.load().running))
        return real(ids, first)

    monkeypatch.setattr(ex, "sum_logprob", spy)
    await ex.score("ROMEO:\n", "Speak.")
    assert seen == [(False, 1)] and ex.load().running == 0


async def test_score_handles_long_prompts_and_long_answers(ex):
    sentence = "Speak, speak, good citizens of Rome. "
    long_mean, n = await ex.score(sentence * 400, "Hear me.")
    tail_mean, n2 = await ex.score(sentence * 60, "Hear me.")  # still longer than the window
    assert n == n2 and abs(long_mean - tail_mean) < 1e-4
    answer = sentence * 40  # > 1 window of answer tokens
    mean, n = await ex.score("ROMEO:\n", answer)
    assert n == len(ex._tokenizer(answer, add_special_tokens=False)["input_ids"])
    assert n > ex.trained_context and -20 < mean < 0


async def test_trained_context_comes_from_the_training_marker(ex):
    assert ex.trained_context == 128 and ex.context_length == 256


async def test_score_on_closed_executor(tiny_model_dir):
    e = await HFExecutor.open(tiny_model_dir)
    await e.aclose()
    with pytest.raises(ExecutorError, match="closed"):
        await e.score("a", "b")


# -- int8 quantization ----------------------------------------------------------------------------

HELD_OUT = ("KING RICHARD II:\nNo matter where; of comfort no man speak:\nLet's talk of graves, "
            "of worms, and epitaphs;\nMake dust our paper and with rainy eyes\nWrite sorrow on "
            "the bosom of the earth,\nLet's choose executors and talk of wills:\nAnd yet not so, "
            "for what can we bequeath\nSave our deposed bodies to the ground?\n")


@pytest.fixture(scope="module")
def int8_pair(tiny_model_dir):
    return HFExecutor(tiny_model_dir), HFExecutor(tiny_model_dir, quantize="int8")


def test_int8_replaces_every_linear_and_conv1d(int8_pair):
    import torch
    from transformers.pytorch_utils import Conv1D

    full, q = int8_pair
    Int8Linear, Int8Embedding = type(q._model.lm_head), type(q._model.transformer.wte)
    assert Int8Linear.__name__ == "Int8Linear" and Int8Embedding.__name__ == "Int8Embedding"
    n_layers = sum(isinstance(m, (torch.nn.Linear, Conv1D)) for m in full._model.modules())
    int8 = [m for m in q._model.modules() if isinstance(m, Int8Linear)]
    assert len(int8) == n_layers == q.quantization["modules"] == 4 * 2 + 1
    assert not any(isinstance(m, (torch.nn.Linear, Conv1D)) for m in q._model.modules())
    # the tied embedding shares the LM head's int8 table
    assert q._model.transformer.wte.qweight is q._model.lm_head.qweight
    assert q.quantization["int8_params"] == sum(m.qweight.numel() for m in int8)
    full_layers = {n: m for n, m in full._model.named_modules()
                   if isinstance(m, (torch.nn.Linear, Conv1D))}
    for name, m in q._model.named_modules():
        if not isinstance(m, Int8Linear):
            continue
        assert m.qweight.dtype == torch.int8 and int(m.qweight.abs().max()) <= 127
        w = m.dequantized()
        # <= 256 distinct values per output channel
        assert max(len(torch.unique(row)) for row in w) <= 256
        orig = full_layers[name].weight
        orig = orig.t() if isinstance(full_layers[name], Conv1D) else orig
        err = (w - orig).abs().max(dim=1).values
        assert torch.all(err <= m.scale / 2 + 1e-7)


async def test_int8_scores_close_to_the_full_model(int8_pair):
    import torch

    full, q = int8_pair
    ids = full._tokenizer(HELD_OUT)["input_ids"]
    with torch.no_grad():
        lf = full._model(input_ids=torch.tensor([ids])).logits
        lq = q._model(input_ids=torch.tensor([ids])).logits
    assert not torch.equal(lf, lq)  # outputs differ...
    assert float((lf - lq).abs().max()) < 0.5  # ...but stay close
    sf, nf = full.sum_logprob(ids, 1)
    sq, nq = q.sum_logprob(ids, 1)
    assert nf == nq and abs(sf / nf - sq / nq) < 0.02
    assert sq / nq <= sf / nf + 0.005  # no better than the source, up to noise
    assert (await q.score("ROMEO:\n", "I will not be"))[1] > 0


async def test_int8_generates_and_is_configurable(tiny_model_dir):
    with trio.fail_after(60):
        await run_check("stream_shape", lambda: HFExecutor.open(tiny_model_dir, quantize="int8",
                                                                model_name=MODEL), MODEL)
    e = create_executor("hf", {"model_dir": str(tiny_model_dir), "quantize": "int8"})
    assert e.quantization["mode"] == "int8"
    with pytest.raises(ConfigError, match="quantize"):
        create_executor("hf", {"model_dir": str(tiny_model_dir), "quantize": "int4"})
