"""The request path as a pure state machine (DESIGN §5): where one user request runs.

A :class:`Dispatch` is created per user request. The requester service asks it
:meth:`Dispatch.next` for the next action, performs that action (I/O), and reports back what
happened (:meth:`Dispatch.probed`, :meth:`Dispatch.chunk`, :meth:`Dispatch.failed`). The
machine owns every decision: run locally, probe these peers (and whether as a duel), wait and
decide again, re-dispatch with the text already delivered as continuation, void the ticket of
a failed attempt, or give up with an error. It never does I/O, reads no clock and draws no
randomness: views of the peer table and ledger and the uniform variates are arguments.

Semantics (the WWW.Serve paper's offload policy, :func:`~wwwserve_p2p.core.policy.decide_route`):

- a node in debt, or unable to afford the ticket (balance - price < -overdraft), may not
  offload: it runs the request locally if it serves the model, else gives up;
- the first attempt follows the policy (local while the load is under ``target_load``, else
  offload with ``offload_frequency``, queue with ``queue_frequency``, else retry later);
  after a failure, or for a model we do not serve, any eligible peer is probed;
- candidates are alive peers serving the model, not in debt, not on the request's route
  (the requester and every peer that failed it), only those whose status announces spare
  capacity when there are any; ``1 + probe_extra`` are ordered by
  :func:`~wwwserve_p2p.core.selection.order_candidates`;
- nobody accepting: queue locally if we serve the model, else wait ``retry_delay`` and
  decide again (the probed peers are excluded when others remain), at most
  ``max_retries + 1`` decisions per attempt;
- an attempt failing mid-answer is re-dispatched (at most ``max_attempts`` attempts) with the
  delivered text as ``continuation``; its ticket is voided.

Late binding (issue 12, DESIGN §5): a :class:`RunLocal` request that finds no free local slot
waits in the requester's :class:`WaitQueue`, oldest first, and stays offloadable until it starts:
on a peer's capacity announcement or the periodic re-dispatch tick the requester asks
:meth:`Dispatch.reoffer` for a :class:`Probe` of peers with spare capacity. Whatever starts first
wins (:meth:`WaitQueue.start_local` for a freed local slot, :meth:`WaitQueue.claim_remote` before
a commit is sent); the other side is withdrawn: offers not committed get ``commit=false`` and no
ticket exists for them, a commit that could not be delivered has its ticket voided.

Choice among acceptors (proof of stake): every probed peer that accepts states its expected TTFT
and time per token in its Offer; :meth:`Dispatch.choose` draws one with probability proportional
to ``stake x ((L_min + tau) / (L + tau)) ** exponent``
(:func:`~wwwserve_p2p.core.selection.offer_weights`), which is proportional to stake when the
acceptors are equal.

Busy refusals (stake under concurrency): a probed peer may refuse only because its *open offers*
are full (offers other requests accepted and have not decided on yet; they hold no slot and are
settled within ``offer_window``): :func:`is_busy_refusal`. Such a peer is about to accept again, so
it is not treated as unavailable: the requester reports it with :meth:`Dispatch.busy`, the draw of
:meth:`Dispatch.choose` runs over the acceptors *and* the busy peers, and when it lands on a busy
peer every offer is withdrawn and the request decides again after a short wait
(:meth:`Dispatch.probed` returns ``Wait(busy_wait)``; at most :data:`MAX_BUSY_WAITS` times per
request, then the acceptors alone are drawn from). Busy peers are never excluded from later
probes. Only for requests we cannot queue ourselves (a model we do not serve, or an attempt after
a failure, for a model we do not serve): a request for a model we serve takes any acceptor, on its
first offload and on re-offers from our queue (late binding) alike. Measured in
``benchmarks/slo_attainment.py --sweep --virtual`` (the source serves the model, 2.5x its capacity):
with busy waits there too, stakes 1/2/4/8 got 66/78/120/86, 43/93/77/134, 62/85/70/135 (3 repeats)
instead of 39/73/98/143, 41/66/105/143, 30/81/104/134 without: waiting for a busy peer competed with
the local queue and the late re-offers. Without this, concurrent requests of one requester filled the open offers of the
high-stake peers (the executor bounds them per requester), whoever was left accepted and won, and
stakes 1/2/4/8 got 100/37/22/41 of 200 requests sent 8 at a time (echo executors, in-memory
overlay, ``tests/memory/test_stake_concurrency.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Union

from .policy import OffloadPolicy, Route, decide_route

#: A refusal whose reason starts with this says only that the peer's open offers are full
#: (:class:`~wwwserve_p2p.core.offers.OfferBook`'s refusals all do): transient, see :func:`is_busy_refusal`.
BUSY_REFUSAL_PREFIX = "too many open offers"
#: Times one request waits for a busy peer its stake draw chose, before drawing among acceptors only.
MAX_BUSY_WAITS = 3


def is_busy_refusal(reason: str) -> bool:
    """Whether a probe's refusal ``reason`` means only "my open offers are full right now" (the peer's
    slots may be free; its offers settle within an offer window), as opposed to a refusal for
    capacity, policy, debt or the request itself."""
    return reason.startswith(BUSY_REFUSAL_PREFIX)
from .selection import choose_offer, expected_latency, order_candidates
from .types import GenerationChunk, GenerationRequest, Usage


@dataclass(frozen=True, slots=True)
class DispatchLimits:
    """Retry budget of one request: ``max_attempts`` executors tried (re-dispatch after
    failures), ``max_retries`` extra decisions per attempt when nobody accepts,
    ``retry_delay`` seconds between them; ``duel_rate`` = probability that a first offload
    with at least two candidates is a duel (DESIGN §6)."""

    max_attempts: int = 4
    max_retries: int = 20
    retry_delay: float = 0.2
    duel_rate: float = 0.0


@dataclass(frozen=True, slots=True)
class Candidate:
    """A peer as the requester sees it: ``stake`` (selectable, micro-credits) from its ledger
    view, ``load`` in [0, 1+] from the peer's last status, ``in_debt`` from the ledger."""

    peer_id: str
    stake: int
    load: float
    in_debt: bool = False
    #: delegated requests the peer's last status says it can take now (0: not accepting)
    spare: int = 1


@dataclass(frozen=True, slots=True)
class OfferView:
    """An accepting peer's Offer as the requester sees it: ``stake`` (micro-credits) from the
    ledger view, ``ttft_s`` and ``s_per_token`` (its estimates, 0 = unknown), ``load``."""

    peer_id: str
    stake: int
    ttft_s: float = 0.0
    s_per_token: float = 0.0
    load: float = 0.0


@dataclass(frozen=True, slots=True)
class DispatchView:
    """What the requester knows at one decision point: ``candidates`` = alive peers serving
    the model (the machine filters route and debt), ``local_load`` = our executor's load,
    ``serves`` = we serve the model ourselves, ``in_debt`` = we may not offload (in debt, or
    unable to afford the ticket)."""

    candidates: tuple[Candidate, ...]
    local_load: float
    serves: bool
    in_debt: bool = False
    balance: int = 0


@dataclass(frozen=True, slots=True)
class Variates:
    """Uniform variates in [0, 1) for one decision, and a seed for candidate ordering."""

    offload: float
    queue: float
    duel: float
    seed: int


@dataclass(frozen=True, slots=True)
class RunLocal:
    """Run ``request`` on our own executor."""

    request: GenerationRequest


@dataclass(frozen=True, slots=True)
class Probe:
    """Probe ``peers`` (in this order of preference) for ``request``; commit to the first to
    accept, or to the first two with a duel ticket when ``duel``. Report with :meth:`Dispatch.probed`."""

    request: GenerationRequest
    peers: tuple[str, ...]
    duel: bool
    attempt: int


@dataclass(frozen=True, slots=True)
class Wait:
    """Sleep ``seconds``, then ask :meth:`Dispatch.next` again."""

    seconds: float


@dataclass(frozen=True, slots=True)
class VoidTicket:
    """Void the ticket of the failed or cancelled attempt at ``peer``: never claimable."""

    peer: str


@dataclass(frozen=True, slots=True)
class GiveUp:
    """No executor can be found: fail the request with :class:`~wwwserve_p2p.errors.NoExecutorAvailable`."""

    message: str


Action = Union[RunLocal, Probe, Wait, GiveUp]


@dataclass
class Dispatch:
    """The state of one user request on its requester node (``me``). See the module docstring."""

    original: GenerationRequest
    me: str
    policy: OffloadPolicy
    limits: DispatchLimits
    #: the request the next attempt sends (a continuation after failures)
    request: GenerationRequest = field(init=False)
    attempt: int = field(init=False, default=0)
    #: "local" or "offloaded": where the first attempt ran (None before it started)
    first_route: str | None = field(init=False, default=None)
    delivered: str = field(init=False, default="")
    chunks_delivered: int = field(init=False, default=0)
    last_error: str = field(init=False, default="")
    _decisions: int = field(init=False, default=0)
    _exclude: set[str] = field(init=False)
    _extra_tokens: int = field(init=False, default=0)
    _probing: tuple[tuple[str, ...], int] | None = field(init=False, default=None)
    #: late binding: whether the request may be re-offered while it waits for a local slot
    #: (False once the policy's offload draw sent it to the local queue)
    may_reoffer: bool = field(init=False, default=True)
    #: commits refused by an executor whose slots filled while we chose (decided again, not failed)
    commit_refusals: int = field(init=False, default=0)
    #: times the stake draw chose a busy peer and the request decided again (at most MAX_BUSY_WAITS)
    busy_waits: int = field(init=False, default=0)
    #: busy refusals of the current probe (peer -> its Offer as seen), see :meth:`busy`
    _busy: dict[str, OfferView] = field(init=False, default_factory=dict)
    _busy_chosen: bool = field(init=False, default=False)
    _take_any: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.request = self.original
        self._exclude = set(self.original.route) | {self.me}

    # ------------------------------------------------------------ deciding
    def next(self, view: DispatchView, u: Variates) -> Action:
        """The next action for this request, given what we know now."""
        req = self.request
        if self.attempt >= self.limits.max_attempts:
            return GiveUp(f"{self.original.request_id}: all {self.limits.max_attempts} attempts failed; "
                          f"last error: {self.last_error}")
        if view.in_debt:
            if view.serves:
                return RunLocal(req)
            return GiveUp(f"{req.request_id}: this node is in debt or cannot afford the ticket and may not "
                          f"offload (balance {view.balance} micro-credits)")
        if self._decisions > self.limits.max_retries:
            if view.serves:
                return RunLocal(req)
            return GiveUp(f"no peer accepted {req.request_id} for model {req.model!r}")
        cands = [c for c in view.candidates if c.peer_id not in self._exclude and not c.in_debt]
        if self.attempt > 0 or not view.serves:
            route = Route.OFFLOAD if cands else (Route.LOCAL if view.serves else Route.RETRY)
        else:
            route = decide_route(view.local_load, self.policy, bool(cands), u.offload, u.queue)
            if route is Route.QUEUE and cands:  # the offload_frequency draw said: queue here
                self.may_reoffer = False
        if route in (Route.LOCAL, Route.QUEUE):
            return RunLocal(req)
        if route is Route.OFFLOAD:
            # peers whose last status announces spare capacity first: probe only them when any
            cands = [c for c in cands if c.spare > 0] or cands
            order = order_candidates(self.policy.selection, {c.peer_id: c.stake for c in cands},
                                     {c.peer_id: c.load for c in cands}, 1 + self.policy.probe_extra,
                                     u.seed, self.policy.exploration_share)
            duel = self.attempt == 0 and len(order) >= 2 and u.duel < self.limits.duel_rate
            # busy peers count only when we cannot queue the request ourselves (see the module docstring)
            self._start_probe(tuple(order), len(cands), take_any=view.serves)
            return Probe(req, tuple(order), duel, self.attempt)
        self._decisions += 1
        return Wait(self.limits.retry_delay)

    def reoffer(self, view: DispatchView, u: Variates) -> Probe | None:
        """Late binding: a new offer for this request while it waits in our queue, to up to
        ``1 + probe_extra`` peers whose status announces spare capacity (not on the route, not
        in debt), stake-ordered like a first offload; None when there is none or we may not
        offload. Report the outcome with :meth:`reoffered`."""
        if view.in_debt or not self.policy.participate or self.attempt >= self.limits.max_attempts \
                or not self.may_reoffer or self.policy.offload_frequency <= 0:
            return None
        cands = [c for c in view.candidates if c.peer_id not in self._exclude and not c.in_debt and c.spare > 0]
        if not cands:
            return None
        order = order_candidates(self.policy.selection, {c.peer_id: c.stake for c in cands},
                                 {c.peer_id: c.load for c in cands}, 1 + self.policy.probe_extra,
                                 u.seed, self.policy.exploration_share)
        self._start_probe(tuple(order), len(cands), take_any=True)
        return Probe(self.request, tuple(order), False, self.attempt)

    def _start_probe(self, order: tuple[str, ...], n_cands: int, take_any: bool = False) -> None:
        self._probing = (order, n_cands)
        self._busy = {}
        self._busy_chosen = False
        self._take_any = take_any

    def busy(self, offer: OfferView) -> bool:
        """A peer of the current probe refused only because its open offers are full
        (:func:`is_busy_refusal`); ``offer`` carries its stake and speed as for an acceptor.
        Returns whether it was recorded: not when the probe is for a model we serve (first offload
        or re-offer from our queue: it takes any acceptor; waiting for a busy peer there competed
        with our queue, and on re-offers kept requests and offers cycling while the executors
        idled) nor for a peer outside the current probe."""
        if self._probing is None or self._take_any or offer.peer_id not in self._probing[0]:
            return False
        self._busy[offer.peer_id] = offer
        return True

    def has_busy(self) -> bool:
        """Whether a peer of the current probe refused as busy (then :meth:`choose` is needed even
        for a single acceptor)."""
        return bool(self._busy)

    def reoffered(self, winner: str | None) -> None:
        """Outcome of a :meth:`reoffer` probe: committed to ``winner``, or (None) nobody took it
        (or the stake draw chose a busy peer) and the request keeps waiting (no retry budget is
        spent)."""
        self._probing = None
        self._busy = {}
        self._busy_chosen = False

    def choose(self, offers: "tuple[OfferView, ...] | list[OfferView]", u: float, u_explore: float = 1.0) -> str | None:
        """The acceptor to commit to among ``offers`` (proof of stake, see the module
        docstring); None when there is none. ``u``, ``u_explore``: uniform variates. Under
        ``selection = "stake"`` the draw includes the probe's busy peers (:meth:`busy`) while
        ``busy_waits < MAX_BUSY_WAITS``: the result is then a busy peer's id (no acceptor: withdraw
        every offer and report ``probed(None, ...)``, which waits :attr:`busy_wait` s)."""
        if not offers:
            return None
        if self.policy.selection != "stake":  # baselines: their own order decides, stake plays no part
            order = self._probing[0] if self._probing else ()
            rank = {p: i for i, p in enumerate(order)}
            return min(offers, key=lambda o: (rank.get(o.peer_id, len(rank)), o.peer_id)).peer_id
        pool = list(offers)
        if self._busy and self.busy_waits < MAX_BUSY_WAITS:  # busy peers take part in the draw
            taken = {o.peer_id for o in offers}
            pool += [b for p, b in self._busy.items() if p not in taken]
        lat = [expected_latency(o.ttft_s, o.s_per_token, self.request.max_tokens) for o in pool]
        i = choose_offer([o.stake for o in pool], lat, u, u_explore,
                         exploration_share=self.policy.exploration_share, tau=self.policy.latency_tau,
                         exponent=self.policy.latency_exponent)
        if i is None:
            return None
        if i >= len(offers):  # a busy peer won the draw: withdraw every offer, decide again shortly
            self.busy_waits += 1
            self._busy_chosen = True
        return pool[i].peer_id

    def probed(self, winner: str | None, view_serves: bool) -> Action | None:
        """Report the outcome of the last :class:`Probe`: ``winner`` committed (None = nobody
        accepted). Returns None when the attempt is committed to ``winner``, else the action
        that follows (queue locally, or wait and decide again)."""
        order, n_cands = self._probing or ((), 0)
        self._probing = None
        busy, self._busy = self._busy, {}
        chose_busy, self._busy_chosen = self._busy_chosen, False
        if winner is not None:
            return None
        if chose_busy:  # the stake draw chose a peer whose open offers were full: it frees up shortly
            return Wait(self.busy_wait)
        if view_serves:
            return RunLocal(self.request)  # nobody took it: queue locally
        if len(order) < n_cands:
            self._exclude |= set(order) - set(busy)  # busy peers stay eligible
        self._decisions += 1
        return Wait(self.limits.retry_delay)

    @property
    def busy_wait(self) -> float:
        """Seconds to wait after the stake draw chose a busy peer: two offer windows (its open
        offers are decided within one), at least 20 ms."""
        return max(0.02, 2 * self.policy.offer_window)

    def commit_refused(self, limit: int = 3) -> bool:
        """The executor refused our commit before any chunk ("overloaded": its slots filled while
        we chose among acceptors). True: decide again as if it had not accepted (no attempt is
        spent, the peer stays eligible); False after ``limit`` refusals: treat it as a failure."""
        if self.chunks_delivered or self.commit_refusals >= limit:
            return False
        self.commit_refusals += 1
        if self.attempt == 0:
            self.first_route = None
        return True

    def started(self, remote: bool) -> None:
        """An attempt started streaming (remote: offloaded, else on our executor)."""
        if self.first_route is None:
            self.first_route = "offloaded" if remote else "local"

    # ------------------------------------------------------------ streaming
    def chunk(self, chunk: GenerationChunk) -> GenerationChunk:
        """Account for one chunk of the current attempt; returns the chunk to deliver (the
        final chunk's usage counts the tokens delivered by earlier, failed attempts)."""
        if chunk.is_final:
            if self._extra_tokens or self.delivered:
                u = chunk.usage or Usage()
                chunk = replace(chunk, usage=replace(u, completion_tokens=u.completion_tokens + self._extra_tokens))
            return chunk
        self.delivered += chunk.text
        self.chunks_delivered += 1
        return chunk

    def failed(self, peer: str | None, error: str, retryable: bool) -> tuple[VoidTicket | None, bool]:
        """The current attempt failed before its final chunk (``peer`` None: our own
        executor). Returns (the ticket to void, whether to re-dispatch); with re-dispatch the
        next :meth:`next` works on the continuation request."""
        void = VoidTicket(peer) if peer is not None else None
        if peer is None or not retryable:
            return void, False
        self.last_error = error
        self._extra_tokens = self.chunks_delivered
        prev_route = self.request.route
        cont = continuation_request(self.original, self.delivered, self.chunks_delivered, peer)
        self.request = replace(cont, route=tuple(dict.fromkeys(cont.route + prev_route)))
        self.attempt += 1
        self._decisions = 0
        self._exclude = set(self.request.route) | {self.me}
        return void, True


class QueueFull(Exception):
    """The wait queue holds ``limit`` requests already."""


@dataclass
class _Waiting:
    seq: int
    offloadable: bool
    offering: bool = False


class WaitQueue:
    """Late binding's bookkeeping: our users' requests waiting for a local slot, oldest first.

    Pure (no I/O, no clock). Each request ends in exactly one of: started locally
    (:meth:`start_local`), claimed by a remote commit (:meth:`claim_remote`), cancelled
    (:meth:`cancel`). A claim whose commit could not be delivered is put back in its place with
    :meth:`restore`. ``limit`` bounds the queue (keys come from our own users' requests).
    """

    def __init__(self, limit: int = 4096):
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self._items: dict[str, _Waiting] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, rid: object) -> bool:
        return rid in self._items

    def add(self, rid: str, offloadable: bool = True) -> None:
        """Queue ``rid`` (``offloadable``: may be offered to peers while it waits).

        :raises QueueFull: ``limit`` requests wait already. :raises ValueError: ``rid`` is queued."""
        if rid in self._items:
            raise ValueError(f"{rid} is queued already")
        if len(self._items) >= self.limit:
            raise QueueFull(f"{self.limit} requests are waiting for a local slot")
        self._seq += 1
        self._items[rid] = _Waiting(self._seq, offloadable)

    def _ordered(self) -> list[tuple[str, _Waiting]]:
        return sorted(self._items.items(), key=lambda kv: kv[1].seq)

    def waiting(self) -> list[str]:
        """Queued request ids, oldest first."""
        return [rid for rid, _ in self._ordered()]

    def to_offer(self, n: int) -> list[str]:
        """Up to ``n`` of the oldest offloadable requests not being offered now; each is marked
        as being offered until :meth:`offer_done`."""
        out = []
        for rid, w in self._ordered():
            if len(out) >= n:
                break
            if w.offloadable and not w.offering:
                w.offering = True
                out.append(rid)
        return out

    def offer_done(self, rid: str) -> None:
        """The offer of ``rid`` was answered (whatever the outcome)."""
        w = self._items.get(rid)
        if w is not None:
            w.offering = False

    def start_local(self, free_slots: int) -> list[str]:
        """The oldest ``free_slots`` requests start on our executor: removed from the queue
        (an offer of theirs still in flight will find them gone and be withdrawn)."""
        out = [rid for rid, _ in self._ordered()[:max(0, free_slots)]]
        for rid in out:
            del self._items[rid]
        return out

    def claim_remote(self, rid: str) -> bool:
        """Before committing ``rid`` to a peer: True (and removed) if it still waits, False if it
        started elsewhere or was cancelled (then withdraw the offers)."""
        return self._items.pop(rid, None) is not None

    def restore(self, rid: str, seq_of: int | None = None) -> None:
        """Put a claimed request back (its commit was never delivered), oldest first again."""
        if rid not in self._items:
            self._items[rid] = _Waiting(seq_of if seq_of is not None else 0, True)

    def seq(self, rid: str) -> int | None:
        w = self._items.get(rid)
        return None if w is None else w.seq

    def cancel(self, rid: str) -> bool:
        """The user went away: forget ``rid``. True if it was waiting."""
        return self._items.pop(rid, None) is not None


def continuation_request(request: GenerationRequest, delivered: str, delivered_chunks: int,
                         failed_peer: str) -> GenerationRequest:
    """The request to re-dispatch after an executor failed mid-answer.

    ``delivered``: text already streamed to the user (becomes the continuation);
    ``delivered_chunks``: chunks already received, subtracted from ``max_tokens`` (each
    streamed chunk carries at least one token); ``failed_peer`` joins the route so it is
    not chosen again.
    """
    remaining = max(1, request.max_tokens - delivered_chunks)
    return replace(request, continuation=request.continuation + delivered, max_tokens=remaining,
                   route=request.route + (failed_peer,))
