"""OpenAI wire format: request parsing/validation and response, chunk and error shapes.

Pure functions, no I/O. Two modes share everything: ``chat`` (``/v1/chat/completions``,
objects ``chat.completion`` / ``chat.completion.chunk``) and ``completion``
(``/v1/completions``, object ``text_completion``).

Every parameter of OpenAI's chat-completions and completions references is either honoured
or refused with a 400 naming it (:class:`RequestValidationError`, ``param`` set); a field
that is in neither reference is refused too ("unrecognized request argument"), as OpenAI
does. ``null`` for an optional field means "not given". See :data:`CHAT_PARAMS` and
:data:`COMPLETION_PARAMS` for the table; in short:

- honoured by the API: ``model``, ``messages`` (roles ``system``/``developer`` (read as
  system)/``user``/``assistant``, content a string or text parts), completion ``prompt`` (a
  string, a list of strings, a list of token ids or a list of lists of token ids; one
  choice per prompt), ``n`` (1..:data:`MAX_N`: independent generations, choice ``j`` seeded
  ``seed + j`` when ``seed`` is given), ``max_tokens`` / ``max_completion_tokens`` (above the
  node's ``max_tokens_cap`` refused, never silently capped), ``stream``, ``stream_options``
  (``include_usage``; ``include_obfuscation`` false), ``temperature``, ``top_p``, ``stop``,
  ``seed``, ``logprobs`` / ``top_logprobs`` (chat: bool + 0..20; completions: int 0..5),
  ``echo`` and ``max_tokens=0`` with echo (completions), ``presence_penalty`` /
  ``frequency_penalty`` in [-2, 2], ``logit_bias`` (token id -> [-100, 100]),
  ``best_of`` = ``n`` (completions; larger refused), ``response_format`` ``{"type": "text"}``,
  ``modalities`` ``["text"]``, ``service_tier`` ``auto``/``default``, ``store`` false.
- executor-dependent (token-ID prompts, echo, logprobs, penalties, logit bias): carried in
  the :class:`GenerationRequest`; an executor that cannot honour one refuses it naming the
  parameter (400), and a peer that cannot declines the delegation probe.
- advisory, validated and without effect on the output by their definition: ``user``,
  ``safety_identifier``, ``prompt_cache_key`` (identifiers for abuse monitoring and caching).
- refused (400 naming the parameter): ``tools``, ``tool_choice`` (other than ``"none"``),
  ``parallel_tool_calls``, ``functions``, ``function_call``, ``response_format``
  ``json_object``/``json_schema``, ``audio``, ``modalities`` with audio, ``prediction``,
  ``reasoning_effort``, ``verbosity``, ``web_search_options``, ``metadata``, ``store`` true,
  other ``service_tier`` values, ``suffix``, ``best_of`` > ``n``, message ``name`` /
  ``tool_calls`` / ``function_call`` / ``audio``, non-text content parts, and the roles
  ``tool`` / ``function``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..core.types import (FINISH_STOP, ChatMessage, GenerationRequest, ModelCard, TokenLogprob,
                          Usage)
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
#: Largest ``n``; most choices (prompts x n) in one request; most prompts in one request.
MAX_N = 16
MAX_CHOICES = 128
MAX_PROMPTS = 128
#: Most ``top_logprobs`` (chat) and ``logprobs`` (completions), as OpenAI.
MAX_TOP_LOGPROBS_CHAT = 20
MAX_LOGPROBS_COMPLETION = 5
#: Most ``logit_bias`` entries.
MAX_LOGIT_BIAS = 300
#: Longest token-ID prompt accepted.
MAX_PROMPT_IDS = 1 << 16
#: SSE terminator of every stream.
SSE_DONE = b"data: [DONE]\n\n"

_CHAT_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}

#: How the API treats each chat-completions parameter (OpenAI's reference): ``honoured``,
#: ``executor`` (honoured when the executor can, else 400 naming it), ``advisory`` (validated,
#: no effect on output by definition), ``refused`` (400 unless given its no-op value).
CHAT_PARAMS: dict[str, str] = {
    "model": "honoured", "messages": "honoured", "n": "honoured", "max_tokens": "honoured",
    "max_completion_tokens": "honoured", "stream": "honoured", "stream_options": "honoured",
    "temperature": "honoured", "top_p": "honoured", "stop": "honoured", "seed": "honoured",
    "logprobs": "executor", "top_logprobs": "executor", "presence_penalty": "executor",
    "frequency_penalty": "executor", "logit_bias": "executor",
    "response_format": "refused (except {\"type\": \"text\"})",
    "modalities": "refused (except [\"text\"])", "service_tier": "refused (except auto/default)",
    "store": "refused (except false)", "user": "advisory", "safety_identifier": "advisory",
    "prompt_cache_key": "advisory", "tools": "refused", "tool_choice": "refused (except \"none\")",
    "parallel_tool_calls": "refused", "functions": "refused", "function_call": "refused",
    "audio": "refused", "prediction": "refused", "reasoning_effort": "refused",
    "verbosity": "refused", "web_search_options": "refused", "metadata": "refused",
}
#: The same for completions.
COMPLETION_PARAMS: dict[str, str] = {
    "model": "honoured", "prompt": "honoured (token-ID prompts: executor)", "n": "honoured",
    "max_tokens": "honoured", "stream": "honoured", "stream_options": "honoured",
    "temperature": "honoured", "top_p": "honoured", "stop": "honoured", "seed": "honoured",
    "best_of": "honoured when equal to n, else refused", "echo": "executor",
    "logprobs": "executor", "presence_penalty": "executor", "frequency_penalty": "executor",
    "logit_bias": "executor", "user": "advisory", "suffix": "refused",
}


class RequestValidationError(InvalidRequest):
    """An OpenAI request body is invalid; ``param`` names the offending field (or None)."""

    def __init__(self, message: str, param: str | None = None):
        self.param = param
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """A validated OpenAI request.

    ``request`` is what the node serves for choice 0; ``choices`` holds one request per
    choice index (``len(prompts) * n`` of them, prompt-major: choice ``i * n + j`` is prompt
    ``i``, sample ``j``; ``choices[0] is request``); ``stream`` / ``include_usage`` drive the
    response shape; ``chat`` selects the mode; ``created`` is the Unix time (s) stamped on
    responses; ``n`` the samples per prompt; ``logprobs`` whether choices carry logprobs.
    """

    request: GenerationRequest
    chat: bool
    stream: bool = False
    include_usage: bool = False
    created: int = 0
    choices: tuple[GenerationRequest, ...] = ()
    n: int = 1
    logprobs: bool = False

    def all_choices(self) -> tuple[GenerationRequest, ...]:
        """``choices`` (``(request,)`` when built without them)."""
        return self.choices or (self.request,)


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
    _check_known(body, CHAT_PARAMS)
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise RequestValidationError("'messages' must be a non-empty array", "messages")
    messages = tuple(_parse_message(m, i) for i, m in enumerate(raw))
    return _parse_common(body, chat=True, messages=messages, prompts=[""],
                         max_tokens_cap=max_tokens_cap)


def parse_completion_request(body: Mapping[str, Any], *, max_tokens_cap: int = 4096) -> ParsedRequest:
    """Validate a ``/v1/completions`` body into a :class:`ParsedRequest` (completion mode)."""
    _check_known(body, COMPLETION_PARAMS)
    return _parse_common(body, chat=False, messages=(), prompts=_parse_prompts(body.get("prompt")),
                         max_tokens_cap=max_tokens_cap)


def _check_known(body: Mapping[str, Any], known: Mapping[str, str]) -> None:
    for key in body:
        if key not in known:
            raise RequestValidationError(f"Unrecognized request argument supplied: {key}", key)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _parse_prompts(prompt: Any) -> list[str | tuple[int, ...]]:
    """The prompts of a completion request: strings or token-ID tuples."""
    if isinstance(prompt, str):
        return [prompt]
    err = ("'prompt' must be a string, an array of strings, an array of token ids or an "
           "array of arrays of token ids")
    if not isinstance(prompt, list) or not prompt:
        raise RequestValidationError(err, "prompt")
    if all(_is_int(t) for t in prompt):
        prompts: list[str | tuple[int, ...]] = [tuple(prompt)]
    elif all(isinstance(p, str) for p in prompt):
        prompts = list(prompt)
    elif all(isinstance(p, list) and p and all(_is_int(t) for t in p) for p in prompt):
        prompts = [tuple(p) for p in prompt]
    else:
        raise RequestValidationError(err, "prompt")
    if len(prompts) > MAX_PROMPTS:
        raise RequestValidationError(f"'prompt' may hold at most {MAX_PROMPTS} prompts", "prompt")
    for p in prompts:
        if isinstance(p, tuple) and (len(p) > MAX_PROMPT_IDS or any(t < 0 for t in p)):
            raise RequestValidationError(
                f"token-ID prompts must be at most {MAX_PROMPT_IDS} ids >= 0", "prompt")
    return prompts


def _parse_message(m: Any, i: int) -> ChatMessage:
    param = f"messages[{i}]"
    if not isinstance(m, dict):
        raise RequestValidationError(f"'{param}' must be an object", param)
    role = m.get("role")
    if not isinstance(role, str) or role not in _CHAT_ROLES:
        raise RequestValidationError(
            f"'{param}.role' must be one of system, developer, user, assistant; got {role!r}"
            " (tool and function messages are not supported: tools are not)",
            f"{param}.role")
    for key, value in m.items():
        if key in ("role", "content"):
            continue
        if key == "refusal" and value is None:
            continue
        if key in ("tool_calls", "function_call", "audio") and value in (None, []):
            continue
        raise RequestValidationError(f"'{param}.{key}' is not supported", f"{param}.{key}")
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


def _refuse(param: str, why: str) -> RequestValidationError:
    return RequestValidationError(f"'{param}' is not supported by this node: {why}", param)


def _check_refused(body: Mapping[str, Any], chat: bool) -> None:
    """400 for the parameters this node refuses (unless given their no-op value)."""
    g = body.get
    if chat:
        if g("tools") not in (None, []):
            raise _refuse("tools", "tool calling is not implemented; the models here are plain "
                          "text generators")
        if g("tool_choice") not in (None, "none"):
            raise _refuse("tool_choice", "tool calling is not implemented")
        for key in ("parallel_tool_calls", "functions", "function_call"):
            if g(key) is not None:
                raise _refuse(key, "tool/function calling is not implemented")
        rf = g("response_format")
        if rf is not None:
            if not isinstance(rf, dict) or "type" not in rf:
                raise RequestValidationError("'response_format' must be an object with a 'type'",
                                             "response_format")
            if rf.get("type") != "text":
                raise _refuse("response_format", f"type {rf.get('type')!r}: constrained (JSON) "
                              "decoding is not implemented, only {\"type\": \"text\"}")
        mod = g("modalities")
        if mod is not None and mod != ["text"]:
            raise _refuse("modalities", "only [\"text\"] output")
        for key, why in (("audio", "audio output is not implemented"),
                         ("prediction", "predicted outputs are not implemented"),
                         ("reasoning_effort", "the models here are not reasoning models"),
                         ("verbosity", "the models here have no verbosity control"),
                         ("web_search_options", "web search is not implemented"),
                         ("metadata", "completions are not stored, so there is nothing to tag")):
            if g(key) is not None:
                raise _refuse(key, why)
        if g("store") not in (None, False):
            raise _refuse("store", "completions are not stored (store=false only)")
        if g("service_tier") not in (None, "auto", "default"):
            raise _refuse("service_tier", "only 'auto' and 'default'")
        for key in ("user", "safety_identifier", "prompt_cache_key"):
            if g(key) is not None and (not isinstance(g(key), str) or len(g(key)) > 512):
                raise RequestValidationError(f"'{key}' must be a string of at most 512 characters",
                                             key)
    else:
        if g("suffix") not in (None, ""):
            raise _refuse("suffix", "insertion (fill-in-the-middle) is not implemented")
        if g("user") is not None and (not isinstance(g("user"), str) or len(g("user")) > 512):
            raise RequestValidationError("'user' must be a string of at most 512 characters", "user")


def _parse_common(body: Mapping[str, Any], *, chat: bool, messages: tuple[ChatMessage, ...],
                  prompts: Sequence[str | tuple[int, ...]], max_tokens_cap: int) -> ParsedRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestValidationError("'model' must be a non-empty string", "model")
    _check_refused(body, chat)

    n = body.get("n")
    if n is None:
        n = 1
    elif not _is_int(n) or not 1 <= n <= MAX_N:
        raise RequestValidationError(f"'n' must be an integer in [1, {MAX_N}]", "n")
    if not chat:
        best_of = body.get("best_of")
        if best_of is not None and (not _is_int(best_of) or best_of != n):
            raise RequestValidationError(
                "'best_of' other than n is not supported: choosing the best of several "
                "samples is not implemented (best_of = n, or omit it)", "best_of")
    if len(prompts) * n > MAX_CHOICES:
        raise RequestValidationError(
            f"prompts x n = {len(prompts) * n} choices exceeds {MAX_CHOICES}", "n")

    echo = False
    if not chat:
        echo = body.get("echo")
        if echo is None:
            echo = False
        elif not isinstance(echo, bool):
            raise RequestValidationError("'echo' must be a boolean", "echo")

    max_tokens: Any = DEFAULT_MAX_TOKENS
    for key in ("max_tokens", "max_completion_tokens"):  # the later one wins
        value = body.get(key)
        if value is None:
            continue
        low = 0 if echo else 1
        if not _is_int(value) or value < low:
            raise RequestValidationError(
                f"'{key}' must be an integer >= {low}" + ("" if echo else " (0 only with echo)"), key)
        if value > max_tokens_cap:
            raise RequestValidationError(
                f"'{key}'={value} exceeds this node's limit of {max_tokens_cap} tokens", key)
        max_tokens = value

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
    if seed is not None and not _is_int(seed):
        raise RequestValidationError("'seed' must be an integer", "seed")

    penalties = {}
    for key in ("presence_penalty", "frequency_penalty"):
        v = body.get(key)
        if v is None:
            v = 0.0
        elif not _is_number(v) or not -2.0 <= v <= 2.0:
            raise RequestValidationError(f"'{key}' must be a number in [-2, 2]", key)
        penalties[key] = float(v)

    logit_bias: tuple[tuple[int, float], ...] = ()
    lb = body.get("logit_bias")
    if lb is not None:
        if not isinstance(lb, dict) or len(lb) > MAX_LOGIT_BIAS:
            raise RequestValidationError(
                f"'logit_bias' must be an object of at most {MAX_LOGIT_BIAS} token id -> bias",
                "logit_bias")
        items = []
        for k, v in lb.items():
            try:
                tid = int(k)
            except (TypeError, ValueError):
                tid = -1
            if tid < 0 or str(tid) != str(k).strip() or not _is_number(v) or not -100 <= v <= 100:
                raise RequestValidationError(
                    "'logit_bias' keys must be token ids (integers >= 0) and values numbers in "
                    "[-100, 100]", "logit_bias")
            if v:
                items.append((tid, float(v)))
        logit_bias = tuple(sorted(items))

    logprobs: int | None = None
    lp = body.get("logprobs")
    if chat:
        top = body.get("top_logprobs")
        if lp is not None and not isinstance(lp, bool):
            raise RequestValidationError("'logprobs' must be a boolean", "logprobs")
        if top is not None:
            if not _is_int(top) or not 0 <= top <= MAX_TOP_LOGPROBS_CHAT:
                raise RequestValidationError(
                    f"'top_logprobs' must be an integer in [0, {MAX_TOP_LOGPROBS_CHAT}]", "top_logprobs")
            if not lp:
                raise RequestValidationError("'top_logprobs' requires 'logprobs': true", "top_logprobs")
        if lp:
            logprobs = int(top or 0)
    elif lp is not None:
        if not _is_int(lp) or not 0 <= lp <= MAX_LOGPROBS_COMPLETION:
            raise RequestValidationError(
                f"'logprobs' must be an integer in [0, {MAX_LOGPROBS_COMPLETION}]", "logprobs")
        logprobs = int(lp)

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
        for key in options:
            if key not in ("include_usage", "include_obfuscation"):
                raise RequestValidationError(f"Unrecognized argument stream_options.{key}",
                                             f"stream_options.{key}")
        iu = options.get("include_usage")
        if iu is not None and not isinstance(iu, bool):
            raise RequestValidationError("'stream_options.include_usage' must be a boolean",
                                         "stream_options.include_usage")
        if options.get("include_obfuscation") not in (None, False):
            raise _refuse("stream_options.include_obfuscation",
                          "stream chunks are not padded (include_obfuscation=false only)")
        include_usage = bool(iu)

    base_id = new_request_id(chat)
    base = GenerationRequest(
        request_id=base_id,
        model=model,
        messages=messages,
        max_tokens=int(max_tokens),
        temperature=float(temperature),
        top_p=float(top_p),
        stop=stop,
        seed=seed,
        echo=bool(echo),
        logprobs=logprobs,
        presence_penalty=penalties["presence_penalty"],
        frequency_penalty=penalties["frequency_penalty"],
        logit_bias=logit_bias,
    )
    choices = []
    for i, prompt in enumerate(prompts):
        for j in range(n):
            index = i * n + j
            choices.append(replace(
                base, request_id=base_id if index == 0 else f"{base_id}-{index}",
                prompt=prompt if isinstance(prompt, str) else "",
                prompt_ids=prompt if isinstance(prompt, tuple) else (),
                seed=None if seed is None else seed + j))
    return ParsedRequest(request=choices[0], chat=chat, stream=stream,
                         include_usage=include_usage and stream, created=int(time.time()),
                         choices=tuple(choices), n=n, logprobs=logprobs is not None)


# ----------------------------------------------------------------------------- responses


def usage_json(usage: Usage | None) -> dict[str, int]:
    """OpenAI ``usage`` object (zeros when ``usage`` is None)."""
    u = usage or Usage()
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens}


def sum_usage(parsed: ParsedRequest, usages: Sequence[Usage | None]) -> Usage:
    """The usage of a whole request from its choices' usages (in choice order): completion
    tokens summed over choices, prompt tokens counted once per prompt (from the first choice
    of each prompt, as OpenAI counts ``n``), dropped prompt tokens likewise."""
    prompt = completion = dropped = 0
    for index, u in enumerate(usages):
        if u is None:
            continue
        completion += u.completion_tokens
        if index % max(1, parsed.n) == 0:
            prompt += u.prompt_tokens
            dropped += u.prompt_tokens_dropped
    return Usage(prompt, completion, dropped)


def wwwserve_extension(executors: Iterable[str], usage: Usage | None = None) -> dict[str, Any]:
    """The ``x_wwwserve`` field: first executor and all distinct executors in order, and, only
    when the prompt was cut, ``prompt_tokens_dropped``: prompt tokens the model did not see
    (the start of a prompt longer than its context window)."""
    ex = list(dict.fromkeys(executors))
    out: dict[str, Any] = {"executor": ex[0] if ex else None, "executors": ex}
    if usage is not None and usage.prompt_tokens_dropped:
        out["prompt_tokens_dropped"] = usage.prompt_tokens_dropped
    return out


def _envelope(parsed: ParsedRequest, obj: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
    """Fields every response object and chunk shares (OpenAI's layout)."""
    return {"id": parsed.request.request_id, "object": obj, "created": parsed.created,
            "model": parsed.request.model, "system_fingerprint": None, "choices": choices}


def _bytes(token: str) -> list[int]:
    return list(token.encode("utf-8"))


def logprobs_json(parsed: ParsedRequest, entries: Sequence[TokenLogprob],
                  offset: int = 0) -> dict[str, Any] | None:
    """A choice's ``logprobs`` for ``entries`` (None when the request asked for none).

    Chat: ``{"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob",
    "bytes"}]}], "refusal": None}``. Completions (legacy shape): ``{"tokens",
    "token_logprobs", "top_logprobs", "text_offset"}``, where each ``top_logprobs`` entry maps
    the k most likely tokens and the chosen one to their logprobs (None for the first echoed
    prompt token) and ``text_offset`` is each token's character offset in the choice's text,
    starting at ``offset``.
    """
    if not parsed.logprobs:
        return None
    if parsed.chat:
        return {"content": [{
            "token": e.token, "logprob": e.logprob if e.logprob is not None else 0.0,
            "bytes": _bytes(e.token),
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": _bytes(t)} for t, lp in e.top],
        } for e in entries], "refusal": None}
    offsets = []
    for e in entries:
        offsets.append(offset)
        offset += len(e.token)
    tops: list[dict[str, float] | None] = []
    for e in entries:
        if e.logprob is None:
            tops.append(None)
            continue
        top = dict(e.top)
        top.setdefault(e.token, e.logprob)
        tops.append(top)
    return {"tokens": [e.token for e in entries],
            "token_logprobs": [e.logprob for e in entries],
            "top_logprobs": tops, "text_offset": offsets}


@dataclass(frozen=True, slots=True)
class ChoiceResult:
    """One finished choice: ``index``, its text, finish reason, usage and logprob entries."""

    index: int
    text: str
    finish_reason: str | None
    usage: Usage | None = None
    logprobs: tuple[TokenLogprob, ...] = ()


def completion_response(parsed: ParsedRequest, *, text: str = "", finish_reason: str | None = None,
                        usage: Usage | None = None, executors: Iterable[str] = (),
                        choices: Sequence[ChoiceResult] | None = None) -> dict[str, Any]:
    """The non-streaming response body (``chat.completion`` or ``text_completion``).

    ``choices`` (one :class:`ChoiceResult` per choice, any order) or, for a single choice,
    ``text`` / ``finish_reason`` / ``usage``; ``usage`` is then the total (else summed with
    :func:`sum_usage`)."""
    if choices is None:
        choices = [ChoiceResult(0, text, finish_reason, usage)]
    else:
        choices = sorted(choices, key=lambda c: c.index)
        if usage is None:
            usage = sum_usage(parsed, [c.usage for c in choices])
    out_choices = []
    for c in choices:
        if parsed.chat:
            out_choices.append({
                "index": c.index,
                "message": {"role": "assistant", "content": c.text, "refusal": None},
                "logprobs": logprobs_json(parsed, c.logprobs),
                "finish_reason": c.finish_reason or FINISH_STOP,
            })
        else:
            out_choices.append({"index": c.index, "text": c.text,
                                "logprobs": logprobs_json(parsed, c.logprobs),
                                "finish_reason": c.finish_reason or FINISH_STOP})
    out = _envelope(parsed, "chat.completion" if parsed.chat else "text_completion", out_choices)
    out["usage"] = usage_json(usage)
    out["x_wwwserve"] = wwwserve_extension(executors, usage)
    return out


def stream_chunk(parsed: ParsedRequest, *, text: str, first: bool = False,
                 finish_reason: str | None = None,
                 executors: Iterable[str] | None = None, index: int = 0,
                 logprobs: Sequence[TokenLogprob] = (), offset: int = 0,
                 usage: Usage | None = None) -> dict[str, Any]:
    """One streamed chunk (``chat.completion.chunk`` or ``text_completion``) of choice ``index``.

    Chat: ``delta`` carries ``role: "assistant"`` on the ``first`` chunk and ``content`` when
    ``text`` is non-empty. With ``include_usage`` every chunk has ``usage: null`` (the totals
    come in :func:`usage_chunk`). ``executors`` (given on the final chunk) adds ``x_wwwserve``
    (with ``usage``'s dropped prompt tokens). ``logprobs``: this chunk's token entries
    (``offset``: text offset of the chunk in its choice, completions).
    """
    lp = logprobs_json(parsed, logprobs, offset)
    if parsed.chat:
        delta: dict[str, Any] = {}
        if first:
            delta["role"] = "assistant"
        if text or first:
            delta["content"] = text
        choice: dict[str, Any] = {"index": index, "delta": delta, "logprobs": lp,
                                  "finish_reason": finish_reason}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": index, "text": text, "logprobs": lp, "finish_reason": finish_reason}
        obj = "text_completion"
    out = _envelope(parsed, obj, [choice])
    if parsed.include_usage:
        out["usage"] = None
    if executors is not None:
        out["x_wwwserve"] = wwwserve_extension(executors, usage)
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


def model_json(card: ModelCard) -> dict[str, Any]:
    """One OpenAI model object (``GET /v1/models/{id}``): ``owned_by`` ``local`` or ``network``."""
    return {
        "id": card.id,
        "object": "model",
        "created": 0,
        "owned_by": "local" if card.local else "network",
        "x_wwwserve": {"local": card.local, "peers": list(card.peers)},
    }


def models_list(cards: Iterable[ModelCard]) -> dict[str, Any]:
    """``GET /v1/models`` body: OpenAI list of models, ``owned_by`` ``local`` or ``network``."""
    return {"object": "list", "data": [model_json(c) for c in cards]}


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

    RequestValidationError / InvalidRequest (``param`` from the exception) → 400, a remote
    ``invalid_request`` → 400, ModelNotFound → 404 (``model_not_found``),
    NoExecutorAvailable → 503, RequestTimeout → 504, RemoteError → 502; anything else → 500
    with a generic message (the caller logs it). One-element exception groups are unwrapped.
    """
    exc = _leaf(exc)
    if isinstance(exc, ModelNotFound):
        return 404, error_body(str(exc), "invalid_request_error", "model", "model_not_found")
    if isinstance(exc, RequestValidationError):
        return 400, error_body(str(exc), "invalid_request_error", exc.param, None)
    if isinstance(exc, InvalidRequest):
        return 400, error_body(str(exc), "invalid_request_error", getattr(exc, "param", None),
                               None)
    if isinstance(exc, NoExecutorAvailable):
        return 503, error_body(str(exc) or "no executor available", "server_error", None,
                               "no_executor_available")
    if isinstance(exc, RequestTimeout):
        return 504, error_body(str(exc) or "request timed out", "server_error", None, "timeout")
    if isinstance(exc, RemoteError) and exc.code == "invalid_request":
        # the executing peer found the request invalid (it would be so anywhere)
        return 400, error_body(str(exc), "invalid_request_error", None, "invalid_request")
    if isinstance(exc, RemoteError):
        return 502, error_body(str(exc), "server_error", None, exc.code or "remote_error")
    return 500, error_body("internal server error", "server_error", None, "internal_error")

