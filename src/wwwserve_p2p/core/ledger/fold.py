"""The replicated state: the :class:`Fold` (balances, stakes, claims, voids, duel counts), the
per-author :class:`Chain` facts its validity rules need, and the :class:`Account` view.

The fold is a sum of per-entry effects (:meth:`EntryRules.apply`) with ``sign=+1`` to add an
entry and ``-1`` to remove it; claim/void pairs are resolved from the *set* of present claims
and voids (a claim is paid iff its ticket is not voided), so adding and removing blocks in any
order leaves the fold of the remaining set. That is what makes an equivocation cut
incremental: the replica removes the cut blocks' entries instead of refolding everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...errors import InvalidBlock
from .codes import Reason

if TYPE_CHECKING:
    from .blocks import Block
    from .genesis import LedgerParams
    from .signed import DuelTicket


@dataclass(frozen=True)
class Account:
    """One account in a node's view. Amounts in micro-credits; ``height``: the author's last
    block counted; ``in_debt``: balance below ``-overdraft``; ``burned``: stake and unbonding
    destroyed after an equivocation; ``earned``/``spent``: paid claims as executor/requester;
    ``duels_*``: settled duels as an executor; ``judge_*``: counted votes as a judge, by whether
    they sided with the outcome (a vote in a tied duel counts as neither majority nor minority
    unless it abstained)."""

    peer_id: str
    balance: int
    stake: int
    unbonding: int
    height: int
    in_debt: bool
    equivocated: bool
    burned: int
    earned: int = 0
    spent: int = 0
    duels_won: int = 0
    duels_lost: int = 0
    duels_tied: int = 0
    judge_majority: int = 0
    judge_minority: int = 0
    judge_abstained: int = 0

    @property
    def duels(self) -> int:
        """Settled duels this peer answered in."""
        return self.duels_won + self.duels_lost + self.duels_tied

    @property
    def win_rate(self) -> float | None:
        """(won + tied / 2) / duels, ties counting half as in pairwise-comparison win rates;
        None before the first settled duel."""
        return None if not self.duels else (self.duels_won + 0.5 * self.duels_tied) / self.duels

    @property
    def selectable_stake(self) -> int:
        """Stake that counts for executor selection: 0 when in debt or equivocated."""
        return 0 if self.in_debt or self.equivocated else max(0, self.stake)

    def to_dict(self) -> dict[str, Any]:
        return {"peer_id": self.peer_id, "balance": self.balance, "stake": self.stake,
                "unbonding": self.unbonding, "height": self.height, "in_debt": self.in_debt,
                "equivocated": self.equivocated, "burned": self.burned, "earned": self.earned,
                "spent": self.spent, "duels": self.duels, "duels_won": self.duels_won,
                "duels_lost": self.duels_lost, "duels_tied": self.duels_tied,
                "win_rate": None if self.win_rate is None else round(self.win_rate, 4),
                "judge_majority": self.judge_majority, "judge_minority": self.judge_minority,
                "judge_abstained": self.judge_abstained}


@dataclass(frozen=True)
class ChannelInfo:
    """A payment channel as its :class:`~.entries.OpenChannel` defines it: ``requester`` locked
    ``deposit`` micro-credits toward ``executor`` until ``expires_ms`` (block time)."""

    requester: str
    executor: str
    deposit: int
    expires_ms: int


class _Channel:
    """The fold's view of one channel: its open (counted or not), the counted claims
    ``(seq, amount, voucher hash) -> count``, the voided vouchers ``hash -> (cap, count)`` and
    how many counted closes; ``contrib`` is what it currently adds to the balances."""

    __slots__ = ("info", "opens", "claims", "voids", "closes", "contrib")

    def __init__(self) -> None:
        self.info: ChannelInfo | None = None
        self.opens = 0
        self.claims: dict[tuple[int, int, str], int] = {}
        self.voids: dict[str, list[int]] = {}
        self.closes = 0
        self.contrib: tuple[str, str, int, int, int] = ("", "", 0, 0, 0)   # req, exe, paid, req delta, locked

    def paid(self) -> int:
        """What the executor is paid: its latest counted claim (highest seq), capped by a void
        of that very voucher (``total - price``: the failed request excluded) and the deposit."""
        if not self.opens or self.info is None or not self.claims:
            return 0
        seq, amount, h = max(self.claims)
        v = self.voids.get(h)
        if v is not None:
            amount = min(amount, v[0])
        return max(0, min(amount, self.info.deposit))


class _DuelLock:
    """The fold's view of one duel's bonds (issue 18): the duel ticket, how many counted
    :class:`~.entries.DuelBond` s / :class:`~.entries.DuelRelease` s each executor has, the
    counted verdicts ``(side, chosen votes) -> count`` and ``contrib``, what it adds now.

    Resolved from these sets only (order-independent): a verdict *counts* once both executors'
    bonds are counted; then the winner's release pays it both bonds, unless the loser released
    too (its chain check allows that only when the winner did not claim by the duel's deadline,
    :func:`~.entries.duel_deadline`): then each release pays its author's own bond; otherwise
    (tie, no verdict, a bond missing) a release pays its author's own bond.
    Each counted bond debits its executor; ``locked`` = bonds counted - releases paid (>= 0)."""

    __slots__ = ("duel", "bonds", "releases", "verdicts", "contrib")

    def __init__(self) -> None:
        self.duel: "DuelTicket | None" = None
        self.bonds: dict[str, int] = {}
        self.releases: dict[str, int] = {}
        self.verdicts: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        #: (balance deltas, stake deltas, locked per executor, the verdict counted or None)
        self.contrib: tuple[dict[str, int], dict[str, int], dict[str, int], "tuple[str, dict[str, str]] | None"] = \
            ({}, {}, {}, None)

    def outcome(self) -> "tuple[str, dict[str, str]] | None":
        """The verdict that counts ``(side, chosen)`` (both bonds counted), or None. With forked
        verdicts present at once (an equivocating requester) the least key counts."""
        d = self.duel
        if d is None or not self.verdicts or not all(self.bonds.get(e, 0) > 0 for e in d.executors):
            return None
        side, chosen = min(self.verdicts)
        return side, dict(chosen)

    def payout(self, executor: str) -> int:
        """What a release by ``executor`` is paid now (see the class docstring)."""
        d = self.duel
        if d is None or self.bonds.get(executor, 0) <= 0:
            return 0
        out = self.outcome()
        if out is not None and out[0] != "tie":
            winner = d.executors[0] if out[0] == "A" else d.executors[1]
            loser = d.executors[1] if out[0] == "A" else d.executors[0]
            if executor == winner and self.releases.get(loser, 0) <= 0:
                return 2 * d.executor_bond
        return d.executor_bond


class Fold:
    """The state folded from a set of accepted blocks (plus genesis allocations), before burns.

    ``balance``/``stake``/``unbonding``: PeerId -> micro-credits; ``claims``: ticket hash ->
    (requester, executor, amount) of counted claims; ``voids``: voided ticket hashes;
    ``earned``/``spent``: paid claims by executor/requester; ``duel_stats``: PeerId -> [won,
    lost, tied, judge majority, judge minority, judge abstained]; ``mentions``: PeerId -> how
    many counted entries touch it (an account exists while > 0 or it is in genesis).

    Transfers and receives: ``sent``: ``(block hash, entry index)`` -> (recipient, amount) of
    every counted :class:`~.entries.Transfer`; ``received``: ``(block hash, entry index)`` ->
    how many counted :class:`~.entries.Receive` s reference it. A counted Transfer debits its
    sender; its amount is credited to the recipient iff a Receive of it is counted too, and is
    ``in_flight`` otherwise. A Receive of a transfer that is not counted (block absent, or cut
    by an equivocation) has no effect until (unless) that block is counted. Both directions are
    resolved from the two sets, so adding and removing blocks in any order gives the fold of
    the remaining set, and ``allocations = balances + stakes + unbonding + in_flight`` (before
    burns).
    """

    __slots__ = ("allocations", "balance", "stake", "unbonding", "claims", "voids", "earned", "spent",
                 "duel_stats", "mentions", "duels_settled", "entries_applied", "sent", "received",
                 "in_flight", "at", "channels", "locked", "network", "voucher_claims", "voucher_voids",
                 "duel_locks", "duel_locked")

    def __init__(self, allocations: tuple[tuple[str, int], ...], network: str = ""):
        self.allocations = allocations
        #: the network id (channel ids are derived from it)
        self.network = network
        self.balance: dict[str, int] = dict(allocations)
        self.stake: dict[str, int] = {}
        self.unbonding: dict[str, int] = {}
        self.claims: dict[str, tuple[str, str, int]] = {}
        self.voids: set[str] = set()
        self.earned: dict[str, int] = {}
        self.spent: dict[str, int] = {}
        self.duel_stats: dict[str, list[int]] = {}
        self.mentions: dict[str, int] = {}
        self.duels_settled = 0
        self.entries_applied = 0
        self.sent: dict[tuple[str, int], tuple[str, int]] = {}
        self.received: dict[tuple[str, int], int] = {}
        self.in_flight = 0
        #: (hash of the block being applied, index of the entry being applied)
        self.at: tuple[str, int] = ("", 0)
        #: payment channels by id; ``locked``: deposits of counted, unclosed channels not yet paid
        self.channels: dict[str, _Channel] = {}
        self.locked = 0
        #: voucher hash -> counted claims / voids of it (for is_claimed / is_voided)
        self.voucher_claims: dict[str, int] = {}
        self.voucher_voids: dict[str, int] = {}
        #: duel bonds by duel hash (:class:`_DuelLock`); ``duel_locked``: PeerId -> its bonds
        #: counted and not yet paid out (their sum is part of ``locked``)
        self.duel_locks: dict[str, _DuelLock] = {}
        self.duel_locked: dict[str, int] = {}

    @staticmethod
    def add(d: dict[str, int], peer: str, delta: int) -> None:
        d[peer] = d.get(peer, 0) + delta

    def mention(self, peer: str, sign: int) -> None:
        m = self.mentions.get(peer, 0) + sign
        if m:
            self.mentions[peer] = m
        else:
            del self.mentions[peer]

    def pay(self, requester: str, executor: str, amount: int) -> None:
        add = self.add
        add(self.balance, requester, -amount)
        add(self.balance, executor, amount)
        add(self.spent, requester, amount)
        add(self.earned, executor, amount)

    def claim(self, h: str, requester: str, executor: str, amount: int, sign: int) -> None:
        """Add (``sign=1``) or remove (-1) the counted claim of ticket ``h``: paid unless voided."""
        if sign > 0:
            self.claims[h] = (requester, executor, amount)
        else:
            del self.claims[h]
        if h not in self.voids:
            self.pay(requester, executor, sign * amount)
        self.mention(requester, sign)
        self.mention(executor, sign)

    def send(self, key: tuple[str, int], sender: str, to: str, amount: int, sign: int) -> None:
        """Add or remove the counted transfer ``key`` = (block hash, index): the sender is
        debited; the recipient credited iff a Receive of it is counted, else it is in flight."""
        if sign > 0:
            self.sent[key] = (to, amount)
        else:
            del self.sent[key]
        self.add(self.balance, sender, -sign * amount)
        if self.received.get(key):
            self.add(self.balance, to, sign * amount)
        else:
            self.in_flight += sign * amount

    def receive(self, key: tuple[str, int], recipient: str, amount: int, sign: int) -> None:
        """Add or remove a Receive of transfer ``key``: effective only while that transfer is
        counted (and only once, however many Receives of it are present)."""
        before = self.received.get(key, 0)
        after = before + sign
        if after:
            self.received[key] = after
        else:
            del self.received[key]
        if (before == 0) != (after == 0) and key in self.sent:
            d = amount if after else -amount
            self.add(self.balance, recipient, d)
            self.in_flight -= d

    # ------------------------------------------------------------ channels
    def _chan(self, cid: str) -> _Channel:
        c = self.channels.get(cid)
        if c is None:
            c = self.channels[cid] = _Channel()
        return c

    def _rebalance(self, cid: str, c: _Channel) -> None:
        """Replace the channel's old contribution to the balances by its current one."""
        req, exe, paid, dreq, locked = c.contrib
        add = self.add
        if req:
            add(self.balance, req, -dreq)
            add(self.balance, exe, -paid)
            add(self.spent, req, -paid)
            add(self.earned, exe, -paid)
            self.locked -= locked
        if c.opens and c.info is not None:
            i = c.info
            paid = c.paid()
            dreq = -paid if c.closes else -i.deposit
            locked = 0 if c.closes else i.deposit - paid
            add(self.balance, i.requester, dreq)
            add(self.balance, i.executor, paid)
            add(self.spent, i.requester, paid)
            add(self.earned, i.executor, paid)
            self.locked += locked
            c.contrib = (i.requester, i.executor, paid, dreq, locked)
        else:
            c.contrib = ("", "", 0, 0, 0)
        if not (c.opens or c.claims or c.voids or c.closes):
            del self.channels[cid]

    def open_channel(self, cid: str, info: ChannelInfo, sign: int) -> None:
        c = self._chan(cid)
        c.opens += sign
        if c.opens:
            c.info = info
        self._rebalance(cid, c)
        self.mention(info.requester, sign)
        self.mention(info.executor, sign)

    def channel_claim(self, cid: str, seq: int, amount: int, voucher_hash: str, executor: str, sign: int) -> None:
        c = self._chan(cid)
        k = (seq, amount, voucher_hash)
        n = c.claims.get(k, 0) + sign
        if n:
            c.claims[k] = n
        else:
            del c.claims[k]
        self._count(self.voucher_claims, voucher_hash, sign)
        self._rebalance(cid, c)
        self.mention(executor, sign)

    @staticmethod
    def _count(d: dict[str, int], key: str, sign: int) -> None:
        n = d.get(key, 0) + sign
        if n:
            d[key] = n
        else:
            del d[key]

    def channel_void(self, cid: str, voucher_hash: str, cap: int, requester: str, sign: int) -> None:
        c = self._chan(cid)
        v = c.voids.setdefault(voucher_hash, [cap, 0])
        v[1] += sign
        if not v[1]:
            del c.voids[voucher_hash]
        self._count(self.voucher_voids, voucher_hash, sign)
        self._rebalance(cid, c)
        self.mention(requester, sign)

    def close_channel(self, cid: str, requester: str, sign: int) -> None:
        c = self._chan(cid)
        c.closes += sign
        self._rebalance(cid, c)
        self.mention(requester, sign)

    # ------------------------------------------------------------ duel bonds
    def _duel(self, duel: "DuelTicket") -> _DuelLock:
        d = self.duel_locks.get(duel.hash)
        if d is None:
            d = self.duel_locks[duel.hash] = _DuelLock()
            d.duel = duel
        return d

    def _duel_rebalance(self, duel: "DuelTicket", d: _DuelLock, params: "LedgerParams") -> None:
        """Replace the duel's old contribution (balances, stakes, locked, counted verdict) by
        its current one (:class:`_DuelLock`)."""
        from .duels import settle_tally
        add = self.add
        bal, stk, lk, counted = d.contrib
        for p, v in bal.items():
            add(self.balance, p, -v)
        for p, v in stk.items():
            add(self.stake, p, -v)
        for p, v in lk.items():
            add(self.duel_locked, p, -v)
            self.locked -= v
        if counted is not None:
            self.count_duel(duel, counted[0], counted[1], -1)
        bal, stk, lk = {}, {}, {}
        bond = duel.executor_bond
        for e in duel.executors:
            if d.bonds.get(e, 0) > 0:
                bal[e] = bal.get(e, 0) - bond
                lk[e] = lk.get(e, 0) + bond
        for e in duel.executors:
            if d.releases.get(e, 0) > 0:
                pay = d.payout(e)
                bal[e] = bal.get(e, 0) + pay
                # the payout comes out of our own bond first, then (the winner) the loser's
                for src in sorted(duel.executors, key=lambda x: x != e):
                    take = min(pay, lk.get(src, 0))
                    lk[src] = lk.get(src, 0) - take
                    pay -= take
        counted = d.outcome()
        if counted is not None:
            # judge penalties and shares (verifiable duels), stats; executors' bonds move above
            for p, (dbal, dstake) in settle_tally(duel, counted[0], counted[1], params, executors=False).items():
                if dbal:
                    bal[p] = bal.get(p, 0) + dbal
                if dstake:
                    stk[p] = stk.get(p, 0) + dstake
            self.count_duel(duel, counted[0], counted[1], 1)
        bal = {p: v for p, v in bal.items() if v}
        stk = {p: v for p, v in stk.items() if v}
        lk = {p: v for p, v in lk.items() if v}
        for p, v in bal.items():
            add(self.balance, p, v)
        for p, v in stk.items():
            add(self.stake, p, v)
        for p, v in lk.items():
            add(self.duel_locked, p, v)
            self.locked += v
        d.contrib = (bal, stk, lk, counted)
        for p in [p for p in duel.executors if not self.duel_locked.get(p, 1)]:
            del self.duel_locked[p]
        if not (d.bonds or d.releases or d.verdicts):
            del self.duel_locks[duel.hash]

    def duel_bond(self, duel: "DuelTicket", executor: str, params: "LedgerParams", sign: int) -> None:
        d = self._duel(duel)
        self._count(d.bonds, executor, sign)
        self._duel_rebalance(duel, d, params)
        self.mention(executor, sign)

    def duel_release(self, duel: "DuelTicket", executor: str, params: "LedgerParams", sign: int) -> None:
        d = self._duel(duel)
        self._count(d.releases, executor, sign)
        self._duel_rebalance(duel, d, params)
        self.mention(executor, sign)

    def duel_verdict(self, duel: "DuelTicket", side: str, chosen: dict[str, str], params: "LedgerParams",
                     sign: int) -> None:
        d = self._duel(duel)
        key = (side, tuple(sorted(chosen.items())))
        n = d.verdicts.get(key, 0) + sign
        if n:
            d.verdicts[key] = n
        else:
            del d.verdicts[key]
        self._duel_rebalance(duel, d, params)
        for p in {*duel.executors, *chosen}:
            self.mention(p, sign)

    def void(self, h: str, author: str, sign: int) -> None:
        """Add or remove the void of ticket ``h``; a present claim is unpaid / paid again."""
        if sign > 0:
            self.voids.add(h)
        else:
            self.voids.discard(h)
        c = self.claims.get(h)
        if c is not None:
            self.pay(c[0], c[1], -sign * c[2])
        self.mention(author, sign)

    def count_duel(self, duel: "DuelTicket", side: str, chosen: dict[str, str], sign: int) -> None:
        a, b = duel.executors
        self.duels_settled += sign

        def bump(peer: str, i: int) -> None:
            self.duel_stats.setdefault(peer, [0] * 6)[i] += sign
            self.mention(peer, sign)

        if side == "tie":
            bump(a, 2)
            bump(b, 2)
        else:
            bump(a if side == "A" else b, 0)
            bump(b if side == "A" else a, 1)
        for judge, choice in chosen.items():
            if choice == "abstain":
                bump(judge, 5)
            elif side != "tie":
                bump(judge, 3 if choice == side else 4)

    def apply_block(self, block: "Block", params: "LedgerParams", sign: int = 1) -> None:
        """Add (or with ``sign=-1`` remove) every entry of ``block``."""
        author, h = block.author, block.hash
        n = len(block.entries)
        order = range(n) if sign > 0 else range(n - 1, -1, -1)
        for i in order:
            self.at = (h, i)
            block.entries[i].apply(author, self, params, sign)
        self.entries_applied += sign * len(block.entries)

    def peers(self) -> set[str]:
        """PeerIds the fold knows: genesis allocations and every peer a counted entry touches."""
        return {p for p, _ in self.allocations} | set(self.mentions)

    def snapshot(self) -> dict[str, Any]:
        """A canonical, comparable view (zero values dropped): equal for equal block sets."""
        def nz(d: dict[str, int]) -> dict[str, int]:
            return {k: v for k, v in d.items() if v}
        return {"balance": nz(self.balance), "stake": nz(self.stake), "unbonding": nz(self.unbonding),
                "earned": nz(self.earned), "spent": nz(self.spent), "claims": dict(self.claims),
                "voids": set(self.voids), "mentions": dict(self.mentions),
                "duel_stats": {k: v for k, v in self.duel_stats.items() if any(v)},
                "duels_settled": self.duels_settled, "entries_applied": self.entries_applied,
                "sent": dict(self.sent), "received": dict(self.received), "in_flight": self.in_flight,
                "locked": self.locked, "duel_locked": {k: v for k, v in self.duel_locked.items() if v},
                "duel_locks": {k: (dict(d.bonds), dict(d.releases), dict(d.verdicts), d.contrib[:3])
                               for k, d in self.duel_locks.items()},
                "channels": {k: (c.opens, dict(c.claims), {h: tuple(v) for h, v in c.voids.items()}, c.closes,
                                 c.contrib) for k, c in self.channels.items()}}


class ChainScratch:
    """Chain-local facts while checking one block against its author's :class:`Chain`: the
    chain's running values plus what this block adds so far (``unbonds``, ``claimed``,
    ``voided``, ``settled``, ``received``). Entry ``check_chain`` methods read and update it.

    ``funds``: the chain's provable credit net of its genesis allocation (see :class:`Chain`);
    ``floor``: ``-(allocation + overdraft)``, the lowest ``funds`` a Stake or Transfer may leave."""

    __slots__ = ("chain", "time_ms", "unbonding_ms", "own_stake", "withdrawn", "unbonds", "claimed",
                 "voided", "settled", "funds", "floor", "received", "network", "author", "chains",
                 "opened", "closed", "chan_claims", "fork_ok", "bonded", "released", "verdicts", "won")

    def __init__(self, chain: "Chain", time_ms: int, unbonding_ms: int, floor: int = 0, *,
                 network: str = "", author: str = "", chains: "dict[str, Chain] | None" = None,
                 fork_ok: "Any" = None):
        self.chain = chain
        self.network = network
        self.author = author
        #: every author's accepted chain (read-only here: cross-chain dependencies)
        self.chains: dict[str, Chain] = chains if chains is not None else {}
        #: ``fork_ok(block) -> bool``: ``block`` is one of the two blocks of its author's recorded
        #: equivocation proof, at the cut height, and valid on the author's chain below it
        self.fork_ok = fork_ok or (lambda block: False)
        self.opened: dict[str, ChannelInfo] = {}
        self.closed: set[str] = set()
        self.chan_claims: dict[str, tuple[int, int]] = {}
        self.time_ms = time_ms
        self.unbonding_ms = unbonding_ms
        self.own_stake = chain.own_stake
        self.withdrawn = chain.withdrawn
        self.funds = chain.funds
        self.floor = floor
        self.received: set[tuple[str, int, int]] = set()
        self.unbonds: list[tuple[int, int]] = []
        self.claimed: set[str] = set()
        self.voided: set[str] = set()
        self.settled: set[str] = set()
        #: duel bonds (issue 18) this block locks / releases (duel hashes), verdicts it settles
        #: (duel hash -> winning side "A", "B" or "tie")
        self.bonded: set[str] = set()
        self.released: set[str] = set()
        self.verdicts: dict[str, str] = {}
        #: duels whose release in this block took both bonds (won, claimed by the deadline)
        self.won: set[str] = set()

    def spend(self, amount: int, what: str) -> None:
        """Debit ``amount`` from the provable credit (Stake, Transfer).

        :raises InvalidBlock: (INSUFFICIENT_FUNDS) it would leave allocation + funds below
            ``-overdraft``."""
        if self.funds - amount < self.floor:
            raise InvalidBlock(Reason.INSUFFICIENT_FUNDS,
                               f"{what} {amount} > provable credit {self.funds - self.floor} (overdraft included)")
        self.funds -= amount

    def accepted_block(self, author: str, height: int) -> "Block | None":
        """``author``'s accepted block at ``height`` (None if this replica has not accepted it).
        Below a snapshot's base (settled, pruned history) only the headers the snapshot kept
        answer (:meth:`Chain.at`).

        :raises InvalidBlock: (PRUNED) ``height`` is settled history the snapshot did not keep."""
        ch = self.chains.get(author)
        return ch.at(height) if ch is not None and 1 <= height <= ch.height else None

    def channel(self, requester: str, cid: str) -> "ChannelInfo | None":
        """The channel ``cid`` as opened in ``requester``'s accepted chain (or this block)."""
        if requester == self.author and cid in self.opened:
            return self.opened[cid]
        ch = self.chains.get(requester)
        return ch.opened.get(cid) if ch is not None else None

    def last_claim(self, cid: str) -> tuple[int, int]:
        """(seq, cumulative amount) of this chain's latest claim on channel ``cid`` ((0, 0): none)."""
        return self.chan_claims.get(cid) or self.chain.chan_claims.get(cid, (0, 0))

    def matured(self) -> int:
        """Unbonding (the chain's and this block's so far) withdrawable at this block's time."""
        t = self.time_ms
        return (sum(a for m, a in self.chain.unbonds if m <= t) + sum(a for m, a in self.unbonds if m <= t)
                - self.withdrawn)


class _Ref:
    """A kept header standing in for a pruned block (``hash``, ``time_ms``, ``header``)."""

    __slots__ = ("header",)

    def __init__(self, header: Any):
        self.header = header

    @property
    def hash(self) -> str:
        return self.header.hash

    @property
    def time_ms(self) -> int:
        return self.header.time_ms


@dataclass
class Chain:
    """One author's accepted chain and the chain-local facts its validity rules need.

    ``funds`` = Σ own Claim amounts + Σ own Receive amounts + Σ own Withdraw amounts − Σ own
    Stake amounts − Σ own Transfer amounts; the author's *provable* credit is its genesis
    allocation + ``funds`` (Unstake moves credit between stake and unbonding: no change).
    ``received``: the ``(sender, height, index)`` this chain has received."""

    blocks: list["Block"] = field(default_factory=list)
    own_stake: int = 0                      # Stake - Unstake of this chain's own entries
    unbonds: list[tuple[int, int]] = field(default_factory=list)  # (maturity_ms, amount)
    withdrawn: int = 0
    claimed: set[str] = field(default_factory=set)
    voided: set[str] = field(default_factory=set)
    settled: set[str] = field(default_factory=set)
    funds: int = 0
    received: set[tuple[str, int, int]] = field(default_factory=set)
    #: channels this chain opened (as requester), closed, and claimed on (as executor:
    #: cid -> (seq, cumulative amount) of the latest claim)
    opened: dict[str, "ChannelInfo"] = field(default_factory=dict)
    closed: set[str] = field(default_factory=set)
    chan_claims: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: duels this chain bonded / released as an executor, verdicts it settled as requester
    #: (duel hash -> side); per block: (bonded, released, verdict hashes) for :meth:`pop`
    bonded: set[str] = field(default_factory=set)
    released: set[str] = field(default_factory=set)
    verdicts: dict[str, str] = field(default_factory=dict)
    #: duels whose release by this chain took both bonds (a win claimed by its deadline)
    won: set[str] = field(default_factory=set)
    duel_undo: list[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = \
        field(default_factory=list)
    #: per block: (channels opened, channels closed, previous chan_claims of the cids it claimed)
    chan_undo: list[tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, tuple[int, int] | None], ...]]] = \
        field(default_factory=list)
    # per block: (own_stake delta, unbonds added, withdrawn delta, claimed, voided, settled,
    #             funds delta, received)
    undo: list[tuple[int, int, int, tuple[str, ...], tuple[str, ...], tuple[str, ...], int,
                     tuple[tuple[str, int, int], ...]]] = field(default_factory=list)

    #: snapshot base (see :mod:`.snapshot`): heights ``1..base`` are settled history not held
    #: as blocks; ``base_hash`` / ``base_time``: hash and time of the block at ``base``;
    #: ``refs``: the headers at or below ``base`` the snapshot kept because later entries may
    #: reference them (a Receive of a transfer not yet received, a close witness)
    base: int = 0
    base_hash: str = ""
    base_time: int = 0
    refs: dict[int, Any] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return self.base + len(self.blocks)

    def tip_hash(self, genesis_hash: str) -> str:
        return self.blocks[-1].hash if self.blocks else (self.base_hash if self.base else genesis_hash)

    @property
    def last_time(self) -> int:
        return self.blocks[-1].time_ms if self.blocks else self.base_time

    def at(self, height: int) -> Any:
        """The accepted block at ``height`` (``1 <= height <= self.height``); at or below the
        base, a kept header (it has ``hash``, ``time_ms`` and ``header`` like a block).

        :raises InvalidBlock: (PRUNED) a settled height whose header the snapshot did not keep."""
        if height > self.base:
            return self.blocks[height - self.base - 1]
        ref = self.refs.get(height)
        if ref is None:
            raise InvalidBlock(Reason.PRUNED, f"height {height} is settled history below the snapshot")
        return _Ref(ref)

    def matured(self, time_ms: int) -> int:
        return sum(a for m, a in self.unbonds if m <= time_ms) - self.withdrawn

    def commit(self, s: ChainScratch, block: "Block") -> None:
        """Append ``block`` whose checks produced ``s``."""
        self.undo.append((s.own_stake - self.own_stake, len(s.unbonds), s.withdrawn - self.withdrawn,
                          tuple(s.claimed), tuple(s.voided), tuple(s.settled), s.funds - self.funds,
                          tuple(s.received)))
        self.own_stake = s.own_stake
        self.funds = s.funds
        self.received.update(s.received)
        self.withdrawn = s.withdrawn
        self.unbonds.extend(s.unbonds)
        self.claimed.update(s.claimed)
        self.voided.update(s.voided)
        self.settled.update(s.settled)
        self.chan_undo.append((tuple(s.opened), tuple(s.closed),
                               tuple((c, self.chan_claims.get(c)) for c in s.chan_claims)))
        self.opened.update(s.opened)
        self.closed.update(s.closed)
        self.chan_claims.update(s.chan_claims)
        self.duel_undo.append((tuple(s.bonded), tuple(s.released), tuple(s.verdicts), tuple(s.won)))
        self.won.update(s.won)
        self.bonded.update(s.bonded)
        self.released.update(s.released)
        self.verdicts.update(s.verdicts)
        self.blocks.append(block)

    def pop(self) -> "Block":
        """Remove the tip block and its chain-local facts; returns it."""
        dstake, nunb, dwd, claimed, voided, settled, dfunds, received = self.undo.pop()
        self.own_stake -= dstake
        self.funds -= dfunds
        self.received.difference_update(received)
        self.withdrawn -= dwd
        if nunb:
            del self.unbonds[-nunb:]
        self.claimed.difference_update(claimed)
        self.voided.difference_update(voided)
        self.settled.difference_update(settled)
        bonded, released, verdicts, won = self.duel_undo.pop()
        self.won.difference_update(won)
        self.bonded.difference_update(bonded)
        self.released.difference_update(released)
        for h in verdicts:
            del self.verdicts[h]
        opened, closed, prev = self.chan_undo.pop()
        for c in opened:
            del self.opened[c]
        self.closed.difference_update(closed)
        for c, v in prev:
            if v is None:
                del self.chan_claims[c]
            else:
                self.chan_claims[c] = v
        return self.blocks.pop()
