"""The public OpenAPI document describes the tenant API, all of it, and nothing of the operator's."""

from __future__ import annotations

import httpx

from tests.live_server import LiveServer


def test_the_openapi_document_describes_the_tenant_api_only(sim_server: LiveServer) -> None:
    document = httpx.get(sim_server.url + "/openapi.json").json()
    paths = set(document["paths"])
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages", "/v1/embeddings",
                 "/v1/models", "/v1/usage"):
        assert path in paths
    assert not [p for p in paths if p.startswith(("/admin", "/console", "/metrics"))]
    schema = document["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    chat = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    for field in ("messages", "tools", "response_format", "parallel_tool_calls", "max_completion_tokens"):
        assert field in chat["properties"]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_there_is_no_interactive_docs_page_listing_the_admin_api(sim_server: LiveServer) -> None:
    assert httpx.get(sim_server.url + "/docs").status_code == 404
