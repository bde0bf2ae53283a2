"""Duel settlement: :func:`tally_duel` (who won, which votes count) and :func:`settle_duel`
(the credit movements every replica applies for a :class:`~.entries.Verdict`)."""

from __future__ import annotations

from collections.abc import Iterable

from .genesis import LedgerParams
from .signed import DuelTicket, Vote


def tally_duel(duel: DuelTicket, votes: Iterable[Vote]) -> tuple[str, dict[str, str]]:
    """Outcome of a duel: (``"A"``, ``"B"`` or ``"tie"``, the counted votes judge -> choice).

    Counts each listed judge's first valid vote on this duel (unlisted, repeated, badly signed
    or other-duel votes are ignored); more A than B votes: A wins, more B: B, equal: tie.
    """
    dh = duel.hash
    judges = set(duel.judges)
    chosen: dict[str, str] = {}
    for v in votes:
        if v.judge in judges and v.duel_hash == dh and v.judge not in chosen and v.valid():
            chosen[v.judge] = v.choice
    a = sum(1 for c in chosen.values() if c == "A")
    b = sum(1 for c in chosen.values() if c == "B")
    return ("A" if a > b else "B" if b > a else "tie"), chosen


def settle_duel(duel: DuelTicket, votes: Iterable[Vote], params: LedgerParams) -> dict[str, tuple[int, int]]:
    """Credit movements of a settled duel: PeerId -> (balance delta, stake delta).

    Counts each listed judge's valid vote once (A, B or abstain; unlisted or badly signed votes
    are ignored: a judge that never accepted is not counted). More A than B votes: executor A
    wins; more B: B wins; equal: nothing moves. The loser's stake loses ``executor_bond``, which
    the winner receives. Judges who voted for the loser lose ``minority_penalty_pct`` % of
    ``judge_bond`` from their stake, abstaining judges ``abstain_penalty_pct`` %; the pool is
    split equally among the majority judges (the remainder to the first by PeerId).
    Source: DESIGN §6 after the paper's judge incentives. Sums to zero.
    """
    win_side, chosen = tally_duel(duel, votes)
    return settle_tally(duel, win_side, chosen, params)


def settle_tally(duel: DuelTicket, win_side: str, chosen: dict[str, str],
                 params: LedgerParams) -> dict[str, tuple[int, int]]:
    """:func:`settle_duel` from an already computed :func:`tally_duel` (``win_side``, ``chosen``)."""
    if win_side == "tie":
        return {}
    winner, loser = duel.executors if win_side == "A" else duel.executors[::-1]
    out: dict[str, list[int]] = {}

    def add(peer: str, dbal: int, dstake: int) -> None:
        cur = out.setdefault(peer, [0, 0])
        cur[0] += dbal
        cur[1] += dstake

    add(loser, 0, -duel.executor_bond)
    add(winner, duel.executor_bond, 0)
    majority = sorted(j for j, c in chosen.items() if c == win_side)
    pool = 0
    for j, c in sorted(chosen.items()):
        pct = 0 if c == win_side else (params.abstain_penalty_pct if c == "abstain" else params.minority_penalty_pct)
        penalty = duel.judge_bond * pct // 100
        if penalty:
            add(j, 0, -penalty)
            pool += penalty
    if pool:
        share, rest = divmod(pool, len(majority))
        for i, j in enumerate(majority):
            add(j, share + (rest if i == 0 else 0), 0)
    return {p: (d[0], d[1]) for p, d in out.items() if d != [0, 0]}
