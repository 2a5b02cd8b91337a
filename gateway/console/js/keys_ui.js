// The key form, the once-shown secret and the keys table, shared by the tenant's
// "Keys" view and the operator's "Tenants & keys" view.

import {badge, confirmButton, errorText, field, fill, h, table, uid} from "./dom.js";
import {limit, money, when} from "./format.js";

function integerInput(id, label, hint) {
  return field(label, h("input", {id, name: id, inputmode: "numeric", pattern: "[0-9]*", autocomplete: "off"}), hint);
}

/** The whole number a limit field holds, or null when empty; a clear error otherwise. */
export function wholeNumber(input, label) {
  const text = input.value.trim();
  if (!text) return null;
  if (!/^[0-9]+$/.test(text)) throw new Error(`${label} must be a whole number.`);
  return Number(text);
}

/** The amount of USD a budget field holds, as a decimal string (money never passes through a float), or null. */
export function budgetAmount(input) {
  const text = input.value.trim();
  if (!text) return null;
  if (!/^[0-9]+(\.[0-9]+)?$/.test(text)) throw new Error("The budget must be an amount such as 10 or 2.50.");
  return text;
}

/**
 * A form that creates a key. models: the model names offered; withTenant: ask for the tenant
 * (operators). onCreate(body) makes the key and resolves to the API's answer (with its secret).
 */
export function keyForm({models, withTenant, onCreate}) {
  const ids = {tenant: uid("tenant"), name: uid("name"), rpm: uid("rpm"), tpm: uid("tpm"),
    concurrent: uid("concurrent"), budget: uid("budget"), period: uid("period")};
  const status = h("div", {"aria-live": "polite"});
  const checks = models.map((m) => h("label", null, h("input", {type: "checkbox", name: "models", value: m}), m));
  const form = h("form", {method: "post", "aria-label": "Create a key", novalidate: true},
    h("div", {class: "form-grid"},
      withTenant ? field("Tenant", h("input", {id: ids.tenant, name: "tenant", required: true, autocomplete: "off"})) : null,
      field("Name", h("input", {id: ids.name, name: "name", autocomplete: "off", maxlength: 128}), "to recognise it later"),
      integerInput(ids.rpm, "Requests per minute", "empty: the default"),
      integerInput(ids.tpm, "Tokens per minute", "empty: the default"),
      integerInput(ids.concurrent, "Concurrent requests", "empty: the default"),
      field("Budget (USD)", h("input", {id: ids.budget, name: "budget", inputmode: "decimal", autocomplete: "off"}), "empty: no budget of its own"),
      field("Budget period", h("select", {id: ids.period, name: "period"},
        h("option", {value: "month"}, "per month (UTC)"), h("option", {value: "day"}, "per day (UTC)"),
        h("option", {value: "total"}, "in total")))),
    h("fieldset", null, h("legend", null, "Allowed models (none ticked: every model)"), h("div", {class: "checks"}, checks)),
    h("button", {type: "submit", class: "primary"}, "Create key"),
    status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    try {
      const body = {
        name: form.elements[ids.name].value.trim() || null,
        rpm: wholeNumber(form.elements[ids.rpm], "Requests per minute"),
        tpm: wholeNumber(form.elements[ids.tpm], "Tokens per minute"),
        concurrent: wholeNumber(form.elements[ids.concurrent], "Concurrent requests"),
        budget_period: form.elements[ids.period].value,
      };
      const budget = budgetAmount(form.elements[ids.budget]);
      if (budget) body.budget_usd = budget;
      const ticked = checks.map((label) => label.querySelector("input")).filter((c) => c.checked).map((c) => c.value);
      if (ticked.length) body.models = ticked;
      if (withTenant) {
        body.tenant = form.elements[ids.tenant].value.trim();
        if (!body.tenant) throw new Error("A key needs a tenant.");
      }
      button.disabled = true;
      const created = await onCreate(body);
      form.reset();
      fill(status, secretBox(created));
    } catch (error) {
      fill(status, errorText(error));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

/** A new key's secret, shown this once. */
export function secretBox(created) {
  const output = h("output", {class: "mono", id: uid("secret"), "data-secret": ""}, created.key);
  const copied = h("span", {"aria-live": "polite", class: "hint"});
  const copy = h("button", {type: "button", onclick: async () => {
    try {
      await navigator.clipboard.writeText(created.key);
      copied.textContent = "Copied.";
    } catch {
      window.getSelection().selectAllChildren(output);
      copied.textContent = "Selected: copy it with your keyboard.";
    }
  }}, "Copy");
  return h("div", {class: "secret", role: "alert"},
    h("p", null, h("strong", null, `Key ${created.name || created.id} created for tenant ${created.tenant}. `),
      "This is the only time its secret is shown: store it now."),
    output, copy, " ", copied);
}

function budgetText(key) {
  return key.budget_usd === null ? "none" : `${money(key.budget_usd)} / ${key.budget_period}`;
}

/** Keys as a table; onRevoke(key) revokes (after an inline confirmation) and resolves when done. */
export function keyTable({caption, keys, onRevoke, showTenant, id}) {
  const columns = [
    showTenant ? {label: "Tenant", value: (k) => k.tenant} : null,
    {label: "Name", value: (k) => [k.name || "–", k.current ? " " : null, k.current ? badge("this key", "warn") : null]},
    {label: "Key", value: (k) => h("code", null, `${k.prefix}…`)},
    {label: "Models", value: (k) => (k.models ? k.models.join(", ") : "all")},
    {label: "Limits (rpm / tpm / concurrent)", value: (k) => `${limit(k.rpm)} / ${limit(k.tpm)} / ${limit(k.concurrent)}`},
    {label: "Budget", value: budgetText},
    {label: "Created", value: (k) => when(k.created_at)},
    {label: "Status", value: (k) => (k.revoked_at ? badge(`revoked ${when(k.revoked_at)}`, "bad") : badge("active", "good"))},
    {label: "Action", value: (k) => (k.revoked_at ? "–" : revokeControl(k, onRevoke))},
  ].filter(Boolean);
  return table({caption, columns, rows: keys, id, empty: "No keys.", rowClass: (k) => (k.revoked_at ? "revoked" : null)});
}

function revokeControl(key, onRevoke) {
  const label = key.name || key.prefix;
  return confirmButton({
    label: "Revoke",
    name: `Revoke key ${label}`,
    question: key.current ? "Revoke the key you are signed in with? " : `Revoke ${label}? `,
    yes: "Yes, revoke",
    onConfirm: () => onRevoke(key),
  });
}
