// spawn-monitor ui: the fleet, every array, and one array's workers and history.
// Reads only /api/... (proxied and signed by `spawn-monitor ui`). Every value from
// the API is put in the page as text (textContent), never as HTML.
"use strict";

const STATUSES = ["completed", "failed", "lost", "running"];
const WORKER_TABS = ["running", "completed", "failed", "invalid"];
const SVG = "http://www.w3.org/2000/svg";
const state = { refreshMs: 5000, timer: null, status: "running", pickStatus: true, cursor: null, arrayId: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "—")));
  }
  return node;
}

function count(workers, status) {
  const value = workers ? workers[status] : undefined;
  return Number.isInteger(value) ? value : 0;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
  if (m) return `${m}m ${String(r).padStart(2, "0")}s`;
  return `${r}s`;
}

function when(value) {
  if (typeof value !== "string") return "—";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
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

function bar(workers) {
  const total = count(workers, "total");
  const node = el("div", { class: "bar", role: "progressbar", "aria-valuemin": "0",
    "aria-valuemax": String(total), "aria-valuenow": String(STATUSES.slice(0, 3).reduce((n, s) => n + count(workers, s), 0)) });
  for (const status of STATUSES) {
    const n = Math.min(count(workers, status), total);
    if (!total || !n) continue;
    const segment = el("span", { class: `seg-${status}`, title: `${status} ${n}` });
    segment.style.width = `${(100 * n) / total}%`;
    node.append(segment);
  }
  return node;
}

function card(label, value, kind = "") {
  return el("div", { class: `card ${kind}` }, el("div", { class: "value" }, value), el("div", { class: "label" }, label));
}

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

function ended(workers) {
  return count(workers, "completed") + count(workers, "failed") + count(workers, "lost");
}

function eta(progress) {
  const w = progress.workers || {};
  if (count(w, "total") > 0 && ended(w) >= count(w, "total")) return "done";
  return duration(progress.eta_seconds);
}

function percent(progress) {
  const value = progress.percent_complete;
  return typeof value === "number" ? `${value.toFixed(1)} %` : "—";
}

function renderArrays(arrays) {
  const rows = arrays.map((progress) => {
    const w = progress.workers || {};
    const row = el("tr", { class: "array-row", "data-array-id": String(progress.array_id) },
      el("td", {}, el("a", { href: `#/arrays/${encodeURIComponent(progress.array_id)}` }, progress.array_id)),
      el("td", {}, bar(w)),
      el("td", { class: "num" }, percent(progress)),
      ...["completed", "failed", "lost", "running"].map((s) => el("td", { class: "num" }, "lost" in w || s !== "lost" ? count(w, s) : "—")),
      el("td", { class: `num ${count(w, "stalled") ? "stalled" : ""}` }, count(w, "stalled")),
      el("td", { class: "num" }, count(w, "pending")),
      el("td", { class: "num" }, count(w, "total")),
      el("td", { class: "num" }, eta(progress)),
    );
    row.addEventListener("click", (event) => {
      if (event.target.tagName !== "A") location.hash = `#/arrays/${encodeURIComponent(progress.array_id)}`;
    });
    return row;
  });
  document.querySelector("#arrays tbody").replaceChildren(...rows);
  document.getElementById("no-arrays").hidden = arrays.length > 0;
}

function chart(points) {
  const width = 1100, height = 260, left = 48, right = 12, top = 12, bottom = 28;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("id", "history-chart");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  const times = points.map((p) => new Date(p.time).getTime()).filter((t) => !Number.isNaN(t));
  const label = (x, y, text, anchor = "start") => {
    const node = document.createElementNS(SVG, "text");
    node.setAttribute("x", x); node.setAttribute("y", y); node.setAttribute("font-size", "11");
    node.setAttribute("fill", "#6b7383"); node.setAttribute("text-anchor", anchor);
    node.textContent = text;
    svg.append(node);
  };
  const axis = document.createElementNS(SVG, "path");
  axis.setAttribute("d", `M${left},${top} V${height - bottom} H${width - right}`);
  axis.setAttribute("stroke", "#c5cad3"); axis.setAttribute("fill", "none");
  svg.append(axis);
  if (points.length < 1 || times.length !== points.length) {
    label(width / 2, height / 2, "no history yet: points appear once a minute", "middle");
    svg.setAttribute("aria-label", "no history yet");
    return svg;
  }
  const t0 = Math.min(...times), t1 = Math.max(...times);
  const max = Math.max(1, ...points.map((p) => p.total || 0));
  const x = (t) => left + ((t - t0) / Math.max(1, t1 - t0)) * (width - left - right);
  const y = (n) => height - bottom - (n / max) * (height - top - bottom);
  const colours = { completed: "#2e9d57", failed: "#d64545", lost: "#a347ba", running: "#3b7dd8" };
  for (const status of STATUSES) {
    if (status === "lost" && points.every((p) => p.lost === null || p.lost === undefined)) continue;
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", points.map((p, i) => `${x(times[i]).toFixed(1)},${y(p[status] || 0).toFixed(1)}`).join(" "));
    line.setAttribute("fill", "none"); line.setAttribute("stroke", colours[status]); line.setAttribute("stroke-width", "2");
    line.setAttribute("class", `series-${status}`);
    svg.append(line);
  }
  label(left - 6, top + 8, String(max), "end");
  label(left - 6, height - bottom, "0", "end");
  label(left, height - 8, when(points[0].time));
  label(width - right, height - 8, when(points[points.length - 1].time), "end");
  svg.setAttribute("aria-label", `completion over time, ${points.length} points`);
  return svg;
}

function legend(points) {
  const node = el("div", { class: "legend" });
  const lost = points.some((p) => p.lost !== null && p.lost !== undefined);
  for (const status of STATUSES.filter((s) => s !== "lost" || lost)) {
    const swatch = el("i", { class: `seg-${status}` });
    node.append(swatch, status);
  }
  return node;
}

function workerRow(worker) {
  const status = String(worker.status);
  const label = el("span", { class: `status-${status}` }, status);
  const cell = el("td", {}, label);
  if (worker.stalled) cell.append(" ", el("span", { class: "stalled" }, "(stalled)"));
  const done = worker.tasks_completed;
  const tasks = done === undefined || done === null ? "—" : worker.tasks_total != null ? `${done}/${worker.tasks_total}` : done;
  return el("tr", {},
    el("td", { class: "num" }, worker.task_index),
    cell,
    el("td", { class: "num" }, tasks),
    el("td", {}, when(worker.last_update)),
    el("td", {}, worker.instance_id),
    el("td", {}, worker.hostname),
    el("td", { class: "msg" }, status === "invalid" ? worker.invalid_reason : worker.message),
  );
}

async function loadWorkers(arrayId, append) {
  const base = `/arrays/${encodeURIComponent(arrayId)}/workers?limit=100&status=${state.status}`;
  const page = await api(append && state.cursor ? `${base}&cursor=${encodeURIComponent(state.cursor)}` : base);
  const body = document.querySelector("#workers tbody");
  const rows = (page.workers || []).map(workerRow);
  if (append) body.append(...rows); else body.replaceChildren(...rows);
  state.cursor = page.next;
  document.getElementById("more-workers").hidden = !page.next;
}

async function renderArray(arrayId) {
  const path = `/arrays/${encodeURIComponent(arrayId)}`;
  const [progress, history] = await Promise.all([api(`${path}/progress`), api(`${path}/history`)]);
  const w = progress.workers || {};
  const title = document.getElementById("array-title");
  title.textContent = `${progress.array_id}${progress.name ? ` (${progress.name})` : ""} — ${percent(progress)}`;
  title.append(el("span", { class: "muted updated" }, ` updated ${when(progress.updated_at)}`));
  if (state.pickStatus) {
    // Open on the first status that has workers, busiest first.
    state.status = ["running", "failed", "completed", "invalid"].find((s) => count(w, s) > 0) || "running";
    state.pickStatus = false;
  }
  document.getElementById("array-bar").replaceChildren(bar(w));
  document.getElementById("array-counts").replaceChildren(
    ...["completed", "failed", ...("lost" in w ? ["lost"] : []), "running", "pending", "invalid"].map((s) => card(s, count(w, s))),
    card("stalled", count(w, "stalled"), count(w, "stalled") ? "warn" : ""),
    card("ETA", eta(progress)),
  );
  document.getElementById("chart-box").replaceChildren(chart(history.points || []), legend(history.points || []));
  document.getElementById("status-tabs").replaceChildren(...WORKER_TABS.map((status) => {
    const button = el("button", { type: "button", "data-status": status, class: status === state.status ? "active" : "" },
      `${status} (${count(w, status)})`);
    button.addEventListener("click", () => { state.status = status; refresh(); });
    return button;
  }));
  await loadWorkers(arrayId, false);
}

async function refresh() {
  const match = location.hash.match(/^#\/arrays\/(.+)$/);
  const arrayId = match ? decodeURIComponent(match[1]) : null;
  if (arrayId !== state.arrayId) { state.pickStatus = true; state.arrayId = arrayId; }
  document.getElementById("fleet-view").hidden = Boolean(arrayId);
  document.getElementById("array-view").hidden = !arrayId;
  try {
    if (arrayId) {
      await renderArray(arrayId);
    } else {
      const [fleet, arrays] = await Promise.all([api("/fleet"), pages("/arrays?limit=100", "arrays")]);
      renderFleet(fleet);
      renderArrays(arrays);
    }
    showError(null);
    document.getElementById("refreshed").textContent = `refreshed ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = arrayId ? "array" : "fleet";
  } catch (error) {
    showError(error);
  }
}

async function start() {
  try {
    const config = await (await fetch("/ui-config.json")).json();
    state.refreshMs = Math.max(1000, config.refresh_seconds * 1000);
    document.getElementById("endpoint").textContent = `${config.endpoint}${config.signed ? " (SigV4)" : ""}`;
  } catch (error) {
    showError(error);
  }
  document.getElementById("more-workers").addEventListener("click", () => loadWorkers(state.arrayId, true).catch(showError));
  window.addEventListener("hashchange", refresh);
  await refresh();
  state.timer = setInterval(refresh, state.refreshMs);
}

start();
