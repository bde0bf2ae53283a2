"""The request path's pure state machine (core/dispatch.py), without trio or a network."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wwwserve_p2p.core.dispatch import (
    Candidate,
    Dispatch,
    DispatchLimits,
    DispatchView,
    GiveUp,
    Probe,
    RunLocal,
    Variates,
    VoidTicket,
    Wait,
    continuation_request,
)
from wwwserve_p2p.core.policy import OffloadPolicy
from wwwserve_p2p.core.types import GenerationChunk, GenerationRequest, Usage

ME = "12D3KooWme"
PEERS = [f"12D3KooWp{i}" for i in range(5)]
U0 = Variates(offload=0.0, queue=0.0, duel=0.99, seed=7)


def req(**kw) -> GenerationRequest:
    return GenerationRequest("r1", "m", prompt="hello world", max_tokens=kw.pop("max_tokens", 10), **kw)


def view(peers=PEERS, *, load=0.9, serves=True, in_debt=False, debtors=()) -> DispatchView:
    return DispatchView(tuple(Candidate(p, 1_000_000, 0.1, p in debtors) for p in peers), load, serves, in_debt, -5)


def dispatch(policy=OffloadPolicy(), **limits) -> Dispatch:
    return Dispatch(req(), ME, policy, DispatchLimits(**limits))


def test_runs_locally_below_target_load():
    assert dispatch().next(view(load=0.1), U0) == RunLocal(req())


def test_loaded_node_probes_stake_ordered_candidates():
    a = dispatch().next(view(load=0.9), U0)
    assert isinstance(a, Probe) and len(a.peers) == 3 and set(a.peers) <= set(PEERS)
    assert not a.duel and a.attempt == 0


def test_a_model_we_do_not_serve_is_always_offloaded():
    assert isinstance(dispatch().next(view(load=0.0, serves=False), U0), Probe)


def test_debtors_and_the_route_are_never_candidates():
    d = Dispatch(req(route=(PEERS[0],)), ME, OffloadPolicy(probe_extra=10), DispatchLimits())
    a = d.next(view(debtors={PEERS[1]}), U0)
    assert isinstance(a, Probe) and set(a.peers) == set(PEERS[2:])


def test_in_debt_runs_locally_or_gives_up():
    assert dispatch().next(view(in_debt=True), U0) == RunLocal(req())
    a = dispatch().next(view(in_debt=True, serves=False), U0)
    assert isinstance(a, GiveUp) and "in debt" in a.message and "-5" in a.message


def test_duel_only_on_a_first_attempt_with_two_candidates():
    u = replace(U0, duel=0.1)
    assert dispatch(duel_rate=0.5).next(view(), u).duel
    assert not dispatch(duel_rate=0.5).next(view(PEERS[:1]), u).duel
    assert not dispatch(duel_rate=0.05).next(view(), u).duel


def test_nobody_accepting_queues_locally_when_we_serve_the_model():
    d = dispatch()
    assert isinstance(d.next(view(), U0), Probe)
    assert d.probed(None, view_serves=True) == RunLocal(req())


def test_nobody_accepting_waits_excludes_the_probed_and_finally_gives_up():
    d = dispatch(max_retries=2, retry_delay=0.25)
    first = d.next(view(serves=False), U0)
    assert d.probed(None, view_serves=False) == Wait(0.25)
    second = d.next(view(serves=False), U0)
    assert isinstance(second, Probe) and not set(second.peers) & set(first.peers)  # the other two
    assert d.probed(None, view_serves=False) == Wait(0.25)
    third = d.next(view(serves=False), U0)  # all five probed: nobody left to exclude, probe again
    assert isinstance(third, Probe)
    assert d.probed(None, view_serves=False) == Wait(0.25)
    a = d.next(view(serves=False), U0)
    assert isinstance(a, GiveUp) and "no peer accepted" in a.message


def test_no_candidate_and_not_served_retries_then_gives_up():
    d = dispatch(max_retries=1)
    assert d.next(view([], serves=False), U0) == Wait(0.2)
    assert d.next(view([], serves=False), U0) == Wait(0.2)
    assert isinstance(d.next(view([], serves=False), U0), GiveUp)


def test_policy_retry_route_waits():
    pol = OffloadPolicy(offload_frequency=0.0, queue_frequency=0.0)
    assert dispatch(pol).next(view(), U0) == Wait(0.2)


def test_failure_mid_answer_redispatches_a_continuation_and_voids_the_ticket():
    d = dispatch(max_attempts=3)
    a = d.next(view(), U0)
    assert d.probed(a.peers[0], view_serves=True) is None
    d.started(remote=True)
    for w in ("hello ", "there "):
        assert d.chunk(GenerationChunk(w)) == GenerationChunk(w)
    void, again = d.failed(a.peers[0], "eof", retryable=True)
    assert void == VoidTicket(a.peers[0]) and again
    assert d.request.continuation == "hello there " and d.request.max_tokens == 8
    assert a.peers[0] in d.request.route and d.attempt == 1 and d.first_route == "offloaded"
    b = d.next(view(load=0.0), U0)  # after a failure: offload even when idle, never to the failed peer
    assert isinstance(b, Probe) and a.peers[0] not in b.peers and not b.duel
    final = d.chunk(GenerationChunk("end", "stop", Usage(2, 1)))
    assert final.usage == Usage(2, 3)  # tokens of the failed attempt count


def test_non_retryable_and_local_failures_are_not_redispatched():
    d = dispatch()
    assert d.failed(PEERS[0], "invalid_request", retryable=False) == (VoidTicket(PEERS[0]), False)
    assert d.failed(None, "boom", retryable=True) == (None, False)


def test_attempt_budget_is_enforced():
    d = dispatch(max_attempts=2)
    for _ in range(2):
        a = d.next(view(), U0)
        d.probed(a.peers[0], True)
        d.failed(a.peers[0], "timeout", retryable=True)
    a = d.next(view(), U0)
    assert isinstance(a, GiveUp) and "all 2 attempts failed" in a.message and "timeout" in a.message


def test_continuation_request_keeps_budget_and_route():
    r = continuation_request(req(max_tokens=3, continuation="a "), "b c d ", 5, PEERS[2])
    assert (r.continuation, r.max_tokens, r.route) == ("a b c d ", 1, (PEERS[2],))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.booleans(), st.booleans()), max_size=40),
       st.integers(0, 5), st.booleans(), st.floats(0, 2))
def test_any_run_ends_and_never_probes_the_route_or_itself(steps, n_peers, serves, load):
    """Whatever the variates and outcomes, the machine terminates within its budget and never
    proposes the requester, a debtor, or a peer that already failed the request."""
    limits = DispatchLimits(max_attempts=3, max_retries=3)
    d = Dispatch(req(), ME, OffloadPolicy(), limits)
    peers = PEERS[:n_peers]
    failed: set[str] = set()
    bound = limits.max_attempts * (limits.max_retries + 2) + 2
    for i in range(bound):
        u, accept, fail = steps[i % len(steps)] if steps else (0.5, False, False)
        a = d.next(view(peers, load=load, serves=serves, debtors={PEERS[4]}), Variates(u, u, u, i))
        if isinstance(a, (GiveUp, RunLocal)):
            break
        if isinstance(a, Wait):
            continue
        assert ME not in a.peers and PEERS[4] not in a.peers and not failed & set(a.peers)
        if not accept:
            after = d.probed(None, serves)
            if isinstance(after, RunLocal):
                break
            continue
        d.probed(a.peers[0], serves)
        if not fail:
            break
        failed.add(a.peers[0])
        d.failed(a.peers[0], "eof", retryable=True)
    else:
        pytest.fail("the dispatch did not end within its budget")
