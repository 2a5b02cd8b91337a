"""Shared pieces of the Responses, Messages and embeddings tests: a simulated pool with a chat
model and an embedding model, tools in each surface's spelling, and ledger reads."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from gateway.config import GatewayConfig
from tests.live_server import LiveServer, sim_config

CHAT = "llama-3.1-8b-instruct"
EMBED = "sim-embedding"
CHAT_PRICE = {"input_per_mtok": "0.20", "cached_input_per_mtok": "0.10", "output_per_mtok": "0.60"}
EMBED_PRICE = {"input_per_mtok": "0.02", "output_per_mtok": "0"}

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city"],
}
#: the same function tool as the Responses API and the Messages API spell it
RESPONSES_WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
                     "parameters": WEATHER_SCHEMA}
MESSAGES_WEATHER = {"name": "get_weather", "description": "Weather in a city", "input_schema": WEATHER_SCHEMA}

_ROWS = (
    "SELECT request_id, kind, stream, prompt_tokens, completion_tokens, price_nano_usd, status"
    " FROM usage_records WHERE tenant = ? ORDER BY started_at"
)


def surfaces_config(tmp_path: Any, **overrides: Any) -> GatewayConfig:
    """A chat model on two simulated chips and an embedding model on one (fast time scale)."""
    data: dict[str, Any] = {
        "models": [
            {"name": CHAT, "aliases": ["default"], "price": CHAT_PRICE},
            {"name": EMBED, "kind": "embedding", "aliases": ["default-embedding"], "price": EMBED_PRICE},
        ],
        "replicas": [
            {"id": "h100-0", "model": CHAT, "backend": "simulated", "chip": "nvidia-h100", "time_scale": 0.02},
            {"id": "l4-0", "model": CHAT, "backend": "simulated", "chip": "nvidia-l4", "time_scale": 0.02},
            {"id": "embed-l4-0", "model": EMBED, "backend": "simulated", "chip": "nvidia-l4", "time_scale": 0.02},
        ],
        **overrides,
    }
    return sim_config(tmp_path, **data)


def ledger_rows(server: LiveServer, tenant: str, *, expect: int = 0, timeout_s: float = 5.0) -> list[tuple]:
    """The tenant's usage rows, oldest first; waits (bounded) until at least ``expect`` are written,
    since a hung-up stream is settled in the background."""
    async def fetch() -> list[tuple]:
        await server.gateway.db.ledger.flush()
        return await server.gateway.db.store.fetch(_ROWS, tenant)

    deadline = time.monotonic() + timeout_s
    rows = server.run(fetch)
    while len(rows) < expect and time.monotonic() < deadline:
        time.sleep(0.05)
        rows = server.run(fetch)
    return rows


def nano(usd: str | float | Decimal) -> int:
    return int(Decimal(str(usd)) * 10**9)


def price_nano(prompt_tokens: int, completion_tokens: int, price: dict[str, str]) -> int:
    total = Decimal(prompt_tokens) * Decimal(price["input_per_mtok"]) + Decimal(completion_tokens) * Decimal(
        price["output_per_mtok"]
    )
    return int(total / 10**6 * 10**9)
