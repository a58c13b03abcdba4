// Read by tests/e2e/test_web_ui.py: what `spawn-monitor ui` shows, taken in one script
// run so that the page's own redraw cannot get in between two reads.
"use strict";

function box(node) {
  if (!node) return null;
  const r = node.getBoundingClientRect();
  return { left: r.left, right: r.right, width: r.width, height: r.height };
}

function texts(selector) {
  return [...document.querySelectorAll(selector)].map((n) => n.textContent);
}

function page() {
  return {
    loaded: document.body.dataset.loaded,
    clock: document.getElementById("clock").textContent,
    refreshed: document.getElementById("refreshed").textContent,
    innerWidth: window.innerWidth,
    scrollWidth: document.scrollingElement.scrollWidth,
  };
}

// The key cells of a table row that are shown, with their boxes.
function keyCells(row) {
  return [...row.querySelectorAll("td.key")].filter((c) => c.offsetParent !== null)
    .map((c) => ({ label: c.dataset.label, ...box(c) }));
}

function readFleet() {
  const rows = [...document.querySelectorAll("#arrays tr.array-row")];
  const arrays = {};
  for (const row of rows) {
    const bar = row.querySelector(".bar");
    arrays[row.dataset.arrayId] = {
      basis: bar && bar.dataset.basis,
      bar: box(bar),
      segments: [...row.querySelectorAll(".bar span")].map((s) => ({
        key: s.className.replace("seg-", ""), n: Number(s.dataset.n), width: box(s).width,
      })),
      cells: Object.fromEntries([...row.querySelectorAll("td[data-label]")]
        .map((c) => [c.dataset.label, c.innerText.trim()])),
      key: keyCells(row),
    };
  }
  const alerts = [...document.querySelectorAll("#alerts li.alert")].map((li) => ({
    kind: li.dataset.kind,
    event_type: li.dataset.eventType || null,
    array_id: li.dataset.arrayId || null,
    severity: li.dataset.severity || null,
    at: li.querySelector(".at").textContent,
    text: li.innerText,
    ...box(li),
  }));
  return {
    ...page(),
    ids: rows.map((r) => r.dataset.arrayId),
    finished: rows.map((r) => r.classList.contains("finished")),
    arrays,
    alerts,
    legend: [...document.querySelectorAll("#arrays-legend .legend-item")].map((i) => i.dataset.key),
  };
}

function readChart(id) {
  const svg = document.getElementById(id);
  if (!svg) return null;
  const lines = [...svg.querySelectorAll("polyline")];
  return {
    x: texts(`#${id} .x-ticks text`),
    y: texts(`#${id} .y-ticks text`),
    grid: svg.querySelectorAll(".grid-lines line").length,
    series: lines.map((l) => l.getAttribute("class")),
    points: Math.max(0, ...lines.map((l) => l.getAttribute("points").split(" ").length)),
    text: svg.textContent,
  };
}

function readArray() {
  return {
    ...page(),
    title: document.getElementById("array-title").innerText,
    facts: Object.fromEntries([...document.querySelectorAll("#array-facts dd")]
      .map((d) => [d.dataset.fact, d.textContent])),
    legend: texts("#array-legend .legend-item"),
    tabs: texts("#status-tabs button"),
    active: texts("#status-tabs button.active"),
    workers: [...document.querySelectorAll("#workers tbody tr")].map((r) => ({
      status: r.dataset.status, text: r.innerText, key: keyCells(r),
    })),
    workersChart: readChart("history-chart"),
    tasksChart: readChart("tasks-chart"),
    log: readLog(),
  };
}

function readLog() {
  const panel = document.getElementById("log-panel");
  if (!panel || panel.hidden) return null;
  return {
    title: document.getElementById("log-title").textContent,
    lines: texts("#log-lines .log-line"),
    more: !document.getElementById("log-more").hidden,
    box: box(document.getElementById("log-lines")),
  };
}
