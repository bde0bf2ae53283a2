"""EchoExecutor: a deterministic executor for tests, plus :class:`SlotGate`, the capacity
accounting shared by the executors of this package."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager

import trio

from ..core.types import (FINISH_LENGTH, FINISH_STOP, GenerationChunk, GenerationRequest,
                          LoadSnapshot, TokenLogprob, Usage)
from ..errors import ConfigError
from .base import Executor, echo_plan


class SlotGate:
    """``capacity`` concurrent slots with running/queued accounting (FIFO, trio only).

    Use ``async with gate.slot(): ...`` around the work of one generation; ``queued`` counts
    tasks waiting for a slot, ``running`` those holding one. Cancellation while waiting or
    while running releases everything. Safe to hold across ``yield`` in an async generator
    (no cancel scope is involved).
    """

    def __init__(self, capacity: int):
        if int(capacity) < 1:
            raise ConfigError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.running = 0
        self.queued = 0
        self._sem = trio.Semaphore(self.capacity)

    @asynccontextmanager
    async def slot(self):
        self.queued += 1
        try:
            await self._sem.acquire()
        finally:
            self.queued -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._sem.release()

    def snapshot(self, kv_usage: float = 0.0) -> LoadSnapshot:
        """The current :class:`LoadSnapshot`."""
        return LoadSnapshot(running=self.running, queued=self.queued, capacity=self.capacity,
                            kv_usage=kv_usage)


def check_word_executor(models: str | tuple[str, ...] | list[str], delay_per_token: float) -> tuple[str, ...]:
    """The model names as a tuple (a single name or a TOML list accepted), validated with the
    per-token delay of the echo and random executors.

    :raises ConfigError: no names, an empty name, or a negative delay.
    """
    models = (models,) if isinstance(models, str) else tuple(models)
    if not models or not all(isinstance(m, str) and m for m in models):
        raise ConfigError(f"models must be a non-empty tuple of names, got {models!r}")
    if delay_per_token < 0:
        raise ConfigError(f"delay_per_token must be >= 0, got {delay_per_token}")
    return models


async def stream_words(gate: SlotGate, words: list[str], finish: str, usage: Usage,
                       delay_per_token: float) -> AsyncIterator[GenerationChunk]:
    """Stream ``words`` as chunks inside one slot of ``gate``, ``delay_per_token`` s apart
    (0: just a checkpoint); the last word goes in the final chunk with ``finish``/``usage``.

    The slot is released before the final chunk: a consumer that stops reading after the final
    chunk without closing the generator does not hold capacity."""

    async def pace() -> None:
        if delay_per_token > 0:
            await trio.sleep(delay_per_token)
        else:
            await trio.lowlevel.checkpoint()

    async with gate.slot():
        for tok in words[:-1]:
            await pace()
            yield GenerationChunk(tok)
        if words:
            await pace()
    yield GenerationChunk(words[-1] if words else "", finish, usage)


class EchoExecutor(Executor):
    """Echoes the prompt back, word by word: deterministic, instant or artificially slow.

    The *full answer* to a request is the words (``str.split``) of ``request.prompt`` — for a
    chat request, of the content of the last ``user`` message (the last message if none is
    from the user) — preceded by the word ``"[<peer_label>]"`` when ``peer_label`` is set (so
    tests can tell executors apart). Each word is one token, emitted as ``"word "`` (the last
    one without trailing space), so the concatenated output is the words joined by spaces.

    - At most ``max_tokens`` tokens are emitted (``finish_reason="length"`` when the answer is
      cut, else ``"stop"``). ``max_tokens`` bounds the tokens emitted *by this call*: a caller
      re-dispatching with a ``continuation`` passes the remaining budget.
    - ``continuation``: if it is a prefix of the full answer, only the text after it is
      emitted (a partially delivered word is completed; the completion counts as one token);
      otherwise generation resumes at word index ``len(continuation.split())``.
    - ``stop``: the answer ends just before the first occurrence of a stop string
      (``finish_reason="stop"``).
    - ``echo`` (completion mode): the prompt text comes first, as one chunk (with
      ``max_tokens=0`` it is the whole answer).
    - ``logprobs``: the echo "model" is deterministic, so every emitted token has logprob 0.0
      (probability 1) and is its own single top alternative; echoed prompt words are tokens
      too (the first with logprob None, the others 0.0).
    - ``temperature``, ``top_p`` and ``seed`` are validated but have nothing to act on (the
      answer is deterministic); token-ID prompts, penalties and logit bias are refused
      (:meth:`Executor.unsupported`).
    - Before each token it awaits ``trio.sleep(delay_per_token)`` (works under MockClock).
    - Usage: ``prompt_tokens`` = words of the prompt text, ``completion_tokens`` = tokens emitted.

    :param models: names served (non-empty).
    :param capacity: concurrent generations; more are queued (FIFO).
    :raises ConfigError: empty ``models``, ``capacity < 1`` or negative ``delay_per_token``.
    """

    kind = "echo"
    features = frozenset({"echo", "logprobs"})

    def __init__(self, models: tuple[str, ...] = ("echo",), capacity: int = 4,
                 delay_per_token: float = 0.0, peer_label: str = ""):
        models = check_word_executor(models, delay_per_token)
        self._models = models
        self._gate = SlotGate(capacity)
        self.delay_per_token = float(delay_per_token)
        self.peer_label = peer_label

    def models(self) -> tuple[str, ...]:
        return self._models

    def load(self) -> LoadSnapshot:
        return self._gate.snapshot()

    # -- the deterministic answer -------------------------------------------------------------

    @staticmethod
    def _source_text(request: GenerationRequest) -> str:
        if not request.is_chat:
            return request.prompt_text()
        users = [m.content for m in request.messages if m.role == "user"]
        return users[-1] if users else request.messages[-1].content

    def answer_tokens(self, request: GenerationRequest) -> list[str]:
        """The tokens of the full answer to ``request`` (ignoring continuation and max_tokens)."""
        words = self._source_text(request).split()
        if self.peer_label:
            words.insert(0, f"[{self.peer_label}]")
        return [w + " " for w in words[:-1]] + words[-1:]

    @staticmethod
    def _after_continuation(tokens: list[str], continuation: str) -> list[str]:
        if not continuation:
            return tokens
        full = "".join(tokens)
        if full.startswith(continuation):
            pos = 0
            for i, tok in enumerate(tokens):
                if pos + len(tok) > len(continuation):
                    return [tok[len(continuation) - pos:]] + tokens[i + 1:]
                pos += len(tok)
            return []
        rest = tokens[len(continuation.split()):]
        if rest and not continuation[-1].isspace():
            rest = [" " + rest[0]] + rest[1:]
        return rest

    # -- generation ---------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        self.check_request(request)
        prompt_text = request.prompt_text()
        do_echo, continuation = echo_plan(request, prompt_text)
        todo = self._after_continuation(self.answer_tokens(request), continuation)
        if request.stop:
            text = "".join(todo)
            cuts = [i for i in (text.find(s) for s in request.stop) if i >= 0]
            if cuts:
                todo = _cut_tokens(todo, min(cuts))
        emit = todo[:request.max_tokens]
        finish = FINISH_LENGTH if len(todo) > request.max_tokens else FINISH_STOP
        usage = Usage(prompt_tokens=len(self._source_text(request).split()),
                      completion_tokens=len(emit))
        k = request.logprobs
        if k is None and not do_echo:
            async with aclosing(stream_words(self._gate, emit, finish, usage,
                                             self.delay_per_token)) as chunks:
                async for chunk in chunks:
                    yield chunk
            return

        def lp(tok: str, first_of_prompt: bool = False) -> tuple[TokenLogprob, ...]:
            if k is None:
                return ()
            if first_of_prompt:
                return (TokenLogprob(tok, None, ()),)
            return (TokenLogprob(tok, 0.0, ((tok, 0.0),)[:k]),)

        pieces: list[tuple[str, tuple[TokenLogprob, ...]]] = []
        if do_echo:
            words = prompt_text.split()
            echo_lps = tuple(e for j, w in enumerate(words) for e in lp(w, j == 0))
            pieces.append((prompt_text, echo_lps))
        pieces += [(tok, lp(tok)) for tok in emit]
        async with self._gate.slot():
            for text, lps in pieces[:-1]:
                if self.delay_per_token > 0:
                    await trio.sleep(self.delay_per_token)
                else:
                    await trio.lowlevel.checkpoint()
                yield GenerationChunk(text, logprobs=lps)
        last_text, last_lps = pieces[-1] if pieces else ("", ())
        yield GenerationChunk(last_text, finish, usage, last_lps)


def _cut_tokens(tokens: list[str], at: int) -> list[str]:
    """``tokens`` cut to their first ``at`` characters (the token holding the cut is shortened;
    an empty remainder is dropped)."""
    out: list[str] = []
    pos = 0
    for tok in tokens:
        if pos + len(tok) >= at:
            if at - pos > 0:
                out.append(tok[:at - pos])
            return out
        out.append(tok)
        pos += len(tok)
    return out
