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


def _liar_admissions(config: ReputationConfig, horizon: float = 7200.0) -> list[float]:
    """A lying executor (issue 15): three declines to start with, then one decline each time the
    requester re-admits it (checked every second). Returns the times it was re-admitted."""
    rep = Reputation(config)
    for _ in range(3):
        rep.record("liar", "declined", 0.0)
    admitted, t = [], 0.0
    while t < horizon:
        t += 1.0
        if not rep.penalised("liar", t):
            admitted.append(t)
            rep.record("liar", "declined", t)
    return admitted


def test_a_repeat_liar_is_held_out_longer_each_time_up_to_the_bound():
    cfg = ReputationConfig()
    admitted = _liar_admissions(cfg)
    assert admitted[0] == pytest.approx(36.0, abs=1.0)  # the first episode: the score alone (35 s)
    # exclusions (gaps between admissions longer than the 1 s poll): each at least doubles the
    # previous one, until the 30 min bound; a few offers per episode (a decayed score needs 2-3)
    outs = [b - a for a, b in zip(admitted, admitted[1:]) if b - a > 1.5]
    assert len(outs) >= 5
    for g0, g1 in zip(outs, outs[1:]):
        assert g1 >= min(cfg.max_hold_s, 1.9 * g0)
    assert cfg.max_hold_s - 1.0 <= max(outs) <= cfg.max_hold_s + 1.0
    assert len(admitted) <= 3 * (len(outs) + 1) and len(admitted) <= 24
    # without escalation (the old behaviour) the liar is back every 35-60 s
    flat = _liar_admissions(ReputationConfig(escalation=1.0))
    assert len(flat) >= 100 and max(b - a for a, b in zip(flat, flat[1:])) <= 61.0


def test_escalation_is_forgiven_after_a_clean_period_and_shows_in_the_view():
    rep = Reputation()
    rep.record("p", "timeout", 0.0)           # episode 1: out for 120 s by its score
    assert rep.episodes("p") == 1 and rep.until("p", 0.0) == pytest.approx(120.0)
    rep.record("p", "timeout", 121.0)         # episode 2 right after: held 2 x (natural ~120 s)
    assert rep.episodes("p") == 2 and rep.until("p", 121.0) > 200.0
    v = rep.view(130.0)
    assert "p" in v["penalised"] and v["held"]["p"]["episodes"] == 2
    end = 121.0 + rep.until("p", 121.0)
    later = end + ReputationConfig().forgive_s + 1.0   # clean for longer than forgive_s
    assert not rep.penalised("p", later)
    rep.record("p", "timeout", later)
    assert rep.episodes("p") == 1 and rep.until("p", later) == pytest.approx(120.0, abs=0.1)
    with pytest.raises(ConfigError):
        ReputationConfig(escalation=0.5)
    with pytest.raises(ConfigError):
        ReputationConfig(base_hold_s=100.0, max_hold_s=10.0)


def test_slow_first_tokens_never_escalate() -> None:
    # an honest executor on a loaded host misses its derived deadline now and then: each miss is
    # penalised by the decaying score alone, never by an escalated hold
    rep = Reputation(ReputationConfig())
    t, holds = 0.0, []
    for _ in range(6):
        rep.record("busy", "slow", t)
        holds.append(rep.until("busy", t))
        t += holds[-1] + 1.0
        assert not rep.penalised("busy", t)
    # the decaying score alone: one half-life, then the residual score's 1.58 half-lives, never more
    assert holds[0] == pytest.approx(60.0) and all(h == pytest.approx(holds[1]) for h in holds[1:])
    assert holds[1] < 60.0 * math.log2(3)
    assert rep.episodes("busy") == 0
    # the same pattern of declines does escalate
    t = 0.0
    for _ in range(3):
        rep.record("liar", "declined", t)
        rep.record("liar", "declined", t)
        t += rep.until("liar", t) + 1.0
    assert rep.episodes("liar") == 3 and rep.until("liar", t - 1.0) == 0
