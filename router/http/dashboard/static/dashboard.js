// The thinkroute dashboard: asks for a key, then fetches GET /v1/dashboard/summary
// every few seconds and draws it as hand-written SVG. No library, no build step, and
// no request leaves this origin.
//
// The key: typed into the form, or given once in the URL fragment (#key=...), which a
// browser never sends to a server; the fragment is cleared at once. It is kept in
// sessionStorage (this tab only) and sent only as a Bearer header to this proxy.
"use strict";

(() => {
  const REFRESH_MS = 5000;
  const KEY_SLOT = "thinkroute.dashboard.key";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const WIDTH = 600;
  const HEIGHT = 220;
  const PAD = { left: 52, right: 12, top: 14, bottom: 28 };
  const MAX_SPEND_ROWS = 8;

  const $ = (id) => document.getElementById(id);
  let timer = null;
  let refreshes = 0;

  // -- the key ------------------------------------------------------------------------

  function takeKeyFromFragment() {
    const match = /(?:^#|&)key=([^&]*)/.exec(location.hash);
    if (match) {
      const key = decodeURIComponent(match[1]).trim();
      if (key) sessionStorage.setItem(KEY_SLOT, key);
      history.replaceState(null, "", location.pathname + location.search);
    }
  }

  const storedKey = () => sessionStorage.getItem(KEY_SLOT);

  function lock(message) {
    clearTimeout(timer);
    sessionStorage.removeItem(KEY_SLOT);
    document.body.dataset.state = "locked";
    $("board").hidden = true;
    $("controls").hidden = true;
    $("login").hidden = false;
    $("scope").textContent = "";
    $("login-error").textContent = message || "";
    $("key").value = "";
    $("key").focus();
  }

  // -- fetching -----------------------------------------------------------------------

  async function refresh() {
    clearTimeout(timer);
    const key = storedKey();
    if (!key) return lock();
    const windowS = $("window").value;
    let response;
    try {
      response = await fetch(`/v1/dashboard/summary?window_s=${windowS}`, {
        headers: { Authorization: `Bearer ${key}` },
        cache: "no-store",
        credentials: "omit",
      });
    } catch (error) {
      return failed(`the proxy did not answer (${error.message})`);
    }
    const body = await response.json().catch(() => null);
    if (response.status === 401 || response.status === 403) {
      return lock((body && body.error && body.error.message) || "this key was refused");
    }
    if (!response.ok || !body) {
      return failed((body && body.error && body.error.message) || `HTTP ${response.status}`);
    }
    render(body);
    timer = setTimeout(refresh, REFRESH_MS);
  }

  function failed(message) {
    document.body.dataset.state = document.body.dataset.state === "ready" ? "stale" : "error";
    $("status").textContent = `refresh failed: ${message}; retrying`;
    $("status").className = "status error";
    timer = setTimeout(refresh, REFRESH_MS);
  }

  // -- formatting ---------------------------------------------------------------------

  function usd(value) {
    if (value === null || value === undefined) return "–";
    const size = Math.abs(value);
    const digits = size >= 100 ? 0 : size >= 1 ? 2 : size >= 0.01 ? 4 : 6;
    return "$" + value.toLocaleString("en-US", {
      minimumFractionDigits: digits, maximumFractionDigits: digits,
    });
  }
  const pct = (v) => (v === null || v === undefined ? "–" : `${(v * 100).toFixed(1)}%`);
  const count = (v) => (v === null || v === undefined ? "–" : v.toLocaleString("en-US"));
  function ms(value) {
    if (value === null || value === undefined) return "–";
    if (value === 0) return "0";
    if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
    return `${value.toFixed(value < 10 ? 1 : 0)} ms`;
  }
  function clock(epochMs) {
    return new Date(epochMs).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
  }
  function span(seconds) {
    if (seconds % 3600 === 0) return `${seconds / 3600} h`;
    if (seconds % 60 === 0) return `${seconds / 60} min`;
    return `${seconds} s`;
  }
  function baselineOf(day) {  // what the same usage would have cost on the reasoning tier
    return (day.spend_usd || 0) + (day.estimated_savings_usd || 0);
  }

  // -- SVG helpers --------------------------------------------------------------------

  function node(parent, name, attributes, text) {
    const element = document.createElementNS(SVG_NS, name);
    for (const [key, value] of Object.entries(attributes || {})) {
      element.setAttribute(key, String(value));
    }
    if (text !== undefined) element.textContent = text;
    parent.appendChild(element);
    return element;
  }

  function tooltip(element, text) {
    node(element, "title", {}, text);
    return element;
  }

  function clear(svg, height) {
    svg.replaceChildren();
    svg.setAttribute("viewBox", `0 0 ${WIDTH} ${height || HEIGHT}`);
  }

  // Counts are whole: an even scale of at least 2 keeps the middle grid line on one.
  function countMax(value) {
    const max = Math.max(niceMax(value), 2);
    return max % 2 ? max + 1 : max;
  }

  function niceMax(value) {  // the next 1, 2 or 5 times a power of ten
    if (!(value > 0)) return 1;
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 5, 10]) {
      if (value <= step * power) return step * power;
    }
    return 10 * power;
  }

  // The plot area, horizontal grid lines with labels, and time labels under it.
  function frame(svg, max, label, series) {
    const plotW = WIDTH - PAD.left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    for (const share of [0, 0.5, 1]) {
      const y = PAD.top + plotH * (1 - share);
      node(svg, "line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y, class: "grid" });
      node(svg, "text", { x: PAD.left - 6, y: y + 4, class: "axis", "text-anchor": "end" },
        label(max * share));
    }
    if (series.length) {
      const y = HEIGHT - 8;
      node(svg, "text", { x: PAD.left, y, class: "axis" }, clock(series[0].start_ms));
      node(svg, "text", { x: PAD.left + plotW / 2, y, class: "axis", "text-anchor": "middle" },
        clock(series[Math.floor(series.length / 2)].start_ms));
      node(svg, "text", { x: WIDTH - PAD.right, y, class: "axis", "text-anchor": "end" }, "now");
    }
    return { plotW, plotH, slot: series.length ? plotW / series.length : plotW };
  }

  function empty(svg, message) {
    node(svg, "text", { x: WIDTH / 2, y: HEIGHT / 2, class: "empty", "text-anchor": "middle" },
      message);
  }

  // -- charts -------------------------------------------------------------------------

  function drawSplit(series) {
    const svg = $("chart-split");
    clear(svg);
    const top = Math.max(0, ...series.map((b) => b.fast + b.reasoning));
    const max = countMax(top);
    const { plotH, slot } = frame(svg, max, (v) => count(Math.round(v)), series);
    series.forEach((bucket, index) => {
      let base = PAD.top + plotH;
      for (const tier of ["fast", "reasoning"]) {
        const value = bucket[tier];
        if (!value) continue;
        const height = (value / max) * plotH;
        tooltip(node(svg, "rect", {
          x: PAD.left + index * slot + 1, y: base - height, width: Math.max(slot - 2, 1),
          height, class: `bar ${tier}`, "data-tier": tier, "data-bucket": index,
          "data-value": value,
        }), `${clock(bucket.start_ms)}: ${value} ${tier}`);
        base -= height;
      }
    });
    if (!top) empty(svg, "no routed requests in this window");
  }

  function drawSpend(rows) {
    const svg = $("chart-spend");
    const figures = rows
      .map((row) => {
        const day = row.today || (row.window && {
          spend_usd: row.window.spend_usd, estimated_savings_usd: row.window.savings_usd,
        });
        return day && { tenant: row.tenant, spend: day.spend_usd || 0, baseline: baselineOf(day) };
      })
      .filter(Boolean)
      .sort((a, b) => b.baseline - a.baseline || a.tenant.localeCompare(b.tenant))
      .slice(0, MAX_SPEND_ROWS);
    const rowH = 24;
    clear(svg, Math.max(HEIGHT, PAD.top + figures.length * rowH + 8));
    if (!figures.length) return empty(svg, "no tenants");
    const labelW = 110;
    const valueW = 170;
    const barW = WIDTH - labelW - valueW;
    const max = Math.max(...figures.map((f) => f.baseline), 1e-9);
    figures.forEach((f, index) => {
      const y = PAD.top + index * rowH;
      const saved = f.baseline > 0 ? 1 - f.spend / f.baseline : null;
      node(svg, "text", { x: labelW - 8, y: y + 14, class: "label", "text-anchor": "end" },
        f.tenant.length > 16 ? `${f.tenant.slice(0, 15)}…` : f.tenant);
      tooltip(node(svg, "rect", {
        x: labelW, y: y + 2, width: f.baseline > 0 ? Math.max((f.baseline / max) * barW, 1) : 0,
        height: 16,
        class: "bar baseline", "data-tenant": f.tenant, "data-series": "baseline",
        "data-value": f.baseline.toFixed(6),
      }), `${f.tenant}: ${usd(f.baseline)} on the reasoning tier`);
      tooltip(node(svg, "rect", {
        x: labelW, y: y + 6, width: f.spend > 0 ? Math.max((f.spend / max) * barW, 1) : 0,
        height: 8,
        class: "bar spend", "data-tenant": f.tenant, "data-series": "spend",
        "data-value": f.spend.toFixed(6),
      }), `${f.tenant}: charged ${usd(f.spend)}`);
      node(svg, "text", { x: WIDTH - 4, y: y + 14, class: "value", "text-anchor": "end",
        "data-tenant": f.tenant },
        `${usd(f.spend)} · saved ${pct(saved)}`);
    });
  }

  function drawLatency(series) {
    const svg = $("chart-latency");
    clear(svg);
    const top = Math.max(0, ...series.map((b) => b.p95_ms || 0));
    const max = niceMax(top);
    const { plotH, slot } = frame(svg, max, (v) => ms(v), series);
    for (const name of ["p95", "p50"]) {
      let path = "";
      let pen = "M";
      series.forEach((bucket, index) => {
        const value = bucket[`${name}_ms`];
        if (value === null) { pen = "M"; return; }
        const x = PAD.left + (index + 0.5) * slot;
        const y = PAD.top + plotH * (1 - value / max);
        path += `${pen}${x.toFixed(1)},${y.toFixed(1)} `;
        pen = "L";
        tooltip(node(svg, "circle", { cx: x, cy: y, r: 2.5, class: `point ${name}`,
          "data-series": name, "data-bucket": index, "data-value": value }),
        `${clock(bucket.start_ms)}: ${name} ${ms(value)}`);
      });
      if (path) node(svg, "path", { d: path.trim(), class: `line ${name}` });
    }
    if (!top) empty(svg, "no latency to show yet");
  }

  function drawCache(series) {
    const svg = $("chart-cache");
    clear(svg);
    const top = Math.max(0, ...series.map((b) => Math.max(b.cache_hits, b.fallbacks)));
    const max = countMax(top);
    const { plotH, slot } = frame(svg, max, (v) => count(Math.round(v)), series);
    const half = Math.max(slot / 2 - 1, 1);
    series.forEach((bucket, index) => {
      [["cache_hits", "hit"], ["fallbacks", "fallback"]].forEach(([field, kind], side) => {
        const value = bucket[field];
        if (!value) return;
        const height = (value / max) * plotH;
        tooltip(node(svg, "rect", {
          x: PAD.left + index * slot + side * (half + 1), y: PAD.top + plotH - height,
          width: half, height, class: `bar ${kind}`, "data-series": kind,
          "data-bucket": index, "data-value": value,
        }), `${clock(bucket.start_ms)}: ${value} ${kind === "hit" ? "cache hits" : "fallbacks"}`);
      });
    });
    if (!top) empty(svg, "no cache hits or fallbacks in this window");
  }

  // -- tiles and table ----------------------------------------------------------------

  function drawTiles(body) {
    const win = body.total.window;
    const today = body.total.today;
    const latency = win && win.latency_ms.total;
    const baseline = today ? baselineOf(today) : 0;
    const tiles = [
      ["requests", "routed requests", win && count(win.requests), `last ${span(body.window_s)}`],
      ["reasoning-share", "reasoning share", win && pct(win.reasoning_share),
        win && `${count(win.fast)} fast · ${count(win.reasoning)} reasoning`],
      ["spend", "spend today", today && usd(today.spend_usd),
        win ? `${usd(win.spend_usd)} in the window` : "UTC day"],
      ["savings", "saved vs always-reasoning", today && usd(today.estimated_savings_usd),
        today && `${pct(baseline > 0 ? today.estimated_savings_usd / baseline : null)} of ${usd(baseline)}`],
      ["latency", "latency p50", latency && ms(latency.p50),
        latency && `p90 ${ms(latency.p90)} · p99 ${ms(latency.p99)}`],
      ["cache", "cache hit rate", win && pct(win.cache_hit_rate),
        win && `${count(win.cache_hits)} of ${count(win.cache_lookups)} lookups`],
      ["fallbacks", "fallbacks", win && count(win.fallbacks), win && `${count(win.errors)} errors`],
      ["cascade", "cascade escalated today", today && today.cascade &&
        pct(today.cascade.escalation_rate),
        today && today.cascade && `${count(today.cascade.escalated)} of ` +
          `${count(today.cascade.runs)} verified answers`],
    ];
    const box = $("tiles");
    box.replaceChildren();
    for (const [id, title, value, note] of tiles) {
      const tile = document.createElement("div");
      tile.className = "tile";
      tile.dataset.tile = id;
      for (const [cls, text] of [["title", title], ["value", value || "–"], ["sub", note || ""]]) {
        const part = document.createElement("div");
        part.className = cls;
        part.textContent = text;
        tile.appendChild(part);
      }
      box.appendChild(tile);
    }
  }

  // The share of cascade runs whose verifier disagreed, so the reasoning tier answered.
  function escalation(cascade) {
    if (!cascade || !cascade.runs) return "–";
    return `${pct(cascade.escalation_rate)} (${count(cascade.escalated)} of ${count(cascade.runs)})`;
  }

  // Served-answer score over always-reasoning's, from shadow comparisons (docs/quality.md).
  function qualityKept(q) {
    if (!q || q.quality_kept === null || q.quality_kept === undefined) {
      return q && q.compared === 0 && q.shadow_rate > 0 ? "no pairs yet" : "–";
    }
    const [low, high] = q.quality_kept_95;
    return `${pct(q.quality_kept)} (${pct(low)}–${pct(high)}, ${count(q.compared)} pairs)`;
  }

  function drawTable(rows) {
    const tbody = $("tenants").tBodies[0];
    tbody.replaceChildren();
    for (const row of rows) {
      const win = row.window;
      const day = row.today;
      const latency = win && win.latency_ms.total;
      const cells = [
        row.tenant,
        win ? count(win.requests) + (row.sampled ? "+" : "") : "–",
        win ? `${count(win.fast)} / ${count(win.reasoning)}` : "–",
        day ? usd(day.spend_usd) : "–",
        day ? usd(baselineOf(day)) : "–",
        day ? usd(day.estimated_savings_usd) : "–",
        qualityKept(row.quality),
        day ? escalation(day.cascade) : "–",
        win ? pct(win.cache_hit_rate) : "–",
        win ? count(win.fallbacks) : "–",
        win ? `${count(win.session_switches)} (${usd(win.session_cache_cost_usd)})` : "–",
        latency ? `${ms(latency.p50)} / ${ms(latency.p90)} / ${ms(latency.p99)}` : "–",
      ];
      const tr = document.createElement("tr");
      tr.dataset.tenant = row.tenant;
      for (const text of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    }
  }

  function describeSources(body) {
    const parts = [
      "Every figure is fleet-wide: read from Redis, which every replica writes; none is " +
        "one replica's own (per-replica counters are at /metrics, for Prometheus).",
    ];
    if (body.decision_log) {
      parts.push(
        `Requests, split, latency, cache and fallbacks: the decision log, routed requests ` +
          `(auto models) of the last ${span(body.window_s)} in ${body.bucket_s} s intervals, ` +
          `at most the newest ${count(body.max_entries_per_tenant)} per tenant.`);
    } else {
      parts.push("The decision log is off (server.decision_log: false): only today's usage " +
        "is shown.");
    }
    parts.push("Spend, savings and cascade escalations today: budget usage, every request, " +
      "the UTC day; savings are against sending the same usage to the reasoning tier; " +
      "escalated is the share of cascade runs (fast answer checked by a verifier) that " +
      "went on to the reasoning tier. Session switches: turns a conversation was moved to " +
      "another model in the window, with the prompt cache that threw away (estimated).");
    $("sources").textContent = parts.join(" ");
  }

  function render(body) {
    refreshes += 1;
    $("login").hidden = true;
    $("board").hidden = false;
    $("controls").hidden = false;
    const names = body.tenants.map((row) => row.tenant);
    $("scope").textContent = body.viewer === "admin"
      ? `all tenants (${names.length}) · admin key`
      : `tenant ${names[0]}`;
    drawTiles(body);
    drawSplit(body.series);
    drawSpend(body.tenants);
    drawLatency(body.series);
    drawCache(body.series);
    drawTable(body.tenants);
    describeSources(body);
    const status = $("status");
    status.className = "status";
    status.textContent = `updated ${new Date(body.generated_at_ms).toLocaleTimeString("en-GB")}` +
      ` · every ${REFRESH_MS / 1000} s`;
    document.body.dataset.viewer = body.viewer;
    document.body.dataset.refreshes = String(refreshes);
    document.body.dataset.state = "ready";
  }

  // -- wiring -------------------------------------------------------------------------

  function start() {
    takeKeyFromFragment();
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key").value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY_SLOT, key);
      $("key").value = "";
      $("login-error").textContent = "";
      document.body.dataset.state = "loading";
      refresh();
    });
    $("forget").addEventListener("click", () => lock());
    $("window").addEventListener("change", () => refresh());
    if (storedKey()) {
      document.body.dataset.state = "loading";
      refresh();
    } else {
      lock();
    }
  }

  start();
})();
