"""Real node processes on 127.0.0.1: real libp2p (TCP, Noise, yamux, GossipSub, Kademlia), the
real HTTP API and the official ``openai`` client.

Node A serves only ``front``; B and C serve ``m`` slowly, so A's requests for ``m`` are
offloaded over the overlay and streamed back.
"""

from __future__ import annotations

import hashlib
import time

import httpx
import openai
import pytest
import trio

from wwwserve_p2p.core.types import ErrorReply, GenerationRequest, Offer
from wwwserve_p2p.identity import Identity
from wwwserve_p2p.localnet import NodeSpec, start_network, stop_network, wait_for_mesh
from wwwserve_p2p.net.libp2p import Libp2pConfig, open_libp2p_overlay
from wwwserve_p2p.services.delegation import PROTOCOL
from wwwserve_p2p.wire import codec
from wwwserve_p2p.wire.framing import FrameReader, encode_uvarint, frame

pytestmark = pytest.mark.real

WORDS = " ".join(f"w{i}" for i in range(30))


def spec(name, models, delay, capacity=2):
    return NodeSpec(name, {"node": {"network": "wwwserve-test-real", "log_level": "INFO"},
                           "status": {"interval": 1.0},
                           "executor": {"kind": "echo", "models": models, "capacity": capacity,
                                        "delay_per_token": delay}})


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    nodes = start_network([spec("a", ["front"], 0.0), spec("b", ["m"], 0.1), spec("c", ["m"], 0.1)],
                          tmp_path_factory.mktemp("net"), ready_timeout=60)
    try:
        yield nodes
    finally:
        stop_network(nodes)


def client(node):
    return openai.OpenAI(base_url=node.api_url + "/v1", api_key="none", max_retries=0, timeout=60)


def test_three_processes_discover_each_other_from_one_bootstrap(net):
    waited = wait_for_mesh(net, timeout=30)
    assert waited < 30
    for n in net:
        peers = {p["peer_id"]: p for p in n.status()["peers"]}
        assert set(peers) == {m.peer_id for m in net} - {n.peer_id}
        assert all(p["state"] == "alive" for p in peers.values())
    models = {m.id for m in client(net[0]).models.list().data}
    assert models == {"front", "m"}


def test_offloaded_request_streams_back_through_openai_client(net):
    wait_for_mesh(net, timeout=30)
    c = client(net[0])
    with c.chat.completions.with_streaming_response.create(
            model="m", messages=[{"role": "user", "content": "alpha beta gamma delta"}], stream=True) as resp:
        executor = resp.headers["x-wwwserve-executor"]
        pieces = [ch.choices[0].delta.content or "" for ch in resp.parse() if ch.choices]
    assert executor in {net[1].peer_id, net[2].peer_id}
    assert len([p for p in pieces if p]) == 4 and "".join(pieces) == "alpha beta gamma delta"
    full = c.completions.create(model="m", prompt="one two three", max_tokens=2)
    assert full.choices[0].text.rstrip() == "one two" and full.choices[0].finish_reason == "length"


async def test_malformed_oversized_truncated_frames_rejected_node_keeps_serving(net):
    await trio.to_thread.run_sync(wait_for_mesh, net, 30)
    target = net[1]
    ident = Identity(hashlib.sha256(b"malformed-client").digest())
    with trio.fail_after(30):
        async with open_libp2p_overlay(ident, Libp2pConfig()) as ov:
            await ov.connect(target.multiaddr)
            cases = [(frame(b"\xff\xff\xff\xff"), "cannot decode"),
                     (encode_uvarint(64 * 1024 * 1024) + b"x" * 100, "exceeds the cap"),
                     (frame(b"x" * 1000)[:50], "inside a frame")]
            for garbage, why in cases:
                s = await ov.open_stream(target.peer_id, PROTOCOL)
                await s.write(garbage)
                if why == "inside a frame":
                    await s.close()
                reply = codec.decode_reply(await FrameReader(s, 1 << 16).read_frame(10))
                assert isinstance(reply, ErrorReply) and reply.code == "malformed" and why in reply.message
                await s.reset()
            # a well-formed probe from the same client is still answered
            s = await ov.open_stream(target.peer_id, PROTOCOL)
            req = GenerationRequest("ok-1", "m", prompt="x y", max_tokens=4)
            await s.write(frame(codec.encode_request(req, codec_network(target), 5000)))
            offer = codec.decode_reply(await FrameReader(s, 1 << 16).read_frame(10))
            assert isinstance(offer, Offer)
            await s.reset()
    r = await trio.to_thread.run_sync(lambda: client(net[0]).completions.create(model="m", prompt="still here"))
    assert r.choices[0].text == "still here"


def codec_network(node) -> str:
    return httpx.get(node.api_url + "/status").json()["network_id"]


def test_executor_sigkilled_mid_stream_user_gets_one_complete_answer(net):
    """Runs last in this module: it kills one of the executors."""
    wait_for_mesh(net, timeout=30)
    by_peer = {n.peer_id: n for n in net}
    c = client(net[0])
    pieces, t0 = [], time.monotonic()
    with c.chat.completions.with_streaming_response.create(
            model="m", messages=[{"role": "user", "content": WORDS}], stream=True, max_tokens=100) as resp:
        first_executor = by_peer[resp.headers["x-wwwserve-executor"]]
        for ch in resp.parse():
            if ch.choices and ch.choices[0].delta.content:
                pieces.append(ch.choices[0].delta.content)
                if len(pieces) == 5:
                    first_executor.kill()
    assert "".join(pieces) == WORDS, "the user must get exactly one complete answer"
    assert first_executor.proc.poll() is not None
    st = net[0].status()["stats"]
    assert st["redispatched"] >= 1 and st["failed"] == 0
    assert time.monotonic() - t0 < 30
