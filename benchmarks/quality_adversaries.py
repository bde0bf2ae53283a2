#!/usr/bin/env python3
"""Cheating economics (issue 16): do adversarial judges and executors gain or lose credit
next to honest peers?

Real :class:`~wwwserve_p2p.node.Node` objects (every service, the duel protocol, verifiable
judge panels, the replicated ledger) on the in-memory overlay of
:func:`wwwserve_p2p.testing.swarm.open_swarm`, in virtual time (trio ``MockClock``), so the
loaded host's CPU does not shape the result and a run is reproducible from ``--seed``. The
"model" is the echo task: a good answer repeats the prompt's words; honest judges prefer the
answer that shares more words with the prompt (abstain on equal answers), like the likelihood
judge prefers the likelier answer.

Two networks, one after the other, each with one requester sending ``--requests`` requests
(``--concurrency`` at a time) and ``--honest`` honest executors (echo, ``--capacity`` slots,
stake 1 credit, 100 credits each):

``judges`` (every request a duel, ``duel_rate`` 1.0), next to the honest executors:

- a **lazy** executor: advertises the same model but answers with a cheaper one (the first
  half of the words right, the rest filler words);
- a **junk** executor: answers random words;
- judges, all with the same stake: ``--honest-judges`` honest ones, one **always-A** judge (votes
  for the first executor of every duel, without looking) and ``--colluders`` **colluding**
  judges that vote for a named executor (the lazy one) whenever it duels, honestly otherwise.
  Adversarial judge stake = (1 + colluders) / all judges (default 3/9 = 1/3).

``sybil`` (``--sybil-duel-rate`` of the requests are duels, 3 honest judges), next to the honest
executors: ``--sybils`` zero-stake identities (no genesis credit, no stake) behind **one machine**:
they share one :class:`~wwwserve_p2p.executors.echo.SlotGate` of ``--capacity`` slots, the capacity
of one honest node. What they earn together is compared with one honest node.

Reported (``--out``, default ``results/quality_adversaries``: ``results.json``, ``results.md``,
``quality_adversaries.png``): per class, credit change (balance + stake + unbonding + what is
locked in payment channels, i.e. everything it owns), earned, duels won / lost / tied, judge votes
in the majority / minority / abstained; per duel that an adversarial judge voted in, whether
the outcome equals the outcome of the honest judges' votes alone.

Targets (issue 16): the always-A judge and the colluders lose credit relative to honest judges
and change no duel outcome they are outvoted on; the lazy executor's win rate is below the
honest executors' and its credit growth lower; the sybil swarm earns less in total than one
honest node.

    python benchmarks/quality_adversaries.py            # 300 requests per network
    python benchmarks/quality_adversaries.py --quick    # 40 requests, for CI
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import harness
import trio
import trio.testing

from wwwserve_p2p.config import DuelSection, LedgerSection, NodeConfig
from wwwserve_p2p.core.ledger import Genesis, LedgerParams, Verdict
from wwwserve_p2p.core.ledger.duels import tally_duel
from wwwserve_p2p.core.policy import OffloadPolicy
from wwwserve_p2p.core.types import GenerationRequest
from wwwserve_p2p.executors.echo import EchoExecutor, SlotGate
from wwwserve_p2p.testing.judges import OverlapJudge
from wwwserve_p2p.testing.swarm import collect_text, open_swarm, swarm_identity

CREDIT = 1_000_000
#: genesis credit per non-sybil node: every node opens a payment channel toward each peer it pays
#: (a few credits each), so 100 credits ran dry with 20+ nodes and duel bonds were dropped
#: ("insufficient_funds")
ALLOC = 1_000 * CREDIT
BOND = 20_000
JBOND = 5_000      # its largest penalty (20 %) equals the judge fee: the requester caps it there anyway
FEE = 1_000
DUEL_TTL = 60.0
MODEL = "echo"
#: the words prompts are drawn from, and the filler of the lazy / junk executors
WORDS = ("thou", "art", "gone", "yet", "the", "sea", "king", "of", "rome", "night", "love", "death", "sword",
         "crown", "heaven", "father", "lord", "speak", "noble", "blood", "fair", "heart", "honour", "peace")
FILLER = ("xq", "zz", "blorp", "nay", "um", "la", "fnord", "qux")


class Lazy(EchoExecutor):
    """Advertises the honest model but answers with a cheaper one: the first half of the words
    right, the rest filler."""

    def __init__(self, seed: int = 0, **kw):
        super().__init__(**kw)
        self._rng = random.Random(seed)

    def answer_tokens(self, request):
        toks = super().answer_tokens(request)
        keep = len(toks) // 2
        return toks[:keep] + [(" " if i else "") + self._rng.choice(FILLER) + " " for i in range(len(toks) - keep)]


class Junk(EchoExecutor):
    """Answers as many random filler words as the honest answer has."""

    def __init__(self, seed: int = 0, **kw):
        super().__init__(**kw)
        self._rng = random.Random(seed)

    def answer_tokens(self, request):
        n = len(super().answer_tokens(request))
        return [self._rng.choice(FILLER) + " " for _ in range(n)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--network", choices=("judges", "sybil", "both"), default="both")
    p.add_argument("--requests", type=int, default=300, help="requests per network [300]")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight [4]")
    p.add_argument("--honest", type=int, default=10, help="honest executors [10]")
    p.add_argument("--capacity", type=int, default=2, help="slots per honest executor and of the sybil machine [2]")
    p.add_argument("--delay-per-token", type=float, default=0.05, help="virtual s per token [0.05]")
    p.add_argument("--honest-judges", type=int, default=6, help="honest judges in the judges network [6]")
    p.add_argument("--colluders", type=int, default=2, help="colluding judges (vote for the lazy executor) [2]")
    p.add_argument("--sybils", type=int, default=20, help="zero-stake identities behind one machine [20]")
    p.add_argument("--sybil-duel-rate", type=float, default=0.5, help="duel rate in the sybil network [0.5]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("results/quality_adversaries"))
    p.add_argument("--quick", action="store_true", help="40 requests, 4 honest executors, 8 sybils, 3+1+1 judges")
    a = p.parse_args(argv)
    if a.quick:
        a.requests, a.honest, a.sybils = min(a.requests, 40), min(a.honest, 4), min(a.sybils, 8)
        a.honest_judges, a.colluders = min(a.honest_judges, 3), min(a.colluders, 1)
    if min(a.requests, a.concurrency, a.honest, a.capacity, a.honest_judges) < 1 or a.colluders < 0 or a.sybils < 1:
        p.error("counts must be >= 1 (--colluders >= 0)")
    return a


def node_config(duel_rate: float, stake: int = CREDIT) -> NodeConfig:
    return NodeConfig(policy=OffloadPolicy(stake=stake),
                      ledger=LedgerSection(block_interval=0.5, sync_interval=1.0, claim_every=1),
                      duel=DuelSection(duel_rate=duel_rate, executor_bond=BOND, judge_bond=JBOND, judge_fee=FEE,
                                       judge="none", probe_grace=5.0,
                                       # bonds of abandoned duels come back after the ticket's ttl: keep it
                                       # short (virtual seconds; a duel here settles within seconds)
                                       duel_ttl=DUEL_TTL))


def total(ledger, peer: str) -> int:
    """Everything ``peer`` owns once every duel bond is settled as its verdict says (micro-credits):
    balance + stake + unbonding + what is still locked in its open payment channels, with each
    duel bond of ``peer`` counted as coming back to it, plus the loser's bond for the winner of a
    settled duel and minus its own for the loser (a tie or an unsettled duel: its own bond back).

    Bonds are released only after the other executor's chain passes the duel's deadline, so the
    balance alone lags the verdicts; this reads what each duel adds to ``peer``'s balance now from
    the replica's fold (``_DuelLock.contrib``: minus the bond, plus a release's payout) and
    replaces it by the verdict's settlement. Independent of which releases have come in."""
    a = ledger.account(peer)
    locked = sum(info.deposit - ledger.channel_paid(cid) for cid, info in ledger.channels_of(peer).items()
                 if not ledger.channel_closed(peer, cid))
    adj = 0
    for d in ledger._fold.duel_locks.values():
        if d.duel is None or peer not in d.duel.executors:
            continue
        adj -= d.contrib[0].get(peer, 0)
        out = d.outcome()
        if d.bonds.get(peer, 0) > 0 and out is not None and out[0] != "tie":
            winner = d.duel.executors[0 if out[0] == "A" else 1]
            adj += d.duel.executor_bond if peer == winner else -d.duel.executor_bond
    return a.balance + a.stake + a.unbonding + locked + adj


def prompts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 14))) for _ in range(n)]


async def run_network(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """One network (``judges`` or ``sybil``): build, drive, read the ledger. Virtual time."""
    roles: list[tuple[str, Any, NodeConfig]] = []   # (class, executor, config) per node, node 0 the requester
    rate = 1.0 if kind == "judges" else args.sybil_duel_rate
    roles.append(("requester", EchoExecutor(models=("front",)), node_config(rate, stake=0)))
    for i in range(args.honest):
        roles.append(("honest", EchoExecutor(models=(MODEL,), capacity=args.capacity,
                                             delay_per_token=args.delay_per_token), node_config(rate)))
    if kind == "judges":
        roles.append(("lazy", Lazy(seed=args.seed + 1, models=(MODEL,), capacity=args.capacity,
                                   delay_per_token=args.delay_per_token), node_config(rate)))
        roles.append(("junk", Junk(seed=args.seed + 2, models=(MODEL,), capacity=args.capacity,
                                   delay_per_token=args.delay_per_token), node_config(rate)))
        judge_roles = ["honest-judge"] * args.honest_judges + ["always-A"] + ["colluder"] * args.colluders
    else:
        machine = SlotGate(args.capacity)   # one machine's slots, shared by every sybil identity
        for i in range(args.sybils):
            ex = EchoExecutor(models=(MODEL,), capacity=args.capacity, delay_per_token=args.delay_per_token)
            ex._gate = machine
            roles.append(("sybil", ex, node_config(rate, stake=0)))
        judge_roles = ["honest-judge"] * 3
    for jr in judge_roles:
        roles.append((jr, EchoExecutor(models=("front",)), node_config(rate)))
    n = len(roles)
    # sybils are free identities: no genesis allocation (non-members, whose claims of members'
    # tickets the ledger admits), stake 0
    allocs = tuple((swarm_identity(args.seed, i).peer_id, ALLOC)
                   for i, (cls, _, _) in enumerate(roles) if cls != "sybil")
    genesis = Genesis(f"adversaries-{kind}", LedgerParams(), allocs)
    t_wall = time.monotonic()
    async with open_swarm([r[1] for r in roles], configs=[r[2] for r in roles], genesis=genesis, seed=args.seed) as swarm:
        origin = swarm[0]
        cls_of = {swarm[i].peer_id: roles[i][0] for i in range(n)}
        lazy_peer = next((p for p, c in cls_of.items() if c == "lazy"), None)
        for i, (cls, _, _) in enumerate(roles):
            node = swarm[i]
            if cls in ("honest-judge", "always-A", "colluder"):
                node.duels.judge = OverlapJudge()
                honest_vote = node.duels.decide_vote
                if cls == "always-A":
                    async def vote(req, _h=honest_vote):
                        return "A"
                    node.duels.decide_vote = vote
                elif cls == "colluder":
                    async def vote(req, _h=honest_vote):
                        a, b = req.duel.executors
                        if lazy_peer in (a, b):
                            return "A" if a == lazy_peer else "B"
                        return await _h(req)
                    node.duels.decide_vote = vote
                node.status_changed()
        n_judges = len(judge_roles)
        await swarm.wait_until(lambda: len(origin.duels.choose_judges({origin.peer_id})) == n_judges, timeout=60)
        await swarm.wait_until(lambda: swarm.ledgers_agree()
                               and len(origin.ledger.channels_of(origin.peer_id)) >= n - 1 - args.sybils
                               * (kind == "sybil"), timeout=120)
        start = {p: total(origin.ledger, p) for p in cls_of}
        ps = prompts(args.requests, args.seed)
        results: list[bool] = []
        limiter = trio.Semaphore(args.concurrency)
        t0 = trio.current_time()
        curve: list[dict[str, Any]] = []

        async def one(i: int) -> None:
            async with limiter:
                req = GenerationRequest(f"{kind}-{i}", MODEL, prompt=ps[i], max_tokens=64, temperature=0.0)
                try:
                    await collect_text(origin, req)
                    results.append(True)
                except Exception:  # counted; a failed request is part of the result
                    results.append(False)

        async def sample() -> None:
            while True:
                await trio.sleep(5.0)
                curve.append({"t": round(trio.current_time() - t0, 1),
                              "credit": {p: total(origin.ledger, p) - start[p] for p in cls_of}})

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample)
            async with trio.open_nursery() as reqs:
                for i in range(args.requests):
                    reqs.start_soon(one, i)
                    await trio.sleep(0)
            st = origin.duels.stats
            await swarm.wait_until(lambda: st["settled"] + st["abandoned"] >= st["started"], timeout=600)
            await swarm.wait_until(swarm.ledgers_agree, timeout=300)
            nursery.cancel_scope.cancel()
        curve.append({"t": round(trio.current_time() - t0, 1),
                      "credit": {p: total(origin.ledger, p) - start[p] for p in cls_of}})
        led = origin.ledger
        per_peer = {}
        for p, cls in cls_of.items():
            a = led.account(p)
            per_peer[p] = {"class": cls, "credit_change": total(led, p) - start[p], "earned": a.earned,
                           "stake": a.stake, "won": a.duels_won, "lost": a.duels_lost, "tied": a.duels_tied,
                           "judge_majority": a.judge_majority, "judge_minority": a.judge_minority,
                           "judge_abstained": a.judge_abstained, "served": swarm[list(cls_of).index(p)].stats.accepted_for_others}
        # every verdict: did the adversarial judges' votes change the outcome of the honest judges' votes?
        adversarial = {p for p, c in cls_of.items() if c in ("always-A", "colluder")}
        duels = {"settled": 0, "with_adversary_vote": 0, "adversary_outvoted": 0, "outvoted_but_changed": 0,
                 "adversary_majority": 0, "changed_by_adversary": 0, "changed_when_honest_tied": 0}
        for blk in led.blocks(origin.peer_id, 1, 1_000_000):
            for e in blk.entries:
                if not isinstance(e, Verdict):
                    continue
                duels["settled"] += 1
                panel = e.panel()
                outcome, chosen = tally_duel(e.duel, e.votes, panel)
                adv = {j: c for j, c in chosen.items() if j in adversarial and c in ("A", "B")}
                if not adv:
                    continue
                duels["with_adversary_vote"] += 1
                honest_outcome, _ = tally_duel(e.duel, [v for v in e.votes if v.judge not in adversarial], panel)
                changed = honest_outcome != outcome
                # outvoted: every adversarial vote went against the outcome the counted votes produced
                outvoted = all(c != outcome for c in adv.values())
                duels["adversary_outvoted"] += outvoted
                duels["outvoted_but_changed"] += outvoted and changed
                duels["adversary_majority"] += all(c == outcome for c in adv.values()) and outcome != "tie"
                duels["changed_by_adversary"] += changed
                duels["changed_when_honest_tied"] += changed and honest_outcome == "tie"
        virtual_s = trio.current_time() - t0
    classes: dict[str, dict[str, Any]] = {}
    for row in per_peer.values():
        c = classes.setdefault(row["class"], {"nodes": 0, "credit_change": [], "earned": [], "won": 0, "lost": 0,
                                              "tied": 0, "judge_majority": 0, "judge_minority": 0,
                                              "judge_abstained": 0, "served": 0})
        c["nodes"] += 1
        c["credit_change"].append(row["credit_change"])
        c["earned"].append(row["earned"])
        for k in ("won", "lost", "tied", "judge_majority", "judge_minority", "judge_abstained", "served"):
            c[k] += row[k]
    for c in classes.values():
        d = c["won"] + c["lost"] + c["tied"]
        c["duels"] = d
        c["win_rate"] = round((c["won"] + c["tied"] / 2) / d, 4) if d else None
        ch = c.pop("credit_change")
        c["credit_change_total"] = sum(ch)
        c["credit_change_mean"] = round(statistics.fmean(ch))
        c["credit_change_min"], c["credit_change_max"] = min(ch), max(ch)
        c["earned_total"] = sum(c.pop("earned"))
    curve_cls = [{"t": s["t"], **{cls: sum(v for p, v in s["credit"].items() if cls_of[p] == cls)
                                  / sum(1 for q in cls_of.values() if q == cls) for cls in classes}} for s in curve]
    return {"network": kind, "nodes": n, "requests": len(results), "ok": sum(results), "virtual_s": round(virtual_s, 1),
            # credit only moves between accounts (nothing is burned here): must be 0
            "credit_change_sum": sum(r["credit_change"] for r in per_peer.values()),
            "wall_s": round(time.monotonic() - t_wall, 1), "duels": duels, "duel_stats": dict(st),
            "classes": classes, "peers": per_peer, "curve_mean_per_class": curve_cls}


def evaluate(res: dict[str, dict[str, Any]]) -> dict[str, bool]:
    out: dict[str, bool] = {}
    if "judges" in res:
        c, d = res["judges"]["classes"], res["judges"]["duels"]
        hj = c["honest-judge"]
        out["always_A_earns_less_than_every_honest_judge"] = c["always-A"]["credit_change_max"] < hj["credit_change_min"]
        if "colluder" in c:
            out["colluders_earn_less_than_every_honest_judge"] = c["colluder"]["credit_change_max"] < hj["credit_change_min"]
        out["always_A_loses_credit"] = c["always-A"]["credit_change_max"] < 0
        if "colluder" in c:
            out["colluders_lose_credit"] = c["colluder"]["credit_change_max"] < 0
        out["no_outvoted_adversary_changed_an_outcome"] = d["outvoted_but_changed"] == 0
        h, lz = c["honest"], c["lazy"]
        out["lazy_win_rate_below_honest"] = (lz["win_rate"] or 0) < (h["win_rate"] or 0)
        out["lazy_credit_growth_below_every_honest"] = lz["credit_change_max"] < h["credit_change_min"]
        out["junk_loses_credit"] = c["junk"]["credit_change_max"] < 0
    if "sybil" in res:
        c = res["sybil"]["classes"]
        out["sybil_swarm_total_below_one_honest_node"] = c["sybil"]["credit_change_total"] < c["honest"]["credit_change_mean"]
        out["sybil_swarm_total_below_the_poorest_honest_node"] = c["sybil"]["credit_change_total"] < c["honest"]["credit_change_min"]
    return out


def plot(res, plt):
    nets = list(res)
    fig, axes = plt.subplots(1, 2 * len(nets), figsize=(7 * len(nets) * 1.6, 4.5))
    axes = list(axes) if len(nets) * 2 > 1 else [axes]
    for k, net in enumerate(nets):
        r = res[net]
        ax1, ax2 = axes[2 * k], axes[2 * k + 1]
        cls = [c for c in r["classes"] if c != "requester"]
        vals = [r["classes"][c]["credit_change_mean"] / 1e6 for c in cls]
        if net == "sybil":  # the swarm's total next to one honest node's mean
            vals = [r["classes"][c]["credit_change_total" if c == "sybil" else "credit_change_mean"] / 1e6 for c in cls]
        ax1.bar(cls, vals, color=["#c44e52" if v < 0 else "#4c72b0" for v in vals])
        ax1.axhline(0, color="black", lw=0.8)
        ax1.set_ylabel("credit change per node (credits)" + ("; sybil = whole swarm" if net == "sybil" else ""))
        ax1.set_title(f"{net}: credit change after {r['requests']} requests")
        ax1.tick_params(axis="x", rotation=30)
        for c in cls:
            pts = [(s["t"], s[c]) for s in r["curve_mean_per_class"]]
            ax2.plot([t for t, _ in pts], [v / 1e6 for _, v in pts], label=c)
        ax2.set_xlabel("virtual time (s)")
        ax2.set_ylabel("mean credit change per node (credits)")
        ax2.set_title(f"{net}: credit over time")
        ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    con = harness.console()
    nets = ("judges", "sybil") if args.network == "both" else (args.network,)
    res: dict[str, dict[str, Any]] = {}

    async def amain() -> None:
        for net in nets:
            con.print(f"network [bold]{net}[/bold]: {args.requests} requests (virtual time)")
            res[net] = await run_network(net, args)
            r = res[net]
            con.print(f"    {r['ok']}/{r['requests']} answered, duels {r['duel_stats']}, {r['virtual_s']} virtual s, "
                      f"{r['wall_s']} wall s")

    trio.run(amain, clock=trio.testing.MockClock(autojump_threshold=0))
    targets = evaluate(res)
    md: list[str] = []
    for net, r in res.items():
        md += [f"### {net}: {r['ok']}/{r['requests']} answered, {r['duels']['settled']} duels settled, {r['nodes']} nodes", "",
               "| class | nodes | credit change per node, mean [min, max] (credits) | total | earned | served | duels | "
               "won / lost / tied | win rate | judge votes majority / minority / abstained |",
               "|---|---|---|---|---|---|---|---|---|---|"]
        for cls, c in r["classes"].items():
            md.append(f"| {cls} | {c['nodes']} | {c['credit_change_mean'] / 1e6:+.4f} [{c['credit_change_min'] / 1e6:+.4f}, "
                      f"{c['credit_change_max'] / 1e6:+.4f}] | {c['credit_change_total'] / 1e6:+.4f} | {c['earned_total'] / 1e6:.4f} | "
                      f"{c['served']} | {c['duels']} | {c['won']} / {c['lost']} / {c['tied']} | "
                      f"{'-' if c['win_rate'] is None else c['win_rate']} | "
                      f"{c['judge_majority']} / {c['judge_minority']} / {c['judge_abstained']} |")
        if net == "judges":
            d = r["duels"]
            md += ["", f"Duels with an adversarial vote (always-A or colluder, A/B): {d['with_adversary_vote']} of {d['settled']}; "
                       f"adversaries outvoted in {d['adversary_outvoted']} (outcome changed in {d['outvoted_but_changed']}); "
                       f"outcome differs from the honest judges' votes alone in {d['changed_by_adversary']} "
                       f"({d['changed_when_honest_tied']} of them where the honest votes tied or abstained)."]
        md.append("")
    md += ["| target | met |", "|---|---|"] + [f"| {k} | {'yes' if v else 'no'} |" for k, v in targets.items()]
    for line in md:
        con.print(line)
    harness.write_report(args.out, "results", {"options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                                                "networks": res, "targets": targets}, md,
                         plots={"quality_adversaries": lambda plt: plot(res, plt)}, con=con)
    return 0 if all(r["ok"] == r["requests"] for r in res.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
