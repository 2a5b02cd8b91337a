// Operator "Tenants and keys": each tenant's limits and budget (editable), every key (revocable),
// and a form that creates a key for any tenant.

import {errorText, field, fill, h, table, uid} from "../dom.js";
import {fromNano, limit, money, toNano} from "../format.js";
import {budgetAmount, keyForm, keyTable, wholeNumber} from "../keys_ui.js";

function settingsForm(tenant, api, done) {
  const ids = {rpm: uid("rpm"), tpm: uid("tpm"), concurrent: uid("concurrent"), budget: uid("budget"), period: uid("period")};
  const status = h("div", {"aria-live": "polite"});
  const input = (id, value) => h("input", {id, inputmode: "numeric", autocomplete: "off", value: value ?? ""});
  const form = h("form", {method: "post", "aria-label": `Limits of ${tenant.tenant}`},
    h("div", {class: "form-grid"},
      field("Requests per minute", input(ids.rpm, tenant.rpm), "empty: the default"),
      field("Tokens per minute", input(ids.tpm, tenant.tpm), "empty: the default"),
      field("Concurrent requests", input(ids.concurrent, tenant.concurrent), "empty: the default"),
      field("Budget (USD)", input(ids.budget, tenant.budget_usd === null ? "" : fromNano(toNano(tenant.budget_usd))),
        "empty: no budget"),
      field("Budget period", h("select", {id: ids.period}, ["month", "day", "total"].map((p) =>
        h("option", {value: p, selected: p === tenant.budget_period}, p))))),
    h("button", {type: "submit"}, `Save limits of ${tenant.tenant}`), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const value = (id, what) => wholeNumber(form.elements[id], what);
      await api.put(`/admin/tenants/${encodeURIComponent(tenant.tenant)}`, {
        rpm: value(ids.rpm, "Requests per minute"), tpm: value(ids.tpm, "Tokens per minute"),
        concurrent: value(ids.concurrent, "Concurrent requests"), budget_usd: budgetAmount(form.elements[ids.budget]),
        budget_period: form.elements[ids.period].value,
      });
      await done(`Limits of ${tenant.tenant} saved.`);
    } catch (error) {
      fill(status, errorText(error));
    }
  });
  return form;
}

export default {
  role: "operator",
  id: "tenants",
  title: "Tenants and keys",
  async render(root, {api, notice}) {
    // the models replicas serve (the admin key is not a tenant's, so /v1/models is not for it)
    const replicas = await api.get("/admin/replicas");
    const names = [...new Set(replicas.data.map((r) => r.model))].sort();
    const tenantsOut = h("div");
    const keysOut = h("div");
    const editOut = h("div");

    async function refresh(message) {
      const [tenants, keys] = await Promise.all([api.get("/admin/tenants"), api.get("/admin/keys")]);
      fill(tenantsOut, table({
        caption: "Tenants (limits: empty means the configured default)",
        id: "tenants-table",
        columns: [
          {label: "Tenant", value: (t) => t.tenant},
          {label: "Requests per minute", num: true, value: (t) => limit(t.rpm)},
          {label: "Tokens per minute", num: true, value: (t) => limit(t.tpm)},
          {label: "Concurrent", num: true, value: (t) => limit(t.concurrent)},
          {label: "Budget", num: true, value: (t) => (t.budget_usd === null ? "none" : `${money(t.budget_usd)} / ${t.budget_period}`)},
          {label: "Keys", num: true, value: (t) => String(keys.data.filter((k) => k.tenant === t.tenant && !k.revoked_at).length)},
          {label: "Action", value: (t) => h("button", {type: "button", onclick: () => {
            fill(editOut, h("h3", null, `Limits of ${t.tenant}`), settingsForm(t, api, refresh));
            editOut.querySelector("input").focus();
          }}, `Edit ${t.tenant}`)},
        ],
        rows: tenants.data,
        empty: "No tenant has keys or settings yet.",
      }));
      fill(keysOut, keyTable({
        caption: "Every key",
        keys: [...keys.data].reverse(),
        showTenant: true,
        id: "admin-keys-table",
        onRevoke: async (key) => {
          await api.del(`/admin/keys/${encodeURIComponent(key.id)}`);
          await refresh(`Key ${key.name || key.prefix} of ${key.tenant} revoked.`);
        },
      }));
      if (typeof message === "string") {
        notice(message);
        fill(editOut);
      }
    }

    fill(root,
      tenantsOut, editOut,
      h("h2", null, "Create a key"),
      keyForm({models: names, withTenant: true, onCreate: async (body) => {
        const created = await api.post("/admin/keys", body);
        await refresh();
        return created;
      }}),
      h("h2", null, "Keys"),
      keysOut);
    await refresh();
  },
};
