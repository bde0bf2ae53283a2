"""The OpenAI-compatible HTTP front door of a node (a Starlette ASGI app, run under trio).

Endpoints:

- ``POST /v1/chat/completions``, ``POST /v1/completions``: ``stream`` false (one JSON body) or
  true (SSE ``data: {json}\\n\\n`` events ending with ``data: [DONE]\\n\\n``). The response head
  is sent only after the node's first chunk, so errors raised before it get their HTTP status
  (see :func:`~wwwserve_p2p.api.openai_format.error_for_exception`); an error after it is a
  final ``data: {"error": {...}}`` event, then ``[DONE]``. Every completion response carries
  ``X-WWWServe-Executor`` (executor of the first chunk); JSON bodies have ``x_wwwserve``.
- ``GET /v1/models``, ``GET /status``, ``GET /metrics`` (Prometheus text), ``GET /healthz``.

Every request is counted in ``node.metrics.http`` by (route, status), just before the end of
its response is sent: the route label is the path template of the app's route that handles
the request (``/ledger/blocks``, ``/admin/denied-peers``, ...; a wrong method is counted on
its route with 405), and every path that matches no route shares the label ``other``, so the
label set is bounded; a request whose client left (or that was cancelled)
before any response is counted with status ``499``.

Client disconnects: the node's generator is closed (cancelling its work) as soon as the
server reports ``http.disconnect`` (Hypercorn does, for streaming and non-streaming requests,
when the client closes its connection). While streaming, the app also writes an SSE comment
(``: ping``) after ``heartbeat_interval`` seconds without output: it keeps proxies from timing
out idle streams and makes a half-open connection fail on write.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing, asynccontextmanager
from typing import Any

import trio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core.types import FINISH_STOP, RoutedChunk, TokenLogprob, Usage
from .dashboard import dashboard_routes
from .limits import RequestLimitsMiddleware
from .node_protocol import ServingNode
from .ops import key_middleware, ops_routes
from .openai_format import (
    SSE_DONE,
    ChoiceResult,
    ParsedRequest,
    RequestValidationError,
    completion_response,
    decode_json_body,
    dumps,
    error_body,
    error_for_exception,
    model_json,
    models_list,
    parse_chat_request,
    parse_completion_request,
    sse_event,
    stream_chunk,
    sum_usage,
    usage_chunk,
)

log = logging.getLogger(__name__)

#: Header naming the executor (PeerId) of the first chunk of a completion.
EXECUTOR_HEADER = "X-WWWServe-Executor"

#: Metrics label of requests that match no route.
OTHER_ROUTE_LABEL = "other"

#: Bytes of an over-long body read and discarded before answering 413 (so that the client,
#: still sending, can read the answer); beyond it the connection is just closed.
_DRAIN_LIMIT = 16 * 1024 * 1024


class _BodyTooLarge(Exception):
    pass


def create_app(node: ServingNode, *, max_body_bytes: int = 1_048_576,
               max_tokens_cap: int | None = None, heartbeat_interval: float | None = 10.0,
               admin: bool | None = None, keys_file: str | None = None) -> Starlette:
    """The Starlette ASGI app serving ``node``'s HTTP API (every endpoint of the module
    docstring) -- what ``open_node`` runs under Hypercorn when ``api.enabled`` is true.

    Embedders that run their own ASGI server can mount it instead (with ``api.enabled =
    false``)::

        app = Starlette(routes=[Mount("/llm", app=create_app(node))])   # /llm/v1/chat/completions

    The app runs its work under trio, so serve it from the trio run that holds ``node`` (e.g.
    ``hypercorn.trio.serve``, or ``httpx.ASGITransport`` in tests), while the node's
    ``open_node`` context is open. It has no lifespan of its own.

    - ``max_body_bytes``: larger request bodies get 413.
    - ``max_tokens_cap``: ``max_tokens`` of requests is capped at this (default: the node's
      ``api.max_tokens_cap``, else 4096).
    - ``heartbeat_interval``: seconds without output after which a stream writes an SSE
      comment ``: ping`` (None: never).
    - ``admin``: serve ``PUT /admin/denied-peers`` (body ``{"peers": [PeerId, ...]}``; replaces
      the deny-list, ``[]`` lifts every ban). Default: the node's ``api.admin``, else off;
      enable it only on a trusted address. Also serves ``POST /admin/transfer`` (api/ops.py).
    - ``keys_file``: API keys file (default: the node's ``api.keys_file``; ``""``: keys off);
      with keys on, ``/v1/*`` and ``/admin/*`` need a bearer key (see :mod:`.auth`).

    Also served: ``/health``, ``/version`` (:mod:`.ops`), the dashboard at ``/`` and
    ``/dashboard`` with ``/dashboard/data`` (:mod:`.dashboard`).

    Returns a new app on each call; ``node`` only needs the
    :class:`~wwwserve_p2p.api.node_protocol.ServingNode` methods (the ``/ledger*`` endpoints
    answer 404 for a node without a ledger).
    """
    api_config = getattr(getattr(node, "config", None), "api", None)
    if max_tokens_cap is None:
        max_tokens_cap = getattr(api_config, "max_tokens_cap", 4096)
    if admin is None:
        admin = bool(getattr(api_config, "admin", False))

    async def chat_completions(request: Request) -> Response:
        return await _completion_endpoint(request, chat=True)

    async def completions(request: Request) -> Response:
        return await _completion_endpoint(request, chat=False)

    async def _completion_endpoint(request: Request, *, chat: bool) -> Response:
        try:
            body = await _read_body(request, max_body_bytes)
        except ClientDisconnect:  # left while sending its request: nobody to answer
            return _NoResponse()
        except _BodyTooLarge:
            return _error_response(413, error_body(
                f"request body exceeds {max_body_bytes} bytes", "invalid_request_error", None,
                "request_too_large"))
        try:
            data = decode_json_body(body)
            parse = parse_chat_request if chat else parse_completion_request
            parsed = parse(data, max_tokens_cap=max_tokens_cap)
        except RequestValidationError as exc:
            return _error_response(*error_for_exception(exc))
        if len(parsed.all_choices()) > 1:  # n > 1 or several prompts: one generation each
            return _MultiGenerationResponse(node, parsed, heartbeat_interval)
        return _GenerationResponse(node, parsed, heartbeat_interval)

    async def models(request: Request) -> Response:
        return JSONResponse(models_list(node.model_cards()))

    async def model(request: Request) -> Response:
        model_id = request.path_params["model_id"]
        for card in node.model_cards():
            if card.id == model_id:
                return JSONResponse(model_json(card))
        return _error_response(404, error_body(f"The model '{model_id}' does not exist",
                                               "invalid_request_error", "model", "model_not_found"))

    async def status(request: Request) -> Response:
        return JSONResponse(node.status())

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(node.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "peer_id": node.peer_id})

    def _no_ledger() -> Response:
        return _error_response(404, error_body("this node has no ledger", "invalid_request_error", None,
                                               "not_found"))

    async def ledger_summary(request: Request) -> Response:
        if not hasattr(node, "ledger_summary"):
            return _no_ledger()
        return JSONResponse(node.ledger_summary())

    async def ledger_accounts(request: Request) -> Response:
        if not hasattr(node, "ledger_accounts"):
            return _no_ledger()
        return JSONResponse(node.ledger_accounts())

    async def ledger_blocks(request: Request) -> Response:
        if not hasattr(node, "ledger_blocks"):
            return _no_ledger()
        q = request.query_params
        try:
            lo = int(q.get("from", "1"))
            hi = int(q["to"]) if "to" in q else None
            limit = min(int(q.get("limit", "100")), 1000)
            if lo < 1 or limit < 1 or (hi is not None and hi < lo):
                raise ValueError
        except ValueError:
            return _error_response(400, error_body(
                "from, to and limit must be integers with 1 <= from <= to and limit >= 1",
                "invalid_request_error", None, "invalid_value"))
        return JSONResponse(node.ledger_blocks(q.get("author", ""), lo, hi, limit))

    async def denied_peers(request: Request) -> Response:
        try:
            data = decode_json_body(await _read_body(request, max_body_bytes))
            peers = data.get("peers") if isinstance(data, dict) else None
            if not isinstance(peers, list) or not all(isinstance(p, str) and p for p in peers):
                raise RequestValidationError("body must be {\"peers\": [PeerId, ...]}", "peers")
        except RequestValidationError as exc:
            return _error_response(*error_for_exception(exc))
        except _BodyTooLarge:
            return _error_response(413, error_body("body too large", "invalid_request_error", None,
                                                   "request_too_large"))
        return JSONResponse({"denied": node.deny_peers(peers)})

    routes = [
        Route("/v1/chat/completions", _guarded(chat_completions), methods=["POST"]),
        Route("/v1/completions", _guarded(completions), methods=["POST"]),
        Route("/v1/models", _guarded(models), methods=["GET"]),
        Route("/v1/models/{model_id:path}", _guarded(model), methods=["GET"]),
        Route("/status", _guarded(status), methods=["GET"]),
        Route("/metrics", _guarded(metrics), methods=["GET"]),
        Route("/healthz", _guarded(healthz), methods=["GET"]),
        Route("/ledger", _guarded(ledger_summary), methods=["GET"]),
        Route("/ledger/accounts", _guarded(ledger_accounts), methods=["GET"]),
        Route("/ledger/blocks", _guarded(ledger_blocks), methods=["GET"]),
    ]
    if admin:
        routes.append(Route("/admin/denied-peers", _guarded(denied_peers), methods=["PUT"]))
    # issue 14: /health, /version, /admin/transfer, the dashboard, API keys (api/ops.py, api/dashboard.py)
    routes += ops_routes(node, _guarded, admin=admin) + dashboard_routes(node, _guarded)
    keys = key_middleware(node, keys_file)
    return Starlette(
        routes=routes,
        middleware=[Middleware(_HttpMetricsMiddleware, node=node, routes=tuple(routes)),
                    *([keys] if keys is not None else []),
                    # issue 15: depth, surrogates, int64 seed, the peer protocol's limits (api/limits.py)
                    Middleware(RequestLimitsMiddleware, max_body_bytes=max_body_bytes)],
        exception_handlers={HTTPException: _http_exception_handler},
    )


# ----------------------------------------------------------------------------- helpers


def _error_response(status: int, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=status)


async def _http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = "not_found" if exc.status_code == 404 else (
        "method_not_allowed" if exc.status_code == 405 else None)
    return JSONResponse(error_body(str(exc.detail), "invalid_request_error", None, kind),
                        status_code=exc.status_code, headers=exc.headers)


def _guarded(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[
        [Request], Awaitable[Response]]:
    """Turn unexpected exceptions of ``endpoint`` into a logged 500 with an OpenAI error body."""

    async def wrapper(request: Request) -> Response:
        try:
            return await endpoint(request)
        except (HTTPException, ClientDisconnect):
            raise
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.url.path)
            return _error_response(*error_for_exception(RuntimeError()))

    wrapper.__name__ = endpoint.__name__
    return wrapper


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, or :class:`_BodyTooLarge` (after draining a bounded remainder)."""
    declared = request.headers.get("content-length")
    too_large = False
    if declared is not None:
        try:
            too_large = int(declared) > limit
        except ValueError:
            pass
    parts: list[bytes] = []
    size = 0
    async with aclosing(request.stream()) as stream:
        async for part in stream:
            size += len(part)
            if size > limit:
                too_large = True
            if too_large:
                if size > _DRAIN_LIMIT:
                    break
                continue
            parts.append(part)
    if too_large:
        raise _BodyTooLarge()
    return b"".join(parts)


def _header_value(value: str) -> bytes:
    return "".join(c for c in value if 0x20 <= ord(c) < 0x7F).encode("ascii")


@asynccontextmanager
async def _closing(it: AsyncIterator[RoutedChunk]) -> AsyncIterator[AsyncIterator[RoutedChunk]]:
    """Like :func:`contextlib.aclosing`, for iterators that may lack ``aclose``."""
    if hasattr(it, "aclose"):
        async with aclosing(it) as agen:  # type: ignore[type-var]
            yield agen
    else:
        yield it


class _NoResponse(Response):
    """Sends nothing (the client is gone); counted as status 499."""

    def __init__(self) -> None:
        self.status_code = 499
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None


class _NoOutput(Exception):
    """The node's stream ended without any chunk (a node bug: answered 500)."""


class _GenerationResponse(Response):
    """Runs one generation on the node and writes its answer (JSON or SSE) or error.

    The node's generator is closed when this returns, in every case: answer complete,
    error, client disconnect (watched concurrently) or server shutdown.
    """

    def __init__(self, node: ServingNode, parsed: ParsedRequest,
                 heartbeat_interval: float | None) -> None:
        self._node = node
        self._parsed = parsed
        self._heartbeat = heartbeat_interval
        self._send_lock = trio.Lock()
        self._last_write = 0.0
        self._finished = False
        self.status_code = 200
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def watch_disconnect(cancel_scope: trio.CancelScope) -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    log.debug("client left during %s", self._parsed.request.request_id)
                    cancel_scope.cancel()
                    return

        try:
            agen = self._node.generate(self._parsed.request)
        except Exception as exc:
            await self._send_error_response(send, exc)
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_disconnect, nursery.cancel_scope)
            # The generator is iterated and closed inside this one scope so that cancel
            # scopes the node may hold across ``yield`` stay properly nested. After a
            # disconnect the close runs cancelled: a node whose cleanup must do I/O (tell
            # a remote executor to stop) shields that cleanup itself.
            async with _closing(agen) as chunks:
                if self._parsed.stream:
                    await self._stream(chunks, send, nursery)
                else:
                    await self._collect(chunks, send)
            nursery.cancel_scope.cancel()

    # -- non-streaming

    async def _collect(self, chunks: AsyncIterator[RoutedChunk], send: Send) -> None:
        texts: list[str] = []
        executors: list[str] = []
        lps: list[TokenLogprob] = []
        finish: str | None = None
        usage: Usage | None = None
        try:
            async for rc in chunks:
                executors.append(rc.executor)
                texts.append(rc.chunk.text)
                lps += rc.chunk.logprobs
                if rc.chunk.is_final:
                    finish, usage = rc.chunk.finish_reason, rc.chunk.usage
                    break
            if not executors:
                raise _NoOutput("the node produced no output")
        except Exception as exc:
            await self._send_error_response(send, exc)
            return
        if finish is None:
            log.warning("%s: stream ended without a final chunk", self._parsed.request.request_id)
        body = dumps(completion_response(self._parsed, choices=[ChoiceResult(
            0, "".join(texts), finish or FINISH_STOP, usage, tuple(lps))], usage=usage,
            executors=executors))
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (EXECUTOR_HEADER.lower().encode(), _header_value(executors[0])),
        ]})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    # -- streaming

    async def _stream(self, chunks: AsyncIterator[RoutedChunk], send: Send,
                      nursery: trio.Nursery) -> None:
        it = aiter(chunks)
        try:
            try:
                first = await anext(it)
            except StopAsyncIteration:
                raise _NoOutput("the node produced no output") from None
        except Exception as exc:
            await self._send_error_response(send, exc)
            return

        await self._start_event_stream(send, nursery, first.executor)

        parsed = self._parsed
        executors: list[str] = []
        rc: RoutedChunk | None = first
        is_first = True
        offset = 0  # characters of the choice's text sent so far (completions' text_offset)
        error: Exception | None = None
        while True:
            if rc is None:  # the node's stream ended without a final chunk
                log.warning("%s: stream ended without a final chunk", parsed.request.request_id)
                await self._write_body(send, sse_event(stream_chunk(
                    parsed, text="", first=is_first, finish_reason=FINISH_STOP,
                    executors=executors)))
                if parsed.include_usage:
                    await self._write_body(send, sse_event(usage_chunk(parsed, None)))
                break
            if rc.executor not in executors:
                executors.append(rc.executor)
            c = rc.chunk
            if c.is_final:
                await self._write_body(send, sse_event(stream_chunk(
                    parsed, text=c.text, first=is_first, finish_reason=c.finish_reason,
                    executors=executors, logprobs=c.logprobs, offset=offset, usage=c.usage)))
                if parsed.include_usage:
                    await self._write_body(send, sse_event(usage_chunk(parsed, c.usage)))
                break
            if c.text or is_first or c.logprobs:
                await self._write_body(send, sse_event(stream_chunk(
                    parsed, text=c.text, first=is_first, logprobs=c.logprobs, offset=offset)))
                offset += len(c.text)
                is_first = False
            try:
                rc = await anext(it)
            except StopAsyncIteration:
                rc = None
            except Exception as exc:
                error = exc
                break
        if error is not None:
            status, body = error_for_exception(error)
            if status == 500:
                log.error("%s failed mid-stream", parsed.request.request_id, exc_info=error)
            else:
                log.info("%s failed mid-stream: %s", parsed.request.request_id, error)
            await self._write_body(send, sse_event(body))
        await self._write_body(send, SSE_DONE)
        await self._write(send, {"type": "http.response.body", "body": b"", "more_body": False})

    async def _heartbeats(self, send: Send, interval: float) -> None:
        while True:
            await trio.sleep_until(self._last_write + interval)
            if trio.current_time() >= self._last_write + interval:
                await self._write_body(send, b": ping\n\n")

    async def _write_body(self, send: Send, data: bytes) -> None:
        await self._write(send, {"type": "http.response.body", "body": data, "more_body": True})

    async def _start_event_stream(self, send: Send, nursery: trio.Nursery, executor: str) -> None:
        """Send the 200 SSE response head (with the executor header) and start the heartbeats."""
        await self._write(send, {"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
            (EXECUTOR_HEADER.lower().encode(), _header_value(executor)),
        ]})
        if self._heartbeat is not None and self._heartbeat > 0 and math.isfinite(self._heartbeat):
            nursery.start_soon(self._heartbeats, send, self._heartbeat)

    async def _write(self, send: Send, message: Message) -> None:
        async with self._send_lock:
            if self._finished:
                return
            await send(message)
            self._last_write = trio.current_time()
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self._finished = True

    # -- errors before the response head

    async def _send_error_response(self, send: Send, exc: BaseException) -> None:
        status, body = error_for_exception(exc)
        rid = self._parsed.request.request_id
        if status == 500:
            log.error("%s failed", rid, exc_info=exc)
        else:
            log.info("%s failed with %d: %s", rid, status, exc)
        data = dumps(body)
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
        ]})
        await send({"type": "http.response.body", "body": data, "more_body": False})


class _MultiGenerationResponse(_GenerationResponse):
    """Several choices (``n`` > 1 or several prompts): one node generation per choice, run
    concurrently; JSON with every choice, or SSE chunks tagged with their choice ``index``.
    The first error before the response head answers with its status (the other generations
    are cancelled); an error after it is a final ``data: {"error": ...}`` event. Usage is
    summed over choices (:func:`~wwwserve_p2p.api.openai_format.sum_usage`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        choices = self._parsed.all_choices()
        items_send, items = trio.open_memory_channel[
            tuple[int, RoutedChunk | None, BaseException | None]](math.inf)

        async def watch_disconnect(cancel_scope: trio.CancelScope) -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    cancel_scope.cancel()
                    return

        async def run_one(index: int, request: Any, out: trio.MemorySendChannel) -> None:
            async with out:
                try:
                    final = False
                    async with _closing(self._node.generate(request)) as chunks:
                        async for rc in chunks:
                            out.send_nowait((index, rc, None))
                            if rc.chunk.is_final:
                                final = True
                                break
                    if not final:
                        raise _NoOutput(f"choice {index}: the node's stream ended without a final chunk")
                except Exception as exc:
                    out.send_nowait((index, None, exc))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_disconnect, nursery.cancel_scope)
            async with items_send:
                for index, request in enumerate(choices):
                    nursery.start_soon(run_one, index, request, items_send.clone())
            if self._parsed.stream:
                await self._stream_many(items, send, nursery, len(choices))
            else:
                await self._collect_many(items, send, len(choices))
            nursery.cancel_scope.cancel()

    async def _collect_many(self, items: trio.MemoryReceiveChannel, send: Send, n: int) -> None:
        texts: list[list[str]] = [[] for _ in range(n)]
        lps: list[list[TokenLogprob]] = [[] for _ in range(n)]
        executors: list[str] = []
        results: dict[int, ChoiceResult] = {}
        async for index, rc, exc in items:
            if exc is not None:
                await self._send_error_response(send, exc)
                return
            executors.append(rc.executor)
            texts[index].append(rc.chunk.text)
            lps[index] += rc.chunk.logprobs
            if rc.chunk.is_final:
                results[index] = ChoiceResult(index, "".join(texts[index]), rc.chunk.finish_reason,
                                              rc.chunk.usage, tuple(lps[index]))
                if len(results) == n:
                    break
        body = dumps(completion_response(self._parsed, choices=list(results.values()),
                                         executors=executors))
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (EXECUTOR_HEADER.lower().encode(), _header_value(executors[0] if executors else "")),
        ]})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _stream_many(self, items: trio.MemoryReceiveChannel, send: Send,
                           nursery: trio.Nursery, n: int) -> None:
        parsed = self._parsed
        index, rc, exc = await items.receive()
        if exc is not None:
            await self._send_error_response(send, exc)
            return
        await self._start_event_stream(send, nursery, rc.executor)
        started: set[int] = set()
        offsets = [0] * n
        executors: list[list[str]] = [[] for _ in range(n)]
        usages: list[Usage | None] = [None] * n
        done = 0
        error: BaseException | None = None
        while True:
            if exc is not None:
                error = exc
                break
            if rc.executor not in executors[index]:
                executors[index].append(rc.executor)
            c = rc.chunk
            first = index not in started
            started.add(index)
            if c.is_final:
                usages[index] = c.usage
                await self._write_body(send, sse_event(stream_chunk(
                    parsed, text=c.text, first=first, finish_reason=c.finish_reason,
                    executors=executors[index], index=index, logprobs=c.logprobs,
                    offset=offsets[index], usage=c.usage)))
                done += 1
                if done == n:
                    break
            elif c.text or first or c.logprobs:
                await self._write_body(send, sse_event(stream_chunk(
                    parsed, text=c.text, first=first, index=index, logprobs=c.logprobs,
                    offset=offsets[index])))
                offsets[index] += len(c.text)
            index, rc, exc = await items.receive()
        if error is not None:
            status, body = error_for_exception(error)
            log.info("%s failed mid-stream: %s", parsed.request.request_id, error)
            await self._write_body(send, sse_event(body))
        elif parsed.include_usage:
            await self._write_body(send, sse_event(usage_chunk(parsed, sum_usage(parsed, usages))))
        await self._write_body(send, SSE_DONE)
        await self._write(send, {"type": "http.response.body", "body": b"", "more_body": False})


# ----------------------------------------------------------------------------- metrics


def route_label(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The metrics label of a request: the path template of the route that handles it (the
    first full match, else the first partial match, e.g. a wrong method, as Starlette's
    router does), or :data:`OTHER_ROUTE_LABEL` for a path no route matches."""
    partial: str | None = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return getattr(route, "path", OTHER_ROUTE_LABEL)
        if match is Match.PARTIAL and partial is None:
            partial = getattr(route, "path", OTHER_ROUTE_LABEL)
    return partial or OTHER_ROUTE_LABEL


class _HttpMetricsMiddleware:
    """Counts each HTTP request in ``node.metrics.http`` by (route label, status)."""

    def __init__(self, app: ASGIApp, node: ServingNode, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.node = node
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            label = route_label(self.routes, scope)
        except Exception:  # metrics must never break a response
            log.exception("cannot label HTTP request")
            label = OTHER_ROUTE_LABEL
        status: int | None = None
        counted = False

        def count(code: int) -> None:
            nonlocal counted
            if counted:
                return
            counted = True
            try:
                self.node.metrics.http.labels(path=label, status=str(code)).inc()
            except Exception:  # metrics must never break a response
                log.exception("cannot count HTTP request")

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start" and status is None:
                status = int(message["status"])
            elif (message["type"] == "http.response.body" and not message.get("more_body", False)
                  and status is not None):
                count(status)  # before the client can see the end of the response
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            count(status or 500)
            raise
        finally:
            count(status or 499)
