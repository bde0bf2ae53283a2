"""The operator dashboard every node serves at ``/`` and ``/dashboard``, and its data endpoint.

- ``GET /`` and ``GET /dashboard``: one HTML page (``static/dashboard.html``) with its script
  and style sheet (``/dashboard/static/dashboard.js``, ``.../dashboard.css``), shipped in the
  package (no CDN, no build step). The page polls ``GET /dashboard/data`` every second and
  redraws itself: this node (models, load, queue, credit earned and spent over time, duel win
  rate), the peers it sees (state, load, stake, connection kind when the node knows it), the
  ledger (chain heads, state hash, recent blocks, equivocations) and the live request rate
  and latency, as inline SVG charts.
- ``GET /dashboard/data``: a compact JSON snapshot (shape in :meth:`Dashboard.snapshot`) with
  the recent history (:class:`History`, one sample per second at most, the last 600), so a
  page opened late still draws the last ten minutes seen by any viewer. Credit amounts are
  **credits** (floats; the ledger's micro-credits / 1e6), times are seconds.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

#: one credit in the ledger's micro-credits
MICRO = 1_000_000
#: history samples kept (at most one a second)
HISTORY = 600
#: chain heads / recent blocks shown
MAX_HEADS = 50
RECENT_BLOCKS = 12

_STATIC = {"dashboard.js": "application/javascript; charset=utf-8",
           "dashboard.css": "text/css; charset=utf-8"}


def _asset(name: str) -> bytes:
    return resources.files("wwwserve_p2p.api").joinpath("static", name).read_bytes()


def credits(micro: int | float | None) -> float:
    """Micro-credits as credits (6 decimals)."""
    return round((micro or 0) / MICRO, 6)


class History:
    """Ring of samples ``{t, requests, errors, latency_sum_s, earned, spent, balance, load,
    queued}`` (``t``: unix seconds; counters cumulative), at most one per ``every`` seconds."""

    def __init__(self, maxlen: int = HISTORY, every: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.samples: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self.every = every
        self.clock = clock

    def maybe_add(self, sample: Callable[[], dict[str, Any]]) -> None:
        now = self.clock()
        if self.samples and now - self.samples[-1]["t"] < self.every:
            return
        self.samples.append({"t": round(now, 3), **sample()})


def _request_totals(node: Any) -> dict[str, float]:
    """Cumulative user requests (ok), errors and latency sum from the node's metrics."""
    ok = lat = err = 0.0
    m = node.metrics
    for fam in m.latency.collect():
        for s in fam.samples:
            if s.name.endswith("_count"):
                ok += s.value
            elif s.name.endswith("_sum"):
                lat += s.value
    for fam in m.requests.collect():
        for s in fam.samples:
            if s.name.endswith("_total") and s.labels.get("outcome") == "error":
                err += s.value
    return {"requests": int(ok), "errors": int(err), "latency_sum_s": round(lat, 6)}


class Dashboard:
    """The dashboard's view of ``node`` (a :class:`~wwwserve_p2p.api.node_protocol.ServingNode`;
    the ledger parts are empty for a node without ``ledger_summary``)."""

    def __init__(self, node: Any, history: History | None = None) -> None:
        self.node = node
        self.history = history or History()

    def _me(self, status: dict[str, Any]) -> dict[str, Any]:
        return status.get("ledger") or {}

    def snapshot(self) -> dict[str, Any]:
        """``GET /dashboard/data``::

            {"time": unix s, "node": {peer_id, network_id, api_url, executor, models, load,
              running, queued, capacity, delegated_running, connected_peers, policy_stake,
              balance, stake, earned, spent, win_rate, duels, stats},
             "peers": [{peer_id, state, models, load, accepting, stake, connection, api_url,
              last_seen_s_ago}],
             "ledger": {network, state_hash, blocks, authors, pending, supply, in_flight,
              equivocators: [PeerId], heads: [{author, height, hash}], recent: [{author, height,
              time_ms, hash, entries: [kind]}]} | null,
             "history": [sample, ...]}
        """
        node = self.node
        st = node.status()
        me = self._me(st)
        load = st.get("load", {})
        win = next((e for e in st.get("duels", {}).get("executors", []) if e["peer_id"] == st["peer_id"]), None)
        out_node = {
            "peer_id": st["peer_id"], "network_id": st.get("network_id", ""), "api_url": st.get("api_url", ""),
            "executor": st.get("executor", ""), "models": st.get("models", []),
            "load": load.get("load", 0.0), "running": load.get("running", 0), "queued": load.get("queued", 0),
            "capacity": load.get("capacity", 0), "delegated_running": st.get("delegated_running", 0),
            "connected_peers": st.get("connected_peers", 0),
            "balance": credits(me.get("balance")), "stake": credits(me.get("stake")),
            "earned": credits(me.get("earned")), "spent": credits(me.get("spent")),
            "win_rate": me.get("win_rate"), "duels": me.get("duels", 0) if win is None else win["duels"],
            "stats": st.get("stats", {}),
        }
        peers = [{"peer_id": p["peer_id"], "state": p.get("state", ""), "models": p.get("models", []),
                  "load": p.get("load", 0.0), "accepting": p.get("accepting"), "stake": credits(p.get("stake")),
                  "connection": p.get("connection") or p.get("connection_kind") or "",
                  "api_url": p.get("api_url", ""), "last_seen_s_ago": p.get("last_seen_s_ago")}
                 for p in st.get("peers", [])]
        ledger = self._ledger() if hasattr(node, "ledger_summary") else None

        def sample() -> dict[str, Any]:
            return {**_request_totals(node), "earned": out_node["earned"], "spent": out_node["spent"],
                    "balance": out_node["balance"], "load": out_node["load"], "queued": out_node["queued"]}

        self.history.maybe_add(sample)
        return {"time": round(time.time(), 3), "unit": "credits", "node": out_node, "peers": peers,
                "ledger": ledger, "history": list(self.history.samples)}

    def _ledger(self) -> dict[str, Any]:
        node = self.node
        s = node.ledger_summary()
        heads = node.ledger_blocks("", 1, None, MAX_HEADS).get("heads", [])
        tips = []
        for h in heads[: 4 * MAX_HEADS]:
            blocks = node.ledger_blocks(h["author"], h["height"], h["height"], 1).get("blocks", [])
            if blocks:
                b = blocks[0]
                tips.append({"author": h["author"], "height": h["height"], "time_ms": b.get("time_ms", 0),
                             "hash": b.get("hash", ""), "entries": [e.get("t", "?") for e in b.get("entries", [])]})
        tips.sort(key=lambda b: b["time_ms"], reverse=True)
        return {"network": s.get("network", ""), "state_hash": s.get("state_hash", ""), "blocks": s.get("blocks", 0),
                "authors": s.get("authors", 0), "pending": s.get("pending", 0),
                "supply": credits(s.get("supply")), "in_flight": credits(s.get("in_flight")),
                "equivocators": list(s.get("equivocators", [])),
                "heads": sorted(heads, key=lambda h: -h["height"])[:MAX_HEADS],
                "recent": tips[:RECENT_BLOCKS]}


def dashboard_routes(node: Any, guard: Callable[[Any], Any]) -> list[Route]:
    """The dashboard's routes (each endpoint wrapped by ``guard``, the app's error guard)."""
    dash = Dashboard(node)
    page = _asset("dashboard.html")
    assets = {name: (_asset(name), media) for name, media in _STATIC.items()}

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers={"cache-control": "no-cache"})

    async def data(request: Request) -> Response:
        return JSONResponse(dash.snapshot(), headers={"cache-control": "no-store"})

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in assets:
            return JSONResponse({"error": {"message": f"no asset {name!r}", "type": "invalid_request_error",
                                           "param": None, "code": "not_found"}}, status_code=404)
        body, media = assets[name]
        return Response(body, media_type=media, headers={"cache-control": "no-cache"})

    return [
        Route("/", guard(index), methods=["GET"]),
        Route("/dashboard", guard(index), methods=["GET"]),
        Route("/dashboard/data", guard(data), methods=["GET"]),
        Route("/dashboard/static/{name}", guard(static), methods=["GET"]),
    ]
