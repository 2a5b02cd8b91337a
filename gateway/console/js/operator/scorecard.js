// Operator "Scorecard", live: each chip scored by what it delivered (success, speed, cost per token).

import {fill, h, table} from "../dom.js";
import {clock, count, money, ms, number, percent} from "../format.js";
import {poll} from "../poller.js";

const COLUMNS = [
  {label: "Chip", value: (r) => r.chip},
  {label: "Requests", num: true, value: (r) => count(r.requests)},
  {label: "Succeeded", num: true, value: (r) => percent(r.success_rate)},
  {label: "Output tokens", num: true, value: (r) => count(r.output_tokens)},
  {label: "Output tok/s (caller)", num: true, value: (r) => number(r.output_tok_s)},
  {label: "Output tok/s (replica busy time)", num: true, value: (r) => number(r.replica_output_tok_s)},
  {label: "TTFT p50", num: true, value: (r) => ms(r.ttft_p50_ms)},
  {label: "TTFT p95", num: true, value: (r) => ms(r.ttft_p95_ms)},
  {label: "Cost per 1M output tokens", num: true, value: (r) => (r.usd_per_mtok_output === null ? "–" : money(r.usd_per_mtok_output))},
];

export default {
  role: "operator",
  id: "scorecard",
  title: "Chip scorecard",
  async render(root, {api}) {
    const live = h("p", {class: "live"});
    const out = h("div");
    fill(root,
      h("p", null, "Recent requests of this gateway process, by chip. Cost counts the replica time each request took ",
        "at the replica's $/hour; simulated chips are labelled in the fleet view."),
      live, out);
    async function refresh() {
      const card = await api.get("/admin/scorecard");
      fill(out, table({caption: "Chips by what they delivered", columns: COLUMNS, rows: card.data, id: "scorecard-table",
        empty: "No requests yet."}));
      live.textContent = `Live: updated ${clock(Date.now() / 1000)}, every 5 s.`;
    }
    await refresh();
    return poll(refresh, 5000, {onError: (e) => { live.textContent = `Update failed (${e.message}); retrying.`; }});
  },
};
