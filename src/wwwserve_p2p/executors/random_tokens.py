"""RandomTokenExecutor: the "random responder" of the incentive experiments.

A dishonest executor that saves all compute by answering with uniformly random words. Duels
judged by a model should catch it (WWW.Serve, §"duel and judge"; DESIGN §6): its answers
have a much lower likelihood under any language model than a real continuation.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path


from ..core.types import (FINISH_LENGTH, FINISH_STOP, GenerationChunk, GenerationRequest,
                          LoadSnapshot, Usage)
from ..errors import ConfigError
from .base import Executor
from .echo import EchoExecutor, SlotGate, check_word_executor, stream_words

#: Where the default vocabulary (the words of tinyshakespeare) is looked for, in order:
#: ``$WWWSERVE_DATA_DIR/tinyshakespeare/input.txt``, then ``tinyshakespeare/input.txt``
#: under ``./data``, ``./shared/data``, ``../shared/data`` and the ``shared/data`` beside the
#: checkout this module lives in.
CORPUS_RELATIVE = Path("tinyshakespeare") / "input.txt"

#: Used when no corpus is found: common words of the corpus, so the executor always works.
FALLBACK_WORDS: tuple[str, ...] = tuple(
    "the and to of I you my a that in is not with me it for be his your this but he have as "
    "thou so him will what by thy all her do no shall if are we or our on thee good lord now "
    "from sir at let they more well would was come king love she then how them their here "
    "there enter know make man may say see speak than us hath like one upon too yet must "
    "should when why which o first second citizen gentle noble heaven death life night day "
    "blood heart hand eyes world time father mother son brother queen duke crown grace "
    "honour fair sweet poor true great old young give take tell hear stay go away prithee "
    "marry indeed nay ay farewell".split())

_WORD_CACHE: dict[tuple[str, int, int], tuple[str, ...]] = {}


def _default_corpus() -> Path | None:
    roots = []
    if os.environ.get("WWWSERVE_DATA_DIR"):
        roots.append(Path(os.environ["WWWSERVE_DATA_DIR"]))
    roots += [Path("data"), Path("shared") / "data", Path("..") / "shared" / "data",
              Path(__file__).resolve().parents[4] / "shared" / "data"]
    for root in roots:
        if (root / CORPUS_RELATIVE).is_file():
            return root / CORPUS_RELATIVE
    return None


def _tokenizer_words(path: Path) -> tuple[str, ...]:
    from tokenizers import Tokenizer

    file = path / "tokenizer.json" if path.is_dir() else path
    tok = Tokenizer.from_file(str(file))
    special = {t.content for t in tok.get_added_tokens_decoder().values() if t.special}
    words = {tok.decode([i]).strip() for i in range(tok.get_vocab_size())
             if tok.id_to_token(i) not in special}
    return tuple(sorted(w for w in words if w and "\ufffd" not in w))


def load_vocabulary(path: Path | None = None) -> tuple[str, ...]:
    """The distinct words to draw from, sorted (so a seed gives the same answers everywhere).

    :param path: a text file (its distinct whitespace-separated words), a tokenizer directory
        or ``tokenizer.json`` (each non-special token, decoded and stripped), or None: the
        words of tinyshakespeare when found (see :data:`CORPUS_RELATIVE`), else
        :data:`FALLBACK_WORDS`.
    :raises ConfigError: ``path`` does not exist, cannot be read, or has no words.
    """
    if path is None:
        path = _default_corpus()
        if path is None:
            return FALLBACK_WORDS
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(f"vocabulary file not found: {path}") from exc
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _WORD_CACHE:
        return _WORD_CACHE[key]
    try:
        if path.is_dir() or path.name == "tokenizer.json":
            words = _tokenizer_words(path)
        else:
            words = tuple(sorted(set(path.read_text(encoding="utf-8").split())))
    except Exception as exc:  # OSError, UnicodeDecodeError, tokenizers' own exceptions
        raise ConfigError(f"cannot read a vocabulary from {path}: {exc}") from exc
    if not words:
        raise ConfigError(f"no words in vocabulary file {path}")
    _WORD_CACHE[key] = words
    return words


class RandomTokenExecutor(Executor):
    """Answers every request with words drawn uniformly at random from a vocabulary.

    The "random responder" of the paper's incentive experiments: it serves any of ``models``
    at no cost, and a likelihood or LLM judge should prefer an honest answer to its output.

    - A full answer has ``answer_tokens`` words (default: the words of ``continuation`` +
      ``max_tokens``, and the answer always ends with ``finish_reason="length"``); at most
      ``max_tokens`` are emitted.
      Each word is one token, streamed as ``"word "`` (the last without trailing space).
    - Words are i.i.d. uniform over :func:`load_vocabulary` (``vocab_path``).
    - Determinism: with ``temperature == 0`` or a ``request.seed`` the answer is a function
      of (``seed``, ``request.seed``, prompt text) and its length (sha256-seeded
      ``random.Random``; shorter answers are prefixes of longer ones); otherwise words come
      from the executor's own generator (seeded by ``seed``, else by the OS).
    - ``continuation``: if it is a prefix of the deterministic full answer, only the rest is
      emitted; otherwise the answer resumes after ``len(continuation.split())`` words.
    - ``stop``/``top_p`` are validated and ignored. Before each word it awaits
      ``delay_per_token`` seconds (a checkpoint when 0). Usage: ``prompt_tokens`` = words of
      the prompt text, ``completion_tokens`` = words emitted.

    :param models: names served (non-empty; a string is one name).
    :param capacity: concurrent generations; more are queued (FIFO).
    :param delay_per_token: seconds awaited per word (>= 0).
    :param seed: seed of the executor's answers (None: OS randomness for sampled requests,
        0 for the deterministic ones).
    :param vocab_path: see :func:`load_vocabulary`.
    :param answer_tokens: words in a full answer (>= 1), or None for ``max_tokens``.
    :raises ConfigError: empty ``models``, ``capacity < 1``, negative delay, bad vocabulary,
        ``answer_tokens < 1``.
    """

    kind = "random"

    def __init__(self, models: tuple[str, ...] = ("random",), capacity: int = 4,
                 delay_per_token: float = 0.0, seed: int | None = None,
                 vocab_path: Path | None = None, answer_tokens: int | None = None):
        models = check_word_executor(models, delay_per_token)
        if answer_tokens is not None and int(answer_tokens) < 1:
            raise ConfigError(f"answer_tokens must be >= 1, got {answer_tokens}")
        self._models = models
        self._gate = SlotGate(capacity)
        self.delay_per_token = float(delay_per_token)
        self.seed = None if seed is None else int(seed)
        self.answer_tokens = None if answer_tokens is None else int(answer_tokens)
        self.vocabulary = load_vocabulary(None if vocab_path is None else Path(vocab_path))
        self._rng = random.Random(self.seed if self.seed is not None else os.urandom(16))

    def models(self) -> tuple[str, ...]:
        return self._models

    def load(self) -> LoadSnapshot:
        return self._gate.snapshot()

    def _length(self, request: GenerationRequest) -> int:
        if self.answer_tokens is not None:
            return self.answer_tokens
        return len(request.continuation.split()) + request.max_tokens

    def answer_words(self, request: GenerationRequest, n: int | None = None) -> list[str]:
        """The first ``n`` words (default: a full answer) of the deterministic answer.

        The words are a stream determined by (``seed``, ``request.seed``, prompt text): a
        shorter answer is a prefix of a longer one, so a continuation can be resumed exactly.
        """
        material = "\x00".join([str(self.seed or 0), str(request.seed), request.prompt_text()])
        rng = random.Random(hashlib.sha256(material.encode("utf-8")).digest())
        return [rng.choice(self.vocabulary)
                for _ in range(self._length(request) if n is None else n)]

    def _words(self, request: GenerationRequest) -> list[str]:
        """The tokens still to emit (after the continuation), before the max_tokens cut."""
        deterministic = request.temperature == 0.0 or request.seed is not None
        if deterministic:
            words = self.answer_words(request)
        else:
            words = [self._rng.choice(self.vocabulary) for _ in range(self._length(request))]
        tokens = [w + " " for w in words[:-1]] + words[-1:]
        cont = request.continuation
        if not cont:
            return tokens
        if deterministic:  # our own earlier answer: resume exactly where it stopped
            return EchoExecutor._after_continuation(tokens, cont)
        tokens = tokens[len(cont.split()):]
        if tokens and not cont[-1].isspace():
            tokens[0] = " " + tokens[0]
        return tokens

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        self.check_request(request)
        todo = self._words(request)
        emit = todo[:request.max_tokens]
        cut = len(todo) > request.max_tokens or self.answer_tokens is None
        finish = FINISH_LENGTH if cut else FINISH_STOP
        usage = Usage(prompt_tokens=len(request.prompt_text().split()),
                      completion_tokens=len(emit))
        async with aclosing(stream_words(self._gate, emit, finish, usage, self.delay_per_token)) as chunks:
            async for chunk in chunks:
                yield chunk
