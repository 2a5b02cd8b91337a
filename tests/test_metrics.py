"""/metrics after known traffic: exact increments, label values, bounded label sets.

A fresh gateway over a simulated pool; every test scrapes before and after its
own traffic and asserts the differences, so the tests do not depend on order.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.live_server import LiveServer, sim_config

MODEL = "llama-3.1-8b-instruct"
MESSAGES = [{"role": "user", "content": "Count the chips in the pool."}]
#: every label name the gateway may use: all bounded sets (no key, tenant or request ids)
ALLOWED_LABELS = {"endpoint", "model", "replica", "chip", "status_class", "stream", "status", "code", "policy",
                  "reason", "kind", "le"}


class Scrape:
    """One /metrics scrape, queried by sample name and a subset of labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = list(text_string_to_metric_families(text))
        self.samples = [s for f in self.families for s in f.samples]

    def total(self, name: str, **labels: str) -> float:
        return sum(s.value for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    def series(self, name: str, **labels: str) -> list[dict[str, str]]:
        return [s.labels for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


def scrape(server: LiveServer) -> Scrape:
    response = httpx.get(server.url + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(sim_config(tmp_path_factory.mktemp("metrics"))).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def secret(server: LiveServer) -> str:
    return server.create_key("tenant-metrics-7f3a")


@pytest.fixture(scope="module")
def traffic(server: LiveServer, secret: str) -> dict:
    """3 chat + 2 streamed chat + 1 error, with what the client was told, and scrapes around it."""
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=secret, max_retries=0)
    before = scrape(server)
    told: dict = {"replicas": [], "prompt": 0, "completion": 0, "cost": Decimal(0), "request_ids": [], "overheads": []}
    for i in range(3):
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, max_tokens=5 + i)
        completion = raw.parse()
        told["replicas"].append((raw.headers["x-maas-replica"], raw.headers["x-maas-chip"]))
        told["prompt"] += completion.usage.prompt_tokens
        told["completion"] += completion.usage.completion_tokens
        told["cost"] += Decimal(raw.headers["x-maas-cost-usd"])
        told["request_ids"] += [raw.headers["x-request-id"], completion.id]
        told["overheads"].append(float(raw.headers["x-maas-overhead-ms"]))
    for i in range(2):
        with client.chat.completions.with_streaming_response.create(
            model=MODEL, messages=MESSAGES, max_tokens=6 + i, stream=True, stream_options={"include_usage": True}
        ) as response:
            told["replicas"].append((response.headers["x-maas-replica"], response.headers["x-maas-chip"]))
            told["request_ids"].append(response.headers["x-request-id"])
            told["overheads"].append(float(response.headers["x-maas-overhead-ms"]))
            chunks = list(response.parse())
        usage = chunks[-1].usage
        told["prompt"] += usage.prompt_tokens
        told["completion"] += usage.completion_tokens
        # the exact decimal is only in the non-stream header; the usage chunk carries it as a number
        told["cost"] += Decimal(str(usage.model_extra["cost"]))
        told["request_ids"].append(chunks[0].id)
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.with_raw_response.create(model="no-such-model", messages=MESSAGES)
    told["error_headers"] = info.value.response.headers
    server.run(server.gateway.db.ledger.flush)
    return {"before": before, "after": scrape(server), "told": told}


def delta(traffic: dict, name: str, **labels: str) -> float:
    return traffic["after"].total(name, **labels) - traffic["before"].total(name, **labels)


def test_requests_total_counts_each_answer_by_replica_and_status_class(traffic: dict) -> None:
    told = traffic["told"]
    assert delta(traffic, "maas_requests_total", endpoint="chat", model=MODEL, status_class="2xx") == 5
    for replica, chip in set(told["replicas"]):
        expected = told["replicas"].count((replica, chip))
        assert delta(traffic, "maas_requests_total", model=MODEL, replica=replica, chip=chip, status_class="2xx") == expected
    # a refused request is counted with empty model/replica/chip: the client's model name is not a label
    assert delta(traffic, "maas_requests_total", endpoint="chat", model="", replica="", chip="", status_class="4xx") == 1


def test_errors_total_counts_by_status_and_code(traffic: dict) -> None:
    assert delta(traffic, "maas_errors_total", endpoint="chat", status="404", code="model_not_found") == 1
    assert delta(traffic, "maas_errors_total") == 1


def test_token_counters_equal_the_usage_returned_to_the_client(traffic: dict) -> None:
    told = traffic["told"]
    assert delta(traffic, "maas_prompt_tokens_total", model=MODEL) == told["prompt"]
    assert delta(traffic, "maas_completion_tokens_total", model=MODEL) == told["completion"]
    assert told["completion"] == 5 + 6 + 7 + 6 + 7


def test_revenue_equals_the_cost_the_client_was_told(traffic: dict) -> None:
    revenue = delta(traffic, "maas_revenue_usd_total", model=MODEL)
    assert revenue == pytest.approx(float(traffic["told"]["cost"]), rel=1e-9, abs=1e-15)
    assert revenue > 0


def test_compute_cost_is_attributed_to_the_replicas_that_served(traffic: dict) -> None:
    for replica, chip in set(traffic["told"]["replicas"]):
        assert delta(traffic, "maas_compute_cost_usd_total", model=MODEL, replica=replica, chip=chip) > 0
    served = {r for r, _ in traffic["told"]["replicas"]}
    for labels in traffic["after"].series("maas_compute_cost_usd_total"):
        assert labels["replica"] in served


def test_routing_decisions_count_one_per_request_by_policy_and_chip(traffic: dict) -> None:
    told = traffic["told"]
    assert delta(traffic, "maas_routing_decisions_total", policy="round_robin") == 5
    for replica, chip in set(told["replicas"]):
        assert delta(traffic, "maas_routing_decisions_total", replica=replica, chip=chip) == told["replicas"].count(
            (replica, chip)
        )


def test_latency_histograms_count_every_answer(traffic: dict) -> None:
    assert delta(traffic, "maas_request_duration_seconds_count", endpoint="chat", stream="false") == 3
    assert delta(traffic, "maas_request_duration_seconds_count", endpoint="chat", stream="true") == 2
    assert delta(traffic, "maas_time_to_first_token_seconds_count", model=MODEL) == 2  # streams only
    assert delta(traffic, "maas_time_per_output_token_seconds_count", model=MODEL) == 2
    assert delta(traffic, "maas_gateway_overhead_seconds_count", endpoint="chat") == 5
    # +Inf bucket equals the count: nothing fell outside the histogram
    assert delta(traffic, "maas_gateway_overhead_seconds_bucket", endpoint="chat", le="+Inf") == 5


def test_models_answers_carry_the_overhead_header(server: LiveServer, secret: str) -> None:
    headers = {"authorization": f"Bearer {secret}"}
    for path in ("/v1/models", f"/v1/models/{MODEL}", "/v1/models/no-such-model"):
        response = httpx.get(server.url + path, headers=headers, timeout=10)
        assert float(response.headers["x-maas-overhead-ms"]) >= 0, path


def test_overhead_header_on_every_answer_matches_the_histogram(traffic: dict) -> None:
    told = traffic["told"]
    assert all(0 <= ms < 1000 for ms in told["overheads"])
    seconds = delta(traffic, "maas_gateway_overhead_seconds_sum", endpoint="chat")
    assert seconds == pytest.approx(sum(told["overheads"]) / 1000, abs=5 * 0.0005)
    assert float(told["error_headers"]["x-maas-overhead-ms"]) >= 0


def test_replica_gauges_show_every_replica_idle_healthy_and_closed(traffic: dict, server: LiveServer) -> None:
    after = traffic["after"]
    replicas = {r.id: r.chip for r in server.gateway.registry.all()}
    for name in ("maas_replica_in_flight", "maas_replica_healthy", "maas_replica_circuit_state", "maas_replica_simulated"):
        assert {labels["replica"]: labels["chip"] for labels in after.series(name)} == replicas
    assert after.total("maas_replica_in_flight") == 0
    assert after.total("maas_replica_healthy") == len(replicas)
    assert after.total("maas_replica_circuit_state") == 0
    # the pool is the simulated test double, and /metrics says so
    assert after.total("maas_replica_simulated") == len(replicas)


def test_ledger_gauges_show_every_record_flushed(traffic: dict) -> None:
    after = traffic["after"]
    assert after.total("maas_ledger_queue_depth") == 0
    assert delta(traffic, "maas_ledger_flush_rows_sum") == 5  # one usage row per answered request
    flushes = delta(traffic, "maas_ledger_flush_seconds_count")
    assert 1 <= flushes <= 5
    assert delta(traffic, "maas_ledger_flush_rows_count") == flushes


def test_rate_limited_requests_are_counted_by_kind(server: LiveServer) -> None:
    limited = server.create_key("tenant-limited-91b2", rpm=1)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=limited, max_retries=0)
    before = scrape(server)
    client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2)
    assert "x-maas-overhead-ms" in info.value.response.headers
    after = scrape(server)
    assert after.total("maas_rate_limited_total", kind="requests") - before.total("maas_rate_limited_total", kind="requests") == 1
    assert after.total("maas_errors_total", status="429", code="rate_limit_exceeded") - before.total(
        "maas_errors_total", status="429", code="rate_limit_exceeded"
    ) == 1
    assert after.total("maas_requests_total", status_class="4xx") - before.total("maas_requests_total", status_class="4xx") == 1


def test_no_label_value_is_a_key_tenant_or_request_id(traffic: dict, server: LiveServer, secret: str) -> None:
    after = traffic["after"]
    key_ids = [k.id for k in server.run(lambda: server.gateway.db.keys.list(None))]
    forbidden = {secret, "tenant-metrics-7f3a", "tenant-limited-91b2", *key_ids, *traffic["told"]["request_ids"]}
    forbidden |= {rid.split("-", 1)[-1] for rid in traffic["told"]["request_ids"]}  # chatcmpl-<id> -> <id>
    for family in after.families:
        for sample in family.samples:
            assert set(sample.labels) <= ALLOWED_LABELS, (sample.name, sample.labels)
            for value in sample.labels.values():
                assert not any(f and f in value for f in forbidden), (sample.name, sample.labels)


def test_label_values_come_from_bounded_sets(traffic: dict, server: LiveServer) -> None:
    after = traffic["after"]
    models = {"", *(m.name for m in server.config.models)}
    replicas = {"", *(r.id for r in server.gateway.registry.all())}
    chips = {"", *(r.chip for r in server.gateway.registry.all())}
    endpoints = {route.name for route in server.app.routes} | {"unknown"}  # unknown: paths no route matched
    for sample in after.samples:
        labels = sample.labels
        assert labels.get("model", "") in models, sample
        assert labels.get("replica", "") in replicas, sample
        assert labels.get("chip", "") in chips, sample
        assert labels.get("endpoint", "chat") in endpoints, sample
        assert labels.get("status_class", "2xx") in {"1xx", "2xx", "3xx", "4xx", "5xx"}, sample


def test_an_open_circuit_shows_as_unhealthy_state_2(server: LiveServer) -> None:
    replica = server.gateway.registry.get("other-0")
    assert replica is not None

    async def trip() -> None:
        for _ in range(replica.breaker.failure_threshold):
            replica.breaker.record_failure()

    server.run(trip)
    after = scrape(server)
    assert after.total("maas_replica_circuit_state", replica="other-0") == 2
    assert after.total("maas_replica_healthy", replica="other-0") == 0
    assert after.total("maas_replica_healthy", replica="h100-0") == 1


def test_dashboard_queries_only_metrics_the_gateway_exports(traffic: dict) -> None:
    import json
    import re
    from pathlib import Path

    dashboard = json.loads((Path(__file__).parent.parent / "deploy" / "grafana" / "maas-gateway.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exported = {s.name for s in traffic["after"].samples}
    for family in traffic["after"].families:  # a labelled counter with no child yet has no samples
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
        exported |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
    used = {name for expr in exprs for name in re.findall(r"\b(maas_[a-z_]+)\b", expr)}
    assert used, "the dashboard queries no maas_ metric"
    missing = sorted(used - exported)
    assert not missing, f"dashboard queries metrics /metrics does not export: {missing}"
    # the shipped dashboard covers every family the gateway exports
    families = {f.name for f in traffic["after"].families}
    covered = {f for f in families if any(name.startswith(f) for name in used)}
    assert {f for f in families - covered if not f.endswith("_created")} == set(), sorted(families - covered)
