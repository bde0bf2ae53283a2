"""A network's definition: :class:`LedgerParams` and :class:`Genesis` (its hash is the network id)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ...errors import InvalidBlock, LedgerError
from .codes import canonical, check_amount, check_peer, sha256_hex


@dataclass(frozen=True)
class LedgerParams:
    """Network-wide ledger parameters, fixed by the genesis file.

    - ``unbonding_ms``: delay before unstaked credit can be withdrawn (ms of block time).
    - ``overdraft``: how far below zero a balance may go before the account is *in debt*.
    - ``max_block_entries``, ``max_block_bytes``: caps on one block (bytes: canonical form).
    - ``price_base``, ``price_per_token``: the price a requester signs for a delegated request:
      ``price_base + price_per_token * max_tokens``; the executor claims ``price_base +
      price_per_token * completion_tokens`` (never more than the ticket's price).
    - ``minority_penalty_pct``, ``abstain_penalty_pct``: share of a judge's bond lost when it
      votes with the minority or abstains (paper: 20% and 5%); the pool goes to the majority.
    """

    unbonding_ms: int = 600_000
    overdraft: int = 0
    max_block_entries: int = 1000
    max_block_bytes: int = 512 * 1024
    price_base: int = 1_000
    price_per_token: int = 100
    minority_penalty_pct: int = 20
    abstain_penalty_pct: int = 5

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise LedgerError(f"ledger parameter {f.name} must be an integer >= 0, got {v!r}")
        if self.max_block_entries < 1 or self.max_block_bytes < 1024:
            raise LedgerError("max_block_entries must be >= 1 and max_block_bytes >= 1024")
        if self.minority_penalty_pct > 100 or self.abstain_penalty_pct > 100:
            raise LedgerError("penalty percentages must be <= 100")

    def price(self, tokens: int) -> int:
        """Price in micro-credits of a request of ``tokens`` completion tokens."""
        return self.price_base + self.price_per_token * max(0, tokens)


@dataclass(frozen=True)
class Genesis:
    """A network's genesis: its name, parameters and initial allocations (PeerId -> micro-credits).

    ``network_id`` (32 hex digits) is the SHA-256 of the canonical bytes, so two networks with
    the same name but different parameters or allocations never mix.

    ``created_ms`` (optional, ms since the epoch, 0 = unset): no block may be dated before it
    (:attr:`Reason.BEFORE_GENESIS`). It enters the canonical bytes only when set, so the
    network id of a genesis written without it is unchanged.

    :raises LedgerError: invalid allocations or parameters.
    """

    network: str
    params: LedgerParams = field(default_factory=LedgerParams)
    allocations: tuple[tuple[str, int], ...] = ()
    note: str = ""
    created_ms: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.network, str) or not self.network:
            raise LedgerError("genesis needs a non-empty network name")
        c = self.created_ms
        if not isinstance(c, int) or isinstance(c, bool) or not 0 <= c < 1 << 62:
            raise LedgerError(f"genesis created_ms must be an integer >= 0 (ms), got {c!r}")
        seen = set()
        for peer, amount in self.allocations:
            try:
                check_peer(peer, "allocation PeerId")
                check_amount(amount, f"allocation of {peer}")
            except InvalidBlock as exc:
                raise LedgerError(f"genesis: {exc}") from None
            if peer in seen:
                raise LedgerError(f"genesis: {peer} is allocated twice")
            seen.add(peer)
        object.__setattr__(self, "allocations", tuple(sorted(self.allocations)))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "network": self.network, "note": self.note,
            "params": {f.name: getattr(self.params, f.name) for f in fields(self.params)},
            "allocations": {p: a for p, a in self.allocations}}
        if self.created_ms:
            out["created_ms"] = self.created_ms
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Genesis":
        """:raises LedgerError: missing or invalid fields, unknown parameters."""
        if not isinstance(data, Mapping) or "network" not in data:
            raise LedgerError("genesis must be an object with at least a 'network' field")
        unknown = set(data) - {"network", "note", "params", "allocations", "created_ms"}
        if unknown:
            raise LedgerError(f"genesis: unknown fields {sorted(unknown)}")
        params = data.get("params") or {}
        known = {f.name for f in fields(LedgerParams)}
        if not isinstance(params, Mapping) or set(params) - known:
            raise LedgerError(f"genesis: unknown params {sorted(set(params) - known)}; known: {sorted(known)}")
        allocs = data.get("allocations") or {}
        if not isinstance(allocs, Mapping):
            raise LedgerError("genesis: allocations must map PeerId -> micro-credits")
        return cls(network=data["network"], params=LedgerParams(**params),
                   allocations=tuple(allocs.items()), note=str(data.get("note", "")),
                   created_ms=data.get("created_ms", 0))

    def canonical_bytes(self) -> bytes:
        return canonical({"t": "genesis", **self.to_dict()})

    @property
    def hash(self) -> str:
        """SHA-256 (64 hex) of the canonical bytes; height-1 blocks link to it."""
        return sha256_hex(self.canonical_bytes())

    @property
    def network_id(self) -> str:
        """The network id: the first 32 hex digits of :attr:`hash`."""
        return self.hash[:32]

    @property
    def supply(self) -> int:
        return sum(a for _, a in self.allocations)
