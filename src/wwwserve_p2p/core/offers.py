"""Offers as short leases (issue 15, "offers cost something"): the executor side's book of the
offers it accepted and whose requester has not decided yet.

An accepted :class:`~wwwserve_p2p.core.types.Offer` holds no executor slot (issue 12: the slot is
taken at the commit, which must carry a voucher on a payment channel locked toward us), but it
does hold a place among our *open offers*, and while those are full every other requester's
probe is declined. Without limits one identity that probes and never commits holds all of them
("slot squatting"). The book bounds that:

- every grant is a **lease** that ends at ``now + lease_s``: the requester commits (with a valid
  voucher), withdraws, or the lease *expires*, which counts a strike against the requester;
- at most ``max_open`` offers are open in total, at most ``per_funded`` per requester that has
  **locked credit** toward us (an open payment channel with room for the price), at most
  ``per_unfunded`` per requester without (its first request, before its channel's block reached
  us) and at most ``unfunded_total`` for all such requesters together: fresh identities are free,
  so together they can never take more than that share;
- a requester with ``strike_limit`` or more strikes (each decays with half-life
  ``strike_half_life_s``) is granted nothing until its score decays below the limit.

Pure: the caller passes ``now`` (seconds, monotonic) and whether the requester is funded; no I/O,
no clock. Bounded: at most ``max_requesters`` requesters are remembered (entries without open
offers are evicted, lowest score first; when every entry has open offers a new requester is
refused), and open offers never exceed ``max_open``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ConfigError


@dataclass(frozen=True, slots=True)
class OfferLimits:
    """Limits of an :class:`OfferBook` (counts of open offers; seconds)."""

    max_open: int = 8
    per_funded: int = 2
    per_unfunded: int = 1
    unfunded_total: int = 2
    lease_s: float = 5.0
    strike_limit: float = 3.0
    strike_half_life_s: float = 60.0
    max_requesters: int = 4096

    def __post_init__(self) -> None:
        if self.max_open < 1 or self.per_funded < 1 or self.per_unfunded < 0 or self.unfunded_total < 0:
            raise ConfigError("offer limits: need max_open, per_funded >= 1 and per_unfunded, unfunded_total >= 0")
        if not self.lease_s > 0 or not self.strike_limit > 0 or not self.strike_half_life_s > 0:
            raise ConfigError("offer limits: lease_s, strike_limit and strike_half_life_s must be > 0")
        if self.max_requesters < 1:
            raise ConfigError("offer limits: max_requesters must be >= 1")

    @classmethod
    def for_slots(cls, max_delegated: int, lease_s: float) -> "OfferLimits":
        """The defaults for an executor taking ``max_delegated`` delegated requests at once:
        twice that many open offers, half of ``max_delegated`` (at least 1) per funded requester,
        1 per unfunded one and half (at least 1) for all unfunded requesters together. (A
        front-door node probing us for many users at once meets the per-requester bound: its
        requester treats "too many open offers" as *busy*, see
        :func:`~wwwserve_p2p.core.dispatch.is_busy_refusal`; 4 x / 2 x ``max_delegated`` were
        tried and undid the stake steering that relies on it.)"""
        m = max(1, max_delegated)
        return cls(max_open=2 * m, per_funded=max(1, m // 2), per_unfunded=1, unfunded_total=max(1, m // 2),
                   lease_s=lease_s)


@dataclass
class _Requester:
    open: int = 0
    funded_open: int = 0
    score: float = 0.0
    at: float = 0.0          # when ``score`` was last brought up to date


@dataclass(frozen=True, slots=True)
class Lease:
    """One granted offer: ``requester``, whether it counted as ``funded``, and when it ends."""

    lease_id: int
    requester: str
    funded: bool
    expires: float


@dataclass
class OfferBook:
    """Open offers of one executor (see the module docstring)."""

    limits: OfferLimits = field(default_factory=OfferLimits)
    _reqs: dict[str, _Requester] = field(default_factory=dict)
    _leases: dict[int, Lease] = field(default_factory=dict)
    _next: int = 0
    _unfunded_open: int = 0
    #: outcomes so far: granted, committed, withdrawn, expired, and refusals by reason
    counts: dict[str, int] = field(default_factory=lambda: {"granted": 0, "committed": 0, "withdrawn": 0,
                                                              "expired": 0, "refused_full": 0,
                                                              "refused_per_requester": 0, "refused_unfunded": 0,
                                                              "refused_strikes": 0, "refused_requesters": 0})

    # ------------------------------------------------------------ views
    @property
    def open(self) -> int:
        """Offers open now."""
        return len(self._leases)

    def full(self) -> bool:
        """Whether no new offer can be granted to anyone (``max_open`` reached)."""
        return len(self._leases) >= self.limits.max_open

    def score(self, requester: str, now: float) -> float:
        """``requester``'s decayed strike score at ``now``."""
        r = self._reqs.get(requester)
        return 0.0 if r is None else self._decayed(r, now)

    def open_of(self, requester: str) -> int:
        r = self._reqs.get(requester)
        return 0 if r is None else r.open

    def _decayed(self, r: _Requester, now: float) -> float:
        if r.score <= 0:
            return 0.0
        return r.score * math.pow(0.5, max(0.0, now - r.at) / self.limits.strike_half_life_s)

    # ------------------------------------------------------------ granting
    def check(self, requester: str, funded: bool, now: float) -> str:
        """Why an offer to ``requester`` would be refused now ("" = it would be granted)."""
        lim = self.limits
        r = self._reqs.get(requester)
        if r is not None and self._decayed(r, now) >= lim.strike_limit:
            return "requester let too many offers expire without a decision"
        if len(self._leases) >= lim.max_open:
            return "too many open offers"
        n = r.open if r is not None else 0
        if funded:
            if n >= lim.per_funded:
                return "too many open offers for this requester"
        else:
            if n >= lim.per_unfunded:
                return "too many open offers for this requester without a payment channel toward us"
            if self._unfunded_open >= lim.unfunded_total:
                return "too many open offers to requesters without a payment channel toward us"
        if r is None and len(self._reqs) >= lim.max_requesters and not self._evict(now):
            return "too many requesters with open offers"
        return ""

    def grant(self, requester: str, funded: bool, now: float) -> Lease | str:
        """Grant an offer to ``requester`` (``funded``: it has locked credit toward us): the
        :class:`Lease`, or the reason it is refused (a string)."""
        why = self.check(requester, funded, now)
        if why:
            self.note_refusal(why)
            return why
        r = self._reqs.get(requester)
        if r is None:
            r = self._reqs[requester] = _Requester(at=now)
        r.open += 1
        if funded:
            r.funded_open += 1
        else:
            self._unfunded_open += 1
        self._next += 1
        lease = Lease(self._next, requester, funded, now + self.limits.lease_s)
        self._leases[lease.lease_id] = lease
        self.counts["granted"] += 1
        return lease

    def note_refusal(self, why: str) -> None:
        """Count a refusal that :meth:`check` gave (:meth:`grant` counts its own)."""
        key = {"too many open offers": "refused_full",
               "too many requesters with open offers": "refused_requesters"}.get(why)
        if key is None:
            key = ("refused_strikes" if why.startswith("requester let") else
                   "refused_unfunded" if "without a payment channel" in why else "refused_per_requester")
        self.counts[key] += 1

    def _evict(self, now: float) -> bool:
        """Forget the requester without open offers with the lowest score (True if one was)."""
        idle = [(self._decayed(r, now), k) for k, r in self._reqs.items() if r.open == 0]
        if not idle:
            return False
        del self._reqs[min(idle)[1]]
        return True

    # ------------------------------------------------------------ ending leases
    def end(self, lease: Lease, outcome: str, now: float) -> None:
        """``lease`` ended: ``outcome`` is "committed", "withdrawn" or "expired" (the requester
        sent no decision within the lease, or garbage: one strike). Ending a lease twice is a
        no-op."""
        if outcome not in ("committed", "withdrawn", "expired"):
            raise ValueError(f"unknown lease outcome {outcome!r}")
        if self._leases.pop(lease.lease_id, None) is None:
            return
        self.counts[outcome] += 1
        if not lease.funded:
            self._unfunded_open -= 1
        r = self._reqs.get(lease.requester)
        if r is None:
            return
        r.open -= 1
        if lease.funded:
            r.funded_open -= 1
        if outcome == "expired":
            r.score = self._decayed(r, now) + 1.0
            r.at = now
        elif r.open == 0 and self._decayed(r, now) < 0.01:
            del self._reqs[lease.requester]

    def expired(self, now: float) -> list[Lease]:
        """Leases past their end at ``now`` (the caller ends them with "expired")."""
        return [lease for lease in self._leases.values() if lease.expires <= now]

    def view(self, now: float) -> dict[str, object]:
        """Counters and limits (``/status``)."""
        return {"open": len(self._leases), "unfunded_open": self._unfunded_open, "requesters": len(self._reqs),
                "struck": sum(1 for r in self._reqs.values() if self._decayed(r, now) >= self.limits.strike_limit),
                "max_open": self.limits.max_open, **self.counts}


__all__ = ["Lease", "OfferBook", "OfferLimits"]
