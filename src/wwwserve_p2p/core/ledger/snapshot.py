"""Snapshots of settled history, checkpoints that members sign, and replicas loaded from them.

Why: without them every node stores and replays every block ever authored (issue 18 item 5).
With them a node keeps the blocks above the last *attested* cut plus that cut's snapshot, and a
new node catches up from the snapshot and the blocks above it.

Cut and snapshot (pure: the cut time ``T`` is an argument, never a clock reading)
---------------------------------------------------------------------------------
- The cut at ``T`` (ms of block time): the replica built from every accepted block dated
  ``<= T`` (and every recorded equivocation proof). Chain times are monotone, so per author
  that is a prefix; a block whose cross-chain dependency (a Receive's transfer, a voucher's
  open, a close's witness) is dated after ``T`` waits, so the cut is closed under
  dependencies. It is a function of the block set (the fold is order-independent), so every
  replica holding the same blocks dated ``<= T`` computes the same cut.
- The snapshot = the canonical state of that replica (:func:`take_snapshot`): the fold
  (balances, stakes, unbonding, in-flight transfers, channels with their latest claims,
  counted legacy claims and voids, duel counts), each chain's facts its validity rules need
  (own stake, unbonding schedule, provable funds, received transfers, opened / closed
  channels, latest channel claims, claimed / voided tickets, settled duels), each chain's
  head (height, tip hash, tip time), the equivocation proofs, and the few headers below the
  cut that later entries may still reference (``refs``: blocks with a transfer not yet
  received, and up to :data:`MAX_WITNESS_REFS` blocks of an executor dated after the expiry of
  a channel toward it that is not closed yet: a close's witness). Its hash is SHA-256 of the
  canonical JSON (:attr:`Snapshot.hash`).
- Compaction (exact, a function of the state, so two replicas agree whatever snapshots they
  went through): matured unbonding is merged into one entry; a channel keeps only its latest
  claim (the only one it pays, and nothing below a cut is ever removed); a transfer that was
  received below the cut is dropped from the in-flight tables (no Receive of it can ever count
  again: the recipient's chain keeps it in ``received``).

The settled bound (what ``T`` the service uses): ``T = floor((now - settle) / interval) *
interval`` with ``settle >= MAX_CLOCK_SKEW_MS`` + the time gossip and the sync loop need to
deliver every block (services default: 10 min, a multiple of the 5 s skew and of the 15-60 s
sync rounds). Why it is enough: a block dated ``<= T`` is held as premature by no honest node
once its clock passes ``T + skew``, and any block still missing after ``settle`` is a gap the
sync loop has had many rounds to repair, so honest nodes hold the same blocks dated ``<= T``
and sign the same hash. Nothing *else* needs to be settled: open channels, unbonding and
unclaimed tickets below the cut are carried in the snapshot's facts (an open channel's
deposit, claims and expiry; the unbonding schedule; claimed ticket hashes), so they may refer
below it. A block dated ``<= T`` published later (a back-dated block of a silent author) is
simply a block above the cut: the cut is heights, ``T`` names it.

Attestation (:class:`Checkpoint`, :func:`attestation`): a member signs ``{network, T,
snapshot_hash, heads_digest}``. A node accepts a snapshot only when the signers hold **more
than 2/3 of the stake at the cut** (the snapshot's own stake table; equivocators count zero;
genesis allocations when nobody stakes yet). Why 2/3: with less than 1/3 of the stake
byzantine, two different snapshots of one ``T`` cannot both reach the threshold (the two signer
sets overlap in more than 1/3 of the stake, so an honest member would have signed both, which
it never does), while the honest members alone (more than 2/3) can always attest the honest
one. The weights come from the snapshot itself, so a snapshot forged wholesale (its stake
table giving the forger's keys everything) needs only the forger's signatures: the classic
long-range problem of stake-weighted checkpoints. A node that already follows the network
therefore also requires more than 2/3 of the stake *in its own view* (``view_stake``), and a
fresh node asks several peers and refuses when they serve different attested snapshots for
the same ``T`` (the services do both).

Equivocation below a cut: a proof (two signed headers) is self-contained, so it is still
recorded when both headers lie at or below the author's settled height, and the author still
loses its stake, unbonding and positive balance (:meth:`Ledger.account` burns whoever has a
proof); but settled history is final: the cut is clamped to the snapshot's base (the author's
blocks *above* the base are cut, and none is accepted any more), and what the settled blocks
did to others (a transfer received, a channel paid) stands.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ...errors import InvalidBlock, LedgerError
from ..crypto import verify
from .codes import Reason, Signer, canonical, check_hex, check_peer, sha256_hex
from .entries import Claim, Verdict
from .fold import Chain, ChannelInfo, Fold, _Channel
from .proofs import BlockHeader, EquivocationProof

if TYPE_CHECKING:
    from .genesis import Genesis
    from .replica import Ledger

SNAPSHOT_VERSION = 1
#: headers of an executor's blocks after an open channel's expiry kept as close witnesses
MAX_WITNESS_REFS = 16
#: most bytes of one snapshot a node accepts (canonical JSON)
MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024
#: most checkpoints counted per snapshot
MAX_CHECKPOINTS = 1024
DOMAIN_CHECKPOINT = "wwwserve/v1/checkpoint"
#: attestation threshold: signers' stake * DEN > total stake * NUM
THRESHOLD_NUM, THRESHOLD_DEN = 2, 3


def settled_time(now_ms: int, interval_ms: int, settle_ms: int) -> int:
    """The cut time ``T`` for a clock reading ``now_ms``: ``now_ms - settle_ms`` rounded down to
    a multiple of ``interval_ms`` (so honest nodes with clocks apart by less than the rounding
    pick the same ``T``); 0 before the first one.

    :raises ValueError: ``interval_ms <= 0`` or ``settle_ms < 0``."""
    if interval_ms <= 0 or settle_ms < 0:
        raise ValueError("interval_ms must be > 0 and settle_ms >= 0")
    t = now_ms - settle_ms
    return max(0, (t // interval_ms) * interval_ms)


# ------------------------------------------------------------------ snapshot object
@dataclass(frozen=True)
class Snapshot:
    """The canonical state of a replica at a cut. ``data`` is plain JSON (see the module
    docstring); :attr:`raw` is its canonical bytes and :attr:`hash` their SHA-256 (hex)."""

    data: Mapping[str, Any]
    raw: bytes = field(default=b"", repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.raw:
            object.__setattr__(self, "raw", canonical(self.data))

    @property
    def hash(self) -> str:
        h = self.__dict__.get("_hash")
        if h is None:
            h = sha256_hex(self.raw)
            object.__setattr__(self, "_hash", h)
        return h

    @property
    def network(self) -> str:
        return self.data["network"]

    @property
    def time_ms(self) -> int:
        return self.data["time_ms"]

    @property
    def heads_digest(self) -> str:
        return self.data["heads_digest"]

    def heads(self) -> dict[str, tuple[int, str]]:
        """author -> (height, tip hash) at the cut."""
        return {a: (h, t) for a, (h, t, _tm) in self.data["heads"].items()}

    def stakes(self) -> dict[str, int]:
        """Stake at the cut that counts for attestation: positive fold stake, equivocators 0."""
        cut = set(self.data["proofs"])
        return {p: s for p, s in self.data["fold"]["stake"].items() if s > 0 and p not in cut}

    def to_bytes(self) -> bytes:
        return self.raw

    def pages(self, page_bytes: int) -> list[bytes]:
        """:attr:`raw` split into pages of at most ``page_bytes`` (for a frame-capped stream)."""
        if page_bytes <= 0:
            raise ValueError("page_bytes must be > 0")
        return [self.raw[i:i + page_bytes] for i in range(0, len(self.raw), page_bytes)] or [b""]

    @classmethod
    def from_bytes(cls, raw: bytes, *, network: str | None = None,
                   max_bytes: int = MAX_SNAPSHOT_BYTES) -> "Snapshot":
        """Parse and structurally check a snapshot (remote input). Its *content* is trusted
        only through :func:`is_attested`.

        :raises LedgerError: over ``max_bytes``, not canonical JSON, wrong version or network,
            or a malformed table."""
        if len(raw) > max_bytes:
            raise LedgerError(f"snapshot of {len(raw)} bytes > {max_bytes}")
        try:
            data = json.loads(raw.decode("ascii"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise LedgerError(f"snapshot is not JSON: {exc}") from None
        if not isinstance(data, dict) or canonical(data) != raw:
            raise LedgerError("snapshot bytes are not canonical")
        if data.get("version") != SNAPSHOT_VERSION:
            raise LedgerError(f"snapshot version {data.get('version')!r} != {SNAPSHOT_VERSION}")
        if network is not None and data.get("network") != network:
            raise LedgerError("snapshot of another network")
        snap = cls(data, raw)
        try:
            _check_shape(snap)
        except (KeyError, TypeError, ValueError, InvalidBlock) as exc:
            raise LedgerError(f"malformed snapshot: {exc}") from None
        return snap


def _check_shape(snap: Snapshot) -> None:
    """Type checks of a parsed snapshot (enough that :func:`load_snapshot` cannot crash)."""
    d = snap.data
    if not isinstance(d["time_ms"], int) or d["time_ms"] < 0:
        raise ValueError("time_ms")
    check_hex(d["heads_digest"], "heads_digest")
    for a, row in d["heads"].items():
        check_peer(a, "snapshot author")
        h, tip, tm = row
        if not (isinstance(h, int) and h >= 1 and isinstance(tm, int)):
            raise ValueError("head row")
        check_hex(tip, "tip hash")
    for a, p in d["proofs"].items():
        if _proof(p).author != a:
            raise ValueError("proof author")
    f = d["fold"]
    for k in ("balance", "stake", "unbonding", "earned", "spent", "mentions"):
        if not all(isinstance(v, int) for v in f[k].values()):
            raise ValueError(k)
    for k in ("duels_settled", "entries_applied", "in_flight", "locked"):
        if not isinstance(f[k], int):
            raise ValueError(k)
    if not all(isinstance(v, int) for v in d.get("expiry", {}).values()):
        raise ValueError("expiry")
    restore_fold(snap, None)
    for a, c in d["chains"].items():
        if a not in d["heads"]:
            raise ValueError("chain without a head")
        _chain(c, d["heads"][a], d["refs"].get(a, {}))


# ------------------------------------------------------------------ taking a snapshot
def take_snapshot(ledger: "Ledger", time_ms: int) -> Snapshot:
    """The snapshot of ``ledger`` at the cut ``time_ms`` (see the module docstring). Pure and
    deterministic: replicas holding the same blocks dated ``<= time_ms`` and the same proofs
    return equal bytes. Cost: one fold of the held blocks dated ``<= time_ms`` (signatures are
    not checked again).

    :raises LedgerError: ``time_ms`` is below the snapshot ``ledger`` was loaded from."""
    base = ledger.base_snapshot
    if base is not None and time_ms < base.time_ms:
        raise LedgerError(f"cut {time_ms} below this replica's snapshot at {base.time_ms}")
    cut = cut_ledger(ledger, time_ms)
    return capture(cut, time_ms)


def cut_ledger(ledger: "Ledger", time_ms: int) -> "Ledger":
    """A replica holding exactly ``ledger``'s cut at ``time_ms`` (its base snapshot, if any,
    plus the accepted blocks dated ``<= time_ms`` above it, plus every recorded proof)."""
    from .replica import Ledger
    base = ledger.base_snapshot
    cut = load_snapshot(ledger.genesis, base) if base is not None else Ledger(ledger.genesis)
    for p in sorted(ledger.proofs(), key=lambda p: p.author):
        cut.add_proof(p, checked=True)
    for author in sorted(ledger.heads()):
        for b in ledger.blocks(author):
            if b.time_ms > time_ms:
                break
            cut.add_block(b, verified=True)
    return cut


def capture(led: "Ledger", time_ms: int) -> Snapshot:
    """The :class:`Snapshot` of replica ``led`` as it stands, named ``time_ms``."""
    chains = led._chains
    heads: dict[str, list] = {}
    for a, ch in chains.items():
        if ch.height:
            heads[a] = [ch.height, ch.tip_hash(led._genesis_hash), ch.last_time]
    # headers this replica can name below its heads: hash -> (author, height, header)
    index: dict[str, tuple[str, int, BlockHeader]] = {}
    for a, ch in chains.items():
        for h, hdr in ch.refs.items():
            index[hdr.hash] = (a, h, hdr)
        for b in ch.blocks:
            index[b.hash] = (a, b.height, b.header)
    fold = led._fold
    # expiry of every settled duel and legacy claimed ticket a chain remembers (to forget the
    # expired ones: no block dated after an expiry can settle or claim it again)
    expiry = dict(getattr(led, "_snapshot_expiry", {}))
    for ch in chains.values():
        for b in ch.blocks:
            for e in b.entries:
                if type(e) is Verdict:
                    expiry[e.duel.hash] = e.duel.expires_ms
                elif type(e) is Claim and not e.ticket.channel:
                    expiry[e.ticket.hash] = e.ticket.expires_ms
    refs: dict[str, dict[int, BlockHeader]] = {}
    # (1) blocks holding a transfer not received yet (a later Receive checks its hash)
    for (bh, _i) in fold.sent:
        if not fold.received.get((bh, _i)):
            hit = index.get(bh)
            if hit is not None:
                refs.setdefault(hit[0], {})[hit[1]] = hit[2]
    # (2) close witnesses: an executor's blocks after the expiry of a channel not closed yet
    for a, ch in chains.items():
        for cid, info in ch.opened.items():
            if cid in ch.closed:
                continue
            ex = chains.get(info.executor)
            if ex is None:
                continue
            after = sorted((h, hdr) for h, hdr in ex.refs.items() if hdr.time_ms > info.expires_ms)
            after += [(b.height, b.header) for b in ex.blocks if b.time_ms > info.expires_ms]
            for h, hdr in sorted(after, key=lambda x: x[0])[:MAX_WITNESS_REFS]:
                refs.setdefault(info.executor, {})[h] = hdr
    kept = {h for c in chains.values() if c.height for h in (*c.settled, *c.claimed) if _live(h, c, expiry)}
    closed = {cid for c in chains.values() for cid in c.closed}
    data = {
        "version": SNAPSHOT_VERSION, "network": led.network_id, "time_ms": time_ms,
        "heads_digest": led.heads_digest(), "heads": heads,
        "proofs": {p.author: p.to_canonical() for p in led.proofs()},
        "fold": _fold_state(fold),
        "chains": {a: _chain_state(ch, expiry, refs, closed) for a, ch in chains.items() if ch.height},
        "expiry": {h: expiry[h] for h in sorted(kept) if h in expiry},
        "refs": {a: {str(h): hdr.to_canonical() for h, hdr in sorted(r.items())} for a, r in sorted(refs.items())},
    }
    return Snapshot(json.loads(canonical(data)))   # through JSON: exactly what a peer parses


def _nz(d: Mapping[str, int]) -> dict[str, int]:
    return {k: v for k, v in d.items() if v}


def _fold_state(f: Fold) -> dict[str, Any]:
    channels = {}
    keep_vouchers: set[str] = set()
    for cid, c in f.channels.items():
        claims = []
        if c.claims:            # only the latest claim pays (and nothing below a cut is removed)
            top = max(c.claims)
            claims = [[*top, c.claims[top]]]
            keep_vouchers.add(top[2])
        i = c.info
        channels[cid] = {
            "info": None if i is None else [i.requester, i.executor, i.deposit, i.expires_ms],
            "opens": c.opens, "claims": claims,
            "voids": {h: list(v) for h, v in c.voids.items()}, "closes": c.closes, "contrib": list(c.contrib)}
    # transfers received below the cut are final: drop both sides (nothing can count them again)
    done = {k for k, n in f.received.items() if n and k in f.sent}
    return {
        "balance": _nz(f.balance), "stake": _nz(f.stake), "unbonding": _nz(f.unbonding),
        "earned": _nz(f.earned), "spent": _nz(f.spent),
        "claims": {h: list(v) for h, v in f.claims.items()}, "voids": sorted(f.voids),
        "duel_stats": {k: list(v) for k, v in f.duel_stats.items() if any(v)},
        "mentions": dict(f.mentions), "duels_settled": f.duels_settled, "entries_applied": f.entries_applied,
        "sent": {f"{h}:{i}": list(v) for (h, i), v in f.sent.items() if (h, i) not in done},
        "received": {f"{h}:{i}": n for (h, i), n in f.received.items() if (h, i) not in done},
        "in_flight": f.in_flight, "locked": f.locked, "channels": channels,
        "voucher_claims": {h: n for h, n in f.voucher_claims.items() if h in keep_vouchers},
        "voucher_voids": dict(f.voucher_voids),
        # duel bonds (issue 18): each duel's ticket, counted bonds / releases / verdicts, contribution
        "duel_locks": {dh: {"duel": d.duel.to_canonical(), "bonds": dict(d.bonds), "releases": dict(d.releases),
                            "verdicts": sorted([side, [list(x) for x in chosen], n]
                                               for (side, chosen), n in d.verdicts.items()),
                            "contrib": [dict(d.contrib[0]), dict(d.contrib[1]), dict(d.contrib[2]),
                                        None if d.contrib[3] is None else
                                        [d.contrib[3][0], sorted(list(x) for x in d.contrib[3][1].items())]]}
                       for dh, d in f.duel_locks.items() if d.duel is not None},
        "duel_locked": _nz(f.duel_locked),
    }


def _duel_ticket(c: Mapping[str, Any]) -> Any:
    """The :class:`~.signed.DuelTicket` of its canonical dict (``to_canonical``)."""
    from .signed import DuelTicket
    return DuelTicket(c["network"], c["duel_id"], c["requester"], tuple(c["executors"]), tuple(c["judges"]),
                      int(c["executor_bond"]), int(c["judge_bond"]), int(c["expires_ms"]),
                      issued_ms=int(c.get("issued_ms", 0)), pool=tuple((p, int(x)) for p, x in c.get("pool", ())),
                      judges_k=int(c.get("judges_k", 0)), signature=bytes.fromhex(c["sig"]))


def _live(h: str, ch: Chain, expiry: Mapping[str, int]) -> bool:
    """Whether ``ch`` must still remember settled duel / claimed ticket ``h``: its expiry is not
    before the chain's last block time (a later block, dated no earlier, could still name it)."""
    return expiry.get(h, 1 << 62) >= ch.last_time


def _chain_state(ch: Chain, expiry: Mapping[str, int], refs: Mapping[str, Mapping[int, Any]] | None = None,
                 closed: "set[str] | frozenset[str]" = frozenset()) -> dict[str, Any]:
    """One chain's facts in a snapshot, compacted (issue 18, bounded state): expired settled
    duels and claimed legacy tickets are forgotten (:func:`_live`); a received transfer's key is
    kept only while its sender's block is kept as a ref (a Receive naming any other block at or
    below the cut is refused there as ``pruned_history``, so the key cannot matter); the latest
    claim on a channel that is closed at the cut is forgotten (a close needs the executor's
    chain past the channel's expiry, so no claim on it can follow, and the close already took
    the claimed amount)."""
    t = ch.last_time
    refs = {} if refs is None else refs
    matured = sum(a for m, a in ch.unbonds if m <= t) - ch.withdrawn   # later blocks are dated >= t
    unbonds = ([[0, matured]] if matured else []) + [[m, a] for m, a in ch.unbonds if m > t]
    return {
        "own_stake": ch.own_stake, "unbonds": unbonds, "funds": ch.funds,
        "claimed": sorted(h for h in ch.claimed if _live(h, ch, expiry)), "voided": sorted(ch.voided),
        "settled": sorted(h for h in ch.settled if _live(h, ch, expiry)),
        "received": sorted([list(k) for k in ch.received if k[1] in refs.get(k[0], ())]),
        "opened": {c: [i.requester, i.executor, i.deposit, i.expires_ms] for c, i in ch.opened.items()},
        "closed": sorted(ch.closed),
        "chan_claims": {c: list(v) for c, v in ch.chan_claims.items() if c not in closed},
        "bonded": sorted(ch.bonded), "released": sorted(ch.released), "verdicts": dict(ch.verdicts),
        **({"won": sorted(ch.won)} if ch.won else {}),
    }


# ------------------------------------------------------------------ loading
def _key(s: str) -> tuple[str, int]:
    h, i = s.rsplit(":", 1)
    return h, int(i)


def _header(d: Mapping[str, Any]) -> BlockHeader:
    hdr = BlockHeader(d["network"], d["author"], d["height"], d["prev_hash"], d["time_ms"], d["entries_hash"],
                      bytes.fromhex(d["sig"]))
    if hdr.to_canonical() != dict(d):
        raise ValueError("header not canonical")
    return hdr


def _proof(d: Mapping[str, Any]) -> EquivocationProof:
    return EquivocationProof(_header(d["a"]), _header(d["b"]))


def restore_fold(snap: Snapshot, genesis: "Genesis | None") -> Fold:
    """A :class:`Fold` equal to the one ``snap`` was captured from (after compaction)."""
    d = snap.data["fold"]
    fold = Fold(genesis.allocations if genesis is not None else (), snap.network)
    fold.balance = dict(d["balance"])
    fold.stake = dict(d["stake"])
    fold.unbonding = dict(d["unbonding"])
    fold.earned = dict(d["earned"])
    fold.spent = dict(d["spent"])
    fold.claims = {h: (r, e, int(a)) for h, (r, e, a) in d["claims"].items()}
    fold.voids = set(d["voids"])
    fold.duel_stats = {k: [int(x) for x in v] for k, v in d["duel_stats"].items()}
    fold.mentions = dict(d["mentions"])
    fold.duels_settled = d["duels_settled"]
    fold.entries_applied = d["entries_applied"]
    fold.sent = {_key(k): (to, int(a)) for k, (to, a) in d["sent"].items()}
    fold.received = {_key(k): int(n) for k, n in d["received"].items()}
    fold.in_flight = d["in_flight"]
    fold.locked = d["locked"]
    for cid, c in d["channels"].items():
        ch = _Channel()
        if c["info"] is not None:
            r, e, dep, exp = c["info"]
            ch.info = ChannelInfo(r, e, int(dep), int(exp))
        ch.opens = int(c["opens"])
        ch.claims = {(int(s), int(a), h): int(n) for s, a, h, n in c["claims"]}
        ch.voids = {h: [int(v[0]), int(v[1])] for h, v in c["voids"].items()}
        ch.closes = int(c["closes"])
        r, e, paid, dreq, locked = c["contrib"]
        ch.contrib = (r, e, int(paid), int(dreq), int(locked))
        fold.channels[cid] = ch
    fold.voucher_claims = dict(d["voucher_claims"])
    fold.voucher_voids = dict(d["voucher_voids"])
    from .fold import _DuelLock
    for dh, c in d.get("duel_locks", {}).items():
        dl = _DuelLock()
        dl.duel = _duel_ticket(c["duel"])
        if dl.duel.hash != dh:
            raise ValueError("duel lock of another duel")
        dl.bonds = {p: int(n) for p, n in c["bonds"].items()}
        dl.releases = {p: int(n) for p, n in c["releases"].items()}
        dl.verdicts = {(side, tuple((j, ch) for j, ch in chosen)): int(n) for side, chosen, n in c["verdicts"]}
        bal, stk, lk, counted = c["contrib"]
        dl.contrib = ({p: int(v) for p, v in bal.items()}, {p: int(v) for p, v in stk.items()},
                      {p: int(v) for p, v in lk.items()},
                      None if counted is None else (counted[0], {j: ch for j, ch in counted[1]}))
        fold.duel_locks[dh] = dl
    fold.duel_locked = {p: int(v) for p, v in d.get("duel_locked", {}).items()}
    return fold


def _chain(c: Mapping[str, Any], head: list, refs: Mapping[str, Any]) -> Chain:
    h, tip, tm = head
    ch = Chain(base=int(h), base_hash=tip, base_time=int(tm),
               refs={int(k): _header(v) for k, v in refs.items()})
    ch.own_stake = int(c["own_stake"])
    ch.unbonds = [(int(m), int(a)) for m, a in c["unbonds"]]
    ch.withdrawn = 0
    ch.funds = int(c["funds"])
    ch.claimed = set(c["claimed"])
    ch.voided = set(c["voided"])
    ch.settled = set(c["settled"])
    ch.received = {(s, int(hh), int(i)) for s, hh, i in c["received"]}
    ch.opened = {cid: ChannelInfo(r, e, int(dep), int(exp)) for cid, (r, e, dep, exp) in c["opened"].items()}
    ch.closed = set(c["closed"])
    ch.chan_claims = {cid: (int(s), int(a)) for cid, (s, a) in c["chan_claims"].items()}
    ch.bonded = set(c.get("bonded", ()))
    ch.released = set(c.get("released", ()))
    ch.verdicts = dict(c.get("verdicts", {}))
    ch.won = set(c.get("won", ()))
    return ch


def load_snapshot(genesis: "Genesis", snap: Snapshot, **ledger_kwargs: Any) -> "Ledger":
    """A replica whose state is ``snap`` (its heads are the base of each chain: blocks above
    them are added as usual). Does **not** check attestation (:func:`is_attested`).

    :raises LedgerError: ``snap`` is of another network."""
    from .replica import Ledger
    led = Ledger(genesis, **ledger_kwargs)
    if snap.network != led.network_id:
        raise LedgerError("snapshot of another network")
    d = snap.data
    led._fold = restore_fold(snap, genesis)
    for a, head in d["heads"].items():
        c = d["chains"].get(a)
        if c is None:
            continue
        led._chains[a] = _chain(c, head, d["refs"].get(a, {}))
    for a, p in d["proofs"].items():
        led._proofs[a] = _proof(p)
    led._snapshot_expiry = {h: int(v) for h, v in d.get("expiry", {}).items()}
    unstakes = getattr(led, "_unstakes", None)
    if unstakes is not None:   # unbonding by first sight (replica docstring): settled ones by their dates
        for a, ch in led._chains.items():
            if ch.unbonds:
                unstakes[a] = [(ch.base, m, amt) for m, amt in ch.unbonds]
    led.base_snapshot = snap
    led._version += 1
    return led


# ------------------------------------------------------------------ attestation
@dataclass(frozen=True)
class Checkpoint:
    """A member's attestation of a snapshot: ``{network, time_ms, snapshot_hash, heads_digest}``
    signed by ``signer`` under :data:`DOMAIN_CHECKPOINT`."""

    network: str
    time_ms: int
    snapshot_hash: str
    heads_digest: str
    signer: str
    signature: bytes = b""

    def body(self) -> dict[str, Any]:
        return {"t": "checkpoint", "network": self.network, "time_ms": self.time_ms,
                "snapshot_hash": self.snapshot_hash, "heads_digest": self.heads_digest, "signer": self.signer}

    def signed(self, sign: Signer) -> "Checkpoint":
        return replace(self, signature=sign(DOMAIN_CHECKPOINT, canonical(self.body())))

    def valid(self) -> bool:
        """Well-formed and signed by ``signer``."""
        try:
            check_peer(self.signer, "checkpoint signer")
            check_hex(self.snapshot_hash, "snapshot_hash")
            check_hex(self.heads_digest, "heads_digest")
        except InvalidBlock:
            return False
        if not isinstance(self.time_ms, int) or self.time_ms < 0 or not isinstance(self.signature, bytes):
            return False
        return verify(self.signer, DOMAIN_CHECKPOINT, canonical(self.body()), self.signature)

    def of(self, snap: Snapshot) -> bool:
        """Whether this checkpoint names ``snap``."""
        return (self.network, self.time_ms, self.snapshot_hash, self.heads_digest) == \
            (snap.network, snap.time_ms, snap.hash, snap.heads_digest)


def attestation(snap: Snapshot, signer: str, sign: Signer) -> Checkpoint:
    """``signer``'s signed :class:`Checkpoint` of ``snap``."""
    return Checkpoint(snap.network, snap.time_ms, snap.hash, snap.heads_digest, signer).signed(sign)


def attestation_weights(snap: Snapshot, genesis: "Genesis | None" = None) -> dict[str, int]:
    """Who counts and how much: stake at the cut (:meth:`Snapshot.stakes`); when nobody stakes,
    the genesis allocations (equivocators excluded)."""
    w = snap.stakes()
    if not w and genesis is not None:
        cut = set(snap.data["proofs"])
        w = {p: a for p, a in genesis.allocations if a > 0 and p not in cut}
    return w


def attested_weight(snap: Snapshot, checkpoints: Iterable[Checkpoint], weights: Mapping[str, int]) -> int:
    """Total weight of the distinct valid signers of ``snap`` among ``checkpoints`` (at most
    :data:`MAX_CHECKPOINTS` looked at)."""
    seen: set[str] = set()
    total = 0
    for i, cp in enumerate(checkpoints):
        if i >= MAX_CHECKPOINTS:
            break
        if cp.signer in seen or not cp.of(snap) or weights.get(cp.signer, 0) <= 0 or not cp.valid():
            continue
        seen.add(cp.signer)
        total += weights[cp.signer]
    return total


def is_attested(snap: Snapshot, checkpoints: Iterable[Checkpoint], genesis: "Genesis | None" = None, *,
                view_stake: Mapping[str, int] | None = None) -> bool:
    """Whether signers holding more than 2/3 of the stake at the cut attested ``snap`` (and,
    with ``view_stake``, more than 2/3 of that stake table too: a node's own current view)."""
    cps = list(checkpoints)[:MAX_CHECKPOINTS]
    weights = attestation_weights(snap, genesis)
    total = sum(weights.values())
    if total <= 0 or attested_weight(snap, cps, weights) * THRESHOLD_DEN <= total * THRESHOLD_NUM:
        return False
    if view_stake is not None:
        view = {p: s for p, s in view_stake.items() if s > 0}
        vt = sum(view.values())
        if vt > 0 and attested_weight(snap, cps, view) * THRESHOLD_DEN <= vt * THRESHOLD_NUM:
            return False
    return True


def prune(ledger: "Ledger", snap: Snapshot) -> "Ledger":
    """``ledger`` re-based on ``snap`` (a snapshot of ``ledger``'s own history): a replica
    loaded from ``snap`` plus ``ledger``'s accepted blocks above each chain's cut and its proofs.
    Its state equals ``ledger``'s (see the tests); blocks at or below the cut are no longer held.

    :raises LedgerError: ``snap``'s heads are not ``ledger``'s blocks (another history)."""
    for a, (h, tip) in snap.heads().items():
        ch = ledger._chains.get(a)
        if ch is None or ch.height < h:
            raise LedgerError(f"snapshot head {a[:16]}@{h} beyond this replica")
        if h == ch.base:
            if ch.base_hash != tip:
                raise LedgerError(f"snapshot head {a[:16]}@{h} is not our block")
            continue
        try:
            have = ch.at(h)
        except InvalidBlock:
            raise LedgerError(f"snapshot head {a[:16]}@{h} below this replica's base") from None
        if have.hash != tip:
            raise LedgerError(f"snapshot head {a[:16]}@{h} is not our block")
    new = load_snapshot(ledger.genesis, snap, max_pending=ledger.max_pending)
    for p in sorted(ledger.proofs(), key=lambda p: p.author):
        new.add_proof(p, checked=True)
    heads = snap.heads()
    for author in sorted(ledger.heads()):
        lo = heads.get(author, (0, ""))[0] + 1
        for b in ledger.blocks(author, lo):
            new.add_block(b, verified=True)
    old_unstakes = getattr(ledger, "_unstakes", None)
    if old_unstakes is not None:   # keep when we first saw the Unstakes above the cut
        for a, us in old_unstakes.items():
            base = new.base_height(a)
            new._unstakes[a] = [u for u in new._unstakes.get(a, []) if u[0] <= base] + [u for u in us if u[0] > base]
        new._unbonding_held = dict(getattr(ledger, "_unbonding_held", {}))
    return new


def rebase(ledger: "Ledger", snap: Snapshot) -> None:
    """Prune ``ledger`` **in place** (:func:`prune`): objects holding a reference to it (the
    services) see the re-based replica. Pending and waiting blocks are offered again."""
    pending = [b for buf in (ledger._pending, ledger._waiting) for by in buf._by_author.values()
               for b, _size in by.values()]
    new = prune(ledger, snap)
    ledger.__dict__.clear()
    ledger.__dict__.update(new.__dict__)
    for b in pending:
        ledger.add_block(b, verified=True)


def load_into(ledger: "Ledger", snap: Snapshot) -> None:
    """Replace the state of a replica by ``snap`` in place (a fresh node catching up, or one
    that was away while the network settled history it lacks), then offer it again every block
    it held (its own chain, say), its proofs and its pending blocks: those above the cut apply,
    those at or below it are settled (duplicates, or refused as pruned).

    :raises LedgerError: ``ledger``'s own snapshot is not older than ``snap`` (use
        :func:`rebase`), or ``snap`` is of another network."""
    if ledger.base_snapshot is not None and ledger.base_snapshot.time_ms >= snap.time_ms:
        raise LedgerError("this replica's snapshot is not older: rebase it instead")
    held = [b for a in sorted(ledger.heads()) for b in ledger.blocks(a)]
    held += [b for buf in (ledger._pending, ledger._waiting) for by in buf._by_author.values() for b, _ in by.values()]
    proofs = ledger.proofs()
    new = load_snapshot(ledger.genesis, snap, max_pending=ledger.max_pending)
    ledger.__dict__.clear()
    ledger.__dict__.update(new.__dict__)
    for p in sorted(proofs, key=lambda p: p.author):
        ledger.add_proof(p, checked=True)
    for b in held:
        ledger.add_block(b, verified=True)
