"""The WAN/NAT lab itself (benchmarks/netlab.py; root only): NAT behaviour, and that nothing
is left behind, on a normal exit and on SIGINT."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import netlab  # noqa: E402

pytestmark = pytest.mark.real
_WHY = netlab.lab_available()
needs_lab = pytest.mark.skipif(_WHY is not None, reason=_WHY or "")


def _namespaces(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


@needs_lab
@pytest.mark.parametrize("kind", ["eim", "adm"])
def test_nated_node_reaches_out_but_cannot_be_reached(kind: str) -> None:
    result = netlab.check_nat(kind)
    assert result == {"kind": kind, "outbound_ok": True, "inbound_refused": True}


@needs_lab
def test_everything_is_removed_on_exit_and_on_sigint(tmp_path: Path) -> None:
    with netlab.open_lab(2, nated=["eim"], prefix="wlt13a") as lab:
        assert len(_namespaces("wlt13a")) == 5  # hub, 2 public, nat, node behind it
        emulator = lab.emulator
        assert emulator is not None and emulator.poll() is None
    assert _namespaces("wlt13a") == [] and emulator.poll() is not None
    # a child of a background job inherits SIGINT ignored (POSIX shells do that), so Python would
    # never raise KeyboardInterrupt: restore the handler a terminal's Ctrl-C meets
    script = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
              f"import sys, time; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import netlab\n"
              "with netlab.open_lab(2, nated=['adm'], prefix='wlt13b') as lab:\n"
              "    print('up', flush=True); time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        assert len(_namespaces("wlt13b")) == 5
        proc.send_signal(signal.SIGINT)
        proc.wait(90)  # generous: the child tears down 5 namespaces and the emulator
    finally:
        if proc.poll() is None:  # never leave a lab behind for the tests after this one
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    deadline = time.monotonic() + 10
    while _namespaces("wlt13b") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _namespaces("wlt13b") == []
    assert subprocess.run(["ip", "link", "show", "wlt13broot"], capture_output=True).returncode != 0


def test_link_and_nat_kinds_are_checked() -> None:
    with pytest.raises(ValueError):
        netlab.Link(rtt_ms=-1)
    with pytest.raises(ValueError):
        netlab.Link(loss_pct=100)
    if _WHY is None:
        with pytest.raises(ValueError):
            with netlab.open_lab(1, nated=["symmetric"]):
                pass
