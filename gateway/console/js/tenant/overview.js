// Tenant "Overview": this month's spend, budgets with what is left, rate limits, allowed models.

import {fill, h, table} from "../dom.js";
import {count, limit, money, sum, toNano, when} from "../format.js";
import {poll} from "../poller.js";

function budgetCard(budget) {
  const whose = budget.scope === "key" ? "This key's budget" : "Your tenant's budget";
  const per = budget.period === "total" ? "in total" : `for ${budget.period_id} (UTC ${budget.period})`;
  const spent = Number(toNano(budget.spent_usd));
  const max = Number(toNano(budget.budget_usd));
  return h("section", {class: "card", "aria-label": whose, "data-budget": budget.scope},
    h("h3", null, whose),
    h("p", {class: "figure"}, `${money(budget.left_usd, budget.currency)} left`),
    h("p", null, `of ${money(budget.budget_usd, budget.currency)} ${per}; spent ${money(budget.spent_usd, budget.currency)}.`),
    h("progress", {max: Math.max(max, 1), value: Math.min(spent, max), "aria-label": `${whose} spent`}),
    budget.resets_at ? h("p", {class: "hint"}, `Resets ${when(budget.resets_at)}.`) : h("p", {class: "hint"}, "Never resets."));
}

function firstOfMonth() {
  return `${new Date().toISOString().slice(0, 7)}-01`;
}

export default {
  role: "tenant",
  id: "overview",
  title: "Overview",
  async render(root, {api, session}) {
    const live = h("p", {class: "live", "aria-live": "off"});
    const content = h("div");
    fill(root, live, content);
    async function refresh() {
      const [account, usage] = await Promise.all([
        api.get("/v1/account"),
        api.get("/v1/usage", {group_by: "model", from: firstOfMonth()}),
      ]);
      session.account = account;
      const spent = sum(usage.data.map((r) => r.price_usd));
      const requests = usage.data.reduce((n, r) => n + r.requests, 0);
      const rates = [
        {scope: "This key", ...account.limits.key},
        {scope: `Tenant ${account.tenant} (all its keys together)`, ...account.limits.tenant},
      ];
      fill(content,
        h("div", {class: "grid"},
          h("section", {class: "card", "aria-label": "This month"},
            h("h3", null, "This month (UTC)"),
            h("p", {class: "figure", id: "month-spend"}, money(spent, account.currency)),
            h("p", null, `${count(requests)} requests since ${firstOfMonth()}.`)),
          account.budgets.map(budgetCard),
          account.budgets.length ? null : h("section", {class: "card"}, h("h3", null, "Budget"),
            h("p", null, "No budget is set for this key or your tenant."))),
        h("h2", null, "Rate limits"),
        table({
          caption: "Rate limits that apply to your requests",
          columns: [
            {label: "Applies to", value: (r) => r.scope},
            {label: "Requests per minute", num: true, value: (r) => limit(r.rpm)},
            {label: "Tokens per minute", num: true, value: (r) => limit(r.tpm)},
            {label: "Requests at once", num: true, value: (r) => limit(r.concurrent)},
          ],
          rows: rates,
        }),
        h("h2", null, "This key"),
        h("p", null, "Key ", h("code", null, `${account.key.prefix}…`), account.key.name ? ` (${account.key.name})` : "",
          account.key.models ? `: may call ${account.key.models.join(", ")}.` : ": may call every model.",
          account.key.manager ? " It may manage your tenant's keys." : " It cannot manage keys (it is restricted)."));
      live.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every 15 s.`;
    }
    await refresh();
    return poll(refresh, 15_000, {onError: (e) => { live.textContent = `Refresh failed: ${e.message}`; }});
  },
};
