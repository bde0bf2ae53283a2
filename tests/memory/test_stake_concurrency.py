"""Stake steers work at the default policy under concurrency too (issue 12): one requester sends its
requests 8 at a time to four idle executors staking 1, 2, 4, 8 units (in-memory overlay, MockClock).

Before busy refusals (core/dispatch.py) the executors' per-requester bound on open offers refused
the high-stake peers' probes, whoever was left accepted and won: 100/37/22/41 of 200 requests.
"""

from __future__ import annotations

import itertools
from contextlib import aclosing

import trio

from wwwserve_p2p.config import NodeConfig
from wwwserve_p2p.core.ledger import Genesis, LedgerParams
from wwwserve_p2p.core.policy import OffloadPolicy
from wwwserve_p2p.core.types import GenerationRequest
from wwwserve_p2p.executors.echo import EchoExecutor
from wwwserve_p2p.testing.swarm import open_swarm, swarm_identity

_ids = itertools.count()
STAKES = [1, 2, 4, 8]


async def test_stake_orders_the_work_of_concurrent_requests(autojump_clock):
    # the source serves another model only: every request is offloaded, at the default policy
    configs = [NodeConfig(policy=OffloadPolicy(target_load=0.0, stake=0))] + \
        [NodeConfig(policy=OffloadPolicy(stake=s * 1_000_000)) for s in STAKES]
    executors = [EchoExecutor(models=("front",), capacity=1)] + \
        [EchoExecutor(models=("echo",), capacity=4, delay_per_token=0.01) for _ in STAKES]
    genesis = Genesis("stake-conc", LedgerParams(), tuple((swarm_identity(0, i).peer_id, 100_000_000)
                                                          for i in range(len(configs))))
    async with open_swarm(executors, configs=configs, genesis=genesis) as swarm:
        ids = {swarm[i + 1].peer_id: s for i, s in enumerate(STAKES)}
        await swarm.wait_until(lambda: all(swarm[0].ledger_service.stake_of(p) == s * 1_000_000
                                           for p, s in ids.items()), timeout=60)
        counts = {p: 0 for p in ids}
        texts = []

        async def one():
            owners, text = set(), []
            async with aclosing(swarm[0].generate(GenerationRequest(
                    f"sc{next(_ids)}", "echo", prompt="a b c d e f g h", max_tokens=8))) as gen:
                async for rc in gen:
                    owners.add(rc.executor)
                    text.append(rc.chunk.text)
            assert len(owners) == 1  # one executor per answer
            counts[owners.pop()] += 1
            texts.append("".join(text))

        for _ in range(15):  # 120 requests, 8 at a time
            async with trio.open_nursery() as nursery:
                for _ in range(8):
                    nursery.start_soon(one)
        assert len(texts) == 120 and set(texts) == {"a b c d e f g h"}
        by_stake = [counts[p] for p, _ in sorted(ids.items(), key=lambda kv: kv[1])]
        assert by_stake[3] >= 3 * max(1, by_stake[0]), by_stake
        assert by_stake[3] > by_stake[2] > by_stake[0] and by_stake[3] > by_stake[1], by_stake
