"""The ``wwwserve`` command: run a node, make keys, inspect a node, train demo models, run the demo.

Run ``wwwserve <command> --help`` for each command's options.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import sys
from pathlib import Path

from typing import Any

from .errors import WwwServeError
from .logs import setup_logging

__all__ = ["build_parser", "main", "setup_logging"]

DEFAULT_DATA = Path("data")
DEFAULT_CORPUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "tinyshakespeare" / "input.txt"


#: 1 credit in micro-credits (every human-facing amount of the CLI is in credits)
MICRO = 1_000_000


def credits(micro: int | float | None) -> str:
    """``micro`` micro-credits as a credits string with 6 decimals (``1.500000``)."""
    return f"{(micro or 0) / MICRO:,.6f}"


def _console() -> "Any":
    """A rich Console that never truncates: on a pipe or file, lines are as wide as needed."""
    from rich.console import Console
    return Console() if sys.stdout.isatty() else Console(width=100_000, soft_wrap=True, color_system=None)


def _get_json(url: str, key: str | None = None, timeout: float = 5.0) -> Any:
    import httpx
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        r = httpx.get(url, timeout=timeout, headers=headers)
    except httpx.HTTPError as exc:
        raise WwwServeError(f"cannot reach {url}: {exc or type(exc).__name__}; is the node running "
                            "(wwwserve node) and is --url its API address?") from None
    if r.status_code >= 400:
        raise WwwServeError(f"{url}: HTTP {r.status_code}: {_error_message(r)}")
    try:
        return r.json()
    except ValueError:
        raise WwwServeError(f"{url} did not answer JSON (is --url a wwwserve node?)") from None


def _error_message(r: Any) -> str:
    try:
        return r.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return r.text[:200]


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
    preflight(config)

    async def main() -> None:
        async with open_node(config) as node:
            print(json.dumps({"event": "ready", "peer_id": node.peer_id, "addrs": node.overlay.addrs(),
                              "api_url": node.api_url, "models": list(node.executor.models())}), flush=True)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for sig in signals:
                    logging.getLogger("wwwserve_p2p").info("received %s, shutting down", signal.Signals(sig).name)
                    return

    try:
        trio.run(main)
    except BaseException as exc:
        message = explain_startup_error(exc, config)
        if message is None:
            raise
        raise WwwServeError(message) from None
    return 0


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    out = [exc]
    if exc.__cause__ is not None:
        out += _leaves(exc.__cause__)
    return out


def _port_in_use(host: str, port: int) -> bool:
    import socket
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _tcp_listens(config: Any) -> list[tuple[str, int]]:
    out = []
    for addr in config.net.listen:
        parts = addr.split("/")
        if len(parts) >= 5 and parts[1] in ("ip4", "ip6") and parts[3] == "tcp" and parts[4].isdigit():
            out.append((parts[2], int(parts[4])))
    return out


def preflight(config: Any) -> None:
    """Check what makes a node fail to start, before starting it, each with one line naming the
    fix: the API port or an overlay port in use, an unreadable hf model directory, an
    unreadable or invalid genesis file, a missing API keys file.

    :raises WwwServeError: the first problem found.
    """
    from .config import ConfigError
    api = config.api
    if api.enabled and api.port and _port_in_use(api.host, api.port):
        raise WwwServeError(f"API port {api.host}:{api.port} is already in use (another node running?); "
                            f"choose another with --set api.port=PORT (0 picks a free one)")
    for host, port in _tcp_listens(config):
        if port and _port_in_use(host, port):
            raise WwwServeError(f"overlay port {host}:{port} (net.listen) is already in use; choose another with "
                                f"--set 'net.listen=[\"/ip4/{host}/tcp/PORT\"]' (PORT 0 picks a free one)")
    ex = config.executor
    if ex.get("kind") == "hf":
        d = Path(str(ex.get("model_dir", "")))
        if not str(ex.get("model_dir", "")):
            problem = "executor.model_dir is not set"
        elif not d.is_dir():
            problem = f"model directory {d} does not exist"
        elif not os.access(d, os.R_OK | os.X_OK):
            problem = f"model directory {d} is not readable (permissions)"
        elif not (d / "config.json").is_file():
            problem = f"model directory {d} has no config.json (not a Hugging Face model directory)"
        else:
            problem = ""
        if problem:
            raise WwwServeError(f"{problem}; set --set executor.model_dir=DIR to a Hugging Face model directory "
                                "('wwwserve train-models --data-dir data' creates data/models/tiny and data/models/small)")
    try:
        config.genesis()
    except ConfigError as exc:
        raise WwwServeError(f"{exc}; pass the network's genesis file with --set ledger.genesis=FILE (the one every "
                            "node of the network uses; 'wwwserve genesis' writes a new one)") from None
    if api.enabled and api.keys_file and not Path(api.keys_file).is_file():
        raise WwwServeError(f"API keys file {api.keys_file} does not exist; create it with "
                            f"'wwwserve keys add --file {api.keys_file} --name NAME', or drop api.keys_file")


def explain_startup_error(exc: BaseException, config: Any) -> str | None:
    """One line for a known start-up failure inside ``exc`` (an exception group from trio, or
    a plain exception), or None for anything else (a bug: its traceback is kept)."""
    for leaf in _leaves(exc):
        if isinstance(leaf, OSError) and leaf.errno == errno.EADDRINUSE:
            return (f"a port is already in use ({leaf.strerror}): API {config.api.host}:{config.api.port}, "
                    f"overlay {', '.join(config.net.listen)}; choose free ones with --set api.port=PORT and "
                    "--set net.listen=... (port 0 picks a free one)")
        if isinstance(leaf, WwwServeError):
            return str(leaf).splitlines()[0] if str(leaf) else type(leaf).__name__
    return None


def cmd_keygen(args: argparse.Namespace) -> int:
    from .identity import KEY_FILE_NAME, Identity

    path = Path(args.data_dir) / KEY_FILE_NAME
    new = not path.exists() or args.force
    if new:
        path.parent.mkdir(parents=True, exist_ok=True)
        ident = Identity.generate()
        ident.save(path)
    else:
        ident = Identity.load(path)
    if args.json:
        print(json.dumps({"peer_id": ident.peer_id, "key_file": str(path), "created": new}))
    elif args.quiet:
        print(ident.peer_id)
    elif new:
        print(f"{ident.peer_id}  (new key written to {path}, mode 0600)")
    else:
        print(f"{ident.peer_id}  (existing key {path}; --force to replace)")
    return 0


def _api_key(args: argparse.Namespace) -> str | None:
    return getattr(args, "api_key", None) or os.environ.get("WWWSERVE_API_KEY") or None


def cmd_status(args: argparse.Namespace) -> int:
    from rich.table import Table

    st = _get_json(args.url.rstrip("/") + "/status", _api_key(args))
    if args.multiaddr:
        addrs = [a for a in st.get("addrs", []) if "/p2p/" in a] or [
            f"{a}/p2p/{st['peer_id']}" for a in st.get("addrs", [])]
        if not addrs:
            raise WwwServeError(f"{args.url} reports no listen address")
        print(next((a for a in addrs if "/ip4/127.0.0.1/" not in a), addrs[0]) if args.public else addrs[0])
        return 0
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    con = _console()
    load = st["load"]
    led = st.get("ledger", {})
    con.print(f"[bold]{st['peer_id']}[/bold]  network {st['network_id']}  models {', '.join(st['models'])}")
    con.print(f"load {load['load']:.2f} (running {load['running']}, queued {load['queued']}, capacity "
              f"{load['capacity']}), delegated running {st['delegated_running']}, connected peers "
              f"{st['connected_peers']}")
    if led:
        con.print(f"balance {credits(led.get('balance'))} credits, stake {credits(led.get('stake'))} credits, "
                  f"earned {credits(led.get('earned'))}, spent {credits(led.get('spent'))}")
    con.print("stats: " + ", ".join(f"{k}={v}" for k, v in st["stats"].items()))
    reach = st.get("reach") or {}
    if reach:
        con.print(f"reachability {reach.get('reachability', '?')}"
                  + (f", relays {', '.join(reach['relays'])}" if reach.get("relays") else "")
                  + (", relaying for others" if reach.get("relay_service") else ""))
    for a in st["addrs"]:
        con.print(f"  {a}")
    t = Table(title="peers (stake in credits)")
    for col in ("peer", "state", "connection", "models", "load", "accepting", "stake", "api", "seen (s ago)"):
        t.add_column(col, no_wrap=True, justify="right" if col in ("load", "stake", "seen (s ago)") else "left")
    for p in st["peers"]:
        t.add_row(p["peer_id"], p["state"], p.get("connection", "?"), ", ".join(p["models"]), f"{p['load']:.2f}",
                  str(p["accepting"]), credits(p["stake"]), p["api_url"], f"{p['last_seen_s_ago']:.1f}")
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
    if args.json:
        print(json.dumps({"file": str(out), "network": genesis.network, "network_id": genesis.network_id,
                          "allocations": {p: a for p, a in genesis.allocations}, "supply": genesis.supply,
                          "unit": "micro-credits"}))
        return 0
    print(f"wrote {out}: network {genesis.network!r}, network id {genesis.network_id}, "
          f"{len(genesis.allocations)} allocations, supply {genesis.supply / 1e6:g} credits")
    print(f"use it with: wwwserve node --set ledger.genesis={out}")
    return 0


def cmd_ledger(args: argparse.Namespace) -> int:
    from rich.table import Table

    base = args.url.rstrip("/")
    summary = _get_json(base + "/ledger", _api_key(args))
    accounts = _get_json(base + "/ledger/accounts", _api_key(args))
    if args.json:
        print(json.dumps({"summary": summary, **accounts}, indent=2))
        return 0
    con = _console()
    con.print(f"network [bold]{summary['network']}[/bold] ({summary['network_id']})  state {summary['state_hash']}  "
              f"blocks {summary['blocks']} from {summary['authors']} authors, pending {summary['pending']}  "
              f"supply {credits(summary['supply'])} of {credits(summary['genesis_supply'])} credits, "
              f"in flight {credits(summary.get('in_flight', 0))}, burned {credits(summary['burned'])}  "
              f"duels settled {summary.get('duels_settled', 0)}")
    t = Table(title=f"accounts seen by {summary['me']['peer_id']} (credits)")
    for col in ("peer", "balance", "stake", "unbonding", "debt", "earned", "spent", "height", "duels W/L/T",
                "win rate", "judge maj/min/abs", "flags"):
        t.add_column(col, no_wrap=True, justify="right" if col not in ("peer", "flags") else "left")
    for a in accounts["accounts"]:
        flags = ", ".join(f for f, on in (("me", a["peer_id"] == summary["me"]["peer_id"]),
                                          ("in debt", a["in_debt"]), ("equivocated", a["equivocated"])) if on)
        t.add_row(a["peer_id"], credits(a["balance"]), credits(a["stake"]), credits(a["unbonding"]),
                  credits(a["debt"]), credits(a.get("earned")), credits(a.get("spent")), str(a["height"]),
                  f"{a['duels_won']}/{a['duels_lost']}/{a['duels_tied']}" if a["duels"] else "",
                  "" if a["win_rate"] is None else f"{a['win_rate']:.2f}",
                  f"{a['judge_majority']}/{a['judge_minority']}/{a['judge_abstained']}"
                  if a["judge_majority"] + a["judge_minority"] + a["judge_abstained"] else "", flags)
    con.print(t)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from rich.table import Table

    from .api.auth import KeysFile

    kf = KeysFile(args.file)
    if args.keys_command == "add":
        key, rec = kf.add(args.name, rate_per_min=args.rate, admin=args.admin)
        if args.json:
            print(json.dumps({"key": key, **rec.public(), "file": str(kf.path)}))
        else:
            print(key)
            print(f"(key {rec.id} '{rec.name}'{' admin' if rec.admin else ''}, {rec.rate_per_min:g} requests/min, "
                  f"added to {kf.path}; shown once, only its hash is stored. Serve it with "
                  f"--set api.keys_file={kf.path})", file=sys.stderr)
        return 0
    if args.keys_command == "revoke":
        rec = kf.revoke(args.ident)
        print(json.dumps(rec.public()) if args.json else f"revoked key {rec.id} '{rec.name}' in {kf.path}")
        return 0
    keys = kf.load()
    if args.json:
        print(json.dumps({"file": str(kf.path), "keys": [k.public() for k in keys]}, indent=2))
        return 0
    t = Table(title=f"API keys in {kf.path}")
    for col in ("id", "name", "admin", "rate (req/min)", "created (UTC)", "revoked"):
        t.add_column(col, no_wrap=True)
    import datetime as _dt
    for k in keys:
        created = _dt.datetime.fromtimestamp(k.created_ms / 1000, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        t.add_row(k.id, k.name, "yes" if k.admin else "", f"{k.rate_per_min:g}", created, "REVOKED" if k.revoked else "")
    _console().print(t)
    return 0


def cmd_transfer(args: argparse.Namespace) -> int:
    import time

    import httpx

    base = args.url.rstrip("/")
    amount = _parse_amount(args.amount)
    key = _api_key(args)
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        r = httpx.post(base + "/admin/transfer", json={"to": args.to, "amount": amount}, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise WwwServeError(f"cannot reach {base}: {exc or type(exc).__name__}") from None
    if r.status_code == 404:
        raise WwwServeError(f"{base} does not serve /admin/transfer; start the sending node with --set api.admin=true "
                            "(and, with API keys on, pass an admin key: --api-key or WWWSERVE_API_KEY)")
    if r.status_code >= 400:
        raise WwwServeError(f"transfer refused (HTTP {r.status_code}): {_error_message(r)}")
    out = r.json()
    received = None
    if args.wait > 0:  # until the recipient's Receive is in the sender's view of the ledger
        deadline = time.monotonic() + args.wait
        received = False
        while time.monotonic() < deadline and not received:
            accounts = _get_json(base + "/ledger/accounts", key)["accounts"]
            acc = next((a for a in accounts if a["peer_id"] == args.to), None)
            summary = _get_json(base + "/ledger", key)
            received = bool(acc) and summary.get("in_flight", 1) == 0 and summary.get("queued_entries", 1) == 0
            if not received:
                time.sleep(0.5)
        out["received"] = received
    if args.json:
        print(json.dumps(out))
    else:
        print(f"queued transfer of {credits(amount)} credits from {out['from']} to {out['to']} "
              f"(spendable after: {credits(out['spendable_after'])} credits)"
              + ("" if received is None else ("; received by the recipient" if received
                                               else f"; not received within {args.wait:g} s (is the recipient online?)")))
    return 0 if received is not False else 1


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
                       max_tokens=args.max_tokens, executor=args.executor, seed=args.seed, slo=args.slo,
                       alone=not args.no_alone, paced=not args.unpaced)
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
    k.add_argument("--quiet", "-q", action="store_true", help="print only the PeerId (for scripts)")
    k.add_argument("--json", action="store_true", help="print {peer_id, key_file, created}")
    k.set_defaults(func=cmd_keygen)

    s = sub.add_parser("status", help="show a running node's status and peer table")
    s.add_argument("--url", default="http://127.0.0.1:8000", help="the node's API base URL (default: %(default)s)")
    s.add_argument("--json", action="store_true", help="print raw JSON")
    s.add_argument("--multiaddr", action="store_true",
                   help="print only a multiaddr to bootstrap from (…/p2p/<PeerId>), for net.bootstrap")
    s.add_argument("--public", action="store_true", help="with --multiaddr: prefer a non-loopback address")
    s.add_argument("--api-key", help="API key, if the node asks for one (default: $WWWSERVE_API_KEY)")
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
    g.add_argument("--json", action="store_true", help="print {file, network, network_id, allocations, supply}")
    g.set_defaults(func=cmd_genesis)

    lg = sub.add_parser("ledger", help="show a running node's view of the credit ledger",
                        description="Print the accounts (balance, stake, unbonding, debt, chain height) in a node's "
                                    "view, with the ledger state hash: equal hashes on two nodes mean equal state.")
    lg.add_argument("--url", default="http://127.0.0.1:8000", help="the node's API base URL (default: %(default)s)")
    lg.add_argument("--json", action="store_true", help="print raw JSON")
    lg.add_argument("--api-key", help="API key, if the node asks for one (default: $WWWSERVE_API_KEY)")
    lg.set_defaults(func=cmd_ledger)

    tr = sub.add_parser("transfer", help="send credit from a running node to another PeerId (fund a newcomer)",
                        description="Ask a running node (started with --set api.admin=true) to transfer credit from "
                                    "its own account to a PeerId: a Transfer entry in its next block. The "
                                    "recipient's node credits it with its own Receive as soon as the block reaches "
                                    "it. Amounts are credits (e.g. 10 or 2.5) or micro-credits with a 'u' suffix.",
                        epilog="Example:\n  wwwserve transfer --url http://127.0.0.1:8000 --to 12D3KooW... --amount 10",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    tr.add_argument("--url", default="http://127.0.0.1:8000", help="the SENDING node's API (default: %(default)s)")
    tr.add_argument("--to", required=True, metavar="PEER_ID", help="the recipient's PeerId (wwwserve keygen -q)")
    tr.add_argument("--amount", required=True, help="credits (10, 2.5) or micro-credits (1500u)")
    tr.add_argument("--wait", type=float, default=0.0, metavar="S",
                    help="wait up to S seconds until the recipient's node has received it (exit 1 if not)")
    tr.add_argument("--api-key", help="admin API key when the node has keys on (default: $WWWSERVE_API_KEY)")
    tr.add_argument("--json", action="store_true", help="print the node's JSON answer")
    tr.set_defaults(func=cmd_transfer)

    ks = sub.add_parser("keys", help="manage API keys (bearer keys for /v1 and /admin)",
                        description="API keys of a node: stored hashed (sha256) in a JSON keys file (mode 0600). "
                                    "Serve them with --set api.keys_file=FILE; a running node picks up changes "
                                    "(a revoke) within a second. Each key has a rate limit (requests/min; over it "
                                    "the API answers 429 with Retry-After).")
    ks.add_argument("--file", default="api_keys.json", help="the keys file (default: %(default)s)")
    ks.add_argument("--json", action="store_true", help="JSON output")
    ksub = ks.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    ka = ksub.add_parser("add", help="create a key; prints it once")
    ka.add_argument("--name", required=True, help="who the key is for (shown in 'list')")
    ka.add_argument("--rate", type=float, default=60.0, help="requests per minute (default: %(default)s)")
    ka.add_argument("--admin", action="store_true", help="may use /admin/* (transfer, deny-list)")
    ksub.add_parser("list", help="list keys (never the keys themselves)")
    kr = ksub.add_parser("revoke", help="revoke a key by id or name")
    kr.add_argument("ident", metavar="ID_OR_NAME")
    ks.set_defaults(func=cmd_keys)

    t = sub.add_parser("train-models", help="train the small GPT-2-style demo models on tinyshakespeare",
                       description="Train (or reuse cached) small causal LMs, saved under DATA_DIR/models/<size> "
                                   "in Hugging Face format, loadable by the hf executor.")
    t.add_argument("--data-dir", default=str(DEFAULT_DATA), help="cache directory (default: %(default)s)")
    t.add_argument("--sizes", nargs="+", default=["tiny", "small"], help="model sizes (default: tiny small)")
    t.add_argument("--steps", type=int, help="training steps per model (default: per size)")
    t.add_argument("--corpus", help="training text (default: ../shared/data/tinyshakespeare/input.txt)")
    t.set_defaults(func=cmd_train)

    d = sub.add_parser("demo", help="start a small local network and send it real prompts",
                       description="Start N node processes on 127.0.0.1 with heterogeneous executors (a "
                                   "real tiny model whose tokens are paced as emulated GPUs of different "
                                   "speeds and slots, one deliberately slow node), send MT-bench questions "
                                   "to node 0 with the openai client faster than it can serve alone, first "
                                   "to node 0 alone, then to the network, and report both side by side "
                                   "plus per-node results (tables + JSON in --out).")
    d.add_argument("--nodes", type=int, default=4, help="number of node processes, >= 2 (default: %(default)s)")
    d.add_argument("--requests", type=int, default=80, help="questions to send (default: all 80)")
    d.add_argument("--rate", type=float, default=2.0, help="arrival rate, requests/s (default: %(default)s)")
    d.add_argument("--max-tokens", type=int, default=64, help="max_tokens per request (default: %(default)s)")
    d.add_argument("--executor", choices=["hf", "echo"], default="hf",
                   help="hf: trained tiny models (default); echo: no torch needed")
    d.add_argument("--out", default="results/demo", help="output directory (default: %(default)s)")
    d.add_argument("--data-dir", default=str(DEFAULT_DATA), help="model cache (default: %(default)s)")
    d.add_argument("--corpus", help="tinyshakespeare input.txt (default: ../shared/data/...)")
    d.add_argument("--questions", help="MT-bench question.jsonl (default: ../shared/data/mt-bench/question.jsonl)")
    d.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    d.add_argument("--slo", type=float, default=None,
                   help="latency SLO in s for the side-by-side table (default: 3 x node 0's fastest answer alone)")
    d.add_argument("--no-alone", action="store_true", help="skip the node-0-alone run (no side-by-side table)")
    d.add_argument("--unpaced", action="store_true",
                   help="run the executors at this CPU's speed instead of pacing them as emulated GPUs "
                        "(on a small CPU-only host the network then cannot beat node 0 alone)")
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
