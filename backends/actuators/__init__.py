"""Actuators: what starts and stops the replicas of a pool (chosen per pool in config).

| kind | starts | stops |
|---|---|---|
| ``simulated`` | a simulated replica in this process, after the pool's cold start (scaled like its timings) | at once |
| ``local`` | an in-process vLLM engine, or a local OpenAI-compatible server process (``command``) | closes the engine / terminates the process |
| ``external`` | nothing: Kubernetes (KEDA) or an operator starts replicas from the published desired count, and they register through ``/admin/replicas`` | nothing: the outside system removes them (they are drained first) |
| ``ray`` | a Ray actor placed by the pool's chip resource, serving the OpenAI protocol | kills the actor |
"""

from __future__ import annotations

from backends.actuators.base import Actuator, ActuatorError, ModelFacts, Started
from backends.actuators.external import ExternalActuator
from backends.actuators.local import LocalActuator
from backends.actuators.simulated import SimulatedActuator

__all__ = ["Actuator", "ActuatorError", "ExternalActuator", "LocalActuator", "ModelFacts", "SimulatedActuator", "Started"]
