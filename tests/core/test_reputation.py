"""Local reputation (issue 15 item 7): decaying penalties, who is left out of a decision, the
bound on peers remembered, and the first-token deadline from an advertised speed. Pure."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wwwserve_p2p.core.reputation import PENALTIES, Reputation, ReputationConfig, first_token_deadline
from wwwserve_p2p.errors import ConfigError


def test_a_timeout_penalises_for_a_decaying_period():
    rep = Reputation(ReputationConfig(half_life_s=60.0, threshold=0.5))
    assert not rep.penalised("p", 0.0)
    rep.record("p", "timeout", 0.0)
    assert rep.penalised("p", 0.0) and rep.score("p", 0.0) == PENALTIES["timeout"]
    assert rep.until("p", 0.0) == pytest.approx(120.0)  # 2 -> 0.5 in two half-lives
    assert rep.penalised("p", 119.0) and not rep.penalised("p", 121.0)
    assert rep.score("p", 60.0) == pytest.approx(1.0)


def test_repeated_offences_compound():
    rep = Reputation()
    rep.record("p", "timeout", 0.0)
    first = rep.until("p", 0.0)
    t = first + 1.0  # released, then fails again
    rep.record("p", "timeout", t)
    assert rep.until("p", t) > first


def test_cheap_events_alone_do_not_keep_a_peer_out_long():
    rep = Reputation()
    rep.record("p", "declined", 0.0)  # one refused commit: a race, not a lie
    assert not rep.penalised("p", 0.0)
    rep.record("p", "declined", 0.0)
    assert rep.penalised("p", 0.0) and rep.until("p", 0.0) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        rep.record("p", "bogus", 0.0)


def test_rank_leaves_penalised_peers_out_only_while_another_remains():
    rep = Reputation()
    rep.record("bad", "timeout", 0.0)
    assert rep.rank(["bad", "good"], 1.0) == {"bad"}
    assert rep.rank(["bad"], 1.0) == set()  # a penalised peer is better than none
    assert rep.rank(["bad", "good"], 1.0, exclude=["good"]) == set()  # good already failed this request
    assert rep.rank(["bad", "good"], 1000.0) == set()  # decayed
    # never herd: at least ``keep`` eligible candidates remain, the worst are left out first
    rep.record("worse", "timeout", 1.0)
    rep.record("worse", "timeout", 1.0)
    assert rep.rank(["bad", "worse", "good", "fine"], 1.0, keep=3) == {"worse"}
    assert rep.rank(["bad", "worse", "good", "fine"], 1.0, keep=2) == {"worse", "bad"}
    assert rep.rank(["bad", "worse", "good"], 1.0, keep=3) == set()


def test_peers_remembered_are_bounded_and_the_worst_are_kept():
    rep = Reputation(ReputationConfig(max_peers=8))
    for i in range(100):
        rep.record(f"p{i}", "declined", float(i))
    rep.record("worst", "timeout", 100.0)
    assert len(rep) <= 8 and rep.penalised("worst", 100.0)
    assert rep.view(100.0)["remembered"] <= 8
    with pytest.raises(ConfigError):
        ReputationConfig(max_peers=0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.sampled_from(sorted(PENALTIES)), st.floats(0, 30)), max_size=100))
def test_scores_never_grow_without_events_and_the_bound_holds(events):
    rep = Reputation(ReputationConfig(max_peers=5))
    now = 0.0
    for peer, kind, dt in events:
        before = {p: rep.score(p, now) for p in list(rep._peers)}
        now += dt
        for p, s in before.items():
            assert rep.score(p, now) <= s + 1e-9
        rep.record(f"p{peer}", kind, now)
        assert len(rep) <= 5


def test_first_token_deadline_follows_the_advertised_speed():
    assert first_token_deadline(2.0, 60.0) == pytest.approx(3.25)   # 1.5 x 2 s + 0.25 s
    assert first_token_deadline(0.01, 60.0) == 0.5                  # floor
    assert first_token_deadline(100.0, 60.0) == 60.0                # the configured ceiling
    assert first_token_deadline(0.0, 60.0) == 60.0                  # unknown speed
    assert first_token_deadline(math.nan, 60.0) == 60.0
    assert first_token_deadline(-1.0, 60.0) == 60.0
    # the Done-when budget: for TTFTs of 1 s and more the wait before re-dispatch leaves at least
    # 0.25 s of the 2x-TTFT budget for the re-dispatch itself (below ~0.5 s the slack dominates)
    for t in (1.0, 2.0, 5.0, 20.0):
        assert first_token_deadline(t, 60.0) <= 2 * t - 0.25
