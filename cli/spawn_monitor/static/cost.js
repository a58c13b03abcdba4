// spawn-monitor ui: an array's cost (SPEC §14 `cost`) as one line of text, and how close
// it is to the budget. Pure: no page access, so tests/unit/test_web_cost.py runs it in
// node. Without a `cost` in the body (an older backend) nothing is shown.
"use strict";

function costNumber(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function costMoney(value) {
  return value >= 0.01 || value === 0 ? `$${value.toFixed(2)}` : `$${value.toFixed(4)}`;
}

// "" under 90 % of the budget, "warn" from 90 % (actual or projected), "bad" from 100 %.
function costLevel(cost) {
  const usd = costNumber(cost.usd), budget = costNumber(cost.budget_usd);
  if (usd === null || budget === null || budget <= 0) return "";
  if (usd >= budget) return "bad";
  return Math.max(usd, costNumber(cost.projected_usd) ?? 0) >= 0.9 * budget ? "warn" : "";
}

// { text, level } of a progress body's cost, or null when it has none.
function costSummary(progress) {
  const cost = progress && progress.cost;
  if (!cost || typeof cost !== "object" || costNumber(cost.usd) === null) return null;
  const running = progress.finished_at == null;
  const parts = [`${costMoney(cost.usd)} so far`];
  const rate = costNumber(cost.usd_per_hour);
  if (rate !== null && running) parts.push(`${costMoney(rate)}/h`);
  const projected = costNumber(cost.projected_usd);
  const budget = costNumber(cost.budget_usd);
  if (projected !== null && running) parts.push(`projected ${costMoney(projected)}`);
  if (budget !== null && budget > 0) {
    parts.push(`budget ${costMoney(budget)} (${Math.floor((cost.usd / budget) * 100)} % used)`);
  }
  const billed = costNumber(cost.billed_usd);
  if (billed !== null) {
    const error = costNumber(cost.billed_error_percent);
    parts.push(`billed ${costMoney(billed)}${error === null ? "" : ` (estimate ${error >= 0 ? "+" : ""}${error.toFixed(1)} %)`}`);
  }
  return { text: parts.join(" · "), level: costLevel(cost) };
}

if (typeof module !== "undefined") module.exports = { costSummary, costLevel };
