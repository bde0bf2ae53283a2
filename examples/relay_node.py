#!/usr/bin/env python3
"""A relay node: joins a WWW.Serve network from a bootstrap multiaddr, serves its own executor
and relays requests for models it does not serve to peers that do.

    python examples/relay_node.py                                  # built-in default, prints how to reach it
    python examples/relay_node.py --bootstrap /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW...
    python examples/relay_node.py --upstream http://127.0.0.1:8080/v1   # proxy a vLLM/llama.cpp/Ollama server
    python examples/relay_node.py --model-dir data/models/small --model-name shakespeare

Without --model-dir or --upstream it serves an ``echo`` model (answers with the prompt),
which is enough to see routing work. Stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import sys

import trio

from wwwserve_p2p.cli import setup_logging
from wwwserve_p2p.config import load_config
from wwwserve_p2p.errors import WwwServeError
from wwwserve_p2p.localnet import free_port
from wwwserve_p2p.node import open_node


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap", action="append", default=[], metavar="MULTIADDR",
                   help="peer to join through, ending in /p2p/<PeerId> (repeatable; default: start a new network)")
    p.add_argument("--p2p-port", type=int, default=0, help="libp2p TCP port (default: a free port)")
    p.add_argument("--api-port", type=int, default=0, help="HTTP API port (default: a free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--data-dir", default="data/relay", help="identity and caches (default: %(default)s)")
    p.add_argument("--network", default="wwwserve-dev", help="network name (default: %(default)s)")
    p.add_argument("--model-dir", help="serve a local Hugging Face model directory (hf executor)")
    p.add_argument("--model-name", help="name to serve the model under (default: directory name)")
    p.add_argument("--upstream", help="serve by proxying this OpenAI-compatible base URL (openai executor)")
    p.add_argument("--config", help="TOML config; the flags above override it")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="extra overrides")
    return p.parse_args(argv)


def build_overrides(args: argparse.Namespace) -> list[str]:
    p2p_port = args.p2p_port or free_port()
    api_port = args.api_port or free_port()
    sets = [f'node.data_dir="{args.data_dir}"', f'node.network="{args.network}"',
            f'net.listen=["/ip4/{args.host}/tcp/{p2p_port}"]', f'api.host="{args.host}"', f"api.port={api_port}"]
    if args.bootstrap:
        sets.append("net.bootstrap=[" + ", ".join(f'"{b}"' for b in args.bootstrap) + "]")
    if args.model_dir:
        sets += ['executor.kind="hf"', f'executor.model_dir="{args.model_dir}"']
        if args.model_name:
            sets.append(f'executor.model_name="{args.model_name}"')
    elif args.upstream:
        sets += ['executor.kind="openai"', f'executor.base_url="{args.upstream}"']
    elif not args.config:
        sets += ['executor.kind="echo"', 'executor.models=["echo"]']
    return sets + args.set


async def run(args: argparse.Namespace) -> None:
    config = load_config(args.config, build_overrides(args))
    async with open_node(config) as node:
        addr = node.overlay.addrs()[0]
        model = node.executor.models()[0]
        print(f"""
relay node up
  PeerId     {node.peer_id}
  multiaddr  {addr}
  API        {node.api_url}/v1   (OpenAI-compatible; status at {node.api_url}/status)
  serves     {', '.join(node.executor.models())}

Ask it something:
  curl -s {node.api_url}/v1/chat/completions -H 'content-type: application/json' \\
       -d '{{"model": "{model}", "messages": [{{"role": "user", "content": "hello there"}}]}}'

Start another node that joins this one (it will relay requests for models it lacks):
  python examples/relay_node.py --data-dir data/relay2 --bootstrap {addr}
""", flush=True)
        await trio.sleep_forever()


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logging("INFO")
    try:
        trio.run(run, args)
    except WwwServeError as exc:
        logging.getLogger("relay").error("%s", exc)
        return 2
    except KeyboardInterrupt:
        print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
