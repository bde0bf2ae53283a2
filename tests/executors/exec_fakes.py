"""Test helpers: a counting "language model" executor and a small OpenAI-compatible server.

The server (starlette, served by hypercorn's trio ``serve`` on 127.0.0.1) wraps any
Executor and speaks the subset of the OpenAI API that upstream proxies use: ``GET
/v1/models``, streaming and non-streaming ``POST /v1/completions`` and
``/v1/chat/completions``, and vLLM-style Prometheus gauges on ``GET /metrics``.
"""

from __future__ import annotations

import json
import re
import time
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import partial

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

from wwwserve_p2p.core.types import (FINISH_LENGTH, ChatMessage, GenerationChunk,
                                     GenerationRequest, Usage)
from wwwserve_p2p.errors import ExecutorError, InvalidRequest, ModelNotFound
from wwwserve_p2p.executors import Executor, SlotGate


class CountingExecutor(Executor):
    """A toy LM: continues counting from the last integer in the prompt (0 if none).

    Answer tokens are ``" n+1"``, ``" n+2"``, ... up to ``max_tokens`` (always "length").
    Continuing ``"... 3"`` gives ``" 4 5 ..."``, so continuation semantics are exact.
    Special prompts: ``EXPLODE`` raises ExecutorError; ``max_tokens > 1000`` InvalidRequest.
    """

    kind = "counting"

    def __init__(self, models=("counter",), capacity: int = 8, delay: float = 0.0):
        self._models = tuple(models)
        self._gate = SlotGate(capacity)
        self.delay = delay

    def models(self):
        return self._models

    def load(self):
        return self._gate.snapshot()

    async def generate(self, request: GenerationRequest):
        self.check_request(request)
        if request.max_tokens > 1000:
            raise InvalidRequest("max_tokens must be <= 1000 on this server")
        text = request.prompt_text() + request.continuation
        if "EXPLODE" in text:
            raise ExecutorError("backend exploded")
        nums = re.findall(r"-?\d+", text)
        start = int(nums[-1]) if nums else 0
        toks = [f" {start + i + 1}" for i in range(request.max_tokens)]
        async with self._gate.slot():
            for tok in toks[:-1]:
                await self._pace()
                yield GenerationChunk(tok)
            await self._pace()
        yield GenerationChunk(toks[-1], FINISH_LENGTH,
                              Usage(len(text.split()), request.max_tokens))

    async def _pace(self):
        if self.delay:
            await trio.sleep(self.delay)
        else:
            await trio.lowlevel.checkpoint()


@dataclass
class ServerControl:
    """Knobs and observations of the fake server, shared with the test."""

    send_usage: bool = True
    metrics: bool = True
    #: extra gauges added to the executor's own running/waiting and kv usage
    extra_running: int = 0
    extra_waiting: int = 0
    kv_usage: float = 0.0
    #: abort the connection after this many chunks of a stream whose prompt contains "DIE"
    die_after: int = 2
    requests: list[dict] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)


def _error(status: int, message: str, typ: str) -> JSONResponse:
    return JSONResponse({"object": "error", "message": message, "type": typ, "code": status,
                         "error": {"message": message, "type": typ, "code": status}},
                        status_code=status)


def make_openai_app(executor: Executor, control: ServerControl | None = None) -> Starlette:
    """An OpenAI-compatible Starlette app serving ``executor``."""
    control = control or ServerControl()

    async def models(request: Request):
        return JSONResponse({"object": "list", "data": [
            {"id": m, "object": "model", "owned_by": "test"} for m in executor.models()]})

    async def metrics(request: Request):
        if not control.metrics:
            return PlainTextResponse("not found", status_code=404)
        load = executor.load()
        lines = [
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f'vllm:num_requests_running{{model_name="x"}} {load.running + control.extra_running}',
            "# TYPE vllm:num_requests_waiting gauge",
            f'vllm:num_requests_waiting{{model_name="x"}} {load.queued + control.extra_waiting}',
            "# TYPE vllm:gpu_cache_usage_perc gauge",
            f'vllm:gpu_cache_usage_perc{{model_name="x"}} {control.kv_usage}',
        ]
        return PlainTextResponse("\n".join(lines) + "\n")

    async def completions(request: Request):
        chat = request.url.path.endswith("/chat/completions")
        try:
            body = await request.json()
            stop = body.get("stop") or ()
            req = GenerationRequest(
                request_id=f"srv-{len(control.requests)}", model=str(body["model"]),
                prompt="" if chat else str(body.get("prompt", "")),
                messages=tuple(ChatMessage(m["role"], m["content"])
                               for m in body.get("messages", ())) if chat else (),
                max_tokens=int(body.get("max_tokens") or 16),
                temperature=float(body.get("temperature", 1.0)),
                top_p=float(body.get("top_p", 1.0)),
                stop=(stop,) if isinstance(stop, str) else tuple(stop),
                seed=body.get("seed"))
        except (ValueError, KeyError, TypeError) as exc:
            return _error(400, f"bad request: {exc}", "BadRequestError")
        control.requests.append(body)
        control.headers.append(dict(request.headers))
        gen = executor.generate(req)
        try:
            first = await gen.__anext__()
        except ModelNotFound:
            await gen.aclose()
            return _error(404, f"The model `{req.model}` does not exist.", "NotFoundError")
        except InvalidRequest as exc:
            await gen.aclose()
            return _error(400, str(exc), "BadRequestError")
        except ExecutorError as exc:
            await gen.aclose()
            return _error(500, str(exc), "InternalServerError")
        rid = f"cmpl-{len(control.requests)}"
        die = "DIE" in (req.prompt_text())

        def event(chunk: GenerationChunk) -> dict:
            if chat:
                choice = {"index": 0, "delta": {"content": chunk.text},
                          "finish_reason": chunk.finish_reason}
                obj = "chat.completion.chunk"
            else:
                choice = {"index": 0, "text": chunk.text, "finish_reason": chunk.finish_reason}
                obj = "text_completion"
            return {"id": rid, "object": obj, "created": int(time.time()), "model": req.model,
                    "choices": [choice]}

        if not body.get("stream"):
            chunks = [first]
            async with aclosing(gen):
                chunks += [c async for c in gen]
            text = "".join(c.text for c in chunks)
            u = chunks[-1].usage
            choice = ({"index": 0, "message": {"role": "assistant", "content": text}} if chat
                      else {"index": 0, "text": text})
            choice["finish_reason"] = chunks[-1].finish_reason
            return JSONResponse({"id": rid, "object": "completion", "model": req.model,
                                 "choices": [choice],
                                 "usage": {"prompt_tokens": u.prompt_tokens,
                                           "completion_tokens": u.completion_tokens,
                                           "total_tokens": u.total_tokens}})

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def sse():
            async with aclosing(gen):
                chunk, n = first, 0
                while True:
                    yield f"data: {json.dumps(event(chunk))}\n\n"
                    n += 1
                    if die and n >= control.die_after:
                        raise RuntimeError("simulated crash mid-stream")
                    if chunk.is_final:
                        break
                    chunk = await gen.__anext__()
                if include_usage and control.send_usage:
                    u = chunk.usage
                    yield "data: " + json.dumps({
                        "id": rid, "object": "chunk", "model": req.model, "choices": [],
                        "usage": {"prompt_tokens": u.prompt_tokens,
                                  "completion_tokens": u.completion_tokens,
                                  "total_tokens": u.total_tokens}}) + "\n\n"
                yield "data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")

    return Starlette(routes=[
        Route("/v1/models", models),
        Route("/metrics", metrics),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/chat/completions", completions, methods=["POST"]),
    ])


async def start_openai_server(nursery: trio.Nursery, executor: Executor,
                              control: ServerControl | None = None) -> str:
    """Serve ``executor`` on 127.0.0.1 (random port) in ``nursery``; returns the base URL."""
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 0.1
    app = make_openai_app(executor, control)
    binds = await nursery.start(partial(serve, app, config))
    return binds[0]
