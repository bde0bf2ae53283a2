"""OpenAI wire format: request parsing/validation and response, chunk and error shapes.

Pure functions, no I/O. Two modes share everything: ``chat`` (``/v1/chat/completions``,
objects ``chat.completion`` / ``chat.completion.chunk``) and ``completion``
(``/v1/completions``, object ``text_completion``).

Validation follows the OpenAI API where it matters to us and ignores fields we do not know:

- ``model``: required non-empty string.
- chat ``messages``: non-empty list of ``{"role", "content"}``; role ``system`` / ``user`` /
  ``assistant`` (``developer`` is read as ``system``); content a string or a list of
  ``{"type": "text", "text": str}`` parts (joined without separator); an assistant message
  may have ``content: null``.
- completion ``prompt``: a string or a list holding exactly one string.
- ``max_completion_tokens`` (preferred) or ``max_tokens``: int >= 1, default
  :data:`DEFAULT_MAX_TOKENS`, silently capped at ``max_tokens_cap``.
- ``temperature`` in [0, 2]; ``top_p`` in (0, 1]; ``stop`` a string or a list of at most
  :data:`MAX_STOP` strings (empty strings dropped); ``seed`` an int; ``stream`` a bool;
  ``stream_options.include_usage`` a bool; ``n`` must be 1 when given.
- ``null`` for an optional field means "not given".
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..core.types import FINISH_STOP, ChatMessage, GenerationRequest, ModelCard, Usage
from ..errors import (
    InvalidRequest,
    ModelNotFound,
    NoExecutorAvailable,
    RemoteError,
    RequestTimeout,
)

#: ``max_tokens`` when the request gives none.
DEFAULT_MAX_TOKENS = 128
#: Most stop sequences accepted in one request.
MAX_STOP = 16
#: SSE terminator of every stream.
SSE_DONE = b"data: [DONE]\n\n"

_CHAT_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class RequestValidationError(InvalidRequest):
    """An OpenAI request body is invalid; ``param`` names the offending field (or None)."""

    def __init__(self, message: str, param: str | None = None):
        self.param = param
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """A validated OpenAI request.

    ``request`` is what the node serves; ``stream`` / ``include_usage`` drive the response
    shape; ``chat`` selects the mode; ``created`` is the Unix time (s) stamped on responses.
    """

    request: GenerationRequest
    chat: bool
    stream: bool = False
    include_usage: bool = False
    created: int = 0


def new_request_id(chat: bool) -> str:
    """A fresh id: ``chatcmpl-<32 hex>`` for chat, ``cmpl-<32 hex>`` for completions."""
    return f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"


def decode_json_body(body: bytes) -> dict[str, Any]:
    """Decode a request body that must be a JSON object; raises :class:`RequestValidationError`."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestValidationError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise RequestValidationError("request body must be a JSON object")
    return value


def parse_chat_request(body: Mapping[str, Any], *, max_tokens_cap: int = 4096) -> ParsedRequest:
    """Validate a ``/v1/chat/completions`` body into a :class:`ParsedRequest` (chat mode)."""
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise RequestValidationError("'messages' must be a non-empty array", "messages")
    messages = tuple(_parse_message(m, i) for i, m in enumerate(raw))
    return _parse_common(body, chat=True, messages=messages, prompt="", max_tokens_cap=max_tokens_cap)


def parse_completion_request(body: Mapping[str, Any], *, max_tokens_cap: int = 4096) -> ParsedRequest:
    """Validate a ``/v1/completions`` body into a :class:`ParsedRequest` (completion mode)."""
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise RequestValidationError("'prompt' as an array must hold exactly one string", "prompt")
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise RequestValidationError("'prompt' must be a string", "prompt")
    return _parse_common(body, chat=False, messages=(), prompt=prompt, max_tokens_cap=max_tokens_cap)


def _parse_message(m: Any, i: int) -> ChatMessage:
    param = f"messages[{i}]"
    if not isinstance(m, dict):
        raise RequestValidationError(f"'{param}' must be an object", param)
    role = m.get("role")
    if not isinstance(role, str) or role not in _CHAT_ROLES:
        raise RequestValidationError(
            f"'{param}.role' must be one of system, developer, user, assistant; got {role!r}",
            f"{param}.role")
    content = m.get("content")
    if content is None and role == "assistant":
        content = ""
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(
                    part.get("text"), str):
                raise RequestValidationError(
                    f"'{param}.content[{j}]' must be a text part {{\"type\": \"text\", \"text\": ...}}"
                    " (only text content is supported)", f"{param}.content")
            parts.append(part["text"])
        content = "".join(parts)
    if not isinstance(content, str):
        raise RequestValidationError(
            f"'{param}.content' must be a string or an array of text parts", f"{param}.content")
    return ChatMessage(role=_CHAT_ROLES[role], content=content)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _parse_common(body: Mapping[str, Any], *, chat: bool, messages: tuple[ChatMessage, ...],
                  prompt: str, max_tokens_cap: int) -> ParsedRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestValidationError("'model' must be a non-empty string", "model")

    n = body.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n != 1):
        raise RequestValidationError("only n=1 is supported", "n")

    max_tokens: Any = DEFAULT_MAX_TOKENS
    for key in ("max_tokens", "max_completion_tokens"):  # the later one wins
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise RequestValidationError(f"'{key}' must be an integer >= 1", key)
        max_tokens = value
    max_tokens = min(max_tokens, max(1, max_tokens_cap))

    temperature = body.get("temperature")
    if temperature is None:
        temperature = 1.0
    elif not _is_number(temperature) or not 0.0 <= temperature <= 2.0:
        raise RequestValidationError("'temperature' must be a number in [0, 2]", "temperature")

    top_p = body.get("top_p")
    if top_p is None:
        top_p = 1.0
    elif not _is_number(top_p) or not 0.0 < top_p <= 1.0:
        raise RequestValidationError("'top_p' must be a number in (0, 1]", "top_p")

    stop_raw = body.get("stop")
    stop: tuple[str, ...]
    if stop_raw is None:
        stop = ()
    elif isinstance(stop_raw, str):
        stop = (stop_raw,) if stop_raw else ()
    elif isinstance(stop_raw, list) and all(isinstance(s, str) for s in stop_raw):
        if len(stop_raw) > MAX_STOP:
            raise RequestValidationError(f"'stop' may hold at most {MAX_STOP} strings", "stop")
        stop = tuple(s for s in stop_raw if s)
    else:
        raise RequestValidationError("'stop' must be a string or an array of strings", "stop")

    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise RequestValidationError("'seed' must be an integer", "seed")

    stream = body.get("stream")
    if stream is None:
        stream = False
    elif not isinstance(stream, bool):
        raise RequestValidationError("'stream' must be a boolean", "stream")

    include_usage = False
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise RequestValidationError("'stream_options' must be an object", "stream_options")
        iu = options.get("include_usage")
        if iu is not None and not isinstance(iu, bool):
            raise RequestValidationError("'stream_options.include_usage' must be a boolean",
                                         "stream_options.include_usage")
        include_usage = bool(iu)

    request = GenerationRequest(
        request_id=new_request_id(chat),
        model=model,
        prompt=prompt,
        messages=messages,
        max_tokens=int(max_tokens),
        temperature=float(temperature),
        top_p=float(top_p),
        stop=stop,
        seed=seed,
    )
    return ParsedRequest(request=request, chat=chat, stream=stream,
                         include_usage=include_usage and stream, created=int(time.time()))


# ----------------------------------------------------------------------------- responses


def usage_json(usage: Usage | None) -> dict[str, int]:
    """OpenAI ``usage`` object (zeros when ``usage`` is None)."""
    u = usage or Usage()
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens}


def wwwserve_extension(executors: Iterable[str]) -> dict[str, Any]:
    """The ``x_wwwserve`` field: first executor and all distinct executors in order."""
    ex = list(dict.fromkeys(executors))
    return {"executor": ex[0] if ex else None, "executors": ex}


def _envelope(parsed: ParsedRequest, obj: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
    """Fields every response object and chunk shares (OpenAI's layout)."""
    return {"id": parsed.request.request_id, "object": obj, "created": parsed.created,
            "model": parsed.request.model, "system_fingerprint": None, "choices": choices}


def completion_response(parsed: ParsedRequest, *, text: str, finish_reason: str | None,
                        usage: Usage | None, executors: Iterable[str]) -> dict[str, Any]:
    """The non-streaming response body (``chat.completion`` or ``text_completion``)."""
    if parsed.chat:
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": None,
            "finish_reason": finish_reason or FINISH_STOP,
        }
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "logprobs": None,
                  "finish_reason": finish_reason or FINISH_STOP}
        obj = "text_completion"
    out = _envelope(parsed, obj, [choice])
    out["usage"] = usage_json(usage)
    out["x_wwwserve"] = wwwserve_extension(executors)
    return out


def stream_chunk(parsed: ParsedRequest, *, text: str, first: bool = False,
                 finish_reason: str | None = None,
                 executors: Iterable[str] | None = None) -> dict[str, Any]:
    """One streamed chunk (``chat.completion.chunk`` or ``text_completion``).

    Chat: ``delta`` carries ``role: "assistant"`` on the ``first`` chunk and ``content`` when
    ``text`` is non-empty. With ``include_usage`` every chunk has ``usage: null`` (the totals
    come in :func:`usage_chunk`). ``executors`` (given on the final chunk) adds ``x_wwwserve``.
    """
    if parsed.chat:
        delta: dict[str, Any] = {}
        if first:
            delta["role"] = "assistant"
        if text or first:
            delta["content"] = text
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None,
                                  "finish_reason": finish_reason}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        obj = "text_completion"
    out = _envelope(parsed, obj, [choice])
    if parsed.include_usage:
        out["usage"] = None
    if executors is not None:
        out["x_wwwserve"] = wwwserve_extension(executors)
    return out


def usage_chunk(parsed: ParsedRequest, usage: Usage | None) -> dict[str, Any]:
    """The extra last chunk sent with ``stream_options.include_usage``: no choices, ``usage``."""
    out = _envelope(parsed, "chat.completion.chunk" if parsed.chat else "text_completion", [])
    out["usage"] = usage_json(usage)
    return out


def sse_event(obj: Any) -> bytes:
    """``data: <json>\\n\\n`` (compact JSON, UTF-8)."""
    return b"data: " + dumps(obj) + b"\n\n"


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def models_list(cards: Iterable[ModelCard]) -> dict[str, Any]:
    """``GET /v1/models`` body: OpenAI list of models, ``owned_by`` ``local`` or ``network``."""
    data = [{
        "id": c.id,
        "object": "model",
        "created": 0,
        "owned_by": "local" if c.local else "network",
        "x_wwwserve": {"local": c.local, "peers": list(c.peers)},
    } for c in cards]
    return {"object": "list", "data": data}


# ----------------------------------------------------------------------------- errors


def error_body(message: str, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """OpenAI error JSON: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _leaf(exc: BaseException) -> BaseException:
    """The single leaf of nested one-element exception groups (else ``exc`` itself)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def error_for_exception(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """Map an exception to ``(HTTP status, OpenAI error body)``.

    RequestValidationError / InvalidRequest → 400, ModelNotFound → 404 (``model_not_found``),
    NoExecutorAvailable → 503, RequestTimeout → 504, RemoteError → 502; anything else → 500
    with a generic message (the caller logs it). One-element exception groups are unwrapped.
    """
    exc = _leaf(exc)
    if isinstance(exc, ModelNotFound):
        return 404, error_body(str(exc), "invalid_request_error", "model", "model_not_found")
    if isinstance(exc, RequestValidationError):
        return 400, error_body(str(exc), "invalid_request_error", exc.param, None)
    if isinstance(exc, InvalidRequest):
        return 400, error_body(str(exc), "invalid_request_error", None, None)
    if isinstance(exc, NoExecutorAvailable):
        return 503, error_body(str(exc) or "no executor available", "server_error", None,
                               "no_executor_available")
    if isinstance(exc, RequestTimeout):
        return 504, error_body(str(exc) or "request timed out", "server_error", None, "timeout")
    if isinstance(exc, RemoteError):
        return 502, error_body(str(exc), "server_error", None, exc.code or "remote_error")
    return 500, error_body("internal server error", "server_error", None, "internal_error")

