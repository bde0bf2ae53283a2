"""Late binding, acceptance by capacity and the proof-of-stake choice among acceptors (issue 12),
as pure code: core/dispatch.py (Dispatch.reoffer/choose, WaitQueue), core/selection.py
(offer_weights, choose_offer), core/policy.py (decide_accept). No trio, no network."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wwwserve_p2p.core.dispatch import (
    Candidate,
    Dispatch,
    DispatchLimits,
    DispatchView,
    OfferView,
    Probe,
    QueueFull,
    RunLocal,
    Variates,
    WaitQueue,
)
from wwwserve_p2p.core.policy import OffloadPolicy, decide_accept, expected_load_after
from wwwserve_p2p.core.selection import choose_offer, expected_latency, offer_weights
from wwwserve_p2p.core.types import GenerationRequest, LoadSnapshot

ME = "12D3KooWme"
PEERS = [f"12D3KooWp{i}" for i in range(5)]
U = Variates(offload=0.0, queue=0.0, duel=0.99, seed=3)


def req(rid="r1", **kw) -> GenerationRequest:
    return GenerationRequest(rid, "m", prompt="hello", max_tokens=kw.pop("max_tokens", 10), **kw)


def view(peers=PEERS, *, load=1.5, spare=1, in_debt=False) -> DispatchView:
    return DispatchView(tuple(Candidate(p, 1_000_000, 0.2, False, spare) for p in peers), load, True, in_debt)


# ---------------------------------------------------------------- choice among acceptors

def test_weights_reduce_to_stake_when_acceptors_are_equal():
    assert offer_weights([1, 2, 4, 8], [0.7] * 4) == [1, 2, 4, 8]
    assert offer_weights([1, 2, 4, 8], [0.0] * 4) == [1, 2, 4, 8]  # no estimates: stake only
    assert offer_weights([0, 0], [1.0, 1.0]) == [1, 1]  # nobody staked: uniform


def test_slower_acceptors_weigh_less_and_exponent_zero_is_stake_only():
    w = offer_weights([4, 4, 4], [1.0, 2.0, 4.0], tau=0.5, exponent=2.0)
    assert w[0] == 4 and w[0] > w[1] > w[2] > 0
    assert w[1] == pytest.approx(4 * (1.5 / 2.5) ** 2)
    assert offer_weights([4, 4, 4], [1.0, 2.0, 4.0], exponent=0.0) == [4, 4, 4]
    with pytest.raises(ValueError):
        offer_weights([1], [1.0, 2.0])
    with pytest.raises(ValueError):
        offer_weights([1], [1.0], tau=0.0)


def test_expected_latency_is_ttft_plus_tokens_times_tpot():
    assert expected_latency(0.25, 0.01, 100) == pytest.approx(1.25)
    assert expected_latency(float("nan"), -1.0, 100) == 0.0


def test_stake_proportional_choice_among_equal_acceptors_chi_square():
    """Seeded draws among four equal acceptors staking 1/2/4/8: the counts fit p = stake / 15
    (chi-square, 3 degrees of freedom, critical value 16.27 at p = 0.001)."""
    stakes = [1, 2, 4, 8]
    rng = random.Random(12)
    n = 30_000
    counts = Counter(choose_offer(stakes, [0.5] * 4, rng.random()) for _ in range(n))
    expected = [n * s / sum(stakes) for s in stakes]
    chi2 = sum((counts[i] - e) ** 2 / e for i, e in enumerate(expected))
    assert chi2 < 16.27, (counts, chi2)
    assert counts[3] >= 3 * counts[0]


def test_newcomers_win_only_through_the_exploration_share():
    rng = random.Random(5)
    picks = Counter(choose_offer([5, 0], [1.0, 1.0], rng.random(), rng.random(), exploration_share=0.1)
                    for _ in range(5000))
    assert 350 < picks[1] < 650  # ~10 %
    assert choose_offer([0, 0], [2.0, 1.0], 0.99) in (0, 1)
    assert choose_offer([], [], 0.5) is None


def test_dispatch_choose_uses_stake_and_latency_and_baselines_use_their_order():
    d = Dispatch(req(), ME, OffloadPolicy(), DispatchLimits())
    offers = [OfferView(PEERS[0], 1, 0.1, 0.01), OfferView(PEERS[1], 1_000_000, 0.1, 0.01)]
    assert Counter(d.choose(offers, i / 100) for i in range(100))[PEERS[1]] >= 99
    d2 = Dispatch(req(), ME, OffloadPolicy(selection="random"), DispatchLimits())
    probe = d2.next(view(load=0.9), U)
    assert isinstance(probe, Probe)
    first = probe.peers[0]
    offers = [OfferView(p, 1_000_000) for p in probe.peers]
    assert d2.choose(list(reversed(offers)), 0.5) == first  # the strategy's own order, not stake


# ---------------------------------------------------------------- acceptance by capacity

def test_accepts_by_capacity_not_only_when_idle():
    p = OffloadPolicy()
    assert decide_accept(LoadSnapshot(2, 0, 4), 1, True, p, 0.1) == (True, "")  # half full: accept
    assert decide_accept(LoadSnapshot(3, 0, 4), 1, True, p, 0.1) == (True, "")  # last slot
    assert decide_accept(LoadSnapshot(3, 0, 4), 1, True, p, 0.1, held=1)[1] == "overloaded"
    assert decide_accept(LoadSnapshot(0, 0, 4), 0, True, p, 0.1, users_waiting=1)[1] == "overloaded"
    half = OffloadPolicy(accept_load=0.5)
    assert decide_accept(LoadSnapshot(1, 0, 4), 0, True, half, 0.1) == (True, "")  # 2/4 after
    assert decide_accept(LoadSnapshot(2, 0, 4), 0, True, half, 0.1)[1] == "overloaded"  # 3/4 after
    assert decide_accept(LoadSnapshot(0, 0, 4), 4, True, p, 0.1)[1] == "max delegated concurrency reached"
    assert decide_accept(LoadSnapshot(0, 0, 4), 0, True, OffloadPolicy(accept_frequency=0.5), 0.7)[0] is False
    assert expected_load_after(LoadSnapshot(1, 1, 4), 1) == 1.0
    assert expected_load_after(LoadSnapshot(0, 0, 4, kv_usage=0.9)) == 0.9


# ---------------------------------------------------------------- re-offers

def test_reoffer_probes_only_peers_with_spare_capacity_off_the_route():
    d = Dispatch(req(route=(PEERS[0],)), ME, OffloadPolicy(probe_extra=10), DispatchLimits())
    cands = view().candidates[:3] + (Candidate(PEERS[3], 1_000_000, 1.0, False, 0),)
    a = d.reoffer(DispatchView(cands, 1.5, True), U)
    assert isinstance(a, Probe) and set(a.peers) == {PEERS[1], PEERS[2]} and not a.duel
    d.reoffered(None)
    assert d._decisions == 0  # re-offers spend no retry budget
    assert d.reoffer(view(spare=0), U) is None
    assert d.reoffer(view(in_debt=True), U) is None


def test_a_request_the_offload_draw_queued_is_not_reoffered():
    d = Dispatch(req(), ME, OffloadPolicy(offload_frequency=0.5), DispatchLimits())
    assert d.next(view(load=0.9), Variates(0.9, 0.0, 0.99, 1)) == RunLocal(req())  # draw 0.9 >= 0.5: queue
    assert not d.may_reoffer and d.reoffer(view(), U) is None
    d2 = Dispatch(req(), ME, OffloadPolicy(), DispatchLimits())
    assert isinstance(d2.next(view(load=0.9), U), Probe)
    assert d2.probed(None, True) == RunLocal(req())  # nobody accepted: waits, still offloadable
    assert d2.may_reoffer and isinstance(d2.reoffer(view(), U), Probe)


def test_wait_queue_is_fifo_bounded_and_each_request_leaves_once():
    q = WaitQueue(limit=3)
    for rid in ("a", "b", "c"):
        q.add(rid)
    with pytest.raises(QueueFull):
        q.add("d")
    with pytest.raises(ValueError):
        q.add("a")
    assert q.to_offer(2) == ["a", "b"] and q.to_offer(5) == ["c"]  # each offered once at a time
    assert q.start_local(1) == ["a"]
    assert not q.claim_remote("a")  # started locally: its offer is withdrawn
    seq_b = q.seq("b")
    assert q.claim_remote("b") and not q.claim_remote("b")
    q.restore("b", seq_b)  # its commit was never delivered
    assert q.waiting() == ["b", "c"]
    assert q.cancel("c") and not q.cancel("c")
    assert q.start_local(5) == ["b"] and len(q) == 0


# ---------------------------------------------------------------- the whole life of requests

EVENT = st.one_of(
    st.tuples(st.just("arrive")),
    st.tuples(st.just("free")),
    st.tuples(st.just("finish"), st.integers(0, 50)),
    st.tuples(st.just("reoffer"), st.integers(0, 50), st.sets(st.integers(0, 4), max_size=5), st.booleans(),
              st.floats(0, 0.999)),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(EVENT, min_size=1, max_size=60), st.integers(1, 3))
def test_every_request_ends_once_and_withdrawn_offers_are_never_paid(events, capacity):
    """A model of the requester driving Dispatch + WaitQueue through random arrivals, freed slots,
    re-offers (some acceptors, a commit that may not be delivered), finishes and cancellations.
    Every request ends with exactly one answer (local or from one peer) or one cancellation; a
    ticket exists only for a claimed commit; a ticket is paid only for an answer its executor
    gave, and never when it was voided; offers that were not chosen get no ticket."""
    policy = OffloadPolicy()
    q = WaitQueue(limit=16)
    ds: dict[str, Dispatch] = {}
    state: dict[str, str] = {}            # rid -> waiting | local | remote:<peer> | done | cancelled
    tickets: dict[str, tuple[str, str]] = {}  # ticket id -> (rid, peer)
    voided: set[str] = set()
    paid: set[str] = set()
    answers: Counter = Counter()
    free = capacity
    rng_ids = iter(range(10_000))

    def running() -> list[str]:
        return sorted(r for r, s in state.items() if s == "local" or s.startswith("remote:"))

    for ev in events:
        kind = ev[0]
        if kind == "arrive":
            rid = f"r{next(rng_ids)}"
            ds[rid] = Dispatch(req(rid), ME, policy, DispatchLimits())
            action = ds[rid].next(view(load=1.5), U)
            assert isinstance(action, Probe)  # loaded: offload first
            assert ds[rid].probed(None, True) == RunLocal(ds[rid].request)  # nobody took it
            if free > 0 and not len(q):
                free -= 1
                state[rid] = "local"
            else:
                try:
                    q.add(rid, ds[rid].may_reoffer)
                    state[rid] = "waiting"
                except QueueFull:
                    state[rid] = "cancelled"  # refused at once with an error
        elif kind == "free":
            for rid in q.start_local(free):
                assert state[rid] == "waiting"
                state[rid] = "local"
                free -= 1
        elif kind == "finish":
            live = running()
            if live:
                rid = live[ev[1] % len(live)]
                if state[rid] == "local":
                    free += 1
                else:
                    peer = state[rid].split(":", 1)[1]
                    t = next(t for t, (r, p) in tickets.items() if r == rid and p == peer and t not in voided)
                    paid.add(t)
                answers[rid] += 1
                state[rid] = "done"
        elif kind == "reoffer":
            offerable = q.to_offer(len(q))
            if not offerable:
                continue
            rid = offerable[ev[1] % len(offerable)]
            for other in offerable:  # only one offer per event: the others answer at once
                if other != rid:
                    q.offer_done(other)
            d = ds[rid]
            probe = d.reoffer(view(), U)
            if probe is None:
                q.offer_done(rid)
                continue
            accepted = [OfferView(p, 1_000_000 * (i + 1), 0.1 * i) for i, p in enumerate(probe.peers) if i in ev[2]]
            chosen = d.choose(accepted, ev[4])
            if chosen is not None and q.claim_remote(rid):
                t = f"t{next(rng_ids)}"
                tickets[t] = (rid, chosen)
                if ev[3]:  # the commit was delivered
                    state[rid] = f"remote:{chosen}"
                else:  # never delivered: void, back in the queue
                    voided.add(t)
                    q.restore(rid, 0)
            q.offer_done(rid)
            d.reoffered(chosen if rid not in q and state[rid].startswith("remote") else None)
        elif kind == "cancel":
            waiting = q.waiting()
            if waiting:
                rid = waiting[ev[1] % len(waiting)]
                assert q.cancel(rid)
                state[rid] = "cancelled"
        assert free >= 0 and free + sum(1 for s in state.values() if s == "local") == capacity
        assert set(q.waiting()) == {r for r, s in state.items() if s == "waiting"}
    # drain: free every slot and finish everything
    while running() or len(q):
        for rid in running():
            if state[rid] == "local":
                free += 1
            else:
                peer = state[rid].split(":", 1)[1]
                paid.add(next(t for t, (r, p) in tickets.items() if r == rid and p == peer and t not in voided))
            answers[rid] += 1
            state[rid] = "done"
        for rid in q.start_local(free):
            state[rid] = "local"
            free -= 1
    assert all(s in ("done", "cancelled") for s in state.values())
    assert all(answers[r] == (1 if s == "done" else 0) for r, s in state.items())  # exactly one answer
    assert not (paid & voided)  # a withdrawn (voided) commit is never paid
    for t in paid:
        rid, peer = tickets[t]
        assert state[rid] == "done"
    # at most one paid ticket per request, and only requests answered remotely have one
    assert max(Counter(tickets[t][0] for t in paid).values(), default=0) <= 1
