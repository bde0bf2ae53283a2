"""compat's replacement of py-libp2p's per-RPC ``senderRecord`` check: a record is verified once
per neighbour (the same bytes are then accepted without parsing or an Ed25519 check), a
forged or foreign record still refuses the RPC, and a stale record (lower seq than the
peerstore holds) no longer drops the RPC."""

from __future__ import annotations

from types import SimpleNamespace

import libp2p.pubsub.pubsub as pubsub_mod
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer import envelope as envelope_mod
from libp2p.peer.envelope import seal_record
from libp2p.peer.id import ID
from libp2p.peer.peer_record import PeerRecord
from libp2p.pubsub.pb import rpc_pb2
from multiaddr import Multiaddr

from wwwserve_p2p.net.libp2p import compat


class _Peerstore:
    """Keeps the highest seq per peer, refusing older ones, like py-libp2p's."""

    def __init__(self) -> None:
        self.seqs: dict[ID, int] = {}
        self.stored = 0

    def consume_peer_record(self, envelope, ttl) -> bool:
        rec = envelope.record()
        if rec.seq <= self.seqs.get(rec.peer_id, -1):
            return False
        self.seqs[rec.peer_id] = rec.seq
        self.stored += 1
        return True


def _rpc(key, peer: ID, seq: int, port: int = 4001) -> rpc_pb2.RPC:
    env = seal_record(PeerRecord(peer, [Multiaddr(f"/ip4/127.0.0.1/tcp/{port}")], seq), key.private_key)
    rpc = rpc_pb2.RPC()
    rpc.senderRecord = env.marshal_envelope()
    return rpc


def test_a_record_is_verified_once_then_reused(monkeypatch) -> None:
    compat._install_sender_record_cache()
    consume = pubsub_mod.maybe_consume_signed_record
    key = create_new_key_pair()
    peer = ID.from_pubkey(key.public_key)
    host = SimpleNamespace(get_peerstore=lambda store=_Peerstore(): store)
    rpc = _rpc(key, peer, seq=5)
    calls = []
    real = envelope_mod.Envelope.validate
    monkeypatch.setattr(envelope_mod.Envelope, "validate", lambda self, d: calls.append(d) or real(self, d))
    assert all(consume(rpc, host, peer) for _ in range(50))
    assert len(calls) == 1 and host.get_peerstore().stored == 1
    assert consume(rpc_pb2.RPC(), host, peer)  # no record: nothing to check


def test_forged_foreign_and_stale_records() -> None:
    compat._install_sender_record_cache()
    consume = pubsub_mod.maybe_consume_signed_record
    key, other = create_new_key_pair(), create_new_key_pair()
    peer = ID.from_pubkey(key.public_key)
    host = SimpleNamespace(get_peerstore=lambda store=_Peerstore(): store)
    assert consume(_rpc(key, peer, seq=10), host, peer)
    # a record signed by another key for this peer, or one naming another peer: refused
    assert not consume(_rpc(other, peer, seq=11), host, peer)
    assert not consume(_rpc(other, ID.from_pubkey(other.public_key), seq=11), host, peer)
    forged = _rpc(key, peer, seq=12)
    raw = bytearray(forged.senderRecord)
    raw[-1] ^= 1
    forged.senderRecord = bytes(raw)
    assert not consume(forged, host, peer)
    # older than what the peerstore holds (a reconnect): the RPC is still processed
    assert consume(_rpc(key, peer, seq=3, port=4002), host, peer)
    assert host.get_peerstore().seqs[peer] == 10
