// A period of UTC calendar days (the ledger's days), chosen with two date fields.

import {field, h, uid} from "./dom.js";
import {nextDate, utcDate} from "./format.js";

/**
 * The picker and its current range: range() -> {from, to} for the usage APIs
 * (``from`` inclusive, ``to`` the day after the last one shown, exclusive).
 */
export function periodPicker({days = 30, onChange}) {
  const fromId = uid("from");
  const toId = uid("to");
  const from = h("input", {type: "date", id: fromId, value: utcDate(-(days - 1)), required: true});
  const to = h("input", {type: "date", id: toId, value: utcDate(0), required: true});
  const form = h("form", {class: "toolbar", method: "post", "aria-label": "Period"},
    field("From (UTC day)", from), field("To (UTC day, included)", to),
    h("button", {type: "submit"}, "Show"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onChange();
  });
  return {
    element: form,
    range() {
      if (!from.value || !to.value) throw new Error("Choose both days of the period.");
      if (from.value > to.value) throw new Error("The period starts after it ends.");
      return {from: from.value, to: nextDate(to.value)};
    },
    label() {
      return `${from.value} to ${to.value} (UTC days)`;
    },
  };
}
