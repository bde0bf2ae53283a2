"""HFExecutor on a tiny model trained by the real training code and loaded from disk."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import trio

pytest.importorskip("torch")
pytest.importorskip("transformers")

from wwwserve_p2p.core.types import ChatMessage, GenerationRequest  # noqa: E402
from wwwserve_p2p.errors import ConfigError, ExecutorError, ModelNotFound  # noqa: E402
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
    assert chunks[-1].usage.prompt_tokens <= ex.context_length - 16
    chunks = await collect(ex, req("ROMEO:\n" * 60, max_tokens=300, temperature=0.8, seed=1))
    assert chunks[-1].usage.completion_tokens == 300


async def test_max_new_tokens_cap_clamps(tiny_model_dir):
    e = await HFExecutor.open(tiny_model_dir, max_new_tokens_cap=5, model_name="capped")
    chunks = await collect(e, replace(req(max_tokens=50), model="capped"))
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
