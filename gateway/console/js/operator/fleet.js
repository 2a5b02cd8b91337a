// Operator "Fleet", live: what the fleet costs per hour now and with every pool at its maximum,
// each model's load and pools (desired vs running), the planner's recent reasons, and every
// replica's state, circuit, in-flight requests and latencies, with drain and undrain.

import {badge, errorText, fill, h, simulatedBadge, table} from "../dom.js";
import {clock, count, ms, number, percent, when} from "../format.js";
import {poll} from "../poller.js";

const STATE_TONE = {active: "good", standby: "", starting: "warn", draining: "warn", stopped: "bad"};
const CIRCUIT = {closed: ["closed", "good"], half_open: ["half-open (probing)", "warn"], open: ["open (not routed)", "bad"]};

function stateBadge(replica) {
  const words = replica.state === "draining" ? "draining (no new requests)" : replica.state;
  return badge(words, STATE_TONE[replica.state] ?? "");
}

function circuitBadge(replica) {
  const [words, tone] = CIRCUIT[replica.breaker.state] || [replica.breaker.state, "bad"];
  return badge(words, tone);
}

function chipCell(chip, simulated) {
  return h("span", {class: "nowrap"}, chip, simulated ? [" ", simulatedBadge()] : null);
}

function replicaTable(model, replicas, act) {
  return table({
    caption: `Replicas of ${model}`,
    id: `replicas-${model}`,
    columns: [
      {label: "Replica", value: (r) => h("code", null, r.id)},
      {label: "Chip", value: (r) => chipCell(r.chip, r.simulated)},
      {label: "State", value: stateBadge},
      {label: "Takes traffic", value: (r) => (r.routable ? "yes" : "no")},
      {label: "Circuit", value: circuitBadge},
      {label: "In flight", num: true, value: (r) => count(r.telemetry.in_flight)},
      {label: "TTFT", num: true, value: (r) => ms(r.telemetry.ttft_ms)},
      {label: "TPOT", num: true, value: (r) => ms(r.telemetry.tpot_ms)},
      {label: "Requests", num: true, value: (r) => count(r.telemetry.requests)},
      {label: "Errors", num: true, value: (r) => percent(r.telemetry.error_rate)},
      {label: "$/hour", num: true, value: (r) => `${r.cost_per_hour} USD`},
      {label: "Action", value: (r) => act(r)},
    ],
    rows: replicas,
    empty: "No replica of this model.",
  });
}

/** "running / wanted"; the plan's number is null until the planner has run. */
function versus(running, desired) {
  return `${running} / ${desired === null || desired === undefined ? "–" : desired}`;
}

function coldStart(pool) {
  const cited = `${number(pool.cold_start_s)} s`;
  return pool.measured_cold_start_s === null || pool.measured_cold_start_s === undefined
    ? cited : `${cited} (measured ${number(pool.measured_cold_start_s)} s)`;
}

function poolTable(model) {
  return table({
    caption: `Pools of ${model.model}`,
    id: `pools-${model.model}`,
    columns: [
      {label: "Pool", value: (p) => p.pool},
      {label: "Chip", value: (p) => chipCell(p.chip, p.simulated)},
      {label: "Actuator", value: (p) => p.actuator},
      {label: "Running / desired", num: true, value: (p) => versus(p.replicas.active, p.desired)},
      {label: "Standby / desired", num: true, value: (p) => versus(p.replicas.standby, p.desired_standby)},
      {label: "Starting / draining", num: true, value: (p) => `${count(p.replicas.starting)} / ${count(p.replicas.draining)}`},
      {label: "Min–max", num: true, value: (p) => `${p.min}–${p.max}`},
      {label: "$/hour each", num: true, value: (p) => `${p.cost_per_hour} USD`},
      {label: "Cold start", num: true, value: coldStart},
      {label: "Capacity each", num: true,
        value: (p) => (p.capacity_rps_per_replica === null ? "–" : `${number(p.capacity_rps_per_replica)} req/s`)},
    ],
    rows: model.pools,
  });
}

/** Why each pool has the count it has (long sentences: a list reads better than a table column). */
function poolReasons(model) {
  const pools = model.pools.filter((p) => p.reason);
  if (!pools.length) return null;
  return h("ul", {class: "reasons", "aria-label": `Why each pool of ${model.model} has its count`},
    pools.map((p) => h("li", {"data-pool": p.pool}, h("strong", null, `${p.pool}: `), p.reason)));
}

function planSummary(model) {
  const load = model.load;
  const decisions = (model.decisions || []).slice(-5).reverse();
  return [
    load
      ? h("p", null, `Load ${number(load.rate_rps)} req/s (recent peak ${number(load.peak_rps)}), forecast `,
        `${number(model.forecast_rps)} req/s; about ${count(load.prompt_tokens)} prompt and `,
        `${count(load.output_tokens)} output tokens per request.`)
      : h("p", null, "No plan for this model yet."),
    poolTable(model),
    poolReasons(model),
    decisions.length
      ? h("div", null, h("h4", null, "The planner's latest decisions"),
        h("ul", null, decisions.map((d) => h("li", null, h("time", null, when(d.at)), ": ", d.reasons.join("; ")))))
      : null,
  ];
}

function lifecycleEvents(fleet) {
  const events = (fleet && fleet.events ? fleet.events : []).slice(-10).reverse();
  if (!events.length) return null;
  return [h("h2", null, "Recent replica starts and stops"), table({
    caption: "Lifecycle events, newest first",
    id: "fleet-events",
    columns: [
      {label: "Time", value: (e) => h("time", null, when(e.at))},
      {label: "Pool", value: (e) => e.pool},
      {label: "Replica", value: (e) => h("code", null, e.replica)},
      {label: "Event", value: (e) => e.event},
      {label: "Why", value: (e) => e.reason},
    ],
    rows: events,
  })];
}

function costCards(fleet, fleetError) {
  if (!fleet) {
    return h("div", {class: "card", id: "fleet-unavailable"},
      h("h3", null, "Fleet planner"),
      h("p", null, `Not available from this gateway: ${fleetError ? fleetError.message.replace(/\.$/, "") : "no answer"}.`),
      h("p", {class: "hint"}, "Replicas below are live all the same."));
  }
  return h("div", {class: "grid", id: "fleet-costs"},
    h("section", {class: "card"}, h("h3", null, "Cost per hour now"),
      h("p", {class: "figure", "data-field": "cost-now"}, `${fleet.cost_per_hour_now} ${fleet.currency}`)),
    h("section", {class: "card"}, h("h3", null, "Cost per hour, every pool at its maximum"),
      h("p", {class: "figure", "data-field": "cost-all-on"}, `${fleet.cost_per_hour_all_on} ${fleet.currency}`)),
    h("section", {class: "card"}, h("h3", null, "Planner"),
      h("p", null, fleet.leader ? "This gateway plans the fleet." : "Another gateway plans the fleet; this one follows.")));
}

export default {
  role: "operator",
  id: "fleet",
  title: "Fleet",
  async render(root, {api, notice}) {
    const live = h("p", {class: "live"});
    const out = h("div", {id: "fleet"});
    fill(root, live, out);

    async function act(replica, action) {
      await api.post(`/admin/replicas/${encodeURIComponent(replica.id)}/${action}`);
      notice(`${replica.id}: ${action === "drain" ? "draining" : "taking traffic again"}.`);
      await refresh();
      const again = out.querySelector(`[data-replica="${CSS.escape(replica.id)}"]`);
      if (again) again.focus();
    }

    function control(replica) {
      const draining = replica.state === "draining";
      if (replica.state !== "active" && !draining) return "–";
      return h("button", {type: "button", "data-replica": replica.id,
        "aria-label": `${draining ? "Undrain" : "Drain"} ${replica.id}`,
        onclick: (event) => {
          event.target.disabled = true;
          act(replica, draining ? "undrain" : "drain").catch((e) => notice(e.message));
        }}, draining ? "Undrain" : "Drain");
    }

    async function refresh() {
      const [fleetAnswer, replicas] = await Promise.all([
        api.get("/admin/fleet").then((f) => [f, null], (e) => [null, e]),
        api.get("/admin/replicas"),
      ]);
      const [fleet, fleetError] = fleetAnswer;
      if (fleetError && fleetError.status === 401) throw fleetError;
      const plans = new Map((fleet ? fleet.models : []).map((m) => [m.model, m]));
      const names = [...new Set([...plans.keys(), ...replicas.data.map((r) => r.model)])].sort();
      fill(out,
        costCards(fleet, fleetError),
        names.map((name) => h("section", {"aria-label": name, "data-model": name},
          h("h2", null, name),
          plans.has(name) ? planSummary(plans.get(name)) : null,
          replicaTable(name, replicas.data.filter((r) => r.model === name), control))),
        lifecycleEvents(fleet));
      live.textContent = `Live: updated ${clock(Date.now() / 1000)}, every 3 s.`;
    }

    try {
      await refresh();
    } catch (error) {
      fill(out, errorText(error));
      throw error;
    }
    return poll(refresh, 3000, {onError: (e) => { live.textContent = `Update failed (${e.message}); retrying.`; }});
  },
};
