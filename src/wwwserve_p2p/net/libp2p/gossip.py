"""GossipSub for the overlay: the router and pubsub of one host, subscriptions, publishing,
the validator chain (shape, size cap, per-author rate limit, the service's validator) and
delivery into bounded subscriber channels."""

from __future__ import annotations

import contextvars
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11
from libp2p.pubsub.score import PeerScorer, ScoreParams, TopicScoreParams

from ...errors import OverlayError
from .._ratelimit import TokenBuckets
from ..base import GossipMessage, Validator
from ..config import Libp2pConfig
from .compat import OverlayGossipSub, OverlayPubsub
from .streams import LIBP2P_ERRORS, map_errors

log = logging.getLogger("wwwserve_p2p.net")

#: Bounds of the memo tables (PeerId text, validated-but-undelivered messages).
_MAX_PEER_IDS = 4096
_MAX_VALIDATED = 1024

#: GossipSub peer scoring (py-libp2p's ``PeerScorer``; all weights are 0 there by default).
#: Scores decay once per heartbeat (``heartbeat_interval``, 1 s by default).
#: - P4 invalid messages: each message a neighbour forwards that a validator rejects
#:   (malformed, forged author, over our per-author rate, over the newcomer budget) costs it
#:   ``SCORE_INVALID_WEIGHT``, the count decaying by ``SCORE_INVALID_DECAY`` per heartbeat and
#:   capped at ``SCORE_INVALID_CAP``. An honest neighbour needs ~``-PUBLISH_THRESHOLD *
#:   (1 - decay) / weight`` = 10 rejected messages per second, sustained, to reach the publish
#:   threshold; a flooding one reaches it after ~200 rejected messages.
#: - Below ``SCORE_PUBLISH_THRESHOLD`` a neighbour's messages are dropped before their
#:   signature is checked (py-libp2p's publish gate), below ``SCORE_GOSSIP_THRESHOLD`` we stop
#:   gossiping to it, below ``SCORE_GRAYLIST_THRESHOLD`` its GRAFTs are ignored.
#: - P5 behaviour (IWANT/IHAVE spam, GRAFT floods, as py-libp2p detects them): weight 1
#:   above a threshold of 10, same decay.
#: - P7 IP colocation: more than ``SCORE_COLOCATION_THRESHOLD`` neighbours from one IP cost
#:   ``weight * excess**2``; loopback is exempt (local test networks run every node there).
#: Our own per-author token bucket (``gossip_rate_per_peer``) stays in front of all this.
SCORE_INVALID_WEIGHT = 1.0
SCORE_INVALID_DECAY = 0.95
SCORE_INVALID_CAP = 1000.0
SCORE_PUBLISH_THRESHOLD = -200.0
SCORE_GOSSIP_THRESHOLD = -100.0
SCORE_GRAYLIST_THRESHOLD = -400.0
SCORE_BEHAVIOUR_WEIGHT = 1.0
SCORE_BEHAVIOUR_THRESHOLD = 10.0
SCORE_COLOCATION_WEIGHT = 1.0
SCORE_COLOCATION_THRESHOLD = 8


def score_params() -> ScoreParams:
    """The :class:`ScoreParams` above (documented in the module constants)."""
    return ScoreParams(
        p4_invalid_messages=TopicScoreParams(weight=SCORE_INVALID_WEIGHT, cap=SCORE_INVALID_CAP,
                                             decay=SCORE_INVALID_DECAY),
        p5_behavior_penalty_weight=SCORE_BEHAVIOUR_WEIGHT, p5_behavior_penalty_decay=SCORE_INVALID_DECAY,
        p5_behavior_penalty_threshold=SCORE_BEHAVIOUR_THRESHOLD,
        p7_ip_colocation_weight=SCORE_COLOCATION_WEIGHT, p7_ip_colocation_threshold=SCORE_COLOCATION_THRESHOLD,
        publish_threshold=SCORE_PUBLISH_THRESHOLD, gossip_threshold=SCORE_GOSSIP_THRESHOLD,
        graylist_threshold=SCORE_GRAYLIST_THRESHOLD, accept_px_threshold=0.0)


class OverlayScorer(PeerScorer):
    """py-libp2p's scorer, with loopback exempt from the IP-colocation penalty."""

    def ip_colocation_penalty(self, peer: ID) -> float:
        ip = self.ip_by_peer.get(peer, "")
        if ip.startswith("127.") or ip == "::1":
            return 0.0
        return super().ip_colocation_penalty(peer)


@dataclass
class _Subscription:
    send: trio.MemorySendChannel[GossipMessage]
    validator: Validator | None


class _OwnPublish:
    """Set (through a context variable) while :meth:`Gossip.publish` runs, so the validator
    wrapper can report that our own validator rejected our own message."""

    __slots__ = ("rejected",)

    def __init__(self) -> None:
        self.rejected: str | None = None


_OWN_PUBLISH: contextvars.ContextVar[_OwnPublish | None] = contextvars.ContextVar("wwwserve_own_publish", default=None)


class Gossip:
    """GossipSub (meshsub 1.1 and 1.0) on ``host``, configured as the package docstring says.

    ``stats`` counts ``gossip_published``, ``gossip_delivered`` and the drops;
    ``spawn(fn, *args)`` starts a background task while the overlay runs (unsubscribing
    when a subscriber closes its channel). :attr:`services` are the py-libp2p services the
    lifecycle must run.
    """

    def __init__(self, host: Any, config: Libp2pConfig, stats: Counter[str],
                 spawn: Callable[..., None]):
        self._config = config
        self._stats = stats
        self._spawn = spawn
        self._my_id_bytes = host.get_id().to_bytes()
        self.router = OverlayGossipSub(
            protocols=[PROTOCOL_ID_V11, PROTOCOL_ID],
            degree=config.gossip_degree,
            degree_low=config.gossip_degree_low,
            degree_high=config.gossip_degree_high,
            heartbeat_interval=config.heartbeat_interval,  # type: ignore[arg-type]  # float works
            adaptive_gossip_enabled=False,
            spam_protection_enabled=False,
            score_params=score_params(),
        )
        self.router.scorer = OverlayScorer(self.router.scorer.params)
        self.pubsub = OverlayPubsub(
            host,
            self.router,
            strict_signing=True,
            seen_ttl=config.gossip_seen_ttl,
            validation_cache_ttl=0,
            validation_cache_size=1,
            deliver=self._deliver,
            on_bad_message=self._on_bad_message,
            outbound_queue_size=config.gossip_outbound_queue,
            on_queue_drop=self._on_queue_drop,
        )
        self._buckets = TokenBuckets(config.gossip_rate_per_peer, config.gossip_burst_per_peer)
        self._subs: dict[str, _Subscription] = {}
        self._rejected: Counter[str] = Counter()
        self._warned: set[str] = set()
        self._peer_ids: dict[bytes, str] = {}  # PeerId bytes -> base58, bounded by _b58
        self._validated: dict[tuple[bytes, bytes], GossipMessage] = {}  # (from, seqno) -> validator's view

    @property
    def services(self) -> tuple[Any, ...]:
        return (self.pubsub, self.router)

    def close_subscriptions(self) -> None:
        """End every subscriber's channel (on overlay close)."""
        for sub in self._subs.values():
            sub.send.close()

    def statistics(self) -> dict[str, Any]:
        """The gossip part of :meth:`Libp2pOverlay.statistics`."""
        return {
            "mesh": {t: len(peers) for t, peers in self.router.mesh.items()},
            "topic_peers": {t: len(self.pubsub.peer_topics.get(t, ())) for t in self._subs},
            "gossip_published": self._stats["gossip_published"],
            "gossip_received": self.pubsub.inbound_messages,
            "gossip_delivered": self._stats["gossip_delivered"],
            "gossip_rejected": {**self._rejected, **({"bad_signature": self.pubsub.bad_signatures}
                                                     if self.pubsub.bad_signatures else {}),
                                **({"score_gate": self.pubsub.score_gated} if self.pubsub.score_gated else {})},
            "gossip_low_score_peers": self._low_score_peers(),
            "gossip_dropped": {
                "subscriber_full": self._stats["gossip_dropped_subscriber_full"],
                "outbound_queue": self._stats["gossip_dropped_outbound_queue"],
            },
        }

    def _low_score_peers(self) -> int:
        """Neighbours whose score on our topics is below the publish threshold now."""
        scorer, topics = self.router.scorer, list(self._subs)
        if scorer is None or not topics:
            return 0
        peers = {p for t in topics for p in self.pubsub.peer_topics.get(t, ())}
        return sum(1 for p in peers if scorer.score(p, topics) < SCORE_PUBLISH_THRESHOLD)

    # ---------------------------------------------------------------- subscribe / publish

    async def subscribe(self, topic: str, validator: Validator | None = None) -> trio.abc.ReceiveChannel[GossipMessage]:
        """See :meth:`Libp2pOverlay.subscribe`."""
        if not isinstance(topic, str) or not topic:
            raise OverlayError("a topic is a non-empty string")
        send, recv = trio.open_memory_channel[GossipMessage](self._config.subscription_buffer)
        old = self._subs.get(topic)
        self._subs[topic] = _Subscription(send, validator)
        if old is not None:
            old.send.close()
            return recv
        self.pubsub.set_topic_validator(topic, self._make_validator(topic), False)
        try:
            with map_errors(f"subscribing to {topic!r} failed"):
                await self.pubsub.subscribe(topic)
        except OverlayError:
            self._subs.pop(topic, None)
            self.pubsub.remove_topic_validator(topic)
            raise
        log.debug("subscribed to %s", topic)
        return recv

    async def publish(self, topic: str, data: bytes) -> None:
        """See :meth:`Libp2pOverlay.publish`."""
        data = bytes(data)
        cap = self._config.gossip_max_bytes
        if len(data) > cap:
            raise OverlayError(f"gossip message on {topic!r} has {len(data)} bytes, over the cap of {cap} "
                               "(Libp2pConfig.gossip_max_bytes); send bulk data over a stream")
        box = _OwnPublish()
        token = _OWN_PUBLISH.set(box)
        try:
            with map_errors(f"publishing on {topic!r} failed"):
                await self.pubsub.publish(topic, data)
        finally:
            _OWN_PUBLISH.reset(token)
        if box.rejected is not None:
            raise OverlayError(f"our own validator for {topic!r} rejected the message ({box.rejected}); not sent")
        self._stats["gossip_published"] += 1

    async def _unsubscribe(self, topic: str) -> None:
        if topic in self._subs:
            return  # re-subscribed meanwhile
        self.pubsub.remove_topic_validator(topic)
        try:
            await self.pubsub.unsubscribe(topic)
            log.debug("unsubscribed from %s (channel closed)", topic)
        except LIBP2P_ERRORS as exc:
            log.debug("unsubscribing from %s: %r", topic, exc)

    # ---------------------------------------------------------------- validation

    def _make_validator(self, topic: str) -> Callable[[Any, Any], bool]:
        def validate(forwarder: Any, msg: Any) -> bool:
            reason = self._check_message(topic, forwarder, msg)
            if reason is None:
                return True
            if msg.from_id == self._my_id_bytes:
                box = _OWN_PUBLISH.get()
                if box is not None:
                    box.rejected = reason
            else:
                self._rejected[reason] += 1
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("rejected gossip on %s from %s: %s", topic, self._b58(msg.from_id), reason)
            return False

        return validate

    def _b58(self, peer_id_bytes: bytes) -> str:
        """Base58 text of a PeerId (memoised: ~12 us each in py-libp2p)."""
        text = self._peer_ids.get(peer_id_bytes)
        if text is None:
            if len(self._peer_ids) >= _MAX_PEER_IDS:
                self._peer_ids.clear()
            text = self._peer_ids[peer_id_bytes] = ID(peer_id_bytes).to_base58()
        return text

    def _message(self, topic: str, forwarder: Any, msg: Any) -> GossipMessage:
        source = self._b58(msg.from_id)
        received_from = forwarder.to_base58() if forwarder is not None else source
        return GossipMessage(topic, msg.data, source, received_from)

    def _check_message(self, topic: str, forwarder: Any, msg: Any) -> str | None:
        """None if ``msg`` is acceptable on ``topic``, else the reason (a statistics key).

        The :class:`GossipMessage` shown to the topic validator is kept (under the message's
        author and seqno) and is the very object :meth:`_deliver` hands to the subscriber,
        so a service may keep what its validator derived from it (e.g. the decoded status).
        """
        if len(msg.topicIDs) != 1:
            return "malformed"
        if len(msg.data) > self._config.gossip_max_bytes:
            return "oversize"
        own = msg.from_id == self._my_id_bytes
        if not own and not self._buckets.allow(msg.from_id, trio.current_time()):
            return "rate_limited"
        sub = self._subs.get(topic)
        if sub is None or sub.validator is None:
            return None
        return self._run_validator(sub, topic, forwarder, msg)

    def _run_validator(self, sub: _Subscription, topic: str, forwarder: Any, msg: Any) -> str | None:
        assert sub.validator is not None
        try:
            gm = self._message(topic, forwarder, msg)
            ok = sub.validator(gm)
        except Exception as exc:  # a service's validator: by contract (net.base.Validator) a raise is a reject
            self._warn_once(f"validator:{topic}", "gossip validator for %s raised %r; message rejected", topic, exc)
            return "validator_error"
        if not ok:
            return "validator"
        if len(self._validated) >= _MAX_VALIDATED:  # validated but never delivered (dropped later): forget
            self._validated.clear()
        self._validated[(msg.from_id, msg.seqno)] = gm
        return None

    # ---------------------------------------------------------------- delivery

    def _deliver(self, msg: Any, forwarder: Any) -> None:
        """Called by py-libp2p (synchronously) for each new valid message on our topics."""
        validated = self._validated.pop((msg.from_id, msg.seqno), None)
        if msg.from_id == self._my_id_bytes:
            return  # our own publish: never delivered back
        for topic in msg.topicIDs:
            sub = self._subs.get(topic)
            if sub is None:
                continue
            try:
                gm = validated if validated is not None and validated.topic == topic else \
                    self._message(topic, forwarder, msg)
                sub.send.send_nowait(gm)
                self._stats["gossip_delivered"] += 1
            except trio.WouldBlock:
                self._stats["gossip_dropped_subscriber_full"] += 1
                self._warn_once(f"sub-full:{topic}", "subscriber of %s is not keeping up (%d buffered); "
                                "dropping messages", topic, self._config.subscription_buffer)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                if self._subs.get(topic) is sub:
                    self._subs.pop(topic, None)
                    self._spawn(self._unsubscribe, topic)
            except (ValueError, TypeError) as exc:  # a malformed from_id or forwarder
                self._rejected["malformed"] += 1
                log.debug("undeliverable gossip on %s: %r", topic, exc)

    def _on_bad_message(self, peer: Any, exc: BaseException) -> None:
        self._rejected["malformed"] += 1
        log.debug("bad pubsub input from %s: %r", peer, exc)

    def _on_queue_drop(self, rpc: Any) -> None:
        self._stats["gossip_dropped_outbound_queue"] += 1
        self._warn_once("queue", "a gossip outbound queue is full (%d RPCs); dropping (a slow neighbour?)",
                        self._config.gossip_outbound_queue)

    def _warn_once(self, key: str, fmt: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(fmt, *args)
        else:
            log.debug(fmt, *args)


__all__ = ["Gossip"]
