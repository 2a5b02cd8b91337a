"""``GET /admin/fleet`` as the fleet planner documents it, for testing the console's fleet view
before (and independently of) a planner running in the test gateway."""

from __future__ import annotations

from typing import Any


def fleet_status(model: str = "llama-3.1-8b-instruct") -> dict[str, Any]:
    """The documented shape, with one model and two pools (one of them simulated)."""
    return {
        "object": "fleet",
        "leader": True,
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
                    "cost_per_hour": "0.81", "min": 0, "max": 4, "cold_start_s": 60, "desired": 2,
                    "desired_standby": 0, "replicas": {"starting": 1, "active": 1, "standby": 0, "draining": 0},
                    "capacity_rps_per_replica": 4.9,
                },
                {
                    "pool": "h100", "chip": "nvidia-h100", "actuator": "ray", "simulated": False,
                    "cost_per_hour": "3.99", "min": 1, "max": 2, "cold_start_s": 120, "desired": 1,
                    "desired_standby": 1, "replicas": {"starting": 0, "active": 1, "standby": 1, "draining": 0},
                    "capacity_rps_per_replica": 14.5,
                },
            ],
            "decisions": [{"at": 1733000000.0, "reasons": ["forecast 11.2 req/s needs 3 replicas", "l4 is cheapest"]}],
        }],
    }
