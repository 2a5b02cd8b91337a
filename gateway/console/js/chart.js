// Horizontal bar charts from plain elements: every bar has its label and its value in
// words beside it, so the chart reads without colour and at a phone's width.

import {h} from "./dom.js";

/**
 * items: [{label, value (a number, for the length only), text (what is written)}].
 * Widths are set through the CSSOM, which the CSP allows (style attributes it does not).
 */
export function barChart({title, items, empty}) {
  const biggest = Math.max(0, ...items.map((i) => i.value));
  const rows = items.map((item) => {
    const bar = h("div", {class: "bar"});
    bar.style.width = `${biggest > 0 ? Math.max((item.value / biggest) * 100, 0.5) : 0}%`;
    return [
      h("span", {class: "bar-label", title: item.label}, item.label),
      h("div", {class: "bar-track", "aria-hidden": "true"}, bar),
      h("span", {class: "bar-value"}, item.text),
    ];
  });
  return h("figure", {class: "chart"},
    h("figcaption", null, title),
    items.length ? h("div", {class: "bars"}, rows) : h("p", {class: "muted"}, empty || "No data for this period."));
}
