"""Unbonding against lying block times (issue 18 item 3).

- A **future-dated Unstake** cannot shorten unbonding: its maturity counts from its own
  (later) date, and honest replicas hold it until their clock reaches that date minus the
  tolerance, so a Withdraw is effective no earlier than ``real Unstake time + unbonding - tol``.
- A **future-dated Withdraw** is covered in test_ledger_time.py (held until its date).
- A **back-dated Unstake** can be dated no earlier than the author's previous block (chain
  times are monotone), so an author silent since ``T`` could date an Unstake ``T`` and withdraw
  at ``T + unbonding``: at once after a long silence. Closed by measuring maturity from when
  the replica *first saw* the Unstake, by its own clock (:class:`Ledger`'s docstring): a
  Withdraw is held until ``first sight + unbonding - tol``. The tests below failed on the
  code before (the Withdraw was applied the moment it arrived).

Core never reads a clock: ``now_ms`` is an argument.
"""

from __future__ import annotations

import copy
import hashlib

from hypothesis import example, given, settings
from hypothesis import strategies as st

from wwwserve_p2p.core.ledger import (MAX_CLOCK_SKEW_MS, Genesis, Ledger, LedgerParams, Reason, Stake, Unstake,
                                      Withdraw, build_block)
from wwwserve_p2p.identity import Identity

ID = Identity(hashlib.sha256(b"wwwserve-unbonding-time").digest())
ME = ID.peer_id
UNBONDING = 60_000
G = Genesis("unbonding-net", LedgerParams(unbonding_ms=UNBONDING), ((ME, 100_000),))
NOW = 1_800_000_000_000
TOL = MAX_CLOCK_SKEW_MS


def blk(height: int, prev: str, time_ms: int, entries):
    return build_block(G.network_id, ME, height, prev, time_ms, entries, ID.sign)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10 * UNBONDING), st.integers(0, 3 * UNBONDING), st.integers(0, 3 * UNBONDING))
@example(ahead=0, withdraw_after=UNBONDING, clock_after=UNBONDING)               # honest: applied
@example(ahead=2 * UNBONDING, withdraw_after=UNBONDING, clock_after=UNBONDING)   # the Unstake is held
def test_a_future_dated_unstake_never_shortens_unbonding(ahead, withdraw_after, clock_after):
    """Stake at NOW; an Unstake signed and published at NOW but dated NOW + ``ahead``; a
    Withdraw dated ``withdraw_after`` after NOW + ``ahead``; an honest replica that sees the
    Unstake at NOW (holding it while premature, offering it again at its clock) and everything
    again when its clock reads NOW + ``clock_after``. Whenever the Withdraw is applied, the
    honest clock is past the real Unstake time (NOW) + unbonding - tolerance."""
    led = Ledger(G)
    b1 = blk(1, G.hash, NOW, [Stake(10_000)])
    assert led.add_block(b1, now_ms=NOW).status == "applied"
    u = blk(2, b1.hash, NOW + ahead, [Unstake(4_000)])
    w = blk(3, u.hash, NOW + ahead + withdraw_after, [Withdraw(4_000)])
    led.add_block(u, now_ms=NOW, tolerance_ms=TOL)
    clock = NOW + clock_after
    for b in (u, w, *led.release_unbonding_holds(clock, TOL)):
        res = led.add_block(b, now_ms=clock, tolerance_ms=TOL)
        if res.status not in ("applied", "duplicate"):
            assert res.status in ("premature", "rejected", "pending"), res
    took_effect = led.account(ME).unbonding == 0 and led.height(ME) == 3
    if took_effect:
        assert withdraw_after >= UNBONDING                         # matured by its own (later) date
        assert clock >= NOW + UNBONDING - TOL                       # and not before that by our clock
    if (ahead, withdraw_after, clock_after) == (0, UNBONDING, UNBONDING):
        assert took_effect
    if ahead > clock_after + TOL:
        assert led.height(ME) == 1 and led.account(ME).stake == 10_000   # held: nothing moved yet


@settings(max_examples=80, deadline=None)
@given(silence=st.integers(0, 20 * UNBONDING), late=st.integers(0, 2 * UNBONDING),
       first_look=st.integers(0, 2 * UNBONDING), looks=st.lists(st.integers(0, 3 * UNBONDING), max_size=4),
       same_time=st.booleans())
@example(silence=10 * UNBONDING, late=0, first_look=0, looks=[], same_time=False)   # the attack, at once
@example(silence=10 * UNBONDING, late=0, first_look=UNBONDING - TOL - 1, looks=[], same_time=False)
def test_a_back_dated_unstake_never_shortens_unbonding_by_our_clock(silence, late, first_look, looks, same_time):
    """The author's last block is at NOW; it stays silent for ``silence``, then publishes an
    Unstake back-dated to NOW (the earliest its chain allows) and a Withdraw dated NOW +
    unbonding (matured by the chain's own times) ``late`` after it (or at once). An honest
    replica sees the Unstake when it is published (NOW + silence) and the Withdraw at ``first_look``
    after that, then offers what it holds again at the ``looks`` times. Whenever the Withdraw is
    applied, the replica's clock is at least unbonding - tolerance past the moment the Unstake
    was published: back-dating gains nothing beyond the clock tolerance. Once due, the held
    block is applied, and the state equals a replica folding the same blocks without a clock
    (the fold is a pure function of the block set; only the time of entry depends on the clock)."""
    published = NOW + silence
    led = Ledger(G)
    b1 = blk(1, G.hash, NOW, [Stake(10_000)])
    assert led.add_block(b1, now_ms=NOW).status == "applied"
    u = blk(2, b1.hash, NOW, [Unstake(4_000)])
    w_time = max(NOW + UNBONDING, published + (0 if same_time else late))
    w = blk(3, u.hash, w_time, [Withdraw(4_000)])
    after = blk(4, w.hash, w_time, [Stake(1)])
    assert led.add_block(u, now_ms=published).status == "applied"
    clock = max(published + (0 if same_time else late), published + first_look)
    applied_at = None
    for t in sorted({clock, *(clock + d for d in looks)}):
        due = led.release_unbonding_holds(t, TOL)
        for b in due + [w, after]:   # the service offers premature blocks again too
            res = led.add_block(b, verified=True, now_ms=t, tolerance_ms=TOL)
            assert res.status in ("applied", "pending", "duplicate", "premature"), res
        if applied_at is None and led.height(ME) >= 3:
            applied_at = t
    if applied_at is not None:
        assert applied_at >= published + UNBONDING - TOL              # the bound, by our clock
        assert led.height(ME) == 4                                    # its successor followed
    else:
        assert led.account(ME).unbonding == 4_000 and led.height(ME) == 2
        assert max([clock, *(clock + d for d in looks)]) < max(published + UNBONDING - TOL, w_time - TOL)
    # once our clock is past first sight + unbonding, the held blocks go in
    end = max(published + UNBONDING, w_time)
    for b in led.release_unbonding_holds(end, TOL) + [w, after]:
        led.add_block(b, verified=True, now_ms=end, tolerance_ms=TOL)
    assert led.height(ME) == 4 and led.unbonding_held() == 0
    fresh = Ledger(G)
    for b in (after, w, u, b1):
        fresh.add_block(b)
    assert fresh.state_hash() == led.state_hash()
    assert fresh.recompute_fold().snapshot() == led.recompute_fold().snapshot()


def test_a_back_dated_unstake_is_bounded_by_the_authors_previous_block():
    """The author's last block is at NOW; an Unstake dated before it is refused (time goes
    backwards); dated NOW exactly (the most it can back-date) after 10 x unbonding of silence,
    the chain's own times say a Withdraw dated NOW + unbonding is matured. The replica holds it
    (``pending``, ``unbonding_hold``) until its clock is unbonding - tolerance past its first
    sight of the Unstake. On the code before this rule the Withdraw was applied at once
    (unbonding shortened by all of it); a Withdraw dated before NOW + unbonding is still
    refused by the chain rule."""
    led = Ledger(G)
    b1 = blk(1, G.hash, NOW, [Stake(10_000)])
    assert led.add_block(b1, now_ms=NOW).status == "applied"
    res = Ledger(G)
    res.add_block(b1, now_ms=NOW)
    back = res.add_block(blk(2, b1.hash, NOW - 1, [Unstake(4_000)]), now_ms=NOW + 10 * UNBONDING)
    assert (back.status, back.reason) == ("rejected", Reason.TIME_BACKWARDS)
    u = blk(2, b1.hash, NOW, [Unstake(4_000)])
    silence_end = NOW + 10 * UNBONDING   # when the author really unstakes (its clock)
    assert led.add_block(u, now_ms=silence_end).status == "applied"
    probe = copy.deepcopy(led)   # a refused signed block is remembered: probe on a copy
    early = probe.add_block(blk(3, u.hash, NOW + UNBONDING - 1, [Withdraw(4_000)]), now_ms=silence_end)
    assert (early.status, early.reason) == ("rejected", Reason.NOT_MATURED)
    w = blk(3, u.hash, NOW + UNBONDING, [Withdraw(4_000)])
    held = led.add_block(w, now_ms=silence_end)
    assert (held.status, held.reason) == ("pending", Reason.UNBONDING_HOLD)
    assert led.account(ME).unbonding == 4_000 and led.unbonding_held() == 1
    assert led.summary(accounts=False)["unbonding_held"] == 1
    assert led.add_block(w, now_ms=silence_end + 1).status == "duplicate"
    # the same height signed differently while held: still an equivocation
    fork = blk(3, u.hash, NOW + UNBONDING, [Withdraw(3_999)])
    assert copy.deepcopy(led).add_block(fork, now_ms=silence_end).status == "equivocation"
    assert led.matured_unbonding(ME, silence_end) == 4_000        # the chain rule alone: matured
    assert led.matured_by_sight(ME, silence_end, TOL) == 0        # ours: not yet
    assert led.release_unbonding_holds(silence_end + UNBONDING - TOL - 1, TOL) == []
    due = led.release_unbonding_holds(silence_end + UNBONDING - TOL, TOL)
    assert due == [w]
    assert led.add_block(w, now_ms=silence_end + UNBONDING - TOL).status == "applied"
    assert led.account(ME).unbonding == 0
    # without a clock (own blocks, restore from the store) nothing is held
    plain = Ledger(G)
    for b in (b1, u, w):
        assert plain.add_block(b).status == "applied"


def test_an_unstake_seen_on_time_is_not_held():
    """The honest path: the Unstake is seen when it is made, the Withdraw unbonding later, so
    nothing is held (first sight + unbonding = its maturity)."""
    led = Ledger(G)
    b1 = blk(1, G.hash, NOW, [Stake(10_000)])
    u = blk(2, b1.hash, NOW + 1_000, [Unstake(4_000)])
    w = blk(3, u.hash, NOW + 1_000 + UNBONDING, [Withdraw(4_000)])
    assert led.add_block(b1, now_ms=NOW).status == "applied"
    assert led.add_block(u, now_ms=NOW + 1_000 + TOL // 2).status == "applied"   # a little late
    assert led.add_block(w, now_ms=NOW + 1_000 + UNBONDING).status == "applied"
    assert led.unbonding_held() == 0
