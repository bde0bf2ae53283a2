"""Duels and judges inside real nodes on the in-memory overlay (MockClock), DESIGN §6.

A requester ("front" model only) offloads to two executors; judges (that serve nothing the
requester asks for) vote over ``/wwwserve/judge/1``; the Verdict settles on every replica.
"""

from __future__ import annotations

import dataclasses
import itertools
import random

import trio

from wwwserve_p2p.config import DuelSection, LedgerSection, NodeConfig
from wwwserve_p2p.core.ledger import DuelBond, DuelRelease, Genesis, LedgerParams, Reason, Transfer, Verdict
from wwwserve_p2p.core.policy import OffloadPolicy
from wwwserve_p2p.core.types import GenerationRequest
from wwwserve_p2p.executors.echo import EchoExecutor
from wwwserve_p2p.testing.judges import Judgement, OverlapJudge
from wwwserve_p2p.testing.swarm import collect_text as collect, open_swarm, swarm_identity

_ids = itertools.count()
PROMPT = "one two three four five six seven eight nine ten"
CREDIT = 1_000_000
BOND = 20_000
JBOND = 5_000   # its largest penalty (20 %) equals the judge fee: judges refuse more


class RandomWords(EchoExecutor):
    """A random responder: as many words as the echo answer, drawn at random."""

    WORDS = ("thou", "art", "gone", "yet", "the", "sea", "xq", "zz", "blorp", "nay", "king", "of")

    def __init__(self, seed: int = 0, **kw):
        super().__init__(**kw)
        self._rng = random.Random(seed)

    def answer_tokens(self, request):
        n = len(super().answer_tokens(request))
        return [(" " if i else "") + self._rng.choice(self.WORDS) for i in range(n)]


class FirstJudge:
    """Position-biased: always prefers the answer shown first."""

    name = "first"

    async def judge(self, prompt: str, first: str, second: str) -> Judgement:
        return Judgement("first")


def req(model="echo"):
    return GenerationRequest(f"D{next(_ids)}", model, prompt=PROMPT, max_tokens=64, temperature=0.0)


def genesis_for(n: int) -> Genesis:
    allocs = tuple((swarm_identity(0, i).peer_id, 100 * CREDIT) for i in range(n))
    return Genesis("duel-test", LedgerParams(), allocs)


def config(**duel) -> NodeConfig:
    d = dict(duel_rate=1.0, executor_bond=BOND, judge_bond=JBOND, judge_fee=1_000, judge="none")
    d.update(duel)
    return NodeConfig(policy=OffloadPolicy(), ledger=LedgerSection(block_interval=0.5, sync_interval=1.0, claim_every=1),
                      duel=DuelSection(**d))


def front():
    return EchoExecutor(models=("front",))


async def duel_swarm(executors, judges, n_requests: int, **duel):
    """Run ``n_requests`` from node 0 with duels on; nodes 1, 2 are the executors, the rest
    judges using ``judges[i]``. Yields the swarm after every replica agrees."""
    nodes = [front(), *executors, *(front() for _ in judges)]
    # a generous probe_grace: under the autojumping clock, the blocks the nodes verify on worker
    # threads (payment channels opened toward every peer) let virtual time run past a short one
    swarm_cm = open_swarm(nodes, config=config(**{"probe_grace": 5.0, **duel}), genesis=genesis_for(len(nodes)))
    swarm = await swarm_cm.__aenter__()
    for node, judge in zip(swarm.nodes[3:], judges):
        if callable(judge) and not hasattr(judge, "judge"):
            node.duels.judge = FirstJudge()       # placeholder: this node votes via the override
            node.duels.decide_vote = judge
        else:
            node.duels.judge = judge
        node.status_changed()
    await swarm.wait_until(lambda: len(swarm[0].duels.choose_judges({swarm[0].peer_id})) == len(judges), timeout=30)
    origin = swarm[0]
    # the requester's payment channels (toward the executors and the judges) are replicated first
    await swarm.wait_until(lambda: swarm.ledgers_agree()
                           and len(origin.ledger.channels_of(origin.peer_id)) == len(nodes) - 1, timeout=30)
    answers = []
    for _ in range(n_requests):
        # a duel needs both executors to announce a spare slot (the requester probes only those)
        # (the requester's own count: slots it used since each executor's last status)
        await swarm.wait_until(lambda: len([c for c in origin.membership.candidates("echo")
                                            if origin.requester._spare(c) > 0]) == 2, timeout=30)
        answers.append(await collect(origin, req()))
    await swarm.wait_until(lambda: origin.duels.stats["settled"] + origin.duels.stats["abandoned"] >= n_requests,
                           timeout=120)
    await swarm.wait_until(lambda: swarm.ledgers_agree() and origin.ledger.duels_settled >= n_requests, timeout=60)
    return swarm_cm, swarm, answers


def total(ledger, peer):
    """Balance + stake + unbonding + what ``peer`` still has locked in its payment channels."""
    a = ledger.account(peer)
    locked = sum(info.deposit - ledger.channel_paid(cid) for cid, info in ledger.channels_of(peer).items()
                 if not ledger.channel_closed(peer, cid))
    return a.balance + a.stake + a.unbonding + locked


async def test_random_responder_loses_duels_and_credit(autojump_clock):
    swarm_cm, swarm, answers = await duel_swarm(
        [EchoExecutor(), RandomWords(seed=1)], [OverlapJudge() for _ in range(3)], 8)
    try:
        origin, good, bad = swarm[0], swarm[1], swarm[2]
        assert len(answers) == 8  # every user got one answer
        led = origin.ledger
        g, b = led.account(good.peer_id), led.account(bad.peer_id)
        assert (g.duels_won, g.duels_lost) == (8, 0) and (b.duels_won, b.duels_lost) == (0, 8)
        assert b.win_rate == 0.0 and g.win_rate == 1.0
        # a lost duel feeds the requester's local reputation (issue 15): the loser is penalised
        # for a decaying period, the winner is not charged for it
        rep, now = origin.requester.reputation, trio.current_time()
        assert rep.counts["duel_lost"] == 8 and rep.penalised(bad.peer_id, now), rep.view(now)
        assert rep.score(bad.peer_id, now) > rep.score(good.peer_id, now) + 1, rep.view(now)
        # both were paid for serving, but the random responder forfeited its bond 8 times: the
        # bonds were locked in both executors' chains, the winner takes both back with its
        # releases (credit its own chain proves: spendable), the loser has nothing to release
        assert b.earned > 0 and g.earned == b.earned
        await swarm.wait_until(lambda: swarm.ledgers_agree() and all(
            n.ledger.duel_locked(good.peer_id) == n.ledger.duel_locked(bad.peer_id) == 0 for n in swarm.nodes),
            timeout=60)
        for n in swarm.nodes:
            assert n.ledger.provable(good.peer_id) - n.ledger.provable(bad.peer_id) == 2 * 8 * BOND
        assert good.ledger.provable(good.peer_id) >= led.account(good.peer_id).balance
        # the loser's own node cannot take its bonds back: its releases are refused, and it
        # cannot move out more than its chain proves (the bonds are not in it)
        bonded = [e.duel for blk in bad.ledger.blocks(bad.peer_id) for e in blk.entries if type(e) is DuelBond]
        assert len(bonded) == 8
        now = swarm.clock.wall_ms()
        _, refused = bad.ledger.validate_own(bad.peer_id, now, [DuelRelease(d) for d in bonded])
        assert [r for _, r in refused] == [Reason.DUEL_RELEASE] * 8
        _, refused = bad.ledger.validate_own(bad.peer_id, now, [Transfer(good.peer_id, bad.ledger.provable(bad.peer_id) + 1)])
        assert [r for _, r in refused] == [Reason.INSUFFICIENT_FUNDS]
        assert total(led, bad.peer_id) < 100 * CREDIT < total(led, good.peer_id)
        assert total(led, good.peer_id) - total(led, bad.peer_id) == 2 * 8 * BOND
        # judges were paid their fee and all three agreed every time
        for j in swarm.nodes[3:]:
            assert led.account(j.peer_id).judge_majority == 8
        assert led.total_supply() == genesis_for(6).supply
        st = origin.status()["duels"]
        assert st["as_requester"]["settled"] == 8 and st["settled_in_ledger"] == 8
        assert {e["peer_id"]: e["win_rate"] for e in st["executors"]} == {good.peer_id: 1.0, bad.peer_id: 0.0}
        from prometheus_client import generate_latest
        origin.ledger_changed()
        text = generate_latest(origin.metrics.registry).decode()
        assert f'wwwserve_ledger_duel_win_rate{{peer_id="{bad.peer_id}"}} 0.0' in text
        assert 'wwwserve_duels_total{outcome="settled"} 8.0' in text
        verdicts = [e for blk in led.blocks(origin.peer_id, 1, 10_000) for e in blk.entries if isinstance(e, Verdict)]
        assert len(verdicts) == 8
        for v in verdicts:  # judges drawn verifiably from the committed pool: never a duelist or the requester
            assert v.duel.pool and v.duel.judges == () and v.duel.judges_k == 3
            assert set(v.panel()) == {n.peer_id for n in swarm.nodes[3:]}
            assert not set(v.panel()) & {*v.duel.executors, v.duel.requester}
    finally:
        await swarm_cm.__aexit__(None, None, None)


async def test_always_a_judge_ends_in_the_minority_and_pays(autojump_clock):
    async def always_a(req):
        return "A"

    swarm_cm, swarm, _ = await duel_swarm(
        [EchoExecutor(), RandomWords(seed=2)], [OverlapJudge(), OverlapJudge(), always_a], 12)
    try:
        led = swarm[0].ledger
        liar_node = swarm.nodes[5]
        # the fee claims of the last votes may still be on their way
        await swarm.wait_until(lambda: swarm.ledgers_agree() and led.account(liar_node.peer_id).earned >= 12 * 1_000,
                               timeout=60)
        honest = [led.account(n.peer_id) for n in swarm.nodes[3:5]]
        liar = led.account(liar_node.peer_id)
        # the good executor was A in some duels and B in others: the liar sided with it only as A
        assert 0 < liar.judge_minority < 12 and liar.judge_majority + liar.judge_minority == 12
        assert all(h.judge_majority == 12 and h.judge_minority == 0 for h in honest)
        penalty = JBOND * LedgerParams().minority_penalty_pct // 100
        # its fees (one per vote) minus the penalties, which went to the honest majority
        assert liar.earned == 12 * 1_000
        assert total(led, liar_node.peer_id) == 100 * CREDIT + liar.earned - liar.judge_minority * penalty
        assert all(total(led, n.peer_id) > total(led, liar_node.peer_id) for n in swarm.nodes[3:5])
    finally:
        await swarm_cm.__aexit__(None, None, None)


async def test_position_biased_judges_do_not_favour_one_executor(autojump_clock):
    """Three judges that always prefer the answer shown first: each judge sees a random order,
    so their votes split between the two executors instead of always picking one."""
    swarm_cm, swarm, _ = await duel_swarm(
        [EchoExecutor(), EchoExecutor()], [FirstJudge() for _ in range(3)], 16)
    try:
        led = swarm[0].ledger
        a, b = led.account(swarm[1].peer_id), led.account(swarm[2].peer_id)
        assert a.duels + b.duels == 32 and a.duels == b.duels == 16
        assert 3 <= a.duels_won <= 13 and 3 <= b.duels_won <= 13, (a.duels_won, b.duels_won)
    finally:
        await swarm_cm.__aexit__(None, None, None)


async def test_duel_is_skipped_without_judges_and_executor_refuses_high_bonds(autojump_clock):
    # no node judges: the request is served by one executor and no duel starts
    nodes = [front(), EchoExecutor(), EchoExecutor()]
    async with open_swarm(nodes, config=config(), genesis=genesis_for(3)) as swarm:
        await swarm.wait_until(swarm.all_know_each_other, timeout=30)
        assert await collect(swarm[0], req()) == PROMPT
        assert swarm[0].duels.stats["started"] == 0
        assert swarm[0].metrics.duels.labels("skipped")._value.get() == 1
    # executors that accept bonds up to 1_000 refuse a duel of bond 20_000; the user is answered
    cfg = config()
    strict = dataclasses.replace(cfg, duel=dataclasses.replace(cfg.duel, max_bond=1_000))
    async with open_swarm([front(), EchoExecutor(), EchoExecutor(), front()], config=strict,
                          genesis=genesis_for(4)) as swarm:
        swarm[0].config = cfg  # the requester itself offers the usual bond
        swarm[3].duels.judge = OverlapJudge()
        swarm[3].status_changed()
        await swarm.wait_until(lambda: swarm[0].duels.choose_judges({swarm[0].peer_id}) == [swarm[3].peer_id], timeout=30)
        with trio.fail_after(120):
            assert await collect(swarm[0], req()) == PROMPT
        await swarm.wait_until(lambda: swarm[0].duels.stats["abandoned"] == 1, timeout=60)
        assert swarm[0].duels.stats["settled"] == 0


async def test_judge_refuses_bad_requests(autojump_clock):
    """A judge checks the duel before judging: a duelist named as its own judge, another
    requester, answers that do not match the receipts, a judge not drawn, a judge pool that
    disagrees with its ledger view, no fee locked toward it, a fee below its largest penalty."""
    from wwwserve_p2p.core.acceptance import answer_digest
    from wwwserve_p2p.core.ledger import DuelTicket, Receipt, eligible_pool, panel_of
    from wwwserve_p2p.identity import Identity
    from wwwserve_p2p.wire.codec import JudgeRequest

    async with open_swarm([front(), EchoExecutor(), EchoExecutor(), front()], config=config(),
                          genesis=genesis_for(4)) as swarm:
        req_node, a, b, judge = swarm.nodes
        judge.duels.judge = a.duels.judge = OverlapJudge()  # the duelist could judge other duels
        judge.status_changed()
        a.status_changed()
        ids = [swarm_identity(0, i) for i in range(4)]
        net = judge.network_id
        others = {req_node.peer_id, a.peer_id, b.peer_id}
        # the judge is staked and the requester's channel toward it is in the judge's view
        await swarm.wait_until(lambda: swarm.ledgers_agree() and judge.ledger.account(judge.peer_id).selectable_stake > 0
                               and req_node.tickets.ready(judge.peer_id, 1_000)
                               and any(info.executor == judge.peer_id
                                       for info in judge.ledger.channels_of(req_node.peer_id).values()), timeout=60)
        pool = eligible_pool(judge.duels.judge_stakes(), others)
        assert [p for p, _ in pool] == [judge.peer_id]

        def duel(pool=pool, k=1, jbond=JBOND, signer=0, requester=0, did=None, judges=()):
            return DuelTicket(net, did or f"x{next(_ids)}", ids[requester].peer_id, (a.peer_id, b.peer_id),
                              tuple(judges), BOND, jbond, 2 * 10**12, pool=pool,
                              judges_k=k if pool else 0).signed(ids[signer].sign)

        def receipts(d, first="one two", second="xq zz"):
            return (Receipt(a.peer_id, d.hash, answer_digest(first)).signed(ids[1].sign),
                    Receipt(b.peer_id, d.hash, answer_digest(second)).signed(ids[2].sign))

        def request(d, first="one two", second="xq zz", tamper=False, fee=1_000):
            ra, rb = receipts(d, first, second)
            voucher = req_node.tickets.make_fee(judge.peer_id, d, fee) if fee else None
            return JudgeRequest(d, PROMPT, first + ("!" if tamper else ""), second, ra, rb, voucher)

        ok = duel()
        assert judge.duels.check_request(request(ok), req_node.peer_id) == ""
        # a duelist named as judge of its own duel: the ticket itself is invalid
        own = duel(pool=(), judges=[a.peer_id])
        assert "judges must be distinct and exclude" in a.duels.check_request(request(own), req_node.peer_id)
        assert "another requester" in judge.duels.check_request(request(ok), b.peer_id)
        assert "does not match" in judge.duels.check_request(request(ok, tamper=True), req_node.peer_id)
        assert "does not judge" in b.duels.check_request(request(ok), req_node.peer_id)  # b has no method
        forged = duel(signer=3)
        assert "invalid duel ticket" in judge.duels.check_request(request(forged), req_node.peer_id)
        # no fee locked toward us, or a fee below our largest penalty (20 % of the judge bond)
        assert "fee voucher is required" in judge.duels.check_request(request(ok, fee=0), req_node.peer_id)
        assert "below our largest possible penalty" in judge.duels.check_request(
            request(duel(jbond=2 * JBOND)), req_node.peer_id)
        # a pool padded with a key our ledger gives no stake (the farmer's own fake judges)
        fake = Identity(b"\x07" * 32).peer_id
        padded = tuple(sorted([*pool, (fake, 10**12)]))
        assert "stake our ledger does not show" in judge.duels.check_request(
            request(duel(pool=padded, k=2)), req_node.peer_id)
        # a pool that leaves us (the only staked judge we know) out: we are not drawn
        assert "not a judge of this duel" in judge.duels.check_request(
            request(duel(pool=((fake, 10**12),))), req_node.peer_id)
        # we are in the pool but another member was drawn for the only seat
        for i in itertools.count():
            d = duel(pool=padded, did=f"grind{i}")
            if panel_of(d, receipts(d)) == (fake,):
                break
        assert "not a judge of this duel" in judge.duels.check_request(request(d), req_node.peer_id)


async def test_a_duel_that_times_out_never_cuts_the_users_answer(autojump_clock):
    """Both duelists are slower than duel.answer_timeout: the duel is abandoned, the user still
    gets the whole answer from A, and B (cut off) is never paid."""
    slow = [EchoExecutor(delay_per_token=0.5), EchoExecutor(delay_per_token=0.5)]
    nodes = [front(), *slow, front()]
    async with open_swarm(nodes, config=config(answer_timeout=1.0), genesis=genesis_for(4)) as swarm:
        swarm[3].duels.judge = OverlapJudge()
        swarm[3].status_changed()
        await swarm.wait_until(lambda: swarm[0].duels.choose_judges({swarm[0].peer_id}) == [swarm[3].peer_id], timeout=30)
        assert await collect(swarm[0], req()) == PROMPT
        await swarm.wait_until(lambda: swarm[0].duels.stats["abandoned"] == 1, timeout=60)
        # A queues its claim once its side of the stream is done; then every replica agrees
        await swarm.wait_until(lambda: sum(n.metrics.ledger_earned._value.get() for n in swarm.nodes[1:3]) == 1,
                               timeout=60)
        await swarm.wait_until(swarm.ledgers_agree, timeout=60)
        led = swarm[0].ledger
        assert led.duels_settled == 0
        earned = sorted(led.account(n.peer_id).earned for n in swarm.nodes[1:3])
        assert earned[0] == 0 and earned[1] > 0  # A paid for the answer, B's ticket voided
        assert swarm[0].metrics.ledger_voided._value.get() == 1
