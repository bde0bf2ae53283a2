"""An honest executor with more ahead of a request's first token than usual is not dropped as
'slow' (issue 15 item 7): its Offer states the expected time to first token *for this request*
(:meth:`~wwwserve_p2p.services.delegation.SlotBook.expected_ttft`: its measured commit lead,
scaled by the prompt's size, since a real LLM's prefill is the work queued ahead of the first
token), and the requester's first-token deadline comes from that figure. Before, the deadline
came from the executor's average speed (1.5 x + 0.25 s), so a long prompt after short ones was
cut off after ~1 s, re-dispatched and its executor penalised for a minute.

In-memory overlay under trio's MockClock (virtual time): fast and deterministic."""

from __future__ import annotations

import itertools

import trio

from wwwserve_p2p.core.types import GenerationRequest
from wwwserve_p2p.executors.echo import EchoExecutor
from wwwserve_p2p.services.delegation import SlotBook, prompt_size
from wwwserve_p2p.testing.swarm import collect_text, open_swarm

_ids = itertools.count()
PREFILL_PER_WORD = 0.05  # s of prefill per prompt word before the first token
PER_TOKEN = 0.2          # s per output token


class PrefillEcho(EchoExecutor):
    """An echo executor whose first token waits for a prefill proportional to the prompt,
    inside its slot, like an LLM's (the answer stays the echo)."""

    async def generate(self, request: GenerationRequest):
        async with self._gate.slot():
            await trio.sleep(PREFILL_PER_WORD * len(self._source_text(request).split()))
        async for chunk in super().generate(request):
            yield chunk


def req(words: int) -> GenerationRequest:
    prompt = " ".join(f"w{i}" for i in range(words))
    return GenerationRequest(f"busy{next(_ids)}", "m", prompt=prompt, max_tokens=3, temperature=0.0)


async def test_a_long_prefill_is_stated_in_the_offer_and_its_executor_is_not_penalised(autojump_clock):
    executors = [EchoExecutor(models=("front",), capacity=4)] + \
        [PrefillEcho(models=("m",), capacity=4, delay_per_token=PER_TOKEN) for _ in range(2)]
    async with open_swarm(executors) as swarm:
        origin = swarm[0]
        rep = origin.requester.reputation
        for node in swarm.nodes[1:]:  # each executor measures itself on short prompts (4-8 words)
            for i in range(5):
                assert await collect_text(node, req(4 + i)) == "w0 w1 w2 "
        for i in range(6):  # and delegated ones: 0.4-0.6 s to the first token
            assert await collect_text(origin, req(4 + i % 5)) == "w0 w1 w2 "
        advertised = [n.delegation.slots.expected_ttft(prompt_size(req(5))) for n in swarm.nodes[1:]]
        assert all(0 < a < 1.5 for a in advertised), advertised
        long = req(200)  # ~10 s of prefill: 25x what the executors usually take
        expected = [n.delegation.slots.expected_ttft(prompt_size(long)) for n in swarm.nodes[1:]]
        assert all(e >= PREFILL_PER_WORD * 200 for e in expected), expected  # the offer says so
        t0 = trio.current_time()
        with trio.fail_after(120):
            assert await collect_text(origin, long) == "w0 w1 w2 "
        took = trio.current_time() - t0
        assert took < 2 * PREFILL_PER_WORD * 200, took  # served by the first executor, not after a retry
        assert origin.requester.stats.redispatched == 0
        assert rep.counts["slow"] == 0 and rep.counts["timeout"] == 0, rep.counts
        assert not any(rep.penalised(n.peer_id, trio.current_time()) for n in swarm.nodes[1:])


def test_expected_ttft_counts_the_commit_lead_and_scales_with_the_prompt():
    book = SlotBook(EchoExecutor(models=("m",)))
    assert book.expected_ttft(100) == 0.0  # unknown: the requester uses its ceiling
    for _ in range(20):
        book.observe(0.3, 0.05, 100)   # generate to first token
        book.observe_lead(0.5, 100)     # commit to first chunk written: more than the model's own
    assert abs(book.expected_ttft(100) - 0.5) < 0.05
    assert book.expected_ttft(1000) == book.expected_ttft(100)  # one size only: no slope known
    for i in range(40):  # prefill 1 ms per unit of size on top of 0.2 s
        size = 50 + 25 * (i % 5)
        book.observe_lead(0.2 + 0.001 * size, size)
    assert abs(book.size_slope_s - 0.001) < 0.0002
    assert book.expected_ttft(10) >= book.lead_s  # a short prompt is not promised less than usual
    assert 0.9 <= book.expected_ttft(1100) - book.lead_s <= 1.2  # ~1000 units beyond the mean
    flat = SlotBook(EchoExecutor(models=("m",)))
    for i in range(40):  # time to first token independent of the prompt (echo): no slope
        flat.observe(1.0, 0.05, 10 + 10 * (i % 4))
    assert flat.size_slope_s < 1e-3 and flat.expected_ttft(1000) < 1.1
    book.observe_lead(float("nan"))
    assert book.expected_ttft(100) < 1.0
