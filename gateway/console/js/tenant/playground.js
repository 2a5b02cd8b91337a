// Tenant "Playground": a streamed chat with any model the key may call, showing for each answer
// the replica and chip that served it, what it cost and how long it took.

import {errorText, field, fill, h, simulatedBadge, uid} from "../dom.js";
import {count, money, ms} from "../format.js";

function meta(label, name, value) {
  return h("span", null, `${label} `, h("strong", {"data-field": name}, value));
}

/** One assistant answer: streams its text in, then writes where and how it was served. */
async function answer({api, body, turn, signal}) {
  const text = turn.querySelector(".text");
  const details = turn.querySelector(".turn-meta");
  const started = performance.now();
  let firstToken = null;
  let usage = null;
  const {headers, events} = await api.stream("/v1/chat/completions", body, signal);
  fill(details,
    meta("replica", "replica", headers.get("x-maas-replica") || "–"),
    meta("chip", "chip", headers.get("x-maas-chip") || "–"),
    headers.get("x-maas-simulated") === "true" ? simulatedBadge() : null,
    h("span", {class: "hint"}, "streaming…"));
  for await (const event of events) {
    if (event.error) throw new Error(event.error.message || "The stream failed.");
    for (const choice of event.choices || []) {
      const piece = (choice.delta && choice.delta.content) || "";
      if (piece && firstToken === null) firstToken = performance.now();
      text.append(piece);
    }
    if (event.usage) usage = event.usage;
  }
  const total = performance.now() - started;
  fill(details,
    meta("replica", "replica", headers.get("x-maas-replica") || "–"),
    meta("chip", "chip", headers.get("x-maas-chip") || "–"),
    headers.get("x-maas-simulated") === "true" ? simulatedBadge() : null,
    meta("cost", "cost", usage && usage.cost !== undefined ? money(usage.cost) : "–"),
    meta("first token", "ttft", firstToken === null ? "–" : ms(Math.round(firstToken - started))),
    meta("total", "latency", ms(Math.round(total))),
    meta("tokens in / out", "tokens", usage ? `${count(usage.prompt_tokens)} / ${count(usage.completion_tokens)}` : "–"),
    meta("gateway overhead", "overhead", ms(Number(headers.get("x-maas-overhead-ms")))));
  return text.textContent;
}

export default {
  role: "tenant",
  id: "playground",
  title: "Playground",
  async render(root, {api}) {
    const models = await api.get("/v1/models");
    const ids = {model: uid("model"), prefer: uid("prefer"), max: uid("max"), prompt: uid("prompt")};
    const history = [];
    let controller = null;
    const transcript = h("div", {class: "transcript", id: "transcript", "aria-live": "polite", "aria-label": "Conversation"},
      h("p", {class: "muted"}, "Ask something; the answer streams in."));
    const status = h("div");
    const send = h("button", {type: "submit", class: "primary"}, "Send");
    const stop = h("button", {type: "button", disabled: true, onclick: () => controller && controller.abort()}, "Stop");
    const clear = h("button", {type: "button", onclick: () => {
      history.length = 0;
      fill(transcript, h("p", {class: "muted"}, "Conversation cleared."));
    }}, "Clear conversation");
    const prompt = h("textarea", {id: ids.prompt, name: "prompt", rows: 3, required: true});
    const form = h("form", {method: "post", "aria-label": "Chat"},
      h("div", {class: "toolbar"},
        field("Model", h("select", {id: ids.model}, models.data.map((m) => h("option", {value: m.id}, m.id)))),
        field("Prefer", h("select", {id: ids.prefer},
          h("option", {value: ""}, "the gateway's policy"), h("option", {value: ":cheap"}, "lower cost"),
          h("option", {value: ":fast"}, "lower latency"))),
        field("Max tokens", h("input", {id: ids.max, inputmode: "numeric", value: "128", pattern: "[0-9]*"}))),
      field("Message", prompt, "Enter sends with Ctrl (or ⌘); the conversation so far is sent with it."),
      h("div", {class: "toolbar"}, send, stop, clear),
      status);
    prompt.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const content = prompt.value.trim();
      const maxTokens = Number(form.elements[ids.max].value);
      if (!content) return;
      if (!Number.isInteger(maxTokens) || maxTokens < 1) {
        fill(status, errorText("Max tokens must be a whole number of at least 1."));
        return;
      }
      fill(status);
      if (!history.length) fill(transcript);
      history.push({role: "user", content});
      transcript.append(h("div", {class: "turn"}, h("span", {class: "role"}, "You:"), h("span", {class: "text"}, content)));
      const turn = h("div", {class: "turn", "data-turn": "assistant"},
        h("span", {class: "role"}, "Model:"), h("span", {class: "text"}), h("div", {class: "turn-meta"}));
      transcript.append(turn);
      prompt.value = "";
      controller = new AbortController();
      send.disabled = true;
      stop.disabled = false;
      const model = form.elements[ids.model].value + form.elements[ids.prefer].value;
      const body = {model, messages: history, max_tokens: maxTokens, stream: true, stream_options: {include_usage: true}};
      try {
        const reply = await answer({api, body, turn, signal: controller.signal});
        history.push({role: "assistant", content: reply});
      } catch (error) {
        history.pop();
        turn.append(error.name === "AbortError" ? h("p", {class: "hint"}, "Stopped.") : errorText(error));
      } finally {
        controller = null;
        send.disabled = false;
        stop.disabled = true;
        prompt.focus();
      }
    });
    fill(root, form, h("h2", null, "Conversation"), transcript);
    return () => controller && controller.abort();
  },
};
