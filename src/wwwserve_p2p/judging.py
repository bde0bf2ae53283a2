"""Judges of duels: which of two answers to a prompt is better (DESIGN §6).

A duel sends one request to two executors; judges compare the answers. A judge sees the
prompt and the two answers in the order the node chose (randomised, to cancel position
bias) and never learns which executor wrote which; it returns a :class:`Judgement` naming
the ``"first"`` or ``"second"`` answer, or ``"abstain"``. The node maps positions back.

Methods, one interface (:class:`Judge`):

- :class:`ScoreJudge`: the higher ``score_fn(prompt, answer)`` wins, abstain within a margin.
- :class:`LikelihoodJudge`: a ScoreJudge on the mean token log-probability of each answer
  under the judge's own model (:meth:`HFExecutor.score
  <wwwserve_p2p.executors.hf.HFExecutor.score>`); works with small local models.
- :class:`LLMJudge`: asks a capable chat model, with the pairwise judge prompt of MT-Bench
  (Zheng et al. 2023, "Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena", NeurIPS
  2023; FastChat's ``pair-v2``), and parses its verdict with
  :func:`~wwwserve_p2p.core.judging.parse_verdict`.

:func:`create_judge` builds one from a config method name.
"""

from __future__ import annotations

import inspect
import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from .core.judging import ABSTAIN, FIRST, SECOND, VERDICTS, compare_scores, parse_verdict
from .core.types import ChatMessage, GenerationRequest
from .errors import ConfigError, ExecutorError
from .executors.base import Executor

__all__ = ["ABSTAIN", "FIRST", "JUDGE_METHODS", "LLM_JUDGE_SYSTEM", "LLM_JUDGE_TEMPLATE",
           "SECOND", "Judge", "Judgement", "LLMJudge", "LikelihoodJudge", "ScoreJudge",
           "create_judge", "parse_verdict"]

#: Methods accepted by :func:`create_judge`.
JUDGE_METHODS: tuple[str, ...] = ("likelihood", "llm", "none")


@dataclass(frozen=True)
class Judgement:
    """A judge's verdict on one duel.

    ``choice``: ``"first"``, ``"second"`` or ``"abstain"`` (positions as shown to the judge);
    ``detail``: human-readable evidence (the two scores, or the LLM's raw verdict text).
    """

    choice: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.choice not in VERDICTS:
            raise ValueError(f"choice must be one of {VERDICTS}, got {self.choice!r}")


class Judge(ABC):
    """Compares two answers to one prompt. Implementations must be safe to call concurrently."""

    #: Short name of the method, e.g. ``"likelihood"``.
    name: str = "abstract"

    @abstractmethod
    async def judge(self, prompt: str, first: str, second: str) -> Judgement:
        """Which answer to ``prompt`` is better: ``first``, ``second``, or neither (abstain).

        Never raises for a bad answer or a failing model: that is an ``"abstain"`` with the
        reason in ``detail``. Cancellation propagates.
        """


#: An async scoring function: higher is better; None, NaN or -inf means unscorable.
ScoreFn = Callable[[str, str], Awaitable[float | None]]


class ScoreJudge(Judge):
    """The answer with the higher score wins; abstain when the scores differ by < ``margin``.

    :param score_fn: ``async (prompt, answer) -> float`` (higher is better; ``None``, NaN or
        ``-inf`` marks an unscorable answer, which makes the judge abstain).
    :param margin: ``>= 0``, in the unit of the scores.
    :param name: the method name reported in :attr:`name`.
    :raises ConfigError: negative or non-finite ``margin``, non-callable ``score_fn``.

    Empty (or whitespace-only) answers are not scored: the judge abstains. The two answers
    are scored one after the other, first then second (scores do not depend on the order).
    An :class:`~wwwserve_p2p.errors.ExecutorError` (or ``ValueError``) from ``score_fn``
    gives ``"abstain"``.
    """

    name = "score"

    def __init__(self, score_fn: ScoreFn, margin: float = 0.0, *, name: str | None = None,
                 unit: str = ""):
        if not callable(score_fn):
            raise ConfigError(f"score_fn must be callable, got {score_fn!r}")
        try:
            margin = float(margin)
        except (TypeError, ValueError):
            raise ConfigError(f"margin must be a number, got {margin!r}") from None
        if not math.isfinite(margin) or margin < 0:
            raise ConfigError(f"margin must be a finite number >= 0, got {margin}")
        self.score_fn = score_fn
        self.margin = margin
        self.unit = unit
        if name is not None:
            self.name = name

    async def judge(self, prompt: str, first: str, second: str) -> Judgement:
        if not first.strip() or not second.strip():
            which = " and ".join(n for n, a in (("first", first), ("second", second))
                                 if not a.strip())
            return Judgement(ABSTAIN, f"{self.name}: {which} answer empty")
        try:
            a = await self.score_fn(prompt, first)
            b = await self.score_fn(prompt, second)
        except (ExecutorError, ValueError) as exc:
            return Judgement(ABSTAIN, f"{self.name}: scoring failed: {exc}")
        choice = compare_scores(a, b, self.margin)
        unit = f" {self.unit}" if self.unit else ""
        return Judgement(choice, f"{self.name}: first {_fmt(a)} vs second {_fmt(b)}{unit} "
                                 f"(margin {self.margin:g}) -> {choice}")


def _fmt(x: float | None) -> str:
    return "unscorable" if x is None or not math.isfinite(x) else f"{x:.4f}"


class LikelihoodJudge(ScoreJudge):
    """Prefers the answer with the higher mean token log-probability under ``executor``'s model.

    Score = ``(await executor.score(prompt, answer))[0]``: the mean natural-log probability
    per answer token given the prompt (nats/token; see
    :meth:`~wwwserve_p2p.executors.hf.HFExecutor.score`). The higher mean wins; the judge
    abstains when the means differ by less than ``margin`` nats/token, or when either answer
    is empty or has no scorable token. The mean (not the sum) makes answers of different
    lengths comparable; it rewards fluent, on-topic text as the judge's model sees it, not
    correctness.

    :param executor: anything with ``async score(prompt: str, answer: str) -> (float, int)``
        (an :class:`~wwwserve_p2p.executors.hf.HFExecutor`).
    :param margin: abstention band, nats/token (default 0.05).
    :raises ConfigError: the executor cannot score (no ``score`` coroutine method) or a bad
        margin.
    """

    name = "likelihood"

    def __init__(self, executor: Any, margin: float = 0.05):
        score = getattr(executor, "score", None)
        if not (callable(score) and inspect.iscoroutinefunction(score)):
            kind = getattr(executor, "kind", type(executor).__name__)
            raise ConfigError(f"the likelihood judge needs an executor that can score answers "
                              f"(e.g. kind 'hf'); executor kind {kind!r} has no async score()")
        self.executor = executor

        async def mean_logprob(prompt: str, answer: str) -> float | None:
            mean, n = await executor.score(prompt, answer)
            return mean if n > 0 else None

        super().__init__(mean_logprob, margin, unit="nats/token")


#: System prompt of :class:`LLMJudge`: MT-Bench's pairwise judge prompt ``pair-v2`` (Zheng et
#: al. 2023), with "assistant A/B" renamed "Answer A/B" (judges must not think about who
#: wrote what) and the verdict asked for *first* (a judge's output is capped at a few tokens).
LLM_JUDGE_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the two answers to the user "
    "question displayed below. You should choose the answer that follows the user's "
    "instructions and answers the user's question better. Your evaluation should consider "
    "factors such as the helpfulness, relevance, accuracy, depth, creativity, and level of "
    "detail of the answers. Avoid any positional biases and ensure that the order in which "
    "the answers were presented does not influence your decision. Do not allow the length of "
    "the answers to influence your evaluation. Be as objective as possible. Output your final "
    "verdict first, strictly following this format: \"[[A]]\" if Answer A is better, "
    "\"[[B]]\" if Answer B is better, and \"[[C]]\" for a tie; then give a one-sentence "
    "explanation.")

#: User message of :class:`LLMJudge` (MT-Bench ``pair-v2`` layout); fields ``question``,
#: ``answer_a`` (the first answer) and ``answer_b`` (the second).
LLM_JUDGE_TEMPLATE = (
    "[User Question]\n{question}\n\n"
    "[The Start of Answer A]\n{answer_a}\n[The End of Answer A]\n\n"
    "[The Start of Answer B]\n{answer_b}\n[The End of Answer B]")

_judge_ids = itertools.count(1)


class LLMJudge(Judge):
    """Asks a chat model which answer is better (LLM-as-a-judge, MT-Bench pairwise format).

    The request is chat-mode: :data:`LLM_JUDGE_SYSTEM` as system message and
    :data:`LLM_JUDGE_TEMPLATE` filled with the prompt and the answers (first = "Answer A",
    second = "Answer B") as user message; greedy (``temperature=0``), ``max_tokens`` tokens,
    on ``model`` of ``executor``. The generated text is parsed with
    :func:`~wwwserve_p2p.core.judging.parse_verdict` (``[[A]]`` → first, ``[[B]]`` → second,
    ``[[C]]``/tie/unreadable/contradictory → abstain); ``detail`` holds the raw text.
    An :class:`~wwwserve_p2p.errors.ExecutorError` while generating gives ``"abstain"``.

    Useful only with a capable instruction-following model; the small Shakespeare models of
    this project answer with Shakespeare, which parses as abstain (use
    :class:`LikelihoodJudge` with them).

    :param executor: any :class:`~wwwserve_p2p.executors.base.Executor`.
    :param model: model to ask; default the executor's first model.
    :param max_tokens: cap on the judge's output tokens (>= 1).
    :raises ConfigError: ``max_tokens < 1`` or a ``model`` the executor does not serve.
    """

    name = "llm"

    def __init__(self, executor: Executor, model: str | None = None, max_tokens: int = 64):
        if int(max_tokens) < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {max_tokens}")
        if model is not None:
            try:
                served = executor.models()
            except Exception:  # e.g. an upstream proxy not started yet: checked per request
                served = (model,)
            if model not in served:
                raise ConfigError(f"judge model {model!r} is not served by the executor "
                                  f"(serves: {', '.join(served)})")
        self.executor = executor
        self.model = model
        self.max_tokens = int(max_tokens)

    def build_request(self, prompt: str, first: str, second: str) -> GenerationRequest:
        """The chat request sent to the judge model."""
        user = LLM_JUDGE_TEMPLATE.format(question=prompt, answer_a=first, answer_b=second)
        return GenerationRequest(
            request_id=f"judge-{next(_judge_ids)}", model=self.model or self.executor.models()[0],
            messages=(ChatMessage("system", LLM_JUDGE_SYSTEM), ChatMessage("user", user)),
            max_tokens=self.max_tokens, temperature=0.0)

    async def judge(self, prompt: str, first: str, second: str) -> Judgement:
        request = self.build_request(prompt, first, second)
        parts: list[str] = []
        try:
            async with aclosing(self.executor.generate(request)) as stream:
                async for chunk in stream:
                    parts.append(chunk.text)
        except ExecutorError as exc:
            return Judgement(ABSTAIN, f"llm: judge model failed: {exc}")
        raw = "".join(parts)
        choice = parse_verdict(raw)
        return Judgement(choice, f"llm verdict {choice}: {raw.strip()!r}")


def create_judge(method: str, executor: Any, **options: Any) -> Judge | None:
    """Build the judge of a node's config.

    :param method: ``"likelihood"`` → :class:`LikelihoodJudge` (option ``margin``), ``"llm"``
        → :class:`LLMJudge` (options ``model``, ``max_tokens``), ``"none"`` → ``None`` (this
        node does not judge).
    :param executor: the node's executor (the judge's model).
    :raises ConfigError: unknown method, unknown option, bad value, or an executor that
        cannot serve the method (e.g. ``"likelihood"`` on one without ``score``).
    """
    classes: dict[str, type[Judge]] = {"likelihood": LikelihoodJudge, "llm": LLMJudge}
    if method == "none":
        if options:
            raise ConfigError(f"judge method 'none' takes no options, got {', '.join(options)}")
        return None
    if method not in classes:
        raise ConfigError(f"unknown judge method {method!r}; known: {', '.join(JUDGE_METHODS)}")
    cls = classes[method]
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self",
                                                                                  "executor")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown option(s) for judge method {method!r}: {', '.join(unknown)}; "
                          f"allowed: {', '.join(allowed)}")
    try:
        return cls(executor, **options)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid options for judge method {method!r}: {exc}") from exc
