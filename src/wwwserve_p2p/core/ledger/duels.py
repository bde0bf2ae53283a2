"""Duel settlement and verifiable judge panels.

- :func:`tally_duel` (who won, which votes count) and :func:`settle_duel` (the credit movements
  every replica applies for a :class:`~.entries.Verdict`).
- :func:`judge_seed`, :func:`select_judges`, :func:`panel_of`: the judges of a duel are not
  named by its requester but **drawn**, deterministically, from the stake *pool* the requester
  commits to in its signed :class:`~.signed.DuelTicket` (``pool``: ``(PeerId, stake)`` pairs,
  at most :data:`MAX_POOL`, requester and executors excluded, stake > 0 only) with a seed that
  includes both executors' signed receipts. Any replica recomputes the panel from the verdict
  alone (pure, integer arithmetic, no floats), so a verdict counting a vote of anyone else is
  invalid everywhere.
- :func:`pool_problem`: what a judge checks before it votes: the committed pool agrees with its
  own ledger view (no inflated stake, no honest stake left out beyond a tolerance).

**Why the majority is independent of the requester (and what is left).** A judge's minority or
abstain penalty applies only in a duel whose panel is *verifiable* (``pool`` set). There:

1. The seed is ``sha256(duel hash, receipt signature of A, receipt signature of B)``. The
   requester signs the duel (pool included) before either executor answers; an honest
   executor's Ed25519 receipt signature cannot be computed by anyone else, so a requester
   with at least one honest executor cannot try duel ids until it likes the panel: it learns
   the panel only after it has paid both executors for their answers.
2. Each seat is drawn with probability proportional to stake in the pool, and honest judges
   vote only when the pool matches their own view (:func:`pool_problem`): to get seats the
   requester must *own* stake, in proportion to it. Keys without stake are never drawn.
3. What a requester colluding with **both** executors can still do is grind (its fakes sign
   receipts for as many duel ids as it likes) until its own staked judges hold the majority
   next to an honest one. That cannot be prevented without an unbiasable common random
   beacon, which this ledger (no consensus) does not have. So the penalty is also **bounded
   by what the requester locked and paid the judge**: an honest judge votes only when its fee
   voucher (a payment-channel voucher: the credit is locked toward it) is at least its largest
   possible penalty (:func:`max_judge_penalty`). A farming duel then costs the honest judge
   nothing: it is paid ``fee >= penalty`` for its vote, and the farmer loses ``fee - penalty >= 0``.

A duel without a pool (the older form, judges named freely by the requester) still settles the
executors' bond and is counted in win rates, but **no judge penalty applies**: nothing shows
that its majority is independent of the requester.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

from .codes import canonical
from .genesis import LedgerParams
from .signed import MAX_PANEL, MAX_POOL, DuelTicket, Receipt, Vote

# MAX_POOL: a requester seeing more staked peers commits to the MAX_POOL largest (ties by
# PeerId); judges compare it with the same cut of their own view. MAX_PANEL: judges per duel.
__all__ = ["MAX_PANEL", "MAX_POOL", "eligible_pool", "is_verifiable", "judge_seed", "max_judge_penalty",
           "panel_of", "pool_problem", "select_judges", "settle_duel", "settle_tally", "tally_duel"]


def judge_seed(duel: DuelTicket, receipts: Iterable[Receipt]) -> bytes:
    """The 32-byte seed of ``duel``'s panel: SHA-256 of the duel's hash and both executors'
    receipt signatures, in executor order (A, B). Receipts of other executors are ignored.

    :raises ValueError: a receipt of A or B is missing.
    """
    by_exec = {r.executor: r for r in receipts if r.duel_hash == duel.hash}
    try:
        sigs = [by_exec[e].signature.hex() for e in duel.executors]
    except KeyError:
        raise ValueError("the judge seed needs both executors' receipts") from None
    return hashlib.sha256(canonical({"t": "judge-seed", "duel": duel.hash, "receipts": sigs})).digest()


def select_judges(seed: bytes, pool: Iterable[tuple[str, int]], k: int) -> tuple[str, ...]:
    """``k`` distinct PeerIds drawn from ``pool`` (``(PeerId, stake)``) without replacement,
    each draw with probability proportional to stake among those left; entries with stake <= 0
    are never drawn. Deterministic: draw ``i`` takes ``int(sha256(seed || i)) mod W`` (``W`` =
    stake left) and walks the remaining peers in PeerId order; pure integer arithmetic, so every
    replica computes the same panel. Fewer than ``k`` when fewer are eligible. The order of the
    result is the draw order."""
    left = sorted((p, s) for p, s in dict(pool).items() if s > 0)
    out: list[str] = []
    i = 0
    while left and len(out) < k:
        total = sum(s for _, s in left)
        x = int.from_bytes(hashlib.sha256(seed + i.to_bytes(4, "big")).digest(), "big") % total
        i += 1
        for j, (p, s) in enumerate(left):
            if x < s:
                out.append(p)
                del left[j]
                break
            x -= s
    return tuple(out)


def is_verifiable(duel: DuelTicket) -> bool:
    """Whether ``duel``'s judges are drawn from a committed pool (else named by its requester)."""
    return bool(duel.pool)


def panel_of(duel: DuelTicket, receipts: Iterable[Receipt]) -> tuple[str, ...]:
    """The judges of ``duel``: drawn by :func:`select_judges` from its pool with
    :func:`judge_seed` of ``receipts`` (verifiable form), or ``duel.judges`` (older form).

    :raises ValueError: verifiable form without both receipts.
    """
    if not is_verifiable(duel):
        return tuple(duel.judges)
    return select_judges(judge_seed(duel, receipts), duel.pool, duel.judges_k)


def max_judge_penalty(judge_bond: int, params: LedgerParams) -> int:
    """The most a judge can lose in one duel of ``judge_bond`` (micro-credits): the larger of
    the minority and the abstain penalty. A judge votes only for a locked fee at least this."""
    return judge_bond * max(params.minority_penalty_pct, params.abstain_penalty_pct) // 100


def eligible_pool(stakes: Mapping[str, int], exclude: Iterable[str], limit: int = MAX_POOL) -> tuple[tuple[str, int], ...]:
    """The pool a requester commits to: the ``limit`` largest positive stakes (ties by PeerId)
    of ``stakes`` (PeerId -> selectable stake in its view) except ``exclude``, in PeerId order."""
    ex = set(exclude)
    top = sorted(((p, s) for p, s in stakes.items() if s > 0 and p not in ex), key=lambda ps: (-ps[1], ps[0]))[:limit]
    return tuple(sorted(top))


def pool_problem(pool: Sequence[tuple[str, int]], view: Mapping[str, int], exclude: Iterable[str], *,
                 tolerance_pct: int = 10) -> str:
    """Why a judge refuses ``pool`` (a duel's committed stake pool) given ``view`` (PeerId ->
    selectable stake in the judge's own ledger view); ``""`` if it agrees.

    The judge builds its own :func:`eligible_pool` of ``view`` (without ``exclude``: requester
    and executors) and measures, in micro-credits: *inflation* = stake the pool claims above
    the view (sum over entries of ``max(0, pool - view)``; a key the view does not know has
    stake 0) and *omission* = stake of the judge's pool missing from the committed one (sum of
    ``max(0, view - pool)``). Both must stay within ``tolerance_pct`` % of the judge's pool
    total: views of honest nodes differ a little (blocks in flight), an attacker's padding does
    not fit. A requester could at most shift ``tolerance_pct`` % of the weight to its keys.
    """
    mine = dict(eligible_pool(view, exclude))
    total = sum(mine.values())
    if total <= 0:
        return "no stake in our view to compare the duel's judge pool with"
    claimed = dict(pool)
    inflated = sum(max(0, s - view.get(p, 0)) for p, s in claimed.items())
    omitted = sum(max(0, s - claimed.get(p, 0)) for p, s in mine.items())
    bound = total * tolerance_pct // 100
    if inflated > bound:
        return f"the duel's judge pool claims {inflated} micro-credits of stake our ledger does not show (bound {bound})"
    if omitted > bound:
        return f"the duel's judge pool leaves out {omitted} micro-credits of stake our ledger shows (bound {bound})"
    return ""


def tally_duel(duel: DuelTicket, votes: Iterable[Vote], judges: Iterable[str] | None = None) -> tuple[str, dict[str, str]]:
    """Outcome of a duel: (``"A"``, ``"B"`` or ``"tie"``, the counted votes judge -> choice).

    ``judges``: the duel's panel (:func:`panel_of`; default ``duel.judges``). Counts each panel
    judge's first valid vote on this duel (others, repeated, badly signed or other-duel votes
    are ignored); more A than B votes: A wins, more B: B, equal: tie.
    """
    dh = duel.hash
    panel = set(duel.judges if judges is None else judges)
    chosen: dict[str, str] = {}
    for v in votes:
        if v.judge in panel and v.duel_hash == dh and v.judge not in chosen and v.valid():
            chosen[v.judge] = v.choice
    a = sum(1 for c in chosen.values() if c == "A")
    b = sum(1 for c in chosen.values() if c == "B")
    return ("A" if a > b else "B" if b > a else "tie"), chosen


def settle_duel(duel: DuelTicket, votes: Iterable[Vote], params: LedgerParams,
                receipts: Iterable[Receipt] = ()) -> dict[str, tuple[int, int]]:
    """Credit movements of a settled duel: PeerId -> (balance delta, stake delta).

    Counts each panel judge's valid vote once (A, B or abstain; others or badly signed votes
    are ignored: a judge that never accepted is not counted); the panel is :func:`panel_of`
    ``receipts`` (needed for the verifiable form). More A than B votes: executor A wins; more
    B: B wins; equal: nothing moves. The loser's stake loses ``executor_bond``, which the
    winner receives. In a verifiable duel only (see the module docstring), judges who voted for
    the loser lose ``minority_penalty_pct`` % of ``judge_bond`` from their stake, abstaining
    judges ``abstain_penalty_pct`` %; the pool is split equally among the majority judges (the
    remainder to the first by PeerId). Source: DESIGN §6 after the paper's judge incentives.
    Sums to zero.

    :raises ValueError: a verifiable duel without both executors' receipts.
    """
    judges = panel_of(duel, receipts)
    win_side, chosen = tally_duel(duel, votes, judges)
    return settle_tally(duel, win_side, chosen, params)


def settle_tally(duel: DuelTicket, win_side: str, chosen: dict[str, str],
                 params: LedgerParams, *, executors: bool = True) -> dict[str, tuple[int, int]]:
    """:func:`settle_duel` from an already computed :func:`tally_duel` (``win_side``, ``chosen``).
    ``executors=False``: the judges' part only (the fold moves the executors' bond through their
    locked :class:`~.entries.DuelBond` s instead, see :class:`~.fold.Fold`)."""
    if win_side == "tie":
        return {}
    winner, loser = duel.executors if win_side == "A" else duel.executors[::-1]
    out: dict[str, list[int]] = {}

    def add(peer: str, dbal: int, dstake: int) -> None:
        cur = out.setdefault(peer, [0, 0])
        cur[0] += dbal
        cur[1] += dstake

    if executors:
        add(loser, 0, -duel.executor_bond)
        add(winner, duel.executor_bond, 0)
    majority = sorted(j for j, c in chosen.items() if c == win_side)
    pool = 0
    # judge penalties only where the panel was drawn verifiably (module docstring)
    for j, c in sorted(chosen.items()) if is_verifiable(duel) else ():
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
