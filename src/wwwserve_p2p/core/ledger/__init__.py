"""The credit ledger: signed per-author block chains and a deterministic, order-independent fold.

Rules: DESIGN §4 (after the WWW.Serve paper, Wang et al., CMU 2026, §3.3 "credit"). Pure: no
I/O, no clock (a caller's clock reading is always an argument, ``now_ms``); times are the
``time_ms`` the authors wrote into their blocks; signatures are checked with
:mod:`wwwserve_p2p.core.crypto`; signing is a callback the caller passes in.

Modules
-------
- :mod:`.codes`: :class:`Reason`, :class:`AddStatus` (StrEnums), signing domains, canonical bytes.
- :mod:`.genesis`: :class:`LedgerParams`, :class:`Genesis` (network id = hash of its canonical bytes).
- :mod:`.signed`: :class:`Ticket`, :class:`DuelTicket`, :class:`Receipt`, :class:`Vote`.
- :mod:`.rules`: the entry protocol (static check, chain check, fold effect) every entry implements.
- :mod:`.entries`: :class:`Stake`, :class:`Unstake`, :class:`Withdraw`, :class:`Transfer`,
  :class:`Claim`, :class:`Void`, :class:`Verdict`, :class:`Receive`; the :data:`ENTRY_TYPES` registry.
- :mod:`.proofs`: :class:`BlockHeader`, :class:`EquivocationProof`.
- :mod:`.blocks`: :class:`Block`, :func:`build_block`, :func:`is_premature`, :data:`MAX_CLOCK_SKEW_MS`.
- :mod:`.duels`: :func:`tally_duel`, :func:`settle_duel`.
- :mod:`.fold`: :class:`Fold` (the state, add/remove entries), :class:`Chain`, :class:`Account`.
- :mod:`.pending`: :class:`PendingBuffer`, the bounded out-of-order buffer.
- :mod:`.replica`: :class:`Ledger` (one node's replica), :class:`AddResult`.

Data
----
- A network is defined by its :class:`Genesis` (name, :class:`LedgerParams`, allocations per
  PeerId, optional ``created_ms``); its *network id* is the hash of the genesis' canonical bytes.
- Each node appends :class:`Block` s to its own chain: ``{network, author, height, prev_hash,
  time_ms, entries, signature}``. Height 1 links to the genesis hash. The block hash is
  SHA-256 of the canonical header (which commits to the entries by their hash); the author
  signs the hash.
- Entries (all amounts integer micro-credits > 0): :class:`Stake`, :class:`Unstake` (moves
  stake to *unbonding*, spendable after ``unbonding_ms``), :class:`Withdraw` (matured
  unbonding back to balance), :class:`Transfer`, :class:`Claim` (an executor's claim backed by
  the requester's signed :class:`Ticket`), :class:`Void` (a requester withdrawing the ticket
  of a failed or cancelled attempt), :class:`Verdict` (duel settlement from a signed
  :class:`DuelTicket`, both executors' :class:`Receipt` s and the judges' :class:`Vote` s) and
  :class:`EquivocationProof`.

Validity depends only on the block, its author's own chain below it, the genesis and
signatures, never on other authors' chains, so every replica accepts the same blocks whatever
the arrival order. Cross-chain effects are resolved in the fold, deterministically:

- a :class:`Void` by the ticket's requester wins over any :class:`Claim` of that ticket;
- an equivocating author counts only below the height where it equivocated, and whatever
  stake and unbonding it holds is burned. Equivocation = two different blocks by one author
  at one height, each with a valid signature, whatever their contents (signing twice is the
  offence, as in other slashing schemes): so the verdict does not depend on which of the two
  arrived first, and a compact :class:`EquivocationProof` (two signed headers) proves it.

Solvency (decidable per chain, so the fold stays order-independent): an author's *provable*
credit is its genesis allocation + Σ own :class:`Claim` amounts + Σ own :class:`Receive`
amounts + Σ own :class:`Withdraw` amounts − Σ own :class:`Stake` amounts − Σ own
:class:`Transfer` amounts (Unstake moves stake to unbonding: no change). A Stake or Transfer
that would take it below ``-overdraft`` makes the block chain-invalid (``insufficient_funds``);
it is kept per chain (``Chain.funds``, undone per block). A Transfer debits its sender; the
recipient is credited only by a :class:`Receive` in its *own* chain carrying the sender's whole
signed block and the Transfer's index (statically self-verifying; each (sender, height, index)
received once per chain). In the fold a Receive counts only while the referenced block (by
hash) is counted; in between the credit is ``in_flight``, so ``allocations = balances + stakes
+ unbonding + in_flight + burned``. A later cut of the sender's block un-credits the recipient
(incrementally, like claims/voids). :meth:`Ledger.spendable` = ``max(0, min(balance,
provable))`` is what services may stake or send.

State = sum of the entries' deltas over every valid block (+ genesis allocations), then the
burns. Balances may go negative: an account whose balance is below ``-overdraft`` is *in
debt* and may neither offload nor be selected (DESIGN §4/§5). Supply is conserved except burns.
The sum is kept incrementally: an equivocation cut subtracts the cut blocks' entries (claims,
voids and verdicts included; claim/void is resolved from the set of present claims and voids),
which equals a fold from scratch of the remaining blocks (:meth:`Ledger.recompute_fold`).

Time rules (a liar cannot bend them beyond the stated bound)
-------------------------------------------------------------
Block times are the author's word; the fold never reads a clock. What bounds a lying author:

1. **Monotone chains.** ``time_ms`` never decreases along a chain (``time_backwards``), and is
   never before the genesis' ``created_ms`` when the genesis sets one (``time_before_genesis``).
2. **No dating before a signature.** A block may not be dated before the ``issued_ms`` of any
   :class:`Ticket` / :class:`DuelTicket` its entries reference (``time_before_issue``), and a
   claim / verdict not after its ``expires_ms`` (``ticket_expired``); ``issued_ms <=
   expires_ms``. So a claim's date lies in the window the *requester* signed. (Legacy tickets
   with ``issued_ms == 0`` are bounded below only by rule 1.)
3. **Future blocks are held, not applied.** :func:`is_premature` (``time_ms > now_ms +
   tolerance_ms``, default :data:`MAX_CLOCK_SKEW_MS`) is the predicate honest services use to
   hold a block until their clock reaches ``time_ms - tolerance_ms``;
   ``Ledger.add_block(..., now_ms=...)`` answers ``premature`` and stores nothing. It is
   monotone in ``now_ms``, so a held block only ever becomes due; the fold itself stays a pure
   function of the block set (a held block, once applied, folds exactly as if never held).
4. **Maturity on the author's clock.** Unbonding matures ``unbonding_ms`` after the block time
   of the Unstake; a ticket expires at its ``expires_ms``; both are compared with the block
   time of the Withdraw / Claim. With (1) and (3): a Withdraw of credit unstaked in a block
   dated ``t_u`` is dated ``>= t_u + unbonding_ms`` and is applied by no honest node whose clock
   reads less than ``t_u + unbonding_ms - tolerance_ms``. A *future-dated* Withdraw therefore
   gains at most ``tolerance_ms`` (+ the honest node's own clock error), and once dated in the
   future the whole chain after it is held too (rule 1).

   Bound, and its limit: ``t_u`` itself is only bounded below by the author's previous block
   time (rule 1). An author that stayed silent for a while can *back-date* an Unstake to its
   previous block time and so shorten the unbonding measured by honest clocks by up to its
   silence. Closing this needs a time witnessed by others (e.g. maturity counted from the
   first honest receipt, or from a later block of another author referencing it), which is a
   service or protocol change, not a fold rule.
"""

from __future__ import annotations

from .blocks import MAX_CLOCK_SKEW_MS, Block, build_block, is_premature
from .codes import (DOMAIN_BLOCK, DOMAIN_DUEL, DOMAIN_RECEIPT, DOMAIN_TICKET, DOMAIN_VOTE, AddStatus,
                    MissingDependency, Reason, Signer, _check_amount, _check_hex, _check_peer, canonical, sha256_hex)
from .duels import (eligible_pool, judge_seed, max_judge_penalty, panel_of, pool_problem, select_judges,
                    settle_duel, settle_tally, tally_duel)
from .entries import (ENTRY_TYPES, Claim, CloseChannel, DuelBond, DuelRelease, Entry, OpenChannel, Receive, Stake,
                      Transfer, Unstake, Verdict, Void, Withdraw, channel_id, duel_deadline, duel_payout,
                      entries_hash)
from .fold import Account, Chain, ChainScratch, ChannelInfo, Fold
from .genesis import Genesis, LedgerParams
from .pending import MAX_PENDING_BLOCKS, MAX_PENDING_BYTES, MAX_PENDING_BYTES_PER_AUTHOR, PendingBuffer
from .proofs import BlockHeader, EquivocationProof
from .replica import AddResult, Ledger
from .signed import VOTE_CHOICES, DuelTicket, Receipt, Ticket, Vote, _Signed

#: the monolithic module's private name for :class:`Chain`
_Chain = Chain

__all__ = [
    "MAX_CLOCK_SKEW_MS", "MAX_PENDING_BLOCKS", "MAX_PENDING_BYTES", "MAX_PENDING_BYTES_PER_AUTHOR",
    "DOMAIN_BLOCK", "DOMAIN_DUEL", "DOMAIN_RECEIPT", "DOMAIN_TICKET", "DOMAIN_VOTE", "ENTRY_TYPES", "VOTE_CHOICES",
    "Account", "AddResult", "AddStatus", "Block", "BlockHeader", "Chain", "ChainScratch", "ChannelInfo", "Claim",
    "CloseChannel", "DuelTicket", "Entry", "EquivocationProof", "Fold", "Genesis", "Ledger", "LedgerParams",
    "MissingDependency", "OpenChannel", "PendingBuffer", "Reason",
    "Receipt", "Receive", "Signer", "Stake", "Ticket", "Transfer", "Unstake", "Verdict", "Void", "Vote", "Withdraw",
    "build_block", "canonical", "channel_id", "entries_hash", "is_premature", "settle_duel", "settle_tally", "sha256_hex",
    "tally_duel", "eligible_pool", "judge_seed", "max_judge_penalty", "panel_of", "pool_problem", "select_judges",
    "DuelBond", "DuelRelease", "duel_deadline", "duel_payout",
]
