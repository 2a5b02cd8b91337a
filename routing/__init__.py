"""Choosing a replica: live stats, health and circuit breaking, policies, failover.

Routing does no I/O of its own beyond calling a backend. Entry points:
``routing.router.Router``, ``routing.registry.ReplicaRegistry``,
``routing.replica.Replica``, ``routing.preferences.parse_preference``,
``routing.policies.make_policy``, ``routing.health.HealthMonitor``.
"""
