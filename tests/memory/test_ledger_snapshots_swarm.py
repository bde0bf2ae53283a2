"""Snapshots of settled history inside real nodes on the in-memory overlay (MockClock).

Members snapshot the settled cut, sign checkpoints, adopt the snapshot once > 2/3 of the stake
attested it (their stores prune the blocks below), and a node that joins later catches up from
a peer's attested snapshot plus the blocks above it, reaching the same state hash.
"""

from __future__ import annotations

import itertools

import pytest
import trio

from wwwserve_p2p.config import LedgerSection, NodeConfig
from wwwserve_p2p.core.ledger import Genesis, LedgerParams
from wwwserve_p2p.core.policy import OffloadPolicy
from wwwserve_p2p.core.types import GenerationRequest
from wwwserve_p2p.executors.echo import EchoExecutor
from wwwserve_p2p.testing.swarm import collect_text as collect, open_swarm, swarm_identity

_ids = itertools.count()
PROMPT = "one two three four five six seven eight nine ten"
CREDIT = 1_000_000


def req():
    return GenerationRequest(f"S{next(_ids)}", "echo", prompt=PROMPT, max_tokens=16, temperature=0.0)


def config() -> NodeConfig:
    return NodeConfig(policy=OffloadPolicy(), ledger=LedgerSection(
        block_interval=0.5, sync_interval=1.0, claim_every=1, checkpoint_interval=20.0, checkpoint_settle=20.0))


def stored(node) -> int:
    return node.ledger_service.store.count_blocks()


@pytest.mark.slow   # ~13 s wall (autojump), more on a loaded box
async def test_members_prune_and_a_new_node_joins_from_an_attested_snapshot(autojump_clock):
    g = Genesis("snap-swarm", LedgerParams(), tuple((swarm_identity(0, i).peer_id, 100 * CREDIT) for i in range(3)))
    executors = [EchoExecutor(models=("front",), capacity=4)] + [EchoExecutor(models=("echo",), capacity=4)
                                                                  for _ in range(2)]
    async with open_swarm(executors, config=config(), genesis=g) as swarm:
        members = list(swarm.nodes)
        counts = []
        for round_ in range(2):
            for _ in range(15):
                assert await collect(swarm[0], req()) == PROMPT
                await trio.sleep(1.0)
            t_done = swarm.clock.wall_ms()
            # every member adopts a snapshot of a cut after this traffic, all the same one
            await swarm.wait_until(lambda: all(
                (a := n.ledger_service.snapshots.adopted) is not None and a.time_ms >= t_done - 1_000
                for n in members) and swarm.ledgers_agree(), timeout=200)
            hashes = {n.ledger_service.snapshots.adopted.hash for n in members}
            assert len(hashes) == 1
            total = sum(h for h, _ in members[0].ledger.heads().values())
            counts.append((total, [stored(n) for n in members]))
            for n in members:
                s = n.ledger.summary(accounts=False)
                assert s["blocks_held"] < s["blocks"]          # settled blocks are no longer held...
                assert stored(n) < total                       # ...nor stored
        (t1, s1), (t2, s2) = counts
        assert t2 > t1
        # the store holds the active window: it grew by less than the history did
        assert all(b - a < t2 - t1 for a, b in zip(s1, s2)), counts
        # a node that joins now loads the attested snapshot and then the blocks above it
        late = await swarm.start(EchoExecutor(models=("echo",), capacity=4), config())
        await swarm.wait_until(lambda: late.ledger_service.snapshots.counts["loaded"] == 1
                               and late.ledger.state_hash() == members[0].ledger.state_hash(), timeout=120)
        assert late.ledger.base_snapshot.hash in hashes or late.ledger.base_snapshot.time_ms >= \
            members[0].ledger_service.snapshots.adopted.time_ms - 20_000
        s = late.ledger.summary(accounts=False)
        assert s["blocks_held"] < s["blocks"] and s["blocks"] == members[0].ledger.summary(accounts=False)["blocks"]
        # and it serves its peers' requests with the same view: one more request, all agree
        assert await collect(swarm[0], req()) == PROMPT
        await swarm.wait_until(swarm.ledgers_agree, timeout=60)


@pytest.mark.slow   # ~19 s wall (autojump)
async def test_a_member_back_from_downtime_catches_up_from_the_snapshot_it_missed(autojump_clock):
    """Member 3 is down while the other three (3/4 of the stake) settle and prune: when it comes
    back its peers no longer hold the blocks it lacks, so it loads their attested snapshot."""
    g = Genesis("snap-swarm", LedgerParams(), tuple((swarm_identity(0, i).peer_id, 100 * CREDIT) for i in range(4)))
    executors = [EchoExecutor(models=("front",), capacity=4)] + [EchoExecutor(models=("echo",), capacity=4)
                                                                  for _ in range(3)]
    async with open_swarm(executors, config=config(), genesis=g) as swarm:
        await swarm.wait_until(lambda: swarm.ledgers_agree() and all(
            swarm[0].ledger.account(n.peer_id).stake > 0 for n in swarm.nodes), timeout=60)
        swarm.kill(3)
        for _ in range(10):
            assert await collect(swarm[0], req()) == PROMPT
            await trio.sleep(1.0)
        t_done = swarm.clock.wall_ms()
        up = swarm.nodes
        await swarm.wait_until(lambda: all(
            (a := n.ledger_service.snapshots.adopted) is not None and a.time_ms >= t_done - 1_000 for n in up)
            and swarm.ledgers_agree(), timeout=200)
        back = await swarm.restart(3)
        await swarm.wait_until(lambda: back.ledger_service.snapshots.counts["loaded"] == 1
                               and swarm.ledgers_agree(), timeout=120)
        assert back.ledger.base_snapshot is not None
