"""Membership: the peer table, and peer events fanned out to whoever subscribed.

The status service feeds it peers' statuses (:meth:`Membership.observe`) and periodic sweeps;
streams that cannot be opened mark a peer unreachable. Each change of a peer's state
(joined, rejoined, suspect, offline, recovered, forgotten; DESIGN §3) goes to every
subscriber: the ledger service pulls from peers that (re)join or whose ledger digest differs,
the requester resets in-flight work on peers gone offline, and membership itself dials
newcomers it is not connected to.

Defenses (issue 15), each bounded:

- *Earned standing.* ``standing(peer_id)`` (the ledger's ``is_member``) or a direct
  connection makes an author *known*; everyone else lands in the peer table's bounded
  newcomer pool (:class:`~wwwserve_p2p.core.peers.PeerTable`), which never evicts or
  starves known peers. :meth:`admit_status` (called by the status validator) lets statuses
  of authors not in the table, relayed by a neighbour that is not a member, through at
  most :data:`NEWCOMER_RATE` per second per such neighbour (:data:`NEWCOMER_BURST` at once)
  and :data:`NEWCOMER_TOTAL_RATE` in all; beyond that they are rejected and not relayed, so
  a flood of fresh identities does not spread, and the rejections lower the injecting
  neighbour's GossipSub score until its messages are dropped before their signatures are
  even checked (:mod:`wwwserve_p2p.net.libp2p.gossip`).
- *Dials gated.* Addresses learned from gossip are dialled through :class:`DialGate`: at
  most :data:`DIAL_RATE` dials per second in total (burst :data:`DIAL_BURST`) and at most
  one per transport address (``/ip4/../tcp/..``, whatever ``/p2p/`` id it carries) per
  :data:`DIAL_ADDR_INTERVAL` seconds, so a node cannot be made a reflection amplifier.
  Known peers are dialled when they join; newcomers when they join if the budget allows,
  else on a later sweep while they stay alive.
- *Liveness by contact.* Every half status interval, connected known peers that have
  been silent on gossip for more than one interval are pinged over :data:`PING_PROTOCOL`
  (at most :data:`MAX_PINGS` at once, each bounded by two intervals); an answer counts as
  having heard from them (:meth:`PeerTable.touch`), so a gossip flood that delays or drops
  their statuses does not make them suspect or offline.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable

import trio

from ..core.peers import PeerEntry, PeerEvent, PeerState, PeerTable, PeerTableConfig
from ..core.types import PeerStatus
from ..errors import OverlayError
from ..net._ratelimit import TokenBuckets
from ..net.base import Overlay, Stream
from .runtime import Runtime

log = logging.getLogger("wwwserve_p2p.membership")

#: ``subscriber(events, status)``: ``status`` is the status that caused them (None for sweeps
#: and unreachable marks). Must not block or raise.
PeerSubscriber = Callable[[list[PeerEvent], PeerStatus | None], None]

#: Statuses of authors not in our table accepted per second per forwarding neighbour that
#: is not a member itself, and in total from such neighbours (members are not limited: they
#: relay only what their own budget let in).
NEWCOMER_RATE = 20.0
NEWCOMER_BURST = 50
NEWCOMER_TOTAL_RATE = 50.0
NEWCOMER_TOTAL_BURST = 100
#: Dials of gossip-learned addresses: per second in total, burst, and seconds between two
#: dials of one transport address.
DIAL_RATE = 1.0
DIAL_BURST = 8
DIAL_ADDR_INTERVAL = 60.0
#: Liveness pings: protocol, bytes echoed, concurrent pings at most.
PING_PROTOCOL = "/wwwserve/ping/1"
PING_BYTES = 8
MAX_PINGS = 16
#: A ping's deadline: two status intervals, at least this many seconds.
PING_MIN_TIMEOUT = 2.0
#: Bound on the per-address dial memo.
_MAX_DIAL_ADDRS = 4096


def transport_addr(multiaddr: str) -> str:
    """The part of ``multiaddr`` before ``/p2p/`` (what is actually dialled)."""
    return multiaddr.split("/p2p/", 1)[0]


class DialGate:
    """Rate limits for dials of gossip-learned addresses (pure; ``now`` in seconds).

    ``allow(addr, now)``: True (and spends budget) if ``addr``'s transport address was not
    dialled in the last ``addr_interval`` seconds and the global bucket has a token. The
    per-address memo holds at most ``max_addrs`` addresses (older ones are dropped first)."""

    def __init__(self, rate: float = DIAL_RATE, burst: int = DIAL_BURST, addr_interval: float = DIAL_ADDR_INTERVAL,
                 max_addrs: int = _MAX_DIAL_ADDRS):
        self._bucket = TokenBuckets(rate, burst, max_keys=1)
        self.addr_interval = addr_interval
        self.max_addrs = max_addrs
        self._last: dict[str, float] = {}
        self.stats: Counter[str] = Counter()

    def allow(self, addr: str, now: float) -> bool:
        key = transport_addr(addr)
        last = self._last.get(key)
        if last is not None and now - last < self.addr_interval:
            self.stats["dials_refused_addr"] += 1
            return False
        if not self._bucket.allow("all", now):
            self.stats["dials_refused_rate"] += 1
            return False
        if key not in self._last and len(self._last) >= self.max_addrs:
            cutoff = now - self.addr_interval
            for k in [k for k, t in self._last.items() if t <= cutoff] or list(self._last)[: self.max_addrs // 2]:
                del self._last[k]
        self._last.pop(key, None)
        self._last[key] = now
        self.stats["dials"] += 1
        return True


class Membership:
    """Owns the :class:`~wwwserve_p2p.core.peers.PeerTable` of one node (``me``).

    ``standing(peer_id) -> bool``: whether the author has earned a place among known peers
    (the ledger's membership); set later with :meth:`set_standing` (default: everyone)."""

    def __init__(self, me: str, config: PeerTableConfig, overlay: Overlay, runtime: Runtime,
                 standing: Callable[[str], bool] | None = None):
        self.me = me
        self.table = PeerTable(config, me)
        self._overlay = overlay
        self._runtime = runtime
        self._subscribers: list[PeerSubscriber] = []
        self._standing = standing
        self.dials = DialGate()
        self._newcomer_buckets = TokenBuckets(NEWCOMER_RATE, NEWCOMER_BURST, max_keys=1024)
        self._newcomer_total = TokenBuckets(NEWCOMER_TOTAL_RATE, NEWCOMER_TOTAL_BURST, max_keys=1)
        self._pinging: set[str] = set()
        self._last_ping: dict[str, float] = {}
        self.stats: Counter[str] = Counter()
        overlay.set_stream_handler(PING_PROTOCOL, self._serve_ping)

    def set_standing(self, standing: Callable[[str], bool]) -> None:
        """Decide who is known (e.g. ``ledger_service.is_member``)."""
        self._standing = standing

    def subscribe(self, fn: PeerSubscriber) -> None:
        """Call ``fn(events, status)`` on every observed status and membership change."""
        self._subscribers.append(fn)

    @property
    def now(self) -> float:
        return self._runtime.clock.monotonic()

    def is_known(self, peer_id: str, connected: set[str] | None = None) -> bool:
        """Known: a ledger member (``standing``) or directly connected."""
        if self._standing is None or self._standing(peer_id):
            return True
        if connected is None:
            connected = set(self._overlay.connected_peers())
        return peer_id in connected

    # ------------------------------------------------------------ inputs
    def admit_status(self, author: str, forwarder: str) -> bool:
        """For the status validator: may a status by ``author``, relayed by ``forwarder``,
        enter (and be relayed)? Authors in the table or known always; others within the
        newcomer budget of ``forwarder``."""
        if self.table.get(author) is not None or author == self.me:
            return True
        if self._standing is None or self._standing(author) or author == forwarder or self._standing(forwarder):
            return True  # a member relays only what its own budget let in
        now = self.now
        if self._newcomer_buckets.allow(forwarder, now) and self._newcomer_total.allow("all", now):
            return True
        self.stats["statuses_refused_newcomer_rate"] += 1
        return False

    def observe(self, status: PeerStatus) -> None:
        """A peer's status arrived (already validated). A newcomer promoted to known (it
        earned stake or we connected) is announced to subscribers as ``joined`` then."""
        known = self.is_known(status.peer_id)
        old = self.table.get(status.peer_id)
        was_newcomer = old is not None and old.newcomer
        events = self.table.observe(status, self.now, known=known)
        if was_newcomer and not self.table.get(status.peer_id).newcomer \
                and not any(e.peer_id == status.peer_id for e in events):
            events = [*events, PeerEvent("joined", status.peer_id)]
        self._publish(events, status, known)

    def sweep(self) -> None:
        """Mark peers that went silent suspect or offline, forget long-gone ones; ping
        connected known peers that have been quiet; retry dials of alive newcomers."""
        now = self.now
        self._publish(self.table.sweep(now), None)
        if not self._runtime.running:
            return
        connected = set(self._overlay.connected_peers())
        interval = self.table.config.status_interval
        for e in self.table:
            pid = e.status.peer_id
            if pid in connected:
                if not e.newcomer and now - e.last_seen > interval and len(self._pinging) < MAX_PINGS \
                        and pid not in self._pinging and now - self._last_ping.get(pid, -1e9) >= interval:
                    self._pinging.add(pid)
                    self._last_ping[pid] = now
                    self._runtime.spawn(self._ping, pid, max(2.0 * interval, PING_MIN_TIMEOUT))
            elif e.newcomer and self.state(e) is PeerState.ALIVE and e.status.addrs:
                self._dial_gated(e.status.addrs)
        if len(self._last_ping) > 2 * len(self.table) + 64:
            self._last_ping = {p: t for p, t in self._last_ping.items() if self.table.get(p) is not None}

    def mark_unreachable(self, peer_id: str) -> None:
        """A stream to ``peer_id`` could not be opened: stop selecting it until it speaks again."""
        self._publish(self.table.mark_offline(peer_id), None)

    def _publish(self, events: list[PeerEvent], status: PeerStatus | None, known: bool = True) -> None:
        for ev in events:
            log.log(logging.INFO if known else logging.DEBUG, "peer %s %s", ev.peer_id, ev.kind)
            if ev.kind in ("joined", "rejoined") and status is not None and ev.peer_id == status.peer_id \
                    and self._runtime.running and status.addrs \
                    and ev.peer_id not in self._overlay.connected_peers():
                self._dial_gated(status.addrs)
        # Newcomers we are not connected to stay inside membership: no service pulls from,
        # dials or tracks them (their events would make every subscriber dial attacker-chosen
        # addresses); they reach subscribers once connected or promoted.
        if self.table.newcomers or not known:
            connected: set[str] | None = None

            def hidden(pid: str) -> bool:
                nonlocal connected
                e = self.table.get(pid)
                if e is None or not e.newcomer:
                    return not known and status is not None and pid == status.peer_id
                if connected is None:
                    connected = set(self._overlay.connected_peers())
                return pid not in connected

            events = [ev for ev in events if not (ev.kind != "forgotten" and hidden(ev.peer_id))]
            if status is not None and hidden(status.peer_id):
                status = None
        if not events and status is None:
            return
        for fn in self._subscribers:
            fn(events, status)

    def _dial_gated(self, addrs: tuple[str, ...]) -> None:
        now = self.now
        allowed = tuple(a for a in addrs[:4] if self.dials.allow(a, now))
        if allowed:
            self._runtime.spawn(self._dial, allowed)

    async def _dial(self, addrs: tuple[str, ...]) -> None:
        for a in addrs:
            try:
                await self._overlay.connect(a)
                return
            except OverlayError as exc:
                log.debug("dial %s failed: %s", a, exc)

    # ------------------------------------------------------------ liveness pings
    async def _serve_ping(self, stream: Stream) -> None:
        with trio.move_on_after(10.0):
            data = b""
            while len(data) < PING_BYTES:
                chunk = await stream.read(PING_BYTES - len(data))
                if not chunk:
                    return
                data += chunk
            await stream.write(data)

    async def _ping(self, peer_id: str, timeout: float) -> None:
        """Ping ``peer_id``; an echo within ``timeout`` s counts as hearing from it."""
        stream = None
        try:
            with trio.move_on_after(timeout):
                stream = await self._overlay.open_stream(peer_id, PING_PROTOCOL)
                nonce = os.urandom(PING_BYTES)
                await stream.write(nonce)
                got = b""
                while len(got) < PING_BYTES:
                    chunk = await stream.read(PING_BYTES - len(got))
                    if not chunk:
                        break
                    got += chunk
                if got == nonce:
                    self.stats["pings_answered"] += 1
                    self._publish(self.table.touch(peer_id, self.now), None)
                    return
            self.stats["pings_failed"] += 1
        except OverlayError as exc:
            self.stats["pings_failed"] += 1
            log.debug("ping %s failed: %s", peer_id, exc)
        finally:
            self._pinging.discard(peer_id)
            if stream is not None:
                with trio.CancelScope(shield=True):
                    await stream.close()

    # ------------------------------------------------------------ views
    def candidates(self, model: str, exclude: set[str] | frozenset[str] = frozenset()) -> list[PeerStatus]:
        """Alive peers serving ``model`` now, except ``exclude``. Newcomers we are not
        connected to are left out (nothing dials them on demand: the sweep's gated dials do,
        and once connected they count as known)."""
        out = self.table.candidates(model, self.now, exclude)
        if self.table.newcomers == 0:
            return out
        connected = set(self._overlay.connected_peers())
        return [s for s in out if s.peer_id in connected or not self.table.get(s.peer_id).newcomer]

    def alive_peers(self) -> list[str]:
        """Alive peers, except newcomers we are not connected to (see :meth:`candidates`)."""
        out = self.table.alive_peers(self.now)
        if self.table.newcomers == 0:
            return out
        connected = set(self._overlay.connected_peers())
        return [p for p in out if p in connected or not self.table.get(p).newcomer]

    def network_models(self) -> dict[str, list[str]]:
        """model -> PeerIds of alive peers serving it (newcomers only once connected, so junk
        statuses cannot fill ``/v1/models`` or make discovery look up their model names)."""
        out = self.table.network_models(self.now)
        if self.table.newcomers == 0:
            return out
        connected = set(self._overlay.connected_peers())
        ok = {e.status.peer_id for e in self.table if not e.newcomer or e.status.peer_id in connected}
        return {m: kept for m, ps in out.items() if (kept := [p for p in ps if p in ok])}

    def state(self, entry: PeerEntry) -> PeerState:
        """``entry``'s state now (alive entries may have gone silent since the last sweep)."""
        return entry.state if entry.state is not PeerState.ALIVE else self.table.state_at(entry, self.now)

    def alive_entries(self) -> list[PeerEntry]:
        """Alive entries, except newcomers we are not connected to."""
        connected = set(self._overlay.connected_peers()) if self.table.newcomers else set()
        return [e for e in self.table if self.state(e) is PeerState.ALIVE
                and (not e.newcomer or e.status.peer_id in connected)]

    def counts(self) -> dict[str, int]:
        return self.table.counts(self.now)

    def defense_stats(self) -> dict[str, int]:
        """Counters of the defenses: table size and newcomers, refused statuses, dials
        allowed/refused, pings answered/failed (for ``/status`` and ``/metrics``)."""
        t = self.table
        return {"peers": len(t), "newcomers": t.newcomers, "refused_known": t.refused["known"],
                "refused_newcomer": t.refused["newcomer"], **self.dials.stats, **self.stats}

    def view(self, stake_of: Callable[[str], int]) -> list[dict]:
        """The peer table for ``GET /status`` (``stake_of(peer_id)``: selectable stake)."""
        now = self.now
        rows = []
        for e in self.table:
            rows.append({"peer_id": e.status.peer_id, "models": list(e.status.models), "state": self.state(e).value,
                         "load": round(e.status.load.load, 3), "accepting": e.status.accepting,
                         "stake": stake_of(e.status.peer_id), "api_url": e.status.api_url,
                         "last_seen_s_ago": round(now - e.last_seen, 3), "newcomer": e.newcomer})
        return sorted(rows, key=lambda p: p["peer_id"])
