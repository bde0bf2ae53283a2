"""The CLI as an operator uses it: one-line start-up errors naming the fix (no traceback), and
`wwwserve status` / `wwwserve ledger` tables that are never truncated when piped, with every
amount in credits, and --json."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from functools import partial

import pytest
import trio

from wwwserve_p2p import EchoExecutor, NodeConfig, open_node
from wwwserve_p2p.cli import main as cli_main
from wwwserve_p2p.config import write_genesis
from wwwserve_p2p.core.ledger import Genesis, LedgerParams
from wwwserve_p2p.ledger_store import LedgerStore


NODE_ARGS = ["--set", 'net.listen=["/ip4/127.0.0.1/tcp/0"]', "--set", "api.port=0"]


def node_cli(tmp_path, *sets: str) -> subprocess.CompletedProcess[str]:
    """``wwwserve node`` as a real process (what a user runs)."""
    args = [sys.executable, "-m", "wwwserve_p2p.cli", "node", "--set", f"node.data_dir={tmp_path / 'd'}", *NODE_ARGS]
    for s in sets:
        args += ["--set", s]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture
def node_inproc(tmp_path, capsys, monkeypatch):
    """``wwwserve node`` run in this process (fast; for errors found before the node starts):
    returns a CompletedProcess-like result."""
    import wwwserve_p2p.cli as cli
    monkeypatch.setattr(cli, "setup_logging", lambda level="INFO": None)

    def run(*sets: str) -> subprocess.CompletedProcess[str]:
        args = ["node", "--set", f"node.data_dir={tmp_path / 'd'}", *NODE_ARGS]
        for s in sets:
            args += ["--set", s]
        rc = cli.main(args)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, rc, out.out, out.err)

    return run


def one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("wwwserve: error:")]
    assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0]), proc.stderr
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]


def test_api_port_in_use_is_one_line_naming_the_fix(node_inproc):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        one_line_error(node_inproc(f"api.port={port}"), f"127.0.0.1:{port}", "already in use", "--set api.port=")
        one_line_error(node_inproc(f'net.listen=["/ip4/127.0.0.1/tcp/{port}"]'), "overlay port", "net.listen")


def test_unreadable_model_dir_is_one_line_naming_the_fix(tmp_path, node_inproc):
    one_line_error(node_inproc("executor.kind=hf", f"executor.model_dir={tmp_path / 'missing'}"),
                   "does not exist", "executor.model_dir=", "train-models")
    (tmp_path / "empty").mkdir()
    one_line_error(node_inproc("executor.kind=hf", f"executor.model_dir={tmp_path / 'empty'}"), "no config.json")


def test_wrong_genesis_is_one_line_naming_the_fix(tmp_path, node_inproc):
    one_line_error(node_inproc(f"ledger.genesis={tmp_path / 'nope.json'}"), "cannot read genesis",
                   "--set ledger.genesis=")
    (tmp_path / "bad.json").write_text("{")
    one_line_error(node_inproc(f"ledger.genesis={tmp_path / 'bad.json'}"), "not valid JSON")
    one_line_error(node_inproc(f"api.keys_file={tmp_path / 'keys.json'}"), "does not exist", "wwwserve keys add")


def test_ledger_of_another_network_is_one_line_from_a_real_process(tmp_path):
    # found only once the node opens its ledger (inside trio: an exception group)
    (tmp_path / "d").mkdir()
    LedgerStore.open(str(tmp_path / "d" / "ledger.sqlite"), Genesis("other", LedgerParams())).close()
    write_genesis(Genesis("mine", LedgerParams()), tmp_path / "mine.json")
    one_line_error(node_cli(tmp_path, f"ledger.genesis={tmp_path / 'mine.json'}"), "belongs to network 'other'",
                   "matching genesis")


async def test_status_and_ledger_piped_are_complete_and_in_credits(capsys):
    async with open_node(NodeConfig.embedded(http=True), EchoExecutor(models=("echo",))) as a, \
            open_node(NodeConfig.embedded(http=True, bootstrap=a.overlay.addrs()[0]),
                      EchoExecutor(models=("echo",))) as b:
        with trio.fail_after(30):
            while not any(p["state"] == "alive" for p in a.status()["peers"]):
                await trio.sleep(0.1)
        run = partial(trio.to_thread.run_sync, abandon_on_cancel=True)
        assert await run(cli_main, ["status", "--url", a.api_url]) == 0
        out = capsys.readouterr().out
        assert b.peer_id in out and a.peer_id in out  # full PeerIds, not cut to a terminal's width
        assert "…" not in out and "stake in credits" in out
        assert await run(cli_main, ["ledger", "--url", a.api_url]) == 0
        out = capsys.readouterr().out
        # the whole state hash (it may change while the command runs: the node seals its stake)
        assert re.search(r"state [0-9a-f]{64}\s", out) and "…" not in out and "(credits)" in out
        assert f"accounts seen by {a.peer_id}" in out
        assert await run(cli_main, ["status", "--url", a.api_url, "--multiaddr"]) == 0
        assert capsys.readouterr().out.strip() == a.overlay.addrs()[0]
        for cmd in (["status", "--json"], ["ledger", "--json"]):
            assert await run(cli_main, [*cmd, "--url", a.api_url]) == 0
            json.loads(capsys.readouterr().out)
        # transfer from a node without the admin endpoints: one line naming the fix
        assert await run(cli_main, ["transfer", "--url", a.api_url, "--to", b.peer_id, "--amount", "1"]) == 2
        assert "--set api.admin=true" in capsys.readouterr().err


def test_keygen_quiet_and_json(tmp_path, capsys):
    assert cli_main(["keygen", "--data-dir", str(tmp_path), "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["created"] is True
    assert cli_main(["keygen", "--data-dir", str(tmp_path), "-q"]) == 0
    assert capsys.readouterr().out.strip() == made["peer_id"]
