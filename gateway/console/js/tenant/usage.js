// Tenant "Usage": spend by day and by model (charts and a table) over a chosen period, and the
// same rows as CSV. Everything comes from one /v1/usage answer, so chart, table and totals agree.

import {barChart} from "../chart.js";
import {errorText, fill, h, table} from "../dom.js";
import {count, magnitude, money, sum} from "../format.js";
import {periodPicker} from "../period.js";

/** Rows summed by one field: [{label, amounts}] in order of first appearance. */
function spendBy(rows, name) {
  const groups = new Map();
  for (const row of rows) {
    const label = row[name] ?? "–";
    if (!groups.has(label)) groups.set(label, []);
    groups.get(label).push(row.price_usd);
  }
  return [...groups].map(([label, amounts]) => {
    const total = sum(amounts);
    return {label, value: magnitude(total), text: money(total)};
  });
}

const COLUMNS = [
  {label: "Day (UTC)", value: (r) => r.day},
  {label: "Model", value: (r) => r.model},
  {label: "Requests", num: true, value: (r) => count(r.requests)},
  {label: "Prompt tokens", num: true, value: (r) => count(r.prompt_tokens)},
  {label: "Cached tokens", num: true, value: (r) => count(r.cached_tokens)},
  {label: "Completion tokens", num: true, value: (r) => count(r.completion_tokens)},
  {label: "Total tokens", num: true, value: (r) => count(r.total_tokens)},
  {label: "Charged", num: true, value: (r) => money(r.price_usd)},
];

function totals(rows) {
  const add = (name) => count(rows.reduce((n, r) => n + r[name], 0));
  return ["Total", "", add("requests"), add("prompt_tokens"), add("cached_tokens"), add("completion_tokens"),
    add("total_tokens"), money(sum(rows.map((r) => r.price_usd)))];
}

export default {
  role: "tenant",
  id: "usage",
  title: "Usage and spend",
  async render(root, {api, session}) {
    const out = h("div");
    const period = periodPicker({days: 30, onChange: () => show().catch((e) => fill(out, errorText(e)))});
    const download = h("button", {type: "button"}, "Download CSV");
    download.addEventListener("click", async () => {
      try {
        const range = period.range();
        await api.download("/v1/usage", {group_by: "model,day", format: "csv", ...range},
          `usage-${session.tenant}-${range.from}-to-${range.to}.csv`);
      } catch (error) {
        fill(out, errorText(error));
      }
    });
    fill(root,
      h("p", null, "What you were charged, by UTC day and model. Amounts in USD, exact to the nano-dollar."),
      h("div", {class: "section-head"}, period.element, download),
      out);

    async function show() {
      const range = period.range();
      const usage = await api.get("/v1/usage", {group_by: "model,day", ...range});
      const rows = [...usage.data].sort((a, b) => (a.day === b.day ? a.model.localeCompare(b.model) : a.day < b.day ? 1 : -1));
      const byDay = spendBy([...rows].reverse(), "day");
      fill(out,
        h("div", {class: "grid"},
          barChart({title: "Spend by day (UTC)", items: byDay}),
          barChart({title: "Spend by model", items: spendBy(rows, "model")})),
        table({caption: `Usage by day and model, ${period.label()}`, columns: COLUMNS, rows, id: "usage-table",
          footer: rows.length ? totals(rows) : null, empty: "No requests in this period."}));
    }
    await show();
  },
};
