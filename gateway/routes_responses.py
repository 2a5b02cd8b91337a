"""OpenAI's Responses API: create (streamed or not), retrieve, delete, list input items.

Create runs on the same plan, limits, routing and settlement as chat; the
surface adds the conversation (``previous_response_id``, read from the tenant's
stored responses) before the plan, and stores the finished response after the
usage row is durable, before the client sees the end of the answer (a client
that continues right after ``response.completed`` finds it stored).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from gateway import errors
from gateway.edge import Reply, Route, StreamReply
from gateway.exchange import Exchange
from gateway.responses_render import ResponsesRenderer
from gateway.responses_schema import ResponsesBody, new_id
from gateway.responses_translate import generation_request
from gateway.routes_openai import caller, read_body
from gateway.schemas import parse_body

if TYPE_CHECKING:
    from gateway.context import Gateway

log = logging.getLogger("maas.responses")

Save = Callable[[dict[str, Any]], Awaitable[None]]


def _not_found(response_id: str, param: str | None = None) -> errors.APIError:
    what = "Previous response" if param == "previous_response_id" else "Response"
    return errors.APIError(404, f"{what} with id '{response_id}' not found.", param=param, code="response_not_found")


def _head(body: ResponsesBody, response_id: str, model: str) -> dict[str, Any]:
    """The response object's fields that echo the request."""
    fmt = body.text.format if body.text is not None and body.text.format is not None else {"type": "text"}
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "model": model,
        "output": [],
        "parallel_tool_calls": body.parallel_tool_calls is not False,
        "previous_response_id": body.previous_response_id,
        "reasoning": {"effort": (body.reasoning or {}).get("effort"), "summary": None},
        "service_tier": "default",
        "store": body.stores,
        "temperature": body.temperature,
        "text": {"format": fmt, "verbosity": (body.text.verbosity if body.text else None) or "medium"},
        "tool_choice": body.tool_choice if body.tool_choice is not None else "auto",
        "tools": body.tools or [],
        "top_p": body.top_p,
        "truncation": body.truncation or "disabled",
        "usage": None,
        "user": body.user,
        "metadata": body.metadata or {},
    }


class _StoredBeforeEnd:
    """A stream's frames; the finished response is stored before its last event is sent."""

    __slots__ = ("_frames", "_renderer", "_save", "_saved")

    def __init__(self, frames: AsyncIterator[bytes], renderer: ResponsesRenderer, save: Save) -> None:
        self._frames, self._renderer, self._save, self._saved = frames, renderer, save, False

    def __aiter__(self) -> _StoredBeforeEnd:
        return self

    async def __anext__(self) -> bytes:
        frame = await self._frames.__anext__()
        if self._renderer.final is not None and not self._saved:
            self._saved = True
            await self._save(self._renderer.final)
        return frame

    async def aclose(self) -> None:
        await self._frames.aclose()  # type: ignore[attr-defined]


async def create_response(x: Exchange, gw: Gateway) -> Reply | StreamReply:
    key = await gw.auth.tenant_key(x)
    async with gw.intake.gate(key.id, x.headers.get("content-length")):
        body = parse_body(ResponsesBody, await read_body(x, gw))
        body.refuse_unsupported()
        items = body.input_items()
        context: list[dict[str, Any]] = []
        if body.previous_response_id is not None:
            previous = await gw.db.responses.get(key.tenant, body.previous_response_id)
            if previous is None:
                raise _not_found(body.previous_response_id, "previous_response_id")
            context = previous.conversation()
        plan = await gw.planner.plan(
            "responses", key, model=body.model, routing=body.routing, stream=bool(body.stream),
            translate=lambda request_id, model: generation_request(body, [*context, *items], request_id, model),
        )
    renderer = ResponsesRenderer(_head(body, new_id("resp"), plan.model.name))
    reply = await gw.serving.answer(plan, caller(x, key), renderer)
    if not body.stores:
        return reply

    async def save(final: dict[str, Any]) -> None:
        try:
            await gw.db.responses.save(key.tenant, key.id, final, items, context)
        except Exception:  # the answer was delivered and billed; only its storage failed
            log.exception("response %s could not be stored", final.get("id"))

    if isinstance(reply, Reply):
        await save(reply.body)
        return reply
    reply.frames = _StoredBeforeEnd(reply.frames, renderer, save)
    return reply


async def get_response(x: Exchange, gw: Gateway) -> Reply:
    key = await gw.auth.tenant_key(x)
    stored = await gw.db.responses.get(key.tenant, x.params["response_id"])
    if stored is None:
        raise _not_found(x.params["response_id"])
    return Reply(stored.response)


async def delete_response(x: Exchange, gw: Gateway) -> Reply:
    key = await gw.auth.tenant_key(x)
    response_id = x.params["response_id"]
    if not await gw.db.responses.delete(key.tenant, response_id):
        raise _not_found(response_id)
    return Reply({"id": response_id, "object": "response", "deleted": True})


def _list_query(x: Exchange) -> tuple[bool, int, str | None]:
    """OpenAI's cursor list parameters: ``order`` (desc by default), ``limit`` (1-100, 20), ``after`` (an id)."""
    query = x.query()
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise errors.bad_request("'order' must be asc or desc.", param="order")
    limit_text = query.get("limit", "20")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 100:
        raise errors.bad_request("'limit' must be an integer from 1 to 100.", param="limit")
    return order == "asc", int(limit_text), query.get("after")


def _list(page: list[dict[str, Any]], has_more: bool) -> Reply:
    return Reply({
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": has_more,
    })


async def list_responses(x: Exchange, gw: Gateway) -> Reply:
    """The caller's tenant's stored responses, newest first (a maas extension, in the shape of
    OpenAI's lists; the console's "Stored responses" page reads it)."""
    key = await gw.auth.tenant_key(x)
    ascending, limit, after = _list_query(x)
    found = await gw.db.responses.page(key.tenant, limit=limit, after=after, ascending=ascending)
    if found is None:
        raise errors.bad_request(f"'after' names no stored response of yours: {after!r}.", param="after")
    return _list(*found)


async def list_input_items(x: Exchange, gw: Gateway) -> Reply:
    key = await gw.auth.tenant_key(x)
    stored = await gw.db.responses.get(key.tenant, x.params["response_id"])
    if stored is None:
        raise _not_found(x.params["response_id"])
    ascending, limit, after = _list_query(x)
    items = list(stored.input_items if ascending else reversed(stored.input_items))
    if after is not None:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise errors.bad_request(f"'after' names no input item of this response: {after!r}.", param="after")
        items = items[ids.index(after) + 1 :]
    return _list(items[:limit], len(items) > limit)


routes = (
    Route("POST", "/v1/responses", create_response, "responses"),
    Route("GET", "/v1/responses", list_responses, "responses"),
    Route("GET", "/v1/responses/{response_id}", get_response, "responses"),
    Route("DELETE", "/v1/responses/{response_id}", delete_response, "responses"),
    Route("GET", "/v1/responses/{response_id}/input_items", list_input_items, "responses"),
)
