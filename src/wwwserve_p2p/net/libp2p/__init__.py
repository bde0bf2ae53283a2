"""The real :class:`~wwwserve_p2p.net.base.Overlay`: py-libp2p 0.8.1 (TCP, Noise, yamux,
GossipSub, Kademlia).

Use::

    async with open_libp2p_overlay(identity, Libp2pConfig(bootstrap=(...,))) as overlay:
        msgs = await overlay.subscribe("wwwserve/<net>/status", validator)
        await overlay.publish("wwwserve/<net>/status", b"...")

What this module changes in py-libp2p's defaults, and why (DESIGN §3, §8):

- Security: only Noise is offered and accepted (py-libp2p's default set also has TLS,
  SECIO and plaintext); the only muxer is yamux.
- Dialing: the fixed 250 ms "happy eyeballs" wait of every dial is removed for our swarm
  (see :func:`.compat.remove_dial_delay`); an explicit :meth:`Libp2pOverlay.connect`
  or :meth:`~Libp2pOverlay.open_stream` first clears the peer from py-libp2p's 60 s
  negative dial cache, so a restarted peer can be dialed again at once. Every dial is bounded
  by ``dial_timeout`` and raises :class:`~wwwserve_p2p.errors.DialError`.
- GossipSub (meshsub 1.1 and 1.0): heartbeat ``heartbeat_interval`` (library default 120 s),
  adaptive gossip off (it silently stretches the heartbeat to 30-60 s), the library's spam
  protection off (10 msg/s per topic counting our OWN publishes, excess dropped silently) and
  replaced by a per-source-peer token bucket in our validator, strict signing, a size cap
  on publish (raises) and on receive (reject), per-peer outbound queues raised from 32
  (silent drops) to ``gossip_outbound_queue`` with drops counted, no 32-slot subscription
  channels (delivery goes to our own ``subscription_buffer``-slot channels; overflow is
  counted), py-libp2p's validation cache disabled (it would let a replayed message skip the
  validator's freshness check after the seen-cache TTL), our own publishes never delivered
  back to us, the equivocation check keeps digests instead of up to ~1000 full messages,
  and an exception while processing one inbound message no longer escapes into the service.
- Per-message cost (measured with benchmarks/gossip_latency.py): py-libp2p rebuilds our
  address list (~40 us) for every pubsub RPC it sends, to attach our signed peer record; here
  the list is memoised for 1 s. PeerIds are base58-encoded once (~7 us each in py-libp2p),
  and the :class:`GossipMessage` a topic validator saw is the object delivered to the
  subscriber (so a service can keep what it decoded instead of decoding twice).
- Kademlia: server mode, strict record validation; provider lookups are done here (the
  library's ``find_providers`` returns only the local cache once it holds any entry, which
  includes ourselves, and may return duplicates); ``connect`` adds the peer to the routing
  table (py-libp2p's does not).
- Listening: py-libp2p binds with SO_REUSEPORT, so a second node on a fixed port would
  share it with the first (the kernel splits connections between them); we probe the port
  first and refuse. Addresses on 0.0.0.0 are advertised as the interfaces' addresses.
- Peerstore: ``host.connect`` sets a peer's TTL to 120 s (per peer; an expired peer loses
  all its addresses); explicitly dialed peers keep theirs for 24 h, provider records 1 h.
- Lifecycle: leaving the context closes the listeners first (so the port is released even
  if the rest times out), then all connections at once (py-libp2p closes them one by one
  with a 100 ms sleep each), then the host, bounded by ``shutdown_timeout``; py-libp2p's
  ``host.run()`` alone leaves the listener open.
- Logging: py-libp2p loggers are set to ``libp2p_log_level`` and propagate to the
  application's handlers; the one module that logs to the root logger is rerouted. Our own
  log lines go to ``logging.getLogger("wwwserve_p2p.net")``.
- Version: the overlay refuses to start on a py-libp2p other than the tested 0.8.1
  (:func:`.compat.check_libp2p_version`; ``WWWSERVE_ALLOW_UNTESTED_LIBP2P=1`` overrides).
- Errors: py-libp2p, trio and OS exceptions become the :class:`~wwwserve_p2p.errors.OverlayError`
  family in one place (:func:`.streams.map_errors`), with the root cause in the message.

Modules (one job each): :mod:`.host` (the overlay object, building the host, run/close),
:mod:`.streams` (streams, stream handlers, the error mapping), :mod:`.gossip` (GossipSub:
subscribe, publish, validators, delivery), :mod:`.dht` (provider records, lookups, routing
table, bootstrap), :mod:`.dialing` (connect, dial, negative cache, peer addresses),
:mod:`.compat` (patches of py-libp2p internals, logging, the version guard). Importing this
package imports py-libp2p (~0.65 s); :mod:`wwwserve_p2p.net.config` does not.
"""

from ..config import MAX_GOSSIP_BYTES_LIMIT, Libp2pConfig
from .host import Libp2pOverlay, open_libp2p_overlay
from .streams import Libp2pStream

__all__ = ["Libp2pConfig", "Libp2pOverlay", "Libp2pStream", "MAX_GOSSIP_BYTES_LIMIT", "open_libp2p_overlay"]
