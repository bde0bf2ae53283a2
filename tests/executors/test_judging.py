"""Judges of duels: the likelihood judge on a real trained model, the LLM judge on canned
outputs, the generic score judge, and create_judge."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from wwwserve_p2p.core.types import GenerationChunk, GenerationRequest, LoadSnapshot, Usage
from wwwserve_p2p.errors import ConfigError, ExecutorError
from wwwserve_p2p.executors import EchoExecutor, Executor, RandomTokenExecutor
from wwwserve_p2p.judging import (LLM_JUDGE_SYSTEM, Judgement, LikelihoodJudge, LLMJudge,
                                  ScoreJudge, create_judge)
from wwwserve_p2p.testing.conformance import collect

#: as in conftest.py: shared/data beside the checkout, or $WWWSERVE_DATA_DIR
SHAKESPEARE = Path(os.environ.get("WWWSERVE_DATA_DIR", Path(__file__).resolve().parents[2].parent
                                  / "shared" / "data")) / "tinyshakespeare" / "input.txt"


def passages(n: int, prompt_chars: int = 200, answer_chars: int = 200):
    """``n`` (prompt, true continuation) pairs of Shakespeare that the test model never saw.

    The test model trains on the first 200 kB of the corpus; passages start after 300 kB at
    paragraph boundaries. Without the shared corpus, a synthetic text is used.
    """
    if SHAKESPEARE.is_file():
        text = SHAKESPEARE.read_text(encoding="utf-8")
        base = 300_000
    else:
        text = "\n\n".join(f"CITIZEN {i % 7}:\nSpeak, speak, good friend number {i}, and "
                           f"hear me, for the people are resolved rather to die than to famish."
                           for i in range(3000))
        base = len(text) // 2
    step = (len(text) - base - 2000) // n
    out = []
    for i in range(n):
        start = text.index("\n\n", base + i * step) + 2
        out.append((text[start:start + prompt_chars],
                    text[start + prompt_chars:start + prompt_chars + answer_chars]))
    return out


async def random_answer(rnd: RandomTokenExecutor, prompt: str, words: int) -> str:
    req = GenerationRequest("r", rnd.models()[0], prompt=prompt, max_tokens=words,
                            temperature=0.0)
    return "".join(c.text for c in await collect(rnd, req))


@pytest.fixture(scope="module")
def hf(tiny_model_dir):
    pytest.importorskip("torch")
    from wwwserve_p2p.executors.hf import HFExecutor

    return HFExecutor(tiny_model_dir, capacity=2)


# -- the likelihood judge on the real tiny model ------------------------------------------------

async def test_likelihood_judge_prefers_shakespeare_over_random_words(hf):
    judge = LikelihoodJudge(hf)
    rnd = RandomTokenExecutor(seed=7, models=("random",))
    wins, flips = 0, 0
    for prompt, truth in passages(20):
        noise = await random_answer(rnd, prompt, len(truth.split()))
        straight = await judge.judge(prompt, truth, noise)
        swapped = await judge.judge(prompt, noise, truth)
        wins += straight.choice == "first"
        # symmetric: swapping the presentation order swaps the verdict
        mirror = {"first": "second", "second": "first", "abstain": "abstain"}
        flips += swapped.choice == mirror[straight.choice]
        assert "nats/token" in straight.detail
    assert wins >= 18, f"real continuation preferred in only {wins}/20 prompts"
    assert flips == 20


async def test_likelihood_judge_abstains_on_identical_and_empty_answers(hf):
    judge = LikelihoodJudge(hf, margin=0.05)
    prompt, truth = passages(1)[0]
    same = await judge.judge(prompt, truth, truth)
    assert same.choice == "abstain"
    assert (await judge.judge(prompt, "", truth)).choice == "abstain"
    assert "empty" in (await judge.judge(prompt, truth, "  \n")).detail


async def test_likelihood_judge_margin_band(hf):
    prompt, truth = passages(1)[0]
    noise = await random_answer(RandomTokenExecutor(seed=1), prompt, len(truth.split()))
    a, _ = await hf.score(prompt, truth)
    b, _ = await hf.score(prompt, noise)
    assert a > b
    wide = LikelihoodJudge(hf, margin=(a - b) + 0.01)
    assert (await wide.judge(prompt, truth, noise)).choice == "abstain"
    narrow = LikelihoodJudge(hf, margin=(a - b) - 0.01)
    assert (await narrow.judge(prompt, truth, noise)).choice == "first"


def test_likelihood_judge_needs_a_scoring_executor():
    with pytest.raises(ConfigError, match="cannot score|no async score"):
        LikelihoodJudge(EchoExecutor())
    with pytest.raises(ConfigError, match="margin"):
        ScoreJudge(lambda p, a: None, margin=-1)


# -- the generic score judge ---------------------------------------------------------------------

async def test_score_judge_with_a_plain_function():
    async def length_score(prompt: str, answer: str) -> float | None:
        if answer == "boom":
            raise ExecutorError("model crashed")
        return None if answer == "?" else float(len(answer))

    judge = ScoreJudge(length_score, margin=2, name="length")
    assert (await judge.judge("q", "long answer", "short")).choice == "first"
    assert (await judge.judge("q", "abc", "abcd")).choice == "abstain"
    assert (await judge.judge("q", "?", "abcd")).choice == "abstain"
    failed = await judge.judge("q", "boom", "abcd")
    assert failed.choice == "abstain" and "model crashed" in failed.detail
    assert judge.name == "length"
    with pytest.raises(ValueError):
        Judgement("maybe")


# -- the LLM judge on canned outputs --------------------------------------------------------------

class CannedJudgeModel(Executor):
    """Answers every request with the next canned text; records the requests."""

    kind = "canned"

    def __init__(self, outputs: list[str], fail: bool = False):
        self.outputs = list(outputs)
        self.requests: list[GenerationRequest] = []
        self.fail = fail

    def models(self) -> tuple[str, ...]:
        return ("judge-model", "other")

    def load(self) -> LoadSnapshot:
        return LoadSnapshot()

    async def generate(self, request):
        self.check_request(request)
        self.requests.append(request)
        if self.fail:
            raise ExecutorError("upstream down")
        text = self.outputs.pop(0)
        words = text.split(" ")
        for w in words[:-1]:
            await trio.lowlevel.checkpoint()
            yield GenerationChunk(w + " ")
        yield GenerationChunk(words[-1], "stop", Usage(10, len(words)))


async def test_llm_judge_parses_canned_verdicts():
    outputs = ["[[A]] Answer A answers the question.",
               "After comparing both, Verdict: B",
               "I prefer the second answer, it is more relevant.",
               "Both answers are equally good. [[C]]",
               "To be, or not to be, that is the question.",
               "[[A]] ... actually [[B]]"]
    model = CannedJudgeModel(outputs)
    judge = LLMJudge(model, max_tokens=32)
    got = [await judge.judge("Who is Romeo?", "A young Montague.", "A fish.")
           for _ in outputs]
    assert [j.choice for j in got] == ["first", "second", "second", "abstain", "abstain",
                                       "abstain"]
    assert "Verdict: B" in got[1].detail
    req = model.requests[0]
    assert req.model == "judge-model" and req.max_tokens == 32 and req.temperature == 0.0
    assert [m.role for m in req.messages] == ["system", "user"]
    assert req.messages[0].content == LLM_JUDGE_SYSTEM and "[[A]]" in LLM_JUDGE_SYSTEM
    user = req.messages[1].content
    assert user.index("Who is Romeo?") < user.index("Answer A]\nA young Montague.")
    assert user.index("A young Montague.") < user.index("Answer B]\nA fish.")
    assert len({r.request_id for r in model.requests}) == len(outputs)


async def test_llm_judge_model_choice_and_failures():
    model = CannedJudgeModel(["[[B]]"])
    assert (await LLMJudge(model, model="other").judge("q", "a", "b")).choice == "second"
    assert model.requests[0].model == "other"
    with pytest.raises(ConfigError, match="not served"):
        LLMJudge(model, model="missing")
    with pytest.raises(ConfigError, match="max_tokens"):
        LLMJudge(model, max_tokens=0)
    failing = await LLMJudge(CannedJudgeModel([], fail=True)).judge("q", "a", "b")
    assert failing.choice == "abstain" and "upstream down" in failing.detail


# -- create_judge ----------------------------------------------------------------------------------

def test_create_judge(hf):
    judge = create_judge("likelihood", hf, margin=0.1)
    assert isinstance(judge, LikelihoodJudge) and judge.margin == 0.1
    llm = create_judge("llm", CannedJudgeModel([]), max_tokens=8)
    assert isinstance(llm, LLMJudge) and llm.max_tokens == 8
    assert create_judge("none", hf) is None
    with pytest.raises(ConfigError, match="unknown judge method 'gpt'"):
        create_judge("gpt", hf)
    with pytest.raises(ConfigError, match="bogus"):
        create_judge("likelihood", hf, bogus=1)
    with pytest.raises(ConfigError, match="score"):
        create_judge("likelihood", EchoExecutor())
    with pytest.raises(ConfigError, match="margin"):
        create_judge("likelihood", hf, margin="wide")
