// gorun's HTML report: reads the run's data from the #data element and draws the
// summary, the timeline (canvas), the histogram (canvas) and the task table. Every
// value from the run is set as text (textContent, fillText), never as markup.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("data").textContent);
  const S = D.statuses;
  const COLORS = { succeeded: "#2f9e5f", failed: "#d64545", timed_out: "#e08a1e", cancelled: "#7e5bd1", skipped: "#98a1ad", invalid: "#8b5e3c" };
  const LABELS = { succeeded: "succeeded", failed: "failed", timed_out: "timed out", cancelled: "cancelled", skipped: "skipped", invalid: "invalid" };
  // Task row columns (see htmlData in html.go).
  const T_ID = 0, T_INDEX = 1, T_STATUS = 2, T_ATTEMPTS = 3, T_EXIT = 4, T_SIGNAL = 5, T_DUR = 6, T_CMD = 7,
    T_WHERE = 8, T_ERROR = 9, T_OUT = 10, T_ERR = 11, T_START = 12, T_OUTCUT = 13, T_ERRCUT = 14,
    T_HELD = 15, T_HELDFOR = 16;
  // Bar columns.
  const B_LANE = 0, B_START = 1, B_END = 2, B_STATUS = 3, B_TASK = 4, B_N = 5, B_WAIT = 6, B_EXIT = 7, B_SIGNAL = 8, B_ERR = 9;
  const tasks = D.tasks, bars = D.bars, lanes = D.lanes;

  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    if (props) for (const k in props) {
      if (k === "text") e.textContent = props[k];
      else if (k === "class") e.className = props[k];
      else if (k === "style") e.style.cssText = props[k];
      else e.setAttribute(k, props[k]);
    }
    for (const c of children) if (c != null) e.append(c);
    return e;
  }

  function fmtDur(ms) {
    if (ms == null || ms < 0) return "–";
    if (ms === 0) return "0s";
    if (ms < 1) return (ms * 1000).toPrecision(3) + "µs";
    if (ms < 1000) return +ms.toPrecision(3) + "ms";
    const s = ms / 1000;
    if (s < 60) return +s.toPrecision(3) + "s";
    const m = Math.floor(s / 60), h = Math.floor(m / 60);
    if (h > 0) return h + "h" + (m % 60) + "m" + Math.round(s % 60) + "s";
    return m + "m" + Math.round(s % 60) + "s";
  }
  function fmtOffset(ms) { return ms == null ? "–" : "+" + fmtDur(ms); }
  function how(exit, signal) {
    if (signal) return signal;
    if (exit != null) return "exit " + exit;
    return "–";
  }
  function lastLines(s, n) {
    const lines = s.replace(/\s+$/, "").split("\n");
    return lines.slice(-n).join("\n");
  }

  // ---- the run at a glance ----
  const run = D.run;
  const counts = document.getElementById("counts");
  S.forEach((st) => {
    const n = run.counts[st] || 0;
    counts.append(el("div", { class: "card" + (n ? "" : " zero"), "data-status": st, style: "border-left-color:" + COLORS[st] },
      el("span", { class: "n", text: n.toLocaleString("en-US") }), el("span", { class: "l", text: LABELS[st] })));
  });
  const facts = document.getElementById("facts");
  function fact(k, v, code) {
    if (v == null || v === "") return;
    facts.append(el("dt", { text: k }), el("dd", null, code ? el("code", { text: v }) : v));
  }
  fact("tasks", run.tasks.toLocaleString("en-US"));
  fact("wall time", fmtDur(run.wall_s * 1000));
  fact("throughput", run.tasks_per_s ? run.tasks_per_s.toFixed(run.tasks_per_s < 10 ? 2 : 1) + " tasks/s" : "");
  if (run.p50_s || run.max_s) fact("durations", "p50 " + fmtDur(run.p50_s * 1000) + " · p95 " + fmtDur(run.p95_s * 1000) + " · max " + fmtDur(run.max_s * 1000));
  fact("command line", run.command, true);
  fact("task file", run.input, true);
  fact("journal", run.journal, true);
  fact("run id", run.id, true);
  fact("started", run.started_text);
  fact("host", run.hostname);
  fact("containment", run.containment);
  const sub = [];
  if (run.started_text) sub.push(run.started_text);
  if (run.hostname) sub.push("on " + run.hostname);
  sub.push(fmtDur(run.wall_s * 1000) + " wall");
  document.getElementById("subtitle").textContent = sub.join(" · ");

  // ---- tooltip ----
  const tip = document.getElementById("tip");
  function showTip(x, y, nodes) {
    tip.replaceChildren(...nodes);
    tip.hidden = false;
    const w = tip.offsetWidth, h = tip.offsetHeight;
    let left = x + 14, top = y + 14;
    if (left + w > window.innerWidth - 8) left = Math.max(8, x - w - 14);
    if (top + h > window.innerHeight - 8) top = Math.max(8, y - h - 14);
    tip.style.left = left + "px";
    tip.style.top = top + "px";
  }
  function hideTip() { tip.hidden = true; }
  function kv(k, v) { return el("div", null, el("span", { class: "k", text: k + " " }), v); }

  // ---- timeline ----
  const axis = document.getElementById("axis"), canvas = document.getElementById("timeline");
  const scroll = document.getElementById("timeline-scroll");
  const LABEL_W = 150, GROUP_H = 20;
  const laneH = Math.max(6, Math.min(26, Math.floor(520 / Math.max(lanes.length, 1))));
  // Rows: a header for each group, then its lanes.
  const laneY = new Float64Array(lanes.length);
  const groupRows = [];
  let y = 0;
  lanes.forEach((l, i) => {
    if (i === 0 || lanes[i - 1][0] !== l[0]) {
      groupRows.push({ y: y, name: l[0] });
      y += GROUP_H;
    }
    laneY[i] = y;
    y += laneH;
  });
  const totalH = Math.max(y, 40);
  // Bars by lane, by start, for hovering.
  const byLane = lanes.map(() => []);
  bars.forEach((b, i) => byLane[b[B_LANE]].push(i));
  byLane.forEach((ix) => ix.sort((a, b) => bars[a][B_START] - bars[b][B_START]));
  // Bars of each task, by attempt, for retry links and highlights.
  const taskBars = new Map();
  bars.forEach((b, i) => {
    let l = taskBars.get(b[B_TASK]);
    if (!l) taskBars.set(b[B_TASK], (l = []));
    l.push(i);
  });
  const retried = [];
  taskBars.forEach((ix) => {
    if (ix.length > 1) {
      ix.sort((a, b) => bars[a][B_N] - bars[b][B_N]);
      retried.push(ix);
    }
  });
  const critical = D.critical || [];
  const onPath = new Set(critical);
  const critBox = document.getElementById("critical");
  if (critical.length > 1) document.getElementById("critical-toggle").hidden = false;
  canvas.dataset.bars = String(bars.length);
  canvas.dataset.lanes = String(lanes.length);

  const span = Math.max(run.span_ms, 1);
  let v0 = 0, v1 = span * 1.01; // the visible time range, ms
  let hoverTask = -1;
  let cssW = 0;
  const dpr = window.devicePixelRatio || 1;

  function size() {
    cssW = scroll.clientWidth;
    for (const [c, h] of [[canvas, totalH], [axis, 26]]) {
      c.width = Math.round(cssW * dpr);
      c.height = Math.round(h * dpr);
      c.style.height = h + "px";
    }
  }
  function plotW() { return Math.max(cssW - LABEL_W - 12, 50); }
  function xOf(t) { return LABEL_W + ((t - v0) / (v1 - v0)) * plotW(); }
  function tOf(x) { return v0 + ((x - LABEL_W) / plotW()) * (v1 - v0); }

  function niceStep(range, px) {
    const want = range / Math.max(px / 90, 1);
    const p = Math.pow(10, Math.floor(Math.log10(want)));
    for (const m of [1, 2, 5, 10]) if (m * p >= want) return m * p;
    return 10 * p;
  }
  let hatch = null;
  function waitPattern(ctx) {
    if (hatch) return hatch;
    const c = document.createElement("canvas");
    c.width = c.height = 6;
    const g = c.getContext("2d");
    g.fillStyle = "#f4f5f7"; g.fillRect(0, 0, 6, 6);
    g.strokeStyle = "#d6dae0"; g.lineWidth = 1;
    g.beginPath(); g.moveTo(0, 6); g.lineTo(6, 0); g.moveTo(-1, 1); g.lineTo(1, -1); g.moveTo(5, 7); g.lineTo(7, 5); g.stroke();
    hatch = ctx.createPattern(c, "repeat");
    return hatch;
  }

  function drawAxis() {
    const ctx = axis.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, 26);
    ctx.font = "11.5px system-ui, sans-serif";
    ctx.fillStyle = "#5d6675";
    ctx.textBaseline = "middle";
    ctx.fillText("since the start", 8, 13);
    const step = niceStep(v1 - v0, plotW());
    ctx.strokeStyle = "#c9ced6";
    for (let t = Math.ceil(v0 / step) * step; t <= v1; t += step) {
      const x = xOf(t);
      if (x < LABEL_W) continue;
      ctx.beginPath(); ctx.moveTo(x + 0.5, 18); ctx.lineTo(x + 0.5, 26); ctx.stroke();
      ctx.fillText(fmtDur(t), x + 3, 11);
    }
  }

  function drawTimeline() {
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, totalH);
    const pw = plotW();
    // Lane backgrounds and labels.
    ctx.font = "11.5px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    lanes.forEach((l, i) => {
      ctx.fillStyle = i % 2 ? "#f7f8fa" : "#ffffff";
      ctx.fillRect(0, laneY[i], cssW, laneH);
      if (laneH >= 11 || i % Math.ceil(11 / laneH) === 0) {
        ctx.fillStyle = "#5d6675";
        ctx.fillText(l[1], 18, laneY[i] + laneH / 2, LABEL_W - 24);
      }
    });
    ctx.font = "600 12px system-ui, sans-serif";
    for (const g of groupRows) {
      ctx.fillStyle = "#e9edf2";
      ctx.fillRect(0, g.y, cssW, GROUP_H);
      ctx.fillStyle = "#1d2330";
      ctx.fillText(g.name, 8, g.y + GROUP_H / 2, cssW - 16);
    }
    // Grid lines.
    const step = niceStep(v1 - v0, pw);
    ctx.strokeStyle = "rgba(120,130,145,0.18)";
    ctx.beginPath();
    for (let t = Math.ceil(v0 / step) * step; t <= v1; t += step) {
      const x = Math.round(xOf(t)) + 0.5;
      if (x >= LABEL_W) { ctx.moveTo(x, 0); ctx.lineTo(x, totalH); }
    }
    ctx.stroke();
    ctx.save();
    ctx.beginPath(); ctx.rect(LABEL_W, 0, pw + 12, totalH); ctx.clip();
    const pad = laneH >= 10 ? 2 : laneH >= 7 ? 1 : 0;
    const bh = laneH - 2 * pad;
    // Waits for the rate limit or a free worker: shaded before the bar.
    ctx.fillStyle = waitPattern(ctx);
    for (const b of bars) {
      if (b[B_WAIT] <= 0 || b[B_START] < v0 || b[B_START] - b[B_WAIT] > v1) continue;
      const x0 = xOf(b[B_START] - b[B_WAIT]), x1 = xOf(b[B_START]);
      if (x1 - x0 >= 1) ctx.fillRect(x0, laneY[b[B_LANE]] + pad, x1 - x0, bh);
    }
    // Bars, lane by lane: neighbours of one status that meet within a pixel are drawn
    // as one rectangle, so a lane holds at most about one rectangle per pixel however
    // many attempts it ran.
    let fill = -1;
    for (let lane = 0; lane < lanes.length; lane++) {
      const yy = laneY[lane] + pad;
      let st = -1, px0 = 0, px1 = 0;
      const flush = () => {
        if (st < 0) return;
        if (st !== fill) { ctx.fillStyle = COLORS[S[st]]; fill = st; }
        ctx.fillRect(px0, yy, Math.max(px1 - px0, 1), bh);
      };
      for (const i of byLane[lane]) {
        const b = bars[i];
        if (b[B_START] > v1) break;
        if (b[B_END] < v0) continue;
        const x0 = xOf(b[B_START]), x1 = Math.max(xOf(b[B_END]), x0 + 1);
        if (b[B_STATUS] === st && x0 <= px1 + 0.5) {
          px1 = Math.max(px1, x1);
        } else {
          flush();
          st = b[B_STATUS]; px0 = x0; px1 = x1;
        }
      }
      flush();
    }
    // Bar edges, when there is room to see them.
    if (bars.length < 20000) {
      ctx.strokeStyle = "rgba(255,255,255,0.7)";
      ctx.lineWidth = 1;
      for (const b of bars) {
        if (b[B_END] < v0 || b[B_START] > v1) continue;
        const x0 = xOf(b[B_START]), x1 = xOf(b[B_END]);
        if (x1 - x0 >= 12) ctx.strokeRect(x0 + 0.5, laneY[b[B_LANE]] + pad + 0.5, x1 - x0 - 1, bh - 1);
      }
    }
    // Timeouts end in a clock mark, cancellations in a cross.
    const TO = S.indexOf("timed_out"), CA = S.indexOf("cancelled");
    ctx.lineWidth = 1.6;
    ctx.strokeStyle = "#1d2330";
    ctx.fillStyle = "#1d2330";
    for (const b of bars) {
      if ((b[B_STATUS] !== TO && b[B_STATUS] !== CA) || b[B_END] < v0 || b[B_END] > v1 || laneH < 7) continue;
      const x = xOf(b[B_END]), cy = laneY[b[B_LANE]] + laneH / 2, r = Math.min(laneH / 2 - 1.5, 5);
      ctx.beginPath();
      if (b[B_STATUS] === TO) {
        ctx.moveTo(x, cy); ctx.lineTo(x - r * 1.3, cy - r); ctx.lineTo(x - r * 1.3, cy + r); ctx.closePath(); ctx.fill();
      } else {
        ctx.moveTo(x - r * 2, cy - r); ctx.lineTo(x, cy + r); ctx.moveTo(x, cy - r); ctx.lineTo(x - r * 2, cy + r); ctx.stroke();
      }
    }
    // Retries: a dashed link from each attempt's end to the next attempt's start.
    ctx.strokeStyle = "#c2410c";
    ctx.lineWidth = 1.2;
    ctx.setLineDash([3, 3]);
    ctx.beginPath();
    for (const ix of retried) link(ctx, ix);
    ctx.stroke();
    ctx.setLineDash([]);
    // The critical path of the needs.
    if (critical.length > 1 && critBox.checked) {
      const path = critical.map((t) => { const ix = taskBars.get(t); return ix ? ix[ix.length - 1] : -1; }).filter((i) => i >= 0);
      ctx.strokeStyle = "#111";
      ctx.lineWidth = 2;
      ctx.beginPath();
      for (const i of path) outline(ctx, i, pad, bh);
      ctx.stroke();
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      link(ctx, path);
      ctx.stroke();
    }
    // The task under the pointer: every attempt of it.
    if (hoverTask >= 0 && taskBars.has(hoverTask)) {
      ctx.strokeStyle = "#1f6feb";
      ctx.lineWidth = 2;
      ctx.beginPath();
      for (const i of taskBars.get(hoverTask)) outline(ctx, i, pad, bh);
      ctx.stroke();
    }
    ctx.restore();
  }
  function link(ctx, ix) {
    for (let k = 1; k < ix.length; k++) {
      const a = bars[ix[k - 1]], b = bars[ix[k]];
      ctx.moveTo(xOf(a[B_END]), laneY[a[B_LANE]] + laneH / 2);
      ctx.lineTo(xOf(b[B_START]), laneY[b[B_LANE]] + laneH / 2);
    }
  }
  function outline(ctx, i, pad, bh) {
    const b = bars[i], x0 = xOf(b[B_START]);
    ctx.rect(x0 - 1, laneY[b[B_LANE]] + pad - 1, Math.max(xOf(b[B_END]) - x0, 1) + 2, bh + 2);
  }

  let frame = 0;
  function redraw() {
    if (frame) return;
    frame = requestAnimationFrame(() => { frame = 0; drawAxis(); drawTimeline(); });
  }
  function setView(a, b) {
    const full = span * 1.01, minW = Math.max(full / 1e6, 0.01);
    let w = Math.min(Math.max(b - a, minW), full);
    a = Math.max(0, Math.min(a, full - w));
    v0 = a; v1 = a + w;
    redraw();
  }
  function zoomAt(t, f) { setView(t - (t - v0) * f, t + (v1 - t) * f); }
  document.getElementById("zoom-in").onclick = () => zoomAt((v0 + v1) / 2, 0.5);
  document.getElementById("zoom-out").onclick = () => zoomAt((v0 + v1) / 2, 2);
  document.getElementById("zoom-reset").onclick = () => setView(0, span * 1.01);
  critBox.onchange = redraw;

  canvas.addEventListener("wheel", (e) => {
    // Ctrl (or ⌘) and the wheel, or a pinch, zoom; Shift and the wheel, or a sideways
    // swipe, pan; the wheel alone scrolls the page, as everywhere.
    const r = canvas.getBoundingClientRect(), x = e.clientX - r.left;
    if (x < LABEL_W) return;
    if (e.ctrlKey || e.metaKey) {
      e.preventDefault();
      zoomAt(tOf(x), Math.exp(e.deltaY * 0.004));
    } else if (e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
      e.preventDefault();
      const d = (e.shiftKey ? e.deltaY || e.deltaX : e.deltaX) / plotW() * (v1 - v0);
      setView(v0 + d, v1 + d);
    }
  }, { passive: false });

  let drag = null;
  canvas.addEventListener("mousedown", (e) => {
    drag = { x: e.clientX, v0: v0, v1: v1, moved: false };
    canvas.classList.add("dragging");
  });
  window.addEventListener("mouseup", (e) => {
    if (!drag) return;
    const d = drag;
    drag = null;
    canvas.classList.remove("dragging");
    if (!d.moved) {
      const hit = hitTest(e);
      if (hit >= 0) showTask(bars[hit][B_TASK]);
    }
  });
  window.addEventListener("mousemove", (e) => {
    if (drag) {
      const dx = e.clientX - drag.x;
      if (Math.abs(dx) > 3) drag.moved = true;
      if (drag.moved) {
        const dt = dx / plotW() * (drag.v1 - drag.v0);
        setView(drag.v0 - dt, drag.v1 - dt);
        hideTip();
      }
    }
  });
  canvas.addEventListener("dblclick", () => setView(0, span * 1.01));

  function laneAt(yy) {
    let lo = 0, hi = lanes.length - 1, found = -1;
    while (lo <= hi) {
      const m = (lo + hi) >> 1;
      if (laneY[m] <= yy) { found = m; lo = m + 1; } else hi = m - 1;
    }
    return found >= 0 && yy < laneY[found] + laneH ? found : -1;
  }
  function hitTest(e) {
    const r = canvas.getBoundingClientRect();
    const x = e.clientX - r.left, yy = e.clientY - r.top;
    if (x < LABEL_W) return -1;
    const lane = laneAt(yy);
    if (lane < 0) return -1;
    const t = tOf(x), slack = 3 / plotW() * (v1 - v0);
    const ix = byLane[lane];
    let lo = 0, hi = ix.length - 1, best = -1;
    while (lo <= hi) {
      const m = (lo + hi) >> 1;
      if (bars[ix[m]][B_START] <= t + slack) { best = m; lo = m + 1; } else hi = m - 1;
    }
    for (let k = best; k >= 0 && k >= best - 3; k--) {
      const b = bars[ix[k]];
      if (b[B_START] - slack <= t && t <= b[B_END] + slack) return ix[k];
    }
    return -1;
  }
  canvas.addEventListener("mousemove", (e) => {
    if (drag && drag.moved) return;
    const hit = hitTest(e);
    const task = hit >= 0 ? bars[hit][B_TASK] : -1;
    if (task !== hoverTask) { hoverTask = task; redraw(); }
    if (hit < 0) { hideTip(); canvas.style.cursor = ""; return; }
    canvas.style.cursor = "pointer";
    showTip(e.clientX, e.clientY, barTip(hit));
  });
  canvas.addEventListener("mouseleave", () => { hideTip(); if (hoverTask >= 0) { hoverTask = -1; redraw(); } });

  function barTip(i) {
    const b = bars[i], t = tasks[b[B_TASK]];
    const last = b[B_N] === t[T_ATTEMPTS];
    const st = S[b[B_STATUS]];
    const nodes = [el("b", { text: t[T_ID] })];
    nodes.push(kv("attempt", b[B_N] + " of " + t[T_ATTEMPTS] + (onPath.has(b[B_TASK]) ? " · on the critical path" : "")));
    nodes.push(kv("status", el("span", { class: "badge", style: "background:" + COLORS[st], text: LABELS[st] })));
    nodes.push(kv("ended", last ? how(t[T_EXIT], t[T_SIGNAL]) : how(b[B_EXIT], b[B_SIGNAL])));
    nodes.push(kv("duration", fmtDur(b[B_END] - b[B_START]) + " · started " + fmtOffset(b[B_START])));
    if (b[B_WAIT] > 0) nodes.push(kv("waited", fmtDur(b[B_WAIT]) + " for its start"));
    if (last && t[T_HELD] > 0) nodes.push(kv("held back", heldText(t)));
    if (t[T_WHERE]) nodes.push(kv("ran on", t[T_WHERE]));
    nodes.push(kv("command", t[T_CMD]));
    const err = last ? (t[T_ERR] || t[T_ERROR]) : b[B_ERR];
    if (err) nodes.push(el("pre", { text: lastLines(err, 8) }));
    return nodes;
  }

  // ---- histogram of durations ----
  const hist = document.getElementById("hist");
  const started = tasks.filter((t) => t[T_START] != null);
  const NB = 40;
  let binOf = null, edges = [], binCounts = [];
  if (started.length) {
    const ds = started.map((t) => t[T_DUR]);
    let lo = Infinity, hi = 0;
    for (const d of ds) { if (d < lo) lo = d; if (d > hi) hi = d; }
    const log = lo > 0 && hi / lo > 50;
    if (hi <= lo) hi = lo + 1;
    const f = log ? (d) => (Math.log(Math.max(d, lo)) - Math.log(lo)) / (Math.log(hi) - Math.log(lo)) : (d) => (d - lo) / (hi - lo);
    binOf = (d) => Math.min(NB - 1, Math.max(0, Math.floor(f(d) * NB)));
    for (let k = 0; k <= NB; k++) edges.push(log ? lo * Math.pow(hi / lo, k / NB) : lo + (hi - lo) * k / NB);
    binCounts = Array.from({ length: NB }, () => new Array(S.length).fill(0));
    for (const t of started) binCounts[binOf(t[T_DUR])][t[T_STATUS]]++;
    document.getElementById("hist-note").textContent = started.length.toLocaleString("en-US") + " tasks that started, by how long their last attempt ran" +
      (log ? " (durations on a log scale)" : "") + "; coloured by status.";
  } else {
    document.getElementById("hist-note").textContent = "No task started.";
  }
  const H_L = 48, H_B = 28, H_T = 12;
  function drawHist() {
    const w = hist.clientWidth, h = 220;
    hist.width = Math.round(w * dpr); hist.height = Math.round(h * dpr);
    const ctx = hist.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    if (!binOf) return;
    const top = Math.max(...binCounts.map((c) => c.reduce((a, b) => a + b, 0)), 1);
    const pw = w - H_L - 16, ph = h - H_B - H_T, bw = pw / NB;
    ctx.font = "11.5px system-ui, sans-serif";
    ctx.fillStyle = "#5d6675";
    ctx.strokeStyle = "rgba(120,130,145,0.25)";
    ctx.textBaseline = "middle";
    const ystep = Math.max(1, niceStep(top, 4 * 90));
    for (let c = 0; c <= top; c += ystep) {
      const yy = H_T + ph - c / top * ph;
      ctx.beginPath(); ctx.moveTo(H_L, Math.round(yy) + 0.5); ctx.lineTo(H_L + pw, Math.round(yy) + 0.5); ctx.stroke();
      ctx.textAlign = "right"; ctx.fillText(c.toLocaleString("en-US"), H_L - 6, yy);
    }
    binCounts.forEach((c, k) => {
      let yy = H_T + ph;
      c.forEach((n, s) => {
        if (!n) return;
        const bh = n / top * ph;
        yy -= bh;
        ctx.fillStyle = COLORS[S[s]];
        ctx.fillRect(H_L + k * bw + 1, yy, Math.max(bw - 2, 1), bh);
      });
    });
    ctx.fillStyle = "#5d6675";
    ctx.textBaseline = "top";
    for (let k = 0; k <= NB; k += NB / 5) {
      ctx.textAlign = k === 0 ? "left" : k === NB ? "right" : "center";
      ctx.fillText(fmtDur(edges[k]), H_L + k * bw, H_T + ph + 8);
    }
    ctx.textAlign = "left";
  }
  hist.addEventListener("mousemove", (e) => {
    if (!binOf) return;
    const r = hist.getBoundingClientRect(), pw = r.width - H_L - 16;
    const k = Math.floor((e.clientX - r.left - H_L) / (pw / NB));
    if (k < 0 || k >= NB) { hideTip(); return; }
    const c = binCounts[k], nodes = [el("b", { text: fmtDur(edges[k]) + " – " + fmtDur(edges[k + 1]) })];
    c.forEach((n, s) => { if (n) nodes.push(kv(LABELS[S[s]], n.toLocaleString("en-US"))); });
    if (nodes.length === 1) nodes.push(el("div", { text: "no task" }));
    showTip(e.clientX, e.clientY, nodes);
  });
  hist.addEventListener("mouseleave", hideTip);

  // ---- the task table ----
  const PAGE = 100;
  const tbody = document.querySelector("#tasks tbody");
  const statusSel = document.getElementById("filter-status"), search = document.getElementById("search");
  S.forEach((st, i) => {
    const n = run.counts[st] || 0;
    if (n) statusSel.append(el("option", { value: String(i), text: LABELS[st] + " (" + n.toLocaleString("en-US") + ")" }));
  });
  const keys = {
    index: (t) => t[T_INDEX], id: (t) => t[T_ID], status: (t) => t[T_STATUS], exit: (t) => t[T_SIGNAL] ? 1e9 : t[T_EXIT] == null ? -1e9 : t[T_EXIT],
    attempts: (t) => t[T_ATTEMPTS], duration: (t) => t[T_START] == null ? -1 : t[T_DUR], start: (t) => t[T_START] == null ? Infinity : t[T_START],
    where: (t) => t[T_WHERE], command: (t) => t[T_CMD],
  };
  let sortKey = "index", desc = false, page = 0, rows = [], open = new Set();
  const lower = tasks.map((t) => (t[T_ID] + "\n" + t[T_CMD]).toLowerCase());
  function refilter() {
    const st = statusSel.value, q = search.value.trim().toLowerCase();
    rows = [];
    for (let i = 0; i < tasks.length; i++) {
      if (st !== "" && tasks[i][T_STATUS] !== +st) continue;
      if (q && !lower[i].includes(q)) continue;
      rows.push(i);
    }
    const key = keys[sortKey];
    rows.sort((a, b) => {
      const x = key(tasks[a]), y = key(tasks[b]);
      const c = typeof x === "string" ? x.localeCompare(y) : x - y;
      return (desc ? -c : c) || tasks[a][T_INDEX] - tasks[b][T_INDEX];
    });
    page = 0;
    renderTable();
  }
  function renderTable() {
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    page = Math.min(page, pages - 1);
    const frag = document.createDocumentFragment();
    for (const i of rows.slice(page * PAGE, page * PAGE + PAGE)) {
      const t = tasks[i], st = S[t[T_STATUS]];
      const tr = el("tr", { class: "task" + (open.has(i) ? " open" : ""), "data-status": st, "data-row": String(i) },
        el("td", { class: "num", text: String(t[T_INDEX]) }),
        el("td", { class: "id", text: t[T_ID] }),
        el("td", null, el("span", { class: "badge", style: "background:" + COLORS[st], text: LABELS[st] })),
        el("td", { text: t[T_START] == null && !t[T_SIGNAL] && t[T_EXIT] == null ? "–" : how(t[T_EXIT], t[T_SIGNAL]) }),
        el("td", { class: "num", text: String(t[T_ATTEMPTS]) }),
        el("td", { class: "num", text: t[T_START] == null ? "–" : fmtDur(t[T_DUR]) }),
        el("td", { class: "num", text: fmtOffset(t[T_START]) }),
        el("td", { text: t[T_WHERE] }),
        el("td", { class: "cmd", title: t[T_CMD], text: t[T_CMD] }));
      tr.onclick = () => { open.has(i) ? open.delete(i) : open.add(i); renderTable(); };
      frag.append(tr);
      if (open.has(i)) frag.append(detailRow(i));
    }
    tbody.replaceChildren(frag);
    const n = rows.length;
    const count = document.getElementById("table-count");
    count.textContent = n.toLocaleString("en-US") + " of " + tasks.length.toLocaleString("en-US") + " tasks";
    count.dataset.n = String(n);
    document.getElementById("page").textContent = "page " + (page + 1) + " of " + pages;
    document.getElementById("prev").disabled = page === 0;
    document.getElementById("next").disabled = page >= pages - 1;
  }
  function detailRow(i) {
    const t = tasks[i], td = el("td", { colspan: "9", class: "detail" });
    const section = (title, body, cut) => {
      if (!body) return;
      td.append(el("h4", { text: title + (cut ? " (last part; " + cut.toLocaleString("en-US") + " bytes before it are in the JSON report)" : "") }), el("pre", { text: body }));
    };
    section("command", t[T_CMD]);
    if (t[T_HELD] > 0) section("held back", heldText(t));
    section("error", t[T_ERROR]);
    section("stderr (tail)", t[T_ERR], t[T_ERRCUT]);
    section("stdout (tail)", t[T_OUT], t[T_OUTCUT]);
    const ix = taskBars.get(i) || [];
    if (ix.length > 1) {
      section("attempts", ix.map((k) => {
        const b = bars[k], last = b[B_N] === t[T_ATTEMPTS];
        return "attempt " + b[B_N] + ": " + LABELS[S[b[B_STATUS]]] + ", " + (last ? how(t[T_EXIT], t[T_SIGNAL]) : how(b[B_EXIT], b[B_SIGNAL])) +
          ", " + fmtDur(b[B_END] - b[B_START]) + " from " + fmtOffset(b[B_START]) + (!last && b[B_ERR] ? " — " + b[B_ERR] : "");
      }).join("\n"));
    }
    if (!td.childNodes.length) td.append(el("span", { class: "note", text: "No output." }));
    return el("tr", { class: "detail" }, td);
  }
  // heldText says how long a task was ready but held back, and by what: "1.2 s: limit
  // api, workers".
  function heldText(t) {
    return fmtDur(t[T_HELD]) + (t[T_HELDFOR] ? ": " + t[T_HELDFOR] : "");
  }
  function showTask(i) {
    statusSel.value = "";
    search.value = tasks[i][T_ID];
    open.add(i);
    refilter();
    document.getElementById("tasks-section").scrollIntoView({ behavior: "smooth" });
  }
  document.querySelectorAll("#tasks th").forEach((th) => {
    th.onclick = () => {
      const k = th.dataset.key;
      if (sortKey === k) desc = !desc; else { sortKey = k; desc = false; }
      document.querySelectorAll("#tasks th").forEach((h) => h.classList.remove("sorted", "desc"));
      th.classList.add("sorted");
      if (desc) th.classList.add("desc");
      refilter();
    };
  });
  document.querySelector('#tasks th[data-key="index"]').classList.add("sorted");
  statusSel.onchange = refilter;
  let searchTimer = 0;
  search.oninput = () => { clearTimeout(searchTimer); searchTimer = setTimeout(refilter, 120); };
  document.getElementById("prev").onclick = () => { page--; renderTable(); };
  document.getElementById("next").onclick = () => { page++; renderTable(); };

  // ---- legend and notes ----
  const legend = document.getElementById("legend");
  S.forEach((st) => { if (run.counts[st] && st !== "skipped" && st !== "invalid") legend.append(el("span", null, el("i", { style: "background:" + COLORS[st] }), LABELS[st])); });
  legend.append(el("span", null, el("i", { class: "wait" }), "waiting to start (rate limit, queue)"));
  if (retried.length) legend.append(el("span", null, el("i", { class: "link" }), "retry of the same task"));
  if (critical.length > 1) legend.append(el("span", null, el("i", { class: "crit" }), "critical path of the needs"));
  legend.append(el("span", { text: "▶ timed out · ✕ cancelled" }));
  const notes = [bars.length.toLocaleString("en-US") + " attempts in " + lanes.length + " lane" + (lanes.length === 1 ? "" : "s") + "."];
  if (critical.length > 1) notes.push("Critical path: " + critical.map((i) => tasks[i][T_ID]).join(" → ") + ".");
  if (D.cut) notes.push("Output tails are cut to their last " + D.cut.toLocaleString("en-US") + " bytes to keep this file small.");
  document.getElementById("timeline-note").textContent = notes.join(" ");
  if (!bars.length) document.getElementById("timeline-section").hidden = true;

  function layout() { size(); drawAxis(); drawTimeline(); drawHist(); }
  window.addEventListener("resize", () => { layout(); });
  layout();
  refilter();
  // For scripts and tests that drive the page: where an attempt's bar is on screen.
  window.gorunReport = {
    bars: bars.length,
    view: () => [v0, v1],
    barPoint: function (id, attempt) {
      for (let i = 0; i < bars.length; i++) {
        const b = bars[i];
        if (tasks[b[B_TASK]][T_ID] !== id || b[B_N] !== attempt) continue;
        const r = canvas.getBoundingClientRect();
        const x0 = Math.max(xOf(b[B_START]), LABEL_W), x1 = Math.min(Math.max(xOf(b[B_END]), x0 + 1), LABEL_W + plotW());
        return { x: r.left + (x0 + x1) / 2, y: r.top + laneY[b[B_LANE]] + laneH / 2 };
      }
      return null;
    },
  };
  // Ready once the first frame with everything drawn has been painted: renderMs is
  // the time from the start of the page's navigation.
  requestAnimationFrame(() => setTimeout(() => {
    document.body.dataset.renderMs = String(Math.round(performance.now()));
    document.body.dataset.ready = "1";
  }, 0));
})();
