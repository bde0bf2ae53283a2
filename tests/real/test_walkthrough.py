"""README's "Run your own network" walkthrough, executed step by step as written: the ```bash
blocks of each numbered step run in bash (real ``wwwserve`` processes, echo executor), with the
ports 8000/8001/4000/4001 replaced by free ones. Between steps the test checks what the README
promises: the genesis allocates only alice, bob is refused before it is funded (503 'cannot
afford'), the transfer is received by bob's node (its Receive of alice's Transfer on both nodes), and the
query through bob is executed by alice."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from wwwserve_p2p.localnet import free_port

pytestmark = [pytest.mark.real, pytest.mark.slow]

README = Path(__file__).resolve().parents[2] / "README.md"
VENV_BIN = Path(sys.executable).parent


def walkthrough_steps() -> list[tuple[int, str]]:
    """(step number, bash code) of each numbered step of the README section, in order."""
    section = README.read_text().split("\n## Run your own network\n", 1)[1].split("\n## ", 1)[0]
    steps = []
    for m in re.finditer(r"^(\d+)\. (.*?)(?=^\d+\. |\Z)", section, flags=re.S | re.M):
        blocks = re.findall(r"```bash\n(.*?)```", m.group(2), flags=re.S)
        code = "\n".join("\n".join(line[3:] if line.startswith("   ") else line for line in b.splitlines())
                         for b in blocks)
        steps.append((int(m.group(1)), code))
    return steps


def test_readme_has_the_numbered_walkthrough():
    steps = walkthrough_steps()
    assert [n for n, _ in steps] == list(range(1, len(steps) + 1)) and len(steps) >= 6
    text = " ".join(code for _, code in steps)
    for needed in ("wwwserve genesis", "wwwserve node", "net.bootstrap", "wwwserve transfer", "/v1/chat/completions"):
        assert needed in text, needed


@pytest.fixture
def sessions():
    """Process groups started by the steps (background nodes); all killed at the end."""
    groups: list[int] = []
    yield groups
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 15
    for pgid in groups:
        while time.monotonic() < deadline and _alive(pgid):
            time.sleep(0.1)
        if _alive(pgid):
            os.killpg(pgid, signal.SIGKILL)


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def test_walkthrough_runs_step_by_step(tmp_path, sessions):
    ports = {p: free_port() for p in ("8000", "8001", "4000", "4001")}
    a_url, b_url = f"http://127.0.0.1:{ports['8000']}", f"http://127.0.0.1:{ports['8001']}"
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONUNBUFFERED": "1"}

    def run(n: int, code: str) -> str:
        for old, new in ports.items():
            code = re.sub(rf"(?<![\d.]){old}(?!\d)", str(new), code)
        proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        sessions.append(proc.pid)
        try:
            out, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        logs = "".join(f"\n--- {p.name}\n{p.read_text()[-2000:]}" for p in tmp_path.glob("*.log"))
        assert proc.returncode == 0, f"step {n} failed ({proc.returncode}):\n{code}\n--- output\n{out}{logs}"
        return out

    def peer(name: str) -> str:
        return subprocess.run([str(VENV_BIN / "wwwserve"), "keygen", "-q", "--data-dir", str(tmp_path / name)],
                              capture_output=True, text=True, check=True).stdout.strip()

    steps = dict(walkthrough_steps())
    run(1, steps[1])
    alice, bob = peer("alice"), peer("bob")
    run(2, steps[2])
    genesis = json.loads((tmp_path / "genesis.json").read_text())
    assert genesis["allocations"] == {alice: 100_000_000}
    out = run(3, steps[3])
    assert json.loads(out.strip().splitlines()[-1])["status"] == "ok"
    out = run(4, steps[4])
    assert json.loads(out.strip().splitlines()[-1])["status"] == "ok"
    assert httpx.get(b_url + "/version").json()["network_id"] == httpx.get(a_url + "/version").json()["network_id"]

    # before funding: bob's requests that need alice are refused (bob cannot pay)
    body = {"model": "echo", "messages": [{"role": "user", "content": "too early"}]}
    deadline = time.monotonic() + 60
    while True:  # until bob has learned alice's model (status gossip)
        r = httpx.post(b_url + "/v1/chat/completions", json=body, timeout=30)
        if r.status_code != 404 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 503 and "afford" in r.json()["error"]["message"], r.text

    out = run(5, steps[5])
    assert "received by the recipient" in out, out
    for url in (a_url, b_url):  # both nodes hold bob's Receive of alice's 10-credit Transfer
        blocks = httpx.get(url + "/ledger/blocks", params={"author": bob}).json()["blocks"]
        received = [e for b in blocks for e in b["entries"] if e["t"] == "receive"]
        assert len(received) == 1, (url, blocks)
        r = received[0]
        assert r["block"]["header"]["author"] == alice
        assert r["block"]["entries"][r["index"]] == {"t": "transfer", "to": bob, "amount": 10_000_000}
        acc = {a["peer_id"]: a for a in httpx.get(url + "/ledger/accounts").json()["accounts"]}
        assert 0 < acc[bob]["balance"] + acc[bob]["stake"] <= 10_000_000, (url, acc[bob])  # (minus deposits)
    assert bob[-12:] in out or bob in out  # the ledger table of step 5 lists bob

    out = run(6, steps[6])
    assert re.search(rf"(?im)^x-wwwserve-executor: {alice}\s*$", out), out
    answer = json.loads(out[out.index("{"):])
    assert answer["choices"][0]["message"]["content"] == "hello network"
