"""Unbonding against lying block times (issue 18 item 3, checked with item 4's duel work).

- A **future-dated Unstake** cannot shorten unbonding: its maturity counts from its own
  (later) date, and honest replicas hold it until their clock reaches that date minus the
  tolerance, so a Withdraw is effective no earlier than ``real Unstake time + unbonding - tol``.
- A **future-dated Withdraw** is covered in test_ledger_time.py (held until its date).
- A **back-dated Unstake** can be dated no earlier than the author's previous block (chain
  times are monotone): the known limit is that an author silent since time ``T`` can date an
  Unstake ``T`` and withdraw at ``T + unbonding``, i.e. unbonding shortened by at most its own
  silence. Proven here as a bound; closing it needs a time reference outside the author's
  chain (a first-seen hold on honest nodes, README "block time").

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
    """Stake at NOW; an Unstake signed at NOW but dated NOW + ``ahead``; a Withdraw dated
    ``withdraw_after`` after NOW + ``ahead``; an honest replica whose clock reads NOW +
    ``clock_after``. Whenever the Withdraw is applied, the honest clock is past the real
    Unstake time (NOW) + unbonding - tolerance."""
    led = Ledger(G)
    b1 = blk(1, G.hash, NOW, [Stake(10_000)])
    assert led.add_block(b1, now_ms=NOW).status == "applied"
    u = blk(2, b1.hash, NOW + ahead, [Unstake(4_000)])
    w = blk(3, u.hash, NOW + ahead + withdraw_after, [Withdraw(4_000)])
    clock = NOW + clock_after
    for b in (u, w):
        res = led.add_block(b, now_ms=clock, tolerance_ms=TOL)
        if res.status != "applied":
            assert res.status in ("premature", "rejected", "pending"), res
    took_effect = led.account(ME).unbonding == 0 and led.height(ME) == 3
    if took_effect:
        assert withdraw_after >= UNBONDING                         # matured by its own (later) date
        assert clock >= NOW + UNBONDING - TOL                       # and not before that by our clock
    if (ahead, withdraw_after, clock_after) == (0, UNBONDING, UNBONDING):
        assert took_effect
    if ahead > clock_after + TOL:
        assert led.height(ME) == 1 and led.account(ME).stake == 10_000   # held: nothing moved yet


def test_a_back_dated_unstake_is_bounded_by_the_authors_previous_block():
    """The author's last block is at NOW; an Unstake dated before it is refused (time goes
    backwards). Dated NOW exactly (the most it can back-date), a Withdraw matures at NOW +
    unbonding: the shortening is bounded by the author's own silence since NOW."""
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
    assert led.add_block(w, now_ms=silence_end).status == "applied"
    # the known limit, measured: withdrawn at silence_end, the moment it really unstaked, so
    # unbonding was shortened by min(UNBONDING, silence): never by more than its silence
    shortened = UNBONDING - max(0, NOW + UNBONDING - silence_end)
    assert shortened == UNBONDING <= silence_end - NOW
