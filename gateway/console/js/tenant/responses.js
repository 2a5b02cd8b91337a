// Tenant "Stored responses": what /v1/responses kept for this tenant (store: true, OpenAI's default),
// newest first, a page at a time; each can be read whole or deleted.

import {badge, confirmButton, errorText, fill, h, table} from "../dom.js";
import {count, when} from "../format.js";

const PAGE = 20;
const PREVIEW = 140;

/** The answer in one line: its text, or the functions it called. */
function answer(response) {
  const parts = [];
  for (const item of response.output || []) {
    if (item.type === "message") {
      for (const part of item.content || []) if (part.type === "output_text") parts.push(part.text);
    } else if (item.type === "function_call") {
      parts.push(`${item.name}(${item.arguments})`);
    }
  }
  return parts.join(" ").replace(/\s+/g, " ").trim();
}

function statusBadge(response) {
  if (response.status === "completed") return badge("completed", "good");
  const reason = response.incomplete_details && response.incomplete_details.reason;
  return badge(reason ? `${response.status}: ${reason}` : response.status, "warn");
}

function outputCell(response) {
  const text = answer(response);
  if (text.length <= PREVIEW) return text || "–";
  // the whole answer on demand, as text (never markup)
  return h("details", null, h("summary", null, `${text.slice(0, PREVIEW)}…`), h("p", {class: "wrap"}, text));
}

export default {
  role: "tenant",
  id: "responses",
  title: "Stored responses",
  async render(root, {api, notice}) {
    const status = h("div", {"aria-live": "polite"});
    const list = h("div");
    const shown = [];
    let more = false;

    const deleteControl = (response) => confirmButton({
      label: "Delete",
      name: `Delete response ${response.id}`,
      question: "Delete it for good? ",
      yes: "Yes, delete",
      onConfirm: async () => {
        await api.del(`/v1/responses/${encodeURIComponent(response.id)}`);
        shown.splice(shown.indexOf(response), 1);
        notice(`Response ${response.id} deleted.`);
        draw();
      },
    });

    const older = h("button", {type: "button", onclick: () => load(shown.length ? shown[shown.length - 1].id : null)},
      "Show older");

    function draw() {
      fill(list,
        table({
          caption: "Stored responses, newest first",
          id: "responses-table",
          columns: [
            {label: "Created", value: (r) => when(r.created_at)},
            {label: "Response", value: (r) => h("code", null, r.id)},
            {label: "Model", value: (r) => r.model},
            {label: "Status", value: statusBadge},
            {label: "Tokens", num: true, value: (r) => count(r.usage ? r.usage.total_tokens : null)},
            {label: "Answer", value: outputCell},
            {label: "Action", value: deleteControl},
          ],
          rows: shown,
          empty: "No stored responses. POST /v1/responses stores each response unless the request says store: false.",
        }),
        more ? older : null);
    }

    async function load(after) {
      older.disabled = true;
      try {
        const page = await api.get("/v1/responses", after ? {limit: PAGE, after} : {limit: PAGE});
        shown.push(...page.data);
        more = page.has_more;
        fill(status);
      } catch (error) {
        fill(status, errorText(error));
      } finally {
        older.disabled = false;
      }
      draw();
    }

    fill(root,
      h("p", null, "Responses the API stored for your tenant, which ", h("code", null, "previous_response_id"),
        " can continue. Deleting one does not break the conversations that grew from it."),
      status, list);
    await load(null);
    return undefined;
  },
};
