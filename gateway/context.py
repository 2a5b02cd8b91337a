"""``Gateway``: every live part of one gateway process, as handlers receive it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from billing.biller import Biller
from billing.database import BillingDatabase
from billing.limits import LimitStore
from billing.tokens import TokenAccounting
from gateway.auth import Authenticator
from gateway.catalog import ModelCatalog
from gateway.config import GatewayConfig, ReplicaConfig
from gateway.decision_log import DecisionLog
from gateway.metrics import GatewayMetrics
from gateway.plan import Planner
from gateway.replicas import make_replica
from gateway.serving import Serving
from routing.health import HealthMonitor
from routing.registry import ReplicaRegistry
from routing.replica import Replica
from routing.router import Router

log = logging.getLogger("maas.app")


@dataclass
class Gateway:
    """Every live part of one gateway process, wired together."""

    config: GatewayConfig
    catalog: ModelCatalog
    registry: ReplicaRegistry
    router: Router
    health: HealthMonitor
    db: BillingDatabase
    biller: Biller
    limits: LimitStore
    auth: Authenticator
    planner: Planner
    serving: Serving
    accounting: TokenAccounting
    metrics: GatewayMetrics
    decisions: DecisionLog
    started_at: int

    def build_replica(self, spec: ReplicaConfig) -> Replica:
        return make_replica(spec, self.config)

    async def start_replica(self, replica: Replica) -> None:
        try:
            await replica.backend.start()
        except Exception as exc:  # noqa: BLE001 - a replica that fails to start is down, not fatal
            log.error("replica %s failed to start: %s", replica.id, exc)
            for _ in range(replica.breaker.failure_threshold):
                replica.breaker.record_failure()


