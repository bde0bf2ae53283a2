"""Junk from fresh keys costs honest nodes bounded work and storage (issue 18 §5).

- Two fresh keys cannot make each other members with a legacy claim (paid in the fold, not
  provable): their later blocks stay within the non-member budget.
- A non-member's block over its budget is dropped by the gossip validator before any of its
  signatures is verified (a 200 KB block of 400 signed entries costs a decode, not 400 verifies).
- What non-members hold in all is capped (``max_stored_bytes``), recounted from the store at
  restart; equivocation proofs of non-members are budgeted too and never written into our chain.
"""

from __future__ import annotations

import trio

from wwwserve_p2p.config import LedgerSection, NodeConfig
from wwwserve_p2p.core.ledger import Claim, Genesis, LedgerParams, Ticket, Void, build_block
from wwwserve_p2p.core.ledger.proofs import EquivocationProof
from wwwserve_p2p.core.policy import OffloadPolicy
from wwwserve_p2p.executors.echo import EchoExecutor
from wwwserve_p2p.identity import Identity
from wwwserve_p2p.services._admission import NonMemberBudget
from wwwserve_p2p.services.ledger import ledger_topic
from wwwserve_p2p.testing.swarm import open_swarm, swarm_identity
from wwwserve_p2p.wire import ledger_codec

CREDIT = 1_000_000


def genesis() -> Genesis:
    return Genesis("ledger-junk-bounds", LedgerParams(),
                   tuple((swarm_identity(0, i).peer_id, 100 * CREDIT) for i in range(2)))


def config() -> NodeConfig:
    return NodeConfig(policy=OffloadPolicy(), ledger=LedgerSection(block_interval=0.5, sync_interval=1.0))


def ticket(g: Genesis, requester: Identity, executor: str, now_ms: int, rid: str) -> Ticket:
    return Ticket(g.network_id, rid, requester.peer_id, executor, 1000, now_ms + 3_600_000,
                  issued_ms=now_ms).signed(requester.sign)


async def publish(ov, g: Genesis, item) -> None:
    await ov.publish(ledger_topic(g.network_id), ledger_codec.encode_gossip(item))


async def publish_empty_chain(ov, g: Genesis, swarm, key: Identity, heights: range, prev: str) -> None:
    """Publish empty blocks of ``key`` at ``heights`` on top of ``prev``, 0.1 s apart, then wait 1 s."""
    for h in heights:
        blk = build_block(g.network_id, key.peer_id, h, prev, swarm.clock.wall_ms(), (), key.sign)
        prev = blk.hash
        await publish(ov, g, blk)
        await trio.sleep(0.1)
    await trio.sleep(1)


async def test_a_legacy_claim_between_fresh_keys_makes_no_member(autojump_clock):
    async with open_swarm([EchoExecutor(models=("echo",)), EchoExecutor(models=("echo",))], config=config(),
                          genesis=genesis()) as swarm:
        g = swarm.genesis
        payer, junk = Identity.generate(), Identity.generate()
        now = swarm.clock.wall_ms()
        first = build_block(g.network_id, junk.peer_id, 1, g.hash, now,
                            [Claim(ticket(g, payer, junk.peer_id, now, "r1"), "ab" * 32, 1000)], junk.sign)
        async with swarm.network.open_overlay(junk) as ov:
            await publish(ov, g, first)
            await swarm.wait_until(lambda: all(n.ledger.height(junk.peer_id) == 1 for n in swarm.nodes), timeout=10)
            await publish_empty_chain(ov, g, swarm, junk, range(2, 21), first.hash)
        for n in swarm.nodes:
            svc = n.ledger_service
            acc = n.ledger.account(junk.peer_id)
            assert acc.balance > 0 and acc.earned > 0  # paid in the fold ...
            assert not svc.is_member(junk.peer_id) and not svc.is_member(payer.peer_id)  # ... but no standing
            assert n.ledger.height(junk.peer_id) == 4  # the per-author budget, as for any non-member


async def test_blocks_over_budget_are_dropped_before_their_signatures_are_checked(autojump_clock):
    async with open_swarm([EchoExecutor(models=("echo",)), EchoExecutor(models=("echo",))], config=config(),
                          genesis=genesis()) as swarm:
        g = swarm.genesis
        checked: list[str] = []
        for n in swarm.nodes:
            real = n.ledger.check_static

            def counting(block, real=real):
                checked.append(block.author)
                return real(block)

            n.ledger.check_static = counting
        junk = Identity.generate()
        now = swarm.clock.wall_ms()
        void = Void(ticket(g, junk, junk.peer_id, now, "heavy"))
        heavy = build_block(g.network_id, junk.peer_id, 1, g.hash, now, [void] * 400, junk.sign)
        assert heavy.canonical_size() > NonMemberBudget().per_author[1]
        async with swarm.network.open_overlay(junk) as ov:
            await publish(ov, g, heavy)
            await publish_empty_chain(ov, g, swarm, junk, range(1, 31), g.hash)
        for n in swarm.nodes:
            assert n.ledger.height(junk.peer_id) == 4
            assert n.ledger_service.rejected["non_member_rate"] >= 27
        # the heavy block was never verified, and of the 30 small ones only those with budget left
        assert checked.count(junk.peer_id) <= 2 * 4


async def test_what_non_members_hold_is_capped_for_good_and_recounted_at_restart(autojump_clock):
    cap = 6_000
    async with open_swarm([EchoExecutor(models=("echo",)), EchoExecutor(models=("echo",))], config=config(),
                          genesis=genesis()) as swarm:
        g = swarm.genesis
        for n in swarm.nodes:  # generous rates, a small lifetime cap
            n.ledger_service.non_members = NonMemberBudget(total_blocks=10_000, total_bytes=1 << 30,
                                                           max_stored_bytes=cap)
        keys = [Identity.generate() for _ in range(60)]
        async with swarm.network.open_overlay(keys[0]) as ov0:
            for k in keys:
                now = swarm.clock.wall_ms()
                blk = build_block(g.network_id, k.peer_id, 1, g.hash, now, [Void(ticket(g, k, k.peer_id, now, "v"))],
                                  k.sign)
                async with swarm.network.open_overlay(k) as ov:
                    await swarm.wait_until(lambda: ov.connected_peers(), timeout=10)
                    await publish(ov, g, blk)
                    await trio.sleep(0.2)
            # a non-member's equivocation: budgeted like its blocks, never in our own chain
            eq = keys[0]
            other = build_block(g.network_id, eq.peer_id, 1, g.hash, swarm.clock.wall_ms(), (), eq.sign)
            first = swarm[0].ledger.blocks(eq.peer_id, 1, 1)
            if first:
                await publish(ov0, g, EquivocationProof(first[0].header, other.header))
            await trio.sleep(1)
        for n in swarm.nodes:
            svc = n.ledger_service
            held = svc.non_member_bytes()
            assert 0 < held <= cap
            assert svc.non_members.stored <= cap
            assert svc.rejected.get("non_member_full", 0) > 0
            assert not any(k.startswith("proof:") for k in svc._queue)
            stored = sum(b.canonical_size() for b in svc.store.iter_blocks() if b.author in {k.peer_id for k in keys})
            assert stored <= cap
        before = swarm[1].ledger_service.non_member_bytes()
        swarm.kill(1)
        node = await swarm.restart(1)
        assert before > 0 and node.ledger_service.non_members.stored == before  # recounted from the store
