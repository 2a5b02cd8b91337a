"""Anonymous access is explicit and local: loopback only unless opened on purpose; a wrong key is always a 401."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from gateway.cli import open_gateway_warning
from gateway.cli_config import default_config_text
from gateway.config import ConfigError, parse_config, with_server
from tests.live_server import LiveServer, sim_config

ROOT = Path(__file__).resolve().parent.parent
MODEL = "llama-3.1-8b-instruct"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> Iterator[LiveServer]:
    server = LiveServer(sim_config(tmp_path_factory.mktemp("trial"), server={"allow_anonymous": True})).start()
    yield server
    server.stop()


def _chat(server: LiveServer, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(server.url + "/v1/chat/completions", json=BODY, headers=headers, timeout=30)


def test_local_trial_serves_requests_without_a_key(trial: LiveServer) -> None:
    assert _chat(trial, {}).status_code == 200


def test_local_trial_accepts_the_documented_sdk_placeholder(trial: LiveServer) -> None:
    client = openai.OpenAI(base_url=trial.url + "/v1", api_key="EMPTY", max_retries=0)
    reply = client.chat.completions.create(**BODY)
    assert reply.usage is not None and reply.usage.completion_tokens > 0


@pytest.mark.parametrize(
    "authorization",
    ["Bearer garbage", "Bearer sk-maas-mistyped", "Bearer empty", "Basic dXNlcjpwYXNz", "Bearer"],
)
def test_a_presented_credential_that_is_not_a_key_is_401_even_in_anonymous_mode(
    trial: LiveServer, authorization: str
) -> None:
    response = _chat(trial, {"authorization": authorization})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_a_revoked_key_is_not_served_as_anonymous(trial: LiveServer) -> None:
    secret = trial.create_key("revoked-in-trial")

    async def revoke() -> None:
        key = await trial.gateway.db.keys.lookup(secret)
        assert key is not None
        await trial.gateway.db.keys.revoke(key.id)

    trial.run(revoke)
    assert _chat(trial, {"authorization": f"Bearer {secret}"}).status_code == 403


def _trial_config(**server: object) -> dict:
    data = yaml.safe_load(default_config_text())
    data["server"].update(server)
    return data


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "gateway.example.com"])
def test_anonymous_access_on_a_network_address_is_refused_at_start(host: str) -> None:
    with pytest.raises(ConfigError, match="allow_anonymous_remote"):
        parse_config(_trial_config(host=host), env={})


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_anonymous_access_on_loopback_is_allowed(host: str) -> None:
    config = parse_config(_trial_config(host=host), env={})
    assert config.server.allow_anonymous and open_gateway_warning(config) is None


def test_host_override_is_checked_like_the_file() -> None:
    config = parse_config(_trial_config(), env={})
    with pytest.raises(ConfigError, match="server.*allow_anonymous"):
        with_server(config, host="0.0.0.0")


def test_open_gateway_needs_its_own_switch_and_is_announced() -> None:
    config = parse_config(_trial_config(host="0.0.0.0", allow_anonymous_remote=True), env={})
    warning = open_gateway_warning(config)
    assert warning is not None and "0.0.0.0" in warning and "ANONYMOUS" in warning


def test_serve_on_all_interfaces_with_the_trial_default_fails_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )
    assert result.returncode == 2
    assert "allow_anonymous" in result.stderr and "Traceback" not in result.stderr


def test_container_image_requires_keys_and_serves_the_default_model() -> None:
    container = parse_config(yaml.safe_load((ROOT / "deploy" / "container.yaml").read_text()), env={})
    default = parse_config(yaml.safe_load(default_config_text()), env={})
    assert container.server.host == "0.0.0.0"
    assert not container.server.allow_anonymous
    assert container.models == default.models and container.replicas == default.replicas
    assert container.ledger.startswith("sqlite:////var/lib/maas/")  # on the image's volume
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "deploy/container.yaml /etc/maas/config.yaml" in dockerfile
    assert "MAAS_CONFIG=/etc/maas/config.yaml" in dockerfile
    assert "0.0.0.0" not in dockerfile.split("CMD", 1)[1]
