"""Executor conformance suite: checks an implementation against the contract in
:mod:`wwwserve_p2p.executors.base`.

Usage (inside a trio task; ``make_executor`` returns a *fresh* executor, sync or async)::

    from wwwserve_p2p.testing.conformance import run_conformance
    await run_conformance(lambda: EchoExecutor(capacity=2), "echo")

or, one pytest test per clause::

    @pytest.mark.parametrize("check", CHECK_NAMES)
    async def test_conformance(check):
        await run_check(check, make_executor, "echo")

Each check builds its own executor, closes it afterwards, and fails with
:class:`ConformanceError` (an ``AssertionError``) naming the clause. Checks (see
:data:`CHECKS`):

- ``models``: ``models()`` is a non-empty tuple of names containing ``model``; ``load()`` is
  a sane :class:`LoadSnapshot`.
- ``stream_shape``: completion (greedy and sampled) and chat requests: only the last chunk is
  final, with ``finish_reason`` in {stop, length}, ``usage`` set and
  ``0 <= completion_tokens <= max_tokens``; load is idle afterwards.
- ``max_tokens_one``: ``max_tokens=1`` gives ``completion_tokens <= 1``.
- ``unknown_model``: :class:`ModelNotFound` before any chunk.
- ``invalid_params``: :class:`InvalidRequest` before any chunk for ``max_tokens < 1``,
  temperature outside [0, 2], top_p outside (0, 1], and no prompt/messages.
- ``continuation``: with the first half of a greedy answer as ``continuation`` the output
  does not repeat it (with ``exact_continuation=True``: continuation + output == the answer;
  for executors whose chunks are tokens and that are deterministic at temperature 0).
- ``early_close``: ``running >= 1`` while a stream is open; ``aclose()`` after the first
  chunk, cancelling the consumer after the first chunk, and cancelling it before the first
  chunk all bring ``load()`` back to idle within ``idle_deadline``.
- ``queued``: with ``capacity`` streams open, one more shows up as ``queued`` and does not
  start; it starts once a slot is freed.
- ``loop_responsive``: a task ticking every 10 ms is never late by more than ``max_loop_lag``
  while generations run.
- ``aclose_idempotent``: ``aclose()`` twice is harmless; ``load()`` still answers.

The default prompt has no digits and about 30 distinct words; executors need answers of at
least 2 chunks for ``early_close``/``queued``/``continuation``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any

import trio

from ..core.types import ChatMessage, GenerationChunk, GenerationRequest, LoadSnapshot, Usage
from ..errors import InvalidRequest, ModelNotFound
from ..executors.base import Executor

#: A factory of fresh executors: sync or async, no arguments.
MakeExecutor = Callable[[], "Awaitable[Executor] | Executor"]

DEFAULT_PROMPT = ("First Citizen: Before we proceed any further, hear me speak. All: Speak, "
                  "speak. First Citizen: You are all resolved rather to die than to famish? "
                  "All: Resolved. resolved. First Citizen: First, you know Caius Marcius is "
                  "chief enemy to the people.")


class ConformanceError(AssertionError):
    """An executor violated a clause of the contract; the message names the check."""


@dataclass(frozen=True)
class ConformanceOptions:
    """Knobs of the suite.

    - ``model``: a model the executor serves; ``prompt``: the completion prompt used.
    - ``exact_continuation``: check continuation + output == uninterrupted answer.
    - ``idle_deadline``: seconds for ``load()`` to return to idle after a close/cancel.
    - ``max_loop_lag``: seconds a 10 ms ticker may be late during generation.
    - ``check_deadline``: seconds any one check may take.
    - ``probe_tokens``: ``max_tokens`` of the generations used by ``loop_responsive``.
    """

    model: str
    prompt: str = DEFAULT_PROMPT
    exact_continuation: bool = False
    idle_deadline: float = 10.0
    max_loop_lag: float = 0.2
    check_deadline: float = 120.0
    probe_tokens: int = 48


def _fail(msg: str) -> None:
    raise ConformanceError(msg)


def _req(opts: ConformanceOptions, rid: str, **kw: Any) -> GenerationRequest:
    base = dict(request_id=rid, model=opts.model, prompt=opts.prompt, max_tokens=8,
                temperature=0.0, seed=0)
    base.update(kw)
    return GenerationRequest(**base)


def _chat(opts: ConformanceOptions, rid: str, **kw: Any) -> GenerationRequest:
    msgs = (ChatMessage("system", "You are a helpful assistant."),
            ChatMessage("user", opts.prompt))
    return _req(opts, rid, prompt="", messages=msgs, **kw)


async def collect(executor: Executor, request: GenerationRequest) -> list[GenerationChunk]:
    """All chunks of one generation (the generator is closed on any exit)."""
    async with aclosing(executor.generate(request)) as gen:
        return [chunk async for chunk in gen]


def check_shape(chunks: list[GenerationChunk], request: GenerationRequest, what: str) -> None:
    """Assert the stream-shape clause for ``chunks`` answering ``request``."""
    if not chunks:
        _fail(f"{what}: the stream ended without a final chunk")
    for i, c in enumerate(chunks):
        if not isinstance(c, GenerationChunk) or not isinstance(c.text, str):
            _fail(f"{what}: chunk {i} is not a GenerationChunk with str text: {c!r}")
        if i < len(chunks) - 1 and c.finish_reason is not None:
            _fail(f"{what}: chunk {i} of {len(chunks)} has finish_reason "
                  f"{c.finish_reason!r}; only the last chunk may be final")
    last = chunks[-1]
    if last.finish_reason not in ("stop", "length"):
        _fail(f"{what}: last chunk has finish_reason {last.finish_reason!r}, expected "
              "'stop' or 'length'")
    if not isinstance(last.usage, Usage):
        _fail(f"{what}: last chunk has no usage: {last!r}")
    u = last.usage
    if not 0 <= u.completion_tokens <= request.max_tokens:
        _fail(f"{what}: usage.completion_tokens={u.completion_tokens} not in "
              f"[0, max_tokens={request.max_tokens}]")
    if u.prompt_tokens < 0:
        _fail(f"{what}: usage.prompt_tokens={u.prompt_tokens} < 0")


async def expect_error_first(executor: Executor, request: GenerationRequest,
                             exc_type: type[BaseException], what: str) -> None:
    """Assert that ``generate(request)`` raises ``exc_type`` before yielding any chunk."""
    try:
        gen = executor.generate(request)
    except exc_type:
        return
    except Exception as exc:
        _fail(f"{what}: expected {exc_type.__name__}, got {type(exc).__name__}: {exc}")
    async with aclosing(gen):
        try:
            chunk = await gen.__anext__()
        except exc_type:
            return
        except StopAsyncIteration:
            _fail(f"{what}: the stream ended without raising {exc_type.__name__}")
        except Exception as exc:
            _fail(f"{what}: expected {exc_type.__name__}, got {type(exc).__name__}: {exc}")
        _fail(f"{what}: yielded {chunk!r} instead of raising {exc_type.__name__}")


def _busy(load: LoadSnapshot, idle: LoadSnapshot) -> bool:
    return load.running > idle.running or load.queued > idle.queued


async def wait_idle(executor: Executor, idle: LoadSnapshot, deadline: float, what: str) -> None:
    """Poll ``load()`` every 10 ms until running/queued are back to ``idle``'s values."""
    load = executor.load()
    with trio.move_on_after(deadline):
        while _busy(load := executor.load(), idle):
            await trio.sleep(0.01)
        return
    _fail(f"{what}: load() did not return to idle within {deadline} s: {load} (idle: {idle})")


async def wait_until(pred: Callable[[], bool], deadline: float) -> bool:
    """Poll ``pred`` every 10 ms for up to ``deadline`` seconds; return its last value."""
    with trio.move_on_after(deadline):
        while not pred():
            await trio.sleep(0.01)
        return True
    return pred()


async def _first_chunk(gen, what: str) -> GenerationChunk:
    try:
        chunk = await gen.__anext__()
    except StopAsyncIteration:
        _fail(f"{what}: the stream ended without any chunk")
    if chunk.is_final:
        _fail(f"{what}: the first chunk is already final; this check needs answers of at "
              "least two chunks (use a longer prompt or a model that does not stop at once)")
    return chunk


# -- checks ----------------------------------------------------------------------------------


async def check_models(ex: Executor, opts: ConformanceOptions) -> None:
    models = ex.models()
    if not isinstance(models, tuple) or not models:
        _fail(f"models() must be a non-empty tuple, got {models!r}")
    if not all(isinstance(m, str) and m for m in models):
        _fail(f"models() must contain non-empty strings, got {models!r}")
    if opts.model not in models:
        _fail(f"models() {models!r} does not contain the model under test {opts.model!r}")
    load = ex.load()
    if not isinstance(load, LoadSnapshot):
        _fail(f"load() must return a LoadSnapshot, got {load!r}")
    if load.capacity < 1 or load.running < 0 or load.queued < 0:
        _fail(f"load() is not sane: {load}")
    if not 0.0 <= load.kv_usage <= 1.0:
        _fail(f"load().kv_usage must be in [0, 1]: {load}")


async def check_stream_shape(ex: Executor, opts: ConformanceOptions) -> None:
    idle = ex.load()
    cases = {
        "greedy completion": _req(opts, "shape-1"),
        "sampled completion": _req(opts, "shape-2", temperature=0.9, top_p=0.9, seed=7),
        "chat": _chat(opts, "shape-3"),
        "completion with stop": _req(opts, "shape-4", stop=("\n\n\n",)),
    }
    for what, req in cases.items():
        check_shape(await collect(ex, req), req, what)
    await wait_idle(ex, idle, opts.idle_deadline, "after complete streams")


async def check_max_tokens_one(ex: Executor, opts: ConformanceOptions) -> None:
    for what, req in {"completion": _req(opts, "one-1", max_tokens=1),
                      "chat": _chat(opts, "one-2", max_tokens=1, temperature=0.7, seed=3)}.items():
        chunks = await collect(ex, req)
        check_shape(chunks, req, f"max_tokens=1 {what}")


async def check_unknown_model(ex: Executor, opts: ConformanceOptions) -> None:
    name = "no-such-model-\u2603-conformance"
    await expect_error_first(ex, _req(opts, "nf-1", model=name), ModelNotFound,
                             "unknown model (completion)")
    await expect_error_first(ex, _chat(opts, "nf-2", model=name), ModelNotFound,
                             "unknown model (chat)")


async def check_invalid_params(ex: Executor, opts: ConformanceOptions) -> None:
    cases = {
        "max_tokens=0": _req(opts, "inv-1", max_tokens=0),
        "max_tokens=-1": _req(opts, "inv-2", max_tokens=-1),
        "temperature=-0.1": _req(opts, "inv-3", temperature=-0.1),
        "temperature=2.5": _req(opts, "inv-4", temperature=2.5),
        "top_p=0": _req(opts, "inv-5", top_p=0.0),
        "top_p=1.5": _req(opts, "inv-6", top_p=1.5),
        "no prompt nor messages": _req(opts, "inv-7", prompt=""),
        "chat max_tokens=0": _chat(opts, "inv-8", max_tokens=0),
    }
    for what, req in cases.items():
        await expect_error_first(ex, req, InvalidRequest, f"invalid request ({what})")


async def check_continuation(ex: Executor, opts: ConformanceOptions) -> None:
    n = 12
    full_req = _req(opts, "cont-1", max_tokens=n)
    full = await collect(ex, full_req)
    check_shape(full, full_req, "uninterrupted answer")
    texts = [c.text for c in full if c.text]
    if len(texts) < 2:
        _fail(f"continuation: the answer {''.join(texts)!r} has fewer than 2 text chunks; "
              "cannot split it")
    k = len(texts) // 2
    cont, rest = "".join(texts[:k]), "".join(texts[k:])
    req = replace(full_req, request_id="cont-2", continuation=cont, max_tokens=max(1, n - k))
    chunks = await collect(ex, req)
    check_shape(chunks, req, "continued answer")
    out = "".join(c.text for c in chunks)
    if opts.exact_continuation:
        if cont + out != cont + rest:
            _fail(f"continuation: continuation {cont!r} + output {out!r} != uninterrupted "
                  f"answer {cont + rest!r}")
    elif cont.strip() and out.startswith(cont) and not rest.startswith(cont):
        _fail(f"continuation: the output {out!r} repeats the continuation {cont!r}")


async def check_early_close(ex: Executor, opts: ConformanceOptions) -> None:
    idle = ex.load()
    req = _req(opts, "close-1", max_tokens=64)

    # 1. aclose() after the first chunk
    gen = ex.generate(req)
    try:
        await _first_chunk(gen, "early close")
        load = ex.load()
        if load.running < idle.running + 1:
            _fail(f"load().running must count an open stream: {load} (idle: {idle})")
    finally:
        await gen.aclose()
    await wait_idle(ex, idle, opts.idle_deadline, "after aclose() of an open stream")

    # 2. cancelling the consumer after the first chunk
    got_first = trio.Event()

    async def consume(request: GenerationRequest) -> None:
        async with aclosing(ex.generate(request)) as g:
            async for _ in g:
                got_first.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume, replace(req, request_id="close-2"))
        await got_first.wait()
        nursery.cancel_scope.cancel()
    await wait_idle(ex, idle, opts.idle_deadline, "after cancelling a consumer mid-stream")

    # 3. cancelling the consumer before the first chunk (e.g. during prefill)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume, replace(req, request_id="close-3"))
        await trio.lowlevel.checkpoint()
        await trio.lowlevel.checkpoint()
        nursery.cancel_scope.cancel()
    await wait_idle(ex, idle, opts.idle_deadline, "after cancelling a consumer before output")


async def check_queued(ex: Executor, opts: ConformanceOptions) -> None:
    idle = ex.load()
    cap = idle.capacity
    if cap > 64:
        _fail(f"queued: capacity {cap} is too large for this check (max 64)")
    req = _req(opts, "queue", max_tokens=64)
    gens = []
    extra_started = trio.Event()
    release = trio.Event()

    async def extra() -> None:
        async with aclosing(ex.generate(replace(req, request_id="queue-extra"))) as g:
            await _first_chunk(g, "queued request")
            extra_started.set()
            await release.wait()

    try:
        for i in range(cap):
            gen = ex.generate(replace(req, request_id=f"queue-{i}"))
            gens.append(gen)
            await _first_chunk(gen, f"stream {i} of {cap}")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(extra)
            ok = await wait_until(lambda: ex.load().queued >= idle.queued + 1, opts.idle_deadline)
            if not ok:
                _fail(f"queued: with {cap} streams open (capacity {cap}) another request does "
                      f"not show as queued: {ex.load()}")
            if extra_started.is_set():
                _fail(f"queued: request beyond capacity {cap} started while all slots were busy")
            await gens[0].aclose()
            with trio.move_on_after(opts.idle_deadline):
                await extra_started.wait()
            if not extra_started.is_set():
                _fail(f"queued: the queued request did not start within {opts.idle_deadline} s "
                      f"after a slot was freed: {ex.load()}")
            release.set()
    finally:
        for gen in gens:
            await gen.aclose()
    await wait_idle(ex, idle, opts.idle_deadline, "after the queue check")


async def check_loop_responsive(ex: Executor, opts: ConformanceOptions) -> None:
    lag = 0.0
    period = 0.01

    async def ticker() -> None:
        nonlocal lag
        while True:
            t0 = trio.current_time()
            await trio.sleep(period)
            lag = max(lag, trio.current_time() - t0 - period)

    reqs = [_req(opts, "loop-1", max_tokens=opts.probe_tokens),
            _chat(opts, "loop-2", max_tokens=opts.probe_tokens, temperature=0.8, seed=1)]
    if ex.load().capacity < 2:
        reqs = reqs[:1]
    async with trio.open_nursery() as outer:
        outer.start_soon(ticker)
        await trio.sleep(2 * period)
        async with trio.open_nursery() as nursery:
            for r in reqs:
                nursery.start_soon(collect, ex, r)
        await trio.sleep(2 * period)  # let the ticker record a lag caused by the last step
        outer.cancel_scope.cancel()
    if lag > opts.max_loop_lag:
        _fail(f"loop_responsive: a 10 ms ticker was late by {lag * 1000:.0f} ms (limit "
              f"{opts.max_loop_lag * 1000:.0f} ms): generation blocks the event loop")


async def check_aclose_idempotent(ex: Executor, opts: ConformanceOptions) -> None:
    await collect(ex, _req(opts, "aclose-1", max_tokens=2))
    await ex.aclose()
    await ex.aclose()
    if not isinstance(ex.load(), LoadSnapshot):
        _fail("load() after aclose() must still return a LoadSnapshot")


#: The checks, by name, in the order :func:`run_conformance` runs them.
CHECKS: dict[str, Callable[[Executor, ConformanceOptions], Awaitable[None]]] = {
    "models": check_models,
    "stream_shape": check_stream_shape,
    "max_tokens_one": check_max_tokens_one,
    "unknown_model": check_unknown_model,
    "invalid_params": check_invalid_params,
    "continuation": check_continuation,
    "early_close": check_early_close,
    "queued": check_queued,
    "loop_responsive": check_loop_responsive,
    "aclose_idempotent": check_aclose_idempotent,
}
CHECK_NAMES: tuple[str, ...] = tuple(CHECKS)


async def _make(make_executor: MakeExecutor) -> Executor:
    ex = make_executor()
    if inspect.isawaitable(ex):
        ex = await ex
    if not isinstance(ex, Executor):
        raise ConformanceError(f"make_executor returned {ex!r}, not an Executor")
    start = getattr(ex, "start", None)  # e.g. OpenAIUpstreamExecutor discovers its models
    if start is not None and inspect.iscoroutinefunction(start):
        await start()
    return ex


async def run_check(name: str, make_executor: MakeExecutor, model: str, **options: Any) -> None:
    """Run one check (a key of :data:`CHECKS`) on a fresh executor, then close it.

    ``options`` are fields of :class:`ConformanceOptions`.

    :raises ConformanceError: the executor violates the clause (or the check timed out).
    :raises KeyError: unknown check name.
    """
    check = CHECKS[name]
    opts = ConformanceOptions(model=model, **options)
    ex = await _make(make_executor)
    try:
        with trio.move_on_after(opts.check_deadline) as scope:
            await check(ex, opts)
        if scope.cancelled_caught:
            _fail(f"{name}: did not finish within {opts.check_deadline} s")
    except ConformanceError as exc:
        raise ConformanceError(f"[{name}] {exc}") from None
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(opts.idle_deadline):
            await ex.aclose()


async def run_conformance(make_executor: MakeExecutor, model: str, *,
                          checks: tuple[str, ...] | None = None, **options: Any) -> None:
    """Run the checks (default all of :data:`CHECK_NAMES`), each on a fresh executor.

    All checks run even if some fail; failures (and unexpected exceptions) are reported
    together in one :class:`ConformanceError`.

    :param make_executor: returns a fresh executor (may be async); if the executor has an
        async ``start()`` method it is awaited.
    :param model: a model it serves.
    :param options: fields of :class:`ConformanceOptions` (``exact_continuation``,
        ``max_loop_lag``, ``idle_deadline``, ...).
    """
    failures: list[str] = []
    for name in checks or CHECK_NAMES:
        try:
            await run_check(name, make_executor, model, **options)
        except ConformanceError as exc:
            failures.append(str(exc))
        except Exception as exc:
            failures.append(f"[{name}] unexpected {type(exc).__name__}: {exc}")
    if failures:
        raise ConformanceError(f"{len(failures)} conformance check(s) failed:\n"
                               + "\n".join(failures))
