"""Which API endpoints a model serves, by its kind, and the 400 for any other.

A chat model answers chat/completions, completions, Responses and Messages; an
embedding model answers embeddings. ``/v1/models`` lists these per model, and the
plan refuses a request to an endpoint its model does not serve before anything
is reserved or routed.
"""

from __future__ import annotations

from types import MappingProxyType

from gateway import errors
from gateway.config import ModelConfig

#: the endpoints each kind of model serves, as /v1/models names them
ENDPOINTS_BY_KIND = MappingProxyType(
    {"chat": ("chat", "completions", "responses", "messages"), "embedding": ("embeddings",)}
)
#: plan surface (the ledger's ``kind``) -> endpoint name, and the path a client called
_ENDPOINT = MappingProxyType(
    {"chat": "chat", "completion": "completions", "responses": "responses", "messages": "messages",
     "embeddings": "embeddings"}
)
_PATHS = MappingProxyType(
    {"chat": "/v1/chat/completions", "completions": "/v1/completions", "responses": "/v1/responses",
     "messages": "/v1/messages", "embeddings": "/v1/embeddings"}
)


def model_endpoints(model: ModelConfig) -> tuple[str, ...]:
    """The endpoints ``model`` serves."""
    return ENDPOINTS_BY_KIND[model.kind]


def check_endpoint(model: ModelConfig, surface: str, requested: str) -> None:
    """Refuse (400) a request to an endpoint the model does not serve."""
    endpoint = _ENDPOINT.get(surface, surface)
    served = model_endpoints(model)
    if endpoint in served:
        return
    where = ", ".join(_PATHS[e] for e in served)
    raise errors.bad_request(
        f"The model '{requested}' is {'an embedding' if model.kind == 'embedding' else 'a chat'} model and is not "
        f"served on {_PATHS.get(endpoint, endpoint)}; use {where}.",
        param="model",
        code="unsupported_endpoint",
    )
