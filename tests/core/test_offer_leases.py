"""The executor's offer book (issue 15, "offers cost something"): leases, per-requester limits,
the unfunded share and strikes for leases left to expire. Pure, clock passed in."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wwwserve_p2p.core.offers import Lease, OfferBook, OfferLimits
from wwwserve_p2p.errors import ConfigError


def book(**kw) -> OfferBook:
    return OfferBook(OfferLimits(**{"max_open": 8, "per_funded": 2, "per_unfunded": 1, "unfunded_total": 2,
                                    "lease_s": 5.0, "strike_limit": 3.0, "strike_half_life_s": 60.0, **kw}))


def test_defaults_follow_max_delegated():
    lim = OfferLimits.for_slots(4, 5.0)
    assert (lim.max_open, lim.per_funded, lim.per_unfunded, lim.unfunded_total) == (8, 2, 1, 2)
    assert OfferLimits.for_slots(0, 5.0).max_open == 2
    with pytest.raises(ConfigError):
        OfferLimits(max_open=0)


def test_a_squatter_without_locked_credit_holds_one_offer_and_sybils_hold_the_unfunded_share():
    b = book()
    assert isinstance(b.grant("squat", False, 0.0), Lease)
    assert "without a payment channel" in b.grant("squat", False, 0.0)
    assert isinstance(b.grant("sybil1", False, 0.0), Lease)
    assert "without a payment channel" in b.grant("sybil2", False, 0.0)  # the share is full
    # funded requesters still get offers: the squatters hold 2 of 8
    for r in ("honest1", "honest2"):
        assert isinstance(b.grant(r, True, 0.0), Lease)
        assert isinstance(b.grant(r, True, 0.0), Lease)
        assert "for this requester" in b.grant(r, True, 0.0)
    assert isinstance(b.grant("honest3", True, 0.0), Lease)
    assert isinstance(b.grant("honest3", True, 0.0), Lease)
    assert b.open == 8 and b.full()
    assert b.grant("honest4", True, 0.0) == "too many open offers"
    assert b.counts["refused_unfunded"] == 2 and b.counts["refused_per_requester"] == 2


def test_ending_a_lease_frees_its_place_once():
    b = book()
    lease = b.grant("r", False, 0.0)
    assert isinstance(lease, Lease) and lease.expires == 5.0
    b.end(lease, "withdrawn", 1.0)
    b.end(lease, "withdrawn", 1.0)  # twice: no-op
    assert b.open == 0 and b.open_of("r") == 0 and b.counts["withdrawn"] == 1
    assert isinstance(b.grant("r", False, 1.0), Lease)
    with pytest.raises(ValueError):
        b.end(lease, "bogus", 1.0)


def test_expired_leases_strike_the_requester_until_the_score_decays():
    b = book()
    now = 0.0
    for _ in range(4):  # back to back (each decays a little before the next)
        lease = b.grant("squat", True, now)
        assert isinstance(lease, Lease)
        now = lease.expires
        assert b.expired(now) == [lease]
        b.end(lease, "expired", now)
    assert b.score("squat", now) == pytest.approx(3.68, rel=0.02)
    assert b.grant("squat", True, now).startswith("requester let too many offers expire")
    assert b.view(now)["struck"] == 1
    assert isinstance(b.grant("other", True, now), Lease)  # nobody else is affected
    later = now + 60.0  # one half-life: 1.5 < 3
    assert b.score("squat", later) == pytest.approx(b.score("squat", now) / 2)
    assert isinstance(b.grant("squat", True, later), Lease)


def test_honest_outcomes_never_strike():
    b = book()
    for i in range(100):
        lease = b.grant("honest", True, float(i))
        b.end(lease, "committed" if i % 2 else "withdrawn", float(i) + 0.1)
    assert b.score("honest", 100.0) == 0.0 and b.open == 0


def test_requesters_remembered_are_bounded():
    b = book(max_requesters=4, max_open=100, unfunded_total=100)
    for i in range(4):
        lease = b.grant(f"s{i}", False, 0.0)
        b.end(lease, "expired", 5.0)
    assert isinstance(b.grant("new", False, 5.0), Lease)  # an idle entry was evicted
    assert b.view(5.0)["requesters"] <= 4
    held = [b.grant(f"h{i}", False, 5.0) for i in range(3)]
    assert all(isinstance(x, Lease) for x in held)
    assert b.grant("one-too-many", False, 5.0) == "too many requesters with open offers"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.booleans(), st.sampled_from(
    ("grant", "committed", "withdrawn", "expired")), st.floats(0, 10)), max_size=200))
def test_invariants_hold_for_any_sequence(ops):
    b = book(max_requesters=4)
    leases: list[Lease] = []
    now = 0.0
    for who, funded, op, dt in ops:
        now += dt
        if op == "grant":
            got = b.grant(who, funded, now)
            if isinstance(got, Lease):
                leases.append(got)
        elif leases:
            b.end(leases.pop(0), op, now)
        lim = b.limits
        assert b.open <= lim.max_open
        assert b._unfunded_open <= lim.unfunded_total
        assert len(b._reqs) <= lim.max_requesters
        for who2 in "abcdef":
            assert b.open_of(who2) <= lim.per_funded
        assert sum(r.open for r in b._reqs.values()) == b.open
