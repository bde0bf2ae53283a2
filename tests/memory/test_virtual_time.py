"""Ticket expiry and unbonding follow the injected clock: under MockClock an hour passes in a
moment (services/runtime.py's VirtualClock), with the real services and ledger."""

from __future__ import annotations

import pytest
import trio

from wwwserve_p2p.config import LedgerSection, NodeConfig
from wwwserve_p2p.core.ledger import Genesis, LedgerParams
from wwwserve_p2p.core.policy import OffloadPolicy
from wwwserve_p2p.core.types import GenerationRequest
from wwwserve_p2p.executors import EchoExecutor
from wwwserve_p2p.testing.swarm import open_swarm, swarm_identity

CREDIT = 1_000_000


def genesis(n: int, **params) -> Genesis:
    return Genesis("virtual-time", LedgerParams(**params),
                   tuple((swarm_identity(0, i).peer_id, 100 * CREDIT) for i in range(n)))


@pytest.mark.slow  # two virtual hours of the nodes' periodic loops: CPU-bound, 30-80 s on 2 cores
async def test_a_ticket_expires_in_virtual_time(autojump_clock):
    cfg = NodeConfig(ledger=LedgerSection(ticket_ttl=3600.0, block_interval=0.5))
    async with open_swarm([EchoExecutor(models=("echo",)) for _ in range(2)], config=cfg,
                          genesis=genesis(2)) as swarm:
        requester, executor = swarm[0], swarm[1]
        ticket = requester.tickets.make(executor.peer_id, GenerationRequest("r", "echo", prompt="x"), 0)
        price = executor.ledger.params.price(1)
        await trio.sleep(3600 - 61)  # still valid for 61 s: accepted
        assert executor.tickets.accept(ticket, requester.peer_id, price) == ""
        fresh = requester.tickets.make(executor.peer_id, GenerationRequest("r2", "echo", prompt="x"), 0)
        await trio.sleep(3600 - 59)  # valid for only 59 more seconds: refused
        assert "expires too soon" in executor.tickets.accept(fresh, requester.peer_id, price)


@pytest.mark.slow
async def test_unbonding_matures_in_virtual_time(autojump_clock):
    # stake 4 credits, then drop the target to 1: 3 credits unbond and are withdrawn after 10 min
    cfg = NodeConfig(policy=OffloadPolicy(stake=4 * CREDIT),
                     ledger=LedgerSection(block_interval=0.5, stake_interval=1.0))
    async with open_swarm([EchoExecutor(models=("echo",)) for _ in range(2)], config=cfg,
                          genesis=genesis(2, unbonding_ms=600_000)) as swarm:
        node = swarm[0]
        await swarm.wait_until(lambda: node.ledger.account(node.peer_id).stake == 4 * CREDIT, timeout=30)
        node.set_policy(OffloadPolicy(stake=1 * CREDIT))
        await swarm.wait_until(lambda: node.ledger.account(node.peer_id).unbonding == 3 * CREDIT, timeout=30)
        t0 = trio.current_time()
        await swarm.wait_until(lambda: node.ledger.account(node.peer_id).unbonding == 0, timeout=900)
        waited = trio.current_time() - t0
        assert 595 <= waited <= 620, waited  # the unbonding delay, measured on the virtual clock
        acc = node.ledger.account(node.peer_id)
        # the ticket desk keeps payment channels open toward live peers: their unpaid deposits
        # left the balance but are still ours (no request ran, so nothing was paid from them)
        led = node.ledger
        locked = sum(info.deposit - led.channel_paid(cid) for cid, info in led.channels_of(node.peer_id).items()
                     if not led.channel_closed(node.peer_id, cid))
        assert (acc.stake, acc.balance + locked) == (1 * CREDIT, 99 * CREDIT)
