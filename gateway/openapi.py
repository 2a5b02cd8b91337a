"""The public OpenAPI document: the tenant API only, described from the same pydantic schemas
that validate every request.

FastAPI's generator does the describing: the routes below exist only to be
described (the edge serves the real ones), so the document and the validation
can never disagree. Nothing of the admin, operator or console API is in it.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from fastapi import FastAPI

from gateway.embeddings_surface import EmbeddingsBody
from gateway.messages_surface import CountTokensBody, MessagesBody
from gateway.responses_schema import ResponsesBody
from gateway.schemas import ChatCompletionRequest, CompletionRequest
from gateway.tenant_keys import TenantKeyCreate

_DESCRIPTION = (
    "One OpenAI- and Anthropic-compatible API over LLM replicas on many chips. Every request needs an API key "
    "(`Authorization: Bearer sk-maas-...`, or `x-api-key` on the Messages API). Responses carry `x-request-id`, "
    "`x-maas-replica`, `x-maas-chip`, `x-maas-cost-usd`, `x-maas-overhead-ms` and OpenAI's `x-ratelimit-*` headers. "
    "Routing preferences: `model` suffix `:cheap` / `:fast`, or `routing: {prefer, chips, max_ttft_ms}` in the body."
)


def tenant_openapi(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the tenant API."""
    api = FastAPI(title="maas-gateway", version=version, description=_DESCRIPTION, openapi_url=None, docs_url=None,
                  redoc_url=None)

    def describe(method: str, path: str, summary: str, body: type | None = None) -> None:
        async def endpoint(**_: Any) -> None:
            """Described, never served."""

        # the request body's schema, as FastAPI reads it from the signature
        params = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str)
                  for name in _path_params(path)]
        if body is not None:
            params.append(inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=body))
        endpoint.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        api.add_api_route(path, endpoint, methods=[method], summary=summary, tags=[path.split("/")[2]])

    describe("POST", "/v1/chat/completions", "Create a chat completion (streamed with stream: true)", ChatCompletionRequest)
    describe("POST", "/v1/completions", "Create a text completion", CompletionRequest)
    describe("POST", "/v1/responses", "Create a response (OpenAI Responses API)", ResponsesBody)
    describe("GET", "/v1/responses", "List your stored responses, newest first (maas extension; limit, order, after)")
    describe("GET", "/v1/responses/{response_id}", "Retrieve a stored response")
    describe("DELETE", "/v1/responses/{response_id}", "Delete a stored response")
    describe("GET", "/v1/responses/{response_id}/input_items", "List a stored response's input items")
    describe("POST", "/v1/messages", "Create a message (Anthropic Messages API)", MessagesBody)
    describe("POST", "/v1/messages/count_tokens", "Estimate a message's input tokens", CountTokensBody)
    describe("POST", "/v1/embeddings", "Create embeddings", EmbeddingsBody)
    describe("GET", "/v1/models", "List the models this key may call, with prices and context windows")
    describe("GET", "/v1/models/{model}", "Retrieve a model")
    describe("GET", "/v1/usage", "The caller's own usage and charges")
    describe("GET", "/v1/account", "The caller's limits and budgets, and what is left")
    describe("GET", "/v1/keys", "The tenant's keys (manager keys)")
    describe("POST", "/v1/keys", "Create a key for the tenant (manager keys)", TenantKeyCreate)
    describe("DELETE", "/v1/keys/{key_id}", "Revoke one of the tenant's keys (manager keys)")
    document = api.openapi()
    document["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer"},
        "x-api-key": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    }
    document["security"] = [{"bearer": []}, {"x-api-key": []}]
    return document


def _path_params(path: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", path)
