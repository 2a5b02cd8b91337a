// Operator "Routing", live: which replica each request went to and why, over the last minutes.

import {badge, fill, h, simulatedBadge, table, uid} from "../dom.js";
import {clock, count} from "../format.js";
import {poll} from "../poller.js";

function summary(entries) {
  const rows = new Map();
  for (const e of entries) {
    const key = `${e.replica}\u0000${e.outcome}\u0000${e.reason}`;
    const row = rows.get(key) || {replica: e.replica, chip: e.chip, simulated: e.simulated, outcome: e.outcome, reason: e.reason, n: 0};
    row.n += 1;
    rows.set(key, row);
  }
  return [...rows.values()].sort((a, b) => b.n - a.n);
}

const OUTCOMES = {
  chosen: ["chosen", "good"],
  failed: ["failed, retried elsewhere", "bad"],
  unserved: ["unserved: no replica could take it", "bad"],
};
const outcome = (e) => badge(...(OUTCOMES[e.outcome] || [e.outcome, "warn"]));
const chip = (e) => (e.chip ? h("span", {class: "nowrap"}, e.chip, e.simulated ? [" ", simulatedBadge()] : null) : "–");
const replica = (e) => (e.replica ? h("code", null, e.replica) : "–");

export default {
  role: "operator",
  id: "routing",
  title: "Routing decisions",
  async render(root, {api}) {
    const windowId = uid("window");
    const span = h("select", {id: windowId},
      h("option", {value: "60"}, "last minute"), h("option", {value: "300", selected: true}, "last 5 minutes"),
      h("option", {value: "900"}, "last 15 minutes"));
    const live = h("p", {class: "live"});
    const out = h("div");
    span.addEventListener("change", () => refresh().catch(() => {}));
    fill(root,
      h("p", null, "Decisions of this gateway process (each process keeps its own most recent ones)."),
      h("div", {class: "toolbar"}, h("div", {class: "field"}, h("label", {for: windowId}, "Period"), span)),
      live, out);

    async function refresh() {
      const since = Date.now() / 1000 - Number(span.value);
      const answer = await api.get("/admin/routing/decisions", {since: since.toFixed(3), limit: 1000});
      const entries = answer.data;
      fill(out,
        table({
          caption: `Where requests went and why (${count(entries.length)} decisions${entries.length >= 1000 ? ", the latest 1000" : ""})`,
          id: "decision-summary",
          columns: [
            {label: "Replica", value: replica},
            {label: "Chip", value: chip},
            {label: "Outcome", value: outcome},
            {label: "Reason", value: (r) => r.reason},
            {label: "Count", num: true, value: (r) => count(r.n)},
          ],
          rows: summary(entries),
          empty: "No requests in this period.",
        }),
        table({
          caption: "Latest decisions",
          id: "decision-log",
          columns: [
            {label: "Time", value: (e) => h("time", null, clock(e.at))},
            {label: "Model", value: (e) => e.model},
            {label: "Replica", value: replica},
            {label: "Chip", value: chip},
            {label: "Policy", value: (e) => e.policy},
            {label: "Outcome", value: outcome},
            {label: "Reason", value: (e) => e.reason},
          ],
          rows: entries.slice(0, 50),
          empty: "No requests in this period.",
        }));
      live.textContent = `Live: updated ${clock(Date.now() / 1000)}, every 3 s.`;
    }
    await refresh();
    return poll(refresh, 3000, {onError: (e) => { live.textContent = `Update failed (${e.message}); retrying.`; }});
  },
};
