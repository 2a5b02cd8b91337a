"""The short-horizon forecaster (routing.fleet.forecast): ramps, spikes, falls."""

from __future__ import annotations

import pytest

from routing.fleet.forecast import Forecast, Forecaster
from routing.settings import ForecastConfig


def test_on_a_ramp_the_trend_carries_the_forecast_ahead():
    forecaster = Forecaster(ForecastConfig(level_halflife_s=10.0, trend_halflife_s=30.0))
    for t in range(0, 601, 5):  # +0.1 req/s every second
        forecaster.observe(float(t), 10.0 + 0.1 * t)

    forecast = forecaster.forecast()

    assert forecast.trend == pytest.approx(0.1, rel=0.05)
    # Holt's level lags a ramp by trend x (1 - a) / a at steady state: about one tick here
    assert forecast.level == pytest.approx(70.0, abs=1.5)
    assert forecast.rate_at(120.0) == pytest.approx(82.0, abs=2.0)
    assert forecast.envelope(120.0) == forecast.rate_at(120.0)


def test_a_one_tick_spike_moves_the_level_partly_and_fades():
    forecaster = Forecaster(ForecastConfig(level_halflife_s=30.0, trend_halflife_s=300.0))
    for t in range(0, 301, 5):
        forecaster.observe(float(t), 20.0)
    forecaster.observe(305.0, 80.0)

    spiked = forecaster.forecast(peak=80.0)
    assert 20.0 < spiked.level < 30.0  # one tick of a 30 s half-life: ~11% of the jump
    assert spiked.envelope(60.0) == 80.0  # the recent peak is provisioned for while it is recent

    for t in range(310, 611, 5):
        forecaster.observe(float(t), 20.0)
    after = forecaster.forecast(peak=20.0)
    assert after.level == pytest.approx(20.0, abs=0.5)
    assert after.envelope(60.0) == pytest.approx(20.0, abs=0.5)


def test_a_falling_trend_never_lowers_the_envelope_below_the_level():
    falling = Forecast(level=50.0, trend=-0.5, peak=0.0)

    assert falling.rate_at(60.0) == 20.0
    assert falling.rate_at(1000.0) == 0.0
    assert falling.envelope(60.0) == 50.0


def test_ticks_out_of_order_are_ignored():
    forecaster = Forecaster(ForecastConfig())
    forecaster.observe(10.0, 5.0)
    forecaster.observe(10.0, 500.0)
    forecaster.observe(9.0, 500.0)

    assert forecaster.forecast().level == 5.0
