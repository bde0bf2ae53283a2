"""A request queued behind another's prefill is not cut off as 'slow' (issue 12): engines with
chunked prefill serve prompts oldest first, so a short prompt that arrives while a long one
prefills waits for it. The executor's Offer counts the prompts still before their first token
(:attr:`~wwwserve_p2p.services.delegation.SlotBook.prefilling`), and the requester's derived
first-token deadline comes from that figure. Without it, in ``benchmarks/slo_attainment.py
--sweep --virtual`` an honest busy executor missed its 0.5 s deadline about once a run, was
penalised for a minute, and the stake order of delegated work broke (8-unit < 4-unit).

In-memory overlay under trio's MockClock (virtual time): fast and deterministic."""

from __future__ import annotations

import itertools

import trio

from wwwserve_p2p.core.types import GenerationRequest
from wwwserve_p2p.executors.echo import EchoExecutor
from wwwserve_p2p.services.delegation import SlotBook, _SpeedMeter, prompt_size
from wwwserve_p2p.testing.swarm import collect_text, open_swarm

_ids = itertools.count()
PREFILL_PER_WORD = 0.05  # s of prefill per prompt word, one prompt at a time (oldest first)


class SerialPrefillEcho(EchoExecutor):
    """An echo executor whose prompts prefill one after another (like chunked prefill, oldest
    first) before their first token; the answer stays the echo."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._prefill = trio.StrictFIFOLock()

    async def generate(self, request: GenerationRequest):
        async with self._gate.slot():
            async with self._prefill:
                await trio.sleep(PREFILL_PER_WORD * len(self._source_text(request).split()))
        async for chunk in super().generate(request):
            yield chunk


def req(words: int) -> GenerationRequest:
    prompt = " ".join(f"w{i}" for i in range(words))
    return GenerationRequest(f"ahead{next(_ids)}", "m", prompt=prompt, max_tokens=3, temperature=0.0)


async def test_a_short_prompt_behind_a_long_prefill_is_stated_and_not_penalised(autojump_clock):
    executors = [EchoExecutor(models=("front",), capacity=4),
                 SerialPrefillEcho(models=("m",), capacity=4, delay_per_token=0.1)]
    async with open_swarm(executors) as swarm:
        origin, ex = swarm[0], swarm[1]
        for i in range(6):  # the executor measures itself on short prompts of varied size
            assert await collect_text(ex, req(4 + i)) == "w0 w1 w2 "
        for i in range(4):  # and delegated ones
            assert await collect_text(origin, req(4 + i)) == "w0 w1 w2 "
        short = req(5)
        alone = ex.delegation.slots.expected_ttft(prompt_size(short))
        assert 0 < alone < 1.0, alone
        results: dict[str, str] = {}

        async def ask(r: GenerationRequest) -> None:
            results[r.request_id] = await collect_text(origin, r)

        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask, req(200))  # ~10 s of prefill
                await trio.sleep(0.5)
                assert ex.delegation.slots.prefilling > 0  # the long prompt is ahead
                behind = ex.delegation.slots.expected_ttft(prompt_size(short))
                assert behind > 5 * alone, (behind, alone)  # the offer says so
                nursery.start_soon(ask, short)  # waits ~9.5 s for the long prefill
        assert list(results.values()) == ["w0 w1 w2 "] * 2
        rep = origin.requester.reputation
        assert origin.requester.stats.redispatched == 0
        assert rep.counts["slow"] == 0 and rep.counts["timeout"] == 0, rep.counts
        assert not rep.penalised(ex.peer_id, trio.current_time())
        assert ex.delegation.slots.prefilling == 0


async def test_a_run_counts_as_prefilling_until_its_first_token_or_its_end():
    book = SlotBook(EchoExecutor(models=("m",)))
    m = _SpeedMeter(100, book)
    n = _SpeedMeter(40, book)
    assert book.prefilling == 140
    m.chunk("")  # no text: not a token yet
    assert book.prefilling == 140
    m.chunk("tok")
    assert book.prefilling == 40
    m.chunk("tok")
    m.close()  # idempotent
    assert book.prefilling == 40
    n.close()  # ended (failed, cancelled) without a token
    assert book.prefilling == 0
    assert _SpeedMeter(10).size == 10 and book.prefilling == 0  # without a book: not counted
