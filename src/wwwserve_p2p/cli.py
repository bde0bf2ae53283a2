"""The ``wwwserve`` command: run a node, make keys, inspect a node, train demo models, run the demo.

Run ``wwwserve <command> --help`` for each command's options.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from .errors import WwwServeError

DEFAULT_DATA = Path("data")
DEFAULT_CORPUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "tinyshakespeare" / "input.txt"


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr with timestamps; keep py-libp2p's chatter at WARNING."""
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("libp2p", "multiaddr", "hypercorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def find_corpus(explicit: str | None = None) -> Path:
    """The tinyshakespeare corpus: ``explicit``, else ``../shared/data/...`` of the checkout or cwd."""
    candidates = [Path(explicit)] if explicit else [
        DEFAULT_CORPUS, Path.cwd().parent / "shared/data/tinyshakespeare/input.txt",
        Path.cwd() / "shared/data/tinyshakespeare/input.txt"]
    for c in candidates:
        if c.is_file():
            return c
    raise WwwServeError("tinyshakespeare corpus not found; pass --corpus PATH/input.txt "
                        f"(looked in: {', '.join(map(str, candidates))})")


# ---------------------------------------------------------------- commands

def cmd_node(args: argparse.Namespace) -> int:
    import trio

    from .config import load_config
    from .node import open_node

    config = load_config(args.config, args.set)
    setup_logging(args.log_level or config.node.log_level)

    async def main() -> None:
        async with open_node(config) as node:
            print(json.dumps({"event": "ready", "peer_id": node.peer_id, "addrs": node.overlay.addrs(),
                              "api_url": node.api_url, "models": list(node.executor.models())}), flush=True)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for sig in signals:
                    logging.getLogger("wwwserve_p2p").info("received %s, shutting down", signal.Signals(sig).name)
                    return

    trio.run(main)
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from .identity import KEY_FILE_NAME, Identity

    path = Path(args.data_dir) / KEY_FILE_NAME
    if path.exists() and not args.force:
        ident = Identity.load(path)
        print(f"{ident.peer_id}  (existing key {path}; --force to replace)")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    ident = Identity.generate()
    ident.save(path)
    print(f"{ident.peer_id}  (new key written to {path}, mode 0600)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import httpx
    from rich.console import Console
    from rich.table import Table

    try:
        st = httpx.get(args.url.rstrip("/") + "/status", timeout=5).json()
    except httpx.HTTPError as exc:
        raise WwwServeError(f"cannot reach {args.url}: {exc}") from None
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    con = Console()
    load = st["load"]
    con.print(f"[bold]{st['peer_id']}[/bold]  network {st['network_id']}  models {', '.join(st['models'])}")
    con.print(f"load {load['load']:.2f} (running {load['running']}, queued {load['queued']}, capacity "
              f"{load['capacity']}), delegated running {st['delegated_running']}, connected peers "
              f"{st['connected_peers']}")
    con.print("stats: " + ", ".join(f"{k}={v}" for k, v in st["stats"].items()))
    for a in st["addrs"]:
        con.print(f"  {a}")
    t = Table(title="peers")
    for col in ("peer", "state", "models", "load", "accepting", "stake", "api", "seen (s ago)"):
        t.add_column(col)
    for p in st["peers"]:
        t.add_row(p["peer_id"][-12:], p["state"], ", ".join(p["models"]), f"{p['load']:.2f}",
                  str(p["accepting"]), str(p["stake"]), p["api_url"], f"{p['last_seen_s_ago']:.1f}")
    con.print(t)
    return 0


def _parse_amount(text: str) -> int:
    """Micro-credits from ``123`` (credits) or ``123u`` (micro-credits)."""
    t = text.strip().lower()
    try:
        value = int(t[:-1]) if t.endswith("u") else int(round(float(t) * 1_000_000))
    except ValueError:
        raise WwwServeError(f"not an amount: {text!r} (credits, e.g. 100 or 2.5; or micro-credits, e.g. 1500u)") from None
    if value <= 0:
        raise WwwServeError(f"amount must be > 0: {text!r}")
    return value


def cmd_genesis(args: argparse.Namespace) -> int:
    from .config import config_from_dict, write_genesis
    from .core.ledger import Genesis, LedgerParams
    from .identity import KEY_FILE_NAME, Identity

    allocations: dict[str, int] = {}
    for item in args.alloc:
        if "=" not in item:
            raise WwwServeError(f"--alloc {item!r} must be PEER_ID=AMOUNT")
        peer, amount = item.split("=", 1)
        allocations[peer.strip()] = _parse_amount(amount)
    for d in args.alloc_key_dir:
        key = Path(d) / KEY_FILE_NAME if Path(d).is_dir() else Path(d)
        allocations[Identity.load(key).peer_id] = _parse_amount(args.amount)
    params: dict[str, int] = {}
    for item in args.param:
        if "=" not in item:
            raise WwwServeError(f"--param {item!r} must be NAME=INTEGER")
        k, v = item.split("=", 1)
        try:
            params[k.strip()] = int(v)
        except ValueError:
            raise WwwServeError(f"--param {k}: {v!r} is not an integer") from None
    try:
        genesis = Genesis(args.network, LedgerParams(**params), tuple(allocations.items()), note=args.note)
    except TypeError as exc:
        raise WwwServeError(f"unknown ledger parameter: {exc}") from None
    out = Path(args.out)
    if out.exists() and not args.force:
        raise WwwServeError(f"{out} exists; pass --force to overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_genesis(genesis, out)
    config_from_dict({"ledger": {"genesis": str(out)}}).genesis()  # read back: proves it loads
    print(f"wrote {out}: network {genesis.network!r}, network id {genesis.network_id}, "
          f"{len(genesis.allocations)} allocations, supply {genesis.supply / 1e6:g} credits")
    print(f"use it with: wwwserve node --set ledger.genesis={out}")
    return 0


def cmd_ledger(args: argparse.Namespace) -> int:
    import httpx
    from rich.console import Console
    from rich.table import Table

    base = args.url.rstrip("/")
    try:
        summary = httpx.get(base + "/ledger", timeout=5).json()
        accounts = httpx.get(base + "/ledger/accounts", timeout=5).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise WwwServeError(f"cannot read the ledger of {args.url}: {exc}") from None
    if args.json:
        print(json.dumps({"summary": summary, **accounts}, indent=2))
        return 0
    con = Console()
    con.print(f"network [bold]{summary['network']}[/bold] ({summary['network_id']})  state {summary['state_hash'][:16]}  "
              f"blocks {summary['blocks']} from {summary['authors']} authors, pending {summary['pending']}  "
              f"supply {summary['supply'] / 1e6:,.6f} of {summary['genesis_supply'] / 1e6:,.6f} credits, "
              f"burned {summary['burned'] / 1e6:,.6f}  duels settled {summary.get('duels_settled', 0)}")
    t = Table(title=f"accounts seen by {summary['me']['peer_id'][-12:]} (credits)")
    for col in ("peer", "balance", "stake", "unbonding", "debt", "height", "duels W/L/T", "win rate",
                "judge maj/min/abs", "flags"):
        t.add_column(col, justify="right" if col not in ("peer", "flags") else "left")
    for a in accounts["accounts"]:
        flags = ", ".join(f for f, on in (("me", a["peer_id"] == summary["me"]["peer_id"]),
                                          ("in debt", a["in_debt"]), ("equivocated", a["equivocated"])) if on)
        t.add_row(a["peer_id"][-12:], f"{a['balance'] / 1e6:,.6f}", f"{a['stake'] / 1e6:,.6f}",
                  f"{a['unbonding'] / 1e6:,.6f}", f"{a['debt'] / 1e6:,.6f}", str(a["height"]),
                  f"{a['duels_won']}/{a['duels_lost']}/{a['duels_tied']}" if a["duels"] else "",
                  "" if a["win_rate"] is None else f"{a['win_rate']:.2f}",
                  f"{a['judge_majority']}/{a['judge_minority']}/{a['judge_abstained']}"
                  if a["judge_majority"] + a["judge_minority"] + a["judge_abstained"] else "", flags)
    con.print(t)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    setup_logging("INFO")
    from .executors.training import ensure_models

    paths = ensure_models(Path(args.data_dir), sizes=tuple(args.sizes), corpus=find_corpus(args.corpus),
                          steps=args.steps, progress=True)
    for size, path in paths.items():
        print(f"{size}: {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    setup_logging("WARNING")
    from .demo import DemoOptions, run_demo

    opts = DemoOptions(nodes=args.nodes, requests=args.requests, rate=args.rate, out_dir=Path(args.out),
                       data_dir=Path(args.data_dir), corpus=find_corpus(args.corpus),
                       questions=Path(args.questions) if args.questions else None,
                       max_tokens=args.max_tokens, executor=args.executor, seed=args.seed)
    return run_demo(opts)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wwwserve",
        description="WWW.Serve node: serve LLM requests through an OpenAI-compatible API and share "
                    "load with peers over a libp2p overlay.",
        epilog="Examples:\n  wwwserve demo                       # 4 local nodes serving MT-bench prompts\n"
               "  wwwserve node --config node.toml --set api.port=8001\n"
               "  wwwserve status --url http://127.0.0.1:8000",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    n = sub.add_parser("node", help="run a node until SIGINT/SIGTERM",
                       description="Run one node: joins the overlay (net.bootstrap), serves the API "
                                   "(api.host:api.port) and its executor ([executor]). Prints one JSON "
                                   "line {event: ready, peer_id, addrs, api_url} once up.")
    n.add_argument("--config", "-c", help="TOML config file (see README 'Configuration'); defaults apply without it")
    n.add_argument("--set", "-s", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config key, e.g. --set policy.target_load=0.7 (repeatable)")
    n.add_argument("--log-level", help="DEBUG, INFO, WARNING (default: node.log_level)")
    n.set_defaults(func=cmd_node)

    k = sub.add_parser("keygen", help="create the node identity (Ed25519) and print its PeerId")
    k.add_argument("--data-dir", default="data/node", help="where identity.key is written (default: %(default)s)")
    k.add_argument("--force", action="store_true", help="replace an existing key")
    k.set_defaults(func=cmd_keygen)

    s = sub.add_parser("status", help="show a running node's status and peer table")
    s.add_argument("--url", default="http://127.0.0.1:8000", help="the node's API base URL (default: %(default)s)")
    s.add_argument("--json", action="store_true", help="print raw JSON")
    s.set_defaults(func=cmd_status)

    g = sub.add_parser("genesis", help="write a network genesis file (name, ledger parameters, allocations)",
                       description="Write the genesis JSON that defines a network: its name, ledger parameters "
                                   "and initial credit per PeerId. The network id is its hash, so every node of "
                                   "the network must use the same file (--set ledger.genesis=FILE). Amounts are "
                                   "credits (1 credit = 1,000,000 micro-credits) or micro-credits with a 'u' suffix.",
                       epilog="Example:\n  wwwserve genesis --network mynet --out genesis.json \\\n"
                              "    --alloc 12D3KooW...=100 --alloc-key-dir data/node2 --param unbonding_ms=60000",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("--network", required=True, help="network name")
    g.add_argument("--out", default="genesis.json", help="file to write (default: %(default)s)")
    g.add_argument("--alloc", action="append", default=[], metavar="PEER_ID=AMOUNT",
                   help="initial credit of a PeerId (repeatable)")
    g.add_argument("--alloc-key-dir", action="append", default=[], metavar="DIR",
                   help="allocate --amount to the PeerId of DIR/identity.key (repeatable)")
    g.add_argument("--amount", default="100", help="amount for each --alloc-key-dir (default: %(default)s credits)")
    g.add_argument("--param", action="append", default=[], metavar="NAME=INTEGER",
                   help="ledger parameter, e.g. unbonding_ms=600000, overdraft=0, price_base=1000, "
                        "price_per_token=100, minority_penalty_pct=20, abstain_penalty_pct=5")
    g.add_argument("--note", default="", help="free text stored in the file (changes the network id)")
    g.add_argument("--force", action="store_true", help="overwrite an existing file")
    g.set_defaults(func=cmd_genesis)

    lg = sub.add_parser("ledger", help="show a running node's view of the credit ledger",
                        description="Print the accounts (balance, stake, unbonding, debt, chain height) in a node's "
                                    "view, with the ledger state hash: equal hashes on two nodes mean equal state.")
    lg.add_argument("--url", default="http://127.0.0.1:8000", help="the node's API base URL (default: %(default)s)")
    lg.add_argument("--json", action="store_true", help="print raw JSON")
    lg.set_defaults(func=cmd_ledger)

    t = sub.add_parser("train-models", help="train the small GPT-2-style demo models on tinyshakespeare",
                       description="Train (or reuse cached) small causal LMs, saved under DATA_DIR/models/<size> "
                                   "in Hugging Face format, loadable by the hf executor.")
    t.add_argument("--data-dir", default=str(DEFAULT_DATA), help="cache directory (default: %(default)s)")
    t.add_argument("--sizes", nargs="+", default=["tiny", "small"], help="model sizes (default: tiny small)")
    t.add_argument("--steps", type=int, help="training steps per model (default: per size)")
    t.add_argument("--corpus", help="training text (default: ../shared/data/tinyshakespeare/input.txt)")
    t.set_defaults(func=cmd_train)

    d = sub.add_parser("demo", help="start a small local network and send it real prompts",
                       description="Start N node processes on 127.0.0.1 with heterogeneous executors (two "
                                   "model sizes, one deliberately slow node), send MT-bench questions to "
                                   "node 0 with the openai client faster than it can serve alone, and report "
                                   "per-node results (table + JSON in --out).")
    d.add_argument("--nodes", type=int, default=4, help="number of node processes, >= 2 (default: %(default)s)")
    d.add_argument("--requests", type=int, default=80, help="questions to send (default: all 80)")
    d.add_argument("--rate", type=float, default=8.0, help="arrival rate, requests/s (default: %(default)s)")
    d.add_argument("--max-tokens", type=int, default=128, help="max_tokens per request (default: %(default)s)")
    d.add_argument("--executor", choices=["hf", "echo"], default="hf",
                   help="hf: trained tiny models (default); echo: no torch needed")
    d.add_argument("--out", default="results/demo", help="output directory (default: %(default)s)")
    d.add_argument("--data-dir", default=str(DEFAULT_DATA), help="model cache (default: %(default)s)")
    d.add_argument("--corpus", help="tinyshakespeare input.txt (default: ../shared/data/...)")
    d.add_argument("--questions", help="MT-bench question.jsonl (default: ../shared/data/mt-bench/question.jsonl)")
    d.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except WwwServeError as exc:
        print(f"wwwserve: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
