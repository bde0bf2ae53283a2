"""The Executor interface: anything that turns a GenerationRequest into streamed text.

A node owns exactly one executor. The node asks it for :meth:`Executor.load` to decide
whether to run a request locally or offload it, and calls :meth:`Executor.generate` both for
its own users' requests and for requests delegated by peers.

Contract (checked by :mod:`wwwserve_p2p.testing.conformance`):

- ``models()`` returns the non-empty tuple of model names it serves.
- ``generate(request)`` is an async generator of :class:`GenerationChunk`. Every chunk but the
  last has ``finish_reason is None``; the last has ``finish_reason`` in {"stop", "length"} and
  ``usage`` set, with ``usage.completion_tokens <= request.max_tokens``.
- It raises :class:`~wwwserve_p2p.errors.ModelNotFound` for a model it does not serve and
  :class:`~wwwserve_p2p.errors.InvalidRequest` for invalid parameters, before yielding anything.
- If ``request.continuation`` is non-empty, the output continues that text (it is not repeated).
- Closing the generator early (``aclose()``, or cancelling the consuming task) stops the work
  promptly and frees its capacity: ``load()`` returns to its idle value.
- It never blocks the trio event loop for more than a few milliseconds (heavy work runs on
  worker threads or in another process).
- ``load()`` is cheap and synchronous; ``running`` counts generations in progress,
  ``queued`` those waiting for a slot.
- ``aclose()`` releases resources; calling it twice is harmless.
- Optional request features (``GenerationRequest.features_used()``: token-ID prompts, echo,
  logprobs, penalties, logit bias) are honoured only when listed in :attr:`Executor.features`;
  otherwise :meth:`Executor.unsupported` names the parameter and ``generate`` raises it
  (:class:`InvalidRequest` with ``param`` set). A delegation peer declines probes for requests
  its executor cannot honour.
- ``max_tokens`` may be 0 only with ``echo`` (the prompt is returned and, with logprobs, scored).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

from ..core.types import GenerationChunk, GenerationRequest, LoadSnapshot
from ..errors import InvalidRequest, ModelNotFound


class Executor(ABC):
    """Abstract base class of executors. See the module docstring for the contract."""

    #: Short human-readable kind, e.g. ``"echo"``, ``"hf"``, ``"openai-upstream"``.
    kind: str = "abstract"
    #: Optional request features honoured (names of ``GenerationRequest.features_used()``).
    features: frozenset[str] = frozenset()

    @abstractmethod
    def models(self) -> tuple[str, ...]:
        """Names of the models this executor serves (non-empty)."""

    @abstractmethod
    def load(self) -> LoadSnapshot:
        """Current load; cheap, synchronous, never raises."""

    @abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Stream the answer to ``request`` (an async generator; see the module contract).

        :raises ModelNotFound: ``request.model`` is not in :meth:`models`.
        :raises InvalidRequest: parameters out of range.
        :raises ExecutorError: the backend failed.
        """

    async def start(self) -> None:
        """Prepare to serve (connect to a backend, discover models). Called by ``open_node``
        before the node announces the executor's models. Idempotent; the default does nothing.

        :raises ExecutorError: the backend cannot be reached.
        """

    async def aclose(self) -> None:
        """Release resources. Idempotent."""

    def unsupported(self, request: GenerationRequest) -> InvalidRequest | None:
        """Why this executor cannot honour ``request`` (an :class:`InvalidRequest` whose
        ``param`` names the OpenAI parameter), or None. Cheap and synchronous: the delegation
        server asks it before offering to serve a peer's request. The default checks the
        optional features against :attr:`features`; executors with limits (e.g. a cap on
        ``max_tokens``) extend it."""
        for feature, param in request.features_used():
            if feature not in self.features:
                return invalid(f"the {self.kind} executor serving {request.model!r} cannot honour "
                               f"'{param}'", param)
        return None

    def check_request(self, request: GenerationRequest) -> None:
        """Validate ``request`` against this executor; helper for implementations.

        :raises ModelNotFound: unknown model.
        :raises InvalidRequest: ``max_tokens < 1`` (``< 0`` with ``echo``), temperature outside
            [0, 2], top_p outside (0, 1], neither prompt nor messages given, or what
            :meth:`unsupported` reports.
        """
        if request.model not in self.models():
            raise ModelNotFound(request.model, self.models())
        if request.max_tokens < (0 if request.echo else 1):
            raise invalid(f"max_tokens must be >= 1, got {request.max_tokens}", "max_tokens")
        if not 0.0 <= request.temperature <= 2.0:
            raise invalid(f"temperature must be in [0, 2], got {request.temperature}", "temperature")
        if not 0.0 < request.top_p <= 1.0:
            raise invalid(f"top_p must be in (0, 1], got {request.top_p}", "top_p")
        if not request.prompt and not request.messages and not request.prompt_ids:
            raise invalid("a prompt or at least one message is required", "prompt")
        problem = self.unsupported(request)
        if problem is not None:
            raise problem


def invalid(message: str, param: str | None = None) -> InvalidRequest:
    """An :class:`InvalidRequest` with a ``param`` attribute naming the offending OpenAI
    parameter (None: the request as a whole); the HTTP API answers it with 400 naming it."""
    exc = InvalidRequest(message)
    exc.param = param  # type: ignore[attr-defined]
    return exc


def echo_plan(request: GenerationRequest, prompt_text: str) -> tuple[bool, str]:
    """``(echo the prompt now, continuation of the generated part)`` for ``request``.

    With ``echo`` the answer is ``prompt_text`` followed by the generated text. A re-dispatched
    request's ``continuation`` then starts with the echoed prompt (delivered as the first
    chunk): it is not echoed again and only the rest counts as continuation of the generation.
    """
    if not request.echo:
        return False, request.continuation
    if request.continuation and request.continuation.startswith(prompt_text):
        return False, request.continuation[len(prompt_text):]
    return not request.continuation, request.continuation
