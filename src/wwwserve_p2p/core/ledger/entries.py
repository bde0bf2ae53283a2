"""Entry types of a block, each carrying its static check, chain check and fold effect.

All amounts are integer micro-credits in ``[1, 2^62)``. An entry may only debit its author,
unless it carries the counterparty's signature authorising it (tickets, duel receipts, votes).
See :mod:`.rules` for the protocol; :data:`ENTRY_TYPES` is the registry of known types.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from ...errors import InvalidBlock
from .codes import ForkSeen, MissingDependency, Reason, canonical, check_amount, check_hex, check_peer, check_time, sha256_hex
from .duels import panel_of, tally_duel
from .proofs import EquivocationProof
from .rules import EntryRules
from .signed import DuelTicket, Receipt, Ticket, Vote

if TYPE_CHECKING:
    from .blocks import Block
    from .fold import ChainScratch, Fold
    from .genesis import LedgerParams


def _check_window(block: "Block", e: EntryRules, what: str) -> None:
    issued, expires = e.time_window()
    if expires is not None and block.time_ms > expires:
        raise InvalidBlock(Reason.TICKET_EXPIRED, f"{what} expired")
    if block.time_ms < issued:
        raise InvalidBlock(Reason.BEFORE_ISSUE, f"block time {block.time_ms} < {what}'s issue time {issued}")


@dataclass(frozen=True)
class Stake(EntryRules):
    """Move ``amount`` of the author's balance to its stake."""

    amount: int

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "stake", "amount": self.amount}

    def check_static(self, block: "Block", network_id: str) -> None:
        check_amount(self.amount)

    def check_chain(self, s: "ChainScratch") -> None:
        s.spend(self.amount, "stake")
        s.own_stake += self.amount

    def apply(self, author: str, fold: "Fold", params: "LedgerParams", sign: int) -> None:
        fold.add(fold.balance, author, -sign * self.amount)
        fold.add(fold.stake, author, sign * self.amount)
        fold.mention(author, sign)


@dataclass(frozen=True)
class Unstake(EntryRules):
    """Move ``amount`` of the author's own stake (Stake - Unstake on its chain) to unbonding,
    withdrawable ``unbonding_ms`` after this block's time."""

    amount: int

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "unstake", "amount": self.amount}

    def check_static(self, block: "Block", network_id: str) -> None:
        check_amount(self.amount)

    def check_chain(self, s: "ChainScratch") -> None:
        if self.amount > s.own_stake:
            raise InvalidBlock(Reason.UNSTAKE_EXCEEDS_STAKE, f"unstake {self.amount} > staked {s.own_stake}")
        s.own_stake -= self.amount
        s.unbonds.append((s.time_ms + s.unbonding_ms, self.amount))

    def apply(self, author: str, fold: "Fold", params: "LedgerParams", sign: int) -> None:
        fold.add(fold.stake, author, -sign * self.amount)
        fold.add(fold.unbonding, author, sign * self.amount)
        fold.mention(author, sign)


@dataclass(frozen=True)
class Withdraw(EntryRules):
    """Move ``amount`` of matured unbonding (by this block's time) back to the balance."""

    amount: int

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "withdraw", "amount": self.amount}

    def check_static(self, block: "Block", network_id: str) -> None:
        check_amount(self.amount)

    def check_chain(self, s: "ChainScratch") -> None:
        matured = s.matured()
        if self.amount > matured:
            raise InvalidBlock(Reason.NOT_MATURED, f"withdraw {self.amount} > matured unbonding {matured}")
        s.withdrawn += self.amount
        s.funds += self.amount

    def apply(self, author: str, fold: "Fold", params: "LedgerParams", sign: int) -> None:
        fold.add(fold.unbonding, author, -sign * self.amount)
        fold.add(fold.balance, author, sign * self.amount)
        fold.mention(author, sign)


@dataclass(frozen=True)
class Transfer(EntryRules):
    """Pay ``amount`` of the author's balance to ``to`` (never to itself)."""

    to: str
    amount: int

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "transfer", "to": self.to, "amount": self.amount}

    def check_static(self, block: "Block", network_id: str) -> None:
        check_amount(self.amount)
        check_peer(self.to, "transfer recipient")
        if self.to == block.author:
            raise InvalidBlock(Reason.SELF_TRANSFER, "transfer to oneself")

    def check_chain(self, s: "ChainScratch") -> None:
        s.spend(self.amount, "transfer")

    def apply(self, author: str, fold: "Fold", params: "LedgerParams", sign: int) -> None:
        # debits the sender now; the recipient is credited by its Receive (see Fold.send)
        fold.send(fold.at, author, self.to, self.amount, sign)
        fold.mention(author, sign)
        fold.mention(self.to, sign)


@dataclass(frozen=True)
class Claim(EntryRules):
    """The executor's claim. The block must be dated in ``[ticket.issued_ms, ticket.expires_ms]``;
    ``response_digest`` is SHA-256 (hex) of the (latest) response text.

    - **Voucher** (``ticket.channel`` set): ``amount`` is the *cumulative* amount claimed on the
      channel (<= the voucher's ``total`` and the channel's deposit). Chain rule: the channel is
      open in the requester's *accepted* chain toward this executor (else the block waits for
      it: :class:`~.codes.MissingDependency`), the block is dated by the channel's expiry, and
      the voucher's ``seq`` and ``amount`` are above / not below this chain's previous claim on
      it; the provable credit grows by the increase. Fold: the channel pays its latest counted
      claim (see :class:`~.fold.Fold` channels), so credit can never exceed what was locked.
    - **Legacy ticket** (no channel, kept for compatibility): ``amount`` <= ``ticket.price``, one
      claim per ticket, paid in the fold unless voided, but it adds **nothing** to the
      executor's provable credit (no lock backs it), so it can never be staked, sent or locked:
      a requester with nothing cannot mint through a colluding executor."""

    ticket: Ticket
    response_digest: str
    amount: int

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "claim", "ticket": self.ticket.to_canonical(), "response_digest": self.response_digest,
                "amount": self.amount}

    def time_window(self) -> tuple[int, int | None]:
        return self.ticket.issued_ms, self.ticket.expires_ms

    def check_static(self, block: "Block", network_id: str) -> None:
        t = self.ticket
        t.check(network_id)
        if t.executor != block.author:
            raise InvalidBlock(Reason.NOT_TICKET_EXECUTOR, f"ticket {t.request_id} names another executor")
        check_amount(self.amount, "claim amount")
        check_hex(self.response_digest, "response_digest")
        cap = t.total if t.channel else t.price
        if self.amount > cap:
            raise InvalidBlock(Reason.AMOUNT_EXCEEDS_PRICE, f"{self.amount} > {cap}")
        _check_window(block, self, f"ticket {t.request_id}")

    def check_chain(self, s: "ChainScratch") -> None:
        t = self.ticket
        if t.channel:
            info = s.channel(t.requester, t.channel)
            if info is None:
                raise MissingDependency(t.requester, 0, f"channel {t.channel[:16]} not open in our view")
            if info.executor != s.author:
                raise InvalidBlock(Reason.CHANNEL_UNKNOWN, f"channel {t.channel[:16]} is toward another executor")
            if s.time_ms > info.expires_ms:
                raise InvalidBlock(Reason.TICKET_EXPIRED, f"channel {t.channel[:16]} expired")
            seq, amount = s.last_claim(t.channel)
            if t.seq <= seq or self.amount < amount or self.amount > info.deposit:
                raise InvalidBlock(Reason.CHANNEL_CLAIM,
                                   f"claim {t.seq}/{self.amount} after {seq}/{amount} (deposit {info.deposit})")
            s.chan_claims[t.channel] = (t.seq, self.amount)
            s.funds += self.amount - amount
            return
        h = t.hash
        if h in s.chain.claimed or h in s.claimed:
            raise InvalidBlock(Reason.TICKET_CLAIMED, f"ticket {t.request_id} already claimed")
        s.claimed.add(h)

    def apply(self, author: str, fold: "Fold", params: "LedgerParams", sign: int) -> None:
        t = self.ticket
        if t.channel:
            fold.channel_claim(t.channel, t.seq, self.amount, t.hash, author, sign)
            fold.mention(t.requester, sign)
        else:
            fold.claim(t.hash, t.requester, author, self.amount, sign)


@dataclass(frozen=True)
class Void(EntryRules):
    """The requester withdraws ``ticket`` (its attempt failed or was cancelled): a legacy ticket
    is never paid; a claim of that very voucher is paid at most ``total - price`` (the failed
    request excluded; a later voucher, which does not include it, is unaffected)."""

    ticket: Ticket

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "void", "ticket": self.ticket.to_canonical()}

    def time_window(self) -> tuple[int, int | None]:
        return self.ticket.issued_ms, None

    def check_static(self, block: "Block", network_id: str) -> None:
        self.ticket.check(network_id)
        if self.ticket.requester != block.author:
            raise InvalidBlock(Reason.NOT_TICKET_REQUESTER, "only the requester may void its ticket")
        _check_window(block, self, f"ticket {self.ticket.request_id}")

    def check_chain(self, s: "ChainScratch") -> None:
        h = self.ticket.hash
        if h in s.chain.voided or h in s.voided:
            raise InvalidBlock(Reason.TICKET_CLAIMED, f"ticket {self.ticket.request_id} already voided")
        s.voided.add(h)

    def apply(self, author: str, fold: "Fold", params: "LedgerParams", sign: int) -> None:
        t = self.ticket
        if t.channel:
            fold.channel_void(t.channel, t.hash, t.total - t.price, author, sign)
        else:
            fold.void(t.hash, author, sign)


@dataclass(frozen=True)
class Verdict(EntryRules):
    """Settlement of a duel, authored by its requester; see :func:`~.duels.settle_duel`. The
    block must be dated in ``[duel.issued_ms, duel.expires_ms]``."""

    duel: DuelTicket
    receipts: tuple[Receipt, ...]
    votes: tuple[Vote, ...]

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "verdict", "duel": self.duel.to_canonical(),
                "receipts": [r.to_canonical() for r in self.receipts],
                "votes": [v.to_canonical() for v in self.votes]}

    def time_window(self) -> tuple[int, int | None]:
        return self.duel.issued_ms, self.duel.expires_ms

    def panel(self) -> tuple[str, ...]:
        """The duel's judges: drawn from its pool with both receipts (:func:`~.duels.panel_of`;
        cached), or named in the older form. Empty when the receipts are not both there."""
        p = self.__dict__.get("_panel")
        if p is None:
            try:
                p = panel_of(self.duel, self.receipts)
            except ValueError:
                p = ()
            object.__setattr__(self, "_panel", p)
        return p

    def tally(self) -> tuple[str, dict[str, str]]:
        """:func:`~.duels.tally_duel` of this verdict over :meth:`panel` (cached: it verifies
        vote signatures)."""
        t = self.__dict__.get("_tally")
        if t is None:
            t = tally_duel(self.duel, self.votes, self.panel())
            object.__setattr__(self, "_tally", t)
        return t

    def check_static(self, block: "Block", network_id: str) -> None:
        d = self.duel
        d.check(network_id)
        if d.requester != block.author:
            raise InvalidBlock(Reason.NOT_DUEL_REQUESTER, "only the duel's requester settles it")
        if block.time_ms > d.expires_ms:
            raise InvalidBlock(Reason.TICKET_EXPIRED, f"duel {d.duel_id} expired before settlement")
        _check_window(block, self, f"duel {d.duel_id}")
        dh = d.hash
        if {r.executor for r in self.receipts} != set(d.executors) or len(self.receipts) != 2:
            raise InvalidBlock(Reason.RECEIPT_INVALID, "a verdict needs one receipt from each executor")
        for r in self.receipts:
            check_hex(r.response_digest, "receipt response_digest")
            if r.duel_hash != dh or not r.valid():
                raise InvalidBlock(Reason.RECEIPT_INVALID, f"receipt of {r.executor} invalid")
        judges = set(self.panel())   # a verifiable duel's votes come from its drawn panel only
        seen: set[str] = set()
        for v in self.votes:
            if v.judge not in judges or v.judge in seen or v.duel_hash != dh or not v.valid():
                raise InvalidBlock(Reason.VOTE_INVALID, f"vote of {str(v.judge)[:60]} invalid or repeated")
            seen.add(v.judge)

    def check_chain(self, s: "ChainScratch") -> None:
        h = self.duel.hash
        if h in s.chain.settled or h in s.settled:
            raise InvalidBlock(Reason.DUEL_SETTLED, f"duel {self.duel.duel_id} already settled")
        s.settled.add(h)
        s.verdicts[h] = self.tally()[0]

    def apply(self, author: str, fold: "Fold", params: "LedgerParams", sign: int) -> None:
        # counts (stats, judge penalties, the bonds' winner) only once both executors' DuelBonds
        # are counted too: resolved in the fold from the set of bonds, verdicts and releases
        side, chosen = self.tally()
        fold.duel_verdict(self.duel, side, chosen, params, sign)
        fold.mention(author, sign)


def _check_duelist(e: "DuelBond | DuelRelease", block: "Block", network_id: str, what: str) -> None:
    d = e.duel
    if type(d) is not DuelTicket:
        raise InvalidBlock(Reason.MALFORMED, f"a {what} carries a duel ticket")
    d.check(network_id)
    if block.author not in d.executors:
        raise InvalidBlock(Reason.DUEL_BOND, f"{what}: {str(block.author)[:16]} is not an executor of duel {d.duel_id}")
    _check_window(block, e, f"duel {d.duel_id}")


@dataclass(frozen=True)
class DuelBond(EntryRules):
    """An executor of ``duel`` (the author) locks ``duel.executor_bond`` of its provable credit
    for the duel (issue 18: the duel's stakes are real). Authored when it answers (its receipt
    is its consent); dated in ``[duel.issued_ms, duel.expires_ms]``; once per duel per chain.
    Solvency-checked like a Transfer: a key with nothing cannot bond, so its duels never count.

    The duel's :class:`Verdict` counts (win statistics, judge penalties, who gets the bonds)
    only while **both** executors' bonds are counted; the bond is credit the author no longer
    holds, so a loser cannot unstake, withdraw or transfer it away; the winner takes both bonds
    back with a :class:`DuelRelease`."""

    duel: DuelTicket

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "duel_bond", "duel": self.duel.to_canonical()}

    def time_window(self) -> tuple[int, int | None]:
        return self.duel.issued_ms, self.duel.expires_ms

    def check_static(self, block: "Block", network_id: str) -> None:
        _check_duelist(self, block, network_id, "duel bond")

    def check_chain(self, s: "ChainScratch") -> None:
        h = self.duel.hash
        if h in s.chain.bonded or h in s.bonded:
            raise InvalidBlock(Reason.DUEL_BOND, f"duel {self.duel.duel_id} already bonded")
        s.spend(self.duel.executor_bond, "duel bond")
        s.bonded.add(h)

    def apply(self, author: str, fold: "Fold", params: "LedgerParams", sign: int) -> None:
        fold.duel_bond(self.duel, author, params, sign)


def duel_deadline(duel: DuelTicket) -> int:
    """The last block time (ms) at which the winner of ``duel`` may claim both bonds: the duel's
    expiry plus one more duel window (``expires_ms - issued_ms``). After it, an executor whose
    outcome is still open (a requester silent since before the expiry) takes its own bond back
    once the other executor's chain has passed the deadline without a win claim."""
    return duel.expires_ms + max(0, duel.expires_ms - duel.issued_ms)


def duel_payout(s: "ChainScratch", duel: DuelTicket) -> int:
    """What a :class:`DuelRelease` of ``duel`` by ``s.author`` (its block dated ``s.time_ms``)
    makes provable now (chain check). ``E`` = ``duel.expires_ms``, ``D`` = :func:`duel_deadline`.

    - The other executor did not bond (its chain passed ``E`` without a bond): own bond back.
    - The other executor's chain holds a win claim of the duel (``won``): we lost, refused.
    - The requester's accepted chain holds a decisive verdict (both bonded):
      the winner gets ``2 * executor_bond`` if its release is dated by ``D`` (recorded in its
      chain's ``won``), its own bond if later; the loser's release is refused when dated by
      ``D``, and after ``D`` it waits until the winner's chain passes ``D``: without a win
      claim there, the loser takes its own bond back.
    - No decisive verdict: once the requester's chain passes ``E`` (nothing can change the
      outcome: verdicts are dated by ``E``, chain times never go backwards) own bond back;
      a release dated after ``D`` also gets its own bond back once the other executor's chain
      passes ``D`` without a win claim, whatever the requester does later (issue 18: a silent
      requester must not lock both bonds forever). The winner's share and the loser's are
      then each 1 bond, the same in every replica whichever of these facts it saw first.

    Every condition is a fact that, once true in a replica, stays true (a block's chain and
    the chains it waits on only grow), so a block's final status does not depend on delivery
    order. The block waits (``MissingDependency``) on what can still change its answer.

    :raises MissingDependency: the outcome is not final in this replica yet.
    :raises InvalidBlock: (DUEL_RELEASE) the author lost the duel.
    """
    h = duel.hash
    a, b = duel.executors
    other = b if s.author == a else a
    req, oth = s.chains.get(duel.requester), s.chains.get(other)
    other_bonded = oth is not None and h in oth.bonded
    bond = duel.executor_bond
    deadline = duel_deadline(duel)
    late = s.time_ms > deadline
    other_past_deadline = oth is not None and oth.last_time > deadline

    # wait first for what can still change the outcome: the other executor's bond (until its
    # chain passes the expiry), then the requester's verdict (until its chain does); waiting on
    # the one whose growth decides keeps every replica's answer the same in any delivery order
    if not other_bonded and (oth is None or oth.last_time <= duel.expires_ms):
        raise MissingDependency(other, 0, f"duel {duel.duel_id}: the other executor's bond may still come")
    if not other_bonded:
        return bond
    if h in oth.won:
        raise InvalidBlock(Reason.DUEL_RELEASE, f"duel {duel.duel_id} was won by {other[:16]}: our bond is forfeit")
    side = req.verdicts.get(h, "tie") if req is not None else "tie"
    if side != "tie":
        if (a if side == "A" else b) == s.author:
            if late:
                return bond
            s.won.add(h)
            return 2 * bond
        if not late:
            raise InvalidBlock(Reason.DUEL_RELEASE, f"duel {duel.duel_id} was lost: its bond is forfeit")
        if not other_past_deadline:
            raise MissingDependency(other, 0, f"duel {duel.duel_id}: the winner may claim until {deadline}")
        return bond
    if req is not None and req.last_time > duel.expires_ms:
        return bond
    if late and other_past_deadline:
        return bond
    if late:
        raise MissingDependency(other, 0, f"duel {duel.duel_id}: no verdict; the other executor's chain "
                                f"must pass {deadline} (or the requester's {duel.expires_ms})",
                                also=(duel.requester,))
    raise MissingDependency(duel.requester, 0, f"duel {duel.duel_id}: the requester's verdict may still come")


@dataclass(frozen=True)
class DuelRelease(EntryRules):
    """An executor of ``duel`` (the author) takes back its share of the duel's bonds
    (:func:`duel_payout`: both bonds if it won, its own on a tie or an unsettled duel, nothing
    if it lost: refused). Needs this chain's own :class:`DuelBond`; once per duel per chain.
    The payout becomes provable credit of the author's chain. Fold: paid from the duel's
    locked bonds as the set of bonds and verdicts decides (:class:`~.fold.Fold`), so at most
    the two bonds are ever paid out."""

    duel: DuelTicket

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "duel_release", "duel": self.duel.to_canonical()}

    def time_window(self) -> tuple[int, int | None]:
        return self.duel.issued_ms, None

    def check_static(self, block: "Block", network_id: str) -> None:
        _check_duelist(self, block, network_id, "duel release")

    def check_chain(self, s: "ChainScratch") -> None:
        h = self.duel.hash
        if h not in s.chain.bonded and h not in s.bonded:
            raise InvalidBlock(Reason.DUEL_RELEASE, f"duel {self.duel.duel_id}: no bond of ours to release")
        if h in s.chain.released or h in s.released:
            raise InvalidBlock(Reason.DUEL_RELEASE, f"duel {self.duel.duel_id} already released")
        s.funds += duel_payout(s, self.duel)
        s.released.add(h)

    def apply(self, author: str, fold: "Fold", params: "LedgerParams", sign: int) -> None:
        fold.duel_release(self.duel, author, params, sign)


@dataclass(frozen=True)
class Receive(EntryRules):
    """The recipient's acknowledgement of a :class:`Transfer` to it: ``block`` is the sender's
    whole signed block, ``index`` the position of the Transfer in it. Self-verifying (the block's
    signature, network and author are checked statically), received at most once per
    ``(sender, height, index)`` on the recipient's chain, and it makes the amount provable
    credit of the recipient's chain. In the fold it credits the recipient only while the
    referenced block (by hash) is counted: the Transfer's credit is *in flight* between the two
    (:meth:`Fold.send`, :meth:`Fold.receive`), and a Receive of a block that is absent or cut by
    an equivocation counts zero. The receiving block may not be dated before the sender's."""

    block: "Block"
    index: int

    def to_canonical(self) -> dict[str, Any]:
        b = self.block
        return {"t": "receive", "index": self.index,
                "block": {"header": b.header.to_canonical(), "entries": [e.to_canonical() for e in b.entries]}}

    @property
    def key(self) -> tuple[str, int, int]:
        """``(sender, height, index)``: what a chain may receive once."""
        return self.block.author, self.block.height, self.index

    def transfer(self) -> "Transfer":
        return self.block.entries[self.index]

    def time_window(self) -> tuple[int, int | None]:
        t = getattr(self.block, "time_ms", 0)
        return (t if isinstance(t, int) and t >= 0 else 0), None

    def check_static(self, block: "Block", network_id: str) -> None:
        from .blocks import Block  # runtime import: blocks imports this module
        b, i = self.block, self.index
        if type(b) is not Block:
            raise InvalidBlock(Reason.MALFORMED, "a receive carries a block")
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(b.entries):
            raise InvalidBlock(Reason.RECEIVE_INVALID, f"receive index {i!r} outside the carried block")
        if b.network != network_id:
            raise InvalidBlock(Reason.WRONG_NETWORK, "received block of another network")
        try:
            check_peer(b.author, "received block author")
        except InvalidBlock:
            raise InvalidBlock(Reason.RECEIVE_INVALID, "received block author is not a PeerId") from None
        if (not isinstance(b.height, int) or isinstance(b.height, bool) or b.height < 1
                or not isinstance(b.time_ms, int) or isinstance(b.time_ms, bool) or b.time_ms < 0):
            raise InvalidBlock(Reason.RECEIVE_INVALID, "received block height/time malformed")
        check_hex(b.prev_hash, "received block prev_hash")
        t = b.entries[i]
        if type(t) is not Transfer:
            raise InvalidBlock(Reason.RECEIVE_INVALID, f"entry {i} of the received block is not a transfer")
        check_amount(t.amount, "received amount")
        if t.to != block.author or b.author == block.author:
            raise InvalidBlock(Reason.RECEIVE_INVALID, "the received transfer is not to this block's author")
        if not b.header.signature_valid():
            raise InvalidBlock(Reason.RECEIVE_INVALID, "received block not signed by its author")
        _check_window(block, self, "received block")

    def check_chain(self, s: "ChainScratch") -> None:
        k = self.key
        have = s.accepted_block(k[0], k[1])
        if have is None and s.fork_ok(self.block):
            have = self.block   # a valid block of a proven fork: replicas that accepted it before
            #                     the proof and those that saw the proof first agree
        if have is None:
            # the sender's block must count first: a Receive of a block no replica accepts (the
            # sender could not afford it) would otherwise launder credit from nothing
            raise MissingDependency(k[0], k[1], f"received block {k[1]} of {k[0][:16]} not accepted yet")
        if have.hash != self.block.hash:
            raise ForkSeen(k[0], k[1], have.header, self.block.header)
        if k in s.chain.received or k in s.received:
            raise InvalidBlock(Reason.ALREADY_RECEIVED, f"transfer {k[1]}/{k[2]} of {k[0][:16]} already received")
        s.received.add(k)
        s.funds += self.transfer().amount

    def apply(self, author: str, fold: "Fold", params: "LedgerParams", sign: int) -> None:
        t = self.transfer()
        fold.receive((self.block.hash, self.index), author, t.amount, sign)
        fold.mention(author, sign)


def channel_id(network: str, requester: str, nonce: int) -> str:
    """The id (64 hex) of ``requester``'s channel with ``nonce`` on ``network``."""
    return sha256_hex(canonical({"t": "channel", "network": network, "requester": requester, "nonce": nonce}))


@dataclass(frozen=True)
class OpenChannel(EntryRules):
    """The requester (author) locks ``deposit`` of its provable credit toward ``executor`` until
    ``expires_ms`` (block time); the channel's id is :func:`channel_id` of (network, author,
    ``nonce``), unique per chain. Solvency-checked like a Transfer; the block must be dated by
    ``expires_ms``. Vouchers on it (tickets with ``channel``) are what executors accept."""

    executor: str
    deposit: int
    expires_ms: int
    nonce: int

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "open_channel", "executor": self.executor, "deposit": self.deposit,
                "expires_ms": self.expires_ms, "nonce": self.nonce}

    def time_window(self) -> tuple[int, int | None]:
        return 0, self.expires_ms

    def check_static(self, block: "Block", network_id: str) -> None:
        check_peer(self.executor, "channel executor")
        if self.executor == block.author:
            raise InvalidBlock(Reason.SELF_TRANSFER, "channel toward oneself")
        check_amount(self.deposit, "channel deposit")
        check_time(self.expires_ms, "channel expires_ms")
        check_time(self.nonce, "channel nonce")
        _check_window(block, self, "channel")

    def check_chain(self, s: "ChainScratch") -> None:
        from .fold import ChannelInfo
        cid = channel_id(s.network, s.author, self.nonce)
        if cid in s.chain.opened or cid in s.opened:
            raise InvalidBlock(Reason.CHANNEL_EXISTS, f"channel nonce {self.nonce} already used")
        s.spend(self.deposit, "channel deposit")
        s.opened[cid] = ChannelInfo(s.author, self.executor, self.deposit, self.expires_ms)

    def apply(self, author: str, fold: "Fold", params: "LedgerParams", sign: int) -> None:
        from .fold import ChannelInfo
        fold.open_channel(channel_id(fold.network, author, self.nonce),
                          ChannelInfo(author, self.executor, self.deposit, self.expires_ms), sign)


@dataclass(frozen=True)
class CloseChannel(EntryRules):
    """The requester (author) takes back what its channel ``channel`` did not pay. ``witness_height``
    / ``witness_hash``: a block of the channel's executor dated after the channel's expiry.
    Since chain times never go backwards and claims must be dated by the expiry, every claim
    the executor can ever make on the channel is below that block: once the witness is accepted
    (the closing block waits for it otherwise) the executor's claimed total is final, and
    ``deposit - claimed`` becomes provable credit of the requester. Fold: the requester gets
    ``deposit - paid`` back (paid after voids and cuts, so never less than the chain credits)."""

    channel: str
    witness_height: int
    witness_hash: str

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "close_channel", "channel": self.channel, "witness_height": self.witness_height,
                "witness_hash": self.witness_hash}

    def check_static(self, block: "Block", network_id: str) -> None:
        check_hex(self.channel, "channel")
        check_hex(self.witness_hash, "witness_hash")
        h = self.witness_height
        if not isinstance(h, int) or isinstance(h, bool) or not 1 <= h < 1 << 62:
            raise InvalidBlock(Reason.MALFORMED, "witness_height must be >= 1")

    def check_chain(self, s: "ChainScratch") -> None:
        cid = self.channel
        info = s.chain.opened.get(cid) or s.opened.get(cid)
        if info is None:
            raise InvalidBlock(Reason.CHANNEL_UNKNOWN, f"channel {cid[:16]} not opened by this chain")
        if cid in s.chain.closed or cid in s.closed:
            raise InvalidBlock(Reason.CHANNEL_CLOSE, f"channel {cid[:16]} already closed")
        w = s.accepted_block(info.executor, self.witness_height)
        if w is None:
            raise MissingDependency(info.executor, self.witness_height, "close witness not accepted yet")
        if w.hash != self.witness_hash or w.time_ms <= info.expires_ms or s.time_ms < w.time_ms:
            raise InvalidBlock(Reason.CHANNEL_CLOSE, "the witness is not the executor's block after the expiry")
        ex = s.chains.get(info.executor)
        claimed = ex.chan_claims.get(cid, (0, 0))[1] if ex is not None else 0
        s.closed.add(cid)
        s.funds += info.deposit - claimed

    def apply(self, author: str, fold: "Fold", params: "LedgerParams", sign: int) -> None:
        fold.close_channel(self.channel, author, sign)


Entry = Union[Stake, Unstake, Withdraw, Transfer, Claim, Void, Verdict, Receive, OpenChannel, CloseChannel,
              EquivocationProof, DuelBond, DuelRelease]

#: Every known entry type (the registry the replica dispatches through).
ENTRY_TYPES: tuple[type, ...] = (Stake, Unstake, Withdraw, Transfer, Claim, Void, Verdict, Receive,
                                 OpenChannel, CloseChannel, EquivocationProof, DuelBond, DuelRelease)


def entries_hash(entries: Iterable[Entry]) -> str:
    return sha256_hex(canonical([e.to_canonical() for e in entries]))
