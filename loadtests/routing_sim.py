"""Deterministic discrete-event simulation of a mixed-chip replica pool.

Drives the service's own routing objects (``Replica``, ``ReplicaTelemetry``,
policies from ``make_policy``) on simulated time. Each replica is a continuous-
batching engine modelled like ``backends.simulated``: every step gives each running
sequence one token and lasts ``profile.step_time_s(batch)`` plus the prefill of the
prompts admitted in it; waiting sequences are admitted FIFO while the batch is below
``max_batch`` and the KV room (max_batch x 2048 tokens) allows. A sequence admitted
in a step gets its first token at that step's end.

Work per step is O(admitted + finished), not O(batch): a sequence's last step is
known when it is admitted, so long runs of the full trace stay fast.
"""

from __future__ import annotations

import csv
import dataclasses
import heapq
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from backends.chips import ChipProfile
from gateway.config import SLO
from routing.breaker import CircuitBreaker
from routing.policies import RoutingPolicy
from routing.replica import Replica
from routing.route import RouteRequest
from routing.telemetry import InFlight, ReplicaTelemetry

#: same KV room per batch slot as backends.simulated
KV_TOKENS_PER_SLOT = 2048
MODEL = "llama-3.1-8b-instruct"
#: what the router is told as max_tokens: clients rarely send the real length
ROUTE_MAX_TOKENS = 2048


@dataclass(frozen=True, slots=True)
class TraceRequest:
    """One request of a workload trace."""

    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    #: max_tokens the client sent, which is what the router sees (None: ROUTE_MAX_TOKENS)
    max_tokens: int | None = None


def load_trace(path: str | Path, limit: int | None = None) -> list[TraceRequest]:
    """Read ``arrived_at,num_prefill_tokens,num_decode_tokens`` rows (Azure/Vidur format)."""
    out: list[TraceRequest] = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out.append(
                TraceRequest(
                    float(row["arrived_at"]),
                    max(1, int(row["num_prefill_tokens"])),
                    max(1, int(row["num_decode_tokens"])),
                )
            )
            if limit is not None and len(out) >= limit:
                break
    return out


def rescale(trace: Sequence[TraceRequest], rate_rps: float) -> list[TraceRequest]:
    """Stretch or squeeze arrival times to a mean rate, keeping the trace's burstiness."""
    start = trace[0].arrival_s
    span = trace[-1].arrival_s - start
    native = (len(trace) - 1) / span if span > 0 else rate_rps
    factor = native / rate_rps
    return [dataclasses.replace(r, arrival_s=(r.arrival_s - start) * factor) for r in trace]


def scaled_profile(profile: ChipProfile, time_scale: float) -> ChipProfile:
    """The profile with every duration multiplied by ``time_scale``, as the simulated backend runs it."""
    return profile.scaled(time_scale)


class SimClock:
    """The simulation's time; routing objects read it as their clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass(eq=False, slots=True)
class SimSequence:
    """One request inside a simulated engine (``index``: its place in the trace)."""

    index: int
    arrival: float
    prompt: int
    output: int
    ticket: InFlight
    admitted_step: int = -1
    first_token_at: float = -1.0


@dataclass(eq=False)
class SimEngine:
    """One replica's continuous-batching engine, in simulated time."""

    replica: Replica
    profile: ChipProfile
    waiting: deque[SimSequence] = field(default_factory=deque)
    running: int = 0
    #: (last step index, tiebreak, sequence)
    finishing: list[tuple[int, int, SimSequence]] = field(default_factory=list)
    admitted_now: list[SimSequence] = field(default_factory=list)
    step_index: int = -1
    stepping: bool = False
    busy_since: float | None = None
    busy_s: float = 0.0
    prompt_held: int = 0
    admit_sum: int = 0  # sum of admitted_step over running sequences (for KV accounting)
    steps: int = 0
    batch_steps: int = 0  # sum of batch sizes over steps (mean batch = batch_steps / steps)

    def kv_held(self) -> int:
        # each running sequence holds its prompt plus one token per step since admission
        return self.prompt_held + self.running * self.step_index - self.admit_sum

    def start_step(self, now: float) -> float:
        """Admit waiting sequences and return when this step ends."""
        self.step_index += 1
        capacity = self.profile.max_batch * KV_TOKENS_PER_SLOT
        held = self.kv_held()
        prefill = 0
        self.admitted_now = []
        while self.waiting and self.running < self.profile.max_batch:
            seq = self.waiting[0]
            if self.running and held + seq.prompt > capacity:
                break
            self.waiting.popleft()
            seq.admitted_step = self.step_index
            self.running += 1
            self.prompt_held += seq.prompt
            self.admit_sum += self.step_index
            held += seq.prompt
            prefill += seq.prompt
            self.admitted_now.append(seq)
            heapq.heappush(self.finishing, (self.step_index + seq.output - 1, seq.index, seq))
        if self.busy_since is None:
            self.busy_since = now
        self.stepping = True
        self.steps += 1
        self.batch_steps += self.running
        return now + self.profile.step_time_s(max(1, self.running)) + self.profile.prefill_time_s(prefill)

    def end_step(self, now: float) -> tuple[list[SimSequence], list[SimSequence]]:
        """Close the step: returns (sequences with their first token, finished sequences)."""
        self.stepping = False
        firsts = self.admitted_now
        for seq in firsts:
            seq.first_token_at = now
        self.admitted_now = []
        done: list[SimSequence] = []
        while self.finishing and self.finishing[0][0] <= self.step_index:
            _, _, seq = heapq.heappop(self.finishing)
            done.append(seq)
            self.running -= 1
            self.prompt_held -= seq.prompt
            self.admit_sum -= seq.admitted_step
        if not self.running and not self.waiting and self.busy_since is not None:
            self.busy_s += now - self.busy_since
            self.busy_since = None
        return firsts, done

    @property
    def has_work(self) -> bool:
        return bool(self.running or self.waiting)

    def settle_step(self, now: float, ttft_s: list[float], tpot_s: list[float]) -> int:
        """Close the step ending at ``now``, tell the replica's telemetry (first
        tokens, finished requests) and record their TTFT and TPOT by trace index.
        Returns the output tokens of the requests that finished."""
        firsts, done = self.end_step(now)
        telemetry = self.replica.telemetry
        for seq in firsts:
            telemetry.first_token(seq.ticket)
            ttft_s[seq.index] = seq.first_token_at - seq.arrival
        tokens = 0
        for seq in done:
            telemetry.finish(seq.ticket, ok=True, output_tokens=seq.output)
            if seq.output > 1:
                tpot_s[seq.index] = (now - seq.first_token_at) / (seq.output - 1)
            tokens += seq.output
        return tokens


@dataclass(frozen=True, slots=True)
class PoolMember:
    """``count`` replicas of one chip."""

    chip: str
    count: int
    profile: ChipProfile


@dataclass
class SimResult:
    """What one run measured."""

    policy: str
    ttft_s: list[float]
    tpot_s: list[float]
    output_tokens: int
    prompt_tokens: int
    cost_usd: Decimal
    busy_s_by_replica: dict[str, float]
    tokens_by_chip: Counter[str]
    reasons: Counter[str]
    mean_batch_by_replica: dict[str, float]
    sim_seconds: float
    #: id of the replica that served each request, in trace order
    replica_by_request: list[str] = field(default_factory=list)


def run_simulation(
    trace: Sequence[TraceRequest],
    pool: Sequence[PoolMember],
    policy: RoutingPolicy,
    slo: SLO,
    *,
    time_scale: float = 1.0,
) -> SimResult:
    """Replay ``trace`` (already rescaled) through ``policy`` on a fresh pool.

    ``time_scale`` runs the engines like ``backend: simulated`` with that ``time_scale``:
    engine durations are scaled, the router's profiles are not (its calibration adapts).
    """
    clock = SimClock()
    engines: list[SimEngine] = []
    for member in pool:
        for i in range(member.count):
            replica = Replica(
                f"{member.chip}-{i}",
                MODEL,
                member.chip,
                member.profile.cost_per_hour,
                backend=None,  # type: ignore[arg-type]  # the DES is the engine
                # the gateway's router sees the replica's scaled profile too (gateway.app.make_replica)
                profile=scaled_profile(member.profile, time_scale),
                simulated=True,
                telemetry=ReplicaTelemetry(alpha=0.2, clock=clock),
                breaker=CircuitBreaker(3, 5.0, clock=clock),
            )
            engines.append(SimEngine(replica, scaled_profile(member.profile, time_scale)))
    replicas = [e.replica for e in engines]
    engine_of = {id(e.replica): e for e in engines}

    ttfts = [0.0] * len(trace)
    tpots = [0.0] * len(trace)
    served_by = [""] * len(trace)
    tokens_by_chip: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    events: list[tuple[float, int, int]] = []  # (time, order, engine index): step ends
    order = 0
    next_arrival = 0
    output_tokens = sum(r.output_tokens for r in trace)
    prompt_tokens = sum(r.prompt_tokens for r in trace)
    engine_index = {id(e): i for i, e in enumerate(engines)}

    def kick(engine: SimEngine) -> None:
        nonlocal order
        if not engine.stepping and engine.has_work:
            end = engine.start_step(clock.now)
            order += 1
            heapq.heappush(events, (end, order, engine_index[id(engine)]))

    while next_arrival < len(trace) or events:
        arrival_at = trace[next_arrival].arrival_s if next_arrival < len(trace) else float("inf")
        if events and events[0][0] <= arrival_at:
            when, _, idx = heapq.heappop(events)
            clock.now = when
            engine = engines[idx]
            finished = engine.settle_step(when, ttfts, tpots)
            if finished:
                tokens_by_chip[engine.replica.chip] += finished
            kick(engine)
            continue
        request = trace[next_arrival]
        clock.now = request.arrival_s
        route = RouteRequest(MODEL, request.prompt_tokens, request.max_tokens or ROUTE_MAX_TOKENS)
        decision = policy.choose(replicas, route, clock.now)
        reasons[decision.reason] += 1
        replica = decision.replica
        served_by[next_arrival] = replica.id
        ticket = replica.telemetry.begin(
            request.prompt_tokens,
            1,
            predicted_ttft_s=decision.predicted_ttft_s,
            predicted_tpot_s=decision.predicted_tpot_s,
        )
        engine = engine_of[id(replica)]
        engine.waiting.append(
            SimSequence(next_arrival, request.arrival_s, request.prompt_tokens, request.output_tokens, ticket)
        )
        kick(engine)
        next_arrival += 1

    cost = sum(
        (Decimal(repr(e.busy_s)) * e.replica.cost_per_hour for e in engines), Decimal(0)
    ) / Decimal(3600)
    return SimResult(
        policy=policy.name,
        ttft_s=ttfts,
        tpot_s=tpots,
        output_tokens=output_tokens,
        prompt_tokens=prompt_tokens,
        cost_usd=cost,
        busy_s_by_replica={e.replica.id: e.busy_s for e in engines},
        tokens_by_chip=tokens_by_chip,
        reasons=reasons,
        mean_batch_by_replica={e.replica.id: (e.batch_steps / e.steps if e.steps else 0.0) for e in engines},
        sim_seconds=clock.now,
        replica_by_request=served_by,
    )
