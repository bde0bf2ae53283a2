"""A neighbour that forwards wrongly signed gossip pays for it in its score (issue 15, found by
``benchmarks/adversaries.py --attack gossip_junk``): py-libp2p 0.8.1 drops such a message after
verifying it without scoring the sender, so the sender could make us verify forged signatures for
ever; the overlay now counts it (``gossip_rejected.bad_signature``) as an invalid message of the
forwarder (score P4), like a rejected one, so after ~200 of them the publish gate drops the rest
unverified (``gossip_rejected.score_gate``). Two real libp2p hosts on 127.0.0.1."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import trio
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2

from wwwserve_p2p.identity import Identity
from wwwserve_p2p.net.libp2p import Libp2pConfig, open_libp2p_overlay

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from adversary_kinds import _Key  # noqa: E402
from ledger_junk import _pubsub_message  # noqa: E402

pytestmark = pytest.mark.real
TOPIC = "/wwwserve/test/bad-signature"


async def test_wrongly_signed_gossip_costs_the_forwarder_score() -> None:
    async with open_libp2p_overlay(Identity.generate(), Libp2pConfig()) as target:
        await target.subscribe(TOPIC)
        async with open_libp2p_overlay(Identity.generate(), Libp2pConfig(bootstrap=(target.addrs()[0],))) as atk:
            await atk.subscribe(TOPIC)
            with trio.fail_after(60):
                while not atk._gossip.router.mesh.get(TOPIC):
                    await trio.sleep(0.05)
            peer = ID.from_base58(target.peer_id)
            good = _pubsub_message(TOPIC, _Key(), b"fine", 1)
            bad = [_pubsub_message(TOPIC, _Key(), os.urandom(40), i + 2) for i in range(20)]
            for m in bad:
                m.signature = bytes(b ^ 0x5A for b in m.signature)
            atk._gossip.router.send_rpc(peer, rpc_pb2.RPC(publish=[good, *bad]))
            stats = target.statistics
            with trio.fail_after(60):
                while stats()["gossip_rejected"].get("bad_signature", 0) < 20:
                    await trio.sleep(0.05)
            scorer = target._gossip.router.scorer
            me = ID.from_base58(atk.peer_id)
            assert scorer.invalid_messages[me][TOPIC] >= 20  # P4 of the forwarder, not of the forged authors
            assert stats()["gossip_rejected"]["bad_signature"] == 20  # the well-signed one is not counted
            assert scorer.score(me, [TOPIC]) < 0
            more = [_pubsub_message(TOPIC, _Key(), os.urandom(40), i + 100) for i in range(300)]
            for m in more:
                m.signature = bytes(b ^ 0x5A for b in m.signature)
            atk._gossip.router.send_rpc(peer, rpc_pb2.RPC(publish=more))
            with trio.fail_after(60):
                while stats()["gossip_rejected"].get("bad_signature", 0) + stats()["gossip_rejected"].get("score_gate", 0) < 320:
                    await trio.sleep(0.05)
            # below the publish threshold (-200) the rest is dropped before any signature check
            rejected = stats()["gossip_rejected"]
            assert rejected.get("score_gate", 0) > 0 and rejected["bad_signature"] < 320, rejected
