"""Slot squatting on the in-memory overlay under trio's MockClock (issue 15, "offers cost
something"): identities that probe an executor and never decide cannot keep a funded
requester's delegated requests from being served."""

from __future__ import annotations

import itertools

import trio

from wwwserve_p2p.core.types import GenerationRequest, Offer
from wwwserve_p2p.executors.echo import EchoExecutor
from wwwserve_p2p.identity import Identity
from wwwserve_p2p.services.delegation import PROTOCOL
from wwwserve_p2p.testing.swarm import collect_text, open_swarm
from wwwserve_p2p.wire import codec
from wwwserve_p2p.wire.framing import FrameReader, frame

_ids = itertools.count()
PROMPT = "one two three four five six"


def req(model="echo"):
    return GenerationRequest(f"sq{next(_ids)}", model, prompt=PROMPT, max_tokens=8, temperature=0.0)


async def squat(overlay, target: str, network_id: str, streams: int, counts: dict[str, int]) -> None:
    """Keep ``streams`` probes open at ``target``, never deciding; reopen each one that ends."""

    async def one() -> None:
        while True:
            try:
                s = await overlay.open_stream(target, PROTOCOL)
                await s.write(frame(codec.encode_request(req(), network_id, 60_000)))
                data = await FrameReader(s, 1 << 20).read_frame(10.0)
                reply = codec.decode_reply(data) if data else None
                if isinstance(reply, Offer) and reply.accepted:
                    counts["accepted"] += 1
                    await FrameReader(s, 1 << 20).read_frame(30.0)  # hold it: never decide
                else:
                    counts["refused"] += 1
            except Exception:  # noqa: BLE001 - the executor closed or reset us: squat again
                counts["errors"] += 1
            await trio.sleep(0.05)

    async with trio.open_nursery() as n:
        for _ in range(streams):
            n.start_soon(one)


async def test_a_funded_requester_is_served_while_squatters_hold_open_offers(autojump_clock):
    # node 0 serves another model (so it offloads every echo request); node 1 serves echo
    executors = [EchoExecutor(models=("front",), capacity=4), EchoExecutor(models=("echo",), capacity=4)]
    async with open_swarm(executors) as swarm:
        origin, ex = swarm[0], swarm[1]
        price = ex.ledger.params.price(8)
        # the honest requester locks credit toward the executor ahead of its requests (tickets.tick)
        await swarm.wait_until(lambda: ex.delegation.funded(origin.peer_id, price), timeout=60)
        counts = {"accepted": 0, "refused": 0, "errors": 0}
        served: list[str] = []
        async with trio.open_nursery() as nursery:
            async def squatter() -> None:
                async with swarm.network.open_overlay(Identity.generate()) as ov:
                    await squat(ov, ex.peer_id, origin.network_id, 8, counts)

            for _ in range(3):  # three free identities (Sybils), 8 probes each
                nursery.start_soon(squatter)
            await swarm.wait_until(lambda: counts["accepted"] >= 2, timeout=30)
            squatted = ex.delegation.offers.view(trio.current_time())
            assert squatted["unfunded_open"] >= 1  # the squatters hold offers while we ask
            for _ in range(10):
                with trio.fail_after(30):
                    served.append(await collect_text(origin, req()))
            view = ex.delegation.offers.view(trio.current_time())
            nursery.cancel_scope.cancel()
        assert served == [PROMPT] * 10  # every legitimate delegated request served
        assert ex.stats.accepted_for_others == 10
        assert view["refused_unfunded"] > 0 and view["unfunded_open"] <= 2
        assert view["expired"] >= 1 or view["open"] >= 1
