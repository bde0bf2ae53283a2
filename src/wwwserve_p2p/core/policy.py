"""A provider's policy: when to offload its users' requests and when to accept peers' work.

Semantics from the WWW.Serve paper (Wang et al., CMU 2026, §3) as summarised in DESIGN §5:
run a request locally while the executor's load is under ``target_load``; otherwise offload
with probability ``offload_frequency``, else queue it locally with probability
``queue_frequency``, else retry the decision later. A queued request stays offloadable until it
starts (late binding, :class:`~wwwserve_p2p.core.dispatch.WaitQueue`) unless it was queued
because the ``offload_frequency`` draw said no.

Acceptance by capacity (issue 12): a node accepts a delegation probe with probability
``accept_frequency`` while the expected load after accepting, ``max((busy + 1) / capacity,
kv_usage)``, stays at or below ``accept_load`` (default 1.0: while a slot is free), none of its own
users is waiting for a slot (a hot spot declines at once), and fewer than ``max_delegated``
delegated requests are held. ``busy`` counts the sequences running or queued on the executor and
the slots held for accepted offers. Pure: the caller passes uniform variates.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..errors import ConfigError
from .types import LoadSnapshot


class Route(str, Enum):
    LOCAL = "local"
    OFFLOAD = "offload"
    QUEUE = "queue"      # run locally although loaded (waits for a slot)
    RETRY = "retry"      # decide again after a short delay


@dataclass(frozen=True, slots=True)
class OffloadPolicy:
    """Provider policy. Frequencies are probabilities in [0, 1]; ``target_load`` is a load
    level (1.0 = executor full); ``stake`` is in micro-credits; counts are requests;
    ``selection``: how executors are chosen among eligible peers (``stake`` = WWW.Serve's
    stake-weighted sampling; ``random`` and ``p2c`` = evaluation baselines, see
    :func:`wwwserve_p2p.core.selection.order_candidates`)."""

    target_load: float = 0.5
    offload_frequency: float = 1.0
    queue_frequency: float = 1.0
    accept_frequency: float = 1.0
    max_delegated: int = 4
    participate: bool = True
    probe_extra: int = 2
    exploration_share: float = 0.1
    stake: int = 1_000_000
    stake_policy: str = "fixed"
    selection: str = "stake"
    #: accept delegated work while the expected load after accepting is <= this (1.0 = a slot is free)
    accept_load: float = 1.0
    #: s to wait, after the first acceptance, for the other probed peers' offers before choosing
    offer_window: float = 0.05
    #: latency weighting of the choice among acceptors (core.selection.offer_weights): tau in s, exponent
    latency_tau: float = 0.5
    latency_exponent: float = 2.0
    #: s between re-offers of the requests waiting in our queue (also on peers' capacity announcements)
    reoffer_interval: float = 0.25

    def __post_init__(self) -> None:
        for name in ("offload_frequency", "queue_frequency", "accept_frequency", "exploration_share"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"policy.{name} must be in [0, 1], got {v}")
        if not self.target_load >= 0:
            raise ConfigError("policy.target_load must be >= 0")
        if not self.accept_load >= 0 or not self.offer_window >= 0 or not self.reoffer_interval > 0:
            raise ConfigError("policy.accept_load and offer_window must be >= 0, reoffer_interval > 0")
        if not self.latency_tau > 0 or not self.latency_exponent >= 0:
            raise ConfigError("policy.latency_tau must be > 0 and latency_exponent >= 0")
        if self.max_delegated < 0 or self.probe_extra < 0 or self.stake < 0:
            raise ConfigError("policy.max_delegated, probe_extra and stake must be >= 0")
        if self.selection not in ("stake", "random", "p2c"):
            raise ConfigError(f"policy.selection must be 'stake', 'random' or 'p2c', got {self.selection!r}")
        if self.stake_policy not in ("fixed", "auto"):
            raise ConfigError(f"policy.stake_policy must be 'fixed' or 'auto', got {self.stake_policy!r}")


def decide_route(load: float, policy: OffloadPolicy, can_offload: bool, u_offload: float, u_queue: float) -> Route:
    """Where a user's request goes.

    ``load``: the executor's load now; ``can_offload``: some eligible peer exists and we
    may offload (participating, not in debt); ``u_offload``, ``u_queue``: uniform variates.
    """
    if load < policy.target_load:
        return Route.LOCAL
    if can_offload and policy.participate and u_offload < policy.offload_frequency:
        return Route.OFFLOAD
    if u_queue < policy.queue_frequency:
        return Route.QUEUE
    return Route.RETRY


def expected_load_after(load: LoadSnapshot, held: int = 0) -> float:
    """The load after accepting one more request: ``max((running + queued + held + 1) /
    capacity, kv_usage)``; ``held`` = slots reserved but not yet running on the executor (offers
    accepted, local starts)."""
    return max((load.running + load.queued + max(0, held) + 1) / max(1, load.capacity), load.kv_usage)


def decide_accept(
    load: LoadSnapshot,
    delegated_running: int,
    serves_model: bool,
    policy: OffloadPolicy,
    u_accept: float,
    *,
    held: int = 0,
    users_waiting: int = 0,
) -> tuple[bool, str]:
    """Whether to accept a delegation probe: (accepted, reason if refused).

    ``load``: our executor's snapshot; ``delegated_running``: delegated requests we execute or
    have offered to execute; ``held``: slots reserved on top of ``load`` (see
    :func:`expected_load_after`); ``users_waiting``: our own users' requests waiting for a slot.
    Acceptance by capacity: see the module docstring.
    """
    if not policy.participate:
        return False, "not participating"
    if not serves_model:
        return False, "model not served"
    if delegated_running >= policy.max_delegated:
        return False, "max delegated concurrency reached"
    if users_waiting > 0 or load.queued > 0 or expected_load_after(load, held) > policy.accept_load \
            or load.idle_slots - max(0, held) <= 0:
        return False, "overloaded"
    if u_accept >= policy.accept_frequency:
        return False, "declined by accept_frequency"
    return True, ""


#: The automatic stake policy's range and speed (paper: 0..4 units, at most 2 units per second).
AUTO_STAKE_UNITS = 4
AUTO_STAKE_RATE = 2.0


def stake_target(policy: OffloadPolicy, load: LoadSnapshot, current_stake: int, elapsed_s: float) -> int:
    """The stake (micro-credits) the node should hold now.

    ``fixed``: ``policy.stake``. ``auto`` (the WWW.Serve paper's policy): stake follows idle
    capacity, ``round(4 * idle_fraction)`` units of ``policy.stake / 4``, moving from
    ``current_stake`` by at most 2 units per second of ``elapsed_s``. A node that does not
    participate stakes nothing.
    """
    if not policy.participate:
        return 0
    if policy.stake_policy == "fixed":
        return policy.stake
    unit = policy.stake // AUTO_STAKE_UNITS
    if unit <= 0:
        return 0
    idle = 0.0 if load.capacity <= 0 else max(0.0, min(1.0, load.idle_slots / load.capacity))
    want = round(AUTO_STAKE_UNITS * idle) * unit
    step = max(1, int(AUTO_STAKE_RATE * max(0.0, elapsed_s))) * unit
    return max(current_stake - step, min(current_stake + step, want))


def plan_stake(balance: int, stake: int, equivocated: bool, matured: int, target: int,
               provable: int | None = None) -> list:
    """Ledger entries that move an account's stake toward ``target`` (micro-credits).

    ``balance``/``stake``: the account now; ``matured``: its unbonding credit that may be
    withdrawn now; ``provable``: the credit its own chain proves (``Ledger.provable``; the
    solvency rule refuses a Stake beyond it), None for no such bound; an equivocated account
    plans nothing. Returns :class:`Withdraw` of the matured credit first, then one
    :class:`Stake` (bounded by ``min(balance, provable)`` + matured) or :class:`Unstake`; empty
    when nothing is to be done.
    """
    from .ledger import Stake, Unstake, Withdraw

    if equivocated:
        return []
    out: list = []
    if matured > 0:
        out.append(Withdraw(matured))
    available = (balance if provable is None else min(balance, provable)) + max(0, matured)
    if target > stake:
        amount = min(target - stake, max(0, available))
        if amount > 0:
            out.append(Stake(amount))
    elif target < stake:
        out.append(Unstake(stake - target))
    return out
