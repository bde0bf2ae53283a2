"""The HTTP front door end to end: real Hypercorn server on 127.0.0.1, a fake node, and the
official ``openai`` client (sync, in a thread) plus ``httpx.AsyncClient``."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
import openai
import pytest
import trio

from wwwserve_p2p.api.server import serve_api
from wwwserve_p2p.core.types import (
    FINISH_LENGTH,
    FINISH_STOP,
    GenerationChunk,
    GenerationRequest,
    ModelCard,
    RoutedChunk,
    Usage,
)
from wwwserve_p2p.errors import (
    InvalidRequest,
    ModelNotFound,
    NoExecutorAvailable,
    RemoteError,
    RequestTimeout,
)
from wwwserve_p2p.metrics import NodeMetrics

DEADLINE = 15.0
MODEL = "tiny-model"
EXEC_A = "12D3KooWExecutorA"
EXEC_B = "12D3KooWExecutorB"


@dataclass
class GenRecord:
    """What one call of :meth:`FakeNode.generate` did."""

    request: GenerationRequest
    yielded: int = 0
    completed: bool = False
    closed: trio.Event = field(default_factory=trio.Event)


class FakeNode:
    """A :class:`~wwwserve_p2p.api.node_protocol.ServingNode` streaming a deterministic answer.

    The answer to prompt P is ``"You said: P"`` split into word chunks (a space before every
    word but the first), at most ``max_tokens`` of them, ``delay`` seconds apart; then a final
    chunk (``length`` if truncated, else ``stop``) with usage. ``fail_before`` is raised before
    the first chunk; ``fail_after`` = (n, exc) raises after n chunks; ``stall_after`` = n sleeps
    forever after n chunks; ``switch_at`` = n makes chunks from the n-th on come from EXEC_B.
    ``hold_scope`` makes it yield inside a cancel scope (like a node applying a deadline).
    Every generator records in :attr:`records` whether it completed and when it was closed.
    """

    def __init__(self, *, delay: float = 0.005, repeat: int = 1, hold_scope: bool = False) -> None:
        self._metrics = NodeMetrics()
        self.delay = delay
        self.repeat = repeat
        self.hold_scope = hold_scope
        self.fail_before: BaseException | None = None
        self.fail_after: tuple[int, BaseException] | None = None
        self.stall_after: int | None = None
        self.switch_at: int | None = None
        self.records: list[GenRecord] = []
        self.generation_started = trio.Event()

    @property
    def peer_id(self) -> str:
        return "12D3KooWSelf"

    @property
    def metrics(self) -> NodeMetrics:
        return self._metrics

    def model_cards(self) -> list[ModelCard]:
        return [ModelCard(MODEL, True, (EXEC_B,)), ModelCard("big-model", False, (EXEC_B, "Q"))]

    def status(self) -> dict[str, Any]:
        return {"peer_id": self.peer_id, "models": [MODEL], "load": 0.25, "peers": []}

    @staticmethod
    def answer_words(request: GenerationRequest, repeat: int = 1) -> list[str]:
        text = request.messages[-1].content if request.is_chat else request.prompt
        words = ("You said: " + text).split() * repeat
        return [w if i == 0 else " " + w for i, w in enumerate(words)]

    async def generate(self, request: GenerationRequest) -> AsyncIterator[RoutedChunk]:
        rec = GenRecord(request)
        self.records.append(rec)
        self.generation_started.set()
        try:
            if self.hold_scope:
                with trio.fail_after(60):
                    async for rc in self._answer(request, rec):
                        yield rc
            else:
                async for rc in self._answer(request, rec):
                    yield rc
        finally:
            rec.closed.set()

    async def _answer(self, request: GenerationRequest, rec: GenRecord
                      ) -> AsyncIterator[RoutedChunk]:
        await trio.sleep(self.delay)
        if self.fail_before is not None:
            raise self.fail_before
        words = self.answer_words(request, self.repeat)
        out = words[:request.max_tokens]
        executor = EXEC_A
        for i, word in enumerate(out):
            if self.fail_after is not None and i == self.fail_after[0]:
                raise self.fail_after[1]
            if self.stall_after is not None and i == self.stall_after:
                await trio.sleep_forever()
            if self.switch_at is not None and i == self.switch_at:
                executor = EXEC_B
            if i:
                await trio.sleep(self.delay)
            yield RoutedChunk(GenerationChunk(word), executor)
            rec.yielded += 1
        finish = FINISH_LENGTH if len(out) < len(words) else FINISH_STOP
        usage = Usage(prompt_tokens=len(request.prompt_text().split()), completion_tokens=len(out))
        rec.completed = True  # the consumer may stop after the final chunk
        yield RoutedChunk(GenerationChunk("", finish, usage), executor)


@pytest.fixture
async def start_server(nursery, caplog):
    """``await start_server(node=None, **serve_api_kwargs)`` → (node, base_url).

    Afterwards, checks that the HTTP server (Hypercorn) logged no error.
    """

    async def start(node: FakeNode | None = None, **kwargs: Any) -> tuple[FakeNode, str]:
        node = node or FakeNode()
        host, port = await nursery.start(partial(serve_api, node, **kwargs))
        assert host == "127.0.0.1" and port > 0
        return node, f"http://{host}:{port}"

    yield start
    errors = [r for r in caplog.get_records("call")
              if r.name.startswith("hypercorn") and r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


def openai_client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="none", max_retries=0, timeout=10)


async def in_thread(fn, *args, **kwargs):
    return await trio.to_thread.run_sync(partial(fn, *args, **kwargs), abandon_on_cancel=True)


def parse_sse(text: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, checking the framing."""
    assert text.endswith("\n\n")
    out = []
    for event in text.split("\n\n")[:-1]:
        lines = [ln for ln in event.split("\n") if not ln.startswith(":")]
        if not lines:
            continue
        assert len(lines) == 1 and lines[0].startswith("data: "), event
        out.append(lines[0][len("data: "):])
    return out


# ----------------------------------------------------------------------------- openai client


async def test_chat_non_stream_with_openai_client(start_server):
    with trio.fail_after(DEADLINE):
        node, url = await start_server()
        client = openai_client(url)
        raw = await in_thread(
            client.chat.completions.with_raw_response.create, model=MODEL,
            messages=[{"role": "system", "content": "be nice"},
                      {"role": "user", "content": "hello there"}],
            temperature=0.5, top_p=0.9, seed=7, stop=["zzz"], max_tokens=64)
        assert raw.headers["x-wwwserve-executor"] == EXEC_A
        resp = raw.parse()
        assert resp.object == "chat.completion" and resp.id.startswith("chatcmpl-")
        assert resp.model == MODEL
        assert resp.choices[0].message.role == "assistant"
        assert resp.choices[0].message.content == "You said: hello there"
        assert resp.choices[0].finish_reason == "stop"
        assert resp.usage.completion_tokens == 4
        assert resp.usage.total_tokens == resp.usage.prompt_tokens + 4
        assert resp.model_extra["x_wwwserve"] == {"executor": EXEC_A, "executors": [EXEC_A]}
        rq = node.records[0].request
        assert (rq.temperature, rq.top_p, rq.seed, rq.stop, rq.max_tokens) == (
            0.5, 0.9, 7, ("zzz",), 64)
        assert rq.messages[0].role == "system" and rq.request_id == resp.id
        with trio.fail_after(1):
            await node.records[0].closed.wait()


async def test_chat_stream_with_openai_client(start_server):
    with trio.fail_after(DEADLINE):
        node, url = await start_server()
        client = openai_client(url)

        def run():
            raw = client.chat.completions.with_raw_response.create(
                model=MODEL, messages=[{"role": "user", "content": [
                    {"type": "text", "text": "stream "}, {"type": "text", "text": "me"}]}],
                stream=True, stream_options={"include_usage": True})
            return raw.headers["x-wwwserve-executor"], list(raw.parse())

        header, chunks = await in_thread(run)
        assert header == EXEC_A
        assert all(c.object == "chat.completion.chunk" for c in chunks)
        assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
        with_choices = [c for c in chunks if c.choices]
        assert with_choices[0].choices[0].delta.role == "assistant"
        text = "".join(c.choices[0].delta.content or "" for c in with_choices)
        assert text == "You said: stream me"
        assert [c.choices[0].finish_reason for c in with_choices][-1] == "stop"
        assert all(c.choices[0].finish_reason is None for c in with_choices[:-1])
        assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4


async def test_completions_with_openai_client(start_server):
    with trio.fail_after(DEADLINE):
        node, url = await start_server()
        client = openai_client(url)
        raw = await in_thread(client.completions.with_raw_response.create, model=MODEL,
                              prompt="one two three", max_tokens=3)
        assert raw.headers["x-wwwserve-executor"] == EXEC_A
        resp = raw.parse()
        assert resp.object == "text_completion" and resp.id.startswith("cmpl-")
        assert resp.choices[0].text == "You said: one"
        assert resp.choices[0].finish_reason == "length"
        assert resp.usage.completion_tokens == 3
        assert node.records[0].request.prompt == "one two three"

        chunks = await in_thread(lambda: list(client.completions.create(
            model=MODEL, prompt=["streamed prompt"], stream=True)))
        assert "".join(c.choices[0].text for c in chunks) == "You said: streamed prompt"
        assert chunks[-1].choices[0].finish_reason == "stop"


async def test_models_list_with_openai_client(start_server):
    with trio.fail_after(DEADLINE):
        _, url = await start_server()
        models = await in_thread(lambda: list(openai_client(url).models.list()))
        assert [(m.id, m.owned_by) for m in models] == [(MODEL, "local"), ("big-model", "network")]
        assert models[1].model_extra["x_wwwserve"] == {"local": False, "peers": [EXEC_B, "Q"]}


async def test_openai_client_sees_errors(start_server):
    with trio.fail_after(DEADLINE):
        node, url = await start_server()
        node.fail_before = ModelNotFound("nope", [MODEL])
        client = openai_client(url)
        with pytest.raises(openai.NotFoundError) as info:
            await in_thread(client.chat.completions.create, model="nope",
                            messages=[{"role": "user", "content": "x"}])
        assert info.value.code == "model_not_found"
        node.fail_before = None
        node.fail_after = (2, RemoteError("executor_died", "boom"))
        with pytest.raises(openai.APIError, match="executor_died"):
            await in_thread(lambda: list(client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "a b c"}], stream=True)))


# ----------------------------------------------------------------------------- raw HTTP


ERRORS = [
    (ModelNotFound("nope", [MODEL]), 404, "model_not_found"),
    (InvalidRequest("prompt too long"), 400, None),
    (NoExecutorAvailable("all busy"), 503, "no_executor_available"),
    (RequestTimeout("too slow", may_have_processed=True), 504, "timeout"),
    (RemoteError("oom", "out of memory"), 502, "oom"),
    (RuntimeError("bug"), 500, "internal_error"),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("exc,status,code", ERRORS)
async def test_errors_before_first_chunk(start_server, exc, status, code, stream):
    with trio.fail_after(DEADLINE):
        node, url = await start_server()
        node.fail_before = exc
        async with httpx.AsyncClient(base_url=url) as http:
            r = await http.post("/v1/chat/completions", json={
                "model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": stream})
        assert r.status_code == status
        assert r.headers["content-type"].startswith("application/json")
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["code"] == code
        assert err["type"] == ("invalid_request_error" if status < 500 else "server_error")
        with trio.fail_after(1):
            await node.records[0].closed.wait()


async def test_request_validation_errors(start_server):
    with trio.fail_after(DEADLINE):
        node, url = await start_server(max_body_bytes=1000)
        async with httpx.AsyncClient(base_url=url) as http:
            r = await http.post("/v1/chat/completions", content=b"{not json",
                                headers={"content-type": "application/json"})
            assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"

            r = await http.post("/v1/chat/completions", json={
                "model": MODEL, "messages": [{"role": "user", "content": "x"}], "n": 17})
            assert r.status_code == 400 and r.json()["error"]["param"] == "n"

            r = await http.post("/v1/completions", json={"model": MODEL})
            assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"

            r = await http.post("/v1/completions", json={"model": MODEL, "prompt": "x" * 5000})
            assert r.status_code == 413
            assert r.json()["error"]["code"] == "request_too_large"

            # without Content-Length (chunked upload)
            async def body():
                for _ in range(10):
                    yield b"x" * 500

            r = await http.post("/v1/completions", content=body())
            assert r.status_code == 413

            r = await http.get("/v1/chat/completions")
            assert r.status_code == 405 and "error" in r.json()
            r = await http.get("/v2/nothing")
            assert r.status_code == 404 and "error" in r.json()
        assert node.records == []  # the node never saw an invalid request


async def test_max_tokens_above_the_cap_is_refused(start_server):
    with trio.fail_after(DEADLINE):
        node, url = await start_server(max_tokens_cap=2)
        async with httpx.AsyncClient(base_url=url) as http:
            r = await http.post("/v1/completions", json={
                "model": MODEL, "prompt": "a b c", "max_tokens": 100})
            assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"
            assert "limit of 2 tokens" in r.json()["error"]["message"]
            r = await http.post("/v1/completions", json={
                "model": MODEL, "prompt": "a b c", "max_tokens": 2})
        assert r.status_code == 200
        assert node.records[0].request.max_tokens == 2
        assert r.json()["choices"][0] == {"index": 0, "text": "You said:", "logprobs": None,
                                          "finish_reason": "length"}


async def test_sse_framing_and_done(start_server):
    with trio.fail_after(DEADLINE):
        node, url = await start_server()
        async with httpx.AsyncClient(base_url=url) as http:
            r = await http.post("/v1/chat/completions", json={
                "model": MODEL, "messages": [{"role": "user", "content": "a b"}], "stream": True})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-wwwserve-executor"] == EXEC_A
        events = parse_sse(r.text)
        assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
        chunks = [json.loads(e) for e in events[:-1]]
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        assert "usage" not in chunks[0]  # no include_usage
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
        assert chunks[-1]["x_wwwserve"] == {"executor": EXEC_A, "executors": [EXEC_A]}
        assert node.records[0].completed


async def test_executor_switch_reported(start_server):
    with trio.fail_after(DEADLINE):
        node, url = await start_server()
        node.switch_at = 2
        async with httpx.AsyncClient(base_url=url) as http:
            r = await http.post("/v1/chat/completions", json={
                "model": MODEL, "messages": [{"role": "user", "content": "a b c"}]})
        assert r.headers["x-wwwserve-executor"] == EXEC_A
        assert r.json()["x_wwwserve"] == {"executor": EXEC_A, "executors": [EXEC_A, EXEC_B]}
        assert r.json()["choices"][0]["message"]["content"] == "You said: a b c"


async def test_error_mid_stream_is_final_event(start_server):
    with trio.fail_after(DEADLINE):
        node, url = await start_server()
        node.fail_after = (2, NoExecutorAvailable("every executor died"))
        async with httpx.AsyncClient(base_url=url) as http:
            r = await http.post("/v1/completions", json={
                "model": MODEL, "prompt": "a b c", "stream": True})
            assert r.status_code == 200
            events = parse_sse(r.text)
            assert events[-1] == "[DONE]"
            chunks = [json.loads(e) for e in events[:-1]]
            assert "".join(c["choices"][0]["text"] for c in chunks[:-1]) == "You said:"
            assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
            assert chunks[-1]["error"]["code"] == "no_executor_available"

            # non-streaming: the error arrives before the head, so it has its status
            r = await http.post("/v1/completions", json={"model": MODEL, "prompt": "a b c"})
            assert r.status_code == 503 and r.json()["error"]["code"] == "no_executor_available"


async def test_status_metrics_healthz(start_server):
    with trio.fail_after(DEADLINE):
        node, url = await start_server()
        async with httpx.AsyncClient(base_url=url) as http:
            r = await http.get("/status")
            assert r.status_code == 200 and r.json() == node.status()
            r = await http.get("/healthz")
            assert r.status_code == 200 and r.json()["status"] == "ok"
            await http.post("/v1/completions", json={"model": MODEL, "prompt": "x"})
            await http.post("/v1/completions", content=b"[")
            r = await http.get("/metrics")
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/plain; version=")
        text = r.text
        assert 'wwwserve_http_requests_total{path="/status",status="200"} 1.0' in text
        assert 'wwwserve_http_requests_total{path="/healthz",status="200"} 1.0' in text
        assert 'wwwserve_http_requests_total{path="/v1/completions",status="200"} 1.0' in text
        assert 'wwwserve_http_requests_total{path="/v1/completions",status="400"} 1.0' in text
        reg = node.metrics.registry
        assert reg.get_sample_value("wwwserve_http_requests_total",
                                    {"path": "/metrics", "status": "200"}) == 1.0


async def test_client_disconnect_mid_stream_closes_generator(start_server):
    with trio.fail_after(DEADLINE):
        node = FakeNode(delay=0.01, repeat=2000)  # ~40 s of output if nobody stops it
        node, url = await start_server(node)
        async with httpx.AsyncClient(base_url=url) as http:
            async with http.stream("POST", "/v1/chat/completions", json={
                    "model": MODEL, "messages": [{"role": "user", "content": "go on"}],
                    "stream": True, "max_tokens": 4096}) as r:
                assert r.status_code == 200
                seen = 0
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        seen += 1
                        if seen == 3:
                            break
        # the connection is closed: the node's generator must be closed soon
        rec = node.records[0]
        with trio.fail_after(5):
            await rec.closed.wait()
        assert not rec.completed and rec.yielded < 1000


async def test_client_disconnect_while_node_stalls(start_server):
    """The node produces nothing after the first chunk (no writes): the disconnect is still
    noticed (``http.disconnect``) and the generator closed."""
    with trio.fail_after(DEADLINE):
        node, url = await start_server(heartbeat_interval=None)
        node.stall_after = 1
        async with httpx.AsyncClient(base_url=url) as http:
            async with http.stream("POST", "/v1/completions", json={
                    "model": MODEL, "prompt": "a b c", "stream": True}) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        break
        rec = node.records[0]
        with trio.fail_after(5):
            await rec.closed.wait()
        assert not rec.completed and rec.yielded == 1


async def test_client_disconnect_non_streaming(start_server):
    """A client giving up on a non-streaming request also closes the generator."""
    with trio.fail_after(DEADLINE):
        node, url = await start_server()
        node.stall_after = 1
        async with httpx.AsyncClient(base_url=url) as http:
            async with trio.open_nursery() as nursery:
                async def request() -> None:
                    await http.post("/v1/chat/completions", json={
                        "model": MODEL, "messages": [{"role": "user", "content": "a b"}]})

                nursery.start_soon(request)
                await node.generation_started.wait()
                while not node.records[0].yielded:
                    await trio.sleep(0.005)
                nursery.cancel_scope.cancel()
        rec = node.records[0]
        with trio.fail_after(5):
            await rec.closed.wait()
        assert not rec.completed
        labels = {"path": "/v1/chat/completions", "status": "499"}
        with trio.fail_after(5):  # counted when the server's handler returns
            while node.metrics.registry.get_sample_value(
                    "wwwserve_http_requests_total", labels) != 1:
                await trio.sleep(0.005)


async def test_heartbeat_comments_while_node_is_slow(start_server):
    with trio.fail_after(DEADLINE):
        node, url = await start_server(FakeNode(delay=0.15), heartbeat_interval=0.02)
        async with httpx.AsyncClient(base_url=url) as http:
            r = await http.post("/v1/completions", json={
                "model": MODEL, "prompt": "a", "stream": True})
        assert ": ping\n\n" in r.text
        events = parse_sse(r.text)
        assert events[-1] == "[DONE]"
        assert "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1]) == "You said: a"
        chunks = await in_thread(lambda: list(openai_client(url).completions.create(
            model=MODEL, prompt="a", stream=True)))
        assert "".join(c.choices[0].text for c in chunks) == "You said: a"


async def test_node_yielding_inside_cancel_scope(start_server):
    """Scopes the node holds across ``yield`` stay nested: complete, error and disconnect."""
    with trio.fail_after(DEADLINE):
        node, url = await start_server(FakeNode(hold_scope=True))
        body = {"model": MODEL, "messages": [{"role": "user", "content": "a b"}]}
        async with httpx.AsyncClient(base_url=url) as http:
            r = await http.post("/v1/chat/completions", json=body)
            assert r.json()["choices"][0]["message"]["content"] == "You said: a b"
            r = await http.post("/v1/chat/completions", json={**body, "stream": True})
            assert parse_sse(r.text)[-1] == "[DONE]"
            node.fail_after = (1, RemoteError("x", "y"))
            r = await http.post("/v1/chat/completions", json={**body, "stream": True})
            assert json.loads(parse_sse(r.text)[-2])["error"]["code"] == "x"
            node.fail_after = None
            node.stall_after = 1
            async with http.stream("POST", "/v1/chat/completions",
                                   json={**body, "stream": True}) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        break
        with trio.fail_after(5):
            await node.records[-1].closed.wait()
        assert all(rec.closed.is_set() for rec in node.records)
        # a corrupted cancel-scope stack would surface as an error logged by Hypercorn
        # (checked by the start_server fixture)


async def test_cancel_stops_server():
    with trio.fail_after(DEADLINE):
        node = FakeNode(delay=0.01, repeat=2000)
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(serve_api, node)
            nursery.start_soon(_stream_forever, f"http://{host}:{port}")
            await node.generation_started.wait()
            nursery.cancel_scope.cancel()
        # cancelled with a stream in flight: the generator was closed, the port is free
        assert node.records[0].closed.is_set() and not node.records[0].completed
        async with httpx.AsyncClient() as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(f"http://{host}:{port}/healthz")


async def _stream_forever(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        async with http.stream("POST", "/v1/completions", json={
                "model": MODEL, "prompt": "x", "stream": True, "max_tokens": 4096}) as r:
            async for _ in r.aiter_bytes():
                pass


async def test_graceful_shutdown_trigger():
    with trio.fail_after(DEADLINE):
        stop = trio.Event()
        node = FakeNode()
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(partial(
                serve_api, node, "127.0.0.1", 0, shutdown_trigger=stop.wait, graceful_timeout=1))
            async with httpx.AsyncClient() as http:
                r = await http.get(f"http://{host}:{port}/healthz")
                assert r.status_code == 200
            stop.set()  # serve_api returns by itself: the nursery exits


async def test_client_leaves_while_sending_body(start_server):
    with trio.fail_after(DEADLINE):
        node, url = await start_server()
        host, port = url.removeprefix("http://").split(":")
        stream = await trio.open_tcp_stream(host, int(port))
        await stream.send_all(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                              b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
        await stream.aclose()
        labels = {"path": "/v1/completions", "status": "499"}
        while node.metrics.registry.get_sample_value("wwwserve_http_requests_total", labels) != 1:
            await trio.sleep(0.005)
        assert node.records == []
