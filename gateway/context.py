"""``Gateway``: every live part of one gateway process, as handlers receive it."""

from __future__ import annotations

from dataclasses import dataclass

from billing.biller import Biller
from billing.database import BillingDatabase
from billing.limits import LimitStore
from billing.tokens import TokenAccounting
from gateway.auth import Authenticator
from gateway.catalog import ModelCatalog
from gateway.config import GatewayConfig
from gateway.decision_log import DecisionLog
from gateway.fleet import FleetController
from gateway.intake import Intake
from gateway.lifecycle import Lifecycle
from gateway.metrics import GatewayMetrics
from gateway.plan import Planner
from gateway.serving import Serving
from routing.health import HealthMonitor
from routing.registry import ReplicaRegistry
from routing.router import Router


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
    lifecycle: Lifecycle
    fleet: FleetController
    decisions: DecisionLog
    intake: Intake
    started_at: int
    #: the tenant API's OpenAPI document, serialized on first request
    openapi: bytes | None = None


