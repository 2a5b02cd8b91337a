"""``POST /v1/embeddings``, on the same plan, limits, routing and settlement as chat."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.edge import Reply, Route, StreamReply
from gateway.embeddings_surface import EmbeddingsBody, EmbeddingsRenderer, embedding_request
from gateway.exchange import Exchange
from gateway.routes_openai import caller, read_body
from gateway.schemas import parse_body

if TYPE_CHECKING:
    from gateway.context import Gateway


async def create_embeddings(x: Exchange, gw: Gateway) -> Reply | StreamReply:
    key = await gw.auth.tenant_key(x)
    async with gw.intake.gate(key.id, x.headers.get("content-length")):
        body = parse_body(EmbeddingsBody, await read_body(x, gw))
        plan = await gw.planner.plan_embeddings(
            key, model=body.model, routing=body.routing,
            translate=lambda request_id, model: embedding_request(body, request_id, model),
        )
    renderer = EmbeddingsRenderer(plan.model.name, body.encoding_format)
    return await gw.serving.answer(plan, caller(x, key), renderer)  # type: ignore[arg-type]


routes = (Route("POST", "/v1/embeddings", create_embeddings, "embeddings"),)
