"""Anthropic's Messages API (``/v1/messages``), with errors in Anthropic's shape.

Keys come as ``x-api-key`` (the anthropic SDK) or ``Authorization: Bearer``;
``anthropic-version`` is accepted whatever its value. Messages run on the same
plan, limits, routing and settlement as chat. ``count_tokens`` answers with the
gateway's own prompt estimate (the one that admission and routing use), which
is an estimate, not the engine's count; the answer says so.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from gateway.edge import Reply, Route, StreamReply
from gateway.exchange import Exchange
from gateway.messages_render import MessagesRenderer
from gateway.messages_surface import CountTokensBody, MessagesBody, generation_request
from gateway.routes_openai import caller, read_body
from gateway.schemas import parse_body

if TYPE_CHECKING:
    from gateway.context import Gateway


async def create_message(x: Exchange, gw: Gateway) -> Reply | StreamReply:
    key = await gw.auth.tenant_key(x)
    async with gw.intake.gate(key.id, x.headers.get("content-length")):
        body = parse_body(MessagesBody, await read_body(x, gw))
        plan = await gw.planner.plan(
            "messages", key, model=body.model, routing=body.routing, stream=bool(body.stream),
            translate=lambda request_id, model: generation_request(body, request_id, model),
        )
    renderer = MessagesRenderer(f"msg_{secrets.token_hex(12)}", plan.model.name, plan.prompt.estimate)
    return await gw.serving.answer(plan, caller(x, key), renderer)


async def count_tokens(x: Exchange, gw: Gateway) -> Reply:
    key = await gw.auth.tenant_key(x)
    async with gw.intake.gate(key.id, x.headers.get("content-length")):
        body = parse_body(CountTokensBody, await read_body(x, gw))
        plan = await gw.planner.plan(
            "messages", key, model=body.model, routing=body.routing, stream=False,
            translate=lambda request_id, model: generation_request(body, request_id, model),
        )
    # the gateway's estimator, not the engine: exact only where the model's own tokenizer is configured
    return Reply({"input_tokens": plan.prompt.estimate, "estimated": True},
                 headers={"x-maas-token-count": "estimate"})


routes = (
    Route("POST", "/v1/messages", create_message, "messages", errors="anthropic"),
    Route("POST", "/v1/messages/count_tokens", count_tokens, "messages_count_tokens", errors="anthropic"),
)
