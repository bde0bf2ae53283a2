"""OpenAIUpstreamExecutor: proxy to any OpenAI-compatible HTTP server.

Works with vLLM, SGLang, llama.cpp's server, Ollama, or another wwwserve node. Streaming is
Server-Sent Events (``data: {...}`` lines ending with ``data: [DONE]``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx
import trio

from ..core.types import (FINISH_LENGTH, FINISH_STOP, GenerationChunk, GenerationRequest,
                          LoadSnapshot, Usage)
from ..errors import ConfigError, ExecutorError, InvalidRequest, ModelNotFound
from .base import Executor
from .echo import SlotGate

#: Prompt added after the partial assistant message when continuing a chat answer.
CHAT_CONTINUE_PROMPT = ("Continue your previous answer exactly where it stopped. Do not repeat "
                        "anything already written and do not comment; output only the rest.")

#: Prometheus gauges read from ``GET /metrics`` (summed over label sets; usage: max).
_RUNNING = ("vllm:num_requests_running", "sglang:num_running_reqs",
            "llamacpp:requests_processing", "wwwserve_executor_running")
_WAITING = ("vllm:num_requests_waiting", "sglang:num_queue_reqs",
            "llamacpp:requests_deferred", "wwwserve_executor_queued")
_KV_USAGE = ("vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc", "sglang:token_usage",
             "llamacpp:kv_cache_usage_ratio")
_METRIC_LINE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)")

#: Seconds between two reads of the upstream's ``/metrics``; after a miss, ``_METRICS_BACKOFF``.
METRICS_INTERVAL = 1.0
_METRICS_BACKOFF = 30.0
#: Upstream metrics older than this are ignored by :meth:`OpenAIUpstreamExecutor.load`.
_METRICS_MAX_AGE = 5.0


def parse_prometheus(text: str) -> dict[str, list[float]]:
    """Parse Prometheus text exposition into ``{metric name: [values of each label set]}``."""
    out: dict[str, list[float]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _METRIC_LINE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        if math.isfinite(value):
            out.setdefault(m.group(1), []).append(value)
    return out


def _error_message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except Exception:
        return resp.text[:500].strip() or resp.reason_phrase
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            for key in ("message", "detail", "msg"):
                if isinstance(err.get(key), str):
                    return err[key]
        elif isinstance(err, str):
            return err
        if isinstance(body.get("detail"), (str, list)):
            return str(body["detail"])
    return str(body)[:500]


class OpenAIUpstreamExecutor(Executor):
    """Proxies requests to an OpenAI-compatible server at ``base_url``.

    :param base_url: e.g. ``"http://127.0.0.1:8000"`` (a trailing ``/v1`` is accepted).
    :param models: names served; ``None`` discovers them from ``GET /v1/models`` in
        :meth:`start` (called automatically by the first :meth:`generate`). Until then
        :meth:`models` raises :class:`ExecutorError`, so a node must ``await start()`` first.
    :param api_key: sent as ``Authorization: Bearer <api_key>``.
    :param capacity: requests forwarded concurrently; more wait here and count as queued.
    :param timeout: seconds for connecting and between two streamed reads.

    Requests: chat → ``POST /v1/chat/completions``, completion → ``POST /v1/completions``,
    always ``stream: true`` with ``stream_options.include_usage``. ``continuation``: in
    completion mode it is appended to the prompt (exact). In chat mode the partial answer is
    sent as an assistant message followed by a user message :data:`CHAT_CONTINUE_PROMPT`;
    this is best effort: the upstream model may rephrase or repeat part of the answer.

    Errors (raised before any chunk): HTTP 404 naming a model → :class:`ModelNotFound`;
    400/413/422 → :class:`InvalidRequest`; any other status, connection failures, timeouts,
    malformed or truncated streams → :class:`ExecutorError` with the upstream's message.
    A failure after chunks were yielded also raises :class:`ExecutorError` (the node may then
    re-dispatch with a continuation).

    Usage comes from the upstream's ``usage`` when it sends one, else ``completion_tokens``
    counts text chunks (``prompt_tokens`` 0); it is clamped to ``max_tokens``.

    Load: from its own in-flight requests; in addition, best effort, the upstream's
    Prometheus ``/metrics`` (vLLM ``vllm:num_requests_running``/``_waiting``/
    ``gpu_cache_usage_perc``, SGLang, llama.cpp and wwwserve equivalents) read at most once
    per :data:`METRICS_INTERVAL` in a background trio system task started by :meth:`load`
    or :meth:`generate`: ``running = max(own, upstream)``, ``queued = own + upstream
    waiting``, ``kv_usage`` from the cache gauge. Metrics older than 5 s are ignored.
    """

    kind = "openai-upstream"
    #: penalties and logit bias are forwarded to the upstream (which refuses them if it
    #: cannot: a 400 there is an InvalidRequest here); logprobs, echo and token-ID prompts are not
    #: relayed (their streamed shape is not parsed), so they are refused
    features = frozenset({"penalties", "logit_bias"})

    def __init__(self, base_url: str, models: tuple[str, ...] | None = None,
                 api_key: str | None = None, capacity: int = 8, timeout: float = 120.0):
        if not isinstance(base_url, str) or not re.match(r"^https?://", base_url):
            raise ConfigError(f"base_url must be an http(s) URL, got {base_url!r}")
        if timeout <= 0:
            raise ConfigError(f"timeout must be > 0, got {timeout}")
        root = base_url.rstrip("/")
        if root.endswith("/v1"):
            root = root[:-3]
        self.base_url = root
        if isinstance(models, str):
            models = (models,)
        if models is not None:
            models = tuple(models)
            if not models or not all(isinstance(m, str) and m for m in models):
                raise ConfigError(f"models must be a non-empty tuple of names, got {models!r}")
        self._models: tuple[str, ...] | None = models
        self._discover = models is None
        self._api_key = api_key
        self._timeout = float(timeout)
        self._gate = SlotGate(capacity)
        self._client: httpx.AsyncClient | None = None
        self._start_lock: trio.Lock | None = None
        self._closed = False
        # upstream metrics
        self._m_next = 0.0          # trio time of the next allowed refresh
        self._m_at: float | None = None
        self._m_inflight = False
        self._m_running = 0
        self._m_waiting = 0
        self._m_kv = 0.0

    # -- lifecycle ----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        h = {"Accept": "text/event-stream, application/json"}
        if self._api_key:
            h["Authorization"] = f"Bearer {self._api_key}"
        return h

    def _get_client(self) -> httpx.AsyncClient:
        if self._closed:
            raise ExecutorError(f"upstream executor for {self.base_url} is closed")
        if self._client is None:
            self._client = httpx.AsyncClient(
                headers=self._headers(), timeout=httpx.Timeout(self._timeout),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=32))
        return self._client

    async def start(self) -> None:
        """Create the HTTP client and, with ``models=None``, discover the upstream's models.

        Idempotent; called by :meth:`generate`.

        :raises ExecutorError: the upstream is unreachable or lists no model.
        """
        client = self._get_client()
        if self._models is not None:
            return
        if self._start_lock is None:
            self._start_lock = trio.Lock()
        async with self._start_lock:
            if self._models is not None:
                return
            self._models = await self._fetch_models(client)

    async def _fetch_models(self, client: httpx.AsyncClient) -> tuple[str, ...]:
        url = f"{self.base_url}/v1/models"
        try:
            resp = await client.get(url)
        except httpx.HTTPError as exc:
            raise ExecutorError(f"model discovery at {url} failed: {exc!r}") from exc
        if resp.status_code != 200:
            raise ExecutorError(f"model discovery at {url} failed: HTTP {resp.status_code}: "
                                f"{_error_message(resp)}")
        try:
            names = tuple(str(m["id"]) for m in resp.json()["data"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ExecutorError(f"model discovery at {url}: unexpected answer "
                                f"{resp.text[:200]!r}") from exc
        if not names:
            raise ExecutorError(f"model discovery at {url}: the upstream serves no model")
        return names

    async def aclose(self) -> None:
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            with trio.CancelScope(shield=True):
                await client.aclose()

    # -- Executor API -------------------------------------------------------------------------

    def models(self) -> tuple[str, ...]:
        if self._models is None:
            raise ExecutorError(f"models of {self.base_url} not discovered yet: "
                                "await start() first")
        return self._models

    def load(self) -> LoadSnapshot:
        try:
            self._maybe_refresh_metrics()
            own = self._gate
            if self._m_at is not None and trio.current_time() - self._m_at <= _METRICS_MAX_AGE:
                return LoadSnapshot(running=max(own.running, self._m_running),
                                    queued=own.queued + self._m_waiting,
                                    capacity=own.capacity,
                                    kv_usage=min(1.0, max(0.0, self._m_kv)))
        except Exception:
            pass
        return self._gate.snapshot()

    def _body(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": request.model, "max_tokens": request.max_tokens,
            "temperature": request.temperature, "top_p": request.top_p, "stream": True,
            "stream_options": {"include_usage": True}}
        if request.stop:
            body["stop"] = list(request.stop)
        if request.seed is not None:
            body["seed"] = request.seed
        if request.presence_penalty:
            body["presence_penalty"] = request.presence_penalty
        if request.frequency_penalty:
            body["frequency_penalty"] = request.frequency_penalty
        if request.logit_bias:
            body["logit_bias"] = {str(t): b for t, b in request.logit_bias}
        if request.is_chat:
            messages = [{"role": m.role, "content": m.content} for m in request.messages]
            if request.continuation:
                messages.append({"role": "assistant", "content": request.continuation})
                messages.append({"role": "user", "content": CHAT_CONTINUE_PROMPT})
            body["messages"] = messages
            return "/v1/chat/completions", body
        body["prompt"] = request.prompt + request.continuation
        return "/v1/completions", body

    def _map_error(self, resp: httpx.Response, request: GenerationRequest) -> Exception:
        msg = _error_message(resp)
        code = resp.status_code
        if code == 404 and ("model" in msg.lower() or request.model in msg):
            if self._discover:
                self._models = None  # re-discover on next use
            err = ModelNotFound(request.model)
            err.args = (f"model {request.model!r} is not served by {self.base_url}: {msg}",)
            return err
        if code in (400, 413, 422):
            return InvalidRequest(f"upstream {self.base_url} rejected the request: {msg}")
        return ExecutorError(f"upstream {self.base_url} answered HTTP {code}: {msg}")

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        await self.start()
        self.check_request(request)
        path, body = self._body(request)
        url = self.base_url + path
        chat = request.is_chat
        n_chunks = 0
        finish: str | None = None
        up_usage: dict | None = None
        done = False
        async with self._gate.slot():
            self._maybe_refresh_metrics()
            client = self._get_client()
            try:
                async with client.stream("POST", url, json=body) as resp:
                    if resp.status_code != 200:
                        await resp.aread()
                        raise self._map_error(resp, request)
                    async with aclosing(resp.aiter_lines()) as sse:
                        async for line in sse:
                            if not line.startswith("data:"):
                                continue  # blank separators, comments, event:/id: fields
                            data = line[5:].strip()
                            if data == "[DONE]":
                                done = True
                                break
                            try:
                                event = json.loads(data)
                            except ValueError as exc:
                                raise ExecutorError(f"upstream {self.base_url} sent malformed "
                                                    f"SSE data: {data[:200]!r}") from exc
                            if not isinstance(event, dict):
                                continue
                            if "error" in event:
                                err = event["error"]
                                msg = err.get("message", err) if isinstance(err, dict) else err
                                raise ExecutorError(f"upstream {self.base_url} failed: {msg}")
                            if isinstance(event.get("usage"), dict):
                                up_usage = event["usage"]
                            for choice in event.get("choices") or ():
                                if chat:
                                    text = (choice.get("delta") or {}).get("content") or ""
                                else:
                                    text = choice.get("text") or ""
                                if choice.get("finish_reason"):
                                    finish = choice["finish_reason"]
                                if text:
                                    n_chunks += 1
                                    yield GenerationChunk(text)
                        if done:  # read the (empty) rest so the connection is reused cleanly
                            with trio.move_on_after(1.0):
                                async for _ in sse:
                                    pass
            except httpx.HTTPError as exc:
                raise ExecutorError(f"upstream {self.base_url} failed: {exc!r}") from exc
            if not done and finish is None:
                raise ExecutorError(f"upstream {self.base_url} ended the stream before "
                                    "the answer was complete")
        completion = n_chunks
        prompt_tokens = 0
        if up_usage is not None:
            try:
                completion = int(up_usage.get("completion_tokens", n_chunks))
                prompt_tokens = int(up_usage.get("prompt_tokens", 0))
            except (TypeError, ValueError):
                pass
        usage = Usage(prompt_tokens=max(0, prompt_tokens),
                      completion_tokens=max(0, min(completion, request.max_tokens)))
        yield GenerationChunk("", FINISH_LENGTH if finish == "length" else FINISH_STOP, usage)

    # -- upstream metrics ---------------------------------------------------------------------

    def _maybe_refresh_metrics(self) -> None:
        """Start a background read of ``/metrics`` if due. Never raises."""
        try:
            if self._m_inflight or self._client is None or self._closed:
                return
            now = trio.current_time()
            if now < self._m_next:
                return
            self._m_inflight = True
            self._m_next = now + METRICS_INTERVAL
            trio.lowlevel.spawn_system_task(self._refresh_metrics, name="upstream-metrics")
        except Exception:  # outside trio, or the run is shutting down
            self._m_inflight = False

    async def _refresh_metrics(self) -> None:
        try:
            client = self._client
            if client is None:
                return
            with trio.move_on_after(min(2.0, self._timeout)):
                resp = await client.get(f"{self.base_url}/metrics",
                                        headers={"Accept": "text/plain"})
                if resp.status_code != 200:
                    self._m_next = trio.current_time() + _METRICS_BACKOFF
                    return
                metrics = parse_prometheus(resp.text)
                found = [n for n in _RUNNING + _WAITING + _KV_USAGE if n in metrics]
                if not found:
                    self._m_next = trio.current_time() + _METRICS_BACKOFF
                    return
                def first(names: tuple[str, ...]) -> list[float]:
                    return next((metrics[n] for n in names if n in metrics), [0.0])

                self._m_running = int(sum(first(_RUNNING)))
                self._m_waiting = int(sum(first(_WAITING)))
                self._m_kv = float(max(first(_KV_USAGE)))
                self._m_at = trio.current_time()
        except Exception:
            self._m_next = trio.current_time() + _METRICS_BACKOFF
        finally:
            self._m_inflight = False
