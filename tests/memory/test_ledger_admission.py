"""Disk growth from non-members is capped (issue 18 §5), and a fresh honest executor still earns.

A non-member (no allocation, stake, balance or paid work) gets a few blocks per minute stored;
the rest is dropped and counted in ``rejected["non_member_rate"]``. Claims of tickets from
requesters who can pay always pass: that is how an executor with nothing becomes a member.
"""

from __future__ import annotations

import itertools

import trio

from wwwserve_p2p.config import LedgerSection, NodeConfig
from wwwserve_p2p.core.ledger import Genesis, LedgerParams, build_block
from wwwserve_p2p.core.policy import OffloadPolicy
from wwwserve_p2p.core.types import GenerationRequest
from wwwserve_p2p.executors.echo import EchoExecutor
from wwwserve_p2p.services._admission import NonMemberBudget
from wwwserve_p2p.services.ledger import ledger_topic
from wwwserve_p2p.testing.swarm import collect_text, open_swarm, swarm_identity
from wwwserve_p2p.wire import ledger_codec

CREDIT = 1_000_000
_ids = itertools.count()


def genesis_for(credits: list[int]) -> Genesis:
    return Genesis("ledger-admission", LedgerParams(),
                   tuple((swarm_identity(0, i).peer_id, c * CREDIT) for i, c in enumerate(credits) if c > 0))


def config() -> NodeConfig:
    return NodeConfig(policy=OffloadPolicy(), ledger=LedgerSection(block_interval=0.5, sync_interval=1.0))


def test_budget_per_author_total_and_refill():
    b = NonMemberBudget(per_author_blocks=2, per_author_bytes=1000, total_blocks=3, total_bytes=10_000, window_s=60)
    assert b.allow("a", 100, 0) and b.allow("a", 100, 0) and not b.allow("a", 100, 0)   # per author: 2 blocks
    assert b.allow("b", 100, 0) and not b.allow("c", 100, 0)                            # in total: 3 blocks
    assert not b.allow("d", 2000, 0)                                                     # bytes per author
    assert b.allow("a", 100, 10) is False  # 10 s refill a third of a block of its bucket: not yet
    assert b.allow("a", 100, 61)
    assert b.admitted == 4 and b.dropped == 4


async def test_junk_blocks_of_a_non_member_are_capped_and_not_stored(autojump_clock):
    async with open_swarm([EchoExecutor(models=("echo",)), EchoExecutor(models=("echo",))], config=config(),
                          genesis=genesis_for([100, 100])) as swarm:
        junk = swarm_identity(9, 1)
        g = swarm.genesis
        async with swarm.network.open_overlay(junk) as ov:
            prev = g.hash
            for h in range(1, 31):
                blk = build_block(g.network_id, junk.peer_id, h, prev, swarm.clock.wall_ms(), (), junk.sign)
                prev = blk.hash
                await ov.publish(ledger_topic(g.network_id), ledger_codec.encode_gossip(blk))
                await trio.sleep(0.1)
            await trio.sleep(1)
            for n in swarm.nodes:
                svc = n.ledger_service
                assert n.ledger.height(junk.peer_id) == 4  # the per-author budget
                assert svc.rejected["non_member_rate"] == 26
                stored = [b for b in svc.store.iter_blocks() if b.author == junk.peer_id]
                assert len(stored) == 4
                assert not svc.is_member(junk.peer_id)
            await swarm.wait_until(swarm.ledgers_agree, timeout=20)


async def test_a_fresh_executor_with_nothing_gets_its_claims_stored(autojump_clock):
    # node 1 has no allocation: its first blocks carry claims for tickets node 0 (funded) signed
    async with open_swarm([EchoExecutor(models=("front",)), EchoExecutor(models=("echo",))], config=config(),
                          genesis=genesis_for([100, 0])) as swarm:
        fresh = swarm[1]
        assert not swarm[0].ledger_service.is_member(fresh.peer_id)
        for _ in range(8):
            req = GenerationRequest(f"A{next(_ids)}", "echo", prompt="a b c d e", max_tokens=16, temperature=0.0)
            assert await collect_text(swarm[0], req) == "a b c d e"
        await swarm.wait_until(lambda: swarm.ledgers_agree()
                               and swarm[0].ledger.account(fresh.peer_id).earned > 0, timeout=30)
        assert swarm[0].ledger_service.is_member(fresh.peer_id)
        assert swarm[0].ledger_service.rejected.get("non_member_rate", 0) == 0
        assert swarm[0].ledger.account(fresh.peer_id).earned == 8 * swarm.genesis.params.price(5)
