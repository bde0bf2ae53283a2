"""Local reputation (issue 15 item 7): what this node remembers about peers that failed it.

A requester records every misbehaviour it sees from an executor as a penalty: a first token
later than the executor's own advertised speed allows (:func:`first_token_deadline`) or a chunk
timeout, a stream that broke or carried garbage, an offer accepted then declined at the commit,
an error frame, a probe left unanswered, a duel the executor lost. Penalties add up into a score
that decays exponentially (half-life ``half_life_s``); a peer whose score is at least
``threshold`` is *penalised*: the requester leaves it out of its candidates while any other
eligible peer remains (see :meth:`Reputation.rank`), so it gets (almost) no new work until the
score decays below the threshold. Repeated offences compound: with the defaults a missed
first-token deadline keeps a peer out for one half-life (1 min), a second one right after its
release for 1.6 more; a hard timeout counts double.

Repeat offenders escalate. A peer whose score crosses the threshold starts a *penalty
episode*. The first episode lasts as long as the score stays at or above the threshold. Each later
episode that starts within ``forgive_s`` of the end of the previous one holds the peer out for ``escalation`` x the previous
episode's length (at least ``base_hold_s`` and its own score's time above the threshold, at most
``max_hold_s``). With the defaults a liar that declines every commit it gets is held 35 s, then
70 s, 140 s, 280 s ... up to 30 min (two offers per episode once its score has decayed), instead of
being re-admitted every 35-60 s. A peer whose events (an honest executor's commit races) cross the
threshold only now and then never escalates: the count is reset after ``forgive_s`` clean seconds.
Only the kinds in :data:`ESCALATING` start or lengthen episodes: a ``slow`` first token (an honest
executor behind a long prefill or on a loaded host) is penalised by its decaying score alone.

Pure: ``now`` (seconds on the caller's monotonic clock) is passed in. Bounded by peer count: at
most ``max_peers`` peers are remembered; a new one evicts the one with the lowest decayed score,
and a peer whose score has decayed to nothing is forgotten.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import ConfigError

#: penalty per kind of misbehaviour (score units; ``threshold`` decides when a peer is penalised)
PENALTIES: dict[str, float] = {
    "timeout": 2.0,         # a hard timeout: no first token within first_token_timeout, or a chunk timeout
    "slow": 1.0,            # no first token within the (shorter) deadline its own advertised speed implies
    "broken": 1.0,          # the stream broke (reset, EOF) or carried garbage mid-answer
    "declined": 0.25,       # accepted, then refused our commit ("overloaded": may be a race, so cheap)
    "error": 0.5,           # an executor error frame
    "probe_timeout": 0.5,   # a probe that got no answer at all (not recorded by the requester: load, not lies)
    "duel_lost": 1.0,       # the judges voted against its answer in a duel
}
#: kinds whose repeated episodes escalate. Not ``slow``: an honest executor misses its derived
#: deadline behind a long prefill or on a loaded host (issue 12 measured that penalising it
#: already cost the busiest honest executor its share), and not ``probe_timeout`` (load).
ESCALATING: frozenset[str] = frozenset(PENALTIES) - {"slow", "probe_timeout"}


@dataclass(frozen=True, slots=True)
class ReputationConfig:
    """``half_life_s``: seconds for a score to halve; ``threshold``: score at which a peer is
    penalised; ``max_peers``: bound on peers remembered. Repeat offences (see the module
    docstring): ``escalation`` (factor per repeated episode, >= 1; 1 turns escalation off),
    ``base_hold_s`` (seconds, the least hold of a repeated episode), ``max_hold_s`` (the longest
    hold), ``forgive_s`` (clean seconds after an episode that reset the count)."""

    half_life_s: float = 60.0
    threshold: float = 0.5
    max_peers: int = 4096
    escalation: float = 2.0
    base_hold_s: float = 15.0
    max_hold_s: float = 1800.0
    forgive_s: float = 600.0

    def __post_init__(self) -> None:
        if not self.half_life_s > 0 or not self.threshold > 0 or self.max_peers < 1:
            raise ConfigError("reputation: half_life_s and threshold must be > 0, max_peers >= 1")
        if not (self.escalation >= 1 and self.base_hold_s >= 0 and self.max_hold_s >= self.base_hold_s
                and self.forgive_s >= 0) or not all(map(math.isfinite, (self.escalation, self.max_hold_s,
                                                                        self.forgive_s))):
            raise ConfigError("reputation: escalation must be >= 1, 0 <= base_hold_s <= max_hold_s, "
                              "forgive_s >= 0 (all finite)")


@dataclass
class _Entry:
    score: float
    at: float
    events: int = 0
    #: penalty episodes in the current run of repeats (reset after ``forgive_s`` clean seconds)
    episodes: int = 0
    #: held out until then (a repeated episode's escalated hold; -inf: none)
    hold_until: float = -math.inf
    #: when the current (or last) episode started, and when it ends as far as is known
    episode_start: float = -math.inf
    episode_end: float = -math.inf


@dataclass
class Reputation:
    """Decaying penalty scores of peers (see the module docstring)."""

    config: ReputationConfig = field(default_factory=ReputationConfig)
    _peers: dict[str, _Entry] = field(default_factory=dict)
    #: events recorded, by kind
    counts: dict[str, int] = field(default_factory=lambda: {k: 0 for k in PENALTIES})

    def __len__(self) -> int:
        return len(self._peers)

    def _decayed(self, e: _Entry, now: float) -> float:
        return e.score * math.pow(0.5, max(0.0, now - e.at) / self.config.half_life_s)

    def score(self, peer: str, now: float) -> float:
        """``peer``'s decayed score at ``now`` (0: nothing against it)."""
        e = self._peers.get(peer)
        return 0.0 if e is None else self._decayed(e, now)

    def penalised(self, peer: str, now: float) -> bool:
        """Whether ``peer`` is deprioritised at ``now`` (score at or above the threshold, or
        within a repeated episode's escalated hold)."""
        e = self._peers.get(peer)
        return e is not None and (now < e.hold_until or self._decayed(e, now) >= self.config.threshold)

    def _natural(self, score: float) -> float:
        if score < self.config.threshold:
            return 0.0
        return self.config.half_life_s * math.log2(score / self.config.threshold)

    def until(self, peer: str, now: float) -> float:
        """Seconds from ``now`` until ``peer`` is no longer penalised (0 if it is not)."""
        e = self._peers.get(peer)
        if e is None:
            return 0.0
        return max(self._natural(self._decayed(e, now)), e.hold_until - now, 0.0)

    def episodes(self, peer: str) -> int:
        """Penalty episodes of ``peer`` in its current run of repeats (0: none remembered)."""
        e = self._peers.get(peer)
        return 0 if e is None else e.episodes

    def record(self, peer: str, kind: str, now: float, weight: float = 1.0) -> float:
        """Record one misbehaviour of ``kind`` (a key of :data:`PENALTIES`) by ``peer`` at
        ``now``; returns its new score. :raises ValueError: unknown kind."""
        if kind not in PENALTIES:
            raise ValueError(f"unknown misbehaviour {kind!r}")
        self.counts[kind] += 1
        e = self._peers.get(peer)
        if e is None:
            if len(self._peers) >= self.config.max_peers:
                self._evict(now)
            e = self._peers[peer] = _Entry(0.0, now)
        was = now < e.hold_until or self._decayed(e, now) >= self.config.threshold
        e.score = self._decayed(e, now) + PENALTIES[kind] * weight
        e.at = now
        e.events += 1
        natural = self._natural(e.score)
        if not was and e.score >= self.config.threshold and kind in ESCALATING:  # a new penalty episode
            if now - e.episode_end > self.config.forgive_s:
                e.episodes = 0
            e.episodes += 1
            if e.episodes > 1 and self.config.escalation > 1:
                c = self.config
                prev = max(0.0, e.episode_end - e.episode_start)
                e.hold_until = now + min(c.max_hold_s, max(natural, c.base_hold_s, c.escalation * prev))
            e.episode_start = now
        if kind in ESCALATING:  # (a ``slow`` only decays: it neither starts nor lengthens an episode)
            e.episode_end = max(e.episode_end, e.hold_until, now + natural)
        return e.score

    def _evict(self, now: float) -> None:
        gone = [p for p, e in self._peers.items() if self._decayed(e, now) < 0.01 * self.config.threshold
                and now - e.episode_end > self.config.forgive_s]
        for p in gone:
            del self._peers[p]
        if len(self._peers) >= self.config.max_peers:
            del self._peers[min(self._peers, key=lambda p: (self._decayed(self._peers[p], now), p))]

    def rank(self, peers: Iterable[str], now: float, exclude: Iterable[str] = (), keep: int = 1) -> set[str]:
        """The penalised peers among ``peers`` to leave out of a decision at ``now``, worst score
        first, while at least ``keep`` eligible peers (not in ``exclude``) remain: a penalised
        peer is better than no peer, and leaving out too many would herd all the load onto the
        few that remain (which then time out too)."""
        ps = list(peers)
        ex = set(exclude)
        eligible = [p for p in ps if p not in ex]
        bad = sorted((p for p in eligible if self.penalised(p, now)), key=lambda p: (-self.score(p, now), p))
        out: set[str] = set()
        for p in bad:
            if len(eligible) - len(out) - 1 < keep:
                break
            out.add(p)
        return out | {p for p in ps if p in ex and self.penalised(p, now)}

    def view(self, now: float) -> dict[str, object]:
        """Counters and the penalised peers with their scores (``/status``)."""
        pen = {p: round(self._decayed(e, now), 3) for p, e in self._peers.items()
               if now < e.hold_until or self._decayed(e, now) >= self.config.threshold}
        held = {p: {"episodes": e.episodes, "hold_s": round(e.hold_until - now, 1)}
                for p, e in self._peers.items() if now < e.hold_until}
        return {"remembered": len(self._peers), "penalised": dict(sorted(pen.items(), key=lambda kv: -kv[1])[:32]),
                "held": dict(sorted(held.items(), key=lambda kv: -kv[1]["hold_s"])[:32]),
                "events": dict(self.counts)}


def first_token_deadline(advertised_ttft_s: float, ceiling_s: float, *, factor: float = 1.5, slack_s: float = 0.25,
                         floor_s: float = 0.5) -> float:
    """Seconds a requester waits for the first token after committing to an executor that
    advertised ``advertised_ttft_s`` (its own time to first token; 0 = unknown): ``factor`` x
    that + ``slack_s`` (network and commit handling), at least ``floor_s``, at most
    ``ceiling_s`` (the configured first_token_timeout, also used when the speed is unknown)."""
    if not advertised_ttft_s > 0 or not math.isfinite(advertised_ttft_s):
        return ceiling_s
    return min(ceiling_s, max(floor_s, factor * advertised_ttft_s + slack_s))


__all__ = ["ESCALATING", "PENALTIES", "Reputation", "ReputationConfig", "first_token_deadline"]
