"""Busy refusals (issue 12, stake under concurrency): a probed peer whose open offers are full takes part
in the stake draw instead of losing the request to whoever accepted, and is never excluded. Pure code."""

from __future__ import annotations

import random
from collections import Counter

from wwwserve_p2p.core.dispatch import (
    MAX_BUSY_WAITS,
    Candidate,
    Dispatch,
    DispatchLimits,
    DispatchView,
    OfferView,
    Probe,
    Variates,
    Wait,
    is_busy_refusal,
)
from wwwserve_p2p.core.offers import OfferBook, OfferLimits
from wwwserve_p2p.core.policy import OffloadPolicy, decide_accept
from wwwserve_p2p.core.types import GenerationRequest, LoadSnapshot

ME = "12D3KooWme"
PEERS = [f"12D3KooWp{i}" for i in range(4)]
STAKES = {p: (i + 1) * 1_000_000 for i, p in enumerate(PEERS)}  # 1, 2, 3, 4 units


def req() -> GenerationRequest:
    return GenerationRequest("r1", "m", prompt="hello", max_tokens=10)


def view(serves=False) -> DispatchView:
    return DispatchView(tuple(Candidate(p, STAKES[p], 0.2, False, 1) for p in PEERS), 1.5, serves)


def probing(seed=3, serves=False, **policy) -> tuple[Dispatch, Probe]:
    d = Dispatch(req(), ME, OffloadPolicy(probe_extra=3, **policy), DispatchLimits(retry_delay=0.2))
    a = d.next(view(serves), Variates(0.0, 0.0, 0.99, seed))
    assert isinstance(a, Probe) and set(a.peers) == set(PEERS)
    return d, a


def ov(p) -> OfferView:
    return OfferView(p, STAKES[p], 0.1, 0.01)


def test_the_busy_refusals_of_the_offer_book_are_recognised_and_policy_refusals_are_not():
    book = OfferBook(OfferLimits(max_open=1, per_funded=1, per_unfunded=1, unfunded_total=1))
    assert not book.check("a", True, 0.0)
    book.grant("a", True, 0.0)
    reasons = {book.check("a", True, 0.0), book.check("b", False, 0.0), book.check("b", True, 0.0)}
    assert reasons and all(is_busy_refusal(r) for r in reasons), reasons
    book2 = OfferBook(OfferLimits(max_open=4, per_funded=1, per_unfunded=1, unfunded_total=1))
    book2.grant("a", True, 0.0)
    assert is_busy_refusal(book2.check("a", True, 0.0))  # per requester
    for load, kw in ((LoadSnapshot(4, 0, 4), {}), (LoadSnapshot(0, 0, 4), {"users_waiting": 1})):
        accepted, why = decide_accept(load, 0, True, OffloadPolicy(), 0.1, **kw)
        assert not accepted and not is_busy_refusal(why)
    assert not is_busy_refusal("requester in debt") and not is_busy_refusal("model not served")


def test_stake_draw_over_acceptors_and_busy_peers_is_proportional_to_stake():
    # acceptor: 1 unit; busy: 4 units -> the busy peer wins 4/5 of the draws
    rng = random.Random(1)
    wins = Counter()
    for _ in range(5000):
        d, _ = probing()
        d.busy(ov(PEERS[3]))
        assert d.has_busy()
        wins[d.choose([ov(PEERS[0])], rng.random(), rng.random())] += 1
    assert abs(wins[PEERS[3]] / 5000 - 0.8) < 0.03, wins


def test_choosing_a_busy_peer_waits_briefly_without_excluding_it_or_spending_retries():
    d, _ = probing()
    d.busy(ov(PEERS[3]))
    assert d.choose([ov(PEERS[0])], 0.99) == PEERS[3]  # the top of the draw: the busy peer
    assert d.probed(None, view_serves=True) == Wait(d.busy_wait)  # even when we serve the model
    assert d.busy_wait == 0.1 and d.busy_waits == 1 and d._decisions == 0
    again = d.next(view(), Variates(0.0, 0.0, 0.99, 4))
    assert isinstance(again, Probe) and PEERS[3] in again.peers


def test_after_max_busy_waits_the_acceptors_alone_are_drawn_from():
    d, _ = probing()
    for _ in range(MAX_BUSY_WAITS):
        d.busy(ov(PEERS[3]))
        assert d.choose([ov(PEERS[0])], 0.99) == PEERS[3]
        d.probed(None, False)
        d.next(view(), Variates(0.0, 0.0, 0.99, 4))
    d.busy(ov(PEERS[3]))
    assert d.choose([ov(PEERS[0])], 0.99) == PEERS[0]  # no more waiting: the acceptor wins


def test_busy_peers_are_not_excluded_when_nobody_accepts_but_refusers_are():
    d = Dispatch(req(), ME, OffloadPolicy(probe_extra=1), DispatchLimits(retry_delay=0.2))
    first = d.next(view(), Variates(0.0, 0.0, 0.99, 3))
    busy, refuser = first.peers
    d.busy(ov(busy))
    assert d.probed(None, view_serves=False) == Wait(0.2)
    seen = set()
    for seed in range(40):
        a = d.next(view(), Variates(0.0, 0.0, 0.99, seed))
        seen |= set(a.peers)
        d._probing = None
    assert busy in seen and refuser not in seen


def test_busy_reports_outside_the_current_probe_are_ignored_and_baselines_ignore_busy():
    d = Dispatch(req(), ME, OffloadPolicy(probe_extra=0), DispatchLimits())
    a = d.next(view(), Variates(0.0, 0.0, 0.99, 3))
    other = next(p for p in PEERS if p not in a.peers)
    d.busy(ov(other))
    assert not d.has_busy()
    r, _ = probing(selection="random")
    r.busy(ov(PEERS[3]))
    assert r.choose([ov(PEERS[0])], 0.99) == PEERS[0]


def test_reoffers_of_waiting_requests_ignore_busy_peers():
    d = Dispatch(req(), ME, OffloadPolicy(probe_extra=3), DispatchLimits())
    a = d.reoffer(view(serves=True), Variates(0.0, 0.0, 0.99, 3))
    assert isinstance(a, Probe)
    assert d.busy(ov(PEERS[3])) is False and not d.has_busy()
    assert d.choose([ov(PEERS[0])], 0.99) == PEERS[0]  # any acceptor
    d.reoffered(None)
    first, _ = probing()
    assert first.busy(ov(PEERS[3])) is True


def test_a_model_we_serve_takes_any_acceptor_on_its_first_offload_too():
    d = Dispatch(req(), ME, OffloadPolicy(probe_extra=3), DispatchLimits())
    a = d.next(view(serves=True), Variates(0.0, 0.0, 0.99, 3))  # loaded (1.5): offload
    assert isinstance(a, Probe)
    assert d.busy(ov(PEERS[3])) is False
    assert d.choose([ov(PEERS[0])], 0.99) == PEERS[0]
