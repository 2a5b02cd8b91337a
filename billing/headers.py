"""OpenAI's x-ratelimit-* response headers, from the state of the limit checks."""

from __future__ import annotations

import math
from collections.abc import Sequence

from billing.limits import Check, CheckState, WindowCheck


def format_reset(seconds: float) -> str:
    """A duration as OpenAI (Go) writes it: '17ms', '1s', '1.5s', '6m0s', '1h0m0s'."""
    ms = max(math.ceil(seconds * 1000 - 1e-6), 0)
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    text = f"{secs}s"
    if hours or minutes:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return text


def ratelimit_headers(checks: Sequence[Check], states: Sequence[CheckState], now: float) -> dict[str, str]:
    """limit / remaining / reset for requests and tokens, from the tightest window (key or tenant)."""
    headers: dict[str, str] = {}
    for name in ("requests", "tokens"):
        tightest: CheckState | None = None
        for check, state in zip(checks, states, strict=False):
            is_window = isinstance(check, WindowCheck) and check.name == name
            if is_window and (tightest is None or state.remaining < tightest.remaining):
                tightest = state
        if tightest is None:
            continue
        headers[f"x-ratelimit-limit-{name}"] = str(tightest.limit)
        headers[f"x-ratelimit-remaining-{name}"] = str(tightest.remaining)
        if tightest.reset_at is not None:
            headers[f"x-ratelimit-reset-{name}"] = format_reset(tightest.reset_at - now)
    return headers
