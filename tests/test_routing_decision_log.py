"""The recent routing decisions the operator's console shows: a bounded log fed by the router."""

from __future__ import annotations

import secrets
from types import SimpleNamespace

import httpx
import pytest

from backends.base import UpstreamTimeout
from gateway.decision_log import DecisionLog
from tests.live_server import ADMIN_KEY, LiveServer


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def _replica(replica_id: str, model: str = "m", chip: str = "nvidia-l4") -> SimpleNamespace:
    return SimpleNamespace(id=replica_id, model=model, chip=chip, simulated=True)


def test_the_log_keeps_only_the_newest_decisions_up_to_its_capacity() -> None:
    log = DecisionLog(capacity=3, clock=_Clock())
    for n in range(5):
        log.decision("cheapest", _replica(f"r{n}"), "cheapest")

    assert [d.replica for d in log.recent()] == ["r4", "r3", "r2"]


def test_recent_decisions_filter_by_time_model_and_count() -> None:
    log = DecisionLog(clock=_Clock())
    for n in range(6):
        log.decision("round_robin", _replica(f"r{n}", model="a" if n % 2 else "b"), "round robin")

    assert [d.replica for d in log.recent(since=1004.0)] == ["r5", "r4", "r3"]
    assert [d.replica for d in log.recent(model="a", limit=2)] == ["r5", "r3"]


def test_a_failed_attempt_is_logged_with_its_error_code_and_the_policy() -> None:
    log = DecisionLog(clock=_Clock())
    log.decision("cost_latency", _replica("h100-0"), "lowest cost within SLO")
    log.attempt_failed(_replica("h100-0"), UpstreamTimeout("boom"))

    failed, chosen = log.recent()
    assert (failed.outcome, failed.reason, failed.policy) == ("failed", "upstream_timeout", "cost_latency")
    assert (chosen.outcome, chosen.reason) == ("chosen", "lowest cost within SLO")


def test_a_request_no_replica_could_take_is_logged_as_unserved() -> None:
    log = DecisionLog(clock=_Clock())
    log.unserved("llama")

    (entry,) = log.recent(model="llama")
    assert (entry.outcome, entry.replica, entry.chip) == ("unserved", "", "")


def test_a_log_without_room_is_refused() -> None:
    with pytest.raises(ValueError):
        DecisionLog(capacity=0)


def _admin_get(server: LiveServer, **params: str) -> httpx.Response:
    return httpx.get(f"{server.url}/admin/routing/decisions", headers={"authorization": f"Bearer {ADMIN_KEY}"},
                     params=params)


def test_the_operator_reads_where_each_request_was_routed(sim_server: LiveServer) -> None:
    key = sim_server.create_key(f"routed-{secrets.token_hex(3)}")
    served = []
    for _ in range(3):
        answer = httpx.post(f"{sim_server.url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                            json={"model": "other-model", "messages": [{"role": "user", "content": "hi"}]})
        served.append((answer.headers["x-maas-replica"], answer.headers["x-maas-chip"]))

    data = _admin_get(sim_server, model="other-model", limit="3").json()["data"]

    assert [(d["replica"], d["chip"]) for d in data] == served[::-1]
    assert {d["outcome"] for d in data} == {"chosen"} and all(d["reason"] and d["simulated"] for d in data)
    assert data[0]["at"] >= data[-1]["at"]


@pytest.mark.parametrize("params", [{"since": "yesterday"}, {"limit": "0"}, {"limit": "5000"}, {"tenant": "x"}])
def test_bad_decision_queries_are_clear_errors(sim_server: LiveServer, params: dict) -> None:
    answer = _admin_get(sim_server, **params)

    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == next(iter(params))


def test_a_tenant_key_cannot_read_routing_decisions(sim_server: LiveServer, api_key: str) -> None:
    answer = httpx.get(f"{sim_server.url}/admin/routing/decisions", headers={"authorization": f"Bearer {api_key}"})

    assert answer.status_code == 401
