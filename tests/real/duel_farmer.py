"""Child process of test_duel_farming.py: issue 18's judge-penalty farming attack, as an outsider.

Usage: ``python duel_farmer.py PARAMS_JSON``; PARAMS: ``genesis`` (path), ``judge`` ({peer_id,
multiaddr}), ``api_urls`` (every honest node's HTTP API), ``duels``, ``judge_bond``, ``deadline_s``.

A throwaway requester key R (no credit) sets up ``duels`` duels between two fake executors it
owns, names two fake judges it owns plus the honest judge J, and asks J to judge each over
``/wwwserve/judge/1`` (no fee: R has nothing to lock). Where the code knows verifiable panels
(``DuelTicket.pool``), it also tries the new form: a pool of J and its fakes with made-up stake
(all three seats drawn). For every duel it writes a ``Verdict`` with J's vote (if J voted) and
its fakes' votes against J, puts them all into one block of R's chain and publishes it on the
ledger topic until every honest node holds it. Prints one JSON line: J's votes and refusals, and
whether the block reached every node. Runs unchanged against the code before issue 18 item 4.
"""

from __future__ import annotations

import json
import sys
import time

import httpx
import trio

from wwwserve_p2p.config import load_genesis
from wwwserve_p2p.core.acceptance import answer_digest
from wwwserve_p2p.core.ledger import DuelTicket, Ledger, Receipt, Verdict, Vote
from wwwserve_p2p.core.types import ErrorReply
from wwwserve_p2p.identity import Identity
from wwwserve_p2p.net.config import Libp2pConfig
from wwwserve_p2p.net.libp2p.host import open_libp2p_overlay
from wwwserve_p2p.wire import codec
from wwwserve_p2p.wire import ledger_codec as lc
from wwwserve_p2p.wire.codec import JudgeRequest
from wwwserve_p2p.wire.framing import FrameReader, frame

# the honest judge's method here is ``llm`` on an echo executor, which repeats the question: a
# question that contains "[[A]]" makes it vote for the first answer (a decided vote, so the
# fakes' opposite votes put it in the minority; a judge that abstains pays the abstain penalty)
PROMPT = "[[A]] one two three four five six seven eight nine ten"
GOOD, BAD = "one two three four five six seven eight nine ten", "xq zz blorp nay xq zz blorp nay"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def heights(api_urls: list[str], peer: str) -> list[int]:
    out = []
    for url in api_urls:
        try:
            rows = httpx.get(url + "/ledger/accounts", timeout=10).json()["accounts"]
        except (httpx.HTTPError, ValueError, KeyError):
            out.append(-1)
            continue
        out.append(next((r.get("height", 0) for r in rows if r["peer_id"] == peer), 0))
    return out


async def ask(ov, judge: str, req: JudgeRequest) -> Vote | str:
    stream = await ov.open_stream(judge, "/wwwserve/judge/1")
    try:
        await stream.write(frame(codec.encode_judge_request(req)))
        data = await FrameReader(stream, 4 << 20).read_frame(120.0)
    finally:
        await stream.close()
    if data is None:
        return "eof"
    reply = codec.decode_judge_response(data)
    return f"{reply.code}: {reply.message}" if isinstance(reply, ErrorReply) else reply


async def main(params: dict) -> dict:
    genesis = load_genesis(params["genesis"])
    nid = genesis.network_id
    me, e1, e2, f1, f2 = (Identity.generate() for _ in range(5))
    J, fakes = params["judge"]["peer_id"], (f1, f2)
    signer = {i.peer_id: i for i in (me, e1, e2, f1, f2)}
    jbond = params["judge_bond"]
    out: dict = {"requester": me.peer_id, "fakes": [f.peer_id for f in fakes], "votes": {}, "refusals": []}
    verdicts: list[Verdict] = []
    topic = f"/wwwserve/{nid}/ledger"
    async with open_libp2p_overlay(me, Libp2pConfig(bootstrap=(params["judge"]["multiaddr"],))) as ov:
        await ov.subscribe(topic)
        duels: list[DuelTicket] = []
        t = now_ms()
        for i in range(params["duels"]):
            duels.append(DuelTicket(nid, f"farm-{i}-{t}", me.peer_id, (e1.peer_id, e2.peer_id),
                                    (f1.peer_id, f2.peer_id, J), 1_000, jbond, t + 600_000,
                                    issued_ms=t).signed(me.sign))
        if "pool" in DuelTicket.__dataclass_fields__:   # the verifiable form, with a made-up pool
            pool = tuple(sorted([(f1.peer_id, 10**12), (f2.peer_id, 10**12), (J, 10**12)]))
            duels.append(DuelTicket(nid, f"farm-pool-{t}", me.peer_id, (e1.peer_id, e2.peer_id), (), 1_000, jbond,
                                    t + 600_000, issued_ms=t, pool=pool, judges_k=3).signed(me.sign))
        for d in duels:
            ra = Receipt(e1.peer_id, d.hash, answer_digest(GOOD)).signed(e1.sign)
            rb = Receipt(e2.peer_id, d.hash, answer_digest(BAD)).signed(e2.sign)
            try:
                with trio.fail_after(150):
                    reply = await ask(ov, J, JudgeRequest(d, PROMPT, GOOD, BAD, ra, rb, None))
            except Exception as exc:  # noqa: BLE001 - report whatever stopped the exchange
                reply = f"error: {type(exc).__name__}: {exc}"
            votes: list[Vote] = []
            if isinstance(reply, Vote):
                out["votes"][d.duel_id] = reply.choice
                votes.append(reply)
                against = "B" if reply.choice == "A" else "A"
            else:
                out["refusals"].append(reply)
                against = "A"
            votes += [Vote(f.peer_id, d.hash, against).signed(signer[f.peer_id].sign) for f in fakes]
            verdicts.append(Verdict(d, (ra, rb), tuple(votes)))
        block = Ledger(genesis).next_block(me.peer_id, max(now_ms(), t), verdicts, me.sign)
        out["entries"] = len(verdicts)
        deadline = time.monotonic() + params["deadline_s"]
        reached = False
        while time.monotonic() < deadline:
            try:
                await ov.publish(topic, lc.encode_gossip(block))
            except Exception as exc:  # noqa: BLE001 - no mesh yet: try again
                out["publish_error"] = str(exc)[:200]
            await trio.sleep(2.0)
            hs = await trio.to_thread.run_sync(heights, params["api_urls"], me.peer_id)
            out["heights"] = hs
            if all(h >= 1 for h in hs):
                reached = True
                break
        out["block_reached_every_node"] = reached
    return out


if __name__ == "__main__":
    print(json.dumps(trio.run(main, json.loads(sys.argv[1]))), flush=True)
