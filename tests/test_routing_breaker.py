"""Circuit breaker state machine, driven by an injected clock."""

from __future__ import annotations

from routing.breaker import CircuitBreaker
from tests.fakes.routing import FakeClock


def breaker(clock: FakeClock, failures: int = 3, cooldown: float = 5.0) -> CircuitBreaker:
    return CircuitBreaker(failures, cooldown, clock=clock)


def test_breaker_stays_closed_below_the_failure_threshold():
    clock = FakeClock()
    b = breaker(clock)
    b.record_failure()
    b.record_failure()
    assert b.state() == "closed" and b.allows()


def test_success_resets_the_consecutive_failure_count():
    clock = FakeClock()
    b = breaker(clock)
    b.record_failure()
    b.record_failure()
    b.record_success()
    b.record_failure()
    b.record_failure()
    assert b.state() == "closed"


def test_breaker_opens_after_n_consecutive_failures_and_refuses():
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    assert b.state() == "open"
    assert not b.allows() and not b.acquire()
    assert b.available_at() == clock.now + 5.0


def test_after_cooldown_half_open_lets_exactly_one_probe_through():
    clock = FakeClock()
    b = breaker(clock, failures=1)
    b.record_failure()
    clock.advance(4.9)
    assert b.state() == "open"
    clock.advance(0.1)
    assert b.state() == "half_open" and b.allows()
    assert b.acquire()
    assert not b.allows() and not b.acquire()


def test_probe_success_closes_the_breaker():
    clock = FakeClock()
    b = breaker(clock, failures=1)
    b.record_failure()
    clock.advance(5)
    assert b.acquire()
    b.record_success()
    assert b.state() == "closed" and b.allows() and b.consecutive_failures == 0


def test_probe_failure_reopens_for_another_cooldown():
    clock = FakeClock()
    b = breaker(clock, failures=1)
    b.record_failure()
    clock.advance(6)
    assert b.acquire()
    b.record_failure()
    assert b.state() == "open"
    clock.advance(4.9)
    assert not b.allows()
    clock.advance(0.1)
    assert b.allows()


def test_released_probe_slot_can_be_taken_again():
    clock = FakeClock()
    b = breaker(clock, failures=1)
    b.record_failure()
    clock.advance(5)
    assert b.acquire()
    b.release()
    assert b.acquire()


def test_health_probe_success_closes_only_a_half_open_breaker():
    clock = FakeClock()
    b = breaker(clock, failures=1)
    b.record_failure()
    b.probe_succeeded()
    assert b.state() == "open"
    clock.advance(5)
    b.probe_succeeded()
    assert b.state() == "closed"


def test_snapshot_reports_state_and_time_to_retry():
    clock = FakeClock()
    b = breaker(clock, failures=1)
    b.record_failure()
    clock.advance(2)
    snap = b.snapshot()
    assert snap["state"] == "open" and snap["retry_in_s"] == 3.0 and snap["times_opened"] == 1
