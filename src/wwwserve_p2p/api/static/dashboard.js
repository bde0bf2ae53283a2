// wwwserve dashboard: polls /dashboard/data every second and redraws the page (no libraries).
// Every rendered number also sits in a data-* attribute, so tests can read exact values.
"use strict";
(function () {
  const POLL_MS = 1000;
  const $ = (id) => document.getElementById(id);
  const fmt = (x, d = 2) => (x === null || x === undefined || Number.isNaN(x)) ? "–" : Number(x).toFixed(d);
  const cr = (x) => fmt(x, 6);
  const short = (p) => p ? "…" + p.slice(-12) : "";

  function text(id, value, data) {
    const el = $(id);
    el.textContent = value;
    if (data !== undefined) el.dataset.value = String(data);
  }

  function cell(tr, value, opts = {}) {
    const td = document.createElement("td");
    td.textContent = value;
    if (opts.cls) td.className = opts.cls;
    if (opts.title) td.title = opts.title;
    if (opts.data !== undefined) td.dataset.value = String(opts.data);
    tr.appendChild(td);
    return td;
  }

  function rows(tableId, items, fill) {
    const body = document.querySelector(`#${tableId} tbody`);
    body.replaceChildren();
    for (const it of items) {
      const tr = document.createElement("tr");
      fill(tr, it);
      body.appendChild(tr);
    }
  }

  // series: [{points: [[t, y], ...]}]; draws polylines scaled to the SVG's 400x120 viewBox
  function chart(id, series, lastText, lastValues) {
    const svg = $(id);
    const NS = "http://www.w3.org/2000/svg";
    svg.replaceChildren();
    const all = series.flatMap((s) => s.points);
    const W = 400, H = 120, P = 4;
    for (let i = 1; i < 4; i++) {
      const g = document.createElementNS(NS, "line");
      g.setAttribute("class", "grid");
      g.setAttribute("x1", 0); g.setAttribute("x2", W);
      g.setAttribute("y1", (H * i) / 4); g.setAttribute("y2", (H * i) / 4);
      svg.appendChild(g);
    }
    if (all.length) {
      const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]));
      const ymax = Math.max(1e-9, ...all.map((p) => p[1]));
      const x = (t) => t1 > t0 ? P + ((t - t0) / (t1 - t0)) * (W - 2 * P) : W / 2;
      const y = (v) => H - P - (v / ymax) * (H - 2 * P);
      series.forEach((s, i) => {
        const pl = document.createElementNS(NS, "polyline");
        pl.setAttribute("class", "s" + i);
        pl.setAttribute("points", s.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "));
        pl.dataset.points = String(s.points.length);
        svg.appendChild(pl);
      });
      svg.dataset.ymax = String(ymax);
    }
    svg.dataset.points = String(all.length);
    const last = $(id + "-last");
    const top = all.length ? Math.max(...all.map((p) => p[1])) : 0;
    const span = all.length ? Math.max(...all.map((p) => p[0])) - Math.min(...all.map((p) => p[0])) : 0;
    last.textContent = `${lastText} · scale 0–${fmt(top, top < 1 ? 4 : 1)} over ${Math.round(span)} s`;
    last.dataset.value = JSON.stringify(lastValues);
  }

  // per-interval rate and mean latency from cumulative samples
  function rates(h) {
    const rate = [], lat = [];
    for (let i = 1; i < h.length; i++) {
      const dt = h[i].t - h[i - 1].t;
      const dn = h[i].requests - h[i - 1].requests;
      if (dt <= 0) continue;
      rate.push([h[i].t, Math.max(0, dn) / dt]);
      if (dn > 0) lat.push([h[i].t, 1000 * (h[i].latency_sum_s - h[i - 1].latency_sum_s) / dn]);
    }
    return { rate, lat };
  }

  function render(d) {
    const n = d.node;
    text("peer-id", n.peer_id);
    document.title = "wwwserve " + short(n.peer_id);
    text("network-id", n.network_id);
    text("executor", n.executor);
    text("models", n.models.join(", "), n.models.join(","));
    text("load", `${fmt(n.load)} (running ${n.running} of ${n.capacity})`, n.load);
    text("queue", String(n.queued), n.queued);
    text("delegated", String(n.delegated_running), n.delegated_running);
    text("balance", cr(n.balance) + " credits", n.balance);
    text("stake", cr(n.stake) + " credits", n.stake);
    text("earned-spent", `${cr(n.earned)} / ${cr(n.spent)} credits`, JSON.stringify([n.earned, n.spent]));
    text("win-rate", n.win_rate === null || n.win_rate === undefined ? `– (${n.duels} duels)`
      : `${fmt(100 * n.win_rate, 1)} % of ${n.duels} duels`, n.win_rate === null ? "" : n.win_rate);
    const last = d.history.length ? d.history[d.history.length - 1] : { requests: 0, errors: 0 };
    text("requests", `${last.requests} answered, ${last.errors} failed`, last.requests);

    text("peer-count", `(${d.peers.length})`, d.peers.length);
    rows("peers", d.peers, (tr, p) => {
      tr.dataset.peer = p.peer_id;
      cell(tr, short(p.peer_id), { cls: "mono", title: p.peer_id, data: p.peer_id });
      cell(tr, p.state, { cls: "state-" + p.state, data: p.state });
      cell(tr, p.models.join(", "), { data: p.models.join(",") });
      cell(tr, fmt(p.load), { cls: "num", data: p.load });
      cell(tr, p.accepting ? "yes" : "no", { data: p.accepting });
      cell(tr, cr(p.stake), { cls: "num", data: p.stake });
      cell(tr, p.connection || "–", { data: p.connection });
      cell(tr, fmt(p.last_seen_s_ago, 1), { cls: "num" });
    });

    const L = d.ledger;
    if (L) {
      text("state-hash", L.state_hash, L.state_hash);
      text("blocks", `${L.blocks} from ${L.authors} authors, ${L.pending} pending`, L.blocks);
      text("supply", `${cr(L.supply)} credits, ${cr(L.in_flight)} in flight`, L.supply);
      text("equivocations", L.equivocators.length ? L.equivocators.map(short).join(", ") : "none",
        L.equivocators.length);
      rows("heads", L.heads, (tr, h) => {
        tr.dataset.author = h.author;
        cell(tr, short(h.author), { cls: "mono", title: h.author, data: h.author });
        cell(tr, String(h.height), { cls: "num", data: h.height });
        cell(tr, h.hash.slice(0, 16), { cls: "mono" });
      });
      rows("recent", L.recent, (tr, b) => {
        cell(tr, short(b.author), { cls: "mono", title: b.author, data: b.author });
        cell(tr, String(b.height), { cls: "num", data: b.height });
        cell(tr, new Date(b.time_ms).toLocaleTimeString());
        cell(tr, b.entries.join(", "), { data: b.entries.join(",") });
      });
    }

    const h = d.history;
    chart("chart-credit", [{ points: h.map((s) => [s.t, s.earned]) }, { points: h.map((s) => [s.t, s.spent]) }],
      `earned ${cr(n.earned)}, spent ${cr(n.spent)}`, { earned: n.earned, spent: n.spent });
    const r = rates(h);
    const lastRate = r.rate.length ? r.rate[r.rate.length - 1][1] : 0;
    chart("chart-rate", [{ points: r.rate }], `${fmt(lastRate)} requests/s now, ${last.requests} in all`,
      { rate: lastRate, requests: last.requests });
    const lastLat = r.lat.length ? r.lat[r.lat.length - 1][1] : null;
    const meanLat = last.requests ? 1000 * last.latency_sum_s / last.requests : null;
    chart("chart-latency", [{ points: r.lat }], `last ${fmt(lastLat, 1)} ms, mean ${fmt(meanLat, 1)} ms`,
      { last_ms: lastLat, mean_ms: meanLat });
    text("updated", new Date(d.time * 1000).toLocaleTimeString(), d.time);
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  }

  async function poll() {
    const badge = $("conn");
    try {
      const resp = await fetch("dashboard/data", { cache: "no-store" });
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      render(await resp.json());
      badge.textContent = "live";
      badge.className = "badge ok";
    } catch (e) {
      badge.textContent = "offline: " + e.message;
      badge.className = "badge bad";
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }
  poll();
})();
