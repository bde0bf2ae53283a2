"""The dashboard in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
driven by selenium) against a 3-process network over real libp2p.

Node A serves only ``front``; B and C serve ``m``, so A's requests for ``m`` are offloaded and
paid on the ledger. The test reads the rendered page (not the JSON) and checks the peer table
(PeerIds, states, stakes) and the charts (request count, A's spent credit, B's earned credit)
against the nodes' own ``/status`` and ``/ledger/accounts``; screenshots go to
``results/dashboard/``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import openai
import pytest

from wwwserve_p2p.localnet import (NodeSpec, start_network, stop_network, wait_for_ledger, wait_for_mesh,
                                   write_network_genesis)

pytestmark = [pytest.mark.real, pytest.mark.slow]

RESULTS = Path(__file__).resolve().parents[2] / "results" / "dashboard"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
REQUESTS = 6

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
if not (CHROMIUM and DRIVER):
    pytest.skip("chromium/chromedriver not installed (as root, scripts/setup.sh installs them: "
                "apt-get install chromium chromium-driver)", allow_module_level=True)

from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def spec(name: str, models: list[str], delay: float) -> NodeSpec:
    return NodeSpec(name, {"node": {"network": "dash", "log_level": "INFO"}, "status": {"interval": 0.5},
                           "ledger": {"block_interval": 0.3},
                           "executor": {"kind": "echo", "models": models, "capacity": 2, "delay_per_token": delay}})


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    work = tmp_path_factory.mktemp("dash")
    specs = [spec("a", ["front"], 0.0), spec("b", ["m"], 0.02), spec("c", ["m"], 0.02)]
    write_network_genesis(specs, work, "dash-test", credits=100)
    nodes = start_network(specs, work, ready_timeout=90)
    try:
        yield nodes
    finally:
        stop_network(nodes)


@pytest.fixture(scope="module")
def browser():
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1300"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def json_get(node, path: str):
    return httpx.get(node.api_url + path, timeout=5).json()


def account(node, peer_id: str) -> dict:
    return next(a for a in json_get(node, "/ledger/accounts")["accounts"] if a["peer_id"] == peer_id)


READ_PAGE = """
const q = (sel) => Array.from(document.querySelectorAll(sel));
const val = (id) => document.getElementById(id).dataset.value;
const text = (id) => document.getElementById(id).textContent;
return {
  updates: Number(document.body.dataset.updates || 0),
  peers: q("#peers tbody tr").map((tr) => { const td = tr.querySelectorAll("td");
    return {peer: tr.dataset.peer, state: td[1].textContent, models: td[2].textContent,
            stake: Number(td[5].dataset.value), stake_text: td[5].textContent}; }),
  peer_count: text("peer-count"), requests: val("requests"),
  rate: JSON.parse(val("chart-rate-last") || "null"), credit: JSON.parse(val("chart-credit-last") || "null"),
  latency: JSON.parse(val("chart-latency-last") || "null"),
  credit_lines: q("#chart-credit polyline").map((p) => Number(p.dataset.points)),
  latency_lines: q("#chart-latency polyline").map((p) => Number(p.dataset.points)),
  rate_lines: q("#chart-rate polyline").map((p) => Number(p.dataset.points)),
  state_hash: text("state-hash"), equivocations: text("equivocations"),
  heads: q("#heads tbody tr").map((tr) => tr.dataset.author),
};
"""


def read_page(driver) -> dict:
    """Everything the test checks, read in one script run (the page redraws every second)."""
    return driver.execute_script(READ_PAGE)


def wait_until(driver, what: str, check, timeout: float = 30.0):
    """Poll ``check()`` (a value or None) until it returns something truthy; fail with ``what``."""
    last: list = [None]

    def probe(_):
        try:
            last[0] = check()
        except Exception as exc:  # the page is redrawing: try again
            last[0] = exc
            return False
        return last[0]

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(probe)
    except Exception:
        pytest.fail(f"dashboard never showed {what}; last check: {last[0]!r}")


def test_dashboard_renders_peers_and_charts_with_the_nodes_numbers(net, browser):
    a, b, c = net
    wait_for_mesh(net, timeout=60)
    browser.get(a.api_url + "/dashboard")  # open first: the page samples while requests run
    assert browser.title.startswith("wwwserve")
    updates = lambda: read_page(browser)["updates"]  # noqa: E731
    wait_until(browser, "a first update", lambda: updates() >= 1)
    client = openai.OpenAI(base_url=a.api_url + "/v1", api_key="none", max_retries=0, timeout=60)
    executors = set()
    for i in range(REQUESTS):
        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": f"hello dashboard {i}"}], max_tokens=8)
        executors.add(raw.headers["x-wwwserve-executor"])
        assert raw.parse().choices[0].message.content == f"hello dashboard {i}"
    assert executors <= {b.peer_id, c.peer_id}
    wait_for_ledger(net, timeout=60)

    seen = updates()
    wait_until(browser, "two more updates", lambda: updates() >= seen + 2)

    # the peer table: exactly B and C, alive, with the stakes A's /status reports (in credits)
    status = json_get(a, "/status")
    want = {p["peer_id"]: p for p in status["peers"]}
    assert set(want) == {b.peer_id, c.peer_id}

    def peers_match():
        page = read_page(browser)
        rows = {r["peer"]: r for r in page["peers"]}
        st = {p["peer_id"]: p for p in json_get(a, "/status")["peers"]}
        ok = (set(rows) == set(st) and all(r["state"] == "alive" and r["models"] == "m" for r in rows.values())
              and all(abs(rows[p]["stake"] - st[p]["stake"] / 1e6) < 1e-9 for p in st))
        return rows if ok else None

    rows = wait_until(browser, "the peer table of /status", peers_match)
    assert all(r["stake"] > 0 for r in rows.values())  # each node stakes 1 credit by default
    assert {r["stake_text"] for r in rows.values()} == {f"{want[p]['stake'] / 1e6:.6f}" for p in want}

    # the node panel and the charts: A's request count, its spent credit (ledger), the peer count
    spent = account(a, a.peer_id)["spent"] / 1e6
    assert spent > 0
    state_hash = json_get(a, "/ledger")["state_hash"]

    def charts_match():
        page = read_page(browser)
        ok = (page["rate"]["requests"] == REQUESTS and abs(page["credit"]["spent"] - spent) < 1e-9
              and page["state_hash"] == state_hash)
        return page if ok else None

    page = wait_until(browser, f"{REQUESTS} requests, {spent} credits spent, state {state_hash[:12]}", charts_match)
    assert page["requests"] == str(REQUESTS) and page["peer_count"] == "(2)"
    assert len(page["credit_lines"]) == 2 and min(page["credit_lines"]) >= 2
    assert page["rate_lines"] and page["rate_lines"][0] >= 2
    assert page["latency_lines"] and page["latency_lines"][0] >= 1  # seconds in which requests ended
    assert page["latency"]["mean_ms"] > 0
    assert set(page["heads"]) >= {a.peer_id, b.peer_id, c.peer_id}
    assert page["equivocations"] == "none"
    RESULTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(RESULTS / "dashboard-node-a.png"))

    # B's dashboard: it earned what A's ledger view says it earned
    browser.get(b.api_url + "/")
    earned_b = account(b, b.peer_id)["earned"] / 1e6
    assert earned_b > 0 or account(c, c.peer_id)["earned"] > 0

    def earned_matches():
        page = read_page(browser)
        ok = (page["credit"] and abs(page["credit"]["earned"] - account(b, b.peer_id)["earned"] / 1e6) < 1e-9
              and {r["peer"] for r in page["peers"]} == {a.peer_id, c.peer_id})
        return page if ok else None

    wait_until(browser, "B's earned credit and peers", earned_matches)
    browser.save_screenshot(str(RESULTS / "dashboard-node-b.png"))
    assert (RESULTS / "dashboard-node-a.png").stat().st_size > 10_000
