"""Which config and ledger a ``maas`` command works on.

``--config`` (before or after the subcommand) or ``MAAS_CONFIG`` when given; else the
config of the one gateway running on this machine (``gateway.instances``); else the
embedded default. When that config is a running gateway's, the ledger is the one
that gateway opened, wherever the command runs from, so ``maas keys create`` never
writes to a database the gateway does not read. The choice is printed every time.
"""

from __future__ import annotations

import argparse
import os
from importlib import resources
from pathlib import Path

import yaml
from rich.console import Console

from gateway.config import GatewayConfig, load_config, parse_config
from gateway.instances import Instance, absolute_ledger, running

CONFIG_ENV = "MAAS_CONFIG"
_console = Console(stderr=True)


class CommandError(Exception):
    """An operator mistake: printed as one line, exit status 2."""


def default_config_text() -> str:
    return resources.files("gateway").joinpath("default.yaml").read_text()


def resolve_config(path: str | None) -> GatewayConfig:
    """The config file at ``path``, or the embedded default."""
    if path:
        return load_config(path)
    return parse_config(yaml.safe_load(default_config_text()))


def config_path(args: argparse.Namespace) -> str | None:
    """``--config`` wherever it was given, else MAAS_CONFIG."""
    return getattr(args, "config", None) or os.environ.get(CONFIG_ENV) or None


def _same_file(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and Path(a).resolve() == Path(b).resolve()


def operator_config(args: argparse.Namespace) -> tuple[GatewayConfig, Instance | None]:
    """The config a command works on, and the running gateway it belongs to (if one runs here)."""
    path = config_path(args)
    live = running()
    if path is not None:
        instance = next((i for i in live if _same_file(i.config_path, path)), None)
    elif len(live) == 1:
        instance = live[0]
        path = instance.config_path
    elif len(live) > 1:
        listing = "; ".join(i.describe() for i in live)
        raise CommandError(f"{len(live)} gateways are running here ({listing}): choose one with --config")
    else:
        instance = None
    config = resolve_config(path)
    config.ledger = instance.ledger if instance is not None else absolute_ledger(config.ledger)
    where = f"the gateway running at {instance.url}" if instance is not None else "no gateway running with it"
    line = f"config: {path or 'embedded default'} ({where}); ledger: {config.ledger}"
    _console.print(line, highlight=False, soft_wrap=True)
    return config, instance
