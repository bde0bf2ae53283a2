"""A duel whose requester goes silent does not lock the executors' bonds forever (issue 18).

Real nodes on the in-memory overlay (MockClock): node 0 requests with duels on, nodes 1 and 2
execute (each locks a DuelBond with its receipt), nodes 3-5 would judge but never answer. The
requester is killed once both bonds are in the executors' replicas, so it never writes a
verdict nor any block after the duel's expiry. After the duel's deadline (expiry + one duel
window) each executor's own service writes its release (and, to let the other's release pass, a
block dated after the deadline): both bonds come back on every live replica, and while they were
locked ``GET /ledger/accounts`` counted them in ``locked`` (balance + stake + unbonding + locked
sums to the genesis supply on every replica).
"""

from __future__ import annotations

import itertools

import pytest
import trio

from wwwserve_p2p.config import DuelSection, LedgerSection, NodeConfig
from wwwserve_p2p.core.ledger import DuelBond, DuelRelease, Genesis, LedgerParams, duel_deadline
from wwwserve_p2p.core.policy import OffloadPolicy
from wwwserve_p2p.core.types import GenerationRequest
from wwwserve_p2p.executors.echo import EchoExecutor
from wwwserve_p2p.testing.swarm import collect_text, open_swarm, swarm_identity

CREDIT = 1_000_000
BOND = 20_000
TTL = 120.0   # a duel ticket must be valid >= 60 s for an executor to accept it
_ids = itertools.count()


class SilentJudge:
    """Never answers (the requester's duel stays open until it is killed)."""

    name = "silent"

    async def judge(self, prompt: str, first: str, second: str):
        await trio.sleep_forever()


def supply_from_accounts(node) -> int:
    return sum(a["balance"] + a["stake"] + a["unbonding"] + a["locked"]
               for a in node.ledger_service.accounts_view()["accounts"])


def bonds_of(node, peer: str) -> list:
    return [e.duel for blk in node.ledger.blocks(peer) for e in blk.entries if type(e) is DuelBond]


@pytest.mark.slow   # ~4 min of virtual time (the duel's deadline); 30-60 s here under load
async def test_a_silent_requesters_duel_returns_both_bonds_after_its_deadline(autojump_clock):
    n = 6
    genesis = Genesis("duel-deadline-swarm", LedgerParams(),
                      tuple((swarm_identity(0, i).peer_id, 100 * CREDIT) for i in range(n)))
    cfg = NodeConfig(policy=OffloadPolicy(),
                     ledger=LedgerSection(block_interval=0.5, sync_interval=1.0, claim_every=1),
                     duel=DuelSection(duel_rate=1.0, executor_bond=BOND, judge_bond=5_000, judge_fee=1_000,
                                      judge="none", probe_grace=5.0, duel_ttl=TTL, judge_timeout=10_000.0))
    executors = [EchoExecutor(models=("front",)), EchoExecutor(), EchoExecutor(),
                 *(EchoExecutor(models=("front",)) for _ in range(3))]
    async with open_swarm(executors, config=cfg, genesis=genesis) as swarm:
        origin, x, y = swarm[0], swarm[1], swarm[2]
        for node in swarm.nodes[3:]:
            node.duels.judge = SilentJudge()
            node.status_changed()
        await swarm.wait_until(lambda: len(origin.duels.choose_judges({origin.peer_id})) == 3, timeout=30)
        await swarm.wait_until(lambda: swarm.ledgers_agree()
                               and len(origin.ledger.channels_of(origin.peer_id)) == n - 1, timeout=30)
        await swarm.wait_until(lambda: len([c for c in origin.membership.candidates("echo")
                                            if origin.requester._spare(c) > 0]) == 2, timeout=30)
        supply = genesis.supply

        async def ask():
            with trio.move_on_after(60):
                await collect_text(origin, GenerationRequest(f"S{next(_ids)}", "echo", prompt="a b c d",
                                                             max_tokens=16, temperature=0.0))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask)
            # both executors bonded, in both executors' replicas: the requester goes silent
            await swarm.wait_until(lambda: all(len(bonds_of(node, e.peer_id)) == 1
                                               for node in (x, y) for e in (x, y)), timeout=60)
            swarm.kill(0)
            nursery.cancel_scope.cancel()
        duel = bonds_of(x, x.peer_id)[0]
        live = swarm.nodes
        # while locked: the bonds are counted in /ledger/accounts' "locked" on every replica
        await swarm.wait_until(lambda: all(node.ledger.duel_locked(e.peer_id) == BOND
                                           for node in (x, y) for e in (x, y)), timeout=30)
        for node in live:
            if node.ledger.duel_locked(x.peer_id):
                assert supply_from_accounts(node) == supply
                rows = {a["peer_id"]: a for a in node.ledger_service.accounts_view()["accounts"]}
                assert rows[x.peer_id]["duel_locked"] == BOND and rows[x.peer_id]["locked"] >= BOND
        # before the deadline nothing comes back (the requester may still settle by the expiry)
        assert swarm.clock.wall_ms() < duel.expires_ms
        assert not x.ledger.duel_released(x.peer_id, duel.hash)
        # after the deadline both executors take their own bond back, on every live replica
        await swarm.wait_until(lambda: all(node.ledger.duel_released(e.peer_id, duel.hash)
                                           for node in swarm.nodes for e in (x, y)), timeout=4 * TTL + 60)
        assert swarm.clock.wall_ms() > duel_deadline(duel)
        await swarm.wait_until(swarm.ledgers_agree, timeout=60)
        for node in swarm.nodes:
            rows = {a["peer_id"]: a for a in node.ledger_service.accounts_view()["accounts"]}
            for e in (x, y):
                # nothing lost: all it holds is its allocation plus what it earned minus spent
                r = rows[e.peer_id]
                assert node.ledger.duel_locked(e.peer_id) == 0 and r["duel_locked"] == 0
                assert r["balance"] + r["stake"] + r["unbonding"] + r["locked"] == 100 * CREDIT + r["earned"] - r["spent"]
            assert supply_from_accounts(node) == supply and node.ledger.total_supply() == supply
        # the releases sit in the executors' own chains, dated after the deadline
        rel = [(blk.time_ms, e) for node in (x, y) for blk in node.ledger.blocks(node.peer_id)
               for e in blk.entries if type(e) is DuelRelease]
        assert len(rel) == 2 and all(t > duel_deadline(duel) for t, _ in rel)
