"""The credit ledger running inside real nodes on the in-memory overlay (MockClock).

Covers DESIGN §4/§5 end to end: tickets at commit, claims after serving, voids after failed
or cancelled attempts, debt, ledger-driven selection, replication (gossip + sync),
partition/heal, restart catch-up and equivocation.
"""

from __future__ import annotations

import dataclasses
import itertools
from contextlib import aclosing

import pytest
import trio

from wwwserve_p2p.config import LedgerSection, NodeConfig
from wwwserve_p2p.core.ledger import Claim, Genesis, LedgerParams, Stake, Ticket, Transfer, build_block
from wwwserve_p2p.core.policy import OffloadPolicy
from wwwserve_p2p.core.types import GenerationRequest
from wwwserve_p2p.errors import NoExecutorAvailable
from wwwserve_p2p.executors.echo import EchoExecutor
from wwwserve_p2p.services.ledger import ledger_topic
from wwwserve_p2p.testing.swarm import collect_text as collect, open_swarm, swarm_identity
from wwwserve_p2p.wire import ledger_codec

_ids = itertools.count()
PROMPT = "one two three four five six seven eight nine ten"
CREDIT = 1_000_000


def req(model="echo", max_tokens=64):
    return GenerationRequest(f"L{next(_ids)}", model, prompt=PROMPT, max_tokens=max_tokens, temperature=0.0)


def echo(models=("echo",), capacity=4, delay=0.0):
    return EchoExecutor(models=models, capacity=capacity, delay_per_token=delay)


def genesis_for(n: int, credits: list[int] | None = None, seed: int = 0, **params) -> Genesis:
    credits = credits if credits is not None else [100] * n
    allocs = tuple((swarm_identity(seed, i).peer_id, c * CREDIT) for i, c in enumerate(credits) if c > 0)
    return Genesis("ledger-test", LedgerParams(**params), allocs)


def config(**policy) -> NodeConfig:
    return NodeConfig(policy=OffloadPolicy(**policy), ledger=LedgerSection(block_interval=0.5, sync_interval=1.0, claim_every=1))


async def test_offloaded_work_is_paid_once_and_every_replica_agrees(autojump_clock):
    g = genesis_for(4)
    executors = [echo(models=("front",))] + [echo() for _ in range(3)]
    async with open_swarm(executors, config=config(), genesis=g) as swarm:
        origin = swarm[0]
        for _ in range(6):
            assert await collect(origin, req()) == PROMPT
        # the stake policy stakes 1 credit (policy.stake) from each genesis balance
        await swarm.wait_until(lambda: swarm.ledgers_agree() and all(
            origin.ledger.account(n.peer_id).stake == CREDIT for n in swarm.nodes), timeout=20)
        ledger = origin.ledger
        price = g.params.price(10)  # echo answers 10 tokens
        me = ledger.account(origin.peer_id)
        assert me.spent == 6 * price
        assert sum(ledger.account(n.peer_id).earned for n in swarm.nodes[1:]) == 6 * price
        assert ledger.total_supply() == g.supply
        served = {n.peer_id: n.stats.accepted_for_others for n in swarm.nodes[1:]}
        for pid, count in served.items():
            assert ledger.account(pid).earned == count * price


async def test_cancelled_attempt_is_voided_and_never_paid(autojump_clock):
    async with open_swarm([echo(models=("front",)), echo(delay=0.5)], config=config(), genesis=genesis_for(2)) \
            as swarm:
        got = 0
        async with aclosing(swarm[0].generate(req())) as gen:
            async for _ in gen:
                got += 1
                if got == 2:
                    break
        await swarm.wait_until(swarm.ledgers_agree, timeout=20)
        ledger = swarm[0].ledger
        assert ledger.account(swarm[0].peer_id).spent == 0
        assert ledger.account(swarm[1].peer_id).earned == 0
        assert swarm[0].metrics.ledger_voided._value.get() == 1


async def test_a_void_beats_a_lying_executors_claim(autojump_clock):
    """The executor claims a ticket of an attempt the requester voided: nobody is paid."""
    seen: list[Ticket] = []
    async with open_swarm([echo(models=("front",)), echo(delay=0.5)], config=config(), genesis=genesis_for(2)) \
            as swarm:
        executor = swarm[1]
        real_check = executor.tickets.accept

        def spy(ticket, requester, min_price):
            seen.append(ticket)
            return real_check(ticket, requester, min_price)

        executor.tickets.accept = spy
        async with aclosing(swarm[0].generate(req())) as gen:
            async for _ in gen:
                break  # user leaves after the first chunk: the ticket is voided
        executor.ledger_service.submit("lie", Claim(seen[0], "0" * 64, seen[0].price))
        await swarm.wait_until(swarm.ledgers_agree, timeout=20)
        for n in swarm.nodes:
            assert n.ledger.is_claimed(seen[0].hash) and n.ledger.is_voided(seen[0].hash)
            assert n.ledger.account(executor.peer_id).earned == 0
            assert n.ledger.account(swarm[0].peer_id).spent == 0


async def test_a_requester_in_debt_may_not_offload(autojump_clock):
    # node 0 has credit for exactly one ticket and no overdraft: after one paid request it can
    # no longer afford a ticket, so it may not offload, and executors refuse it on their own too
    price = LedgerParams().price(req().max_tokens)
    g = Genesis("ledger-test", LedgerParams(overdraft=0),
                ((swarm_identity(0, 0).peer_id, price), (swarm_identity(0, 1).peer_id, 100 * CREDIT)))
    async with open_swarm([echo(models=("front",)), echo()], config=config(), genesis=g) as swarm:
        assert await collect(swarm[0], req()) == PROMPT
        await swarm.wait_until(lambda: all(n.ledger.account(swarm[0].peer_id).spent > 0 for n in swarm.nodes),
                               timeout=20)
        with pytest.raises(NoExecutorAvailable, match="in debt or cannot afford"):
            await collect(swarm[0], req())
        accepted, reason = swarm[1].delegation.decide("echo", swarm[0].peer_id, req().max_tokens)
        assert not accepted and reason == "requester cannot afford the ticket"


async def test_a_key_with_nothing_is_never_served(autojump_clock):
    # a fresh identity without credit (no allocation, overdraft 0) gets no executor's work
    g = genesis_for(2, credits=[0, 100], overdraft=0)
    async with open_swarm([echo(models=("front",)), echo()], config=config(), genesis=g) as swarm:
        with pytest.raises(NoExecutorAvailable, match="cannot afford"):
            await collect(swarm[0], req())
        accepted, reason = swarm[1].delegation.decide("echo", swarm[0].peer_id)
        assert not accepted and reason == "requester cannot afford the ticket"
        assert swarm[1].stats.accepted_for_others == 0


async def test_selection_follows_ledger_stake(autojump_clock):
    # executors 1 and 2 stake 1 and 9 credits; exploration off: the stake ratio shows
    g = genesis_for(3)
    cfgs = [config(), config(stake=CREDIT), config(stake=9 * CREDIT)]
    cfgs = [dataclasses.replace(c, policy=dataclasses.replace(c.policy, exploration_share=0.0, probe_extra=0))
            for c in cfgs]
    async with open_swarm([echo(models=("front",)), echo(), echo()], configs=cfgs, genesis=g) as swarm:
        await swarm.wait_until(lambda: swarm[0].ledger.account(swarm[2].peer_id).stake == 9 * CREDIT
                               and swarm[0].ledger.account(swarm[1].peer_id).stake == CREDIT, timeout=20)
        for _ in range(40):
            await collect(swarm[0], req())
        small, big = swarm[1].stats.accepted_for_others, swarm[2].stats.accepted_for_others
        assert small + big == 40
        assert big >= 3 * small, (small, big)  # expected 36:4


async def test_partitioned_sides_trade_then_converge_after_heal(autojump_clock):
    g = genesis_for(4)
    executors = [echo(models=("front",)), echo(), echo(models=("front",)), echo()]
    async with open_swarm(executors, config=config(), genesis=g) as swarm:
        a = [swarm[0].peer_id, swarm[1].peer_id]
        b = [swarm[2].peer_id, swarm[3].peer_id]
        swarm.network.partition(a, b)
        await swarm.wait_until(lambda: len(swarm[0].peers.candidates("echo", trio.current_time())) == 1, timeout=30)
        for _ in range(3):
            assert await collect(swarm[0], req()) == PROMPT
            assert await collect(swarm[2], req()) == PROMPT
        await trio.sleep(5)
        assert swarm[0].ledger.state_hash() != swarm[2].ledger.state_hash()
        swarm.network.heal()
        await swarm.wait_until(swarm.ledgers_agree, timeout=30)
        ledger = swarm[3].ledger
        price = g.params.price(10)
        assert ledger.account(swarm[0].peer_id).spent == 3 * price
        assert ledger.account(swarm[2].peer_id).spent == 3 * price
        assert ledger.total_supply() == g.supply


async def test_restarted_node_catches_up_from_its_store_and_peers(autojump_clock):
    g = genesis_for(3)
    async with open_swarm([echo(models=("front",)), echo(), echo()], config=config(), genesis=g) as swarm:
        await collect(swarm[0], req())
        await swarm.wait_until(swarm.ledgers_agree, timeout=20)
        own_height = swarm[2].ledger.height(swarm[2].peer_id)
        swarm.kill(2)
        for _ in range(4):
            await collect(swarm[0], req())
        await swarm.wait_until(swarm.ledgers_agree, timeout=20)
        node = await swarm.restart(2)
        assert node.ledger.height(node.peer_id) >= own_height  # restored from SQLite before joining
        await swarm.wait_until(swarm.ledgers_agree, timeout=30)
        assert node.ledger.state_hash() == swarm[0].ledger.state_hash()


async def test_equivocation_is_detected_cut_and_stake_burned(autojump_clock):
    g = genesis_for(3)
    async with open_swarm([echo() for _ in range(3)], config=config(), genesis=g) as swarm:
        liar = swarm[2]
        await swarm.wait_until(lambda: all(n.ledger.account(liar.peer_id).stake == CREDIT for n in swarm.nodes)
                               and swarm.ledgers_agree(), timeout=20)
        liar.ledger_service.submit("t", Transfer(swarm[0].peer_id, 5))
        h = liar.ledger.height(liar.peer_id) + 1  # above the block holding its stake
        await swarm.wait_until(lambda: all(n.ledger.height(liar.peer_id) == h for n in swarm.nodes), timeout=20)
        # the liar signs a second, different block at a height it already used
        forged = swarm[0].ledger.blocks(liar.peer_id, h, h)[0]
        twin = dataclasses.replace(forged, entries=(Stake(1),), signature=b"")
        twin = build_block(twin.network, twin.author, twin.height, twin.prev_hash, twin.time_ms + 1,
                           twin.entries, liar.identity.sign)
        await liar.overlay.publish(ledger_topic(liar.network_id), ledger_codec.encode_gossip(twin))
        await swarm.wait_until(lambda: all(n.ledger.account(liar.peer_id).equivocated for n in swarm.nodes[:2]),
                               timeout=20)
        for n in swarm.nodes[:2]:
            acc = n.ledger.account(liar.peer_id)
            # its stake and (issue 18) its whole balance are burned: a fork cannot spend twice
            assert acc.stake == 0 and acc.balance <= 0 and acc.burned > CREDIT and acc.height == h - 1
            assert n.ledger.total_supply() + n.ledger.burned() == g.supply
            assert liar.peer_id not in [p for p, w in
                                        {c.peer_id: n.ledger.account(c.peer_id).selectable_stake
                                         for c in n.peers.candidates("echo", trio.current_time())}.items() if w]


async def test_auto_stake_follows_idle_capacity(autojump_clock):
    # the paper's policy: 0..4 units of stake/4 following idle capacity, at most 2 units per second
    cfg = config(stake=4 * CREDIT, stake_policy="auto")
    async with open_swarm([echo(capacity=4, delay=1.0), echo()], config=cfg, genesis=genesis_for(2)) as swarm:
        node = swarm[0]
        await swarm.wait_until(lambda: node.ledger.account(node.peer_id).stake == 4 * CREDIT, timeout=30)
        # keep all four slots busy: the stake drains toward 0 while the node has no idle capacity
        node.set_policy(dataclasses.replace(node.policy, target_load=10.0))
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(collect, node, req())
            await swarm.wait_until(lambda: node.ledger.account(node.peer_id).stake == 0, timeout=9)
            nursery.cancel_scope.cancel()
        acc = node.ledger.account(node.peer_id)
        assert acc.unbonding == 4 * CREDIT  # unstaked credit waits out the unbonding delay
        await swarm.wait_until(lambda: node.ledger.account(node.peer_id).stake == 4 * CREDIT, timeout=30)
