import time, statistics
from types import SimpleNamespace
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.envelope import seal_record
from libp2p.peer.id import ID
from libp2p.peer.peer_record import PeerRecord
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.utils import maybe_consume_signed_record as original
from multiaddr import Multiaddr
from libp2p.peer.peerstore import PeerStore
import libp2p.pubsub.pubsub as pubsub_mod
from wwwserve_p2p.net.libp2p import compat
compat._install_sender_record_cache()
cached = pubsub_mod.maybe_consume_signed_record
key = create_new_key_pair(); peer = ID.from_pubkey(key.public_key)
env = seal_record(PeerRecord(peer, [Multiaddr("/ip4/127.0.0.1/tcp/4001"), Multiaddr("/ip4/10.0.0.1/tcp/4001")]), key.private_key)
rpc = rpc_pb2.RPC(); rpc.senderRecord = env.marshal_envelope()
host = SimpleNamespace(get_peerstore=lambda s=PeerStore(): s)
res = {}
for name, f in (("py-libp2p", original), ("cached", cached)):
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(2000): assert f(rpc, host, peer)
        runs.append((time.perf_counter() - t) / 2000 * 1e6)
    res[name] = statistics.median(runs)
print({k: f"{v:.1f} us/RPC" for k, v in res.items()}, f"ratio {res['py-libp2p']/res['cached']:.0f}x")
