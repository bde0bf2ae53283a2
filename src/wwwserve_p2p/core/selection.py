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


# ---------------------------------------------------------------- choice among acceptors

#: Defaults of the latency weighting in :func:`choose_offer` (``policy.latency_tau``, ``policy.latency_exponent``).
LATENCY_TAU_S = 0.5
LATENCY_EXPONENT = 2.0


def expected_latency(ttft_s: float, s_per_token: float, max_tokens: int) -> float:
    """The latency (s) an executor's Offer predicts for a request of ``max_tokens``:
    ``ttft_s + max_tokens * s_per_token`` (both >= 0; negative or non-finite inputs count as 0)."""
    t = ttft_s if math.isfinite(ttft_s) and ttft_s > 0 else 0.0
    p = s_per_token if math.isfinite(s_per_token) and s_per_token > 0 else 0.0
    return t + max(0, max_tokens) * p


def offer_weights(stakes: Sequence[int], latencies: Sequence[float], *, tau: float = LATENCY_TAU_S,
                  exponent: float = LATENCY_EXPONENT) -> list[float]:
    """Proof-of-stake weights of the acceptors of one probe (DESIGN §5, issue 12):

        w_i = stake_i * ((L_min + tau) / (L_i + tau)) ** exponent

    ``stakes``: selectable stake of each acceptor (micro-credits, >= 0); ``latencies``: the
    latency each one's Offer predicts (s, :func:`expected_latency`); ``L_min`` = the smallest of
    them; ``tau`` (s, > 0) keeps the weighting gentle for short requests; ``exponent`` >= 0 (0 =
    stake only). The latency factor is in (0, 1], equal to 1 for the fastest acceptor, so when all
    acceptors predict the same latency the weights are the stakes themselves: the paper's rule,
    probability proportional to stake. When no acceptor has stake, every stake counts as 1
    (uniform, weighted by latency).

    :raises ValueError: different lengths, ``tau <= 0`` or ``exponent < 0``.
    """
    if len(stakes) != len(latencies):
        raise ValueError("stakes and latencies differ in length")
    if not tau > 0 or not exponent >= 0:
        raise ValueError("tau must be > 0 and exponent >= 0")
    if not stakes:
        return []
    lat = [x if math.isfinite(x) and x > 0 else 0.0 for x in latencies]
    lo = min(lat)
    base = [max(0, s) for s in stakes]
    if not any(base):
        base = [1] * len(base)
    return [b * ((lo + tau) / (x + tau)) ** exponent for b, x in zip(base, lat)]


def choose_offer(stakes: Sequence[int], latencies: Sequence[float], u: float, u_explore: float = 1.0, *,
                 exploration_share: float = 0.0, tau: float = LATENCY_TAU_S,
                 exponent: float = LATENCY_EXPONENT) -> int | None:
    """Index of the acceptor to commit to, drawn with probability proportional to
    :func:`offer_weights` (``u`` uniform in [0, 1)); None when there is none.

    Zero-stake acceptors (newcomers probed through the exploration share) have weight 0 next to
    staked ones; with probability ``exploration_share`` (``u_explore < exploration_share``) one
    of them is chosen instead, the fastest first (so newcomers can earn, as in
    :func:`select_candidates`).
    """
    if not stakes:
        return None
    newcomers = [i for i, s in enumerate(stakes) if s <= 0]
    if newcomers and len(newcomers) < len(stakes) and u_explore < exploration_share:
        return min(newcomers, key=lambda i: (latencies[i], i))
    w = offer_weights(stakes, latencies, tau=tau, exponent=exponent)
    total = sum(w)
    if total <= 0:
        return 0
    x = min(max(u, 0.0), 1.0 - 1e-12) * total
    acc = 0.0
    for i, wi in enumerate(w):
        acc += wi
        if x < acc:
            return i
    return max(i for i, wi in enumerate(w) if wi > 0)
