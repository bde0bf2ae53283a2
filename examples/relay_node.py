#!/usr/bin/env python3
"""A relay node for a WWW.Serve network: the public meeting point that providers behind NAT
(home or office GPUs) join through. It runs, in one process:

- a circuit relay v2 **hop**: peers behind NAT reserve a slot here and are reachable at
  ``<this node>/p2p-circuit/p2p/<their PeerId>``; limits: ``--max-reservations`` in all,
  ``--max-circuits`` open circuits per reserved peer, ``--circuit-mb`` MiB and
  ``--circuit-seconds`` seconds per circuit (0: unlimited), reservations valid
  ``--reservation-ttl`` seconds (renewed by the clients at half of it);
- an **AutoNAT** server: peers ask it to dial them back and so learn whether they are
  publicly reachable (it opens a fresh TCP connection to the address they claim);
- a **bootstrap** peer and Kademlia DHT server: new nodes list it in ``net.bootstrap``;
- unless ``--relay-only``: a full **serving node** (executor, status gossip, ledger,
  OpenAI-compatible HTTP API) that also relays *requests* for models it does not serve.

    python examples/relay_node.py                                  # relay + echo serving node, new network
    python examples/relay_node.py --relay-only --host 0.0.0.0 --p2p-port 4001 --announce /ip4/203.0.113.7/tcp/4001
    python examples/relay_node.py --bootstrap /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW...
    python examples/relay_node.py --upstream http://127.0.0.1:8080/v1   # serve by proxying vLLM/llama.cpp/Ollama
    python examples/relay_node.py --model-dir data/models/small --model-name shakespeare

``--relay-only`` donates connectivity only: no executor, no ledger, no HTTP API; it needs no
genesis file (relaying is network-agnostic). A provider behind NAT then joins with::

    wwwserve node --config node.toml --set 'net.bootstrap=["<relay multiaddr>"]' \\
                                     --set 'net.relays=["<relay multiaddr>"]'

(``net.reachability = "auto"`` finds out it is private through this node's AutoNAT; set it
to ``"private"`` to skip the check). Stop with Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

import trio

from wwwserve_p2p.config import load_config
from wwwserve_p2p.errors import WwwServeError
from wwwserve_p2p.localnet import free_port
from wwwserve_p2p.logs import setup_logging


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap", action="append", default=[], metavar="MULTIADDR",
                   help="peer to join through, ending in /p2p/<PeerId> (repeatable; default: start a new network)")
    p.add_argument("--p2p-port", type=int, default=0, help="libp2p TCP port (default: a free port)")
    p.add_argument("--api-port", type=int, default=0, help="HTTP API port (default: a free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on; 0.0.0.0 for every interface "
                                                       "(default: %(default)s)")
    p.add_argument("--announce", action="append", default=[], metavar="MULTIADDR",
                   help="advertise this address instead of the listen address (e.g. the public IP; repeatable)")
    p.add_argument("--data-dir", default="data/relay", help="identity and caches (default: %(default)s)")
    p.add_argument("--network", default="wwwserve-dev", help="network name (default: %(default)s)")
    p.add_argument("--genesis", help="the network's genesis file (serving node only; relaying needs none)")
    p.add_argument("--model-dir", help="serve a local Hugging Face model directory (hf executor)")
    p.add_argument("--model-name", help="name to serve the model under (default: directory name)")
    p.add_argument("--upstream", help="serve by proxying this OpenAI-compatible base URL (openai executor)")
    roles = p.add_argument_group("relay roles")
    roles.add_argument("--relay-only", action="store_true",
                       help="pure relay + AutoNAT + bootstrap/DHT node: no executor, ledger or HTTP API")
    roles.add_argument("--no-relay", action="store_true", help="do not act as a circuit relay hop")
    roles.add_argument("--max-reservations", type=int, default=128, help="relay reservations in all (%(default)s)")
    roles.add_argument("--max-circuits", type=int, default=16,
                       help="open circuits per reserved peer (%(default)s)")
    roles.add_argument("--circuit-mb", type=int, default=1024, help="MiB relayed per circuit (%(default)s)")
    roles.add_argument("--circuit-seconds", type=float, default=0.0,
                       help="seconds a circuit may stay open, 0 = unlimited (%(default)s)")
    roles.add_argument("--reservation-ttl", type=float, default=3600.0,
                       help="seconds a reservation is valid (%(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON ready line instead of the banner")
    p.add_argument("--config", help="TOML config; the flags above override it")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="extra overrides")
    return p.parse_args(argv)


def build_overrides(args: argparse.Namespace) -> list[str]:
    p2p_port = args.p2p_port or free_port()
    api_port = args.api_port or free_port()
    sets = [f'node.data_dir="{args.data_dir}"', f'node.network="{args.network}"',
            f'net.listen=["/ip4/{args.host}/tcp/{p2p_port}"]', f'api.host="{args.host}"', f"api.port={api_port}",
            f"net.relay_service={'false' if args.no_relay else 'true'}", 'net.reachability="public"',
            f"net.relay_max_reservations={args.max_reservations}", f"net.relay_max_circuits={args.max_circuits}",
            f"net.relay_circuit_bytes={args.circuit_mb * 1024 * 1024}",
            f"net.relay_circuit_duration={args.circuit_seconds}", f"net.relay_reservation_ttl={args.reservation_ttl}"]
    if args.bootstrap:
        sets.append("net.bootstrap=[" + ", ".join(f'"{b}"' for b in args.bootstrap) + "]")
    if args.announce:
        sets.append("net.announce=[" + ", ".join(f'"{a}"' for a in args.announce) + "]")
    if args.genesis:
        sets.append(f'ledger.genesis="{args.genesis}"')
    if args.model_dir:
        sets += ['executor.kind="hf"', f'executor.model_dir="{args.model_dir}"']
        if args.model_name:
            sets.append(f'executor.model_name="{args.model_name}"')
    elif args.upstream:
        sets += ['executor.kind="openai"', f'executor.base_url="{args.upstream}"']
    elif not args.config:
        sets += ['executor.kind="echo"', 'executor.models=["echo"]']
    return sets + args.set


async def _until_signal() -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            return


async def run_relay_only(args: argparse.Namespace) -> None:
    """Overlay only: relay hop, AutoNAT server, DHT server and bootstrap peer."""
    from wwwserve_p2p.identity import Identity
    from wwwserve_p2p.net.libp2p import open_libp2p_overlay

    config = load_config(args.config, build_overrides(args))
    identity = Identity.load_or_create(config.node.data_dir)
    async with open_libp2p_overlay(identity, config.net) as overlay:
        addrs = overlay.addrs()
        if args.json:
            print(json.dumps({"event": "ready", "peer_id": overlay.peer_id, "addrs": addrs, "api_url": "",
                              "models": [], "roles": ["relay", "autonat", "bootstrap"]}), flush=True)
        else:
            print(f"""
relay node up (relay-only: circuit relay v2 hop, AutoNAT server, bootstrap/DHT)
  PeerId     {overlay.peer_id}
  multiaddr  {addrs[0]}

A provider behind NAT joins through it with:
  wwwserve node --config node.toml --set 'net.bootstrap=["{addrs[0]}"]' --set 'net.relays=["{addrs[0]}"]'
""", flush=True)
        async with trio.open_nursery() as nursery:
            async def report() -> None:
                while True:
                    await trio.sleep(60)
                    st = overlay.statistics()
                    logging.getLogger("relay").info(
                        "connected peers %d (%s), reservations served %d", st["connected_peers"],
                        st.get("connections"), st.get("relay_reservations_served", 0))
            nursery.start_soon(report)
            await _until_signal()
            nursery.cancel_scope.cancel()


async def run(args: argparse.Namespace) -> None:
    from wwwserve_p2p.node import open_node

    config = load_config(args.config, build_overrides(args))
    async with open_node(config) as node:
        addr = node.overlay.addrs()[0]
        model = node.executor.models()[0]
        genesis = str(Path(config.ledger.genesis).resolve()) if config.ledger.genesis else ""
        if args.json:
            print(json.dumps({"event": "ready", "peer_id": node.peer_id, "addrs": node.overlay.addrs(),
                              "api_url": node.api_url, "models": list(node.executor.models()),
                              "roles": ["relay", "autonat", "bootstrap", "node"]}), flush=True)
        else:
            print(f"""
relay node up (circuit relay v2 hop, AutoNAT server, bootstrap/DHT, serving node)
  PeerId     {node.peer_id}
  multiaddr  {addr}
  API        {node.api_url}/v1   (OpenAI-compatible; status at {node.api_url}/status)
  serves     {', '.join(node.executor.models())}

Ask it something:
  curl -s {node.api_url}/v1/chat/completions -H 'content-type: application/json' \\
       -d '{{"model": "{model}", "messages": [{{"role": "user", "content": "hello there"}}]}}'

Start another node that joins this one (it will relay requests for models it lacks); it must
use the same genesis file{" (" + genesis + ")" if genesis else " (none: the dev network " + repr(config.node.network) + ")"}, or it lands on another network:
  python examples/relay_node.py --data-dir data/relay2 --bootstrap {addr}{" --genesis " + genesis if genesis else ""}

A provider behind NAT joins through it with:
  wwwserve node --config node.toml --set 'net.bootstrap=["{addr}"]' --set 'net.relays=["{addr}"]'{" --set ledger.genesis=" + genesis if genesis else ""}
""", flush=True)
        await _until_signal()


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging("INFO")
    try:
        trio.run(run_relay_only if args.relay_only else run, args)
    except WwwServeError as exc:
        logging.getLogger("relay").error("%s", exc)
        return 2
    except KeyboardInterrupt:
        print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
