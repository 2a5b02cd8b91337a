"""The README's examples are what the code accepts."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from gateway.config import parse_config

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_the_configuration_example_is_a_valid_config() -> None:
    section = README.split("## Configuration", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    config = parse_config(yaml.safe_load(block.group(1)), env={})
    assert config.admin.upstream_key_envs == ["H100_B_KEY"]
    assert not config.server.allow_anonymous
