"""A back-dated Unstake in the running service (issue 18 §3): the ledger holds a Withdraw until
unbonding has passed since the node first saw the Unstake, by its own clock, and the service
offers it again when it is due (``LedgerService._unbonding_hold_loop``).

A staked author (a genesis account that runs no node) stakes, stays silent for 10 x unbonding,
then gossips an Unstake dated at its previous block (the earliest its chain allows) and a
Withdraw dated unbonding after that: matured by the chain's own times, so before the rule every
node applied it at once. MockClock (autojump) makes the silence and the unbonding free.
"""

from __future__ import annotations

import trio

from wwwserve_p2p.config import LedgerSection, NodeConfig
from wwwserve_p2p.core.ledger import MAX_CLOCK_SKEW_MS, Genesis, LedgerParams, Stake, Unstake, Withdraw, build_block
from wwwserve_p2p.executors.echo import EchoExecutor
from wwwserve_p2p.services.ledger import ledger_topic
from wwwserve_p2p.testing.swarm import open_swarm, swarm_identity
from wwwserve_p2p.wire import ledger_codec

CREDIT = 1_000_000
UNBONDING = 30_000


async def test_a_back_dated_unstake_is_withdrawn_only_unbonding_after_nodes_first_saw_it(autojump_clock):
    liar = swarm_identity(0, 99)
    genesis = Genesis("unbonding-hold", LedgerParams(unbonding_ms=UNBONDING),
                      tuple((swarm_identity(0, i).peer_id, 100 * CREDIT) for i in range(3)) + ((liar.peer_id, CREDIT),))
    config = NodeConfig(ledger=LedgerSection(block_interval=0.5, sync_interval=1.0))
    execs = [EchoExecutor(models=("echo",), capacity=2) for _ in range(3)]
    async with open_swarm(execs, config=config, genesis=genesis) as swarm:
        net, me = genesis.network_id, liar.peer_id
        async with swarm.network.open_overlay(liar) as ov:
            async def gossip(b) -> None:
                await ov.publish(ledger_topic(net), ledger_codec.encode_gossip(b))

            t0 = swarm.clock.wall_ms()
            b1 = build_block(net, me, 1, genesis.hash, t0, (Stake(500_000),), liar.sign)
            await trio.sleep(2)   # the mesh forms
            await gossip(b1)
            await swarm.wait_until(lambda: all(n.ledger.height(me) == 1 for n in swarm.nodes), timeout=30)
            await trio.sleep(10 * UNBONDING / 1000)   # silence
            u = build_block(net, me, 2, b1.hash, t0, (Unstake(500_000),), liar.sign)       # back-dated
            w = build_block(net, me, 3, u.hash, t0 + UNBONDING, (Withdraw(500_000),), liar.sign)
            published = swarm.clock.wall_ms()
            await gossip(u)
            await swarm.wait_until(lambda: all(n.ledger.height(me) == 2 for n in swarm.nodes), timeout=30)
            await gossip(w)
            await swarm.wait_until(lambda: all(n.ledger.unbonding_held() == 1 for n in swarm.nodes), timeout=30)
            # held on every node while its clock is below first sight + unbonding - tolerance
            while swarm.clock.wall_ms() < published + UNBONDING - MAX_CLOCK_SKEW_MS - 1_000:
                for n in swarm.nodes:
                    assert n.ledger.height(me) == 2, "a back-dated Unstake shortened the unbonding"
                    assert n.ledger.account(me).unbonding == 500_000
                await trio.sleep(0.5)
            # then applied everywhere, by the service's own re-offer (nobody gossips it again)
            await swarm.wait_until(lambda: all(n.ledger.height(me) == 3 for n in swarm.nodes), timeout=30)
            assert swarm.clock.wall_ms() >= published + UNBONDING - MAX_CLOCK_SKEW_MS
            for n in swarm.nodes:
                assert n.ledger.account(me).unbonding == 0 and n.ledger.unbonding_held() == 0
            await swarm.wait_until(swarm.ledgers_agree, timeout=30)
