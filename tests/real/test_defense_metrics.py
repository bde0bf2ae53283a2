"""The defenses of issue 15 on real node processes, seen through the real HTTP API: a squatter
with no payment channel gets one offer and is refused the rest while a funded requester's
delegated requests (official ``openai`` client) are served; streams over the per-peer limit are
refused; and ``GET /metrics`` exports the same counters ``GET /status`` shows under
``defenses`` (offers, streams refused and open, gossip, peer table, reputation)."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from wwwserve_p2p.core.types import GenerationRequest, Offer
from wwwserve_p2p.errors import OverlayError
from wwwserve_p2p.identity import Identity
from wwwserve_p2p.localnet import NodeSpec, start_network, stop_network, wait_for_mesh
from wwwserve_p2p.net.libp2p import Libp2pConfig, open_libp2p_overlay
from wwwserve_p2p.services.delegation import PROTOCOL
from wwwserve_p2p.wire import codec
from wwwserve_p2p.wire.framing import FrameReader, frame

pytestmark = [pytest.mark.real, pytest.mark.slow]

DEADLINE = 120.0


def spec(name, models):
    return NodeSpec(name, {"node": {"network": "wwwserve-test-defense-metrics", "log_level": "INFO"},
                           "status": {"interval": 1.0},
                           "executor": {"kind": "echo", "models": models, "capacity": 8, "delay_per_token": 0.0}})


def samples(url: str) -> dict[tuple[str, tuple], float]:
    text = httpx.get(url + "/metrics", timeout=30).text
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def wait_until(pred, timeout: float = DEADLINE, poll: float = 0.5) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(poll)
    return pred()


async def squat_and_flood(target_addr: str, target_id: str, network_id: str) -> dict:
    """From one fresh identity: 4 delegation probes that are never decided, then 40 idle judge
    streams (over the per-peer-and-protocol limit of 32)."""
    got = {"accepted": 0, "refused": 0, "reasons": set(), "streams_refused": 0}
    async with open_libp2p_overlay(Identity.generate(), Libp2pConfig(bootstrap=(target_addr,))) as o:
        held = []
        for i in range(4):
            s = await o.open_stream(target_id, PROTOCOL)
            req = GenerationRequest(f"squat{i}", "m", prompt="x", max_tokens=4)
            await s.write(frame(codec.encode_request(req, network_id, 60_000)))
            reply = codec.decode_reply(await FrameReader(s, 1 << 20).read_frame(30.0))
            if isinstance(reply, Offer) and reply.accepted:
                got["accepted"] += 1
                held.append(s)
            else:
                got["refused"] += 1
                got["reasons"].add(getattr(reply, "reason", repr(reply)))
        for _ in range(40):
            try:
                held.append(await o.open_stream(target_id, "/wwwserve/judge/1"))
            except OverlayError:
                got["streams_refused"] += 1
        await trio.sleep(3)  # the target refuses (resets) those over its limit as they arrive
        for s in held:
            with trio.CancelScope(shield=True):
                try:
                    await s.reset()
                except OverlayError:
                    pass
    return got


def test_squatter_refused_funded_requester_served_and_defenses_in_metrics(tmp_path):
    nodes = start_network([spec("a", ["front"]), spec("b", ["m"])], tmp_path, ready_timeout=DEADLINE)
    try:
        a, b = nodes
        wait_for_mesh(nodes, timeout=DEADLINE)
        c = openai.OpenAI(base_url=a.api_url + "/v1", api_key="none", max_retries=0, timeout=60)
        # a locks credit toward b (its ticket desk opens a channel ahead of the first request)
        assert c.completions.create(model="m", prompt="one two", max_tokens=2).choices[0].text.rstrip() == "one two"
        network_id = b.status()["network_id"]
        got = trio.run(squat_and_flood, b.multiaddr, b.peer_id, network_id)
        assert got["accepted"] == 1 and got["refused"] == 3, got  # one offer without a payment channel
        assert any("payment channel" in r for r in got["reasons"]), got
        # the target's own counter is authoritative (a refusal is a reset the client may not see)
        assert wait_until(lambda: sum(b.status()["defenses"]["overlay"]["streams_refused"].values()) >= 1)
        for i in range(5):  # the funded requester is served meanwhile and after
            assert c.completions.create(model="m", prompt=f"legit {i}", max_tokens=2).choices[0].text.startswith("legit")
        st = b.status()["defenses"]
        assert st["offers"]["committed"] >= 6 and st["offers"]["refused_unfunded"] >= 1

        def exported() -> bool:
            m = samples(b.api_url)
            return m.get(("wwwserve_offers_total", (("outcome", "refused_unfunded"),)), 0) >= 1
        assert wait_until(exported)
        m = samples(b.api_url)
        st = b.status()["defenses"]
        assert m[("wwwserve_offers_total", (("outcome", "committed"),))] >= 6
        assert m[("wwwserve_offers_total", (("outcome", "refused_unfunded"),))] == st["offers"]["refused_unfunded"]
        refused = sum(v for (name, _), v in m.items() if name == "wwwserve_streams_refused_total")
        assert refused >= 1 and refused == sum(st["overlay"]["streams_refused"].values())
        assert m[("wwwserve_gossip_received_total", ())] > 0
        assert m[("wwwserve_peer_table_peers", ())] >= 1
        assert ("wwwserve_streams_open", (("protocol", "total"),)) in m
        assert ("wwwserve_connected_peers", ()) in m
        assert ("wwwserve_reputation_penalised_peers", ()) in m
        assert samples(a.api_url)[("wwwserve_offers_open", ())] == 0  # a requester holds no offers
    finally:
        stop_network(nodes)
