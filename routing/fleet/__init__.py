"""The fleet planner: which replicas of which pools should run, decided without I/O.

``load`` counts arrivals, ``forecast`` looks a few cold starts ahead, ``pools``
says what one replica of a pool serves within the SLO, ``solver`` finds the
cheapest integer mix, and ``planner`` turns them into a :class:`FleetPlan`
that the lifecycle object enacts.
"""

from routing.fleet.forecast import Forecast, Forecaster
from routing.fleet.load import BucketCounts, LoadEstimate, LoadTracker, LoadWindow
from routing.fleet.plan import FleetPlan, PoolPlan
from routing.fleet.planner import FleetPlanner
from routing.fleet.pools import PoolCapacity, PoolSpec, PoolStatus, TokenMix, slo_capacity
from routing.fleet.solver import Mix, MixOption, cheapest_mix

__all__ = [
    "BucketCounts",
    "FleetPlan",
    "FleetPlanner",
    "Forecast",
    "Forecaster",
    "LoadEstimate",
    "LoadTracker",
    "LoadWindow",
    "Mix",
    "MixOption",
    "PoolCapacity",
    "PoolPlan",
    "PoolSpec",
    "PoolStatus",
    "TokenMix",
    "cheapest_mix",
    "slo_capacity",
]
