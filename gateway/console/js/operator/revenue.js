// Operator "Revenue and margin": what tenants paid, what the replicas cost and the margin, by
// tenant, model or chip over a chosen period (exact decimal sums), with CSV download.

import {barChart} from "../chart.js";
import {errorText, fill, h, table, uid} from "../dom.js";
import {count, magnitude, money, sum, toNano} from "../format.js";
import {periodPicker} from "../period.js";

const GROUPS = {tenant: "Tenant", model: "Model", chip: "Chip"};

function marginShare(row) {
  const price = toNano(row.price_usd);
  if (price === 0n) return "–";
  return `${(Number((toNano(row.margin_usd) * 10000n) / price) / 100).toFixed(2)} %`;
}

export default {
  role: "operator",
  id: "revenue",
  title: "Revenue and margin",
  async render(root, {api}) {
    const out = h("div");
    const groupId = uid("group");
    const group = h("select", {id: groupId}, Object.entries(GROUPS).map(([v, label]) => h("option", {value: v}, label)));
    const period = periodPicker({days: 30, onChange: () => show().catch((e) => fill(out, errorText(e)))});
    group.addEventListener("change", () => show().catch((e) => fill(out, errorText(e))));
    const download = h("button", {type: "button", onclick: async () => {
      try {
        const range = period.range();
        await api.download("/admin/usage", {group_by: group.value, format: "csv", ...range},
          `revenue-by-${group.value}-${range.from}-to-${range.to}.csv`);
      } catch (error) {
        fill(out, errorText(error));
      }
    }}, "Download CSV");
    fill(root,
      h("p", null, "Revenue is what tenants were charged; compute cost is replica time at each replica's $/hour."),
      h("div", {class: "section-head"}, period.element,
        h("div", {class: "toolbar"}, h("div", {class: "field"}, h("label", {for: groupId}, "By"), group), download)),
      out);

    async function show() {
      const by = group.value;
      const usage = await api.get("/admin/usage", {group_by: by, ...period.range()});
      const rows = [...usage.data].sort((a, b) => magnitude(b.price_usd) - magnitude(a.price_usd));
      const columns = [
        {label: GROUPS[by], value: (r) => r[by] ?? "–"},
        {label: "Requests", num: true, value: (r) => count(r.requests)},
        {label: "Tokens", num: true, value: (r) => count(r.total_tokens)},
        {label: "Revenue", num: true, value: (r) => money(r.price_usd)},
        {label: "Compute cost", num: true, value: (r) => money(r.compute_cost_usd)},
        {label: "Margin", num: true, value: (r) => money(r.margin_usd)},
        {label: "Margin share", num: true, value: marginShare},
      ];
      const total = (name) => sum(rows.map((r) => r[name]));
      const footer = ["Total", count(rows.reduce((n, r) => n + r.requests, 0)), count(rows.reduce((n, r) => n + r.total_tokens, 0)),
        money(total("price_usd")), money(total("compute_cost_usd")), money(total("margin_usd")),
        marginShare({price_usd: total("price_usd"), margin_usd: total("margin_usd")})];
      fill(out,
        h("div", {class: "grid"},
          barChart({title: `Revenue by ${GROUPS[by].toLowerCase()}`,
            items: rows.map((r) => ({label: r[by] ?? "–", value: magnitude(r.price_usd), text: money(r.price_usd)}))}),
          barChart({title: `Margin by ${GROUPS[by].toLowerCase()}`,
            items: rows.map((r) => ({label: r[by] ?? "–", value: Math.max(magnitude(r.margin_usd), 0), text: money(r.margin_usd)}))})),
        table({caption: `By ${GROUPS[by].toLowerCase()}, ${period.label()}`, columns, rows, id: "revenue-table",
          footer: rows.length ? footer : null, empty: "No requests in this period."}));
    }
    await show();
  },
};
