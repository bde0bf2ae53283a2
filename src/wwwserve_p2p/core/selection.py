"""Stake-weighted executor selection. Pure and deterministic given a seed.

Weighted sampling without replacement follows Efraimidis & Spirakis, "Weighted random
sampling with a reservoir", Information Processing Letters 97(5), 2006: each candidate with
weight w > 0 draws u ~ U(0,1) and gets key u^(1/w); the k largest keys form the sample, so the
first pick has probability w_i / sum(w) and later picks follow sampling without replacement.
Uniform variates come from SHA-256 of (seed, salt), so there is no hidden randomness.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence


def uniform(seed: int | bytes | str, *salt: object) -> float:
    """A deterministic variate in (0, 1) derived from ``seed`` and ``salt`` (SHA-256)."""
    h = hashlib.sha256(repr((seed,) + salt).encode("utf-8")).digest()
    # 53 bits -> (0, 1): add 0.5 so 0 is never returned
    return (int.from_bytes(h[:8], "big") >> 11 | 0) / float(1 << 53) + 0.5 / float(1 << 53)


def weighted_order(weights: Mapping[str, int], seed: int | bytes | str) -> list[str]:
    """All keys with weight > 0, ordered by Efraimidis-Spirakis keys (largest first).

    Taking the first k is a weighted sample of size k without replacement.
    Weights are integers (micro-credits of stake); ties broken by key name.
    """
    keyed = []
    for name, w in weights.items():
        if w > 0:
            u = uniform(seed, "es", name)
            keyed.append((math.log(u) / w, name))  # log(u^(1/w)), monotone in the key
    keyed.sort(key=lambda t: (-t[0], t[1]))
    return [name for _, name in keyed]


def select_candidates(
    stakes: Mapping[str, int],
    n: int,
    seed: int | bytes | str,
    exploration_share: float = 0.1,
) -> list[str]:
    """Choose up to ``n`` distinct candidates to probe, in priority order.

    ``stakes``: PeerId -> staked micro-credits (>= 0) of every eligible candidate.
    Each slot is, with probability ``exploration_share``, given to a uniformly chosen
    zero-stake newcomer (so newcomers get a chance to earn); otherwise to the next
    stake-weighted pick. When one pool runs out the other fills the remaining slots.

    :raises ValueError: ``n < 0`` or ``exploration_share`` outside [0, 1].
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if not 0.0 <= exploration_share <= 1.0:
        raise ValueError("exploration_share must be in [0, 1]")
    staked = weighted_order(stakes, seed)
    newcomers = sorted((p for p, w in stakes.items() if w <= 0), key=lambda p: uniform(seed, "new", p))
    out: list[str] = []
    for slot in range(min(n, len(staked) + len(newcomers))):
        explore = uniform(seed, "slot", slot) < exploration_share
        if (explore and newcomers) or not staked:
            out.append(newcomers.pop(0))
        else:
            out.append(staked.pop(0))
    return out


#: Executor-selection strategies (``policy.selection``): ``stake`` is WWW.Serve's; the others are
#: the evaluation baselines of DESIGN §5.
STRATEGIES = ("stake", "random", "p2c")


def order_candidates(
    strategy: str,
    stakes: Mapping[str, int],
    loads: Mapping[str, float],
    n: int,
    seed: int | bytes | str,
    exploration_share: float = 0.1,
) -> list[str]:
    """Up to ``n`` candidates to probe, in priority order, under ``strategy``.

    - ``stake``: :func:`select_candidates` (stake-weighted, with the newcomer exploration share).
    - ``random``: uniform order over all eligible candidates, stake ignored.
    - ``p2c``: power of two choices (Mitzenmacher, "The power of two choices in randomized load
      balancing", IEEE TPDS 12(10), 2001): two uniformly chosen candidates, the one with the
      lower gossiped load first; further slots (probing extras) in uniform order.

    ``stakes``: PeerId -> selectable stake (micro-credits) of every eligible candidate;
    ``loads``: PeerId -> gossiped load (missing = 0.0).

    :raises ValueError: unknown strategy, ``n < 0``, bad ``exploration_share``.
    """
    if strategy == "stake":
        return select_candidates(stakes, n, seed, exploration_share)
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown selection strategy {strategy!r}; expected one of {STRATEGIES}")
    if n < 0:
        raise ValueError("n must be >= 0")
    shuffled = sorted(stakes, key=lambda p: uniform(seed, strategy, p))
    if strategy == "p2c" and len(shuffled) >= 2:
        two = sorted(shuffled[:2], key=lambda p: (loads.get(p, 0.0), shuffled.index(p)))
        shuffled = two + shuffled[2:]
    return shuffled[:n]


def least_loaded(loads: Sequence[tuple[str, float]]) -> str | None:
    """The PeerId with the smallest load (ties: smallest PeerId), or None if empty."""
    return min(loads, key=lambda t: (t[1], t[0]))[0] if loads else None
