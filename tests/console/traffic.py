"""Requests a tenant's application would send, to give the console something to show."""

from __future__ import annotations

import httpx


def chat(url: str, key: str, model: str = "default", *, max_tokens: int = 16) -> httpx.Response:
    """One answered chat completion (asserted 200), as any OpenAI client sends it."""
    response = httpx.post(
        f"{url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": max_tokens},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response


def get(url: str, path: str, key: str, **params: str) -> httpx.Response:
    return httpx.get(f"{url}{path}", headers={"authorization": f"Bearer {key}"}, params=params, timeout=30)


def respond(url: str, key: str, text: str, model: str = "default") -> dict:
    """One stored response (``POST /v1/responses``, stored as OpenAI's default), asserted 200."""
    response = httpx.post(
        f"{url}/v1/responses",
        headers={"authorization": f"Bearer {key}"},
        json={"model": model, "input": text, "max_output_tokens": 24},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()
