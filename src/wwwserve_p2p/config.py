"""Node configuration: frozen dataclasses that validate themselves, loaded from TOML.

A config file has one table per section (all optional)::

    [node]        data_dir, network, seed
    [net]         listen, bootstrap, heartbeat_interval, gossip_max_bytes, ...
    [status]      interval, jitter, suspect_after, offline_after
    [policy]      target_load, offload_frequency, queue_frequency, accept_frequency,
                  max_delegated, participate, probe_extra, exploration_share, stake
    [delegation]  probe_timeout, first_token_timeout, chunk_timeout, max_attempts, ...
    [executor]    kind = "echo" | "hf" | "openai", plus that executor's options
    [api]         enabled, host, port, public_url, admin
    [ledger]      genesis, block_interval, sync_interval, ticket_ttl, stake_interval, db
    [duel]        duel_rate, judges_k, executor_bond, judge_bond, judge_fee, max_bond, judge, ...

Any key can be overridden with ``section.key=value`` strings (``--set`` on the CLI); values
are parsed as TOML values (``4``, ``0.5``, ``true``, ``["a", "b"]``) and fall back to a
plain string. Times are seconds; stake is micro-credits.

In Python, build a config without strings (every value is checked the same way as a file's,
and every mistake raises :class:`~wwwserve_p2p.errors.ConfigError`)::

    config = NodeConfig.embedded()                       # no HTTP server, nothing on disk
    config = NodeConfig.embedded(http=True, policy={"target_load": 0.8})
    config = NodeConfig.from_dict({"api": {"port": 0}})   # the TOML file's shape
    config = config.with_values(duel={"duel_rate": 0.5})  # a copy with some keys changed

The section classes are frozen dataclasses that validate themselves, so
``NodeConfig(api=ApiSection(enabled=False))`` works too.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable, Mapping
from typing import Any

from .core.ledger import Genesis, LedgerParams
from .core.peers import PeerTableConfig
from .core.policy import OffloadPolicy
from .errors import ConfigError, LedgerError
from .net.config import Libp2pConfig


@dataclass(frozen=True)
class NodeSection:
    """``data_dir`` holds the identity key (``identity.key``), the ledger database and caches;
    ``""`` runs the node in memory (a fresh identity and an in-memory ledger each start,
    nothing written to disk). ``network`` names the network (nodes of different networks
    ignore each other); ``seed`` fixes the node's random choices (None: from the OS);
    ``log_level``: of the ``wwwserve_p2p`` loggers when run by the CLI."""

    data_dir: str = "./data/node"
    network: str = "wwwserve-dev"
    seed: int | None = None
    log_level: str = "INFO"



#: The ``[net]`` section is the overlay's own settings class.
NetSection = Libp2pConfig


@dataclass(frozen=True)
class StatusSection:
    """Peer-status gossip: published every ``interval`` seconds (+-``jitter`` fraction) and on
    significant change; silence for ``suspect_after``/``offline_after`` intervals marks a peer
    suspect/offline."""

    interval: float = 2.0
    jitter: float = 0.1
    suspect_after: float = 3
    offline_after: float = 6
    min_publish_gap: float = 0.25

    def __post_init__(self) -> None:
        if not 0 <= self.jitter < 1:
            raise ConfigError("status.jitter must be in [0, 1)")
        try:
            self.peer_table()
        except ConfigError as exc:
            raise ConfigError(f"status: {exc}") from None

    def peer_table(self) -> PeerTableConfig:
        return PeerTableConfig(self.interval, self.suspect_after, self.offline_after,
                               max(60.0, self.offline_after * 2))


@dataclass(frozen=True)
class DelegationSection:
    """Timeouts (seconds) of the delegation protocol and the retry budget of one user request.

    ``probe_timeout``: wait for a candidate's offer; ``first_token_timeout``: from commit to
    the first chunk; ``chunk_timeout``: max silence between chunks; ``max_attempts``: executors
    tried for one request (re-dispatch after failures); ``retry_delay``: wait before re-deciding
    a RETRY route; ``max_frame``: cap on one frame in bytes. ``misbehave``: for adversary
    experiments only (issue 15): ``"silent"`` makes this node accept delegated work (offer,
    commit, ticket) and then never answer; ``"decline"`` makes it lie about its capacity: its
    status always announces spare slots and it accepts every probe, then refuses every commit
    as "overloaded"; ``""`` (default) is honest."""

    probe_timeout: float = 2.0
    commit_timeout: float = 5.0
    first_token_timeout: float = 60.0
    chunk_timeout: float = 10.0
    max_attempts: int = 4
    retry_delay: float = 0.2
    max_retries: int = 20
    max_frame: int = 2 * 1024 * 1024
    misbehave: str = ""

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_frame < 1024:
            raise ConfigError("delegation.max_attempts must be >= 1 and max_frame >= 1024")
        if self.misbehave not in ("", "silent", "decline"):
            raise ConfigError(f"delegation.misbehave must be \"\", \"silent\" or \"decline\", got {self.misbehave!r}")
        for name in ("probe_timeout", "commit_timeout", "first_token_timeout", "chunk_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"delegation.{name} must be > 0")


@dataclass(frozen=True)
class ApiSection:
    """The OpenAI-compatible HTTP API. ``enabled`` false: no HTTP server (the node is used
    from Python only, or its app is mounted elsewhere with
    :func:`wwwserve_p2p.api.create_app`). ``port`` 0 picks a free port; ``public_url`` is
    advertised to peers (default: http://host:port); ``max_tokens_cap``: requests'
    ``max_tokens`` is capped at this; ``admin``: serve the ``/admin/*`` endpoints
    (``PUT /admin/denied-peers``, ``POST /admin/transfer``); ``keys_file``: API keys file
    (``wwwserve keys add --file``); set, every ``/v1/*`` and ``/admin/*`` request needs a
    bearer key (admin endpoints an admin key), see :mod:`wwwserve_p2p.api.auth`."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = ""
    max_tokens_cap: int = 4096
    admin: bool = False
    keys_file: str = ""


#: How far below zero a balance may go on a dev network (no genesis file): 1000 credits.
DEV_OVERDRAFT = 1_000_000_000


@dataclass(frozen=True)
class LedgerSection:
    """The credit ledger (DESIGN §4).

    ``genesis``: path of the network's genesis JSON (``wwwserve genesis`` writes one); empty
    means a *dev network* named by ``node.network``: no allocations, and every account may
    overdraw up to 1000 credits before it counts as in debt. ``block_interval``: how often
    queued entries (claims, voids, stake changes) are sealed into a block; ``sync_interval``:
    anti-entropy with a random peer over ``/wwwserve/ledger-sync/1``; ``ticket_ttl``: how long a
    delegation ticket stays claimable; ``stake_interval``: how often the stake policy runs;
    ``db``: SQLite file (default ``<data_dir>/ledger.sqlite``). Times in seconds.
    ``claim_every`` / ``claim_interval``: an executor claims a payment channel's latest total
    after this many served requests, or this many seconds after the first unclaimed one (one
    ledger entry for many requests; ``claim_every = 1`` claims every request)."""

    genesis: str = ""
    block_interval: float = 1.0
    sync_interval: float = 2.0
    ticket_ttl: float = 3600.0
    stake_interval: float = 2.0
    db: str = ""
    claim_every: int = 64
    claim_interval: float = 10.0
    #: snapshots of settled history (issue 18; core/ledger/snapshot.py): every
    #: ``checkpoint_interval`` s (0 = never) the node snapshots its replica at the cut
    #: ``checkpoint_settle`` s back, signs a checkpoint, and once members with > 2/3 of the stake
    #: attested the same hash prunes the blocks below the cut; ``snapshot_sync``: a node that
    #: just joined catches up from a peer's attested snapshot instead of every block
    checkpoint_interval: float = 600.0
    checkpoint_settle: float = 900.0
    snapshot_sync: bool = True

    def __post_init__(self) -> None:
        for name in ("block_interval", "sync_interval", "ticket_ttl", "stake_interval", "claim_interval"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"ledger.{name} must be > 0")
        if not isinstance(self.claim_every, int) or self.claim_every < 1:
            raise ConfigError("ledger.claim_every must be an integer >= 1")
        if self.checkpoint_interval < 0 or self.checkpoint_settle < 0:
            raise ConfigError("ledger.checkpoint_interval and checkpoint_settle must be >= 0")


JUDGE_METHODS = ("auto", "likelihood", "llm", "none")


@dataclass(frozen=True)
class DuelSection:
    """Duels and judging (DESIGN §6).

    As a requester: ``duel_rate`` is the probability that an offloaded request is sent to two
    stake-selected executors (the first to accept streams to the user, the other still
    completes and is paid); ``judges_k`` judges are chosen by stake among peers that judge,
    never the requester or a duelist. ``executor_bond``: what the losing executor forfeits to
    the winner; ``judge_bond``: base of the judge penalties (minority 20 %, abstain 5 % by
    default, genesis parameters); ``judge_fee``: paid to each judge that votes (micro-credits).
    ``probe_grace``: after the first executor accepts, how long to wait for a second;
    ``answer_timeout``: how long the second duelist and the receipts may take after the
    first answer; ``judge_timeout``: a judge that does not vote within it counts as abstaining
    (and is not paid). ``duel_ttl``: how long a duel ticket may be settled.

    As an executor or judge: ``max_bond``: the largest bond we accept to risk; ``judge``: our
    judging method: ``likelihood`` (mean token log-probability under our own model),
    ``llm`` (LLM-as-judge prompt to our executor), ``none`` (we do not judge), or ``auto``
    (likelihood when the executor can score answers, else none); ``judge_margin``: the
    likelihood judge abstains within this many nats/token; ``max_judging``: concurrent
    judgements. Amounts in micro-credits, times in seconds."""

    duel_rate: float = 0.0
    judges_k: int = 3
    executor_bond: int = 20_000
    judge_bond: int = 10_000
    judge_fee: int = 1_000
    probe_grace: float = 0.5
    answer_timeout: float = 180.0
    judge_timeout: float = 60.0
    duel_ttl: float = 3600.0
    max_bond: int = 1_000_000
    judge: str = "auto"
    judge_margin: float = 0.05
    max_judging: int = 2

    def __post_init__(self) -> None:
        if not 0.0 <= self.duel_rate <= 1.0:
            raise ConfigError(f"duel.duel_rate must be in [0, 1], got {self.duel_rate}")
        if self.judges_k < 1 or self.max_judging < 1:
            raise ConfigError("duel.judges_k and duel.max_judging must be >= 1")
        for name in ("executor_bond", "judge_bond", "judge_fee", "max_bond"):
            if getattr(self, name) < 0:
                raise ConfigError(f"duel.{name} must be >= 0")
        for name in ("probe_grace", "answer_timeout", "judge_timeout", "duel_ttl"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"duel.{name} must be > 0")
        if self.judge not in JUDGE_METHODS:
            raise ConfigError(f"duel.judge must be one of {', '.join(JUDGE_METHODS)}, got {self.judge!r}")
        if self.judge_margin < 0:
            raise ConfigError("duel.judge_margin must be >= 0")


@dataclass(frozen=True)
class NodeConfig:
    """A whole node's configuration: one frozen, self-validating section per TOML table.

    Build one with :func:`load_config` (TOML file + ``section.key=value`` overrides),
    :meth:`from_dict` (nested dicts of the file's shape), :meth:`embedded` (defaults for a
    node inside a Python program), or the section classes directly; derive variants with
    :meth:`with_values` or :meth:`replace`.
    """

    node: NodeSection = field(default_factory=NodeSection)
    net: NetSection = field(default_factory=NetSection)
    status: StatusSection = field(default_factory=StatusSection)
    policy: OffloadPolicy = field(default_factory=OffloadPolicy)
    delegation: DelegationSection = field(default_factory=DelegationSection)
    executor: dict[str, Any] = field(default_factory=lambda: {"kind": "echo"})
    api: ApiSection = field(default_factory=ApiSection)
    ledger: LedgerSection = field(default_factory=LedgerSection)
    duel: DuelSection = field(default_factory=DuelSection)

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, Any]]) -> "NodeConfig":
        """Build a config from nested dicts shaped like the TOML file:
        ``{"api": {"port": 0}, "policy": {"target_load": 0.8}}``; missing sections and keys
        keep their defaults.

        :raises ConfigError: unknown section or key, wrong type, or invalid value.
        """
        return config_from_dict(data)

    @classmethod
    def embedded(
        cls,
        *,
        network: str = "wwwserve-dev",
        bootstrap: str | Iterable[str] = (),
        listen: str | Iterable[str] = ("/ip4/127.0.0.1/tcp/0",),
        data_dir: str = "",
        http: bool = False,
        seed: int | None = None,
        **sections: Mapping[str, Any],
    ) -> "NodeConfig":
        """Defaults for a node embedded in a Python program.

        - no HTTP server (``http=True``: one on 127.0.0.1 on a free port; or mount
          :func:`wwwserve_p2p.api.create_app` in your own ASGI app);
        - in memory: ``data_dir=""`` means a fresh identity and an in-memory ledger on each
          start, nothing written to disk (give a directory to keep both across restarts);
        - the overlay listens on ``listen`` (default: loopback, a free TCP port) and dials
          ``bootstrap`` (multiaddrs ending in ``/p2p/<PeerId>``; none: a network of one until
          peers dial us) on network ``network`` (a dev network unless ``ledger={"genesis":
          path}``); ``seed`` fixes the node's random choices;
        - ``**sections``: more keys per section, as in :meth:`with_values`
          (``policy={"target_load": 0.8}``, ``executor={"kind": "echo"}``).

        :raises ConfigError: an invalid value (e.g. a malformed multiaddr) or unknown key.
        """
        base: dict[str, dict[str, Any]] = {
            "node": {"data_dir": data_dir, "network": network, "seed": seed},
            "net": {"listen": _str_tuple(listen, "net.listen"),
                    "bootstrap": _str_tuple(bootstrap, "net.bootstrap")},
            "api": {"enabled": True, "port": 0} if http else {"enabled": False},
        }
        return cls().with_values(**base).with_values(**sections)

    def with_values(self, **sections: Mapping[str, Any] | Any) -> "NodeConfig":
        """A copy with some keys changed, one keyword argument per section::

            config.with_values(api={"port": 0}, policy={"target_load": 0.8, "stake": 0})

        Each value is checked as in a TOML file (type, unknown key, range); keys not given keep
        their current values. A section object (``api=ApiSection(...)``) replaces the whole
        section. ``executor={...}`` is merged into ``[executor]`` unless it names another
        ``kind``, which replaces it.

        :raises ConfigError: unknown section or key, wrong type, or invalid value.
        """
        changes: dict[str, Any] = {}
        for name, table in sections.items():
            if name == "executor":
                if not isinstance(table, Mapping):
                    raise ConfigError("executor must be a mapping with a kind")
                current = dict(self.executor)
                if "kind" in table and table["kind"] != current.get("kind"):
                    current = {}
                changes["executor"] = _executor_table({**current, **table})
                continue
            cls = _section_class(name)
            if isinstance(table, cls):
                changes[name] = table
                continue
            if not isinstance(table, Mapping):
                raise ConfigError(f"{name} must be a mapping of keys to values or a {cls.__name__}")
            changes[name] = _build_section(name, cls, table, base=getattr(self, name))
        return dataclasses.replace(self, **changes)

    def genesis(self) -> Genesis:
        """The network's genesis: read from ``ledger.genesis``, or the dev genesis of ``node.network``.

        :raises ConfigError: unreadable or invalid genesis file.
        """
        if not self.ledger.genesis:
            return Genesis(self.node.network, LedgerParams(overdraft=DEV_OVERDRAFT),
                           note="dev network without a genesis file")
        return load_genesis(self.ledger.genesis)

    def replace(self, **sections: Any) -> "NodeConfig":
        return dataclasses.replace(self, **sections)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (TOML-serialisable except None values, which are dropped)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            d = dict(v) if isinstance(v, dict) else dataclasses.asdict(v)
            out[f.name] = {k: (list(x) if isinstance(x, tuple) else x) for k, x in d.items() if x is not None}
        return out


_SECTIONS = {"node": NodeSection, "net": NetSection, "status": StatusSection, "policy": OffloadPolicy,
             "delegation": DelegationSection, "api": ApiSection, "ledger": LedgerSection,
             "duel": DuelSection}


def load_genesis(path: str | Path) -> Genesis:
    """Read a genesis JSON file (as written by ``wwwserve genesis``).

    :raises ConfigError: unreadable file, invalid JSON, or invalid genesis contents.
    """
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read genesis file {path}: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"genesis file {path} is not valid JSON: {exc}") from None
    try:
        return Genesis.from_dict(data)
    except (LedgerError, TypeError) as exc:
        raise ConfigError(f"invalid genesis file {path}: {exc}") from None


def write_genesis(genesis: Genesis, path: str | Path) -> None:
    """Write ``genesis`` as indented JSON (the network id does not depend on formatting)."""
    Path(path).write_text(json.dumps(genesis.to_dict(), indent=2, sort_keys=True) + "\n")


def parse_value(text: str) -> Any:
    """Parse an override value as a TOML value, falling back to the raw string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def config_from_dict(data: Mapping[str, Any]) -> NodeConfig:
    """Build a NodeConfig from nested dicts (the TOML file's shape).

    :raises ConfigError: unknown section or key, wrong type, or invalid value.
    """
    kwargs: dict[str, Any] = {}
    for name, table in data.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"[{name}] must be a table")
        if name == "executor":
            kwargs["executor"] = _executor_table(table)
            continue
        kwargs[name] = _build_section(name, _section_class(name), table)
    return NodeConfig(**kwargs)


def _section_class(name: str) -> type:
    cls = _SECTIONS.get(name)
    if cls is None:
        raise ConfigError(f"unknown config section [{name}]; known: {', '.join(['executor', *_SECTIONS])}")
    return cls


def _executor_table(table: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(table.get("kind"), str) or not table["kind"]:
        raise ConfigError("[executor] needs kind = \"echo\" | \"hf\" | \"openai\" | \"simulated\" | \"random\"")
    if "quantize" in table:  # hf: none | int8 | fp8 | int<bits>-g<group>, checked before any model loads
        from .executors.quant import parse_quantize
        try:
            parse_quantize(table["quantize"])
        except ConfigError as exc:
            raise ConfigError(f"[executor] {exc}") from None
    return dict(table)


def _str_tuple(value: str | Iterable[str], key: str) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else tuple(value)
    if not all(isinstance(x, str) for x in items):
        raise ConfigError(f"{key} must be a string or a list of strings")
    return items


def _build_section(name: str, cls: type, table: Mapping[str, Any], base: Any = None) -> Any:
    """``cls`` built from ``base`` (default: the defaults) with ``table``'s keys checked and applied."""
    known = [f.name for f in dataclasses.fields(cls)]
    defaults = cls()
    values = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"unknown key {name}.{key}; known: {', '.join(known)}")
        default = getattr(defaults, key)
        if isinstance(default, tuple):
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{name}.{key} must be a list")
            value = tuple(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{name}.{key} must be true or false")
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif default is None:  # optional integers (node.seed)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ConfigError(f"{name}.{key} must be an integer, got {value!r}")
        elif not isinstance(value, type(default)) or isinstance(value, bool):
            raise ConfigError(f"{name}.{key} must be of type {type(default).__name__}, got {value!r}")
        values[key] = value
    try:
        return dataclasses.replace(base, **values) if base is not None else cls(**values)
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"[{name}]: {exc}") from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``section.key=value`` overrides applied.

    :raises ConfigError: an override is not of the form ``section.key=value``.
    """
    out = {k: dict(v) for k, v in data.items()}
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        path, raw = item.split("=", 1)
        section, key = path.strip().split(".", 1)
        out.setdefault(section, {})[key.strip()] = parse_value(raw.strip())
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> NodeConfig:
    """Load a TOML file (or the defaults when ``path`` is None) and apply overrides.

    :raises ConfigError: unreadable file, invalid TOML, or invalid values.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"invalid TOML in {path}: {exc}") from None
    return config_from_dict(apply_overrides(data, overrides or []))
