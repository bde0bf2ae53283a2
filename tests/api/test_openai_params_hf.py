"""The OpenAI parameters that need a real model, through a real node serving the tiny trained
tinyshakespeare model with the hf executor, driven by the official ``openai`` client (issue
14a): temperature, top_p, seed, presence/frequency penalties, logit_bias, token-ID prompts,
chat logprobs/top_logprobs, completions echo + logprobs (equal to the executor's own
``score()``), the 512-token answer cap (a 400 naming it) and the prompt cut (reported).
"""

from __future__ import annotations

import math
from pathlib import Path

import openai
import pytest
import trio

from openai_nodes import HF_MODEL, hf_network, tiny_model_dir

pytestmark = [pytest.mark.real, pytest.mark.slow]  # a node process + the trained model (cached; minutes to train on first use)

PROMPT = "ROMEO:\nWhat light through yonder window"


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with hf_network(tmp_path_factory.mktemp("openai-hf")) as nodes:
        yield nodes


@pytest.fixture(scope="module")
def node(net):
    return net[0]


@pytest.fixture(scope="module")
def client(node):
    with openai.OpenAI(base_url=node.api_url + "/v1", api_key="x", max_retries=0, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def executor():
    """The same model in this process (its tokenizer and its own ``score()``)."""
    from wwwserve_p2p.executors.hf import HFExecutor

    return HFExecutor(tiny_model_dir(), model_name=HF_MODEL)


def _text(client, **kw) -> str:
    return client.completions.create(model=HF_MODEL, prompt=PROMPT, max_tokens=12, **kw).choices[0].text


def test_temperature_zero_is_deterministic_and_sampling_depends_on_the_seed(client):
    greedy = _text(client, temperature=0)
    assert _text(client, temperature=0) == greedy
    a1, a2 = _text(client, temperature=1.5, seed=1), _text(client, temperature=1.5, seed=1)
    assert a1 == a2  # same seed, same sample
    others = {_text(client, temperature=1.5, seed=s) for s in (2, 3, 4)}
    assert len(others | {a1}) > 1  # different seeds, different samples


def test_top_p_tiny_is_greedy(client):
    greedy = _text(client, temperature=0)
    assert _text(client, temperature=1.5, top_p=1e-6, seed=5) == greedy


def test_frequency_and_presence_penalties_change_the_answer(client, executor):
    greedy = client.completions.create(model=HF_MODEL, prompt=PROMPT, max_tokens=20, temperature=0,
                                       logprobs=0).choices[0]
    tokens = greedy.logprobs.tokens
    assert len(set(tokens)) < len(tokens)  # the greedy tiny model repeats itself
    r = client.completions.create(model=HF_MODEL, prompt=PROMPT, max_tokens=20, temperature=0,
                                  frequency_penalty=2.0, presence_penalty=2.0, logprobs=0).choices[0]
    assert r.text != greedy.text
    assert len(set(r.logprobs.tokens)) > len(set(tokens))  # fewer repeats


def test_logit_bias_forces_and_bans_tokens(client, executor):
    ids = executor._tokenizer("Capulet")["input_ids"]
    forced = ids[0]
    r = client.completions.create(model=HF_MODEL, prompt=PROMPT, max_tokens=3, temperature=0,
                                  logit_bias={str(forced): 100})
    assert r.choices[0].text == executor._tokenizer.decode([forced] * 3)
    greedy_first = client.completions.create(model=HF_MODEL, prompt=PROMPT, max_tokens=1, temperature=0,
                                             logprobs=0).choices[0].logprobs.tokens[0]
    first_id = executor._tokenizer(greedy_first, add_special_tokens=False)["input_ids"][0]
    r = client.completions.create(model=HF_MODEL, prompt=PROMPT, max_tokens=1, temperature=0,
                                  logit_bias={str(first_id): -100}, logprobs=0)
    assert r.choices[0].logprobs.tokens[0] != greedy_first
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=HF_MODEL, prompt=PROMPT, logit_bias={"999999": 1})
    assert info.value.body["param"] == "logit_bias" and "[0, 1536)" in info.value.body["message"]


def test_token_id_prompts_equal_text_prompts(client, executor):
    ids = executor._tokenizer(PROMPT)["input_ids"]
    by_text = _text(client, temperature=0)
    r = client.completions.create(model=HF_MODEL, prompt=ids, max_tokens=12, temperature=0)
    assert r.choices[0].text == by_text and r.usage.prompt_tokens == len(ids)
    r = client.completions.create(model=HF_MODEL, prompt=[ids, ids[:3]], max_tokens=12, temperature=0)
    assert r.choices[0].text == by_text and len(r.choices) == 2
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=HF_MODEL, prompt=[5, 10**6])
    assert info.value.body["param"] == "prompt"


def test_chat_logprobs_are_the_models(client):
    r = client.chat.completions.create(model=HF_MODEL, messages=[{"role": "user", "content": "Speak."}],
                                       max_tokens=5, temperature=0, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens == 5
    for t in content:
        assert len(t.top_logprobs) == 3 and t.logprob <= 0
        assert t.top_logprobs[0].token == t.token  # greedy: the chosen token is the most likely
        assert math.isclose(t.top_logprobs[0].logprob, t.logprob, abs_tol=1e-6)
        assert t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob >= t.top_logprobs[2].logprob
    assert "".join(t.token for t in content) == r.choices[0].message.content


def test_echo_logprobs_equal_the_executors_score(client, executor):
    context, continuation = "JULIET:\nO Romeo, Romeo,", " wherefore art thou Romeo?"
    n_ctx = len(executor._tokenizer(context)["input_ids"])
    r = client.completions.create(model=HF_MODEL, prompt=context + continuation, echo=True,
                                  logprobs=1, max_tokens=0, temperature=0)
    lp = r.choices[0].logprobs
    assert r.choices[0].text == context + continuation and r.usage.completion_tokens == 0
    assert lp.token_logprobs[0] is None and len(lp.tokens) == r.usage.prompt_tokens
    mean, count = trio.run(executor.score, context, continuation)
    assert count == len(lp.tokens) - n_ctx
    assert math.isclose(sum(lp.token_logprobs[n_ctx:]), mean * count, abs_tol=1e-4)


def test_max_tokens_above_the_executor_cap_is_refused(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=HF_MODEL, prompt=PROMPT, max_tokens=513)
    assert info.value.body["param"] == "max_tokens"
    assert "limit of 512 generated tokens" in info.value.body["message"]


def test_long_prompt_cut_is_reported(client, executor):
    prompt = "Speak, speak, good citizens of Rome. " * 40
    n = len(executor._tokenizer(prompt)["input_ids"])
    raw = client.completions.with_raw_response.create(model=HF_MODEL, prompt=prompt, max_tokens=4)
    body = raw.http_response.json()
    assert body["usage"]["prompt_tokens"] == n  # every token of the prompt as given
    dropped = body["x_wwwserve"]["prompt_tokens_dropped"]
    assert dropped == n - (executor.trained_context - 4) > 0


# ------------------------------------------------------------------ through the overlay

def test_offloaded_requests_keep_their_parameters(net, client):
    """The same requests sent to ``front`` (which does not serve the model) run on ``hf``
    through the overlay and give the same answers as on ``hf`` directly: token-ID prompt,
    penalties, logit bias, echo + logprobs with max_tokens=0, chat top_logprobs."""
    hf, front = net
    with openai.OpenAI(base_url=front.api_url + "/v1", api_key="x", max_retries=0, timeout=60) as fc:
        for kw in ({"prompt": [5, 17, 42, 99], "max_tokens": 8, "temperature": 0,
                    "frequency_penalty": 1.5, "presence_penalty": 0.5, "logit_bias": {"17": 4}},
                   {"prompt": PROMPT, "max_tokens": 0, "echo": True, "logprobs": 2}):
            raw = fc.completions.with_raw_response.create(model=HF_MODEL, **kw)
            assert raw.headers["x-wwwserve-executor"] == hf.peer_id
            via, direct = raw.parse().choices[0], client.completions.create(model=HF_MODEL, **kw).choices[0]
            assert via.text == direct.text
            assert (via.logprobs and via.logprobs.token_logprobs) == (direct.logprobs and direct.logprobs.token_logprobs)
        chat = {"messages": [{"role": "user", "content": "Speak."}], "max_tokens": 4,
                "temperature": 0, "logprobs": True, "top_logprobs": 2}
        via = fc.chat.completions.create(model=HF_MODEL, **chat).choices[0].logprobs.content
        direct = client.chat.completions.create(model=HF_MODEL, **chat).choices[0].logprobs.content
        assert [(t.token, t.logprob, len(t.top_logprobs)) for t in via] == \
            [(t.token, t.logprob, len(t.top_logprobs)) for t in direct]


# ------------------------------------------------------------------ lm-evaluation-harness

TASK_DIR = Path(__file__).resolve().parent / "lm_eval_task"


@pytest.mark.slow
def test_lm_eval_local_completions_scores_equal_the_executors_score(node, executor, tmp_path, monkeypatch):
    """lm-eval's ``local-completions`` model (token-ID prompts, ``echo``, ``logprobs=1``,
    ``max_tokens=1``) runs the shipped multiple-choice task (6 Shakespeare cloze items x 3
    endings, a local JSONL: no dataset hub) against the node; every loglikelihood it computes
    equals the hf executor's own ``score()`` (mean x tokens) within 1e-4."""
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    task_dir = tmp_path / "tasks"
    task_dir.mkdir()
    yaml_text = (TASK_DIR / "shakespeare_cloze.yaml").read_text()
    (task_dir / "shakespeare_cloze.yaml").write_text(
        yaml_text.replace("DATA_FILE", str(TASK_DIR / "shakespeare_cloze.jsonl")))
    out = lm_eval.simple_evaluate(
        model="local-completions",
        model_args=(f"model={HF_MODEL},base_url={node.api_url}/v1/completions,"
                    f"tokenizer={tiny_model_dir()},tokenizer_backend=huggingface,"
                    "num_concurrent=1,max_retries=1,timeout=60"),
        tasks=["shakespeare_cloze"], task_manager=TaskManager(include_path=str(task_dir)),
        log_samples=True, batch_size=1)
    samples = out["samples"]["shakespeare_cloze"]
    assert len(samples) == 6
    diffs = []
    for s in samples:
        for (context, continuation), resp in zip(s["arguments"], s["resps"]):
            loglik = float(resp[0][0])
            mean, count = trio.run(executor.score, context, continuation)
            assert abs(loglik - mean * count) < 1e-4, (context, continuation, loglik, mean * count)
            diffs.append(abs(loglik - mean * count))
    assert len(diffs) == 18
    print(f"lm-eval vs score(): 18 loglikelihoods, max |diff| = {max(diffs):.2e} nats, "
          f"acc = {out['results']['shakespeare_cloze']['acc,none']:.3f}")
    assert 0.0 <= out["results"]["shakespeare_cloze"]["acc,none"] <= 1.0
