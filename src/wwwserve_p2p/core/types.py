"""Domain types shared by every layer. Pure, immutable, no I/O.

Units: token counts are integers; loads are dimensionless floats (1.0 = the executor's
capacity is in use); times handed to core/ are seconds on a monotonic clock chosen by the
caller; credits are integer micro-credits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Finish reasons, as in the OpenAI API.
FINISH_STOP = "stop"
FINISH_LENGTH = "length"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One chat message: ``role`` is ``system``, ``user`` or ``assistant``."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """A text-generation request, independent of transport.

    Chat mode when ``messages`` is non-empty, else completion mode on ``prompt``.

    - ``max_tokens``: upper bound on generated tokens (>= 1).
    - ``temperature`` in [0, 2]; 0 means greedy. ``top_p`` in (0, 1].
    - ``stop``: generation ends before any of these strings.
    - ``continuation``: text of the answer already delivered to the user by an earlier,
      failed attempt; the executor must produce only what follows it (used for re-dispatch
      when an executor dies mid-stream, so the user still receives one complete answer).
    - ``route``: PeerIds this request already passed through (never offload back to them).
    - ``prompt_ids``: a token-ID prompt (completion mode, ``prompt`` then empty): ids of the
      model's own tokenizer, fed as they are.
    - ``echo``: the answer starts with the prompt itself (completion mode); with ``logprobs``
      the prompt tokens are scored too (the first has no log-probability). ``max_tokens`` may
      then be 0: the prompt is only scored (loglikelihood evaluation).
    - ``logprobs``: None, or k >= 0: every generated (and echoed) token comes with its natural
      log-probability and the k most likely alternatives (:class:`TokenLogprob`).
    - ``presence_penalty`` / ``frequency_penalty`` in [-2, 2]: OpenAI's penalties, subtracted
      from the logits of tokens already generated (once / per occurrence).
    - ``logit_bias``: ``(token id, bias)`` pairs added to the logits, bias in [-100, 100].

    Executors honour the fields beyond the basics only if they can (see
    :meth:`features_used` and ``Executor.features``) and refuse the rest.
    """

    request_id: str
    model: str
    prompt: str = ""
    messages: tuple[ChatMessage, ...] = ()
    max_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    continuation: str = ""
    route: tuple[str, ...] = ()
    prompt_ids: tuple[int, ...] = ()
    echo: bool = False
    logprobs: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()

    @property
    def is_chat(self) -> bool:
        return bool(self.messages)

    def features_used(self) -> tuple[tuple[str, str], ...]:
        """``(feature, OpenAI parameter)`` for each optional feature this request uses.

        Features: ``prompt_ids`` (param ``prompt``), ``echo``, ``logprobs``, ``penalties``
        (``presence_penalty`` / ``frequency_penalty``), ``logit_bias``. An executor that lacks
        one refuses the request naming the parameter.
        """
        out: list[tuple[str, str]] = []
        if self.prompt_ids:
            out.append(("prompt_ids", "prompt"))
        if self.echo:
            out.append(("echo", "echo"))
        if self.logprobs is not None:
            out.append(("logprobs", "logprobs"))
        if self.presence_penalty:
            out.append(("penalties", "presence_penalty"))
        if self.frequency_penalty:
            out.append(("penalties", "frequency_penalty"))
        if self.logit_bias:
            out.append(("logit_bias", "logit_bias"))
        return tuple(out)

    def prompt_text(self) -> str:
        """A plain-text rendering of the prompt, for executors without a chat template.

        Chat messages render as ``"<Role>: <content>\\n"`` lines followed by ``"Assistant:"``.
        """
        if not self.messages:
            return self.prompt
        lines = [f"{m.role.capitalize()}: {m.content}" for m in self.messages]
        return "\n".join(lines) + "\nAssistant:"


@dataclass(frozen=True, slots=True)
class Usage:
    """Token accounting of one finished generation (OpenAI's ``usage``)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: prompt tokens the model did not see (the start of a prompt longer than its context
    #: window is cut); ``prompt_tokens`` counts them too (every token of the prompt as given)
    prompt_tokens_dropped: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One token of an answer with its log-probability (requests with ``logprobs``).

    ``token``: the token's text (decoded alone, special tokens shown); ``logprob``: natural
    log-probability under the model (None for the first token of an echoed prompt, which has
    no prediction); ``top``: the k most likely tokens at that position, ``(text, logprob)``,
    most likely first.
    """

    token: str
    logprob: float | None
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class GenerationChunk:
    """A piece of streamed output.

    Every chunk but the last has ``finish_reason is None``. The last chunk of a stream has
    ``finish_reason`` (``"stop"`` or ``"length"``) and ``usage`` set; its ``text`` may be empty.
    ``logprobs`` (requests with ``logprobs``): the tokens produced since the previous chunk,
    one entry per token (over a whole answer, one per generated token, eos and the tokens of
    a matched stop string included, after one per prompt token when echoing).
    """

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
    logprobs: tuple[TokenLogprob, ...] = ()

    @property
    def is_final(self) -> bool:
        return self.finish_reason is not None


@dataclass(frozen=True, slots=True)
class RoutedChunk:
    """A chunk as the node hands it to its users: ``executor`` is the PeerId that produced it."""

    chunk: GenerationChunk
    executor: str


@dataclass(frozen=True, slots=True)
class LoadSnapshot:
    """An executor's instantaneous load.

    - ``running``: sequences being generated now; ``queued``: admitted but waiting.
    - ``capacity``: sequences it can run concurrently (>= 1).
    - ``kv_usage``: fraction of KV-cache/token budget in use, in [0, 1] (0 if unknown).

    :attr:`load` = max((running + queued) / capacity, kv_usage); 1.0 means full, above 1.0
    means requests are queueing.
    """

    running: int = 0
    queued: int = 0
    capacity: int = 1
    kv_usage: float = 0.0

    @property
    def load(self) -> float:
        return max((self.running + self.queued) / max(1, self.capacity), self.kv_usage)

    @property
    def idle_slots(self) -> int:
        return max(0, self.capacity - self.running - self.queued)


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """What a peer announces about itself on the ``status`` topic.

    ``seq`` increases with every announcement of one incarnation; a restarted node starts a
    new ``incarnation`` (larger) so its first status replaces the old entry. ``stake`` is in
    micro-credits. ``api_url`` is the peer's public HTTP API, if it advertises one.
    ``ledger_digest`` summarises the peer's ledger replica (chain heads and proofs): a digest
    that differs from ours means one of us misses blocks, so we compare heads and pull.
    ``judges``: the peer answers ``/wwwserve/judge/1`` (it has a judging method).
    """

    peer_id: str
    incarnation: int
    seq: int
    models: tuple[str, ...]
    load: LoadSnapshot
    accepting: bool
    stake: int = 0
    delegated_running: int = 0
    max_delegated: int = 0
    addrs: tuple[str, ...] = ()
    api_url: str = ""
    ledger_digest: str = ""
    judges: bool = False
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class ModelCard:
    """A model reachable from a node: served ``local``ly and/or by the ``peers`` listed."""

    id: str
    local: bool
    peers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Offer:
    """An executor's answer to a delegation probe: ``load`` now; ``expected_ttft_s`` and
    ``s_per_token`` its own estimates (s; 0 = unknown) of the time to first token and per output
    token, which the requester weighs with stake when several accept (issue 12)."""

    accepted: bool
    reason: str = ""
    load: float = 0.0
    expected_ttft_s: float = 0.0
    s_per_token: float = 0.0


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """A failure reported by the executing peer: ``code`` is machine-readable
    (``model_not_found``, ``invalid_request``, ``executor_error``, ``wrong_network``, ...)."""

    code: str
    message: str
