"""Providers behind NAT, in the WAN/NAT lab (benchmarks/netlab.py; root only).

Two relay-only nodes (``examples/relay_node.py --relay-only``), one public node, and two
providers each behind its own NAT (one endpoint-independent, one address-dependent, so the
pair cannot hole-punch and stays relayed), 10 ms RTT on every link. Every request is streamed
through the official ``openai`` client:

1. the public node asks for a model only the NATed providers serve: executed by one of them;
2. one NATed node asks for a model only the other serves (over a relayed circuit);
3. the relay both NATed nodes reserved on is killed: they reserve on the other relay, their
   advertised circuit addresses follow, and both requests work again.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import openai
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import netlab  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.real]

_WHY = netlab.lab_available()

PROMPT = "reach behind the nat please"

# run inside a NATed node's namespace: its API is reachable only there
CLIENT = r"""
import json, sys, openai
c = openai.OpenAI(base_url=sys.argv[1], api_key="none", max_retries=0, timeout=60)
raw = c.chat.completions.with_raw_response.create(model=sys.argv[2], stream=True,
        messages=[{"role": "user", "content": sys.argv[3]}])
text = "".join((ch.choices[0].delta.content or "") for ch in raw.parse() if ch.choices)
print(json.dumps({"executor": raw.headers.get("x-wwwserve-executor"), "text": text}))
"""


def _node_cfg(models: list[str], bootstrap: list[str], relays: list[str] | None = None) -> dict:
    net: dict = {"bootstrap": bootstrap, "dial_timeout": 5.0}
    if relays is not None:
        net.update(relays=relays, relay_count=1)
    return {"node": {"network": "wwwserve-netlab-test", "log_level": "INFO"}, "status": {"interval": 1.0},
            "net": net, "executor": {"kind": "echo", "models": models, "capacity": 4}}


def _relay_argv(name: str, work: Path) -> list[str]:
    return [sys.executable, str(ROOT / "examples" / "relay_node.py"), "--relay-only", "--json", "--host", "0.0.0.0",
            "--p2p-port", "4001", "--data-dir", str(work / name), "--network", "wwwserve-netlab-test"]


def _wait(what: str, check, timeout: float, nodes: list[netlab.LabNodeProcess]) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (netlab.LabError, KeyError, ValueError) as exc:
            last = exc
        time.sleep(1.0)
    logs = "\n".join(f"--- {n.name}\n{n.log_tail(25)}" for n in nodes)
    pytest.fail(f"{what}: not within {timeout:.0f} s (last error {last!r})\n{logs}")


def _alive(st: dict, peers: list[str]) -> bool:
    rows = {p["peer_id"]: p for p in st["peers"]}
    return all(rows.get(p, {}).get("state") == "alive" for p in peers)


def _stream_public(api_url: str, model: str) -> tuple[str, str]:
    client = openai.OpenAI(base_url=api_url + "/v1", api_key="none", max_retries=0, timeout=60)
    raw = client.chat.completions.with_raw_response.create(
        model=model, stream=True, messages=[{"role": "user", "content": PROMPT}])
    text = "".join((ch.choices[0].delta.content or "") for ch in raw.parse() if ch.choices)
    return raw.headers.get("x-wwwserve-executor"), text


def _stream_inside(lab: netlab.Lab, n: netlab.LabNodeProcess, model: str) -> tuple[str, str]:
    r = lab.run(n.node, [sys.executable, "-c", CLIENT, n.api_url + "/v1", model, PROMPT], timeout=90)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return out["executor"], out["text"]


@pytest.mark.skipif(_WHY is not None, reason=_WHY or "")
def test_nated_providers_serve_through_relays_and_survive_losing_their_relay(tmp_path: Path) -> None:
    with netlab.open_lab(3, nated=["eim", "adm"], default=netlab.Link(rtt_ms=10.0)) as lab:
        r1, r2 = netlab.start_lab_nodes(lab, [(lab.nodes[0], "relay1", {}, _relay_argv("relay1", tmp_path)),
                                              (lab.nodes[1], "relay2", {}, _relay_argv("relay2", tmp_path))], tmp_path)
        relays = [r1.multiaddr, r2.multiaddr]
        pub, n1, n2 = netlab.start_lab_nodes(lab, [
            (lab.nodes[2], "pub", _node_cfg(["pub-only"], relays), None),
            (lab.nodes[3], "nat1", _node_cfg(["nat-a", "nat-any"], relays, relays), None),
            (lab.nodes[4], "nat2", _node_cfg(["nat-b", "nat-any"], relays, relays), None)], tmp_path)
        everyone = [r1, r2, pub, n1, n2]
        nated = {n1.peer_id, n2.peer_id}

        def joined() -> bool:
            s1, s2 = n1.status(lab), n2.status(lab)
            return (_alive(pub.status(lab), [n1.peer_id, n2.peer_id]) and _alive(s1, [pub.peer_id, n2.peer_id])
                    and _alive(s2, [pub.peer_id, n1.peer_id])
                    and s1["reach"]["relays"] == [r1.peer_id] and s2["reach"]["relays"] == [r1.peer_id])

        t0 = time.monotonic()
        _wait("NATed nodes private, reserved on relay1, and the mesh alive", joined, 90, everyone)
        print(f"joined in {time.monotonic() - t0:.1f} s")
        s1 = n1.status(lab)
        assert s1["reach"]["reachability"] == "private"  # learnt through AutoNAT (net.reachability = auto)
        assert s1["addrs"] and all(f"/p2p/{r1.peer_id}/p2p-circuit/p2p/{n1.peer_id}" in a for a in s1["addrs"])
        assert pub.status(lab)["reach"]["reachability"] == "public"

        # 1. public node -> a NATed executor
        executor, text = _stream_public(pub.api_url, "nat-any")
        assert executor in nated and text.split() == PROMPT.split()
        # 2. NATed -> NATed (endpoint-independent behind address-dependent: no hole punch, relayed)
        executor, text = _stream_inside(lab, n1, "nat-b")
        assert executor == n2.peer_id and text.split() == PROMPT.split()
        kinds = {p["peer_id"]: p["connection"] for p in n1.status(lab)["peers"]}
        assert kinds[n2.peer_id] == "relayed"
        assert kinds[pub.peer_id] in ("direct", "hole-punched", "relayed")

        # 3. the relay goes away: both reserve on relay2 and stay selectable
        r1.kill()

        def moved() -> bool:
            ok = True
            for n in (n1, n2):
                st = n.status(lab)
                ok &= st["reach"]["relays"] == [r2.peer_id]
                ok &= all(f"/p2p/{r2.peer_id}/p2p-circuit/" in a for a in st["addrs"])
            return ok

        _wait("NATed nodes reserved on relay2", moved, 60, everyone)
        _wait("both NATed nodes alive at the public node", lambda: _alive(pub.status(lab), list(nated)), 30,
              everyone)
        deadline = time.monotonic() + 60
        while True:  # the first attempt may still try the dead circuit; the requester fails over
            try:
                executor, text = _stream_public(pub.api_url, "nat-a")
                break
            except openai.APIError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
        assert executor == n1.peer_id and text.split() == PROMPT.split()
        executor, text = _stream_inside(lab, n2, "nat-a")
        assert executor == n1.peer_id and text.split() == PROMPT.split()
        kinds = {p["peer_id"]: p["connection"] for p in n2.status(lab)["peers"]}
        assert kinds[n1.peer_id] == "relayed"
