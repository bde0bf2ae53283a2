"""Time rules in the running service (issue 18 §3): future-dated blocks are held until due.

MockClock drives wall time through the swarm's :class:`VirtualClock`, so "61 s later" and
"10 years ahead" cost nothing. A forged author (a swarm identity that runs no node) joins the
in-memory network with an overlay of its own and gossips blocks dated in the future.
"""

from __future__ import annotations

import trio

from wwwserve_p2p.config import LedgerSection, NodeConfig
from wwwserve_p2p.core.ledger import MAX_CLOCK_SKEW_MS, Block, Genesis, LedgerParams, Transfer, build_block
from wwwserve_p2p.executors.echo import EchoExecutor
from wwwserve_p2p.services._admission import NonMemberBudget
from wwwserve_p2p.services._held import HeldBlocks
from wwwserve_p2p.services.ledger import ledger_topic
from wwwserve_p2p.testing.swarm import open_swarm, swarm_identity
from wwwserve_p2p.wire import ledger_codec

TEN_YEARS_MS = 10 * 365 * 24 * 3600 * 1000
CREDIT = 1_000_000


def echo() -> EchoExecutor:
    return EchoExecutor(models=("echo",), capacity=4)


def genesis_for(n: int) -> Genesis:
    return Genesis("ledger-time", LedgerParams(), tuple((swarm_identity(0, i).peer_id, 100 * CREDIT) for i in range(n)))


def config() -> NodeConfig:
    return NodeConfig(ledger=LedgerSection(block_interval=0.5, sync_interval=1.0))


def forged_chain(swarm, ident, n: int, time_ms: int, start: int = 1, prev: str | None = None) -> list[Block]:
    out = []
    prev = prev or swarm.genesis.hash
    for h in range(start, start + n):
        blk = build_block(swarm.genesis.network_id, ident.peer_id, h, prev, time_ms, (), ident.sign)
        out.append(blk)
        prev = blk.hash
    return out


async def gossip(swarm, overlay, blocks) -> None:
    for b in blocks:
        await overlay.publish(ledger_topic(swarm.genesis.network_id), ledger_codec.encode_gossip(b))
    await trio.sleep(0.5)


async def test_a_block_dated_61s_ahead_is_held_until_due_then_applied(autojump_clock):
    async with open_swarm([echo(), echo(), echo()], config=config(), genesis=genesis_for(3)) as swarm:
        liar = swarm_identity(0, 99)
        async with swarm.network.open_overlay(liar) as ov:
            t_block = swarm.clock.wall_ms() + 61_000
            [blk] = forged_chain(swarm, liar, 1, t_block)
            await gossip(swarm, ov, [blk])
            for n in swarm.nodes:
                assert blk.hash in n.ledger_service.premature
                assert n.ledger.height(liar.peer_id) == 0
            # not applied by any honest node while its clock is below time_ms - tolerance
            while swarm.clock.wall_ms() < t_block - MAX_CLOCK_SKEW_MS - 200:
                assert all(n.ledger.height(liar.peer_id) == 0 for n in swarm.nodes)
                await trio.sleep(0.25)
            await swarm.wait_until(lambda: all(n.ledger.height(liar.peer_id) == 1 for n in swarm.nodes), timeout=5)
            assert swarm.clock.wall_ms() >= t_block - MAX_CLOCK_SKEW_MS
            assert all(len(n.ledger_service.premature) == 0 for n in swarm.nodes)
            await swarm.wait_until(swarm.ledgers_agree, timeout=10)


async def test_a_block_10_years_ahead_is_held_never_applied_and_a_flood_stays_bounded(autojump_clock):
    async with open_swarm([echo(), echo()], config=config(), genesis=genesis_for(2)) as swarm:
        honest = swarm[0]
        held = honest.ledger_service.premature
        held.max_blocks = 100  # a small total cap, so that the flood below exceeds every cap
        # the flooders are non-members, whose budget (services/_admission) would stop them first:
        # lift it here, so that the held queue's own caps are what binds
        honest.ledger_service.non_members = NonMemberBudget(
            per_author_blocks=10**6, per_author_bytes=1 << 40, total_blocks=10**6, total_bytes=1 << 40,
            max_stored_bytes=1 << 40)
        liar, near = swarm_identity(0, 99), swarm_identity(0, 98)
        async with swarm.network.open_overlay(liar) as ov, swarm.network.open_overlay(near) as ov_near:
            far_time = swarm.clock.wall_ms() + TEN_YEARS_MS
            [soon] = forged_chain(swarm, near, 1, swarm.clock.wall_ms() + 120_000)
            await gossip(swarm, ov_near, [soon])
            chain = forged_chain(swarm, liar, 300, far_time)  # one author, far past its caps
            await gossip(swarm, ov, chain)
            assert len(held) <= held.max_per_author + 1 and held.bytes <= held.max_bytes
            # many authors, 3 blocks each: the total cap binds
            for k in range(60):
                flooder = swarm_identity(7, k)
                async with swarm.network.open_overlay(flooder) as ovk:
                    await gossip(swarm, ovk, forged_chain(swarm, flooder, 3, far_time + k))
                assert len(held) <= held.max_blocks and held.bytes <= held.max_bytes
            assert honest.ledger_service.rejected["premature_dropped"] > 0
            # the soonest block survived the flood (farthest-dated blocks are dropped first)
            assert soon.hash in held
            await trio.sleep(100)
            assert all(n.ledger.height(near.peer_id) == 1 for n in swarm.nodes)
            assert all(n.ledger.height(liar.peer_id) == 0 for n in swarm.nodes)
            assert chain[0].hash in held  # still held, never applied
            assert honest.ledger.pending_count() == 0


async def test_our_own_seal_never_produces_a_premature_block(autojump_clock):
    async with open_swarm([echo(), echo()], config=config(), genesis=genesis_for(2)) as swarm:
        await swarm.wait_until(swarm.ledgers_agree, timeout=20)
        await swarm.wait_until(lambda: swarm[0].ledger.height(swarm[0].peer_id) >= 1, timeout=20)
        node = swarm[0]
        produced = node.ledger_service.blocks_produced
        swarm.clock.epoch_ms -= 120_000  # every node's wall clock is set back two minutes
        node.ledger_service.submit("t", Transfer(swarm[1].peer_id, 5))
        await trio.sleep(60)
        assert node.ledger_service.blocks_produced == produced and node.ledger_service.queued() >= 1
        # once the clock has caught up with its last block, the entry is sealed and replicated
        await swarm.wait_until(lambda: node.ledger_service.queued() == 0, timeout=90)
        own = node.ledger.blocks(node.peer_id)
        assert all(a.time_ms <= b.time_ms for a, b in zip(own, own[1:]))
        await swarm.wait_until(swarm.ledgers_agree, timeout=20)
        assert swarm[1].ledger.account(swarm[1].peer_id).balance >= 0


def test_held_blocks_unit_bounds_and_due_order():
    g = Genesis("held-unit")
    a, b = swarm_identity(3, 0), swarm_identity(3, 1)

    def blk(ident, h, t):
        return build_block(g.network_id, ident.peer_id, h, "0" * 64, t, (), ident.sign)

    q = HeldBlocks(max_per_author=3, max_blocks=4, tolerance_ms=0)
    assert q.offer(blk(a, 1, 100)) and q.offer(blk(a, 2, 200)) and q.offer(blk(a, 3, 300))
    assert not q.offer(blk(a, 4, 400))            # the farthest is the newcomer: refused
    assert q.offer(blk(a, 5, 50))                 # evicts a/3 (t=300)
    assert len(q) == 3 and q.evicted == 2
    assert q.offer(blk(b, 1, 10)) and q.offer(blk(b, 2, 20))  # total cap 4: evicts a/2 (t=200)
    assert len(q) == 4
    assert q.next_due_ms() == 10
    assert [(x.author, x.height) for x in q.pop_due(60)] == sorted([(a.peer_id, 5), (b.peer_id, 1), (b.peer_id, 2)])
    assert [x.height for x in q.pop_due(10**9)] == [1]
    assert len(q) == 0 and q.bytes == 0 and q.next_due_ms() is None
