"""``GET /admin/fleet`` in the fleet controller's shape (``gateway.fleet``'s snapshot), for testing
the console's fleet view independently of a planner running in the test gateway."""

from __future__ import annotations

from typing import Any


def fleet_status(model: str = "llama-3.1-8b-instruct") -> dict[str, Any]:
    """The documented shape, with one model and two pools (one of them simulated)."""
    return {
        "object": "fleet",
        "leader": True,
        "planner_interval_s": 10,
        "cost_per_hour_now": "12.34",
        "cost_per_hour_all_on": "40.00",
        "currency": "USD",
        "models": [{
            "model": model,
            "load": {"rate_rps": 9.8, "prompt_tokens": 355, "output_tokens": 292, "peak_rps": 12.0},
            "forecast_rps": 11.2,
            "pools": [
                {
                    "pool": "l4", "chip": "nvidia-l4", "actuator": "simulated", "simulated": True,
                    "cost_per_hour": "0.81", "min": 0, "max": 4, "cold_start_s": 60, "measured_cold_start_s": 42.5,
                    "desired": 2, "reason": "cheapest per request at this load",
                    "desired_standby": 0, "replicas": {"starting": 1, "active": 1, "standby": 0, "draining": 0},
                    "capacity_rps_per_replica": 4.9,
                },
                {
                    "pool": "h100", "chip": "nvidia-h100", "actuator": "ray", "simulated": False,
                    "cost_per_hour": "3.99", "min": 1, "max": 2, "cold_start_s": 120, "measured_cold_start_s": None,
                    "desired": 1, "reason": "min 1",
                    "desired_standby": 1, "replicas": {"starting": 0, "active": 1, "standby": 1, "draining": 0},
                    "capacity_rps_per_replica": 14.5,
                },
            ],
            "decisions": [{"at": 1733000000.0, "reasons": ["forecast 11.2 req/s needs 3 replicas", "l4 is cheapest"]}],
        }],
        "events": [{"at": 1733000001.0, "pool": "l4", "replica": "l4-1", "event": "starting",
                    "reason": "forecast above capacity"}],
    }
