"""A lying executor among 4 peers on the in-memory overlay under trio's MockClock (issue 15
items 7 and 9): ``delegation.misbehave = "decline"`` makes it announce spare slots in its
status and accept every probe, then refuse every commit as "overloaded". Every request is
still answered by an honest executor, the liar's refusals are remembered ('declined') and it is
left out of the requester's candidates while penalised."""

from __future__ import annotations

import itertools
from dataclasses import replace

import trio

from wwwserve_p2p.config import DelegationSection, NodeConfig
from wwwserve_p2p.core.types import GenerationRequest
from wwwserve_p2p.executors.echo import EchoExecutor
from wwwserve_p2p.testing.swarm import collect_text, open_swarm

_ids = itertools.count()
PROMPT = "alpha beta gamma"


def req():
    return GenerationRequest(f"li{next(_ids)}", "m", prompt=PROMPT, max_tokens=3, temperature=0.0)


async def test_a_lying_executor_is_declined_around_and_then_left_out(autojump_clock):
    honest = NodeConfig()
    liar = replace(honest, delegation=DelegationSection(misbehave="decline"))
    executors = [EchoExecutor(models=("front",))] + \
        [EchoExecutor(models=("m",), capacity=4, delay_per_token=0.2) for _ in range(4)]
    async with open_swarm(executors, configs=[honest, honest, honest, honest, liar]) as swarm:
        origin, bad = swarm[0], swarm[4]
        assert bad.delegation.accepting()  # it claims spare slots whatever its load
        rep = origin.requester.reputation
        declines, shunned = [], []
        for _ in range(16):
            before = rep.counts["declined"]
            shunned.append(rep.penalised(bad.peer_id, trio.current_time()))
            with trio.fail_after(60):
                assert await collect_text(origin, req()) == PROMPT  # answered in full every time
            declines.append(rep.counts["declined"] - before)
        assert sum(declines) >= 3, declines  # it was chosen, and refused its commits
        assert bad.delegation.stats.accepted_for_others == 0  # it never served anything
        first = next(i for i, s in enumerate(shunned) if s)
        # once penalised, its refusals stop: it is no longer chosen while the penalty lasts
        assert sum(d for d, s in zip(declines, shunned) if s) == 0, (declines, shunned)
        assert all(shunned[first:]), shunned
