"""Prometheus metrics of one gateway instance.

Every app gets its own ``CollectorRegistry`` (no process-global state). Labels
are bounded sets: model, replica, chip, endpoint, status class, error code,
policy — never key or tenant ids. Replica and ledger gauges are read at scrape
time from the live objects, so nothing has to be kept in sync.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import MappingProxyType
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from billing.errors import QuotaExceeded, RateLimitExceeded
from billing.records import UsageRecord
from gateway.errors import APIError

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.2)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)
_FLUSH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
_CIRCUIT = MappingProxyType({"closed": 0, "half_open": 1, "open": 2})


def status_class(status: int) -> str:
    return f"{status // 100}xx"


class _CachedLabels:
    """``labels(*values)`` answered from a plain dict after the first call.

    prometheus-client re-validates and re-stringifies label values under a lock on
    every call (~10 calls per request on the hot path); our label sets are bounded,
    so the children can be kept by their raw values.
    """

    def labels(self, *values: Any, **kw: Any) -> Any:
        if kw:
            return super().labels(*values, **kw)  # type: ignore[misc]
        try:
            return self._children[values]  # type: ignore[attr-defined]
        except AttributeError:
            self._children = {}
        except KeyError:
            pass
        child = self._children[values] = super().labels(*values)  # type: ignore[misc]
        return child


class _Counter(_CachedLabels, Counter):
    pass


class _Histogram(_CachedLabels, Histogram):
    pass


class _LiveGauges(Collector):
    """Gauges computed at scrape time from the replica registry and the ledger."""

    def __init__(self, replicas: Callable[[], Iterable[Any]], ledger_depth: Callable[[], int]) -> None:
        self._replicas = replicas
        self._ledger_depth = ledger_depth

    def collect(self) -> Iterable[GaugeMetricFamily]:
        labels = ["replica", "model", "chip"]
        in_flight = GaugeMetricFamily("maas_replica_in_flight", "Requests in flight on a replica", labels=labels)
        healthy = GaugeMetricFamily("maas_replica_healthy", "1 if the replica takes traffic", labels=labels)
        circuit = GaugeMetricFamily(
            "maas_replica_circuit_state", "Circuit breaker: 0 closed, 1 half-open, 2 open", labels=labels
        )
        simulated = GaugeMetricFamily(
            "maas_replica_simulated", "1 if the replica is the simulated backend (a test double, not real hardware)",
            labels=labels,
        )
        for replica in self._replicas():
            values = [replica.id, replica.model, replica.chip]
            in_flight.add_metric(values, replica.telemetry.in_flight)
            state = replica.breaker.state()
            healthy.add_metric(values, 0 if (replica.draining or state == "open") else 1)
            circuit.add_metric(values, _CIRCUIT.get(state, 2))
            simulated.add_metric(values, 1 if getattr(replica, "simulated", False) else 0)
        depth = GaugeMetricFamily("maas_ledger_queue_depth", "Usage records waiting for group commit")
        depth.add_metric([], self._ledger_depth())
        yield from (in_flight, healthy, circuit, simulated, depth)


class _FleetGauges(Collector):
    """Desired and running replicas per pool, and what the fleet costs per hour, at scrape time."""

    def __init__(self, fleet: Any) -> None:
        self._fleet = fleet

    def collect(self) -> Iterable[GaugeMetricFamily]:
        view = self._fleet.snapshot()
        pool_labels = ["model", "pool", "chip"]
        desired = GaugeMetricFamily(
            "maas_fleet_desired_replicas", "Replicas the plan wants per pool (active + starting; KEDA scales to it)",
            labels=pool_labels,
        )
        standby = GaugeMetricFamily("maas_fleet_desired_standby_replicas", "Warm standby the plan wants", labels=pool_labels)
        running = GaugeMetricFamily(
            "maas_fleet_running_replicas", "Replicas per pool by state", labels=[*pool_labels, "state"]
        )
        for model in view["models"] or ():
            for pool in model.get("pools", ()):
                values = [model["model"], pool["pool"], pool["chip"]]
                if pool.get("desired") is not None:
                    desired.add_metric(values, pool["desired"])
                    standby.add_metric(values, pool.get("desired_standby") or 0)
                for state, count in pool["replicas"].items():
                    running.add_metric([*values, state], count)
        cost = GaugeMetricFamily("maas_fleet_cost_per_hour_usd", "What the running replicas cost per hour now")
        cost.add_metric([], float(view["cost_per_hour_now"]))
        all_on = GaugeMetricFamily("maas_fleet_cost_per_hour_all_on_usd", "What every pool at its max would cost per hour")
        all_on.add_metric([], float(view["cost_per_hour_all_on"]))
        leader = GaugeMetricFamily("maas_fleet_leader", "1 if this gateway plans and actuates the fleet")
        leader.add_metric([], 1 if view["leader"] else 0)
        yield from (desired, standby, running, cost, all_on, leader)


class GatewayMetrics:
    """The gateway's counters and histograms, registered in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = _Counter(
            "maas_requests",
            "Completion requests answered, by status class (refused ones with empty model, replica, chip)",
            ["endpoint", "model", "replica", "chip", "status_class"],
            registry=r,
        )
        self.errors = _Counter("maas_errors", "Error responses by code", ["endpoint", "status", "code"], registry=r)
        self.latency = _Histogram(
            "maas_request_duration_seconds",
            "End-to-end request latency",
            ["endpoint", "model", "stream"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = _Histogram(
            "maas_time_to_first_token_seconds", "Time to first token", ["model", "chip"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.tpot = _Histogram(
            "maas_time_per_output_token_seconds", "Time per output token", ["model", "chip"], buckets=_TPOT_BUCKETS, registry=r
        )
        self.prompt_tokens = _Counter("maas_prompt_tokens", "Prompt tokens billed", ["model", "replica", "chip"], registry=r)
        self.completion_tokens = _Counter(
            "maas_completion_tokens", "Completion tokens billed", ["model", "replica", "chip"], registry=r
        )
        self.revenue = _Counter("maas_revenue_usd", "Price charged to tenants, USD", ["model", "chip"], registry=r)
        self.compute_cost = _Counter(
            "maas_compute_cost_usd", "Replica cost attributed to requests, USD", ["model", "replica", "chip"], registry=r
        )
        self.overhead_seconds = _Histogram(
            "maas_gateway_overhead_seconds",
            "Time spent in the gateway, upstream excluded",
            ["endpoint"],
            buckets=_OVERHEAD_BUCKETS,
            registry=r,
        )
        self.decisions = _Counter(
            "maas_routing_decisions", "Routing decisions", ["policy", "replica", "chip", "reason"], registry=r
        )
        self.failovers = _Counter("maas_routing_failovers", "Attempts that failed and were retried elsewhere", ["replica", "code"], registry=r)
        self.rate_limited = _Counter("maas_rate_limited", "Requests refused by limits", ["kind"], registry=r)
        self.unserved_requests = _Counter(
            "maas_routing_unserved", "Requests no replica could take (the fleet is told to grow)", ["model"], registry=r
        )
        self.scale_events = _Counter(
            "maas_fleet_scale_events", "Replica lifecycle changes by pool: start, wake, park, cancel, retire, registered, lost (died)",
            ["pool", "chip", "event", "reason"], registry=r,
        )
        self.replica_cost = _Counter(
            "maas_replica_cost_usd",
            "What replicas cost the operator, USD: replica-hours in every state but stopped (idle included)",
            ["model", "pool", "chip"], registry=r,
        )
        self.cold_starts = _Histogram(
            "maas_fleet_cold_start_seconds", "Time from starting a replica to serving", ["pool", "chip"],
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 90, 120, 180, 300, 600), registry=r,
        )
        self.ledger_flush = _Histogram(
            "maas_ledger_flush_seconds", "Duration of one ledger group commit", buckets=_FLUSH_BUCKETS, registry=r
        )
        self.ledger_batch = _Histogram(
            "maas_ledger_flush_rows", "Rows per ledger group commit", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=r
        )

    def watch(self, replicas: Callable[[], Iterable[Any]], ledger_depth: Callable[[], int]) -> None:
        self.registry.register(_LiveGauges(replicas, ledger_depth))

    def watch_fleet(self, fleet: Any) -> None:
        """Fleet gauges read at scrape time from the fleet controller's view."""
        self.registry.register(_FleetGauges(fleet))

    # LifecycleObserver
    def scaled(self, pool: str, chip: str, event: str, reason: str) -> None:
        self.scale_events.labels(pool, chip, event, reason).inc()

    def cold_start(self, pool: str, chip: str, seconds: float) -> None:
        self.cold_starts.labels(pool, chip).observe(seconds)

    def paid(self, model: str, pool: str, chip: str, usd: float) -> None:
        self.replica_cost.labels(model, pool, chip).inc(usd)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # EdgeObserver
    def overhead(self, endpoint: str, seconds: float) -> None:
        self.overhead_seconds.labels(endpoint).observe(max(0.0, seconds))

    def refused(self, endpoint: str, error: APIError, cause: BaseException) -> None:
        """A request answered with an error before (or instead of) a replica's answer."""
        self.requests.labels(endpoint, "", "", "", status_class(error.status)).inc()
        self.errors.labels(endpoint, str(error.status), error.code or error.type).inc()
        if isinstance(cause, RateLimitExceeded):
            self.rate_limited.labels(cause.limit).inc()
        elif isinstance(cause, QuotaExceeded):
            self.rate_limited.labels("budget").inc()

    # RoutingObserver
    def decision(self, policy: str, replica: Any, reason: str) -> None:
        self.decisions.labels(policy, replica.id, replica.chip, reason).inc()

    def attempt_failed(self, replica: Any, error: Any) -> None:
        self.failovers.labels(replica.id, getattr(error, "code", "error")).inc()

    def unserved(self, model: str) -> None:
        self.unserved_requests.labels(model).inc()

    # ledger flush hook
    def ledger_flushed(self, rows: int, seconds: float) -> None:
        self.ledger_flush.observe(seconds)
        self.ledger_batch.observe(rows)

    # SettlementObserver
    def settled(self, record: UsageRecord) -> None:
        """A request's usage was billed: count it, its tokens, money and timings."""
        if record.status == "error":
            return  # answered with an error before anything was delivered: the edge counted it
        endpoint, model, replica, chip = record.kind, record.model, record.replica or "", record.chip or ""
        if record.status == "ok":
            self.requests.labels(endpoint, model, replica, chip, "2xx").inc()
        elif record.error_code == "client_disconnected":
            self.errors.labels(endpoint, "499", "client_disconnected").inc()
        else:  # the replica failed after the first byte
            self.requests.labels(endpoint, model, replica, chip, "5xx").inc()
            self.errors.labels(endpoint, "502", record.error_code or "upstream_error").inc()
        latency_s = (record.latency_ms or 0.0) / 1000
        self.latency.labels(endpoint, model, "true" if record.stream else "false").observe(latency_s)
        if record.ttft_ms is not None:
            ttft_s = record.ttft_ms / 1000
            self.ttft.labels(model, chip).observe(ttft_s)
            if record.completion_tokens > 1:
                self.tpot.labels(model, chip).observe(max(0.0, latency_s - ttft_s) / (record.completion_tokens - 1))
        self.prompt_tokens.labels(model, replica, chip).inc(record.prompt_tokens)
        self.completion_tokens.labels(model, replica, chip).inc(record.completion_tokens)
        self.revenue.labels(model, chip).inc(record.price_nano_usd / 1e9)
        self.compute_cost.labels(model, replica, chip).inc(record.compute_cost_nano_usd / 1e9)
