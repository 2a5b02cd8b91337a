// Tenant "Models": the models this key may call, their prices and context windows.

import {badge, fill, h, table} from "../dom.js";
import {count, money} from "../format.js";

/** /v1/models lists every name (aliases too): one row per model, with its other names. */
function byModel(cards) {
  const models = new Map();
  for (const card of cards) {
    const row = models.get(card.root) || {...card, id: card.root, aliases: []};
    if (card.id !== card.root) row.aliases.push(card.id);
    models.set(card.root, row);
  }
  return [...models.values()];
}

export default {
  role: "tenant",
  id: "models",
  title: "Models and prices",
  async render(root, {api}) {
    const models = await api.get("/v1/models");
    const per = (field) => (m) => money(m.pricing[field], m.pricing.currency);
    fill(root,
      h("p", null, "Prices are per million tokens. Call a model by its name or any of its other names; ",
        "add ", h("code", null, ":cheap"), " or ", h("code", null, ":fast"), " to prefer cost or latency."),
      table({
        caption: "Models you may call",
        id: "models-table",
        columns: [
          {label: "Model", value: (m) => h("code", null, m.id)},
          {label: "Also called", value: (m) => (m.aliases.length ? m.aliases.join(", ") : "–")},
          {label: "Input", num: true, value: per("input_per_mtok")},
          {label: "Cached input", num: true, value: per("cached_input_per_mtok")},
          {label: "Output", num: true, value: per("output_per_mtok")},
          {label: "Context window", num: true, value: (m) => (m.context_length ? `${count(m.context_length)} tokens` : "–")},
          {label: "Chips", value: (m) => (m.chips.length ? m.chips.map((c) => [badge(c), " "]) : "–")},
        ],
        rows: byModel(models.data),
        empty: "This key may call no model.",
      }));
  },
};
