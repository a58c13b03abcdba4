// spawn-monitor ui: the fleet, its arrays (active first), the alerts, and one array's
// workers and history. Reads only /api/... (proxied and signed by `spawn-monitor ui`).
// Every value from the API is put in the page as text (textContent), never as HTML.
// Fields a newer API adds (tasks, finished_at, duration_seconds, interruptions, alert
// `kind`) are used when present; without them the page falls back to worker counts.
"use strict";

const WORKER_TABS = ["running", "completed", "failed", "lost", "invalid"];
const SVG = "http://www.w3.org/2000/svg";
const COLOURS = { completed: "#2e9d57", failed: "#d64545", lost: "#a347ba", running: "#3b7dd8", total: "#8a93a3" };
const SEGMENT_LABELS = { completed: "completed", failed: "failed", lost: "lost", remaining: "remaining" };
const state = { refreshMs: 5000, timer: null, status: "running", pickStatus: true, cursor: null, arrayId: null, log: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "—")));
  }
  return node;
}

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function count(workers, status) {
  const value = workers ? workers[status] : undefined;
  return Number.isInteger(value) ? value : 0;
}

function number(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function grouped(n) {
  return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US");
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  if (d) return `${d}d ${String(h).padStart(2, "0")}h`;
  if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
  if (m) return `${m}m ${String(r).padStart(2, "0")}s`;
  return `${r}s`;
}

function millis(value) {
  if (typeof value !== "string") return null;
  const t = Date.parse(value);
  return Number.isNaN(t) ? null : t;
}

// Every time on the page is UTC, and says so.
function utc(value) {
  const t = typeof value === "number" ? value : millis(value);
  if (t === null) return typeof value === "string" ? value : "—";
  return new Date(t).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

function utcShort(value) {
  const t = millis(value);
  return t === null ? "—" : new Date(t).toISOString().slice(5, 19).replace("T", " ");
}

function clockText(t) {
  return `${new Date(t).toISOString().slice(11, 19)} UTC`;
}

async function api(path) {
  const response = await fetch("/api" + path, { headers: { Accept: "application/json" } });
  let body = null;
  try { body = await response.json(); } catch (error) { body = null; }
  if (!response.ok) {
    const message = body && (body.Message || body.message);
    throw new Error(`${path}: ${response.status} ${message || response.statusText}`);
  }
  return body;
}

async function pages(path, key) {
  const items = [];
  let cursor = null;
  do {
    const join = path.includes("?") ? "&" : "?";
    const page = await api(cursor ? `${path}${join}cursor=${encodeURIComponent(cursor)}` : path);
    items.push(...(page[key] || []));
    cursor = page.next;
  } while (cursor);
  return items;
}

function showError(error) {
  const box = document.getElementById("error");
  box.hidden = !error;
  box.textContent = error ? String(error.message || error) : "";
}

// ---- one array's figures ----------------------------------------------------------

function ended(workers) {
  return count(workers, "completed") + count(workers, "failed") + count(workers, "lost");
}

function isFinished(progress) {
  if ("finished_at" in progress) return progress.finished_at !== null && progress.finished_at !== undefined;
  const w = progress.workers || {};
  return count(w, "total") > 0 && ended(w) >= count(w, "total");
}

function statusOf(progress) {
  const w = progress.workers || {};
  if (isFinished(progress)) {
    const bad = [["failed", count(w, "failed")], ["lost", count(w, "lost")]].filter(([, n]) => n).map(([s, n]) => `${n} ${s}`);
    return bad.length ? { key: "finished-bad", text: `finished: ${bad.join(", ")}` } : { key: "finished", text: "finished" };
  }
  if (count(w, "stalled")) return { key: "stalled", text: `running, ${count(w, "stalled")} stalled` };
  if (!count(w, "running") && count(w, "pending")) return { key: "pending", text: "pending" };
  return { key: "running", text: "running" };
}

function durationOf(progress, now) {
  const given = number(progress.duration_seconds);
  if (given !== null) return given;
  const start = millis(progress.started_at);
  if (start === null) return null;
  const end = isFinished(progress) ? millis(progress.finished_at) ?? millis(progress.updated_at) : now;
  return end === null ? null : Math.max(0, (end - start) / 1000);
}

function interruptions(progress) {
  return Number.isInteger(progress.interruptions) ? progress.interruptions : null;
}

function eta(progress) {
  if (isFinished(progress)) return "done";
  return duration(progress.eta_seconds);
}

function percent(progress) {
  const value = progress.percent_complete;
  return typeof value === "number" ? `${value.toFixed(1)} %` : "—";
}

// The bar: by tasks when the workers declare how many they run, else by workers. What is
// not done yet is a pale "remaining" part, so a running array at 0 % never reads as done.
function barModel(progress) {
  const w = progress.workers || {};
  const tasks = progress.tasks || {};
  const total = number(tasks.total);
  if (total !== null && total > 0) {
    const done = Math.min(total, Math.max(0, number(tasks.completed) ?? 0));
    const rest = total - done;
    // Once the array has finished, the tasks never done are those of failed or lost workers.
    const finished = isFinished(progress);
    return {
      basis: "tasks", total, estimated: Boolean(tasks.total_estimated),
      segments: [["completed", done], ["failed", finished ? rest : 0], ["remaining", finished ? 0 : rest]],
    };
  }
  const totalWorkers = count(w, "total");
  const shares = ["completed", "failed", "lost"].map((s) => [s, Math.min(count(w, s), totalWorkers)]);
  const rest = Math.max(0, totalWorkers - shares.reduce((n, [, v]) => n + v, 0));
  return { basis: "workers", total: totalWorkers, estimated: false, segments: [...shares, ["remaining", rest]] };
}

function bar(progress) {
  const model = barModel(progress);
  const node = el("div", {
    class: "bar", role: "progressbar", "data-basis": model.basis, "aria-valuemin": "0", "aria-valuemax": "100",
    "aria-valuenow": String(number(progress.percent_complete) ?? 0),
    "aria-label": `${percent(progress)} by ${model.basis}`,
  });
  for (const [key, n] of model.segments) {
    if (!model.total || !n) continue;
    const segment = el("span", { class: `seg-${key}`, "data-n": String(n), title: `${SEGMENT_LABELS[key]}: ${grouped(n)} ${model.basis}` });
    segment.style.width = `${(100 * n) / model.total}%`;
    node.append(segment);
  }
  return node;
}

function barCaption(progress) {
  const model = barModel(progress);
  const w = progress.workers || {};
  if (model.basis === "tasks") {
    const done = model.segments[0][1];
    return `${grouped(done)} / ${model.estimated ? "~" : ""}${grouped(model.total)} tasks`;
  }
  return `${ended(w)} / ${count(w, "total")} workers ended`;
}

function legend(progress) {
  // With an array: each part and its size; without: what the colours mean.
  const node = el("div", { class: "legend" });
  const model = progress ? barModel(progress) : null;
  const keys = model ? model.segments.filter(([, n]) => n > 0 || !model.total).map(([k]) => k) : ["completed", "failed", "lost", "remaining"];
  const sizes = model ? Object.fromEntries(model.segments) : {};
  for (const key of keys) {
    const item = el("span", { class: "legend-item", "data-key": key }, el("i", { class: `seg-${key}` }),
      model ? `${SEGMENT_LABELS[key]} ${grouped(sizes[key])}` : SEGMENT_LABELS[key]);
    node.append(item);
  }
  node.append(el("span", { class: "muted basis" }, model
    ? `by ${model.basis}${model.estimated ? " (total estimated from the workers that reported)" : ""}`
    : "bars count tasks when workers report tasks_total, else workers"));
  return node;
}

function card(label, value, kind = "") {
  return el("div", { class: `card ${kind}` }, el("div", { class: "value" }, value), el("div", { class: "label" }, label));
}

// ---- fleet view --------------------------------------------------------------------

function renderFleet(fleet) {
  const instances = fleet.instances || {}, unhealthy = fleet.unhealthy || {}, spot = fleet.interruptions || {};
  document.getElementById("fleet").replaceChildren(
    card("instances running", `${instances.running ?? "—"} / ${instances.total ?? "—"}`),
    card("unhealthy", `${unhealthy.count ?? "—"} (${unhealthy.percent ?? "—"} %)`, unhealthy.count ? "bad" : ""),
    card("spot interruptions, last hour", spot.last_hour ?? "—", spot.last_hour ? "warn" : ""),
    card("interruptions, 24 h / all", `${spot.last_24h ?? "—"} / ${spot.total ?? "—"}`),
    card("active arrays", (fleet.active_arrays || []).length),
  );
}

function sortArrays(arrays) {
  const started = (p) => millis(p.started_at) ?? 0;
  const over = (p) => millis(p.finished_at) ?? millis(p.updated_at) ?? 0;
  const byId = (a, b) => String(a.array_id).localeCompare(String(b.array_id));
  const active = arrays.filter((p) => !isFinished(p)).sort((a, b) => started(b) - started(a) || byId(a, b));
  const done = arrays.filter(isFinished).sort((a, b) => over(b) - over(a) || byId(a, b));
  return [...active, ...done];
}

function td(label, attrs, ...children) {
  return el("td", { "data-label": label, ...attrs }, ...children);
}

function renderArrays(arrays, now) {
  const rows = sortArrays(arrays).map((progress) => {
    const w = progress.workers || {};
    const status = statusOf(progress);
    const lost = "lost" in w ? count(w, "lost") : "—";
    const link = el("a", { href: `#/arrays/${encodeURIComponent(progress.array_id)}` }, progress.array_id);
    const row = el("tr", {
      class: `array-row ${isFinished(progress) ? "finished" : "active"}`,
      "data-array-id": String(progress.array_id), "data-state": status.key,
    },
      td("array", { class: "key array-id" }, link, progress.name && progress.name !== progress.array_id ? el("span", { class: "muted name" }, progress.name) : ""),
      td("status", { class: "key state" }, el("span", { class: `chip state-${status.key}` }, status.text)),
      td("progress", { class: "key wide progress" }, bar(progress),
        el("span", { class: "pct" }, percent(progress)), el("span", { class: "muted caption" }, barCaption(progress))),
      td("completed", { class: "num" }, count(w, "completed")),
      td("failed", { class: `num ${count(w, "failed") ? "bad" : ""}` }, count(w, "failed")),
      td("lost", { class: `num key lost ${count(w, "lost") ? "bad" : ""}` }, lost),
      td("running", { class: "num" }, count(w, "running")),
      td("pending", { class: "num minor" }, count(w, "pending")),
      td("workers", { class: "num minor" }, count(w, "total")),
      td("started", { class: "started", title: utc(progress.started_at) }, utcShort(progress.started_at)),
      td("duration", { class: "num duration" }, duration(durationOf(progress, now))),
      td("interruptions", { class: "num interruptions" }, interruptions(progress) ?? "—"),
      td("ETA", { class: "num key eta", title: progress.eta ? `ETA ${utc(progress.eta)}` : null }, eta(progress)),
    );
    row.addEventListener("click", (event) => {
      if (event.target.tagName !== "A") location.hash = `#/arrays/${encodeURIComponent(progress.array_id)}`;
    });
    return row;
  });
  document.querySelector("#arrays tbody").replaceChildren(...rows);
  document.getElementById("arrays-legend").replaceChildren(...legend(null).childNodes);
  document.getElementById("no-arrays").hidden = arrays.length > 0;
}

// ---- alerts ------------------------------------------------------------------------

function alertOf(entry) {
  const kind = entry.kind || (entry.alarm_name ? "alarm" : "system");
  const at = entry.at || entry.changed_at || null;
  const title = kind === "alarm"
    ? `${entry.alarm_name ?? "alarm"}: ${entry.old_state ? `${entry.old_state} → ` : ""}${entry.new_state ?? "?"}`
    : entry.subject || entry.event_type || "alert";
  const detail = kind === "alarm" ? entry.reason : entry.event_type;
  return { kind, at, title, detail, severity: entry.severity, array_id: entry.array_id, instance_id: entry.instance_id,
    event_type: entry.event_type, state: entry.new_state };
}

function alertItem(entry) {
  const a = alertOf(entry);
  const head = el("div", { class: "alert-head" },
    el("time", { class: "at", datetime: a.at }, utc(a.at)),
    el("span", { class: `chip kind-${a.kind}` }, a.kind),
    a.severity ? el("span", { class: `chip severity-${a.severity}` }, a.severity) : "",
    a.state ? el("span", { class: `chip alarm-${String(a.state).toLowerCase()}` }, a.state) : "",
  );
  const meta = el("div", { class: "alert-meta muted" });
  if (a.array_id) meta.append("array ", el("a", { href: `#/arrays/${encodeURIComponent(a.array_id)}` }, a.array_id), " ");
  if (a.instance_id) meta.append(`instance ${a.instance_id}`);
  return el("li", {
    class: `alert alert-${a.kind}`, "data-kind": a.kind, "data-severity": a.severity, "data-event-type": a.event_type,
    "data-array-id": a.array_id,
  }, head, el("div", { class: "alert-title" }, a.title), a.detail && a.detail !== a.title ? el("div", { class: "alert-detail muted" }, a.detail) : "", meta);
}

function renderAlerts(listId, entries, emptyId) {
  document.getElementById(listId).replaceChildren(...entries.map(alertItem));
  if (emptyId) document.getElementById(emptyId).hidden = entries.length > 0;
}

// ---- charts ------------------------------------------------------------------------

function niceStep(raw) {
  if (!(raw > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];

function timeTicks(t0, t1, target) {
  const span = (t1 - t0) / 1000;
  const step = (TIME_STEPS.find((s) => span / s <= target) ?? TIME_STEPS[TIME_STEPS.length - 1]) * 1000;
  const start = Math.floor(t0 / step) * step, end = Math.ceil(t1 / step) * step;
  const ticks = [];
  for (let t = start; t <= end; t += step) ticks.push(t);
  const iso = (t) => new Date(t).toISOString();
  const format = step < 60000 ? (t) => iso(t).slice(11, 19)
    : step < 86400000 ? (span > 86400 ? (t) => `${iso(t).slice(5, 10)} ${iso(t).slice(11, 16)}` : (t) => iso(t).slice(11, 16))
      : (t) => iso(t).slice(5, 10);
  return { ticks, start, end, format };
}

function countTicks(max) {
  const step = Math.max(1, niceStep(max / 4));
  const top = Math.max(step, Math.ceil(max / step) * step);
  const ticks = [];
  for (let n = 0; n <= top; n += step) ticks.push(n);
  return { ticks, top };
}

// A line chart with a UTC time axis, a count axis, labelled ticks and gridlines.
function lineChart({ id, width, points, series, yTitle, label }) {
  const height = 250, left = 58, right = 18, top = 14, bottom = 44;
  const svg = svgEl("svg", { id, width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  const times = points.map((p) => millis(p.time));
  const plotted = points.map((p, i) => [times[i], p]).filter(([t]) => t !== null);
  if (!plotted.length) {
    svg.append(svgEl("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "axis-text" },
      "no history yet: points appear once a minute"));
    svg.setAttribute("aria-label", "no history yet");
    return svg;
  }
  let t0 = plotted[0][0], t1 = plotted[0][0];
  for (const [t] of plotted) { t0 = Math.min(t0, t); t1 = Math.max(t1, t); }
  if (t1 - t0 < 5000) { t0 -= 2500; t1 += 2500; } // a few seconds at least, around a lone point
  const plotWidth = width - left - right, plotHeight = height - top - bottom;
  const xs = timeTicks(t0, t1, Math.max(2, Math.floor(plotWidth / 90)));
  const values = series.flatMap((s) => plotted.map(([, p]) => s.value(p)).filter((v) => v !== null));
  const ys = countTicks(Math.max(1, ...values));
  const x = (t) => left + ((t - xs.start) / Math.max(1, xs.end - xs.start)) * plotWidth;
  const y = (n) => top + plotHeight - (n / ys.top) * plotHeight;

  const grid = svgEl("g", { class: "grid-lines" });
  const xAxis = svgEl("g", { class: "x-ticks" });
  const yAxis = svgEl("g", { class: "y-ticks" });
  for (const n of ys.ticks) {
    grid.append(svgEl("line", { class: "grid-y", x1: left, x2: width - right, y1: y(n), y2: y(n) }));
    yAxis.append(svgEl("text", { x: left - 6, y: y(n) + 4, "text-anchor": "end", class: "axis-text" }, grouped(n)));
  }
  for (const t of xs.ticks) {
    grid.append(svgEl("line", { class: "grid-x", x1: x(t), x2: x(t), y1: top, y2: top + plotHeight }));
    // The first and last labels keep inside the chart.
    const anchor = x(t) < left + 24 ? "start" : x(t) > width - right - 24 ? "end" : "middle";
    xAxis.append(svgEl("text", { x: x(t), y: top + plotHeight + 16, "text-anchor": anchor, class: "axis-text" }, xs.format(t)));
  }
  svg.append(grid, xAxis, yAxis,
    svgEl("path", { class: "axis", d: `M${left},${top} V${top + plotHeight} H${width - right}`, fill: "none" }),
    svgEl("text", { x: left + plotWidth / 2, y: height - 6, "text-anchor": "middle", class: "axis-title" }, "time (UTC)"),
    svgEl("text", { x: 12, y: top + plotHeight / 2, "text-anchor": "middle", class: "axis-title",
      transform: `rotate(-90 12 ${top + plotHeight / 2})` }, yTitle));
  for (const s of series) {
    const coords = plotted.map(([t, p]) => [t, s.value(p)]).filter(([, v]) => v !== null);
    if (!coords.length) continue;
    const line = svgEl("polyline", {
      class: `series series-${s.key}`, fill: "none", stroke: s.colour, "stroke-width": s.width ?? 2,
      points: coords.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" "),
    });
    if (s.dashed) line.setAttribute("stroke-dasharray", "6 4");
    svg.append(line);
    if (coords.length === 1) svg.append(svgEl("circle", { cx: x(coords[0][0]), cy: y(coords[0][1]), r: 3, fill: s.colour }));
  }
  svg.setAttribute("aria-label", `${label}, ${plotted.length} points`);
  return svg;
}

function chartLegend(series) {
  const node = el("div", { class: "legend" });
  for (const s of series) {
    const swatch = el("i", { class: s.dashed ? "dashed" : "" });
    swatch.style.background = s.colour;
    node.append(el("span", { class: "legend-item", "data-key": s.key }, swatch, s.label));
  }
  return node;
}

function taskCount(point, which) {
  const nested = point.tasks && typeof point.tasks === "object" ? point.tasks[which] : undefined;
  return number(point[`tasks_${which}`] ?? nested);
}

function renderCharts(points) {
  const box = document.getElementById("chart-box");
  const width = Math.max(300, Math.floor((box.clientWidth || 800) - 16));
  const lost = points.some((p) => number(p.lost) !== null);
  const workerSeries = ["completed", "failed", ...(lost ? ["lost"] : []), "running"].map((key) => ({
    // Failed is drawn wider, so a lost line over it leaves it in sight.
    key, label: `${key} workers`, colour: COLOURS[key], value: (p) => number(p[key]) ?? 0, width: key === "failed" ? 5 : 2,
  }));
  box.replaceChildren(
    lineChart({ id: "history-chart", width, points, series: workerSeries, yTitle: "workers", label: "workers over time" }),
    chartLegend(workerSeries));
  const tasksBox = document.getElementById("tasks-chart-box");
  const hasTasks = points.some((p) => taskCount(p, "completed") !== null);
  tasksBox.hidden = !hasTasks;
  if (!hasTasks) { tasksBox.replaceChildren(); return; }
  const taskSeries = [
    { key: "tasks-completed", label: "tasks completed", colour: COLOURS.completed, value: (p) => taskCount(p, "completed") },
    ...(points.some((p) => taskCount(p, "total") !== null)
      ? [{ key: "tasks-total", label: "tasks in all", colour: COLOURS.total, dashed: true, value: (p) => taskCount(p, "total") }] : []),
  ];
  tasksBox.replaceChildren(
    lineChart({ id: "tasks-chart", width, points, series: taskSeries, yTitle: "tasks", label: "tasks over time" }),
    chartLegend(taskSeries));
}

// ---- array view --------------------------------------------------------------------

function workerRow(worker) {
  const status = String(worker.status);
  const cell = td("status", { class: "key" }, el("span", { class: `status-${status}` }, status));
  if (worker.stalled) cell.append(" ", el("span", { class: "stalled" }, "(stalled)"));
  const done = worker.tasks_completed;
  const tasks = done === undefined || done === null ? "—" : worker.tasks_total != null ? `${done}/${worker.tasks_total}` : done;
  const message = status === "invalid" ? worker.invalid_reason
    : status === "lost" ? [worker.lost_cause && `lost: ${String(worker.lost_cause).replace(/_/g, " ")}`, worker.message].filter(Boolean).join("; ") || "—"
      : worker.message;
  const exit = worker.signal ? `killed by ${worker.signal}` : worker.exit_code != null ? `exit ${worker.exit_code}` : null;
  if (exit) cell.append(" ", el("span", { class: "exit" }, `(${exit})`));
  const row = el("tr", { "data-status": status, "data-task-index": String(worker.task_index) },
    td("task", { class: "num key" }, worker.task_index),
    cell,
    td("tasks", { class: "num key" }, tasks),
    td("last update", { title: utc(worker.last_update) }, utcShort(worker.last_update)),
    td("instance", { class: "id" }, worker.instance_id),
    td("host", { class: "minor" }, worker.hostname),
    td("message", { class: "msg wide" }, message),
  );
  if (status === "failed" || status === "lost") {
    // A failed or lost worker's row opens its log tail (SPEC §16).
    const open = el("button", { type: "button", class: "log-open", "data-log": String(worker.task_index) }, "log");
    cell.append(" ", open);
    row.classList.add("opens-log");
    row.addEventListener("click", () => openLog(state.arrayId, worker.task_index, false).catch(showError));
  }
  return row;
}

// ---- a worker's log tail ----------------------------------------------------------

async function openLog(arrayId, index, more) {
  const base = `/arrays/${encodeURIComponent(arrayId)}/workers/${encodeURIComponent(index)}/logs?limit=100`;
  if (!more || !state.log || state.log.index !== index) state.log = { arrayId, index, cursor: null };
  const page = await api(more && state.log.cursor ? `${base}&cursor=${encodeURIComponent(state.log.cursor)}` : base);
  const lines = (page.lines || []).map((line) =>
    el("div", { class: "log-line" }, el("span", { class: "log-at" }, utc(line.at)), " ", String(line.message)));
  const box = document.getElementById("log-lines");
  if (more) box.prepend(...lines); else box.replaceChildren(...lines);
  state.log.cursor = page.next;
  const panel = document.getElementById("log-panel");
  document.getElementById("log-title").textContent = `Log of task ${index}${page.status ? ` (${page.status})` : ""}`;
  document.getElementById("log-more").hidden = !page.next;
  document.getElementById("no-log").hidden = box.children.length > 0;
  panel.hidden = false;
  panel.dataset.lines = String(box.children.length);
  if (!more) panel.scrollIntoView({ block: "nearest" });
}

async function loadWorkers(arrayId, append) {
  const base = `/arrays/${encodeURIComponent(arrayId)}/workers?limit=100&status=${state.status}`;
  const page = await api(append && state.cursor ? `${base}&cursor=${encodeURIComponent(state.cursor)}` : base);
  const body = document.querySelector("#workers tbody");
  const rows = (page.workers || []).map(workerRow);
  if (append) body.append(...rows); else body.replaceChildren(...rows);
  state.cursor = page.next;
  document.getElementById("more-workers").hidden = !page.next;
  document.getElementById("no-workers").hidden = body.children.length > 0;
}

function fact(term, value, key) {
  return [el("div", { class: "fact" }, el("dt", {}, term), el("dd", { "data-fact": key }, value))];
}

// Cost so far, rate, projected against the budget (cost.js); nothing without a cost.
function costFact(progress) {
  const cost = costSummary(progress);
  if (!cost) return [];
  return [el("div", { class: "fact cost" }, el("dt", {}, "cost"),
    el("dd", { "data-fact": "cost", "data-level": cost.level, class: cost.level }, cost.text))];
}

async function renderArray(arrayId, now) {
  const path = `/arrays/${encodeURIComponent(arrayId)}`;
  const [progress, history, alerts] = await Promise.all([
    api(`${path}/progress`), api(`${path}/history`),
    api(`/alerts?limit=50&array_id=${encodeURIComponent(arrayId)}`).catch(() => ({ alerts: [] })),
  ]);
  const w = progress.workers || {};
  const status = statusOf(progress);
  const title = document.getElementById("array-title");
  title.textContent = `${progress.array_id}${progress.name && progress.name !== progress.array_id ? ` (${progress.name})` : ""} — ${percent(progress)}`;
  title.append(" ", el("span", { class: `chip state-${status.key}` }, status.text),
    el("span", { class: "muted updated" }, ` updated ${utc(progress.updated_at)}`));
  if (state.pickStatus) {
    // Open on the first status that has workers, busiest first.
    state.status = ["running", "failed", "lost", "completed", "invalid"].find((s) => count(w, s) > 0) || "running";
    state.pickStatus = false;
  }
  const finished = isFinished(progress);
  document.getElementById("array-facts").replaceChildren(
    ...fact("started", utc(progress.started_at), "started"),
    ...(finished ? fact("finished", utc(progress.finished_at ?? null), "finished")
      : fact("ETA", progress.eta ? `${duration(progress.eta_seconds)} (${utc(progress.eta)})` : "—", "eta")),
    ...fact("duration", duration(durationOf(progress, now)), "duration"),
    ...fact("interruptions", interruptions(progress) ?? "—", "interruptions"),
    ...fact("lost", "lost" in w ? count(w, "lost") : "—", "lost"),
    ...fact("progress", `${percent(progress)}, ${barCaption(progress)}`, "progress"),
    ...costFact(progress),
  );
  document.getElementById("array-bar").replaceChildren(bar(progress));
  document.getElementById("array-legend").replaceChildren(...legend(progress).childNodes);
  document.getElementById("array-counts").replaceChildren(
    ...["completed", "failed", ...("lost" in w ? ["lost"] : []), "running", "pending", "invalid"].map((s) =>
      card(s, count(w, s), (s === "failed" || s === "lost") && count(w, s) ? "bad" : "")),
    card("stalled", count(w, "stalled"), count(w, "stalled") ? "warn" : ""),
    card("ETA", eta(progress)),
  );
  renderCharts(history.points || []);
  const mine = (alerts.alerts || []).filter((a) => a.array_id === progress.array_id).slice(0, 10);
  document.getElementById("array-alerts-panel").hidden = mine.length === 0;
  renderAlerts("array-alerts", mine);
  document.getElementById("status-tabs").replaceChildren(...WORKER_TABS.map((s) => {
    const button = el("button", { type: "button", "data-status": s, class: s === state.status ? "active" : "" },
      `${s} (${count(w, s)})`);
    button.addEventListener("click", () => { state.status = s; refresh(); });
    return button;
  }));
  await loadWorkers(arrayId, false);
}

// ---- refresh loop ------------------------------------------------------------------

async function refresh() {
  const match = location.hash.match(/^#\/arrays\/(.+)$/);
  const arrayId = match ? decodeURIComponent(match[1]) : null;
  if (arrayId !== state.arrayId) {
    state.pickStatus = true; state.arrayId = arrayId; state.log = null;
    document.getElementById("log-panel").hidden = true;
  }
  document.getElementById("fleet-view").hidden = Boolean(arrayId);
  document.getElementById("array-view").hidden = !arrayId;
  const now = Date.now();
  try {
    if (arrayId) {
      await renderArray(arrayId, now);
    } else {
      const [fleet, arrays, alerts] = await Promise.all([
        api("/fleet"), pages("/arrays?limit=100", "arrays"),
        api("/alerts?limit=20").catch((error) => ({ alerts: [], error })),
      ]);
      renderFleet(fleet);
      renderArrays(arrays, now);
      renderAlerts("alerts", alerts.alerts || [], "no-alerts");
      document.getElementById("no-alerts").textContent = alerts.error ? `Alerts unavailable: ${alerts.error.message}` : "No alerts.";
    }
    showError(null);
    document.getElementById("refreshed").textContent = `refreshed ${clockText(now)}`;
    document.body.dataset.loaded = arrayId ? "array" : "fleet";
  } catch (error) {
    showError(error);
  }
}

function tick() {
  document.getElementById("clock").textContent = clockText(Date.now());
}

async function start() {
  tick();
  setInterval(tick, 1000);
  try {
    const config = await (await fetch("/ui-config.json")).json();
    state.refreshMs = Math.max(1000, config.refresh_seconds * 1000);
    document.getElementById("endpoint").textContent = `${config.endpoint}${config.signed ? " (SigV4)" : ""}`;
  } catch (error) {
    showError(error);
  }
  document.getElementById("more-workers").addEventListener("click", () => loadWorkers(state.arrayId, true).catch(showError));
  document.getElementById("log-more").addEventListener("click", (event) => {
    event.preventDefault();
    if (state.log) openLog(state.log.arrayId, state.log.index, true).catch(showError);
  });
  document.getElementById("log-close").addEventListener("click", () => {
    document.getElementById("log-panel").hidden = true; state.log = null;
  });
  window.addEventListener("hashchange", refresh);
  await refresh();
  state.timer = setInterval(refresh, state.refreshMs);
}

start();
