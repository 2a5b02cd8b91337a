// Building the page from data with DOM calls only: no HTML string is ever parsed
// (the CSP's require-trusted-types-for forbids it, so text from the API can never become markup).

/** An element: h("td", {class: "num"}, "12"); on* attributes become listeners. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "value" && "value" in el) el.value = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  add(el, children);
  return el;
}

/** Append children: nodes, strings, numbers; null and false are skipped, arrays flattened. */
export function add(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Replace everything inside ``el``. */
export function fill(el, ...children) {
  el.replaceChildren();
  return add(el, children);
}

/** A state in words with a colour as a second cue: badge("open circuit", "bad"). */
export function badge(text, tone) {
  return h("span", {class: `badge ${tone || ""}`.trim()}, text);
}

/** The label that marks a simulated replica everywhere it appears. */
export function simulatedBadge() {
  return h("span", {class: "badge sim", title: "a labelled test double, not real hardware"}, "simulated");
}

/**
 * A table that scrolls sideways on narrow screens.
 * columns: [{label, value: row => node|string, num: bool}]; footer: cells for a totals row.
 */
export function table({caption, columns, rows, empty, footer, rowClass, id}) {
  const head = h("thead", null, h("tr", null, columns.map((c) => h("th", {scope: "col", class: c.num ? "num" : null}, c.label))));
  const body = h("tbody");
  if (!rows.length) {
    body.append(h("tr", null, h("td", {colspan: columns.length, class: "muted"}, empty || "Nothing yet.")));
  }
  for (const row of rows) {
    body.append(h("tr", {class: rowClass ? rowClass(row) : null},
      columns.map((c) => h("td", {class: c.num ? "num" : null, "data-label": c.label}, c.value(row)))));
  }
  const parts = [h("caption", null, caption), head, body];
  if (footer) {
    parts.push(h("tfoot", null, h("tr", null, footer.map((cell, i) => h("td", {class: columns[i] && columns[i].num ? "num" : null}, cell)))));
  }
  // a focusable region, so a keyboard can scroll a wide table
  return h("div", {class: "table-wrap", role: "region", "aria-label": caption, tabindex: 0, id},
    h("table", null, parts));
}

/** A labelled input: field("Name", h("input", {...}), "hint"). The input needs an id. */
export function field(label, input, hint) {
  const hintEl = hint ? h("span", {class: "hint", id: `${input.id}-hint`}, hint) : null;
  if (hintEl) input.setAttribute("aria-describedby", hintEl.id);
  return h("div", {class: "field"}, h("label", {for: input.id}, label), input, hintEl);
}

/**
 * A button that asks before it acts: "Revoke" becomes "Revoke x? [Yes, revoke] [Cancel]".
 * ``name`` is the button's accessible name; an error ``onConfirm`` throws is shown in its place.
 */
export function confirmButton({label, name, question, yes, onConfirm}) {
  const cell = h("div");
  const ask = h("button", {type: "button", class: "danger", "aria-label": name, onclick: () => {
    fill(cell,
      h("span", null, question),
      h("button", {type: "button", class: "danger", onclick: async (event) => {
        event.target.disabled = true;
        try {
          await onConfirm();
        } catch (error) {
          fill(cell, errorText(error));
        }
      }}, yes), " ",
      h("button", {type: "button", onclick: () => { fill(cell, ask); ask.focus(); }}, "Cancel"));
    cell.querySelector("button").focus();
  }}, label);
  return fill(cell, ask);
}

/** A message for a failed request, announced to screen readers. */
export function errorText(error) {
  return h("p", {class: "error", role: "alert"}, error && error.message ? error.message : String(error));
}

/** An id no other element of the page will have (labels need ids). */
export function uid(prefix) {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}
